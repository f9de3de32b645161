//! The step-ca API subset against a real `hostcert-server`.

mod common;

use base64::Engine;
use common::*;
use hostcert_proto::api::{self, paths};
use hostcert_proto::ott;
use serde_json::json;
use sha2::{Digest, Sha256};
use ssh_key::certificate::{Builder, CertType};
use std::os::unix::fs::PermissionsExt;

#[test]
fn init_prints_url_and_fingerprint_and_refuses_to_run_twice() {
    let dir = tempfile::tempdir().unwrap();
    let ca = dir.path().join("ca");
    let ca = ca.to_str().unwrap();
    let out = run(&[
        "init",
        "--dir",
        ca,
        "--dns",
        "ca.example.test",
        "--address",
        "0.0.0.0:9443",
    ]);
    assert!(out.status.success(), "{}", stderr(&out));
    let text = stdout(&out);
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(
        lines[lines.len() - 2],
        "HOSTCERT_CA_URL=https://ca.example.test:9443"
    );
    let fp = lines[lines.len() - 1]
        .strip_prefix("HOSTCERT_FINGERPRINT=")
        .unwrap();
    assert_eq!(fp.len(), 64);
    for secret in [
        "root_ca.key",
        "tls.key",
        "ssh_host_ca_key",
        "ssh_user_ca_key",
        "provisioner.key",
        "admin.credential",
    ] {
        let mode = std::fs::metadata(dir.path().join("ca").join(secret))
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o600, "{secret}");
    }
    let before = std::fs::read(dir.path().join("ca/ssh_host_ca_key")).unwrap();
    let again = run(&["init", "--dir", ca, "--dns", "other.test"]);
    assert!(!again.status.success());
    assert!(
        stderr(&again).contains("already initialised"),
        "{}",
        stderr(&again)
    );
    assert_eq!(
        std::fs::read(dir.path().join("ca/ssh_host_ca_key")).unwrap(),
        before
    );

    let bad_dir = dir.path().join("bad");
    let bad = run(&[
        "init",
        "--dir",
        bad_dir.to_str().unwrap(),
        "--dns",
        "no spaces",
    ]);
    assert!(!bad.status.success());
    assert!(!bad_dir.exists(), "a refused init leaves nothing behind");

    let not_init = run(&["serve", "--dir", bad_dir.to_str().unwrap()]);
    assert!(
        stderr(&not_init).contains("not an initialised"),
        "{}",
        stderr(&not_init)
    );
}

#[test]
fn root_roots_health_and_ssh_roots() {
    let s = Server::start();
    let (status, body) = s.get(&paths::root(&s.fingerprint));
    assert_eq!(status, 200);
    let pem = body["ca"].as_str().unwrap();
    let b64: String = pem.lines().filter(|l| !l.starts_with("-----")).collect();
    let der = base64::engine::general_purpose::STANDARD
        .decode(b64)
        .unwrap();
    assert_eq!(api::hex(&Sha256::digest(&der)), s.fingerprint);
    // step-ca normalises case and separators.
    let upper_colons: Vec<String> = s
        .fingerprint
        .to_uppercase()
        .as_bytes()
        .chunks(2)
        .map(|c| String::from_utf8(c.to_vec()).unwrap())
        .collect();
    assert_eq!(
        s.get(&format!("/1.0/root/{}", upper_colons.join(":"))).0,
        200
    );
    let (status, body) = s.get(&paths::root(&"0".repeat(64)));
    assert_eq!((status, body["status"].as_u64()), (404, Some(404)));

    for path in ["/roots", "/1.0/roots"] {
        let (status, body) = s.get(path);
        assert_eq!(status, 201, "{path}");
        assert_eq!(body["crts"][0].as_str(), Some(pem));
    }
    assert_eq!(s.get("/health"), (200, json!({"status": "ok"})));
    assert_eq!(s.get("/1.0/health").0, 200);
    let (status, roots) = s.get("/1.0/ssh/roots");
    assert_eq!(status, 200);
    let host_ca = api::decode_public_key(roots["hostKey"][0].as_str().unwrap()).unwrap();
    assert_eq!(host_ca.key_data(), s.host_ca().public_key().key_data());
    assert!(api::decode_public_key(roots["userKey"][0].as_str().unwrap()).is_ok());
    let (status, body) = s.get("/no/such/path");
    assert_eq!((status, body["status"].as_u64()), (404, Some(404)));
    for path in ["/health", "/1.0/ssh/sign"] {
        let r = s.client.delete(format!("{}{path}", s.url)).send().unwrap();
        assert_eq!(r.status().as_u16(), 405, "{path}");
        assert_eq!(r.json::<serde_json::Value>().unwrap()["status"], 405);
    }
}

