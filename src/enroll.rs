//! `hostcert enroll`: the whole enrollment from settings (see [`crate::settings`]), what the
//! package hooks and the enroll timer run.
//!
//! Steps, each skipped when already done, so a re-run resumes after any failure or crash:
//! 1. **bootstrap**: skipped when the stored CA settings are the ones asked for (other ones
//!    re-pin, and then the certificate and register steps run again for the new CA);
//! 2. **certificate**: skipped when every host key sshd offers has a current certificate for the
//!    host name and principals asked for (the token is needed only for this step);
//! 3. **activate**: idempotent, changes nothing the second time;
//! 4. **register**: skipped when the same registration is recorded.
//!
//! Then the token line goes from the seed file and [`ENROLLED`] is written (the enroll timer's
//! `ConditionPathExists=!` names it). The CA is contacted before anything on the host changes:
//! when it is unreachable, enroll exits 6 with the host untouched, and the timer retries.

use crate::activation::{self, require_root};
use crate::certificate::{self, read_certificate};
use crate::config;
use crate::created;
use crate::edit::fsio;
use crate::error::{Error, Result};
use crate::inventory::{self, Registration};
use crate::keys::{self, KeyType};
use crate::paths::{Root, CA_USER_KEYS, ENROLLED, ENROLL_FAILED, STATE_DIR};
use crate::settings::{self, Effective};
use crate::system::System;

/// Test hook: `HOSTCERT_TEST_CRASH_AFTER=enroll:<step>` aborts right after that step.
const CRASH_PREFIX: &str = "enroll:";

/// The enrollment steps, in order.
pub const STEPS: [&str; 4] = ["bootstrap", "certificate", "activate", "register"];

/// How one step went.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct StepReport {
    /// The step.
    pub step: &'static str,
    /// Whether it ran (or, with `--check`, would run).
    pub run: bool,
    /// What was (or would be) done.
    pub detail: String,
}

/// What enroll did (or, with `check`, would do).
#[derive(Debug, Clone, Default, serde::Serialize)]
pub struct Report {
    /// Nothing was changed on purpose.
    pub check: bool,
    /// Each step.
    pub steps: Vec<StepReport>,
    /// Things the operator should know.
    pub notes: Vec<String>,
}

fn crash_after(step: &str) {
    let wanted = std::env::var(crate::edit::CRASH_AFTER_ENV).ok();
    if wanted.as_deref().and_then(|w| w.strip_prefix(CRASH_PREFIX)) == Some(step) {
        eprintln!(
            "hostcert: {}={CRASH_PREFIX}{step}: aborting",
            crate::edit::CRASH_AFTER_ENV
        );
        std::process::abort();
    }
}

/// Runs (or with `check`, plans) the enrollment. A failed run is recorded in
/// [`ENROLL_FAILED`] (time, exit code, reason) for `status`, until a run succeeds.
pub fn enroll(
    root: &Root,
    system: &dyn System,
    settings: &Effective,
    check: bool,
    no_reload: bool,
) -> Result<Report> {
    require_root(root)?;
    let result = run(root, system, settings, check, no_reload);
    if !check {
        let recorded = match &result {
            Ok(_) => {
                fsio::remove(&root.join(ENROLL_FAILED)).map_err(|e| Error::io(ENROLL_FAILED, e))
            }
            Err(e) => record_failure(root, e),
        };
        // Recording is for the operator's convenience: never let it hide the real outcome.
        if let Err(record_error) = recorded {
            tracing::warn!("{record_error}");
        }
    }
    result
}

/// Why the last enrollment failed, if it did.
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
pub struct Failure {
    /// When (Unix seconds).
    pub at: u64,
    /// The exit code it ended with.
    pub exit: u8,
    /// The reason.
    pub reason: String,
}

fn record_failure(root: &Root, error: &Error) -> Result<()> {
    let failure = Failure {
        at: hostcert_proto::now(),
        exit: error.exit() as u8,
        reason: error.to_string(),
    };
    fsio::ensure_dir(&root.join(STATE_DIR), 0o700).map_err(|e| Error::io(STATE_DIR, e))?;
    let mut json = serde_json::to_vec_pretty(&failure).expect("failure serialises");
    json.push(b'\n');
    created::write(root, ENROLL_FAILED, &json, 0o600)
}

/// The last enrollment failure, while no enrollment has succeeded since.
pub fn last_failure(root: &Root) -> Option<Failure> {
    let bytes = std::fs::read(root.join(ENROLL_FAILED)).ok()?;
    serde_json::from_slice(&bytes).ok()
}

