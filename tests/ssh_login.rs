//! End to end with real OpenSSH: a real sshd presents the host certificate hostcert obtained
//! from a real hostcert-server, and `ssh` with only a `@cert-authority` known_hosts line and a
//! user certificate from the same CA logs in. Without the host certificate the same command
//! fails host verification.

mod common;

use std::net::TcpListener;
use std::path::Path;
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

use common::ca::{text, Ca};
use common::Tree;

const HOST: &str = "host1.example.test";

/// A throwaway local user, removed on drop.
struct User(String);

impl User {
    fn new() -> User {
        let name = format!("hc{}", std::process::id());
        let out = Command::new("useradd")
            .args(["-m", "-s", "/bin/sh", "-p", "*", &name])
            .output()
            .unwrap();
        assert!(out.status.success(), "useradd: {}", text(&out));
        User(name)
    }
}

impl Drop for User {
    fn drop(&mut self) {
        let _ = Command::new("userdel").args(["-r", &self.0]).output();
    }
}

struct Sshd(Child);

impl Drop for Sshd {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// A real sshd on 127.0.0.1:port with the tree's Ed25519 host key, its certificate when
/// `certificate`, and the CA's user keys as TrustedUserCAKeys.
fn sshd(tree: &Tree, dir: &Path, port: u16, certificate: bool) -> Sshd {
    let key = tree.path().join("etc/ssh/ssh_host_ed25519_key");
    let mut config = format!(
        "ListenAddress 127.0.0.1\nHostKey {}\nTrustedUserCAKeys {}\nPidFile none\nUsePAM no\n\
         PasswordAuthentication no\nKbdInteractiveAuthentication no\nAuthorizedKeysFile none\nStrictModes no\n",
        key.display(),
        tree.path().join("etc/hostcert/ca_user_keys.pub").display()
    );
    if certificate {
        config.push_str(&format!("HostCertificate {}-cert.pub\n", key.display()));
    }
    let file = dir.join(format!("sshd_config_{certificate}"));
    std::fs::write(&file, config).unwrap();
    std::fs::create_dir_all("/run/sshd").unwrap();
    let child = Command::new("/usr/sbin/sshd")
        .args(["-D", "-e", "-f"])
        .arg(&file)
        .args(["-p", &port.to_string()])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(10);
    while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(Instant::now() < deadline, "sshd did not start");
        std::thread::sleep(Duration::from_millis(50));
    }
    Sshd(child)
}

fn ssh(dir: &Path, user: &str, port: u16) -> Output {
    Command::new("ssh")
        .args([
            "-F",
            "/dev/null",
            "-o",
            "StrictHostKeyChecking=yes",
            "-o",
            "BatchMode=yes",
        ])
        .arg("-o")
        .arg(format!(
            "UserKnownHostsFile={}",
            dir.join("known_hosts").display()
        ))
        .args([
            "-o",
            &format!("HostKeyAlias={HOST}"),
            "-o",
            "IdentitiesOnly=yes",
            "-i",
        ])
        .arg(dir.join("user"))
        .arg("-o")
        .arg(format!(
            "CertificateFile={}",
            dir.join("user-cert.pub").display()
        ))
        .args([
            "-p",
            &port.to_string(),
            &format!("{user}@127.0.0.1"),
            "echo",
            "logged-in-as-$(id -un)",
        ])
        .output()
        .unwrap()
}

#[test]
fn ssh_trusts_the_issued_host_certificate() {
    assert!(
        Path::new("/usr/sbin/sshd").exists(),
        "needs openssh-server (.ci/run installs it)"
    );
    let ca = Ca::start();
    let tree = ca.certified(HOST);
    // sshd refuses group/world-readable host keys.
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(
        tree.path().join("etc/ssh/ssh_host_ed25519_key"),
        std::fs::Permissions::from_mode(0o600),
    )
    .unwrap();

    let dir = tempfile::tempdir().unwrap();
    let host_ca =
        ssh_key::PrivateKey::read_openssh_file(&ca.dir().join("ssh_host_ca_key")).unwrap();
    let known = format!(
        "@cert-authority {HOST} {}\n",
        host_ca.public_key().to_openssh().unwrap()
    );
    std::fs::write(dir.path().join("known_hosts"), known).unwrap();
    let user = User::new();
    let out = Command::new("ssh-keygen")
        .args(["-q", "-t", "ed25519", "-N", "", "-f"])
        .arg(dir.path().join("user"))
        .output()
        .unwrap();
    assert!(out.status.success());
    ca.cmd(&[
        "user-cert",
        "--user",
        &user.0,
        "--pubkey",
        dir.path().join("user.pub").to_str().unwrap(),
    ]);

    let port = free_port();
    let with_cert = sshd(&tree, dir.path(), port, true);
    let out = ssh(dir.path(), &user.0, port);
    assert!(
        out.status.success(),
        "ssh with the host certificate: {}",
        text(&out)
    );
    assert!(String::from_utf8_lossy(&out.stdout).contains(&format!("logged-in-as-{}", user.0)));
    drop(with_cert);

    let port = free_port();
    let _without = sshd(&tree, dir.path(), port, false);
    let out = ssh(dir.path(), &user.0, port);
    assert!(
        !out.status.success(),
        "ssh without the host certificate must fail: {}",
        text(&out)
    );
    assert!(
        text(&out).contains("Host key verification failed"),
        "{}",
        text(&out)
    );
}
