//! Test trees: copies of the stock fixture trees with real host keys, certificates and module
//! files, and a way to run the real `hostcert` binary on them.
#![allow(dead_code)]

pub mod ca;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::OnceLock;

/// The project's fixtures.
pub fn fixtures() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures")
}

/// The four targets.
pub const TARGETS: [&str; 4] = ["ubuntu1804", "debian10", "centos7", "centos8"];

/// Real host keys (rsa, ecdsa, ed25519 as `ssh-keygen -A` makes them), and host certificates
/// for them signed by a throwaway CA: made once per test process.
fn key_tree() -> &'static Path {
    static KEYS: OnceLock<PathBuf> = OnceLock::new();
    KEYS.get_or_init(|| {
        let dir = tempfile::tempdir().unwrap().keep();
        std::fs::create_dir_all(dir.join("etc/ssh")).unwrap();
        run(Command::new("ssh-keygen").arg("-A").arg("-f").arg(&dir));
        run(Command::new("ssh-keygen")
            .args(["-q", "-t", "ed25519", "-N", "", "-C", "test-host-ca", "-f"])
            .arg(dir.join("host_ca")));
        for key in ["ecdsa", "ed25519", "rsa"] {
            run(Command::new("ssh-keygen")
                .args(["-q", "-s"])
                .arg(dir.join("host_ca"))
                .args([
                    "-h",
                    "-I",
                    "host1.example.test",
                    "-n",
                    "host1.example.test",
                    "-V",
                    "-5m:+30d",
                ])
                .arg(dir.join(format!("etc/ssh/ssh_host_{key}_key.pub"))));
        }
        dir
    })
}

