//! Inventory and enrollment against a real `hostcert-server`: register with tags, re-runs
//! replace, bastions, unregister; `enroll` from the environment or the seed file, resumed after
//! a crash at every step; what one host may not do to another; a fleet of 200 hosts enrolling
//! at once.

mod common;

use std::collections::BTreeMap;
use std::process::Output;

use common::ca::{host_tree, text, Ca};
use common::Tree;
use serde_json::Value;

fn host<'a>(hosts: &'a [Value], name: &str) -> Option<&'a Value> {
    hosts.iter().find(|h| h["hostname"] == name)
}

fn enroll_env(ca: &Ca, token: &str) -> Vec<(&'static str, String)> {
    let mut env = ca.env();
    env.push(("HOSTCERT_TOKEN", token.to_string()));
    env
}

fn run_env(tree: &Tree, args: &[&str], env: &[(&'static str, String)]) -> Output {
    let env: Vec<(&str, &str)> = env.iter().map(|(k, v)| (*k, v.as_str())).collect();
    tree.hostcert_env(args, &env)
}

#[test]
fn register_replace_bastions_unregister() {
    let ca = Ca::start();
    let bastion = ca.certified("bastion1.example.test");
    let web = ca.certified("web1.example.test");

    // A bastion that is not registered yet cannot be named.
    let out = web.hostcert(&["register", "--bastion", "bastion1.example.test"]);
    assert_eq!(out.status.code(), Some(7), "{}", text(&out));

    bastion.ok(&["register", "--is-bastion", "--tag", "env=prod"]);
    web.ok(&[
        "register",
        "--tag",
        "env=prod",
        "--tag",
        "role=web",
        "--bastion",
        "bastion1.example.test",
    ]);
    let hosts = ca.hosts();
    let b = host(&hosts, "bastion1.example.test").unwrap();
    assert_eq!(b["is_bastion"], true);
    let w = host(&hosts, "web1.example.test").unwrap();
    assert_eq!(w["tags"], serde_json::json!({"env": "prod", "role": "web"}));
    assert_eq!(w["bastion"], "bastion1.example.test");
    assert_eq!(w["is_bastion"], false);

    // A re-run replaces all tags and the bastion data.
    web.ok(&["register", "--tag", "env=dev"]);
    let hosts = ca.hosts();
    let w = host(&hosts, "web1.example.test").unwrap();
    assert_eq!(w["tags"], serde_json::json!({"env": "dev"}));
    assert_eq!(w["bastion"], Value::Null);
    assert_eq!(hosts.len(), 2);

    assert!(web
        .ok(&["unregister"])
        .contains("unregistered web1.example.test"));
    assert!(host(&ca.hosts(), "web1.example.test").is_none());
    let out = web.ok(&["unregister"]);
    assert!(out.contains("does not know this host"), "{out}");
}

#[test]
fn bad_register_input_is_refused() {
    let ca = Ca::start();
    let web = ca.certified("web1.example.test");
    for args in [
        vec!["register", "--tag", "env"],
        vec!["register", "--tag", "e nv=x"],
        vec!["register", "--tag", "env=a", "--tag", "env=b"],
        vec!["register", "--is-bastion", "--bastion", "b1"],
    ] {
        let out = web.hostcert(&args);
        assert_eq!(out.status.code(), Some(2), "{args:?}: {}", text(&out));
    }
    assert!(ca.hosts().is_empty());
}

#[test]
fn a_host_cannot_act_on_another() {
    let ca = Ca::start();
    let a = ca.certified("a.example.test");
    let b = ca.certified("b.example.test");
    b.ok(&["register", "--tag", "env=prod"]);
    let out = a.hostcert(&[
        "register",
        "--hostname",
        "b.example.test",
        "--tag",
        "env=evil",
    ]);
    assert_eq!(out.status.code(), Some(7), "{}", text(&out));
    let out = a.hostcert(&["unregister", "--hostname", "b.example.test"]);
    assert_eq!(out.status.code(), Some(7), "{}", text(&out));
    let hosts = ca.hosts();
    assert_eq!(
        host(&hosts, "b.example.test").unwrap()["tags"],
        serde_json::json!({"env": "prod"})
    );
}

#[test]
fn enroll_from_environment_only() {
    let ca = Ca::start();
    let (_, token) = ca.enrollment_token("*.prod.example.test", 5, &["env=prod"]);
    let tree = host_tree("web1.prod.example.test");
    let mut env = enroll_env(&ca, &token);
    env.push(("HOSTCERT_TAGS", "role=web".into()));
    env.push(("HOSTCERT_PRINCIPALS", "alias.prod.example.test".into()));
    let check = run_env(&tree, &["enroll", "--check"], &env);
    assert!(text(&check).contains("would run"), "{}", text(&check));
    assert!(!tree.path().join("etc/hostcert/ca.json").exists());
    let out = run_env(&tree, &["enroll", "--no-reload"], &env);
    assert!(out.status.success(), "{}", text(&out));
    assert!(tree.path().join("var/lib/hostcert/enrolled").exists());
    assert!(tree
        .read("etc/ssh/sshd_config")
        .contains("HostCertificate /etc/ssh/ssh_host_ed25519_key-cert.pub"));
    let hosts = ca.hosts();
    assert_eq!(hosts.len(), 1);
    assert_eq!(
        hosts[0]["tags"],
        serde_json::json!({"env": "prod", "role": "web"})
    );
    let status = tree.ok(&["status", "--json"]);
    assert!(status.contains("alias.prod.example.test"), "{status}");
    let status: Value = serde_json::from_str(&status).unwrap();
    assert_eq!(status["enrollment"]["state"], "enrolled", "{status}");
    assert!(status["enrollment"]["last_failure"].is_null(), "{status}");
    // Renewal of an active host re-runs activate, which finds nothing to change.
    let sshd_config = tree.read("etc/ssh/sshd_config");
    tree.ok(&["renew", "--force", "--no-reload"]);
    assert_eq!(tree.read("etc/ssh/sshd_config"), sshd_config);
    // A second run finds everything done.
    let again = run_env(&tree, &["enroll", "--no-reload"], &env);
    assert!(
        again.status.success() && !text(&again).contains(" done:"),
        "{}",
        text(&again)
    );
}

fn write_seed(tree: &Tree, ca: &Ca, token: &str, extra: &str) {
    let seed = format!(
        "# seed\nHOSTCERT_CA_URL={}\nHOSTCERT_FINGERPRINT={}\nHOSTCERT_TOKEN={token}\n{extra}",
        ca.url, ca.fingerprint
    );
    std::fs::create_dir_all(tree.path().join("etc/hostcert")).unwrap();
    tree.write("etc/hostcert/seed", &seed);
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(
        tree.path().join("etc/hostcert/seed"),
        std::fs::Permissions::from_mode(0o600),
    )
    .unwrap();
}

#[test]
fn enroll_from_seed_file_only() {
    let ca = Ca::start();
    let token = ca.token("web2.example.test", &[]);
    let tree = host_tree("web2.example.test");
    write_seed(&tree, &ca, &token, "HOSTCERT_TAGS=role=db\n");
    let settings = tree.ok(&["settings"]);
    assert!(
        settings.contains("********") && !settings.contains(&token),
        "{settings}"
    );
    let out = tree.hostcert(&["enroll", "--no-reload"]);
    assert!(out.status.success(), "{}", text(&out));
    let seed = tree.read("etc/hostcert/seed");
    assert!(
        !seed.contains("HOSTCERT_TOKEN")
            && seed.contains("HOSTCERT_CA_URL")
            && seed.contains("# seed"),
        "{seed}"
    );
    assert_eq!(ca.hosts()[0]["tags"], serde_json::json!({"role": "db"}));
}

#[test]
fn enroll_refuses_a_readable_seed_and_an_unreachable_ca() {
    let mut ca = Ca::start();
    let tree = host_tree("web3.example.test");
    write_seed(&tree, &ca, &ca.token("web3.example.test", &[]), "");
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(
        tree.path().join("etc/hostcert/seed"),
        std::fs::Permissions::from_mode(0o644),
    )
    .unwrap();
    let before = tree.files();
    let out = tree.hostcert(&["enroll", "--no-reload"]);
    assert_eq!(out.status.code(), Some(2), "{}", text(&out));
    assert!(text(&out).contains("chmod 600"));
    std::fs::set_permissions(
        tree.path().join("etc/hostcert/seed"),
        std::fs::Permissions::from_mode(0o600),
    )
    .unwrap();
    ca.stop();
    let before_down = tree.files();
    let out = tree.hostcert(&["enroll", "--no-reload"]);
    assert_eq!(out.status.code(), Some(6), "{}", text(&out));
    assert!(
        before_down == tree.files(),
        "{}",
        common::diff(&before_down, &tree.files())
    );
    drop(before);
    // status says why enrollment is pending (the record lives under /var/lib/hostcert).
    let status: Value = serde_json::from_str(&tree.ok(&["status", "--json"])).unwrap();
    assert_eq!(status["enrollment"]["state"], "pending", "{status}");
    assert_eq!(status["enrollment"]["last_failure"]["exit"], 6, "{status}");
    let text_status = tree.ok(&["status"]);
    assert!(
        text_status.contains("enrollment pending: the last attempt")
            && text_status.contains("hostcert-enroll.timer retries"),
        "{text_status}"
    );
}

#[test]
fn enroll_resumes_after_a_crash_at_every_step() {
    let ca = Ca::start();
    let (_, token) = ca.enrollment_token("*.example.test", 10, &[]);
    let mut end_states = Vec::new();
    for (i, step) in ["bootstrap", "certificate", "activate", "register"]
        .iter()
        .enumerate()
    {
        let name = format!("crash{i}.example.test");
        let tree = host_tree(&name);
        write_seed(&tree, &ca, &token, "HOSTCERT_TAGS=env=prod\n");
        let crashed = tree.hostcert_env(
            &["enroll", "--no-reload"],
            &[("HOSTCERT_TEST_CRASH_AFTER", &format!("enroll:{step}"))],
        );
        assert!(!crashed.status.success(), "{step}: {}", text(&crashed));
        assert!(!tree.path().join("var/lib/hostcert/enrolled").exists());
        let out = tree.hostcert(&["enroll", "--no-reload"]);
        assert!(out.status.success(), "{step}: {}", text(&out));
        assert!(!tree.read("etc/hostcert/seed").contains("HOSTCERT_TOKEN"));
        assert!(tree.path().join("var/lib/hostcert/enrolled").exists());
        let mut files = tree.files();
        files.retain(|p, _| {
            p.starts_with("etc/ssh/sshd_config") || p.starts_with("etc/hostcert/seed")
        });
        end_states.push(
            files
                .values()
                .map(|e| {
                    format!("{e:?}")
                        .replace(&name, "HOST")
                        .replace(&ca.url, "URL")
                })
                .collect::<Vec<_>>(),
        );
    }
    assert!(
        end_states.windows(2).all(|w| w[0] == w[1]),
        "different end states"
    );
    let hosts = ca.hosts();
    assert_eq!(hosts.len(), 4, "{hosts:?}");
}

#[test]
fn fleet_token_revoked_exhausted_or_mismatched_signs_nothing() {
    let ca = Ca::start();
    let (id, revoked) = ca.enrollment_token("*.example.test", 10, &[]);
    ca.cmd(&["token", "revoke", &id]);
    let (_, once) = ca.enrollment_token("*.example.test", 1, &[]);
    let (_, narrow) = ca.enrollment_token("*.prod.example.test", 10, &[]);
    let first = host_tree("one.example.test");
    let out = run_env(&first, &["enroll", "--no-reload"], &enroll_env(&ca, &once));
    assert!(out.status.success(), "{}", text(&out));
    for (token, host, why) in [
        (&revoked, "r.example.test", "revoked"),
        (&once, "two.example.test", "exhausted"),
        (&narrow, "web.dev.example.test", "pattern"),
    ] {
        let tree = host_tree(host);
        let out = run_env(
            &tree,
            &[
                "bootstrap",
                "--ca-url",
                &ca.url,
                "--fingerprint",
                &ca.fingerprint,
            ],
            &[],
        );
        assert!(out.status.success());
        let before = tree.files();
        let out = run_env(
            &tree,
            &["certificate", "--no-reload"],
            &[("HOSTCERT_TOKEN", token.clone())],
        );
        assert_eq!(out.status.code(), Some(7), "{why}: {}", text(&out));
        assert!(before == tree.files(), "{why}: files changed");
    }
    assert_eq!(ca.hosts().len(), 1);
}

#[test]
fn two_hundred_hosts_enroll_at_once() {
    const HOSTS: usize = 200;
    const PARALLEL: usize = 8;
    let ca = Ca::start();
    let (_, token) = ca.enrollment_token("*.fleet.example.test", HOSTS as u32, &["fleet=yes"]);
    let trees: Vec<Tree> = (0..HOSTS)
        .map(|i| host_tree(&format!("h{i}.fleet.example.test")))
        .collect();
    let next = std::sync::atomic::AtomicUsize::new(0);
    let env = enroll_env(&ca, &token);
    let failures = std::sync::Mutex::new(Vec::new());
    std::thread::scope(|s| {
        for _ in 0..PARALLEL {
            s.spawn(|| loop {
                let i = next.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
                let Some(tree) = trees.get(i) else { break };
                let out = run_env(tree, &["enroll", "--no-reload"], &env);
                if !out.status.success() {
                    failures.lock().unwrap().push(text(&out));
                }
            });
        }
    });
    let failures = failures.into_inner().unwrap();
    assert!(
        failures.is_empty(),
        "{} failed, first: {}",
        failures.len(),
        failures[0]
    );
    let hosts = ca.hosts();
    let mut count: BTreeMap<String, usize> = BTreeMap::new();
    for h in &hosts {
        *count
            .entry(h["hostname"].as_str().unwrap().to_string())
            .or_default() += 1;
        assert_eq!(h["tags"]["fleet"], "yes");
    }
    assert_eq!(count.len(), HOSTS);
    assert!(count.values().all(|&n| n == 1));
    // Exactly HOSTS uses: one more host is refused.
    let extra = host_tree("extra.fleet.example.test");
    let out = run_env(&extra, &["enroll", "--no-reload"], &env);
    assert_eq!(out.status.code(), Some(7), "{}", text(&out));
}

#[test]
fn a_replayed_inventory_token_is_refused() {
    use hostcert::paths::Root;
    use hostcert_proto::api::paths;
    let ca = Ca::start();
    let tree = ca.certified("replay.example.test");
    let root = Root::new(tree.path());
    let client = hostcert::config::client(&root).unwrap();
    let (key, cert) = hostcert::inventory::identity(&root).unwrap();
    let aud = client.audience(paths::HOSTS_REGISTER);
    let ott = hostcert_proto::sshpop::issue(&key, &cert, &aud, hostcert_proto::now()).unwrap();
    let request = hostcert_proto::inventory::RegisterRequest {
        ott,
        ..Default::default()
    };
    client.register(&request).unwrap();
    let err = client.register(&request).unwrap_err();
    assert!(
        matches!(err, hostcert::error::Error::Refused { status: 401, .. }),
        "{err}"
    );
    assert_eq!(ca.hosts().len(), 1);
}

#[test]
fn enroll_with_new_answers_moves_to_another_ca() {
    let old = Ca::start();
    let new = Ca::start();
    let name = "move.example.test";
    let tree = host_tree(name);
    let out = run_env(
        &tree,
        &["enroll", "--no-reload"],
        &enroll_env(&old, &old.token(name, &[])),
    );
    assert!(out.status.success(), "{}", text(&out));
    // The new CA refuses the first token: the host is pinned to it, and the old CA's
    // certificates no longer count as done.
    let out = run_env(
        &tree,
        &["enroll", "--no-reload"],
        &enroll_env(&new, "not-a-token"),
    );
    assert_eq!(out.status.code(), Some(7), "{}", text(&out));
    let out = run_env(
        &tree,
        &["enroll", "--no-reload"],
        &enroll_env(&new, &new.token(name, &[])),
    );
    assert!(out.status.success(), "{}", text(&out));
    assert!(text(&out).contains("certificate  done"), "{}", text(&out));
    let host_ca =
        ssh_key::PrivateKey::read_openssh_file(&new.dir().join("ssh_host_ca_key")).unwrap();
    let cert = ssh_key::Certificate::from_openssh(
        tree.read("etc/ssh/ssh_host_ed25519_key-cert.pub").trim(),
    )
    .unwrap();
    cert.validate([&host_ca.public_key().fingerprint(ssh_key::HashAlg::Sha256)])
        .unwrap();
    assert_eq!(new.hosts().len(), 1);
}
