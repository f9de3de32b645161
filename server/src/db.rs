//! The SQLite database: schema, connection setup, and the reads and administrative writes.
//! The server's hot-path writes go through [`crate::writer`].

use std::collections::BTreeMap;
use std::path::Path;
use std::time::Duration;

use anyhow::{bail, Context, Result};
use hostcert_proto::inventory::HostRecord;
use rusqlite::{params, Connection, OptionalExtension};

const SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS certs (
    serial INTEGER PRIMARY KEY,
    cert_type TEXT NOT NULL,
    key_id TEXT NOT NULL,
    principals TEXT NOT NULL,          -- JSON array
    valid_after INTEGER NOT NULL,
    valid_before INTEGER NOT NULL,
    issued_at INTEGER NOT NULL,
    enrollment_id TEXT,                -- fleet token that (first) authorised this identity
    revoked_at INTEGER
);
CREATE TABLE IF NOT EXISTS used_tokens (
    jti TEXT PRIMARY KEY,
    expires_at INTEGER NOT NULL
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS enrollment_tokens (
    id TEXT PRIMARY KEY,
    pattern TEXT NOT NULL,
    max_uses INTEGER NOT NULL,
    used INTEGER NOT NULL DEFAULT 0,
    tags TEXT NOT NULL,                -- JSON object of default tags
    created_at INTEGER NOT NULL,
    expires_at INTEGER NOT NULL,
    revoked_at INTEGER
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS hosts (
    hostname TEXT PRIMARY KEY,
    tags TEXT NOT NULL,                -- JSON object
    is_bastion INTEGER NOT NULL,
    bastion TEXT,
    registered_at INTEGER NOT NULL,
    last_seen INTEGER NOT NULL,
    serial INTEGER NOT NULL
) WITHOUT ROWID;
";

/// Opens (creating if needed) the database: WAL, `synchronous=FULL` so a commit is on disk
/// before anyone is told about it.
pub fn open(path: &Path) -> Result<Connection> {
    let conn = Connection::open(path).with_context(|| format!("opening {}", path.display()))?;
    conn.busy_timeout(Duration::from_secs(10))?;
    conn.pragma_update(None, "journal_mode", "WAL")?;
    conn.pragma_update(None, "synchronous", "FULL")?;
    conn.execute_batch(SCHEMA).context("creating the schema")?;
    Ok(conn)
}

/// SQLite stores serials as signed 64-bit; ours are 63-bit, but convert losslessly anyway.
pub fn serial_to_sql(serial: u64) -> i64 {
    serial as i64
}

/// Inverse of [`serial_to_sql`].
pub fn serial_from_sql(v: i64) -> u64 {
    v as u64
}

/// A certificate row.
pub struct CertRow<'a> {
    /// Serial.
    pub serial: u64,
    /// `"host"` or `"user"`.
    pub cert_type: &'a str,
    /// Key ID.
    pub key_id: &'a str,
    /// Principals.
    pub principals: &'a [String],
    /// Unix seconds.
    pub valid_after: u64,
    /// Unix seconds.
    pub valid_before: u64,
    /// Unix seconds.
    pub issued_at: u64,
}

/// Inserts a certificate row; `enrollment_id` links it to a fleet token.
pub fn insert_cert(
    conn: &Connection,
    row: &CertRow<'_>,
    enrollment_id: Option<&str>,
) -> Result<()> {
    conn.prepare_cached(
        "INSERT INTO certs (serial, cert_type, key_id, principals, valid_after, valid_before,
                            issued_at, enrollment_id) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)",
    )?
    .execute(params![
        serial_to_sql(row.serial),
        row.cert_type,
        row.key_id,
        serde_json::to_string(row.principals)?,
        row.valid_after as i64,
        row.valid_before as i64,
        row.issued_at as i64,
        enrollment_id,
    ])?;
    Ok(())
}

/// Marks a certificate revoked. Errors on an unknown serial; `Ok(false)` if already revoked.
pub fn revoke_cert(conn: &Connection, serial: u64, now: u64) -> Result<bool> {
    let n = conn.execute(
        "UPDATE certs SET revoked_at = ?2 WHERE serial = ?1 AND revoked_at IS NULL",
        params![serial_to_sql(serial), now as i64],
    )?;
    if n == 1 {
        return Ok(true);
    }
    let known: Option<i64> = conn
        .query_row(
            "SELECT serial FROM certs WHERE serial = ?1",
            [serial_to_sql(serial)],
            |r| r.get(0),
        )
        .optional()?;
    match known {
        Some(_) => Ok(false),
        None => bail!("no certificate with serial {serial} was issued by this CA"),
    }
}

