//! Inventory (register/unregister/hosts) and fleet enrollment tokens against a real server.

mod common;

use common::*;
use hostcert_proto::api::paths;
use hostcert_proto::inventory::{self, CODE_NOT_REGISTERED, CODE_UNKNOWN_BASTION};
use serde_json::{json, Value};
use ssh_key::{Certificate, PrivateKey};

struct Host {
    key: PrivateKey,
    cert: Certificate,
}

fn host(s: &Server, name: &str) -> Host {
    let key = ed25519();
    let cert = s.host_cert(&key, name);
    Host { key, cert }
}

fn register(s: &Server, h: &Host, body: Value) -> (u16, Value) {
    let mut body = body;
    body["ott"] = s.sshpop(&h.key, &h.cert, paths::HOSTS_REGISTER).into();
    s.post(paths::HOSTS_REGISTER, &body)
}

fn unregister(s: &Server, h: &Host, hostname: Option<&str>) -> (u16, Value) {
    let mut body = json!({"ott": s.sshpop(&h.key, &h.cert, paths::HOSTS_UNREGISTER)});
    if let Some(name) = hostname {
        body["hostname"] = name.into();
    }
    s.post(paths::HOSTS_UNREGISTER, &body)
}

/// hostname → (tags, is_bastion, bastion) from `hosts --json`.
fn inventory(s: &Server) -> Vec<(String, Value, bool, Value)> {
    s.hosts_json()
        .as_array()
        .unwrap()
        .iter()
        .map(|h| {
            (
                h["hostname"].as_str().unwrap().to_string(),
                h["tags"].clone(),
                h["is_bastion"].as_bool().unwrap(),
                h["bastion"].clone(),
            )
        })
        .collect()
}

#[test]
fn register_replace_bastions_unregister() {
    let s = Server::start();
    let bastion = host(&s, "bastion.test");
    let web = host(&s, "web.test");

    let (status, body) = register(
        &s,
        &bastion,
        json!({"tags": {"role": "bastion"}, "is_bastion": true}),
    );
    assert_eq!(status, 201, "{body}");
    assert_eq!(body["serial"], bastion.cert.serial().to_string());
    let (status, body) = register(
        &s,
        &web,
        json!({"tags": {"env": "prod", "role": "web"}, "bastion": "bastion.test"}),
    );
    assert_eq!(status, 201, "{body}");
    assert_eq!(
        inventory(&s),
        vec![
            (
                "bastion.test".into(),
                json!({"role": "bastion"}),
                true,
                Value::Null
            ),
            (
                "web.test".into(),
                json!({"env": "prod", "role": "web"}),
                false,
                json!("bastion.test")
            ),
        ]
    );
    let registered_at = s.hosts_json()[1]["registered_at"].clone();

    // A re-run replaces tags and bastion data.
    let (status, _) = register(&s, &web, json!({"tags": {"env": "dev"}}));
    assert_eq!(status, 201);
    assert_eq!(
        inventory(&s)[1],
        ("web.test".into(), json!({"env": "dev"}), false, Value::Null)
    );
    assert_eq!(s.hosts_json()[1]["registered_at"], registered_at);

    // --bastion must name a registered bastion; bad input changes nothing.
    let (status, body) = register(&s, &web, json!({"bastion": "nope.test"}));
    assert_eq!(
        (status, body["code"].as_str()),
        (400, Some(CODE_UNKNOWN_BASTION)),
        "{body}"
    );
    let (status, _) = register(&s, &web, json!({"bastion": "web.test"}));
    assert_eq!(status, 400);
    let (status, _) = register(
        &s,
        &web,
        json!({"is_bastion": true, "bastion": "bastion.test"}),
    );
    assert_eq!(status, 400);
    let (status, _) = register(&s, &web, json!({"tags": {"bad tag": "x"}}));
    assert_eq!(status, 400);
    assert_eq!(
        inventory(&s)[1],
        ("web.test".into(), json!({"env": "dev"}), false, Value::Null)
    );

    // Table output and tag filters, CLI and API (admin credential).
    let table = stdout(&s.cmd(&["hosts", "--tag", "env=dev"]));
    assert!(
        table.contains("web.test") && !table.contains("bastion.test"),
        "{table}"
    );
    let admin = std::fs::read_to_string(s.ca_dir().join("admin.credential")).unwrap();
    let filter = hostcert_proto::tags::parse_all(["env=dev"]).unwrap();
    let r = s
        .client
        .get(format!("{}{}", s.url, inventory::hosts_path(&filter)))
        .bearer_auth(admin.trim())
        .send()
        .unwrap();
    assert_eq!(r.status().as_u16(), 200);
    let listed: inventory::HostsResponse = r.json().unwrap();
    assert_eq!(listed.hosts.len(), 1);
    assert_eq!(listed.hosts[0].hostname, "web.test");
    assert_eq!(s.get(paths::HOSTS).0, 401);
    let r = s
        .client
        .get(format!("{}/hosts", s.url))
        .bearer_auth("wrong")
        .send()
        .unwrap();
    assert_eq!(r.status().as_u16(), 401);

    // /ssh/hosts carries the inventory tags.
    let (_, hosts) = s.get("/1.0/ssh/hosts");
    assert_eq!(
        hosts["hosts"][1],
        json!({"hid": "", "hostname": "web.test",
        "host_tags": [{"ID": "env", "Name": "env", "Value": "dev"}]})
    );

    // Unregister, then unregister again: the distinct 404.
    let (status, body) = unregister(&s, &web, None);
    assert_eq!((status, body), (200, json!({"hostname": "web.test"})));
    assert_eq!(inventory(&s).len(), 1);
    let (status, body) = unregister(&s, &web, None);
    assert_eq!(
        (status, body["code"].as_str()),
        (404, Some(CODE_NOT_REGISTERED)),
        "{body}"
    );
}

