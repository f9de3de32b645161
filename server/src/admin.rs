//! Operator subcommands that work on the directory directly: `token`, `user-cert`, `revoke`,
//! `hosts`. They are safe to run while `serve` runs (SQLite WAL, busy timeout).

use std::io::Write;
use std::path::{Path, PathBuf};

use anyhow::{bail, Context, Result};
use hostcert_proto::api::paths;
use hostcert_proto::{ott, tags};
use ssh_key::certificate::CertType;

use crate::ca::{self, CertSpec, BACKDATE_SECS};
use crate::cli::{HostsArgs, RevokeArgs, TokenAction, TokenArgs, UserCertArgs};
use crate::db::{self, CertRow, NewEnrollment};
use crate::layout::{write_replace, Layout};
use crate::timespec::{self, parse_ttl};

/// A host or user name: printable, no separators that would confuse a principal list.
fn check_name(what: &str, name: &str) -> Result<()> {
    if name.is_empty()
        || !name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'-' | b'_' | b'@' | b':'))
    {
        bail!("{what} {name:?} is not a valid name (letters, digits, '.', '-', '_', '@', ':')");
    }
    Ok(())
}

/// Runs `token`.
pub fn token(args: &TokenArgs) -> Result<()> {
    if let Some(TokenAction::Revoke { id, dir }) = &args.action {
        let layout = Layout::new(&dir.dir);
        layout.load_config()?;
        let used = db::revoke_enrollment(&db::open(&layout.db())?, id, hostcert_proto::now())?;
        println!("revoked enrollment token {id} (used {used} times)");
        return Ok(());
    }
    let layout = Layout::new(&args.dir.dir);
    let authority = layout.load_authority()?;
    let audience = format!(
        "{}{}",
        authority.config.ca_url,
        paths::versioned(paths::SSH_SIGN)
    );
    let issuer = &authority.config.provisioner;
    let now = hostcert_proto::now();
    let mut out = std::io::stdout().lock();
    if args.enrollment {
        if args.host.is_some() || !args.principals.is_empty() {
            bail!("--host and --principal do not apply to --enrollment (use --pattern)");
        }
        let Some(pattern) = &args.pattern else {
            bail!("--enrollment needs --pattern, e.g. '*.prod.example.com'");
        };
        if pattern.is_empty()
            || !pattern
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'-' | b'_' | b'*'))
        {
            bail!("--pattern {pattern:?}: use letters, digits, '.', '-', '_' and '*'");
        }
        if args.uses == 0 {
            bail!("--uses must be at least 1");
        }
        let default_tags = tags::parse_all(&args.tags)?;
        let ttl = parse_ttl(args.ttl.as_deref().unwrap_or("24h"))?;
        let id = hostcert_proto::random_hex_id();
        let claims = ott::Claims::enrollment(issuer, &audience, &id, pattern, now, ttl);
        let token = ott::issue(&authority.provisioner, &claims)?;
        db::insert_enrollment(
            &db::open(&layout.db())?,
            &NewEnrollment {
                id: &id,
                pattern,
                max_uses: args.uses,
                tags: &default_tags,
                created_at: now,
                expires_at: claims.registered.exp,
            },
        )?;
        writeln!(out, "enrollment token ID: {id}")?;
        writeln!(
            out,
            "pattern {pattern}, {} uses, expires {}",
            args.uses,
            timespec::rfc3339(claims.registered.exp)
        )?;
        writeln!(out, "{token}")?;
        return Ok(());
    }
    if args.pattern.is_some() || !args.tags.is_empty() {
        bail!("--pattern, --uses and --tag need --enrollment");
    }
    let Some(host) = &args.host else {
        bail!("give --host NAME (or --enrollment --pattern GLOB)");
    };
    check_name("--host", host)?;
    for p in &args.principals {
        check_name("--principal", p)?;
    }
    let ttl = parse_ttl(args.ttl.as_deref().unwrap_or("5m"))?;
    let claims = ott::Claims::host(issuer, &audience, host, &args.principals, now, ttl);
    writeln!(out, "{}", ott::issue(&authority.provisioner, &claims)?)?;
    Ok(())
}

