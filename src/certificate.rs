//! Host certificates: `hostcert certificate` (first issue) and `hostcert renew`.
//!
//! **One token, every host key.** A sign token may be single-use (step-ca's `jti`), yet sshd
//! offers several host keys and clients pinned to one key type must all see a certificate. So:
//! 1. the first host key able to sign an SSHPOP token (ECDSA P-256 or Ed25519, the *primary*)
//!    is signed with the token through `POST /ssh/sign`;
//! 2. every other key (another type, RSA, DSA) is certified through `POST /ssh/rekey` with an
//!    SSHPOP token signed by the primary key for its fresh certificate: the CA issues a
//!    certificate with the same key ID and principals for the new key, and the presenting
//!    certificate stays valid. A fleet token's use count therefore counts hosts, not keys.
//!
//! Every returned certificate is verified before anything is written: host type, signed by a
//! key the CA lists as `hostKey` in `/ssh/roots`, key ID and principals as asked, and the
//! certified key is ours. Then generated keys (0600), `<key>-cert.pub` files and the CA's user
//! and host keys ([`CA_USER_KEYS`], [`CA_HOST_KEYS`]) are written atomically. When hostcert is active, activate runs again
//! so sshd's block names every certificate; sshd is reloaded.
//!
//! **Renewal** (`hostcert renew`): when a certificate has less than a third of its lifetime left
//! (or with `--force`), each key able to prove possession renews its own certificate through
//! `POST /ssh/renew` with an SSHPOP token; the others are re-certified through `/ssh/rekey` with
//! the renewed primary certificate. `--rekey` makes new ECDSA/Ed25519 keys, certified through
//! `/ssh/rekey` with the old certificate's proof. A revoked or expired certificate is refused by
//! the CA (exit 7): enroll again with a new token.

use hostcert_proto::api::{self, paths, CERT_TYPE_HOST};
use hostcert_proto::sshpop;
use ssh_key::{Certificate, Fingerprint, HashAlg, PrivateKey, PublicKey};

use crate::activation::{self, require_root};
use crate::ca::Client;
use crate::config;
use crate::created;
use crate::distro::Distro;
use crate::error::{Error, Result};
use crate::host::fqdn;
use crate::keys::{self, HostKey, KeyType};
use crate::paths::{Root, CA_HOST_KEYS, CA_USER_KEYS, CONFIG_DIR, STATE_FILE};
use crate::settings::Secret;
use crate::status::RENEW_FRACTION;
use crate::system::{reload_sshd, Reload, System};

/// What `hostcert certificate` is asked for.
#[derive(Debug, Clone, Default)]
pub struct Request {
    /// Key ID and first principal (default: the FQDN).
    pub hostname: Option<String>,
    /// Further principals.
    pub principals: Vec<String>,
    /// Which missing key types to generate.
    pub key_type: KeyType,
    /// Do not reload sshd.
    pub no_reload: bool,
}

/// One certificate written.
#[derive(Debug, Clone, serde::Serialize)]
pub struct Issued {
    /// The `-cert.pub` file.
    pub path: String,
    /// Its serial.
    pub serial: u64,
    /// Valid until (Unix seconds).
    pub valid_before: u64,
    /// Whether its key was generated (or replaced, with `--rekey`) by this run.
    pub new_key: bool,
}

/// What a certificate or renew run did.
#[derive(Debug, Default)]
pub struct Report {
    /// Certificates written.
    pub issued: Vec<Issued>,
    /// Things the operator should know.
    pub notes: Vec<String>,
    /// activate's report, when hostcert is active.
    pub activation: Option<activation::Report>,
    /// The sshd reload.
    pub reload: Option<Reload>,
}

/// The principals asked for: the host name first, then the extras, without duplicates.
pub fn principals(hostname: &str, extra: &[String]) -> Vec<String> {
    let mut all = vec![hostname.to_string()];
    for p in extra {
        if !all.contains(p) {
            all.push(p.clone());
        }
    }
    all
}

/// The host name to certify: the one given, or the FQDN.
pub fn hostname(root: &Root, given: Option<&str>) -> Result<String> {
    given
        .map(str::to_string)
        .or_else(|| fqdn(root))
        .ok_or_else(|| Error::BadInput("cannot tell this host's name: give --hostname".into()))
}