#[test]
fn hosts_act_only_on_themselves_and_replays_fail() {
    let s = Server::start();
    let a = host(&s, "a.test");
    let b = host(&s, "b.test");
    assert_eq!(register(&s, &b, json!({"tags": {"owner": "b"}})).0, 201);

    let (status, body) = unregister(&s, &a, Some("b.test"));
    assert_eq!(status, 403, "{body}");
    let (status, _) = register(
        &s,
        &a,
        json!({"hostname": "b.test", "tags": {"owner": "a"}}),
    );
    assert_eq!(status, 403);
    assert_eq!(
        inventory(&s),
        vec![("b.test".into(), json!({"owner": "b"}), false, Value::Null)]
    );

    // Replay of a register token.
    let token = s.sshpop(&a.key, &a.cert, paths::HOSTS_REGISTER);
    assert_eq!(s.post(paths::HOSTS_REGISTER, &json!({"ott": token})).0, 201);
    let (status, body) = s.post(paths::HOSTS_REGISTER, &json!({"ott": token}));
    assert_eq!(status, 401, "{body}");
    // A renew token cannot register; a revoked certificate cannot either.
    let renew = s.sshpop(&a.key, &a.cert, paths::SSH_RENEW);
    assert_eq!(s.post(paths::HOSTS_REGISTER, &json!({"ott": renew})).0, 401);
    assert!(s
        .cmd(&["revoke", &a.cert.serial().to_string()])
        .status
        .success());
    assert_eq!(register(&s, &a, json!({})).0, 401);
    assert_eq!(unregister(&s, &a, None).0, 401);
}

