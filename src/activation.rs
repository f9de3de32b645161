//! activate / deactivate: plan every file change, validate, apply through the edit engine,
//! reload sshd.

use std::path::{Path, PathBuf};

use crate::distro::Distro;
use crate::edit::{fsio, Change, Engine, Outcome};
use crate::error::{Error, Result};
use crate::nss::{self, Route};
use crate::pam::{self, Plan};
use crate::paths::{
    Root, AUTHSELECT_PROFILE_DIR, CA_USER_KEYS, CONFIG_DIR, NSSWITCH, PAM_SSHD, PAM_SU, PAM_SUDO,
    SSHD_CONFIG, STATE_FILE, TRUSTED_USER_CA_KEYS,
};
use crate::sshd::{self, SshdConfig, Validation};
use crate::system::{reload_sshd, Reload, System};

/// What the caller asked for.
#[derive(Debug, Clone, Default)]
pub struct Options {
    /// The host's name, recorded for `status` (default: the FQDN).
    pub hostname: Option<String>,
    /// Show what would change and change nothing.
    pub dry_run: bool,
    /// Skip the sshd reload.
    pub no_reload: bool,
}

/// One file in a report.
#[derive(Debug, Clone, serde::Serialize)]
pub struct FileReport {
    /// System path.
    pub path: PathBuf,
    /// What was (or would be) done.
    pub action: String,
    /// Unified diff.
    #[serde(skip)]
    pub diff: String,
}

/// What activate or deactivate did.
#[derive(Debug, Clone, Default, serde::Serialize)]
pub struct Report {
    /// Nothing was changed on purpose.
    pub dry_run: bool,
    /// Files changed (or that would be).
    pub files: Vec<FileReport>,
    /// External commands run (or that would be), e.g. authselect.
    pub commands: Vec<String>,
    /// Things the operator should know: skipped parts and why.
    pub notes: Vec<String>,
    /// The sshd_config check.
    pub validation: Option<Validation>,
    /// The sshd reload.
    pub reload: Option<Reload>,
}

impl Report {
    /// Whether anything changed (or would).
    pub fn changed(&self) -> bool {
        !self.files.is_empty() || !self.commands.is_empty()
    }
}

/// Refuses to change the running system without root; a tree under `--root` may be the user's.
pub fn require_root(root: &Root) -> Result<()> {
    if root.is_host() && !nix::unistd::geteuid().is_root() {
        return Err(Error::NotRoot);
    }
    Ok(())
}

