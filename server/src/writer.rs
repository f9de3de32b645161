//! Group commit: one writer thread owns the write connection, takes every queued job, applies
//! them in one `synchronous=FULL` transaction (each in its own savepoint, so one refused job
//! does not undo the others) and answers each job only after the commit is on disk.
//!
//! Every decision that must be atomic is taken here: single use of token IDs, fleet token use
//! counting, revocation, and inventory consistency. Certificates are signed before the job is
//! queued; a refused job's certificate is simply never returned.

use std::collections::BTreeMap;
use std::sync::mpsc;
use std::thread::JoinHandle;

use hostcert_proto::inventory::HostRecord;
use rusqlite::{params, Connection, OptionalExtension, TransactionBehavior};
use tokio::sync::oneshot;

use crate::db::{self, serial_to_sql, CertRow};

/// Most jobs in one transaction.
const MAX_BATCH: usize = 1024;
/// How often expired token IDs are forgotten.
const PRUNE_EVERY_SECS: u64 = 60;

/// Proof that authorised a job, consumed atomically with it.
pub enum Auth {
    /// A single-use sign token.
    Ott {
        /// Token ID.
        jti: String,
        /// Token expiry, to forget the ID afterwards.
        exp: u64,
    },
    /// A fleet enrollment token (one use counted).
    Enrollment {
        /// Token ID.
        id: String,
    },
    /// An SSHPOP token.
    Sshpop(Sshpop),
}

/// An SSHPOP proof: single-use token for a certificate that must not be revoked.
pub struct Sshpop {
    /// Token ID.
    pub jti: String,
    /// Token expiry.
    pub exp: u64,
    /// Serial of the presenting certificate.
    pub serial: u64,
}

/// An issued certificate to record.
pub struct NewCert {
    /// Serial.
    pub serial: u64,
    /// `"host"` or `"user"`.
    pub cert_type: &'static str,
    /// Key ID.
    pub key_id: String,
    /// Principals.
    pub principals: Vec<String>,
    /// Unix seconds.
    pub valid_after: u64,
    /// Unix seconds.
    pub valid_before: u64,
    /// Set on renewals: the inventory entry follows the new serial.
    pub renews: Option<u64>,
}

/// An inventory registration.
pub struct Registration {
    /// Host name.
    pub hostname: String,
    /// The host's own tags (fleet defaults are merged under them).
    pub tags: BTreeMap<String, String>,
    /// Is a bastion.
    pub is_bastion: bool,
    /// Reached through this bastion.
    pub bastion: Option<String>,
}

/// Work for the writer.
pub enum Job {
    /// Record an issued certificate.
    Issue(Auth, NewCert),
    /// Register (or re-register) a host.
    Register(Sshpop, Registration),
    /// Remove a host.
    Unregister(Sshpop, String),
}

/// A job's successful result.
#[derive(Debug)]
pub enum Done {
    /// Certificate recorded.
    Issued,
    /// Host registered.
    Registered(HostRecord),
    /// Host removed.
    Unregistered,
}

/// Why a job was refused.
#[derive(Debug, thiserror::Error)]
pub enum Refused {
    /// The token ID was used before.
    #[error("token already used")]
    Replay,
    /// The presenting certificate is revoked.
    #[error("certificate {0} has been revoked")]
    Revoked(u64),
    /// The fleet token cannot be used (unknown, revoked, expired, exhausted).
    #[error("enrollment token {0}")]
    Enrollment(String),
    /// `bastion` does not name a registered bastion.
    #[error("{0:?} is not a registered bastion")]
    UnknownBastion(String),
    /// Unregister of a host not in the inventory.
    #[error("host {0:?} is not registered")]
    NotRegistered(String),
    /// Database failure.
    #[error("database error: {0}")]
    Db(String),
    /// The writer has stopped (shutdown).
    #[error("the server is shutting down")]
    Closed,
}

impl From<rusqlite::Error> for Refused {
    fn from(e: rusqlite::Error) -> Self {
        Refused::Db(e.to_string())
    }
}

impl From<anyhow::Error> for Refused {
    fn from(e: anyhow::Error) -> Self {
        Refused::Db(e.to_string())
    }
}

