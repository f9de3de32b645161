//! The real sshd validates hostcert's output: each activated stock sshd_config passes
//! `sshd -t`, and a configuration sshd refuses makes activate exit 3 with nothing changed.
//!
//! The targets' own sshd cannot run here, so the tree borrows this machine's: inside a private
//! mount namespace, the machine's `/usr` is layered under the tree's own `usr` (overlayfs) and
//! its users are copied in, so `/usr/sbin/sshd` in the tree is this machine's OpenSSH while
//! `/etc` is the target's. hostcert then finds an sshd inside `--root` and runs `sshd -t` there
//! itself (chrooted), exactly as it does on a host.

mod common;

use std::path::Path;
use std::process::{Command, Output};

use common::{Tree, TARGETS};

/// Gives the tree this machine's programs and users.
fn borrow_host(tree: &Tree) {
    for file in ["passwd", "group"] {
        std::fs::copy(
            Path::new("/etc").join(file),
            tree.path().join("etc").join(file),
        )
        .unwrap();
    }
    for dir in ["usr", "dev", "run"] {
        std::fs::create_dir_all(tree.path().join(dir)).unwrap();
    }
    for link in ["bin", "sbin", "lib", "lib64"] {
        let path = tree.path().join(link);
        if !path.exists() {
            std::os::unix::fs::symlink(format!("usr/{link}"), path).unwrap();
        }
    }
}

/// Runs `hostcert --root TREE args` with the machine's `/usr` under the tree's.
fn hostcert_over_host(tree: &Tree, args: &str) -> Output {
    let layers = tempfile::tempdir().unwrap();
    let script = format!(
        r#"set -e
L={layers}
R={tree}
mount -t tmpfs tmpfs $L
# The machine's files under the tree's own (a Debian tree has a real lib/ for PAM modules).
for d in usr lib lib64 bin sbin; do
  [ -d $R/$d ] && [ ! -L $R/$d ] || continue
  mkdir -p $L/$d/upper $L/$d/work
  mount -t overlay overlay -o lowerdir=$R/$d:$(realpath /$d),upperdir=$L/$d/upper,workdir=$L/$d/work $R/$d
done
mount --rbind /dev $R/dev
mount -t tmpfs tmpfs $R/run
exec {hostcert} --root $R {args}
"#,
        layers = layers.path().display(),
        tree = tree.path().display(),
        hostcert = env!("CARGO_BIN_EXE_hostcert"),
    );
    Command::new("unshare")
        .args(["--mount", "--propagation", "private", "sh", "-c", &script])
        .output()
        .unwrap()
}

fn require_sshd() {
    assert!(
        Path::new("/usr/sbin/sshd").exists(),
        "these tests need openssh-server installed on this machine (.ci/run installs it)"
    );
}

#[test]
fn activated_stock_files_pass_real_sshd_t() {
    require_sshd();
    for target in TARGETS {
        let tree = Tree::new(target);
        borrow_host(&tree);
        let out = hostcert_over_host(&tree, "activate host1.example.test --no-reload");
        let stdout = String::from_utf8_lossy(&out.stdout);
        assert!(
            out.status.success(),
            "{target}: {stdout}{}",
            String::from_utf8_lossy(&out.stderr)
        );
        assert!(
            stdout.contains("validated with /usr/sbin/sshd -t"),
            "{target}: {stdout}"
        );
        assert!(tree
            .read("etc/ssh/sshd_config")
            .contains("TrustedUserCAKeys /etc/hostcert/"));
    }
}

#[test]
fn a_configuration_sshd_refuses_changes_nothing() {
    require_sshd();
    let tree = Tree::new("debian10");
    let config = tree.read("etc/ssh/sshd_config");
    tree.write(
        "etc/ssh/sshd_config",
        &format!("{config}NoSuchOption yes\n"),
    );
    borrow_host(&tree);
    let before = tree.files();
    let out = hostcert_over_host(&tree, "activate --no-reload");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(3), "{stderr}");
    assert!(
        stderr.contains("validation failed, nothing changed"),
        "{stderr}"
    );
    assert!(
        stderr.contains("NoSuchOption"),
        "sshd's own reason is shown: {stderr}"
    );
    assert_eq!(before, tree.files());
}

#[test]
fn without_sshd_in_the_root_validation_is_skipped_and_said() {
    let tree = Tree::new("centos8");
    let out = tree.ok(&["activate", "--no-reload"]);
    assert!(
        out.contains("validation skipped:") && out.contains("has no /usr/sbin/sshd"),
        "{out}"
    );
}