/// A new fleet enrollment token.
pub struct NewEnrollment<'a> {
    /// Token ID (the JWT `jti`).
    pub id: &'a str,
    /// Principal pattern.
    pub pattern: &'a str,
    /// Allowed uses.
    pub max_uses: u64,
    /// Default tags applied at registration.
    pub tags: &'a BTreeMap<String, String>,
    /// Unix seconds.
    pub created_at: u64,
    /// Unix seconds.
    pub expires_at: u64,
}

/// Stores a fleet enrollment token.
pub fn insert_enrollment(conn: &Connection, e: &NewEnrollment<'_>) -> Result<()> {
    conn.execute(
        "INSERT INTO enrollment_tokens (id, pattern, max_uses, tags, created_at, expires_at)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
        params![
            e.id,
            e.pattern,
            e.max_uses as i64,
            serde_json::to_string(e.tags)?,
            e.created_at as i64,
            e.expires_at as i64
        ],
    )?;
    Ok(())
}

/// Revokes a fleet enrollment token; errors on an unknown ID. Returns the uses so far.
pub fn revoke_enrollment(conn: &Connection, id: &str, now: u64) -> Result<u64> {
    conn.execute(
        "UPDATE enrollment_tokens SET revoked_at = ?2 WHERE id = ?1 AND revoked_at IS NULL",
        params![id, now as i64],
    )?;
    let used: Option<i64> = conn
        .query_row(
            "SELECT used FROM enrollment_tokens WHERE id = ?1",
            [id],
            |r| r.get(0),
        )
        .optional()?;
    match used {
        Some(u) => Ok(u as u64),
        None => bail!("no enrollment token with ID {id}"),
    }
}

/// Reads one inventory row.
pub fn host_from_row(row: &rusqlite::Row<'_>) -> rusqlite::Result<HostRecord> {
    let tags: String = row.get("tags")?;
    Ok(HostRecord {
        hostname: row.get("hostname")?,
        tags: serde_json::from_str(&tags).unwrap_or_default(),
        is_bastion: row.get("is_bastion")?,
        bastion: row.get("bastion")?,
        registered_at: row.get::<_, i64>("registered_at")? as u64,
        last_seen: row.get::<_, i64>("last_seen")? as u64,
        serial: serial_from_sql(row.get("serial")?),
    })
}

/// The inventory, sorted by hostname, keeping hosts that carry every tag in `filter`.
pub fn list_hosts(conn: &Connection, filter: &BTreeMap<String, String>) -> Result<Vec<HostRecord>> {
    let mut stmt = conn.prepare(
        "SELECT hostname, tags, is_bastion, bastion, registered_at, last_seen, serial
         FROM hosts ORDER BY hostname",
    )?;
    let hosts = stmt
        .query_map([], host_from_row)?
        .collect::<rusqlite::Result<Vec<_>>>()?;
    Ok(hosts
        .into_iter()
        .filter(|h| filter.iter().all(|(k, v)| h.tags.get(k) == Some(v)))
        .collect())
}

/// Key IDs of current (unexpired, unrevoked) host certificates that are not in the inventory.
pub fn certified_hosts_not_registered(conn: &Connection, now: u64) -> Result<Vec<String>> {
    let mut stmt = conn.prepare(
        "SELECT DISTINCT key_id FROM certs
         WHERE cert_type = 'host' AND valid_before > ?1 AND revoked_at IS NULL
           AND key_id NOT IN (SELECT hostname FROM hosts)
         ORDER BY key_id",
    )?;
    let names = stmt
        .query_map([now as i64], |r| r.get(0))?
        .collect::<rusqlite::Result<Vec<String>>>()?;
    Ok(names)
}

/// Whether a current host certificate names `principal`.
pub fn host_principal_exists(conn: &Connection, principal: &str, now: u64) -> Result<bool> {
    Ok(conn.query_row(
        "SELECT EXISTS (SELECT 1 FROM certs, json_each(certs.principals) AS p
                        WHERE certs.cert_type = 'host' AND certs.valid_before > ?2
                          AND certs.revoked_at IS NULL AND p.value = ?1)",
        params![principal, now as i64],
        |r| r.get(0),
    )?)
}
