//! Test harness: a real `hostcert-server` in a temp dir on 127.0.0.1 (ephemeral port), an HTTPS
//! client that trusts only the generated root, and helpers for keys and tokens.

#![allow(dead_code)] // each test binary uses a different subset

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::Duration;

use hostcert_proto::api::{self, paths};
use hostcert_proto::sshpop;
use p256::pkcs8::DecodePrivateKey;
use serde_json::{json, Value};
use ssh_key::{Algorithm, Certificate, EcdsaCurve, PrivateKey};

pub const BIN: &str = env!("CARGO_BIN_EXE_hostcert-server");

/// Runs the binary with `args`.
pub fn run(args: &[&str]) -> Output {
    Command::new(BIN)
        .args(args)
        .output()
        .expect("running hostcert-server")
}

pub fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

pub fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

pub struct Server {
    pub dir: tempfile::TempDir,
    pub child: Option<Child>,
    /// `https://127.0.0.1:PORT`
    pub url: String,
    pub ca_url: String,
    pub fingerprint: String,
    pub client: reqwest::blocking::Client,
}

impl Server {
    pub fn start() -> Server {
        Server::start_with(&[])
    }

    /// `init` + `serve --listen 127.0.0.1:0 <serve_args>`.
    pub fn start_with(serve_args: &[&str]) -> Server {
        let dir = tempfile::tempdir().unwrap();
        let ca = dir.path().join("ca");
        let out = run(&[
            "init",
            "--dir",
            ca.to_str().unwrap(),
            "--dns",
            "localhost",
            "--dns",
            "127.0.0.1",
        ]);
        assert!(out.status.success(), "init: {}", stderr(&out));
        let text = stdout(&out);
        let mut last = text.lines().rev();
        let fingerprint = last
            .next()
            .unwrap()
            .strip_prefix("HOSTCERT_FINGERPRINT=")
            .unwrap()
            .to_string();
        let ca_url = last
            .next()
            .unwrap()
            .strip_prefix("HOSTCERT_CA_URL=")
            .unwrap()
            .to_string();
        let mut child = Command::new(BIN)
            .args([
                "serve",
                "--dir",
                ca.to_str().unwrap(),
                "--listen",
                "127.0.0.1:0",
            ])
            .args(serve_args)
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let mut line = String::new();
        BufReader::new(child.stdout.take().unwrap())
            .read_line(&mut line)
            .unwrap();
        let url = line
            .trim()
            .strip_prefix("listening on ")
            .expect("listening line")
            .to_string();
        let root = std::fs::read(ca.join("root_ca.crt")).unwrap();
        let client = reqwest::blocking::Client::builder()
            .use_rustls_tls()
            .tls_built_in_root_certs(false)
            .add_root_certificate(reqwest::Certificate::from_pem(&root).unwrap())
            .timeout(Duration::from_secs(30))
            .build()
            .unwrap();
        Server {
            dir,
            child: Some(child),
            url,
            ca_url,
            fingerprint,
            client,
        }
    }

    pub fn ca_dir(&self) -> PathBuf {
        self.dir.path().join("ca")
    }

    /// Runs a subcommand with `--dir` appended.
    pub fn cmd(&self, args: &[&str]) -> Output {
        let dir = self.ca_dir();
        let mut all: Vec<&str> = args.to_vec();
        all.extend(["--dir", dir.to_str().unwrap()]);
        run(&all)
    }

    /// A single-use sign token (last line of `token`).
    pub fn token(&self, host: &str, principals: &[&str]) -> String {
        let mut args = vec!["token", "--host", host];
        for p in principals {
            args.extend(["--principal", p]);
        }
        let out = self.cmd(&args);
        assert!(out.status.success(), "token: {}", stderr(&out));
        stdout(&out).lines().last().unwrap().to_string()
    }

    /// A fleet enrollment token: (id, token).
    pub fn enrollment_token(&self, pattern: &str, uses: u32, tags: &[&str]) -> (String, String) {
        let uses = uses.to_string();
        let mut args = vec![
            "token",
            "--enrollment",
            "--pattern",
            pattern,
            "--uses",
            &uses,
        ];
        for t in tags {
            args.extend(["--tag", t]);
        }
        let out = self.cmd(&args);
        assert!(out.status.success(), "token: {}", stderr(&out));
        let text = stdout(&out);
        let id = text
            .lines()
            .next()
            .unwrap()
            .strip_prefix("enrollment token ID: ")
            .unwrap()
            .to_string();
        (id, text.lines().last().unwrap().to_string())
    }