fn run(
    root: &Root,
    system: &dyn System,
    settings: &Effective,
    check: bool,
    no_reload: bool,
) -> Result<Report> {
    let mut report = Report {
        check,
        ..Report::default()
    };
    let stored = config::load(root)?;
    let wanted = match (
        settings.get(&settings::CA_URL),
        settings.get(&settings::FINGERPRINT),
    ) {
        (Some(url), Some(fp)) => config::check(url, fp)?,
        (None, None) => stored.clone().ok_or_else(|| {
            Error::BadInput(format!(
                "no CA to enroll with: set {} and {} (flags, environment or the seed file)",
                settings::CA_URL.env,
                settings::FINGERPRINT.env
            ))
        })?,
        _ => {
            return Err(Error::BadInput(format!(
                "{} and {} go together",
                settings::CA_URL.env,
                settings::FINGERPRINT.env
            )))
        }
    };
    let hostname = certificate::hostname(root, settings.get(&settings::HOSTNAME))?;
    let principals = certificate::principals(&hostname, &settings.principals());
    let registration = Registration {
        hostname: Some(hostname.clone()),
        tags: settings.tags()?,
        is_bastion: settings.is_bastion()?,
        bastion: settings.get(&settings::BASTION).map(str::to_string),
    };

    // Another CA asked for (dpkg-reconfigure with new answers): pin it, and its certificates
    // and registration replace the old CA's.
    let need_bootstrap = stored.as_ref() != Some(&wanted);
    let new_ca = need_bootstrap && stored.is_some();
    let need_certificate = new_ca || !certificates_current(root, &hostname, &principals)?;
    let need_register = new_ca || !inventory::registered_as(root, &registration);
    if need_certificate && settings.token().is_none() {
        return Err(Error::BadInput(format!(
            "no token: set {} or {} (or put it in the seed file)",
            settings::TOKEN.env,
            settings::TOKEN_FILE_ENV
        )));
    }
    let step = |step: &'static str, run: bool, detail: String| StepReport { step, run, detail };

    if check {
        report.steps.push(step(
            "bootstrap",
            need_bootstrap,
            format!("pin {} ({})", wanted.ca_url, wanted.fingerprint),
        ));
        report.steps.push(step(
            "certificate",
            need_certificate,
            format!("certify every host key for {}", principals.join(",")),
        ));
        let options = activation::Options {
            hostname: Some(hostname.clone()),
            dry_run: true,
            no_reload: true,
        };
        let planned = activation::activate(root, system, &options)?;
        report.steps.push(step(
            "activate",
            planned.changed() || need_certificate,
            format!("{} file(s) to change", planned.files.len()),
        ));
        report
            .steps
            .push(step("register", need_register, describe(&registration)));
        report.notes.push(if root.join(ENROLLED).exists() {
            "enrolled".into()
        } else {
            "not enrolled yet".into()
        });
        return Ok(report);
    }

    // Contact the CA before anything changes: unreachable, the host stays as it is.
    if need_bootstrap {
        config::bootstrap(root, &wanted.ca_url, &wanted.fingerprint)?;
    } else if need_certificate || need_register {
        config::client(root)?.health()?;
    }
    report
        .steps
        .push(step("bootstrap", need_bootstrap, wanted.ca_url.clone()));
    crash_after("bootstrap");

    if need_certificate {
        let token = settings.token().expect("checked above");
        let request = certificate::Request {
            hostname: Some(hostname.clone()),
            principals: settings.principals(),
            key_type: KeyType::All,
            no_reload: true,
        };
        let issued = certificate::certificate(root, system, token, &request)?;
        let serials: Vec<String> = issued.issued.iter().map(|i| i.serial.to_string()).collect();
        report.steps.push(step(
            "certificate",
            true,
            format!("serials {}", serials.join(",")),
        ));
    } else {
        report
            .steps
            .push(step("certificate", false, "current".into()));
    }
    crash_after("certificate");

    let options = activation::Options {
        hostname: Some(hostname.clone()),
        dry_run: false,
        no_reload,
    };
    let activated = activation::activate(root, system, &options)?;
    report.notes.extend(activated.notes.iter().cloned());
    if let Some(reload) = &activated.reload {
        report.notes.push(reload.to_string());
    }
    report.steps.push(step(
        "activate",
        activated.changed(),
        format!("{} file(s) changed", activated.files.len()),
    ));
    crash_after("activate");

    if need_register {
        inventory::register(root, &registration)?;
    }
    report
        .steps
        .push(step("register", need_register, describe(&registration)));
    crash_after("register");

    if settings::remove_seed_token(root)? {
        report
            .notes
            .push("the token was removed from the seed file".into());
    }
    fsio::ensure_dir(&root.join(STATE_DIR), 0o700).map_err(|e| Error::io(STATE_DIR, e))?;
    created::write(root, ENROLLED, format!("{hostname}\n").as_bytes(), 0o644)?;
    Ok(report)
}

fn describe(registration: &Registration) -> String {
    let mut parts = vec![registration.hostname.clone().unwrap_or_default()];
    if !registration.tags.is_empty() {
        parts.push(format!(
            "tags {}",
            hostcert_proto::tags::format_list(&registration.tags)
        ));
    }
    if registration.is_bastion {
        parts.push("bastion".into());
    }
    if let Some(b) = &registration.bastion {
        parts.push(format!("through {b}"));
    }
    parts.join(", ")
}

/// Whether every host key sshd offers has an unexpired host certificate for exactly this name
/// and these principals, signed by the pinned CA's host key, and the CA's user keys are stored.
fn certificates_current(root: &Root, hostname: &str, principals: &[String]) -> Result<bool> {
    let host_ca = certificate::stored_host_ca(root);
    if !root.join(CA_USER_KEYS).exists() || host_ca.is_empty() {
        return Ok(false);
    }
    let keys = keys::host_keys(root, None)?;
    if keys.is_empty() {
        return Ok(false);
    }
    let now = hostcert_proto::now();
    let mut want = principals.to_vec();
    want.sort();
    for key in keys {
        let Some(cert) = read_certificate(root, &key.certificate_path())
            .ok()
            .flatten()
        else {
            return Ok(false);
        };
        let mut got = cert.valid_principals().to_vec();
        got.sort();
        if cert.public_key() != key.key.public_key().key_data()
            || cert.cert_type() != ssh_key::certificate::CertType::Host
            || cert.key_id() != hostname
            || got != want
            || cert.valid_before() <= now
            || cert.validate_at(cert.valid_after(), &host_ca).is_err()
        {
            return Ok(false);
        }
    }
    Ok(true)
}