fn run(command: &mut Command) {
    let out = command.output().expect("command runs");
    assert!(
        out.status.success(),
        "{command:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// A copy of a fixture tree to run hostcert on.
pub struct Tree {
    dir: tempfile::TempDir,
}

/// What a tree gets besides its fixture files.
#[derive(Clone, Copy, Default)]
pub struct Extras {
    /// `<key>-cert.pub` for the ecdsa, ed25519 and rsa host keys.
    pub certificates: bool,
    /// hostcert's own PAM and NSS modules (empty files: only their presence matters here).
    pub hostcert_modules: bool,
}

impl Tree {
    /// The stock tree of `target` with host keys and the distro's pam_mkhomedir.
    pub fn new(target: &str) -> Tree {
        Tree::with(&[target], Extras::default())
    }

    /// Fixture `layers` copied over each other (e.g. a target, then a shape or variant).
    pub fn with(layers: &[&str], extras: Extras) -> Tree {
        let dir = tempfile::Builder::new()
            .prefix("hostcert-tree")
            .tempdir()
            .unwrap();
        for layer in layers {
            run(Command::new("cp")
                .args(["-a", "--remove-destination"])
                .arg(fixtures().join(layer).join("."))
                .arg(dir.path()));
        }
        let tree = Tree { dir };
        for key in ["rsa", "ecdsa", "ed25519"] {
            for suffix in ["", ".pub"] {
                tree.copy_key(&format!("etc/ssh/ssh_host_{key}_key{suffix}"));
            }
            if extras.certificates {
                tree.copy_key(&format!("etc/ssh/ssh_host_{key}_key-cert.pub"));
            }
        }
        let module_dir = tree.pam_module_dir();
        tree.touch(&format!("{module_dir}/pam_mkhomedir.so"));
        if extras.hostcert_modules {
            tree.touch(&format!("{module_dir}/pam_hostcert.so"));
            let nss_dir = module_dir.trim_end_matches("/security");
            tree.touch(&format!("{nss_dir}/libnss_hostcert.so.2"));
        }
        tree
    }

    fn copy_key(&self, rel: &str) {
        let dest = self.path().join(rel);
        std::fs::copy(key_tree().join(rel), &dest).unwrap();
    }

    /// The root directory.
    pub fn path(&self) -> &Path {
        self.dir.path()
    }

    fn pam_module_dir(&self) -> String {
        let os = std::fs::read_to_string(self.path().join("etc/os-release")).unwrap_or_default();
        if os.contains("ID=debian") || os.contains("ID=ubuntu") {
            "lib/x86_64-linux-gnu/security".into()
        } else {
            "usr/lib64/security".into()
        }
    }

    /// Creates an empty file (and its directories).
    pub fn touch(&self, rel: &str) {
        let path = self.path().join(rel);
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(path, b"").unwrap();
    }

    /// Reads a file of the tree.
    pub fn read(&self, rel: &str) -> String {
        std::fs::read_to_string(self.path().join(rel)).unwrap()
    }

    /// Writes a file of the tree.
    pub fn write(&self, rel: &str, content: &str) {
        std::fs::write(self.path().join(rel), content).unwrap();
    }

    /// Runs the real `hostcert --root TREE args…`.
    pub fn hostcert(&self, args: &[&str]) -> Output {
        self.hostcert_env(args, &[])
    }

    /// Like [`Tree::hostcert`], with extra environment variables.
    pub fn hostcert_env(&self, args: &[&str], env: &[(&str, &str)]) -> Output {
        let mut command = Command::new(env!("CARGO_BIN_EXE_hostcert"));
        command
            .arg("--root")
            .arg(self.path())
            .args(args)
            .env_remove("HOSTCERT_TEST_CRASH_AFTER");
        command.envs(env.iter().copied());
        command.output().expect("hostcert runs")
    }

    /// Runs hostcert and insists on success, returning its standard output.
    pub fn ok(&self, args: &[&str]) -> String {
        let out = self.hostcert(args);
        assert!(
            out.status.success(),
            "hostcert {args:?} failed ({}): {}{}",
            out.status,
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8(out.stdout).unwrap()
    }

    /// Every file and link of the tree outside hostcert's own state and runtime directories.
    pub fn files(&self) -> BTreeMap<PathBuf, Entry> {
        let mut files = BTreeMap::new();
        collect(self.path(), self.path(), &mut files);
        files
    }
}

/// A file's bytes or a link's target, and its mode.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Entry {
    /// A regular file.
    File(Vec<u8>, u32),
    /// A symbolic link.
    Link(PathBuf),
}

fn collect(root: &Path, dir: &Path, files: &mut BTreeMap<PathBuf, Entry>) {
    use std::os::unix::fs::PermissionsExt;
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        let rel = path.strip_prefix(root).unwrap().to_path_buf();
        if rel.starts_with("var/lib/hostcert") || rel.starts_with("run") {
            continue;
        }
        let meta = std::fs::symlink_metadata(&path).unwrap();
        if meta.file_type().is_symlink() {
            files.insert(rel, Entry::Link(std::fs::read_link(&path).unwrap()));
        } else if meta.is_dir() {
            collect(root, &path, files);
        } else {
            files.insert(
                rel,
                Entry::File(std::fs::read(&path).unwrap(), meta.permissions().mode()),
            );
        }
    }
}

/// A readable diff between two snapshots of a tree: what a snapshot test records.
pub fn diff(before: &BTreeMap<PathBuf, Entry>, after: &BTreeMap<PathBuf, Entry>) -> String {
    let mut out = String::new();
    let paths: std::collections::BTreeSet<&PathBuf> = before.keys().chain(after.keys()).collect();
    for path in paths {
        let (old, new) = (before.get(path), after.get(path));
        if old == new {
            continue;
        }
        let text = |e: Option<&Entry>| match e {
            Some(Entry::File(bytes, _)) => String::from_utf8_lossy(bytes).replace('\r', "\\r"),
            Some(Entry::Link(target)) => format!("-> {}\n", target.display()),
            None => String::new(),
        };
        let (a, b) = (text(old), text(new));
        out.push_str(&format!("=== /{}\n", path.display()));
        if old.is_none() {
            out.push_str("(created)\n");
        }
        if new.is_none() {
            out.push_str("(removed)\n");
        }
        out.push_str(
            &similar::TextDiff::from_lines(&a, &b)
                .unified_diff()
                .context_radius(2)
                .to_string(),
        );
    }
    out
}