type Reply = oneshot::Sender<Result<Done, Refused>>;

enum Msg {
    Job(Job, u64, Reply),
    Stop,
}

/// Handle to the writer thread.
pub struct Writer {
    tx: mpsc::Sender<Msg>,
}

/// Joins the writer thread after [`Writer::stop`].
pub struct WriterThread(JoinHandle<()>);

impl Writer {
    /// Starts the writer thread on `conn`.
    pub fn start(conn: Connection) -> std::io::Result<(Writer, WriterThread)> {
        let (tx, rx) = mpsc::channel();
        let handle = std::thread::Builder::new()
            .name("db-writer".into())
            .spawn(move || run(conn, rx))?;
        Ok((Writer { tx }, WriterThread(handle)))
    }

    /// Queues `job` (at time `now`) and waits for its commit.
    pub async fn submit(&self, job: Job, now: u64) -> Result<Done, Refused> {
        let (reply, rx) = oneshot::channel();
        self.tx
            .send(Msg::Job(job, now, reply))
            .map_err(|_| Refused::Closed)?;
        rx.await.map_err(|_| Refused::Closed)?
    }

    /// Asks the thread to finish the jobs queued so far and exit.
    pub fn stop(&self) {
        let _ = self.tx.send(Msg::Stop);
    }
}

impl WriterThread {
    /// Waits for the thread to exit.
    pub fn join(self) {
        let _ = self.0.join();
    }
}

fn run(mut conn: Connection, rx: mpsc::Receiver<Msg>) {
    let mut last_prune = 0;
    let mut stopping = false;
    while !stopping {
        let Ok(first) = rx.recv() else { break };
        let mut batch = Vec::new();
        for msg in std::iter::once(first).chain(std::iter::from_fn(|| rx.try_recv().ok())) {
            match msg {
                Msg::Job(job, now, reply) => batch.push((job, now, reply)),
                Msg::Stop => {
                    stopping = true;
                    break;
                }
            }
            if batch.len() >= MAX_BATCH {
                break;
            }
        }
        let results = apply_batch(&mut conn, &batch);
        let newest = batch.iter().map(|(_, now, _)| *now).max().unwrap_or(0);
        for ((_, _, reply), result) in batch.into_iter().zip(results) {
            let _ = reply.send(result);
        }
        if newest >= last_prune + PRUNE_EVERY_SECS {
            last_prune = newest;
            prune(&conn, newest);
        }
    }
    tracing::debug!("database writer stopped");
}

/// Token IDs are only needed until the token could no longer pass the time check.
fn prune(conn: &Connection, now: u64) {
    let cutoff = now.saturating_sub(hostcert_proto::LEEWAY_SECS + 60) as i64;
    if let Err(e) = conn.execute("DELETE FROM used_tokens WHERE expires_at < ?1", [cutoff]) {
        tracing::warn!("pruning used token IDs: {e}");
    }
}

fn apply_batch(conn: &mut Connection, batch: &[(Job, u64, Reply)]) -> Vec<Result<Done, Refused>> {
    let fail_all = |e: &dyn std::fmt::Display| {
        tracing::error!("database transaction failed: {e}");
        batch
            .iter()
            .map(|_| Err(Refused::Db(e.to_string())))
            .collect()
    };
    let mut tx = match conn.transaction_with_behavior(TransactionBehavior::Immediate) {
        Ok(tx) => tx,
        Err(e) => return fail_all(&e),
    };
    let mut results = Vec::with_capacity(batch.len());
    for (job, now, _) in batch {
        let result = tx.savepoint().map_err(Refused::from).and_then(|mut sp| {
            let r = apply(&sp, job, *now);
            if r.is_ok() {
                sp.commit()?;
            } else {
                sp.rollback()?;
            }
            r
        });
        results.push(result);
    }
    match tx.commit() {
        Ok(()) => results,
        Err(e) => fail_all(&e),
    }
}

fn use_token_id(conn: &Connection, jti: &str, exp: u64) -> Result<(), Refused> {
    let n = conn
        .prepare_cached("INSERT OR IGNORE INTO used_tokens (jti, expires_at) VALUES (?1, ?2)")?
        .execute(params![jti, exp as i64])?;
    if n == 1 {
        Ok(())
    } else {
        Err(Refused::Replay)
    }
}

