//! Bad input: each case exits with its documented code, says why, and changes no byte.

mod common;

use std::process::Command;

use common::Tree;

fn assert_refused(tree: &Tree, args: &[&str], code: i32, message: &str) {
    let before = tree.files();
    let state_before = std::fs::read(tree.path().join("var/lib/hostcert/state.json")).ok();
    let out = tree.hostcert(args);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(code), "{args:?}: {stderr}");
    assert!(
        stderr.contains(message),
        "{args:?}: {stderr:?} lacks {message:?}"
    );
    assert_eq!(before, tree.files(), "{args:?} changed files");
    assert_eq!(
        state_before,
        std::fs::read(tree.path().join("var/lib/hostcert/state.json")).ok(),
        "{args:?} changed the state"
    );
}

#[test]
fn unknown_distro_is_refused() {
    let tree = Tree::new("debian10");
    tree.write(
        "etc/os-release",
        "ID=alpine\nVERSION_ID=3.19.1\nPRETTY_NAME=\"Alpine Linux v3.19\"\n",
    );
    assert_refused(
        &tree,
        &["activate"],
        5,
        "unsupported system: Alpine Linux v3.19",
    );
    let tree = Tree::new("centos7");
    std::fs::remove_file(tree.path().join("etc/os-release")).unwrap();
    assert_refused(&tree, &["activate"], 5, "cannot tell which system this is");
}

#[test]
fn too_old_a_release_is_refused() {
    let tree = Tree::new("ubuntu1804");
    tree.write(
        "etc/os-release",
        "ID=ubuntu\nVERSION_ID=\"16.04\"\nPRETTY_NAME=\"Ubuntu 16.04.7 LTS\"\n",
    );
    assert_refused(
        &tree,
        &["activate"],
        5,
        "older than the oldest supported ubuntu (18.04)",
    );
}

#[test]
fn missing_sshd_config_is_refused() {
    let tree = Tree::new("debian10");
    std::fs::remove_file(tree.path().join("etc/ssh/sshd_config")).unwrap();
    assert_refused(
        &tree,
        &["activate"],
        2,
        "/etc/ssh/sshd_config does not exist",
    );
}

#[test]
fn corrupt_state_file_is_refused_by_every_command() {
    let tree = Tree::new("debian10");
    tree.ok(&["activate", "--no-reload"]);
    tree.write(
        "var/lib/hostcert/state.json",
        "{\"format\": 1, \"files\": {\"/etc/x\": tru",
    );
    assert_refused(&tree, &["activate"], 2, "state.json is corrupt");
    assert_refused(&tree, &["deactivate"], 2, "state.json is corrupt");
    assert_refused(&tree, &["status"], 2, "state.json is corrupt");
}

#[test]
fn unwritable_file_rolls_back_what_was_written() {
    // sshd_config is written last: make it immutable, so the files written before it must be
    // put back.
    let tree = Tree::new("centos7");
    let sshd_config = tree.path().join("etc/ssh/sshd_config");
    let chattr = |flag: &str| {
        let status = Command::new("chattr")
            .arg(flag)
            .arg(&sshd_config)
            .status()
            .unwrap();
        assert!(
            status.success(),
            "chattr {flag} needs root and a file system with attributes"
        );
    };
    chattr("+i");
    // The rename fails on the immutable target; the temp file beside it is removed.
    let before = tree.files();
    let out = tree.hostcert(&["activate", "--no-reload"]);
    chattr("-i");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(
        stderr.contains("/etc/ssh/sshd_config: Operation not permitted"),
        "{stderr}"
    );
    assert_eq!(before, tree.files());
    assert!(!tree.path().join("var/lib/hostcert/state.json").exists());
}

#[test]
fn usage_errors_are_bad_input() {
    let tree = Tree::new("debian10");
    assert_refused(&tree, &["activate", "--bogus"], 2, "unexpected argument");
    assert_refused(&tree, &["frobnicate"], 2, "unrecognized subcommand");
}

#[test]
fn help_documents_the_exit_codes() {
    let tree = Tree::new("debian10");
    for args in [
        &["--help"][..],
        &["activate", "--help"],
        &["deactivate", "--help"],
        &["status", "--help"],
    ] {
        let out = tree.ok(args);
        for line in [
            "3  validation failed",
            "4  not root",
            "5  unsupported system",
            "2  bad input",
        ] {
            assert!(out.contains(line), "{args:?}: {out}");
        }
    }
}

#[test]
fn the_running_system_needs_root() {
    // As nobody, on the real root: refused before anything is read or written.
    let out = Command::new("setpriv")
        .args(["--reuid=65534", "--regid=65534", "--clear-groups"])
        .arg(env!("CARGO_BIN_EXE_hostcert"))
        .arg("activate")
        .output()
        .unwrap();
    assert_eq!(
        out.status.code(),
        Some(4),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(String::from_utf8_lossy(&out.stderr).contains("must run as root"));
}
