//! The CA client against a real `hostcert-server` on 127.0.0.1: bootstrap → certificate →
//! renew → rekey, certificates checked with the real `ssh-keygen -L` and with ssh-key, and each
//! bad input refused with a clear message, its exit code, and no file changed.

mod common;

use std::process::{Command, Output};

use common::ca::{host_tree, text, Ca};
use common::Tree;
use ssh_key::{Certificate, HashAlg, PrivateKey};

const HOST: &str = "host1.example.test";

fn certify(tree: &Tree, token: &str, args: &[&str]) -> Output {
    let mut all = vec!["certificate", "--no-reload"];
    all.extend(args);
    tree.hostcert_env(&all, &[("HOSTCERT_TOKEN", token)])
}

fn cert(tree: &Tree, key: &str) -> Certificate {
    Certificate::from_openssh(
        tree.read(&format!("etc/ssh/ssh_host_{key}_key-cert.pub"))
            .trim(),
    )
    .unwrap()
}

fn host_ca_fingerprint(ca: &Ca) -> ssh_key::Fingerprint {
    PrivateKey::read_openssh_file(&ca.dir().join("ssh_host_ca_key"))
        .unwrap()
        .public_key()
        .fingerprint(HashAlg::Sha256)
}

/// Runs a command expected to fail with `code` and `message`, and checks no file changed.
fn assert_refused(
    tree: &Tree,
    out: Output,
    before: &std::collections::BTreeMap<std::path::PathBuf, common::Entry>,
    code: i32,
    message: &str,
) {
    let all = text(&out);
    assert_eq!(out.status.code(), Some(code), "{all}");
    assert!(all.contains(message), "expected {message:?} in: {all}");
    assert!(
        !all.contains("eyJ"),
        "a token leaked into the output: {all}"
    );
    let after = tree.files();
    assert!(
        before == &after,
        "files changed:\n{}",
        common::diff(before, &after)
    );
}

#[test]
fn bootstrap_certificate_renew_rekey() {
    let ca = Ca::start();
    let tree = host_tree(HOST);
    let out = tree.ok(&[
        "bootstrap",
        "--ca-url",
        &ca.url,
        "--fingerprint",
        &ca.fingerprint.to_uppercase(),
    ]);
    assert!(out.contains("bootstrapped"), "{out}");
    assert!(tree
        .read("etc/hostcert/root_ca.crt")
        .contains("BEGIN CERTIFICATE"));
    assert!(tree
        .ok(&[
            "bootstrap",
            "--ca-url",
            &ca.url,
            "--fingerprint",
            &ca.fingerprint
        ])
        .contains("already"));

    let token = ca.token(HOST, &["10.0.0.5"]);
    let out = certify(&tree, &token, &["--principal", "10.0.0.5"]);
    assert!(out.status.success(), "{}", text(&out));
    let ca_fp = host_ca_fingerprint(&ca);
    let mut serials = Vec::new();
    for key in ["rsa", "ecdsa", "ed25519"] {
        let path = tree
            .path()
            .join(format!("etc/ssh/ssh_host_{key}_key-cert.pub"));
        let listed = Command::new("ssh-keygen")
            .arg("-L")
            .arg("-f")
            .arg(&path)
            .output()
            .unwrap();
        let listed = String::from_utf8_lossy(&listed.stdout);
        assert!(listed.contains("host certificate"), "{listed}");
        assert!(listed.contains(&format!("Key ID: \"{HOST}\"")), "{listed}");
        assert!(
            listed.contains(&format!("Signing CA: ED25519 {ca_fp}")),
            "{listed}"
        );
        assert!(
            listed.contains(HOST) && listed.contains("10.0.0.5"),
            "{listed}"
        );
        let cert = cert(&tree, key);
        let public = ssh_key::PublicKey::from_openssh(
            &tree.read(&format!("etc/ssh/ssh_host_{key}_key.pub")),
        )
        .unwrap();
        assert_eq!(cert.public_key(), public.key_data());
        cert.validate([&ca_fp]).unwrap();
        assert_eq!(cert.valid_principals(), [HOST, "10.0.0.5"]);
        serials.push(cert.serial());
    }
    let user_keys = tree.read("etc/hostcert/ca_user_keys.pub");
    let user_ca = PrivateKey::read_openssh_file(&ca.dir().join("ssh_user_ca_key")).unwrap();
    let user_ca = user_ca.public_key().to_openssh().unwrap();
    let user_ca: Vec<&str> = user_ca.split_whitespace().take(2).collect();
    assert!(user_keys.contains(&user_ca.join(" ")), "{user_keys}");
    let status = tree.ok(&["status"]);
    assert!(
        status.contains(&format!("CA: {}", ca.url)) && status.contains(&serials[1].to_string()),
        "{status}"
    );

    // Fresh certificates: nothing to do; --force renews every one, same key and principals.
    let before = tree.files();
    assert!(tree.ok(&["renew", "--no-reload"]).contains("nothing to do"));
    assert!(before == tree.files());
    tree.ok(&["renew", "--force", "--no-reload"]);
    for (i, key) in ["rsa", "ecdsa", "ed25519"].iter().enumerate() {
        let cert = cert(&tree, key);
        assert_ne!(cert.serial(), serials[i]);
        assert_eq!(cert.valid_principals(), [HOST, "10.0.0.5"]);
        cert.validate([&ca_fp]).unwrap();
    }

    // --rekey: new ECDSA and Ed25519 keys (0600), each certified.
    let old_key = tree.read("etc/ssh/ssh_host_ed25519_key");
    let out = tree.ok(&["renew", "--rekey", "--no-reload"]);
    assert!(out.contains("new key"), "{out}");
    assert_ne!(tree.read("etc/ssh/ssh_host_ed25519_key"), old_key);
    for key in ["ecdsa", "ed25519"] {
        let private =
            PrivateKey::read_openssh_file(&tree.path().join(format!("etc/ssh/ssh_host_{key}_key")))
                .unwrap();
        assert_eq!(
            cert(&tree, key).public_key(),
            private.public_key().key_data()
        );
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(tree.path().join(format!("etc/ssh/ssh_host_{key}_key")))
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o600);
    }
}