fn check_not_revoked(conn: &Connection, serial: u64) -> Result<(), Refused> {
    let revoked: Option<Option<i64>> = conn
        .prepare_cached("SELECT revoked_at FROM certs WHERE serial = ?1")?
        .query_row([serial_to_sql(serial)], |r| r.get(0))
        .optional()?;
    match revoked {
        Some(Some(_)) => Err(Refused::Revoked(serial)),
        _ => Ok(()),
    }
}

fn use_enrollment(conn: &Connection, id: &str, now: u64) -> Result<(), Refused> {
    let n = conn
        .prepare_cached(
            "UPDATE enrollment_tokens SET used = used + 1
             WHERE id = ?1 AND revoked_at IS NULL AND used < max_uses AND expires_at + ?3 >= ?2",
        )?
        .execute(params![id, now as i64, hostcert_proto::LEEWAY_SECS as i64])?;
    if n == 1 {
        return Ok(());
    }
    let row: Option<(Option<i64>, i64, i64)> = conn
        .query_row(
            "SELECT revoked_at, used, max_uses FROM enrollment_tokens WHERE id = ?1",
            [id],
            |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)),
        )
        .optional()?;
    Err(Refused::Enrollment(match row {
        None => "is unknown to this CA".into(),
        Some((Some(_), _, _)) => "has been revoked".into(),
        Some((None, used, max)) if used >= max => format!("is exhausted ({used} of {max} uses)"),
        Some(_) => "has expired".into(),
    }))
}

/// Consumes an SSHPOP proof; returns the fleet token ID the certificate descends from, if any.
fn consume_sshpop(conn: &Connection, proof: &Sshpop) -> Result<Option<String>, Refused> {
    use_token_id(conn, &proof.jti, proof.exp)?;
    check_not_revoked(conn, proof.serial)?;
    Ok(conn
        .prepare_cached("SELECT enrollment_id FROM certs WHERE serial = ?1")?
        .query_row([serial_to_sql(proof.serial)], |r| r.get(0))
        .optional()?
        .flatten())
}

/// Consumes `auth`; returns the fleet token ID the identity descends from, if any.
fn consume(conn: &Connection, auth: &Auth, now: u64) -> Result<Option<String>, Refused> {
    match auth {
        Auth::Ott { jti, exp } => use_token_id(conn, jti, *exp).map(|_| None),
        Auth::Enrollment { id } => use_enrollment(conn, id, now).map(|_| Some(id.clone())),
        Auth::Sshpop(proof) => consume_sshpop(conn, proof),
    }
}

