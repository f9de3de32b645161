//! `bench-bodies` (hidden): pre-generates request bodies for `scripts/bench-sign` and
//! `scripts/bench-register`, so the load generator spends no time on tokens and every request
//! carries its own fresh token.

use std::io::{BufWriter, Write};

use anyhow::Result;
use hostcert_proto::api::{encode_blob, paths, SignRequest, CERT_TYPE_HOST};
use hostcert_proto::inventory::RegisterRequest;
use hostcert_proto::{ott, sshpop};
use rand_core::OsRng;
use ssh_key::certificate::CertType;
use ssh_key::{Algorithm, PrivateKey};

use crate::ca::{self, CertSpec};
use crate::cli::BenchArgs;
use crate::db::{self, CertRow};
use crate::layout::{Authority, Layout};

/// Tokens stay valid this long, so bodies can be generated well before the run.
const TOKEN_TTL_SECS: u64 = 3600;
const WORKERS: usize = 2;

/// Runs `bench-bodies`.
pub fn run(args: &BenchArgs) -> Result<()> {
    let layout = Layout::new(&args.dir.dir);
    let authority = layout.load_authority()?;
    let lines = match args.kind.as_str() {
        "sign" => sign_bodies(&authority, args.count)?,
        _ => register_bodies(&layout, &authority, args.count)?,
    };
    let mut out = BufWriter::new(std::fs::File::create(&args.out)?);
    for line in lines {
        writeln!(out, "{line}")?;
    }
    out.flush()?;
    Ok(())
}

/// Runs `f(i)` for `0..count` on a few threads, keeping the order.
fn parallel<F>(count: usize, f: F) -> Result<Vec<String>>
where
    F: Fn(usize) -> Result<String> + Sync,
{
    let chunk = count.div_ceil(WORKERS).max(1);
    std::thread::scope(|scope| {
        let handles: Vec<_> = (0..count)
            .step_by(chunk)
            .map(|start| {
                let f = &f;
                scope.spawn(move || {
                    (start..(start + chunk).min(count))
                        .map(f)
                        .collect::<Result<Vec<_>>>()
                })
            })
            .collect();
        let mut all = Vec::with_capacity(count);
        for h in handles {
            all.extend(h.join().map_err(|_| anyhow::anyhow!("worker panicked"))??);
        }
        Ok(all)
    })
}

fn sign_bodies(authority: &Authority, count: usize) -> Result<Vec<String>> {
    let signer = ott::OttSigner::new(&authority.provisioner)?;
    let audience = format!(
        "{}{}",
        authority.config.ca_url,
        paths::versioned(paths::SSH_SIGN)
    );
    let keys = (0..64)
        .map(|_| {
            let key = PrivateKey::random(&mut OsRng, Algorithm::Ed25519)?;
            Ok(encode_blob(&key.public_key().to_bytes()?))
        })
        .collect::<Result<Vec<_>>>()?;
    let now = hostcert_proto::now();
    let run = &hostcert_proto::random_hex_id()[..8];
    parallel(count, |i| {
        let host = format!("b{run}-{i}.bench.test");
        let claims = ott::Claims::host(
            &authority.config.provisioner,
            &audience,
            &host,
            &[],
            now,
            TOKEN_TTL_SECS,
        );
        let body = SignRequest {
            public_key: keys[i % keys.len()].clone(),
            ott: signer.issue(&claims)?,
            cert_type: CERT_TYPE_HOST.into(),
            principals: vec![host.clone()],
            key_id: host,
            ..Default::default()
        };
        Ok(serde_json::to_string(&body)?)
    })
}

fn register_bodies(layout: &Layout, authority: &Authority, count: usize) -> Result<Vec<String>> {
    let now = hostcert_proto::now();
    let run = &hostcert_proto::random_hex_id()[..8];
    let audience = sshpop::audience(&authority.config.ca_url, paths::HOSTS_REGISTER);
    // Each host needs its own certificate, recorded like any issued one.
    let hosts = parallel(count, |i| {
        let host = format!("r{run}-{i}.bench.test");
        let key = PrivateKey::random(&mut OsRng, Algorithm::Ed25519)?;
        let cert = ca::sign(
            &authority.host_ca,
            &CertSpec {
                cert_type: CertType::Host,
                serial: ca::new_serial(),
                key_id: &host,
                principals: std::slice::from_ref(&host),
                valid_after: now - ca::BACKDATE_SECS,
                valid_before: now + 24 * 3600,
                public_key: key.public_key().key_data(),
            },
        )?;
        let token = sshpop::issue(&key, &cert, &audience, now)?;
        let body = RegisterRequest {
            ott: token,
            hostname: None,
            tags: [
                ("bench".to_string(), "yes".to_string()),
                ("shard".to_string(), (i % 8).to_string()),
            ]
            .into(),
            is_bastion: false,
            bastion: None,
        };
        Ok(format!(
            "{}\t{}\t{}",
            cert.serial(),
            host,
            serde_json::to_string(&body)?
        ))
    })?;
    let mut conn = db::open(&layout.db())?;
    let tx = conn.transaction()?;
    let mut lines = Vec::with_capacity(hosts.len());
    for line in hosts {
        let mut parts = line.splitn(3, '\t');
        let (serial, host, body) = (
            parts.next().unwrap_or_default().parse()?,
            parts.next().unwrap_or_default().to_string(),
            parts.next().unwrap_or_default().to_string(),
        );
        db::insert_cert(
            &tx,
            &CertRow {
                serial,
                cert_type: CERT_TYPE_HOST,
                key_id: &host,
                principals: std::slice::from_ref(&host),
                valid_after: now - ca::BACKDATE_SECS,
                valid_before: now + 24 * 3600,
                issued_at: now,
            },
            None,
        )?;
        lines.push(body);
    }
    tx.commit()?;
    Ok(lines)
}