#[test]
fn enrollment_token_pattern_tags_exhaustion_revocation() {
    let s = Server::start();
    let (id, token) = s.enrollment_token("*.prod.test", 2, &["env=prod", "team=infra"]);

    // Pattern mismatch: refused, and no use counted.
    let key = ed25519();
    let (status, body) = s.sign(&key, &token, &["web1.dev.test"]);
    assert_eq!(status, 403, "{body}");
    let (status, _) = s.sign(&key, &token, &["web1.prod.test", "evil.test"]);
    assert_eq!(status, 403);
    let (status, _) = s.sign(&key, &token, &["a.b.prod.test"]);
    assert_eq!(status, 403);

    let (status, body) = s.sign(&key, &token, &["web1.prod.test"]);
    assert_eq!(status, 201, "{body}");
    let cert = crt(&body);
    assert_eq!(cert.key_id(), "web1.prod.test");
    // Default tags apply at registration, under the host's own; also after a renewal.
    let h = Host { key, cert };
    let (status, body) = register(&s, &h, json!({"tags": {"team": "web"}}));
    assert_eq!(status, 201, "{body}");
    assert_eq!(body["tags"], json!({"env": "prod", "team": "web"}));
    let (_, renewed) = s.post(
        paths::SSH_RENEW,
        &json!({"ott": s.sshpop(&h.key, &h.cert, paths::SSH_RENEW)}),
    );
    let h = Host {
        cert: crt(&renewed),
        key: h.key,
    };
    let (_, body) = register(&s, &h, json!({}));
    assert_eq!(body["tags"], json!({"env": "prod", "team": "infra"}));
    assert_eq!(body["serial"], h.cert.serial().to_string());

    // Second use, then exhausted.
    assert_eq!(s.sign(&ed25519(), &token, &["web2.prod.test"]).0, 201);
    let (status, body) = s.sign(&ed25519(), &token, &["web3.prod.test"]);
    assert_eq!(status, 401);
    assert!(
        body["message"].as_str().unwrap().contains("exhausted"),
        "{body}"
    );

    // A revoked token signs nothing.
    let (id2, token2) = s.enrollment_token("*.prod.test", 100, &[]);
    assert_eq!(s.sign(&ed25519(), &token2, &["web4.prod.test"]).0, 201);
    let out = s.cmd(&["token", "revoke", &id2]);
    assert!(out.status.success(), "{}", stderr(&out));
    let (status, body) = s.sign(&ed25519(), &token2, &["web5.prod.test"]);
    assert_eq!(status, 401);
    assert!(
        body["message"].as_str().unwrap().contains("revoked"),
        "{body}"
    );
    assert!(!s.cmd(&["token", "revoke", "nope"]).status.success());
    assert_ne!(id, id2);

    // Bad token arguments change nothing.
    assert!(!s
        .cmd(&["token", "--enrollment", "--pattern", "a b"])
        .status
        .success());
    assert!(!s
        .cmd(&[
            "token",
            "--enrollment",
            "--pattern",
            "*.x",
            "--tag",
            "a=1",
            "--tag",
            "a=2"
        ])
        .status
        .success());
    assert!(!s.cmd(&["token", "--pattern", "*.x"]).status.success());
}

#[test]
fn enrollment_use_count_is_exact_under_concurrency() {
    let s = Server::start();
    let (_, token) = s.enrollment_token("*.fleet.test", 150, &["fleet=yes"]);
    let keys: Vec<PrivateKey> = (0..16).map(|_| ed25519()).collect();
    let results: Vec<(u16, Option<Certificate>)> = std::thread::scope(|scope| {
        let handles: Vec<_> = (0..16)
            .map(|t| {
                let (s, token, key) = (&s, &token, &keys[t]);
                scope.spawn(move || {
                    (0..200)
                        .filter(|i| i % 16 == t)
                        .map(|i| {
                            let name = format!("h{i}.fleet.test");
                            let (status, body) = s.sign(key, token, &[&name]);
                            (status, (status == 201).then(|| crt(&body)))
                        })
                        .collect::<Vec<_>>()
                })
            })
            .collect();
        handles
            .into_iter()
            .flat_map(|h| h.join().unwrap())
            .collect()
    });
    let ok = results.iter().filter(|(s, _)| *s == 201).count();
    let refused = results.iter().filter(|(s, _)| *s == 401).count();
    assert_eq!((ok, refused), (150, 50));

    // Every signed host registers exactly once, in parallel too.
    let certs: Vec<(usize, Certificate)> = results
        .into_iter()
        .filter_map(|(_, c)| c)
        .map(|c| {
            let key = keys
                .iter()
                .position(|k| k.public_key().key_data() == c.public_key())
                .unwrap();
            (key, c)
        })
        .collect();
    std::thread::scope(|scope| {
        for chunk in certs.chunks(10) {
            let (s, keys) = (&s, &keys);
            scope.spawn(move || {
                for (k, cert) in chunk {
                    let h = Host {
                        key: keys[*k].clone(),
                        cert: cert.clone(),
                    };
                    assert_eq!(register(s, &h, json!({})).0, 201);
                }
            });
        }
    });
    let inv = s.hosts_json();
    assert_eq!(inv.as_array().unwrap().len(), 150);
    assert!(inv
        .as_array()
        .unwrap()
        .iter()
        .all(|h| h["tags"] == json!({"fleet": "yes"})));
}