#[test]
fn sign_with_token_real_ssh_keygen_and_replay() {
    let s = Server::start();
    let key = ecdsa();
    let token = s.token("h1.example.test", &["10.0.0.5"]);
    let (status, body) = s.sign(&key, &token, &[]);
    assert_eq!(status, 201, "{body}");
    let cert = crt(&body);
    assert_eq!(cert.cert_type(), CertType::Host);
    assert_eq!(cert.key_id(), "h1.example.test");
    assert_eq!(cert.valid_principals(), ["h1.example.test", "10.0.0.5"]);
    assert_eq!(cert.public_key(), key.public_key().key_data());
    let now = hostcert_proto::now();
    cert.validate_at(
        now,
        [s.host_ca()
            .public_key()
            .fingerprint(ssh_key::HashAlg::Sha256)]
        .iter(),
    )
    .unwrap();
    let lifetime = cert.valid_before() - cert.valid_after();
    assert_eq!(
        lifetime,
        30 * 86400 + 60,
        "30 days plus the one-minute backdate"
    );
    assert!(cert.valid_after() <= now - 59);

    let listing = ssh_keygen_l(s.dir.path(), &cert);
    assert!(listing.contains("host certificate"), "{listing}");
    assert!(listing.contains("Key ID: \"h1.example.test\""), "{listing}");
    assert!(listing.contains("10.0.0.5"), "{listing}");

    // Replay: 401 with step-ca's error shape, and no second certificate.
    let (status, body) = s.sign(&ed25519(), &token, &[]);
    assert_eq!(status, 401);
    assert_eq!(body["status"], 401);
    assert!(
        body["message"].as_str().unwrap().contains("already used"),
        "{body}"
    );

    // Subset of the token's principals is fine; check-host and /ssh/hosts see the host.
    let (status, body) = s.sign(
        &ed25519(),
        &s.token("h2.example.test", &["alias.test"]),
        &["alias.test"],
    );
    assert_eq!(status, 201, "{body}");
    assert_eq!(crt(&body).valid_principals(), ["alias.test"]);
    assert_eq!(
        s.post(
            "/ssh/check-host",
            &json!({"type": "host", "principal": "10.0.0.5"})
        )
        .1,
        json!({"exists": true})
    );
    assert_eq!(
        s.post(
            "/1.0/ssh/check-host",
            &json!({"type": "host", "principal": "nope"})
        )
        .1,
        json!({"exists": false})
    );
    let (status, hosts) = s.get("/ssh/hosts");
    assert_eq!(status, 200);
    assert_eq!(
        hosts["hosts"][0],
        json!({"hid": "", "host_tags": null, "hostname": "h1.example.test"})
    );
}