#[test]
fn missing_host_keys_are_generated() {
    let ca = Ca::start();
    let tree = host_tree(HOST);
    for key in ["rsa", "ecdsa", "ed25519"] {
        std::fs::remove_file(tree.path().join(format!("etc/ssh/ssh_host_{key}_key"))).unwrap();
        std::fs::remove_file(tree.path().join(format!("etc/ssh/ssh_host_{key}_key.pub"))).unwrap();
    }
    ca.bootstrap(&tree);
    // The token from a file this time.
    let token_file = tempfile::NamedTempFile::new().unwrap();
    std::fs::write(token_file.path(), format!("{}\n", ca.token(HOST, &[]))).unwrap();
    let out = tree.hostcert(&[
        "certificate",
        "--no-reload",
        "--key-type",
        "ed25519",
        "--token-file",
        token_file.path().to_str().unwrap(),
    ]);
    assert!(out.status.success(), "{}", text(&out));
    assert!(tree.path().join("etc/ssh/ssh_host_ed25519_key").exists());
    assert!(!tree.path().join("etc/ssh/ssh_host_ecdsa_key").exists());
    cert(&tree, "ed25519")
        .validate([&host_ca_fingerprint(&ca)])
        .unwrap();
}

#[test]
fn wrong_fingerprint_is_refused() {
    let ca = Ca::start();
    let tree = host_tree(HOST);
    let before = tree.files();
    let wrong = format!("{}00", &ca.fingerprint[..62]);
    let out = tree.hostcert(&["bootstrap", "--ca-url", &ca.url, "--fingerprint", &wrong]);
    assert_refused(&tree, out, &before, 8, "no root with fingerprint");
    let out = tree.hostcert(&["bootstrap", "--ca-url", &ca.url, "--fingerprint", "abc"]);
    assert_refused(&tree, out, &before, 2, "not 64 hex digits");
}

#[test]
fn ca_down_is_a_temporary_failure() {
    let mut ca = Ca::start();
    let tree = host_tree(HOST);
    ca.bootstrap(&tree);
    let token = ca.token(HOST, &[]);
    ca.stop();
    let before = tree.files();
    assert_refused(
        &tree,
        certify(&tree, &token, &[]),
        &before,
        6,
        "CA unreachable, retry later",
    );
    let other = Tree::new("debian10");
    let before = other.files();
    let out = other.hostcert(&[
        "bootstrap",
        "--ca-url",
        &ca.url,
        "--fingerprint",
        &ca.fingerprint,
    ]);
    assert_refused(&other, out, &before, 6, "CA unreachable");
}

#[test]
fn tls_certificate_not_from_the_pinned_root_is_refused() {
    let mut ca = Ca::start();
    let tree = host_tree(HOST);
    ca.bootstrap(&tree);
    let port = ca.port;
    ca.stop();
    // Another CA, with its own root, at the same URL.
    let impostor = Ca::start_on(port);
    assert_eq!(impostor.url, ca.url);
    let before = tree.files();
    let out = certify(&tree, &impostor.token(HOST, &[]), &[]);
    assert_refused(&tree, out, &before, 8, "does not chain to the pinned root");
}

