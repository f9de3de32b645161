//! activate / deactivate on the real stock files of the four targets and on awkward shapes:
//! snapshots of every change, byte-exact revert, idempotence, admin edits kept.

mod common;

use common::{diff, Extras, Tree, TARGETS};

/// The shapes, each layered over the Debian 10 tree.
const SHAPES: [&str; 6] = [
    "trailing-match",
    "no-final-newline",
    "existing-trusted-ca",
    "include",
    "tabs-odd-spacing",
    "crlf",
];

fn trees() -> Vec<(String, Tree)> {
    let mut trees: Vec<(String, Tree)> = TARGETS
        .iter()
        .map(|t| (t.to_string(), Tree::new(t)))
        .collect();
    for shape in SHAPES {
        let layer = format!("shapes/{shape}");
        trees.push((
            shape.to_string(),
            Tree::with(&["debian10", &layer], Extras::default()),
        ));
    }
    trees
}

#[test]
fn activate_snapshots_and_reverts_byte_for_byte() {
    for (name, tree) in trees() {
        let before = tree.files();
        tree.ok(&["activate", "host1.example.test", "--no-reload"]);
        let activated = tree.files();
        insta::assert_snapshot!(format!("activate-{name}"), diff(&before, &activated));
        tree.ok(&["deactivate", "--no-reload"]);
        assert_eq!(
            before,
            tree.files(),
            "{name}: deactivate must give back the original bytes"
        );
    }
}

#[test]
fn activate_with_certificates_and_hostcert_modules() {
    let extras = Extras {
        certificates: true,
        hostcert_modules: true,
    };
    for target in ["ubuntu1804", "debian10", "centos7"] {
        let tree = Tree::with(&[target], extras);
        let before = tree.files();
        tree.ok(&["activate", "host1.example.test", "--no-reload"]);
        insta::assert_snapshot!(
            format!("activate-full-{target}"),
            diff(&before, &tree.files())
        );
        tree.ok(&["deactivate", "--no-reload"]);
        assert_eq!(before, tree.files(), "{target}");
    }
}

#[test]
fn second_activate_changes_nothing() {
    for (name, tree) in trees() {
        tree.ok(&["activate", "--no-reload"]);
        let once = tree.files();
        let state = tree.read("var/lib/hostcert/state.json");
        let out = tree.ok(&["activate", "--no-reload"]);
        assert!(out.contains("nothing to change"), "{name}: {out}");
        assert_eq!(once, tree.files(), "{name}");
        assert_eq!(state, tree.read("var/lib/hostcert/state.json"), "{name}");
    }
}

#[test]
fn admin_edits_between_activate_and_deactivate_are_kept() {
    for (name, tree) in trees() {
        let before = tree.files();
        tree.ok(&["activate", "--no-reload"]);
        let sshd = tree.read("etc/ssh/sshd_config");
        tree.write(
            "etc/ssh/sshd_config",
            &format!("{sshd}# admin was here\nClientAliveInterval 300\n"),
        );
        let pam = tree.read("etc/pam.d/sshd");
        tree.write("etc/pam.d/sshd", &format!("# admin pam note\n{pam}"));

        let status = tree.ok(&["status"]);
        assert!(
            status.contains("changed since activation"),
            "{name}: {status}"
        );
        let out = tree.ok(&["deactivate", "--no-reload"]);
        assert!(
            out.contains("removed hostcert's lines, kept the rest"),
            "{name}: {out}"
        );

        let sshd_after = tree.read("etc/ssh/sshd_config");
        assert!(!sshd_after.contains("hostcert"), "{name}: {sshd_after}");
        assert!(
            sshd_after.ends_with("# admin was here\nClientAliveInterval 300\n"),
            "{name}"
        );
        let original = match &before[std::path::Path::new("etc/ssh/sshd_config")] {
            common::Entry::File(bytes, _) => String::from_utf8_lossy(bytes).into_owned(),
            other => panic!("{other:?}"),
        };
        assert_eq!(
            sshd_after,
            format!("{original}# admin was here\nClientAliveInterval 300\n"),
            "{name}"
        );
        let pam_after = tree.read("etc/pam.d/sshd");
        assert!(
            pam_after.starts_with("# admin pam note\n") && !pam_after.contains("hostcert"),
            "{name}"
        );
    }
}

#[test]
fn reactivation_after_an_admin_edit_keeps_it_on_deactivate() {
    let tree = Tree::new("debian10");
    tree.ok(&["activate", "--no-reload"]);
    let sshd = tree.read("etc/ssh/sshd_config");
    tree.write(
        "etc/ssh/sshd_config",
        &format!("{sshd}ClientAliveInterval 300\n"),
    );
    tree.ok(&["activate", "--no-reload"]);
    tree.ok(&["deactivate", "--no-reload"]);
    let after = tree.read("etc/ssh/sshd_config");
    assert!(after.ends_with("ClientAliveInterval 300\n") && !after.contains("hostcert"));
}