#[test]
fn bad_tokens_are_refused() {
    let s = Server::start();
    let key = ed25519();
    // Principals the token does not allow.
    let (status, body) = s.sign(&key, &s.token("h1.test", &[]), &["h1.test", "other.test"]);
    assert_eq!(status, 403, "{body}");
    assert!(body["message"].as_str().unwrap().contains("other.test"));
    // Malformed.
    for bad in ["", "garbage", "a.b.c", "eyJhbGciOiJFUzI1NiJ9.e30.AAAA"] {
        let (status, body) = s.sign(&key, bad, &[]);
        assert_eq!(status, 401, "{bad}: {body}");
    }
    // Expired (beyond the one-minute leeway), signed by the real provisioner.
    let provisioner = s.provisioner_key();
    let now = hostcert_proto::now();
    let aud = format!("{}/1.0/ssh/sign", s.ca_url);
    let expired = ott::Claims::host("hostcert-jwk", &aud, "h1.test", &[], now - 900, 300);
    let (status, body) = s.sign(&key, &ott::issue(&provisioner, &expired).unwrap(), &[]);
    assert_eq!(status, 401);
    assert!(
        body["message"].as_str().unwrap().contains("expired"),
        "{body}"
    );
    // Signed by another key, for another CA, or by another issuer.
    let stranger = p256::ecdsa::SigningKey::random(&mut rand_core::OsRng);
    let claims = ott::Claims::host("hostcert-jwk", &aud, "h1.test", &[], now, 300);
    assert_eq!(
        s.sign(&key, &ott::issue(&stranger, &claims).unwrap(), &[])
            .0,
        401
    );
    let foreign = ott::Claims::host(
        "hostcert-jwk",
        "https://ca.evil.test/1.0/ssh/sign",
        "h1.test",
        &[],
        now,
        300,
    );
    assert_eq!(
        s.sign(&key, &ott::issue(&provisioner, &foreign).unwrap(), &[])
            .0,
        401
    );
    let other_iss = ott::Claims::host("someone", &aud, "h1.test", &[], now, 300);
    assert_eq!(
        s.sign(&key, &ott::issue(&provisioner, &other_iss).unwrap(), &[])
            .0,
        401
    );
    // A bad public key or body: 400.
    let token = s.token("h1.test", &[]);
    let (status, _) = s.post("/ssh/sign", &json!({"publicKey": "!!", "ott": token}));
    assert_eq!(status, 400);
    assert_eq!(s.post("/ssh/sign", &json!({"nope": 1})).0, 400);
    // Nothing was issued by any of these.
    assert_eq!(s.get("/ssh/hosts").1["hosts"], json!([]));
}

#[test]
fn renew_and_rekey_with_sshpop() {
    let s = Server::start();
    let first = ecdsa();
    let cert = s.host_cert(&first, "h1.test");

    let (status, body) = s.post(
        "/1.0/ssh/renew",
        &json!({"ott": s.sshpop(&first, &cert, paths::SSH_RENEW)}),
    );
    assert_eq!(status, 201, "{body}");
    let renewed = crt(&body);
    assert_ne!(renewed.serial(), cert.serial());
    assert_eq!(renewed.public_key(), cert.public_key());
    assert_eq!(renewed.valid_principals(), cert.valid_principals());
    assert_eq!(renewed.key_id(), "h1.test");

    // Rekey a second and third key with the first key's certificate; it stays usable.
    for second in [ed25519(), ecdsa()] {
        let token = s.sshpop(&first, &cert, paths::SSH_REKEY);
        let public_key = api::encode_blob(&second.public_key().to_bytes().unwrap());
        let (status, body) = s.post(
            "/ssh/rekey",
            &json!({"ott": token, "publicKey": public_key}),
        );
        assert_eq!(status, 201, "{body}");
        let c = crt(&body);
        assert_eq!(c.public_key(), second.public_key().key_data());
        assert_eq!(c.valid_principals(), ["h1.test"]);
        assert!(ssh_keygen_l(s.dir.path(), &c).contains("host certificate"));
    }

    // A replayed SSHPOP token, or one for another endpoint, is refused.
    let token = s.sshpop(&first, &cert, paths::SSH_RENEW);
    assert_eq!(s.post("/ssh/renew", &json!({"ott": token})).0, 201);
    assert_eq!(s.post("/ssh/renew", &json!({"ott": token})).0, 401);
    let rekey_token = s.sshpop(&first, &cert, paths::SSH_REKEY);
    assert_eq!(s.post("/ssh/renew", &json!({"ott": rekey_token})).0, 401);
    // A token signed by a key that is not the certificate's cannot be made; a forged one fails.
    let other = ed25519();
    assert!(hostcert_proto::sshpop::issue(&other, &cert, "x", 0).is_err());
}