/// Configures sshd, PAM and NSS for the fleet. A second run changes nothing.
pub fn activate(root: &Root, system: &dyn System, options: &Options) -> Result<Report> {
    require_root(root)?;
    let distro = Distro::detect(root)?;
    let facts = distro.facts();
    let mut engine = if options.dry_run {
        Engine::load(root)?
    } else {
        Engine::lock(root)?
    };
    if engine.read(Path::new(SSHD_CONFIG))?.is_none() {
        return Err(Error::BadInput(format!(
            "{SSHD_CONFIG} does not exist: is openssh-server installed?"
        )));
    }
    let mut report = Report {
        dry_run: options.dry_run,
        ..Report::default()
    };
    let mut changes: Vec<Change> = Vec::new();

    // sshd_config: its admin's TrustedUserCAKeys feeds hostcert's user-CA file.
    let mut admin_ca = None;
    let mut sshd_change = engine.plan_edit(Path::new(SSHD_CONFIG), |text| {
        sshd::remove_stray_block(text);
        let config = SshdConfig::read(root, text);
        admin_ca = config
            .trusted_user_ca_keys
            .clone()
            .filter(|p| p != TRUSTED_USER_CA_KEYS && p != "none");
        let block = sshd::block(root, &config);
        Ok(vec![sshd::insert_block(text, block)])
    })?;
    let user_ca = user_ca_file(root, admin_ca.as_deref(), &mut report.notes);
    changes.extend(engine.plan_file(Path::new(TRUSTED_USER_CA_KEYS), user_ca, 0o644)?);

    for (path, planner) in [
        (
            PAM_SSHD,
            pam::plan_mkhomedir as fn(&Root, &crate::distro::Facts, &crate::edit::Text) -> Plan,
        ),
        (PAM_SUDO, pam::plan_account),
        (PAM_SU, pam::plan_account),
    ] {
        if engine.read(&root.resolve(path)?)?.is_none() {
            report
                .notes
                .push(format!("{path} does not exist: left alone"));
            continue;
        }
        let change = engine.plan_edit(Path::new(path), |text| {
            let plan = planner(root, facts, text);
            if let Plan::Skip(why) = &plan {
                report.notes.push(format!("{path}: {why}"));
            }
            Ok(pam::apply(text, plan))
        })?;
        changes.extend(change);
    }

    let mut commands: Vec<Vec<String>> = Vec::new();
    let route = nss::route(root, facts, engine.state().authselect.as_ref())?;
    match &route {
        Route::Direct => {
            changes.extend(engine.plan_edit(Path::new(NSSWITCH), |text| Ok(nss::add_source(text)))?)
        }
        Route::Skip(why) => {
            report.notes.push(format!("{NSSWITCH}: {why}"));
            // A source added earlier goes when its module has gone.
            if engine.state().file(&root.resolve(NSSWITCH)?).is_some() {
                changes.extend(engine.plan_edit(Path::new(NSSWITCH), |_| Ok(Vec::new()))?);
            }
        }
        Route::Authselect(selection) => {
            let template = nss::base_template(root, &selection.profile)?;
            let mut text = crate::edit::Text::parse(&engine.read(&template)?.unwrap_or_default());
            nss::add_source(&mut text);
            let profile_file = Path::new(AUTHSELECT_PROFILE_DIR).join("nsswitch.conf");
            changes.extend(engine.plan_file(&profile_file, text.render(), 0o644)?);
            if !root.join(AUTHSELECT_PROFILE_DIR).is_dir() {
                commands.push(nss::create_profile_args(&selection.profile));
            }
            if nss::current_selection(root).map(|s| s.profile).as_deref() != Some(nss::PROFILE) {
                commands.push(nss::select_args(&crate::edit::AuthselectSelection {
                    profile: nss::PROFILE.to_string(),
                    features: selection.features.clone(),
                }));
            }
            report.notes.push(format!(
                "{NSSWITCH} belongs to authselect: hostcert uses the profile {} based on {}",
                nss::PROFILE,
                selection.profile
            ));
        }
    }

    // Validate before anything is written: a refused sshd_config changes nothing.
    if let Some(change) = sshd_change.as_mut() {
        let candidate = Path::new("/").join(
            change
                .candidate()?
                .strip_prefix(root.dir())
                .unwrap_or(Path::new("")),
        );
        report.validation = Some(sshd::validate(root, system, facts, &candidate)?);
    }
    // sshd_config last: it names the files written before it.
    changes.extend(sshd_change);

    report.files = changes
        .iter()
        .map(|c| FileReport {
            path: c.path().to_path_buf(),
            action: "changed".into(),
            diff: c.diff(),
        })
        .collect();
    report.commands = commands
        .iter()
        .map(|c| format!("authselect {}", c.join(" ")))
        .collect();
    if options.dry_run {
        return Ok(report);
    }

    let hostname = options
        .hostname
        .clone()
        .or_else(|| engine.state().hostname.clone());
    let state = engine.state_mut();
    state.sshd_service = Some(facts.sshd_service.to_string());
    if hostname.is_some() && state.hostname != hostname {
        state.hostname = hostname;
    }
    if let Route::Authselect(selection) = &route {
        engine.state_mut().authselect = Some(selection.clone());
    }
    // Intent first: before authselect runs, deactivate must know what to select back. Without
    // commands, the engine's own intent carries these fields.
    if !commands.is_empty() {
        engine.save()?;
    }

    let config_dir = root.join(CONFIG_DIR);
    fsio::ensure_dir(&config_dir, 0o755).map_err(|e| Error::io(CONFIG_DIR, e))?;
    let (create, select): (Vec<_>, Vec<_>) =
        commands.into_iter().partition(|c| c[0] == "create-profile");
    for args in create {
        nss::authselect(root, system, &args)?;
        engine.step();
        let dir = root.join(AUTHSELECT_PROFILE_DIR);
        fsio::ensure_dir(&dir, 0o755).map_err(|e| Error::io(AUTHSELECT_PROFILE_DIR, e))?;
    }
    let created: Vec<String> = changes
        .iter()
        .filter(|c| c.creates())
        .map(|c| c.path().display().to_string())
        .collect();
    engine.apply(changes)?;
    label_new_files(root, system, &created);
    for args in select {
        nss::authselect(root, system, &args)?;
        engine.step();
    }
    if report.changed() && !options.no_reload {
        report.reload = Some(reload_sshd(root, system, facts.sshd_service)?);
    }
    Ok(report)
}

/// Gives files hostcert created the SELinux label policy wants for their place (replaced
/// files keep the label they had). Best effort: a wrong label is logged, not fatal.
fn label_new_files(root: &Root, system: &dyn System, created: &[String]) {
    const RESTORECON: &str = "/sbin/restorecon";
    if created.is_empty() || !root.is_host() || !crate::system::has_program(root, RESTORECON) {
        return;
    }
    let args: Vec<&str> = created.iter().map(String::as_str).collect();
    match system.run(root, RESTORECON, &args) {
        Ok(out) if out.success => {}
        Ok(out) => tracing::warn!("restorecon: {}", out.stderr.trim()),
        Err(e) => tracing::warn!("restorecon: {e}"),
    }
}