#[test]
fn malformed_token_is_refused() {
    let ca = Ca::start();
    let tree = host_tree(HOST);
    ca.bootstrap(&tree);
    let before = tree.files();
    assert_refused(
        &tree,
        certify(&tree, "not-a-token", &[]),
        &before,
        7,
        "refused by the CA (401)",
    );
}

#[test]
fn expired_token_is_refused() {
    use p256::pkcs8::DecodePrivateKey;
    let ca = Ca::start();
    let tree = host_tree(HOST);
    ca.bootstrap(&tree);
    let config: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(ca.dir().join("config.json")).unwrap())
            .unwrap();
    let key = p256::ecdsa::SigningKey::from_pkcs8_pem(
        &std::fs::read_to_string(ca.dir().join("provisioner.key")).unwrap(),
    )
    .unwrap();
    let now = hostcert_proto::now();
    let claims = hostcert_proto::ott::Claims::host(
        config["provisioner"].as_str().unwrap(),
        &format!("{}/1.0/ssh/sign", ca.url),
        HOST,
        &[],
        now - 3600,
        600,
    );
    let token = hostcert_proto::ott::issue(&key, &claims).unwrap();
    let before = tree.files();
    assert_refused(&tree, certify(&tree, &token, &[]), &before, 7, "expired");
}

#[test]
fn replayed_token_is_refused() {
    let ca = Ca::start();
    let tree = host_tree(HOST);
    ca.bootstrap(&tree);
    let token = ca.token(HOST, &[]);
    let out = certify(&tree, &token, &[]);
    assert!(out.status.success(), "{}", text(&out));
    let before = tree.files();
    assert_refused(
        &tree,
        certify(&tree, &token, &[]),
        &before,
        7,
        "already used",
    );
}

#[test]
fn token_for_other_principals_is_refused() {
    let ca = Ca::start();
    let tree = host_tree(HOST);
    ca.bootstrap(&tree);
    let before = tree.files();
    let out = certify(&tree, &ca.token("other.example.test", &[]), &[]);
    assert_refused(&tree, out, &before, 7, "not allowed by the token");
}

#[test]
fn renew_of_a_revoked_certificate_is_refused() {
    let ca = Ca::start();
    let tree = host_tree(HOST);
    ca.bootstrap(&tree);
    assert!(certify(&tree, &ca.token(HOST, &[]), &[]).status.success());
    for key in ["rsa", "ecdsa", "ed25519"] {
        ca.cmd(&["revoke", &cert(&tree, key).serial().to_string()]);
    }
    let before = tree.files();
    let out = tree.hostcert(&["renew", "--force", "--no-reload"]);
    assert_refused(&tree, out, &before, 7, "revoked");
}

#[test]
fn renew_of_an_expired_certificate_is_refused() {
    let ca = Ca::start();
    let tree = host_tree(HOST);
    ca.bootstrap(&tree);
    // A certificate the CA's own host key signed, expired yesterday.
    for key in ["rsa", "ecdsa", "ed25519"] {
        let out = Command::new("ssh-keygen")
            .args(["-q", "-s"])
            .arg(ca.dir().join("ssh_host_ca_key"))
            .args(["-h", "-I", HOST, "-n", HOST, "-V", "-3d:-1d"])
            .arg(tree.path().join(format!("etc/ssh/ssh_host_{key}_key.pub")))
            .output()
            .unwrap();
        assert!(out.status.success(), "{}", text(&out));
    }
    let before = tree.files();
    let out = tree.hostcert(&["renew", "--no-reload"]);
    assert_refused(&tree, out, &before, 7, "expired");
}

/// A real skew: the agent runs under libfaketime 10 minutes ahead of the CA, so its SSHPOP
/// token is "not yet valid" to the CA, and the error says why.
#[test]
fn skewed_clock_is_reported() {
    assert!(
        Command::new("faketime").arg("--help").output().is_ok(),
        "this test needs faketime (apt-get install faketime; .ci/run installs it)"
    );
    let ca = Ca::start();
    let tree = host_tree(HOST);
    ca.bootstrap(&tree);
    assert!(certify(&tree, &ca.token(HOST, &[]), &[]).status.success());
    let before = tree.files();
    let out = Command::new("faketime")
        .args(["-f", "+10m", env!("CARGO_BIN_EXE_hostcert"), "--root"])
        .arg(tree.path())
        .args(["renew", "--force", "--no-reload"])
        .output()
        .unwrap();
    assert_refused(&tree, out, &before, 7, "clock skew: this host's clock is");
}