    pub fn get(&self, path: &str) -> (u16, Value) {
        let r = self
            .client
            .get(format!("{}{path}", self.url))
            .send()
            .unwrap();
        let status = r.status().as_u16();
        (status, r.json().unwrap_or(Value::Null))
    }

    pub fn post(&self, path: &str, body: &Value) -> (u16, Value) {
        let r = self
            .client
            .post(format!("{}{path}", self.url))
            .json(body)
            .send()
            .unwrap();
        let status = r.status().as_u16();
        (status, r.json().unwrap_or(Value::Null))
    }

    /// POST /1.0/ssh/sign for `key`.
    pub fn sign(&self, key: &PrivateKey, ott: &str, principals: &[&str]) -> (u16, Value) {
        self.post(
            &paths::versioned(paths::SSH_SIGN),
            &json!({
                "publicKey": api::encode_blob(&key.public_key().to_bytes().unwrap()),
                "ott": ott,
                "certType": "host",
                "principals": principals,
                "keyID": principals.first().copied().unwrap_or(""),
                "validAfter": "",
                "validBefore": "",
            }),
        )
    }

    /// Signs `key` for `host` with a fresh token; returns the certificate.
    pub fn host_cert(&self, key: &PrivateKey, host: &str) -> Certificate {
        let (status, body) = self.sign(key, &self.token(host, &[]), &[host]);
        assert_eq!(status, 201, "{body}");
        crt(&body)
    }

    /// An SSHPOP token for `path` on this server.
    pub fn sshpop(&self, key: &PrivateKey, cert: &Certificate, path: &str) -> String {
        sshpop::issue(
            key,
            cert,
            &sshpop::audience(&self.url, path),
            hostcert_proto::now(),
        )
        .unwrap()
    }

    pub fn provisioner_key(&self) -> p256::ecdsa::SigningKey {
        let pem = std::fs::read_to_string(self.ca_dir().join("provisioner.key")).unwrap();
        p256::ecdsa::SigningKey::from_pkcs8_pem(&pem).unwrap()
    }

    pub fn host_ca(&self) -> PrivateKey {
        PrivateKey::read_openssh_file(&self.ca_dir().join("ssh_host_ca_key")).unwrap()
    }

    /// `hosts --json` as parsed JSON.
    pub fn hosts_json(&self) -> Value {
        let out = self.cmd(&["hosts", "--json"]);
        assert!(out.status.success(), "{}", stderr(&out));
        serde_json::from_slice(&out.stdout).unwrap()
    }

    /// Sends SIGTERM and waits; returns whether the server exited successfully.
    pub fn stop(&mut self) -> bool {
        let mut child = self.child.take().unwrap();
        let _ = Command::new("kill")
            .args(["-TERM", &child.id().to_string()])
            .status();
        child.wait().unwrap().success()
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

pub fn crt(body: &Value) -> Certificate {
    api::decode_certificate(body["crt"].as_str().expect("crt")).unwrap()
}

pub fn ed25519() -> PrivateKey {
    PrivateKey::random(&mut rand_core::OsRng, Algorithm::Ed25519).unwrap()
}

pub fn ecdsa() -> PrivateKey {
    PrivateKey::random(
        &mut rand_core::OsRng,
        Algorithm::Ecdsa {
            curve: EcdsaCurve::NistP256,
        },
    )
    .unwrap()
}

/// `ssh-keygen -L -f` of the certificate, written to a file in `dir`.
pub fn ssh_keygen_l(dir: &Path, cert: &Certificate) -> String {
    let path = dir.join("check-cert.pub");
    std::fs::write(&path, format!("{}\n", cert.to_openssh().unwrap())).unwrap();
    let out = Command::new("ssh-keygen")
        .args(["-L", "-f"])
        .arg(&path)
        .output()
        .unwrap();
    assert!(out.status.success(), "ssh-keygen -L: {}", stderr(&out));
    stdout(&out)
}
