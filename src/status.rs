//! `hostcert status`: what is active, what sshd really uses, and the host certificates.

use std::path::{Path, PathBuf};
use std::time::{SystemTime, UNIX_EPOCH};

use serde::Serialize;

use crate::activation::read_keys;
use crate::distro::Distro;
use crate::edit::{AuthselectSelection, Engine, FileState, Text};
use crate::enroll::{last_failure, Failure};
use crate::error::Result;
use crate::host::fqdn;
use crate::paths::{
    Root, ENROLLED, NSSWITCH, PAM_SSHD, PAM_SU, PAM_SUDO, SEED_FILE, SSHD_CONFIG,
    TRUSTED_USER_CA_KEYS,
};
use crate::sshd::{self, certificate_path, SshdConfig};
use crate::system::System;

/// A certificate with less than this share of its lifetime left is due for renewal.
pub const RENEW_FRACTION: u64 = 3;

/// The whole status, also the `--json` document (field names are a stable interface).
#[derive(Debug, Clone, Serialize)]
pub struct Status {
    /// Whether hostcert has anything recorded as applied.
    pub active: bool,
    /// The system, if supported.
    pub distro: Option<Distro>,
    /// The host name certificates should carry.
    pub hostname: Option<String>,
    /// Each file hostcert manages.
    pub files: Vec<FileStatus>,
    /// The authselect selection hostcert replaced (CentOS 8), if any.
    pub authselect_replaced: Option<AuthselectSelection>,
    /// What sshd uses.
    pub sshd: SshdStatus,
    /// The admin's own user-CA file, and whether hostcert's file carries its keys.
    pub admin_user_ca: Option<AdminCa>,
    /// Where enrollment stands.
    pub enrollment: Enrollment,
    /// The CA URL pinned by bootstrap.
    pub ca_url: Option<String>,
    /// The pinned root's SHA-256 fingerprint.
    pub root_fingerprint: Option<String>,
    /// The host certificates.
    pub certificates: Vec<CertificateStatus>,
    /// Problems to look at.
    pub warnings: Vec<String>,
}

/// Where enrollment stands: `enrolled` (with the host name), `pending` (a seed waits or the last
/// attempt failed: `hostcert-enroll.timer` retries), or `not_started`.
#[derive(Debug, Clone, Serialize)]
pub struct Enrollment {
    /// `enrolled`, `pending` or `not_started`.
    pub state: &'static str,
    /// The host name enrolled as.
    pub hostname: Option<String>,
    /// Why the last attempt failed, while none has succeeded since.
    pub last_failure: Option<Failure>,
}

impl Enrollment {
    fn read(root: &Root) -> Enrollment {
        let hostname = std::fs::read_to_string(root.join(ENROLLED))
            .ok()
            .map(|n| n.trim().to_string());
        let last_failure = last_failure(root);
        let state = if hostname.is_some() {
            "enrolled"
        } else if last_failure.is_some() || root.join(SEED_FILE).exists() {
            "pending"
        } else {
            "not_started"
        };
        Enrollment {
            state,
            hostname,
            last_failure,
        }
    }
}

/// One managed file.
#[derive(Debug, Clone, Serialize)]
pub struct FileStatus {
    /// System path (links resolved).
    pub path: PathBuf,
    /// Activation state.
    pub state: FileState,
}

/// The sshd values hostcert cares about.
#[derive(Debug, Clone, Default, Serialize)]
pub struct SshdStatus {
    /// `sshd -T` (effective) or `sshd_config` (read by hostcert, first value wins).
    pub source: String,
    /// Effective `HostKey`s.
    pub host_keys: Vec<String>,
    /// Effective `HostCertificate`s.
    pub host_certificates: Vec<String>,
    /// Effective `TrustedUserCAKeys`.
    pub trusted_user_ca_keys: Option<String>,
}

/// The admin's `TrustedUserCAKeys` file that hostcert's now stands in for.
#[derive(Debug, Clone, Serialize)]
pub struct AdminCa {
    /// Its path.
    pub path: String,
    /// Whether every one of its keys is in hostcert's user-CA file.
    pub carried: bool,
}

/// One host certificate.
#[derive(Debug, Clone, Serialize)]
pub struct CertificateStatus {
    /// The `-cert.pub` file.
    pub path: String,
    /// Key ID.
    pub key_id: String,
    /// Serial number.
    pub serial: u64,
    /// Principals.
    pub principals: Vec<String>,
    /// Valid from (Unix seconds).
    pub valid_after: u64,
    /// Valid until (Unix seconds).
    pub valid_before: u64,
    /// Seconds left (0 when expired).
    pub seconds_left: u64,
}