#[test]
fn renew_refuses_revoked_and_expired_certificates() {
    let s = Server::start();
    let key = ed25519();
    let cert = s.host_cert(&key, "h1.test");
    let serial = cert.serial().to_string();
    let out = s.cmd(&["revoke", &serial]);
    assert!(out.status.success(), "{}", stderr(&out));
    let (status, body) = s.post(
        "/ssh/renew",
        &json!({"ott": s.sshpop(&key, &cert, paths::SSH_RENEW)}),
    );
    assert_eq!(status, 401);
    assert!(
        body["message"].as_str().unwrap().contains("revoked"),
        "{body}"
    );
    let rekey = json!({"ott": s.sshpop(&key, &cert, paths::SSH_REKEY),
                       "publicKey": api::encode_blob(&ed25519().public_key().to_bytes().unwrap())});
    assert_eq!(s.post("/ssh/rekey", &rekey).0, 401);
    assert!(stdout(&s.cmd(&["revoke", &serial])).contains("already revoked"));
    let unknown = s.cmd(&["revoke", "12345"]);
    assert!(!unknown.status.success());
    assert!(stderr(&unknown).contains("no certificate with serial 12345"));

    // An expired certificate from this CA's own key.
    let now = hostcert_proto::now();
    let mut b = Builder::new_with_random_nonce(
        &mut rand_core::OsRng,
        key.public_key(),
        now - 7200,
        now - 3600,
    )
    .unwrap();
    b.serial(7).unwrap();
    b.cert_type(CertType::Host).unwrap();
    b.key_id("h1.test").unwrap();
    b.valid_principal("h1.test").unwrap();
    let expired = b.sign(&s.host_ca()).unwrap();
    let (status, body) = s.post(
        "/ssh/renew",
        &json!({"ott": s.sshpop(&key, &expired, paths::SSH_RENEW)}),
    );
    assert_eq!(status, 401);
    assert!(
        body["message"].as_str().unwrap().contains("expired"),
        "{body}"
    );

    // A certificate from another CA.
    let mut b = Builder::new_with_random_nonce(
        &mut rand_core::OsRng,
        key.public_key(),
        now - 60,
        now + 3600,
    )
    .unwrap();
    b.cert_type(CertType::Host).unwrap();
    b.valid_principal("h1.test").unwrap();
    let foreign = b.sign(&ed25519()).unwrap();
    let (status, body) = s.post(
        "/ssh/renew",
        &json!({"ott": s.sshpop(&key, &foreign, paths::SSH_RENEW)}),
    );
    assert_eq!(status, 401);
    assert!(
        body["message"]
            .as_str()
            .unwrap()
            .contains("not issued by this CA"),
        "{body}"
    );
}

#[test]
fn host_cert_ttl_option_and_graceful_shutdown() {
    let mut s = Server::start_with(&["--host-cert-ttl", "10m"]);
    let cert = s.host_cert(&ed25519(), "short.test");
    assert_eq!(cert.valid_before() - cert.valid_after(), 600 + 60);
    assert!(s.stop(), "SIGTERM ends the server cleanly");
    let bad = run(&[
        "serve",
        "--dir",
        s.ca_dir().to_str().unwrap(),
        "--host-cert-ttl",
        "31d",
    ]);
    assert!(!bad.status.success());
}

#[test]
fn user_cert_and_docs() {
    let s = Server::start();
    let key = ed25519();
    let pubkey = s.dir.path().join("id_ed25519.pub");
    std::fs::write(&pubkey, key.public_key().to_openssh().unwrap()).unwrap();
    let out = s.cmd(&[
        "user-cert",
        "--user",
        "alice",
        "--pubkey",
        pubkey.to_str().unwrap(),
        "--ttl",
        "1h",
    ]);
    assert!(out.status.success(), "{}", stderr(&out));
    let cert_path = s.dir.path().join("id_ed25519-cert.pub");
    assert_eq!(stdout(&out).trim(), cert_path.to_str().unwrap());
    let cert = ssh_key::Certificate::read_file(&cert_path).unwrap();
    assert_eq!(cert.cert_type(), CertType::User);
    assert_eq!(cert.valid_principals(), ["alice"]);
    let listing = ssh_keygen_l(s.dir.path(), &cert);
    assert!(
        listing.contains("user certificate") && listing.contains("permit-pty"),
        "{listing}"
    );

    let docs = s.dir.path().join("docs");
    let out = run(&["docs", "--out", docs.to_str().unwrap()]);
    assert!(out.status.success(), "{}", stderr(&out));
    for f in [
        "hostcert-server.1",
        "hostcert-server-serve.1",
        "hostcert-server.bash",
        "_hostcert-server",
        "hostcert-server.fish",
    ] {
        assert!(docs.join(f).exists(), "{f}");
    }
}
