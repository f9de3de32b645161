//! A real `hostcert-server` for the agent's tests: `init` in a temp dir, `serve` on 127.0.0.1
//! (ephemeral port), and its admin subcommands.

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::sync::OnceLock;

use super::Tree;

/// A Debian 10 tree whose host name is `host`.
pub fn host_tree(host: &str) -> Tree {
    let tree = Tree::new("debian10");
    tree.write("etc/hostname", &format!("{host}\n"));
    tree
}

/// A run's standard output and error, for assertion messages.
pub fn text(out: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

/// The `hostcert-server` binary, built once per test process beside the agent's binary.
pub fn server_bin() -> &'static Path {
    static BIN: OnceLock<PathBuf> = OnceLock::new();
    BIN.get_or_init(|| {
        let agent = Path::new(env!("CARGO_BIN_EXE_hostcert"));
        let bin = agent.with_file_name("hostcert-server");
        // target/<profile>/hostcert: the target dir is two levels up.
        let target = agent.parent().unwrap().parent().unwrap();
        let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
        let out = Command::new(cargo)
            .args([
                "build",
                "-p",
                "hostcert-server",
                "--locked",
                "--manifest-path",
            ])
            .arg(Path::new(env!("CARGO_MANIFEST_DIR")).join("Cargo.toml"))
            .env("CARGO_TARGET_DIR", target)
            .output()
            .expect("cargo runs");
        assert!(
            out.status.success() || bin.exists(),
            "building hostcert-server: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        bin
    })
}

/// Runs `hostcert-server args…`.
pub fn server(args: &[&str]) -> Output {
    Command::new(server_bin())
        .args(args)
        .output()
        .expect("hostcert-server runs")
}

/// A running CA.
pub struct Ca {
    dir: tempfile::TempDir,
    child: Option<Child>,
    /// `https://localhost:PORT`.
    pub url: String,
    /// The port it listens on.
    pub port: u16,
    /// The root fingerprint `init` printed.
    pub fingerprint: String,
}

impl Ca {
    /// Pins this CA in `tree` (`hostcert bootstrap`).
    pub fn bootstrap(&self, tree: &Tree) {
        tree.ok(&[
            "bootstrap",
            "--ca-url",
            &self.url,
            "--fingerprint",
            &self.fingerprint,
        ]);
    }

    /// A tree for `host`, bootstrapped and certified with a fresh single-use token.
    pub fn certified(&self, host: &str) -> Tree {
        let tree = host_tree(host);
        self.bootstrap(&tree);
        let out = tree.hostcert_env(
            &["certificate", "--no-reload"],
            &[("HOSTCERT_TOKEN", &self.token(host, &[]))],
        );
        assert!(out.status.success(), "{}", text(&out));
        tree
    }

    /// `init` + `serve --listen 127.0.0.1:0`.
    pub fn start() -> Ca {
        Ca::start_on(0)
    }

    /// `init` + `serve --listen 127.0.0.1:port` (a new CA, with its own root).
    pub fn start_on(port: u16) -> Ca {
        let dir = tempfile::Builder::new()
            .prefix("hostcert-ca")
            .tempdir()
            .unwrap();
        let ca = dir.path().join("ca");
        let out = server(&[
            "init",
            "--dir",
            ca.to_str().unwrap(),
            "--dns",
            "localhost",
            "--dns",
            "127.0.0.1",
        ]);
        assert!(
            out.status.success(),
            "init: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        let text = String::from_utf8_lossy(&out.stdout).into_owned();
        let fingerprint = text
            .lines()
            .last()
            .and_then(|l| l.strip_prefix("HOSTCERT_FINGERPRINT="))
            .expect("fingerprint line")
            .to_string();
        let mut ca = Ca {
            dir,
            child: None,
            url: String::new(),
            port,
            fingerprint,
        };
        ca.serve(port);
        ca
    }

    fn serve(&mut self, port: u16) {
        let mut child = Command::new(server_bin())
            .args(["serve", "--dir", self.dir().to_str().unwrap(), "--listen"])
            .arg(format!("127.0.0.1:{port}"))
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let mut line = String::new();
        BufReader::new(child.stdout.take().unwrap())
            .read_line(&mut line)
            .unwrap();
        let addr = line
            .trim()
            .strip_prefix("listening on https://")
            .expect("listening line");
        self.port = addr.rsplit_once(':').unwrap().1.parse().unwrap();
        self.url = format!("https://localhost:{}", self.port);
        self.child = Some(child);
    }

    /// Stops the server (the CA's files stay).
    pub fn stop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// The server directory.
    pub fn dir(&self) -> PathBuf {
        self.dir.path().join("ca")
    }

    /// Runs an admin subcommand with `--dir`, insisting on success; returns stdout.
    pub fn cmd(&self, args: &[&str]) -> String {
        let dir = self.dir();
        let mut all = args.to_vec();
        all.extend(["--dir", dir.to_str().unwrap()]);
        let out = server(&all);
        assert!(
            out.status.success(),
            "{args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8(out.stdout).unwrap()
    }

    /// A single-use sign token for `host` and extra principals.
    pub fn token(&self, host: &str, principals: &[&str]) -> String {
        let mut args = vec!["token", "--host", host];
        for p in principals {
            args.extend(["--principal", p]);
        }
        self.cmd(&args).lines().last().unwrap().to_string()
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
        let text = self.cmd(&args);
        let id = text
            .lines()
            .find_map(|l| l.strip_prefix("enrollment token ID: "))
            .expect("token ID line")
            .to_string();
        (id, text.lines().last().unwrap().to_string())
    }

    /// `hosts --json`.
    pub fn hosts(&self) -> Vec<serde_json::Value> {
        serde_json::from_str(&self.cmd(&["hosts", "--json"])).unwrap()
    }

    /// The environment `hostcert enroll` needs for this CA.
    pub fn env(&self) -> Vec<(&'static str, String)> {
        vec![
            ("HOSTCERT_CA_URL", self.url.clone()),
            ("HOSTCERT_FINGERPRINT", self.fingerprint.clone()),
        ]
    }
}

impl Drop for Ca {
    fn drop(&mut self) {
        self.stop();
    }
}