/// Certifies every host key sshd offers with `token` (see the module documentation).
pub fn certificate(
    root: &Root,
    system: &dyn System,
    token: &Secret,
    request: &Request,
) -> Result<Report> {
    require_root(root)?;
    let client = config::client(root)?;
    let hostname = hostname(root, request.hostname.as_deref())?;
    let principals = principals(&hostname, &request.principals);
    // The CA first: unreachable or refusing, nothing on the host has changed.
    let roots = client.ssh_roots()?;
    let host_ca = host_ca_fingerprints(&roots)?;
    let keys = keys::host_keys(root, Some(request.key_type))?;
    let primary = primary(&keys)?;

    let sign = api::SignRequest {
        public_key: blob(keys[primary].key.public_key())?,
        ott: token.expose().to_string(),
        cert_type: CERT_TYPE_HOST.to_string(),
        principals: principals.clone(),
        key_id: hostname.clone(),
        ..Default::default()
    };
    let first = client.sign(&sign)?;
    verify(
        &first,
        keys[primary].key.public_key(),
        &host_ca,
        &hostname,
        &principals,
    )?;
    let mut certs = vec![None; keys.len()];
    for (i, key) in keys.iter().enumerate() {
        if i != primary {
            let cert = rekey(&client, &keys[primary].key, &first, key.key.public_key())?;
            verify(
                &cert,
                key.key.public_key(),
                &host_ca,
                &hostname,
                &principals,
            )?;
            certs[i] = Some(cert);
        }
    }
    certs[primary] = Some(first);

    let pairs: Vec<(HostKey, Certificate)> = keys
        .into_iter()
        .zip(certs.into_iter().map(|c| c.expect("every key certified")))
        .collect();
    let mut report = write(root, &pairs, &roots, client.url())?;
    finish(root, system, Some(hostname), request.no_reload, &mut report)?;
    Ok(report)
}

/// What `hostcert renew` is asked for.
#[derive(Debug, Clone, Copy, Default)]
pub struct RenewOptions {
    /// Renew even when not due.
    pub force: bool,
    /// Replace the ECDSA/Ed25519 keys by new ones (certified through `/ssh/rekey`).
    pub rekey: bool,
    /// Do not reload sshd.
    pub no_reload: bool,
}

/// Renews the host certificates when due (see the module documentation).
pub fn renew(root: &Root, system: &dyn System, options: &RenewOptions) -> Result<Report> {
    require_root(root)?;
    let mut report = Report::default();
    let mut current: Vec<(HostKey, Certificate)> = Vec::new();
    for key in keys::host_keys(root, None)? {
        let path = key.certificate_path();
        match read_certificate(root, &path)? {
            Some(cert) if cert.public_key() == key.key.public_key().key_data() => {
                current.push((key, cert))
            }
            Some(_) => report.notes.push(format!(
                "{path} certifies another key: run hostcert certificate"
            )),
            None => report.notes.push(format!(
                "{} has no certificate: run hostcert certificate",
                key.path
            )),
        }
    }
    if current.is_empty() {
        return Err(Error::BadInput(
            "no host certificate to renew: run hostcert certificate (or enroll) first".into(),
        ));
    }
    let now = hostcert_proto::now();
    let due = current.iter().any(|(_, c)| {
        let lifetime = c.valid_before().saturating_sub(c.valid_after());
        c.valid_before().saturating_sub(now) < lifetime / RENEW_FRACTION
    });
    if !(due || options.force || options.rekey) {
        report
            .notes
            .push("nothing to do: no certificate is due for renewal".into());
        return Ok(report);
    }
    let client = config::client(root)?;
    let roots = client.ssh_roots()?;
    let host_ca = host_ca_fingerprints(&roots)?;
    let provers: Vec<usize> = (0..current.len())
        .filter(|&i| current[i].0.can_prove())
        .collect();
    let Some(&primary) = provers.first() else {
        return Err(Error::BadInput(
            "no certified ECDSA P-256 or Ed25519 host key to prove possession with".into(),
        ));
    };

    let mut renewed: Vec<Option<(HostKey, Certificate)>> = vec![None; current.len()];
    for &i in &provers {
        let (key, old) = &current[i];
        let (new_key, cert) = if options.rekey {
            let fresh =
                PrivateKey::random(&mut rand_core::OsRng, key.key.algorithm()).map_err(|e| {
                    Error::BadInput(format!("{}: cannot generate a key: {e}", key.path))
                })?;
            let cert = rekey(&client, &key.key, old, fresh.public_key())?;
            let new_key = HostKey {
                path: key.path.clone(),
                key: fresh,
                generated: true,
            };
            (new_key, cert)
        } else {
            let aud = client.audience(paths::SSH_RENEW);
            let ott = sshpop::issue(&key.key, old, &aud, hostcert_proto::now()).map_err(|e| {
                Error::BadInput(format!("{}: cannot sign the SSHPOP token: {e}", key.path))
            })?;
            (key.clone(), client.renew(ott)?)
        };
        verify(
            &cert,
            new_key.key.public_key(),
            &host_ca,
            old.key_id(),
            old.valid_principals(),
        )?;
        renewed[i] = Some((new_key, cert));
    }
    let (primary_key, primary_cert) = renewed[primary].clone().expect("primary renewed");
    for (i, (key, old)) in current.iter().enumerate() {
        if renewed[i].is_none() {
            let cert = rekey(
                &client,
                &primary_key.key,
                &primary_cert,
                key.key.public_key(),
            )?;
            verify(
                &cert,
                key.key.public_key(),
                &host_ca,
                old.key_id(),
                old.valid_principals(),
            )?;
            renewed[i] = Some((key.clone(), cert));
        }
    }
    let pairs: Vec<(HostKey, Certificate)> = renewed.into_iter().flatten().collect();
    let notes = std::mem::take(&mut report.notes);
    let mut report = write(root, &pairs, &roots, client.url())?;
    report.notes = notes;
    finish(root, system, None, options.no_reload, &mut report)?;
    Ok(report)
}

