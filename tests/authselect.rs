//! CentOS 8: `/etc/nsswitch.conf` belongs to authselect, so hostcert goes through a custom
//! profile instead of editing the link's target. authselect exists only on CentOS 8+, so these
//! tests observe the one function every authselect call goes through; the recorder keeps
//! authselect's own record (`authselect.conf`) the way `authselect select` does.

mod common;

use std::cell::RefCell;
use std::path::Path;

use common::{Extras, Tree};
use hostcert::activation::{activate, deactivate, Options};
use hostcert::paths::Root;
use hostcert::system::{Output, System};

#[derive(Default)]
struct Recorder {
    calls: RefCell<Vec<String>>,
}

impl System for Recorder {
    fn run(&self, root: &Root, program: &str, args: &[&str]) -> hostcert::error::Result<Output> {
        self.calls
            .borrow_mut()
            .push(format!("{program} {}", args.join(" ")));
        if program == "/usr/bin/authselect" && args[0] == "select" {
            let conf: String = args[1..].iter().map(|a| format!("{a}\n")).collect();
            std::fs::write(root.join("/etc/authselect/authselect.conf"), conf).unwrap();
        }
        Ok(Output {
            success: true,
            stdout: String::new(),
            stderr: String::new(),
        })
    }
}

fn options() -> Options {
    Options {
        no_reload: true,
        ..Options::default()
    }
}

fn modules() -> Extras {
    Extras {
        certificates: false,
        hostcert_modules: true,
    }
}

#[test]
fn custom_profile_is_created_selected_and_undone() {
    for (layers, features) in [
        (&["centos8"][..], ""),
        (
            &["centos8", "variants/centos8-anaconda-fingerprint"][..],
            " with-fingerprint with-silent-lastlog",
        ),
    ] {
        let tree = Tree::with(layers, modules());
        let root = Root::new(tree.path());
        let before = tree.files();
        let recorder = Recorder::default();
        let report = activate(&root, &recorder, &options()).unwrap();
        assert_eq!(
            *recorder.calls.borrow(),
            vec![
                "/usr/bin/authselect create-profile hostcert --base-on sssd --symlink-meta --symlink-pam --symlink-dconf".to_string(),
                format!("/usr/bin/authselect select custom/hostcert{features}"),
            ]
        );
        assert_eq!(report.commands.len(), 2);
        // The authselect-owned files are untouched, and the link is still a link.
        assert_eq!(
            tree.read("etc/authselect/nsswitch.conf"),
            String::from_utf8_lossy(match &before[Path::new("etc/authselect/nsswitch.conf")] {
                common::Entry::File(bytes, _) => bytes,
                _ => unreachable!(),
            })
        );
        assert!(
            std::fs::symlink_metadata(tree.path().join("etc/nsswitch.conf"))
                .unwrap()
                .file_type()
                .is_symlink()
        );
        let profile = tree.read("etc/authselect/custom/hostcert/nsswitch.conf");
        insta::assert_snapshot!("centos8-custom-profile-nsswitch", profile);

        // Again: nothing to create or select.
        let again = Recorder::default();
        let report = activate(&root, &again, &options()).unwrap();
        assert!(
            again.calls.borrow().is_empty() && !report.changed(),
            "{:?}",
            again.calls
        );

        let undo = Recorder::default();
        deactivate(&root, &undo, &options()).unwrap();
        assert_eq!(
            *undo.calls.borrow(),
            vec![format!("/usr/bin/authselect select sssd{features}")]
        );
        assert!(!tree.path().join("etc/authselect/custom/hostcert").exists());
        assert_eq!(before, tree.files());
    }
}

#[test]
fn without_authselect_the_file_is_edited_directly() {
    // CentOS 8 where authselect never ran: nsswitch.conf is a plain file.
    let tree = Tree::with(&["centos8", "variants/centos8-no-authselect"], modules());
    let link = tree.path().join("etc/nsswitch.conf");
    std::fs::remove_file(&link).unwrap();
    std::fs::copy(tree.path().join("etc/authselect/nsswitch.conf"), &link).unwrap();
    std::fs::remove_file(tree.path().join("etc/authselect/authselect.conf")).unwrap();
    let root = Root::new(tree.path());
    let before = tree.files();
    let recorder = Recorder::default();
    activate(&root, &recorder, &options()).unwrap();
    assert!(recorder.calls.borrow().is_empty());
    let text = tree.read("etc/nsswitch.conf");
    assert!(
        text.contains("passwd:     sss files systemd hostcert\n"),
        "{text}"
    );
    assert!(
        text.contains("group:      sss files systemd hostcert\n"),
        "{text}"
    );
    deactivate(&root, &recorder, &options()).unwrap();
    assert_eq!(before, tree.files());
}

#[test]
fn authselect_link_without_a_record_is_left_alone_with_a_note() {
    let tree = Tree::with(&["centos8"], modules());
    std::fs::remove_file(tree.path().join("etc/authselect/authselect.conf")).unwrap();
    let recorder = Recorder::default();
    let report = activate(&Root::new(tree.path()), &recorder, &options()).unwrap();
    assert!(recorder.calls.borrow().is_empty());
    assert!(
        report
            .notes
            .iter()
            .any(|n| n.contains("belongs to authselect")),
        "{:?}",
        report.notes
    );
}