#[test]
fn dry_run_prints_diffs_and_changes_nothing() {
    let tree = Tree::new("centos7");
    let before = tree.files();
    let out = tree.ok(&["activate", "--dry-run"]);
    assert!(
        out.contains("+++ b/etc/ssh/sshd_config") && out.contains("+TrustedUserCAKeys"),
        "{out}"
    );
    assert!(
        out.contains("+++ b/etc/pam.d/sshd") && out.contains("pam_mkhomedir.so"),
        "{out}"
    );
    assert_eq!(before, tree.files());
    assert!(!tree.path().join("var/lib/hostcert").exists());

    tree.ok(&["activate", "--no-reload"]);
    let active = tree.files();
    let out = tree.ok(&["deactivate", "--dry-run"]);
    assert!(out.contains("-TrustedUserCAKeys"), "{out}");
    assert_eq!(active, tree.files());
}

#[test]
fn deactivate_when_never_activated_is_a_no_op() {
    let tree = Tree::new("ubuntu1804");
    let before = tree.files();
    let out = tree.ok(&["deactivate"]);
    assert!(out.contains("not active"), "{out}");
    assert_eq!(before, tree.files());
    assert!(!tree.path().join("var/lib/hostcert").exists());
}

#[test]
fn block_sits_at_the_top_and_never_after_a_match() {
    let tree = Tree::with(&["debian10", "shapes/trailing-match"], Extras::default());
    tree.ok(&["activate", "--no-reload"]);
    let text = tree.read("etc/ssh/sshd_config");
    let block = text.find("# BEGIN hostcert").unwrap();
    let first_directive = text
        .lines()
        .position(|l| !l.trim().is_empty() && !l.starts_with('#'))
        .unwrap();
    assert!(text
        .lines()
        .nth(first_directive)
        .unwrap()
        .starts_with("HostKey"));
    assert!(block < text.find("Match User").unwrap());
}

#[test]
fn listed_host_keys_are_kept_and_none_are_added() {
    // CentOS lists its keys: the block must add no HostKey.
    let tree = Tree::new("centos7");
    tree.ok(&["activate", "--no-reload"]);
    let text = tree.read("etc/ssh/sshd_config");
    let block: Vec<&str> = text
        .lines()
        .skip_while(|l| !l.starts_with("# BEGIN hostcert"))
        .take_while(|l| !l.starts_with("# END hostcert"))
        .collect();
    assert!(!block.iter().any(|l| l.starts_with("HostKey")), "{block:?}");
    // Debian lists none: every existing default key is listed, so none is dropped.
    let tree = Tree::new("debian10");
    tree.ok(&["activate", "--no-reload"]);
    let text = tree.read("etc/ssh/sshd_config");
    for key in ["rsa", "ecdsa", "ed25519"] {
        assert!(
            text.contains(&format!("HostKey /etc/ssh/ssh_host_{key}_key\n")),
            "{key}"
        );
    }
}

#[test]
fn admins_user_ca_keys_are_carried_and_status_says_so() {
    let tree = Tree::with(
        &["debian10", "shapes/existing-trusted-ca"],
        Extras::default(),
    );
    let out = tree.ok(&["activate", "--no-reload"]);
    assert!(
        out.contains("also carries the 1 key(s) of /etc/ssh/site_user_ca.pub"),
        "{out}"
    );
    let site_key = tree.read("etc/ssh/site_user_ca.pub");
    let ours = tree.read("etc/hostcert/trusted_user_ca_keys.pub");
    assert!(ours.contains(site_key.trim()), "{ours}");
    let status = tree.ok(&["status"]);
    assert!(
        status.contains("/etc/ssh/site_user_ca.pub: its keys are carried"),
        "{status}"
    );
    let json: serde_json::Value = serde_json::from_str(&tree.ok(&["status", "--json"])).unwrap();
    assert_eq!(json["admin_user_ca"]["carried"], true);
    assert_eq!(
        json["sshd"]["trusted_user_ca_keys"],
        "/etc/hostcert/trusted_user_ca_keys.pub"
    );
}

#[test]
fn status_reports_files_certificates_and_warnings() {
    let tree = Tree::with(
        &["ubuntu1804"],
        Extras {
            certificates: true,
            hostcert_modules: false,
        },
    );
    let json: serde_json::Value = serde_json::from_str(&tree.ok(&["status", "--json"])).unwrap();
    assert_eq!(json["active"], false);
    tree.ok(&["activate", "other.example.test", "--no-reload"]);
    let json: serde_json::Value = serde_json::from_str(&tree.ok(&["status", "--json"])).unwrap();
    assert_eq!(json["active"], true);
    assert_eq!(json["hostname"], "other.example.test");
    let files = json["files"].as_array().unwrap();
    let state_of = |p: &str| {
        files
            .iter()
            .find(|f| f["path"] == p)
            .map(|f| f["state"].clone())
            .unwrap()
    };
    assert_eq!(state_of("/etc/ssh/sshd_config"), "active");
    assert_eq!(state_of("/etc/nsswitch.conf"), "inactive");
    let certs = json["certificates"].as_array().unwrap();
    assert_eq!(certs.len(), 3);
    assert_eq!(certs[0]["principals"][0], "host1.example.test");
    let warnings = json["warnings"].to_string();
    assert!(
        warnings.contains("other.example.test is not among its principals"),
        "{warnings}"
    );
    let sshd = &json["sshd"];
    assert_eq!(sshd["host_certificates"].as_array().unwrap().len(), 3);
}