/// Reads a `-cert.pub` file, `None` when there is none.
pub fn read_certificate(root: &Root, path: &str) -> Result<Option<Certificate>> {
    match std::fs::read_to_string(root.join(path)) {
        Ok(text) => Certificate::from_openssh(text.trim())
            .map(Some)
            .map_err(|e| Error::BadInput(format!("{path}: not a readable certificate: {e}"))),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(Error::io(path, e)),
    }
}

/// The first key able to sign an SSHPOP token.
fn primary(keys: &[HostKey]) -> Result<usize> {
    keys.iter().position(HostKey::can_prove).ok_or_else(|| {
        Error::BadInput(
            "sshd offers no ECDSA P-256 or Ed25519 host key, which renewal needs to prove \
             possession: add one (e.g. --key-type ed25519 with no HostKey lines)"
                .into(),
        )
    })
}

/// Certifies `new_key` with the identity of `cert`, proven by `key`.
fn rekey(
    client: &Client,
    key: &PrivateKey,
    cert: &Certificate,
    new_key: &PublicKey,
) -> Result<Certificate> {
    let aud = client.audience(paths::SSH_REKEY);
    let ott = sshpop::issue(key, cert, &aud, hostcert_proto::now())
        .map_err(|e| Error::BadInput(format!("cannot sign the SSHPOP token: {e}")))?;
    client.rekey(ott, blob(new_key)?)
}

fn blob(key: &PublicKey) -> Result<String> {
    key.to_bytes()
        .map(|b| api::encode_blob(&b))
        .map_err(|e| Error::BadInput(format!("cannot encode a public key: {e}")))
}

/// The SHA-256 fingerprints of the CA's host keys from `/ssh/roots`.
fn host_ca_fingerprints(roots: &api::SshRootsResponse) -> Result<Vec<Fingerprint>> {
    let keys: Vec<Fingerprint> = roots
        .host_key
        .iter()
        .map(|b64| api::decode_public_key(b64).map(|k| k.fingerprint(HashAlg::Sha256)))
        .collect::<std::result::Result<_, _>>()
        .map_err(|e| Error::Untrusted(format!("/ssh/roots lists a malformed host CA key: {e}")))?;
    if keys.is_empty() {
        return Err(Error::Untrusted("/ssh/roots lists no host CA key".into()));
    }
    Ok(keys)
}