/// `<dir>/<name>.pub` → `<dir>/<name>-cert.pub`, as ssh-keygen names certificates.
fn cert_path(pubkey: &Path) -> PathBuf {
    let name = pubkey.to_string_lossy();
    PathBuf::from(format!(
        "{}-cert.pub",
        name.strip_suffix(".pub").unwrap_or(&name)
    ))
}

/// Runs `user-cert`.
pub fn user_cert(args: &UserCertArgs) -> Result<()> {
    check_name("--user", &args.user)?;
    let layout = Layout::new(&args.dir.dir);
    let authority = layout.load_authority()?;
    let ttl = parse_ttl(&args.ttl)?;
    let text = std::fs::read_to_string(&args.pubkey)
        .with_context(|| format!("reading {}", args.pubkey.display()))?;
    let key = ssh_key::PublicKey::from_openssh(text.trim())
        .with_context(|| format!("{} is not an OpenSSH public key", args.pubkey.display()))?;
    let now = hostcert_proto::now();
    let principals = [args.user.clone()];
    let serial = ca::new_serial();
    let (valid_after, valid_before) = (now - BACKDATE_SECS, now + ttl);
    let cert = ca::sign(
        &authority.user_ca,
        &CertSpec {
            cert_type: CertType::User,
            serial,
            key_id: &args.user,
            principals: &principals,
            valid_after,
            valid_before,
            public_key: key.key_data(),
        },
    )?;
    db::insert_cert(
        &db::open(&layout.db())?,
        &CertRow {
            serial,
            cert_type: hostcert_proto::api::CERT_TYPE_USER,
            key_id: &args.user,
            principals: &principals,
            valid_after,
            valid_before,
            issued_at: now,
        },
        None,
    )?;
    let out = cert_path(&args.pubkey);
    write_replace(&out, format!("{}\n", cert.to_openssh()?).as_bytes(), 0o644)?;
    println!("{}", out.display());
    Ok(())
}

/// Runs `revoke`.
pub fn revoke(args: &RevokeArgs) -> Result<()> {
    let layout = Layout::new(&args.dir.dir);
    layout.load_config()?;
    let conn = db::open(&layout.db())?;
    if db::revoke_cert(&conn, args.serial, hostcert_proto::now())? {
        println!("revoked certificate {}", args.serial);
    } else {
        println!("certificate {} was already revoked", args.serial);
    }
    Ok(())
}

/// Runs `hosts`.
pub fn hosts(args: &HostsArgs) -> Result<()> {
    let layout = Layout::new(&args.dir.dir);
    layout.load_config()?;
    let filter = tags::parse_all(&args.tags)?;
    let hosts = db::list_hosts(&db::open(&layout.db())?, &filter)?;
    let mut out = std::io::stdout().lock();
    if args.json {
        serde_json::to_writer_pretty(&mut out, &hosts)?;
        writeln!(out)?;
        return Ok(());
    }
    writeln!(
        out,
        "{:<32} {:<8} {:<24} {:<21} TAGS",
        "HOSTNAME", "BASTION", "VIA", "LAST SEEN"
    )?;
    for h in &hosts {
        writeln!(
            out,
            "{:<32} {:<8} {:<24} {:<21} {}",
            h.hostname,
            if h.is_bastion { "yes" } else { "-" },
            h.bastion.as_deref().unwrap_or("-"),
            timespec::rfc3339(h.last_seen),
            tags::format_list(&h.tags)
        )?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn certificate_file_names() {
        assert_eq!(
            cert_path(Path::new("/k/id_ed25519.pub")),
            Path::new("/k/id_ed25519-cert.pub")
        );
        assert_eq!(cert_path(Path::new("key")), Path::new("key-cert.pub"));
        assert!(check_name("x", "alice").is_ok());
        assert!(check_name("x", "a b").is_err());
        assert!(check_name("x", "").is_err());
    }
}