fn apply(conn: &Connection, job: &Job, now: u64) -> Result<Done, Refused> {
    match job {
        Job::Issue(auth, cert) => {
            let enrollment = consume(conn, auth, now)?;
            let row = CertRow {
                serial: cert.serial,
                cert_type: cert.cert_type,
                key_id: &cert.key_id,
                principals: &cert.principals,
                valid_after: cert.valid_after,
                valid_before: cert.valid_before,
                issued_at: now,
            };
            db::insert_cert(conn, &row, enrollment.as_deref())?;
            if let Some(old) = cert.renews {
                conn.prepare_cached(
                    "UPDATE hosts SET serial = ?1, last_seen = ?3 WHERE serial = ?2",
                )?
                .execute(params![
                    serial_to_sql(cert.serial),
                    serial_to_sql(old),
                    now as i64
                ])?;
            }
            Ok(Done::Issued)
        }
        Job::Register(proof, reg) => {
            let enrollment = consume_sshpop(conn, proof)?;
            if let Some(bastion) = &reg.bastion {
                let is_bastion: Option<bool> = conn
                    .prepare_cached("SELECT is_bastion FROM hosts WHERE hostname = ?1")?
                    .query_row([bastion], |r| r.get(0))
                    .optional()?;
                if is_bastion != Some(true) {
                    return Err(Refused::UnknownBastion(bastion.clone()));
                }
            }
            let mut tags = match enrollment {
                Some(id) => conn
                    .prepare_cached("SELECT tags FROM enrollment_tokens WHERE id = ?1")?
                    .query_row([id], |r| r.get::<_, String>(0))
                    .optional()?
                    .and_then(|t| serde_json::from_str(&t).ok())
                    .unwrap_or_default(),
                None => BTreeMap::new(),
            };
            tags.extend(reg.tags.clone());
            conn.prepare_cached(
                "INSERT INTO hosts (hostname, tags, is_bastion, bastion, registered_at, last_seen, serial)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?5, ?6)
                 ON CONFLICT (hostname) DO UPDATE SET tags = ?2, is_bastion = ?3, bastion = ?4,
                     last_seen = ?5, serial = ?6",
            )?
            .execute(params![
                reg.hostname,
                serde_json::to_string(&tags).map_err(|e| Refused::Db(e.to_string()))?,
                reg.is_bastion,
                reg.bastion,
                now as i64,
                serial_to_sql(proof.serial),
            ])?;
            let record = conn
                .prepare_cached(
                    "SELECT hostname, tags, is_bastion, bastion, registered_at, last_seen, serial
                     FROM hosts WHERE hostname = ?1",
                )?
                .query_row([&reg.hostname], db::host_from_row)?;
            Ok(Done::Registered(record))
        }
        Job::Unregister(proof, hostname) => {
            consume_sshpop(conn, proof)?;
            let n = conn
                .prepare_cached("DELETE FROM hosts WHERE hostname = ?1")?
                .execute([hostname])?;
            if n == 0 {
                return Err(Refused::NotRegistered(hostname.clone()));
            }
            Ok(Done::Unregistered)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cert(serial: u64) -> NewCert {
        NewCert {
            serial,
            cert_type: "host",
            key_id: format!("h{serial}"),
            principals: vec![format!("h{serial}")],
            valid_after: 0,
            valid_before: 100,
            renews: None,
        }
    }

    #[test]
    fn refused_jobs_do_not_undo_their_batch_and_uses_are_exact() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("db");
        let conn = db::open(&path).unwrap();
        db::insert_enrollment(
            &conn,
            &db::NewEnrollment {
                id: "fleet",
                pattern: "*",
                max_uses: 3,
                tags: &BTreeMap::new(),
                created_at: 0,
                expires_at: 1000,
            },
        )
        .unwrap();
        let (writer, thread) = Writer::start(db::open(&path).unwrap()).unwrap();
        let writer = std::sync::Arc::new(writer);
        let rt = tokio::runtime::Builder::new_current_thread()
            .build()
            .unwrap();
        let results: Vec<Result<Done, Refused>> = rt.block_on(async {
            // Queued at once so they share batches: 5 fleet uses of 3, 2 uses of one jti.
            let jobs = (1..=5)
                .map(|i| Job::Issue(Auth::Enrollment { id: "fleet".into() }, cert(i)))
                .chain((6..=7).map(|i| {
                    Job::Issue(
                        Auth::Ott {
                            jti: "once".into(),
                            exp: 100,
                        },
                        cert(i),
                    )
                }));
            let tasks: Vec<_> = jobs
                .map(|j| {
                    let w = writer.clone();
                    tokio::spawn(async move { w.submit(j, 10).await })
                })
                .collect();
            let mut out = Vec::new();
            for t in tasks {
                out.push(t.await.unwrap());
            }
            out
        });
        let fleet_ok = results[..5].iter().filter(|r| r.is_ok()).count();
        let once_ok = results[5..].iter().filter(|r| r.is_ok()).count();
        assert_eq!((fleet_ok, once_ok), (3, 1));
        assert!(results[..5]
            .iter()
            .any(|r| matches!(r, Err(Refused::Enrollment(_)))));
        assert!(results[5..]
            .iter()
            .any(|r| matches!(r, Err(Refused::Replay))));
        writer.stop();
        thread.join();
        let count: i64 = conn
            .query_row("SELECT count(*) FROM certs", [], |r| r.get(0))
            .unwrap();
        let used: i64 = conn
            .query_row("SELECT used FROM enrollment_tokens", [], |r| r.get(0))
            .unwrap();
        assert_eq!((count, used), (4, 3));
    }
}