/// Checks a certificate the CA returned before anything is written.
pub fn verify(
    cert: &Certificate,
    key: &PublicKey,
    host_ca: &[Fingerprint],
    key_id: &str,
    principals: &[String],
) -> Result<()> {
    let wrong = |what: String| {
        Err(Error::Untrusted(format!(
            "the CA returned {what}: nothing written"
        )))
    };
    if cert.cert_type() != ssh_key::certificate::CertType::Host {
        return wrong("a user certificate instead of a host certificate".into());
    }
    if cert.public_key() != key.key_data() {
        return wrong("a certificate for another key".into());
    }
    // The signature and signer, at a time the certificate is valid: a skewed clock is reported
    // through the Date header, not as a bad certificate.
    if cert.validate_at(cert.valid_after(), host_ca).is_err() {
        return wrong("a certificate not signed by its host CA key (/ssh/roots hostKey)".into());
    }
    if cert.key_id() != key_id {
        return wrong(format!("key ID {:?}, not {key_id:?}", cert.key_id()));
    }
    let mut got = cert.valid_principals().to_vec();
    let mut want = principals.to_vec();
    got.sort();
    want.sort();
    if got != want {
        return wrong(format!("principals {got:?}, not {want:?}"));
    }
    Ok(())
}

/// Writes new keys, certificates and the CA's user keys.
fn write(
    root: &Root,
    pairs: &[(HostKey, Certificate)],
    roots: &api::SshRootsResponse,
    ca_url: &str,
) -> Result<Report> {
    let mut report = Report::default();
    for (key, cert) in pairs {
        if key.generated {
            key.write(root)?;
        }
        let path = key.certificate_path();
        let text = cert
            .to_openssh()
            .map_err(|e| Error::BadInput(format!("{path}: cannot encode the certificate: {e}")))?;
        created::write(root, &path, format!("{text}\n").as_bytes(), 0o644)?;
        report.issued.push(Issued {
            path,
            serial: cert.serial(),
            valid_before: cert.valid_before(),
            new_key: key.generated,
        });
    }
    let mut user_keys = format!(
        "# User CA keys of {ca_url} (/ssh/roots), written by hostcert: edits are replaced.\n"
    );
    for b64 in &roots.user_key {
        user_keys.push_str(&openssh_line(b64, "user")?);
    }
    let mut host_keys = format!(
        "# Host CA keys of {ca_url} (/ssh/roots), written by hostcert: edits are replaced.\n"
    );
    for b64 in &roots.host_key {
        host_keys.push_str(&openssh_line(b64, "host")?);
    }
    crate::edit::fsio::ensure_dir(&root.join(CONFIG_DIR), 0o755)
        .map_err(|e| Error::io(CONFIG_DIR, e))?;
    created::write(root, CA_USER_KEYS, user_keys.as_bytes(), 0o644)?;
    created::write(root, CA_HOST_KEYS, host_keys.as_bytes(), 0o644)?;
    Ok(report)
}

/// An `/ssh/roots` key as an OpenSSH public key line.
fn openssh_line(b64: &str, kind: &str) -> Result<String> {
    let key = api::decode_public_key(b64).map_err(|e| {
        Error::Untrusted(format!("/ssh/roots lists a malformed {kind} CA key: {e}"))
    })?;
    key.to_openssh()
        .map(|line| format!("{line}\n"))
        .map_err(|e| Error::BadInput(format!("cannot encode a {kind} CA key: {e}")))
}

/// The fingerprints of the host CA keys stored by the last certificate run ([`CA_HOST_KEYS`]).
pub fn stored_host_ca(root: &Root) -> Vec<Fingerprint> {
    crate::activation::read_keys(root, CA_HOST_KEYS)
        .iter()
        .filter_map(|line| PublicKey::from_openssh(line).ok())
        .map(|key| key.fingerprint(HashAlg::Sha256))
        .collect()
}

/// Makes sshd use the new certificates: activate again when hostcert is active (its block names
/// the certificates and its user-CA file carries the CA's keys), and reload sshd.
fn finish(
    root: &Root,
    system: &dyn System,
    hostname: Option<String>,
    no_reload: bool,
    report: &mut Report,
) -> Result<()> {
    if root.join(STATE_FILE).exists() {
        let options = activation::Options {
            hostname,
            dry_run: false,
            no_reload,
        };
        let activated = activation::activate(root, system, &options)?;
        report.reload = activated.reload.clone();
        report.activation = Some(activated);
    }
    if report.reload.is_none() && !no_reload {
        match Distro::detect(root) {
            Ok(distro) => {
                report.reload = Some(reload_sshd(root, system, distro.facts().sshd_service)?)
            }
            Err(e) => report.notes.push(format!("sshd not reloaded: {e}")),
        }
    }
    Ok(())
}