#[test]
fn owner_mode_and_selinux_label_are_kept() {
    use std::os::unix::fs::{MetadataExt, PermissionsExt};
    let tree = Tree::new("centos7");
    let path = tree.path().join("etc/ssh/sshd_config");
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600)).unwrap();
    std::os::unix::fs::chown(&path, Some(1234), Some(4321)).unwrap();
    let label = "system_u:object_r:etc_t:s0";
    xattr::set(&path, "security.selinux", label.as_bytes()).unwrap();
    let check = |when: &str| {
        let meta = std::fs::metadata(&path).unwrap();
        assert_eq!(meta.permissions().mode() & 0o7777, 0o600, "{when}");
        assert_eq!((meta.uid(), meta.gid()), (1234, 4321), "{when}");
        let found = xattr::get(&path, "security.selinux").unwrap().unwrap();
        assert_eq!(
            String::from_utf8_lossy(&found).trim_end_matches('\0'),
            label,
            "{when}"
        );
    };
    tree.ok(&["activate", "--no-reload"]);
    assert!(tree
        .read("etc/ssh/sshd_config")
        .contains("# BEGIN hostcert"));
    check("after activate");
    tree.ok(&["deactivate", "--no-reload"]);
    check("after deactivate");
}

#[test]
fn symlinks_are_followed_not_replaced() {
    // The admin keeps pam.d/sshd elsewhere and links it, with an absolute link.
    let tree = Tree::new("debian10");
    std::fs::create_dir_all(tree.path().join("etc/site")).unwrap();
    std::fs::rename(
        tree.path().join("etc/pam.d/sshd"),
        tree.path().join("etc/site/pam-sshd"),
    )
    .unwrap();
    std::os::unix::fs::symlink("/etc/site/pam-sshd", tree.path().join("etc/pam.d/sshd")).unwrap();
    let before = tree.files();
    tree.ok(&["activate", "--no-reload"]);
    let link = tree.path().join("etc/pam.d/sshd");
    assert!(std::fs::symlink_metadata(&link)
        .unwrap()
        .file_type()
        .is_symlink());
    assert!(tree
        .read("etc/site/pam-sshd")
        .contains("pam_mkhomedir.so skel=/etc/skel"));
    let status = tree.ok(&["status"]);
    assert!(status.contains("/etc/site/pam-sshd"), "{status}");
    tree.ok(&["deactivate", "--no-reload"]);
    assert_eq!(before, tree.files());
}

#[test]
fn existing_mkhomedir_and_hostcert_sources_are_not_duplicated() {
    let tree = Tree::with(
        &["debian10"],
        Extras {
            certificates: false,
            hostcert_modules: true,
        },
    );
    let pam = tree.read("etc/pam.d/sshd");
    tree.write(
        "etc/pam.d/sshd",
        &format!("{pam}session optional pam_mkhomedir.so umask=0022\n"),
    );
    let nss = tree
        .read("etc/nsswitch.conf")
        .replace("passwd:         files", "passwd:         files hostcert");
    tree.write("etc/nsswitch.conf", &nss);
    let before = tree.files();
    tree.ok(&["activate", "--no-reload"]);
    let after = tree.files();
    assert_eq!(
        before.get(std::path::Path::new("etc/pam.d/sshd")),
        after.get(std::path::Path::new("etc/pam.d/sshd"))
    );
    let nss = tree.read("etc/nsswitch.conf");
    assert_eq!(nss.matches("hostcert").count(), 2, "{nss}");
    assert!(nss.contains("group:          files hostcert\n"), "{nss}");
}

#[test]
fn hostcerts_own_file_edited_by_the_admin_is_replaced_and_still_removed() {
    let tree = Tree::new("debian10");
    let before = tree.files();
    tree.ok(&["activate", "--no-reload"]);
    tree.write(
        "etc/hostcert/trusted_user_ca_keys.pub",
        "ssh-ed25519 AAAA admin-pasted\n",
    );
    let status = tree.ok(&["status"]);
    assert!(
        status.contains("trusted_user_ca_keys.pub") && status.contains("changed since activation"),
        "{status}"
    );
    tree.ok(&["activate", "--no-reload"]);
    assert!(!tree
        .read("etc/hostcert/trusted_user_ca_keys.pub")
        .contains("admin-pasted"));
    tree.ok(&["deactivate", "--no-reload"]);
    let after = tree.files();
    assert!(!after.contains_key(std::path::Path::new(
        "etc/hostcert/trusted_user_ca_keys.pub"
    )));
    assert_eq!(before, after);
}
