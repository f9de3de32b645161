//! Crash safety: the agent is killed right after each durable step of activate and deactivate;
//! from every such point `activate` completes and `deactivate` fully reverts.

mod common;

use common::{Extras, Tree};

const CRASH: &str = "HOSTCERT_TEST_CRASH_AFTER";

fn extras() -> Extras {
    Extras {
        certificates: true,
        hostcert_modules: true,
    }
}

/// Runs `args` crashing after step `n`; returns whether it crashed.
fn crashed(tree: &Tree, args: &[&str], n: u32) -> bool {
    let out = tree.hostcert_env(args, &[(CRASH, &n.to_string())]);
    if out.status.success() {
        return false;
    }
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("aborting"),
        "step {n}: failed without the crash hook: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    true
}

#[test]
fn activate_killed_at_every_step_then_activate_or_deactivate() {
    for target in ["centos7", "debian10"] {
        let reference = Tree::with(&[target], extras());
        let original = reference.files();
        reference.ok(&["activate", "--no-reload"]);
        let activated = reference.files();

        let mut steps = 0;
        for n in 1.. {
            let tree = Tree::with(&[target], extras());
            if !crashed(&tree, &["activate", "--no-reload"], n) {
                assert_eq!(
                    activated,
                    tree.files(),
                    "{target}: a run that did not crash"
                );
                break;
            }
            steps = n;
            let resumed = Tree::with(&[target], extras());
            assert!(crashed(&resumed, &["activate", "--no-reload"], n));
            resumed.ok(&["activate", "--no-reload"]);
            assert_eq!(
                activated,
                resumed.files(),
                "{target}: activate after a crash at step {n}"
            );
            resumed.ok(&["deactivate", "--no-reload"]);
            assert_eq!(
                original,
                resumed.files(),
                "{target}: activate, deactivate after a crash at step {n}"
            );

            tree.ok(&["deactivate", "--no-reload"]);
            assert_eq!(
                original,
                tree.files(),
                "{target}: deactivate after a crash at step {n}"
            );
        }
        assert!(
            steps >= 3,
            "{target}: activate has at least intent, writes and commit ({steps})"
        );
    }
}

#[test]
fn deactivate_killed_at_every_step_then_deactivate() {
    let reference = Tree::with(&["centos7"], extras());
    let original = reference.files();
    for n in 1.. {
        let tree = Tree::with(&["centos7"], extras());
        tree.ok(&["activate", "--no-reload"]);
        if !crashed(&tree, &["deactivate", "--no-reload"], n) {
            assert_eq!(original, tree.files());
            break;
        }
        tree.ok(&["deactivate", "--no-reload"]);
        assert_eq!(
            original,
            tree.files(),
            "deactivate after a crash at step {n}"
        );
        assert!(n < 50, "deactivate never finished");
    }
}