/// Undoes everything activate did: original bytes where nobody edited a file since, only
/// hostcert's lines removed where somebody did. Never activated: nothing to do.
pub fn deactivate(root: &Root, system: &dyn System, options: &Options) -> Result<Report> {
    require_root(root)?;
    let mut report = Report {
        dry_run: options.dry_run,
        ..Report::default()
    };
    // A validation candidate left by a process killed before it recorded anything.
    if !options.dry_run {
        fsio::discard_candidate(&root.join(SSHD_CONFIG)).map_err(|e| Error::io(SSHD_CONFIG, e))?;
    }
    if !root.join(STATE_FILE).exists() {
        report
            .notes
            .push("hostcert is not active: nothing to do".into());
        return Ok(report);
    }
    let mut engine = if options.dry_run {
        Engine::load(root)?
    } else {
        Engine::lock(root)?
    };

    if let Some(original) = engine.state().authselect.clone() {
        if nss::current_selection(root).map(|s| s.profile).as_deref() == Some(nss::PROFILE) {
            let args = nss::select_args(&original);
            report
                .commands
                .push(format!("authselect {}", args.join(" ")));
            if !options.dry_run {
                nss::authselect(root, system, &args)?;
                engine.step();
            }
        }
    }
    for reverted in engine.revert(Path::new("/"), options.dry_run)? {
        if reverted.outcome != Outcome::Unchanged {
            report.files.push(FileReport {
                path: reverted.path,
                action: reverted.outcome.to_string(),
                diff: reverted.diff,
            });
        }
    }
    if engine.state().authselect.is_some() && !options.dry_run {
        let dir = root.join(AUTHSELECT_PROFILE_DIR);
        if dir.exists() {
            std::fs::remove_dir_all(&dir).map_err(|e| Error::io(AUTHSELECT_PROFILE_DIR, e))?;
        }
        engine.state_mut().authselect = None;
        engine.save()?;
    }
    let service = engine.state().sshd_service.clone().or_else(|| {
        Distro::detect(root)
            .ok()
            .map(|d| d.facts().sshd_service.to_string())
    });
    if !options.dry_run && report.changed() && !options.no_reload {
        if let Some(service) = service {
            report.reload = Some(reload_sshd(root, system, &service)?);
        }
    }
    Ok(report)
}

/// hostcert's user-CA file: the CA's user keys, plus the keys of the admin's own
/// `TrustedUserCAKeys` file, since sshd honours only the first such line and that is now
/// hostcert's: nobody may lose access.
pub fn user_ca_file(root: &Root, admin_ca: Option<&str>, notes: &mut Vec<String>) -> Vec<u8> {
    let mut out = String::from(
        "# SSH user CA keys sshd trusts (TrustedUserCAKeys), written by hostcert: edits are replaced.\n",
    );
    let mut seen: Vec<String> = Vec::new();
    let mut section = |title: String, keys: Vec<String>, out: &mut String| {
        let fresh: Vec<String> = keys
            .into_iter()
            .filter(|k| !seen.contains(&key_id(k)))
            .collect();
        if fresh.is_empty() {
            return;
        }
        out.push_str(&title);
        for key in fresh {
            seen.push(key_id(&key));
            out.push_str(&key);
            out.push('\n');
        }
    };
    section(
        format!("# From the CA ({CA_USER_KEYS}):\n"),
        read_keys(root, CA_USER_KEYS),
        &mut out,
    );
    if let Some(admin) = admin_ca {
        let keys = read_keys(root, admin);
        if keys.is_empty() {
            notes.push(format!(
                "the admin's TrustedUserCAKeys file {admin} has no keys"
            ));
        } else {
            notes.push(format!(
                "sshd honours only the first TrustedUserCAKeys: {TRUSTED_USER_CA_KEYS} also carries the {} key(s) of {admin}",
                keys.len()
            ));
        }
        section(
            format!("# From the admin's TrustedUserCAKeys file {admin}:\n"),
            keys,
            &mut out,
        );
    }
    out.into_bytes()
}

/// The public keys in an authorized_keys-style file (comments and blank lines skipped).
pub fn read_keys(root: &Root, path: &str) -> Vec<String> {
    let Ok(path) = root.resolve(path) else {
        return Vec::new();
    };
    std::fs::read_to_string(root.join(path))
        .map(|text| {
            text.lines()
                .map(str::trim)
                .filter(|l| !l.is_empty() && !l.starts_with('#'))
                .map(str::to_string)
                .collect()
        })
        .unwrap_or_default()
}

/// A key's identity: type and blob, without its comment.
fn key_id(line: &str) -> String {
    line.split_whitespace()
        .take(2)
        .collect::<Vec<_>>()
        .join(" ")
}