/// Gathers the status of `root`.
pub fn status(root: &Root, system: &dyn System) -> Result<Status> {
    let engine = Engine::load(root)?;
    let distro = Distro::detect(root).ok();
    let state = engine.state();
    let mut warnings = Vec::new();
    let enrollment = Enrollment::read(root);
    if let Some(failure) = &enrollment.last_failure {
        warnings.push(format!(
            "enrollment pending: the last attempt ({} ago) failed with exit code {}: {}; hostcert-enroll.timer retries",
            human(hostcert_proto::now().saturating_sub(failure.at)),
            failure.exit,
            failure.reason
        ));
    }

    let mut paths: Vec<PathBuf> = [
        SSHD_CONFIG,
        TRUSTED_USER_CA_KEYS,
        PAM_SSHD,
        PAM_SUDO,
        PAM_SU,
        NSSWITCH,
    ]
    .iter()
    .filter_map(|p| root.resolve(p).ok())
    .collect();
    paths.extend(
        state
            .files
            .keys()
            .filter(|p| !paths.contains(p))
            .cloned()
            .collect::<Vec<_>>(),
    );
    let mut files = Vec::new();
    for path in paths {
        let file_state = engine.file_state(&path)?;
        match file_state {
            FileState::ChangedSinceActivation => warnings.push(format!(
                "{} was changed since activation: deactivate will remove only hostcert's lines",
                path.display()
            )),
            FileState::Missing => {
                warnings.push(format!("{} is gone since activation", path.display()))
            }
            _ => {}
        }
        files.push(FileStatus {
            path,
            state: file_state,
        });
    }
    let active = files.iter().any(|f| f.state != FileState::Inactive);

    // What sshd would use without hostcert: the admin's CA file is the first one there.
    let base = engine.base(Path::new(SSHD_CONFIG))?.unwrap_or_default();
    let base_config = SshdConfig::read(root, &Text::parse(&base));
    let current = engine.read(Path::new(SSHD_CONFIG))?.unwrap_or_default();
    let config = SshdConfig::read(root, &Text::parse(&current));

    let sshd = match distro
        .as_ref()
        .and_then(|d| sshd::effective(root, system, d.facts()))
    {
        Some(values) => {
            let all = |k: &str| {
                values
                    .iter()
                    .filter(|(key, _)| key == k)
                    .map(|(_, v)| v.clone())
                    .collect::<Vec<_>>()
            };
            SshdStatus {
                source: "sshd -T".into(),
                host_keys: all("hostkey"),
                host_certificates: all("hostcertificate"),
                trusted_user_ca_keys: all("trustedusercakeys").into_iter().next(),
            }
        }
        None => SshdStatus {
            source: "sshd_config".into(),
            host_keys: config.offered_host_keys(root),
            host_certificates: config.host_certificates.clone(),
            trusted_user_ca_keys: config.trusted_user_ca_keys.clone(),
        },
    };
    if active && sshd.trusted_user_ca_keys.as_deref() != Some(TRUSTED_USER_CA_KEYS) {
        warnings.push(format!(
            "sshd uses TrustedUserCAKeys {}, not hostcert's {TRUSTED_USER_CA_KEYS}",
            sshd.trusted_user_ca_keys.as_deref().unwrap_or("(none)")
        ));
    }

    let admin_user_ca = base_config
        .trusted_user_ca_keys
        .clone()
        .filter(|p| p != TRUSTED_USER_CA_KEYS && p != "none")
        .map(|path| {
            let ours = read_keys(root, TRUSTED_USER_CA_KEYS);
            let carried = read_keys(root, &path).iter().all(|k| ours.iter().any(|o| same_key(o, k)));
            if active && !carried {
                warnings.push(format!("{TRUSTED_USER_CA_KEYS} lacks keys of the admin's {path}: run hostcert activate"));
            }
            AdminCa { path, carried }
        });

    let hostname = state.hostname.clone().or_else(|| fqdn(root));
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    let mut certificates = Vec::new();
    for key in base_config.offered_host_keys(root) {
        let path = certificate_path(&key);
        let Ok(text) = std::fs::read_to_string(root.join(&path)) else {
            continue;
        };
        let cert = match ssh_key::Certificate::from_openssh(text.trim()) {
            Ok(cert) => cert,
            Err(e) => {
                warnings.push(format!("{path}: not a readable certificate ({e})"));
                continue;
            }
        };
        let status = CertificateStatus {
            path: path.clone(),
            key_id: cert.key_id().to_string(),
            serial: cert.serial(),
            principals: cert.valid_principals().to_vec(),
            valid_after: cert.valid_after(),
            valid_before: cert.valid_before(),
            seconds_left: cert.valid_before().saturating_sub(now),
        };
        let lifetime = status.valid_before.saturating_sub(status.valid_after);
        if status.seconds_left == 0 {
            warnings.push(format!("{path} has expired"));
        } else if status.seconds_left < lifetime / RENEW_FRACTION {
            warnings.push(format!(
                "{path} expires in {}: renew it",
                human(status.seconds_left)
            ));
        }
        if let Some(name) = &hostname {
            if !status.principals.contains(name) {
                warnings.push(format!(
                    "{path}: the host name {name} is not among its principals"
                ));
            }
        }
        certificates.push(status);
    }

    let ca = match crate::config::load(root) {
        Ok(ca) => ca,
        Err(e) => {
            warnings.push(e.to_string());
            None
        }
    };
    Ok(Status {
        enrollment,
        ca_url: ca.as_ref().map(|c| c.ca_url.clone()),
        root_fingerprint: ca.map(|c| c.fingerprint),
        active,
        distro,
        hostname,
        files,
        authselect_replaced: state.authselect.clone(),
        sshd,
        admin_user_ca,
        certificates,
        warnings,
    })
}

fn same_key(a: &str, b: &str) -> bool {
    a.split_whitespace()
        .take(2)
        .eq(b.split_whitespace().take(2))
}

/// `3d 4h`, `12m`: a duration for people.
pub fn human(seconds: u64) -> String {
    let (d, h, m) = (
        seconds / 86_400,
        seconds % 86_400 / 3_600,
        seconds % 3_600 / 60,
    );
    match (d, h) {
        (0, 0) => format!("{m}m"),
        (0, _) => format!("{h}h {m}m"),
        _ => format!("{d}d {h}h"),
    }
}
