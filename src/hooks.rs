//! Package maintainer-script hooks: what `hostcert hook deb|rpm SCRIPT ARGS...` does.
//!
//! The deb maintainer scripts and the rpm scriptlets are thin shell: they gather the seeds
//! (debconf answers, `HOSTCERT_*` variables) into the environment and exec
//! `hostcert hook FORMAT SCRIPT "$@"` with the arguments dpkg or rpm gave them. Everything
//! else happens here, in two steps:
//!
//! - [`plan`] turns the script, its arguments and a few [`Facts`] about the host into a list
//!   of [`Action`]s. It is pure, so every argument sequence dpkg and rpm use is unit-tested.
//! - [`run`] carries the actions out: enrollment, unregistration and deactivation through a
//!   [`HookEnv`] the CLI implements with the agent's library, and the systemd unit handling
//!   (what debhelper and the `%systemd_*` macros would do) through [`System`].
//!
//! The rules: an upgrade never deactivates; removal unregisters (best effort) and then
//! deactivates, in `prerm` / `%preun`, while every module file is still on disk; a CA that
//! cannot be reached never fails an install: the seed is kept and `hostcert-enroll.timer`
//! retries.
//!
//! deb's `postrm purge` runs after the binary is gone: it deletes the files the agent listed in
//! its purge manifest as it created them ([`crate::created`]), and never a file the
//! administrator put there (such as a seed file dropped in before install).

use std::io::Write;

use crate::activation::{self, Options};
use crate::edit::fsio;
use crate::error::{Error, Exit};
use crate::paths::{Root, CONFIG_DIR, ENROLLED, SEED_FILE, SYSTEMD_RUNNING};
use crate::settings::{self, Effective, Flags, SETTINGS, TOKEN};
use crate::system::{has_program, System};
use crate::{config, created, enroll, inventory};

/// The systemd timers the agent package ships, enabled on install and stopped on removal.
pub const TIMERS: [&str; 2] = ["hostcert-renew.timer", "hostcert-enroll.timer"];

const SYSTEMCTL: &str = "/bin/systemctl";
const DEB_SYSTEMD_HELPER: &str = "/usr/bin/deb-systemd-helper";
const DEB_SYSTEMD_INVOKE: &str = "/usr/bin/deb-systemd-invoke";

/// Which package manager runs the script.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum PackageFormat {
    /// dpkg (Debian, Ubuntu).
    Deb,
    /// rpm (CentOS, RHEL).
    Rpm,
}

/// The maintainer script (deb) or scriptlet (rpm) calling the hook.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Script {
    /// deb `preinst`.
    Preinst,
    /// deb `postinst`.
    Postinst,
    /// deb `prerm`.
    Prerm,
    /// deb `postrm`.
    Postrm,
    /// rpm `%pre`.
    Pre,
    /// rpm `%post`.
    Post,
    /// rpm `%preun`.
    Preun,
    /// rpm `%postun`.
    Postun,
}

/// How far this host's enrollment got.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Enrollment {
    /// Never started: no CA is configured.
    None,
    /// Started (bootstrapped at least) but a step is missing.
    Incomplete,
    /// Bootstrap, certificate, activation and registration all done.
    Complete,
}

/// What [`plan`] needs to know about the host.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Facts {
    /// How far enrollment got.
    pub enrollment: Enrollment,
    /// Whether enrollment settings are available (environment, debconf answers or seed file).
    pub seeded: bool,
    /// Whether this is a `dpkg-reconfigure` run (debconf sets `DEBCONF_RECONFIGURE=1`).
    pub reconfigure: bool,
}

/// One step of a hook, in the order [`plan`] lists them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Action {
    /// Enroll from the seeds, skipping what is done (new answers redo the steps they change);
    /// an unreachable CA keeps the seed for `hostcert-enroll.timer` instead of failing.
    Enroll,
    /// Remove the host from the inventory; failure is reported, never fatal.
    Unregister,
    /// Revert every change activation made (sshd, PAM, NSS); failure stops the removal.
    Deactivate,
    /// Enable and start the timers (fresh install).
    EnableTimers,
    /// Reload units and restart the timers that are running (upgrade), keeping the admin's
    /// enable/disable choice.
    RestartTimers,
    /// Stop the timers (and disable them on rpm; deb's `postrm` masks and purges them).
    StopTimers,
    /// Say that nothing was enrolled and how to enroll.
    PrintHowToEnroll,
}

/// Why a hook failed.
#[derive(Debug, thiserror::Error)]
pub enum HookError {
    /// The package manager passed arguments this script does not know.
    #[error("{format:?} {script:?}: unexpected arguments {args:?}")]
    Arguments {
        /// The package format.
        format: PackageFormat,
        /// The script.
        script: Script,
        /// The arguments as given.
        args: Vec<String>,
    },
    /// The host's state could not be read.
    #[error("reading the host's state: {source}")]
    Facts {
        /// The agent's error.
        source: Error,
    },
    /// An action failed.
    #[error("{action:?} failed: {source}")]
    Action {
        /// The action.
        action: Action,
        /// The agent's error.
        source: Error,
    },
}

impl HookError {
    /// The exit code the hook ends with: a failed action keeps the agent's code.
    pub fn exit(&self) -> Exit {
        match self {
            HookError::Arguments { .. } => Exit::BadInput,
            HookError::Facts { source } | HookError::Action { source, .. } => source.exit(),
        }
    }
}

/// The agent operations a hook needs: [`Agent`] on a real host, a recorder in tests.
pub trait HookEnv {
    /// The effective settings (environment, which carries the debconf answers, then the seed
    /// file).
    fn settings(&self) -> Result<Effective, Error>;
    /// `hostcert enroll` with `settings`. [`Error::Unavailable`] (the CA cannot be reached,
    /// nothing changed) does not fail the hook: the seed is saved and the enroll timer retries.
    fn enroll(&mut self, settings: &Effective) -> Result<(), Error>;
    /// `hostcert unregister`.
    fn unregister(&mut self) -> Result<(), Error>;
    /// `hostcert deactivate`.
    fn deactivate(&mut self) -> Result<(), Error>;
}

/// The agent's own library behind [`HookEnv`], on the tree at `root`.
pub struct Agent<'a> {
    root: &'a Root,
    system: &'a dyn System,
}

impl<'a> Agent<'a> {
    /// The agent working on `root`, running commands through `system`.
    pub fn new(root: &'a Root, system: &'a dyn System) -> Self {
        Agent { root, system }
    }
}

impl HookEnv for Agent<'_> {
    fn settings(&self) -> Result<Effective, Error> {
        settings::resolve(self.root, &Flags::default(), &settings::process_env)
    }

    fn enroll(&mut self, settings: &Effective) -> Result<(), Error> {
        enroll::enroll(self.root, self.system, settings, false, false).map(drop)
    }

    fn unregister(&mut self) -> Result<(), Error> {
        inventory::unregister(self.root, None).map(drop)
    }

    fn deactivate(&mut self) -> Result<(), Error> {
        activation::deactivate(self.root, self.system, &Options::default()).map(drop)
    }
}

/// How far enrollment got on `root`: the marker `hostcert enroll` writes last, else the CA
/// settings bootstrap stores first.
pub fn enrollment(root: &Root) -> Result<Enrollment, Error> {
    Ok(if root.join(ENROLLED).exists() {
        Enrollment::Complete
    } else if config::load(root)?.is_some() {
        Enrollment::Incomplete
    } else {
        Enrollment::None
    })
}

/// The seed file holding `settings`, token included (`KEY=value` lines, environment names).
pub fn seed_text(settings: &Effective) -> String {
    let mut text =
        String::from("# Written by hostcert: an enrollment is pending (the CA was unreachable).\n");
    for setting in SETTINGS.iter().filter(|s| s.env != TOKEN.env) {
        if let Some(value) = settings.get(setting) {
            text.push_str(&format!("{}={value}\n", setting.env));
        }
    }
    if let Some(token) = settings.token() {
        text.push_str(&format!("{}={}\n", TOKEN.env, token.expose()));
    }
    text
}

/// The actions for `script` called with `args` on a host described by `facts`.
///
/// Argument sequences are those of dpkg (Debian Policy ch. 6) and rpm (`$1` = how many
/// instances of the package remain after the transaction). Unknown ones are an error, so a
/// new dpkg action is noticed instead of silently doing nothing.
pub fn plan(
    format: PackageFormat,
    script: Script,
    args: &[String],
    facts: &Facts,
) -> Result<Vec<Action>, HookError> {
    let args_str: Vec<&str> = args.iter().map(String::as_str).collect();
    let unknown = || HookError::Arguments {
        format,
        script,
        args: args.to_vec(),
    };
    use Script::*;
    let actions = match (format, script, args_str.as_slice()) {
        // deb: https://www.debian.org/doc/debian-policy/ch-maintainerscripts.html
        (
            PackageFormat::Deb,
            Preinst,
            ["install", ..] | ["upgrade", _, ..] | ["abort-upgrade", _, ..],
        ) => vec![],
        (PackageFormat::Deb, Postinst, ["configure"] | ["configure", ""]) => install(facts),
        (PackageFormat::Deb, Postinst, ["configure", _old]) if facts.reconfigure => {
            reconfigure(facts)
        }
        (PackageFormat::Deb, Postinst, ["configure", _old]) => upgrade(facts),
        // Unwinding a failed removal or upgrade: back to a configured, working host.
        (
            PackageFormat::Deb,
            Postinst,
            ["abort-upgrade", _, ..] | ["abort-remove", ..] | ["abort-deconfigure", ..],
        ) => upgrade(facts),
        (PackageFormat::Deb, Prerm, ["remove", ..] | ["deconfigure", ..]) => remove(facts),
        (PackageFormat::Deb, Prerm, ["upgrade", _, ..] | ["failed-upgrade", _, ..]) => vec![],
        // The files are gone (remove, purge, disappear) or the new version's scripts take over.
        (
            PackageFormat::Deb,
            Postrm,
            ["remove"]
            | ["purge"]
            | ["disappear", ..]
            | ["upgrade", _, ..]
            | ["failed-upgrade", _, ..]
            | ["abort-install", ..]
            | ["abort-upgrade", _, ..],
        ) => vec![],
        // rpm: the new package's %post runs before the old one's %preun and %postun.
        (PackageFormat::Rpm, Pre, [n]) if is_count(n) => vec![],
        (PackageFormat::Rpm, Post, ["1"]) => install(facts),
        (PackageFormat::Rpm, Post, [n]) if is_count(n) => upgrade(facts),
        (PackageFormat::Rpm, Preun, ["0"]) => remove(facts),
        (PackageFormat::Rpm, Preun | Postun, [n]) if is_count(n) => vec![],
        _ => return Err(unknown()),
    };
    Ok(actions)
}

fn is_count(arg: &str) -> bool {
    !arg.is_empty() && arg.bytes().all(|b| b.is_ascii_digit())
}

fn install(facts: &Facts) -> Vec<Action> {
    if facts.seeded {
        vec![Action::EnableTimers, Action::Enroll]
    } else if facts.enrollment == Enrollment::None {
        vec![Action::EnableTimers, Action::PrintHowToEnroll]
    } else {
        // Reinstalled after a removal that kept state (deb `remove` without purge).
        vec![Action::EnableTimers, Action::Enroll]
    }
}

fn upgrade(facts: &Facts) -> Vec<Action> {
    match facts.enrollment {
        Enrollment::Incomplete => vec![Action::RestartTimers, Action::Enroll],
        Enrollment::None | Enrollment::Complete => vec![Action::RestartTimers],
    }
}

fn reconfigure(facts: &Facts) -> Vec<Action> {
    if facts.seeded {
        vec![Action::RestartTimers, Action::Enroll]
    } else {
        vec![Action::RestartTimers, Action::PrintHowToEnroll]
    }
}

fn remove(facts: &Facts) -> Vec<Action> {
    let mut actions = vec![Action::StopTimers];
    if facts.enrollment != Enrollment::None {
        actions.push(Action::Unregister);
    }
    actions.push(Action::Deactivate);
    actions
}

/// Gathers the facts, plans and runs: the whole `hostcert hook` command.
///
/// Messages for the operator go to `out` (the scripts send it to stderr: on deb, stdout may
/// still be debconf's channel).
pub fn dispatch(
    format: PackageFormat,
    script: Script,
    args: &[String],
    env: &mut dyn HookEnv,
    root: &Root,
    system: &dyn System,
    out: &mut dyn Write,
) -> Result<(), HookError> {
    let facts = Facts {
        enrollment: enrollment(root).map_err(|source| HookError::Facts { source })?,
        seeded: seeded(&*env).map_err(|source| HookError::Facts { source })?,
        reconfigure: std::env::var_os("DEBCONF_RECONFIGURE").is_some_and(|v| v == "1"),
    };
    let actions = plan(format, script, args, &facts)?;
    run(format, &actions, env, root, system, out)
}

/// Whether settings name a CA to enroll with (the rest is enroll's to check).
fn seeded(env: &dyn HookEnv) -> Result<bool, Error> {
    Ok(env.settings()?.get(&settings::CA_URL).is_some())
}

/// Carries out `actions` in order; stops at the first one that fails (an unreachable CA and
/// a failed unregistration are reported, not failures).
pub fn run(
    format: PackageFormat,
    actions: &[Action],
    env: &mut dyn HookEnv,
    root: &Root,
    system: &dyn System,
    out: &mut dyn Write,
) -> Result<(), HookError> {
    let units = Units {
        format,
        root,
        system,
    };
    for &action in actions {
        let failed = |source| HookError::Action { action, source };
        match action {
            Action::Enroll => {
                let settings = env.settings().map_err(failed)?;
                match env.enroll(&settings) {
                    Ok(()) => say(out, "hostcert: enrolled"),
                    // A failed enrollment never fails the package: a half-configured package
                    // would block every later apt run on the host. Nothing was changed; the
                    // settings are kept for hostcert-enroll.timer, and `hostcert status` says why.
                    Err(Error::Unavailable(why)) => {
                        keep_seed(root, &settings).map_err(failed)?;
                        say(
                            out,
                            &format!(
                                "hostcert: the CA cannot be reached ({why}); the settings are kept in \
                                 {SEED_FILE} and hostcert-enroll.timer retries until the host is enrolled"
                            ),
                        );
                    }
                    Err(e) => {
                        keep_seed(root, &settings).map_err(failed)?;
                        say(
                            out,
                            &format!(
                                "hostcert: enrollment FAILED, nothing was changed: {e} (exit code {}). \
                                 Fix the settings in {SEED_FILE}{}; hostcert-enroll.timer retries with them",
                                e.exit() as u8,
                                if format == PackageFormat::Deb { " or run `dpkg-reconfigure hostcert`" } else { "" }
                            ),
                        );
                    }
                }
            }
            Action::Unregister => {
                if let Err(e) = env.unregister() {
                    say(
                        out,
                        &format!("hostcert: could not unregister this host ({e}); remove it from the inventory by hand"),
                    );
                }
            }
            Action::Deactivate => env.deactivate().map_err(failed)?,
            Action::EnableTimers => units.enable(out),
            Action::RestartTimers => units.restart(out),
            Action::StopTimers => units.stop(out),
            Action::PrintHowToEnroll => say(out, &how_to_enroll(format)),
        }
    }
    Ok(())
}

/// Writes `settings` to the seed file for the enroll timer, unless the administrator's seed
/// file is there already (then it is what the timer reads, and it stays as it is).
fn keep_seed(root: &Root, settings: &Effective) -> Result<(), Error> {
    if root.join(SEED_FILE).exists() {
        return Ok(());
    }
    fsio::ensure_dir(&root.join(CONFIG_DIR), 0o755).map_err(|e| Error::io(CONFIG_DIR, e))?;
    created::write(root, SEED_FILE, seed_text(settings).as_bytes(), 0o600)
}

fn how_to_enroll(format: PackageFormat) -> String {
    let reconfigure = match format {
        PackageFormat::Deb => ", or run `dpkg-reconfigure hostcert`",
        PackageFormat::Rpm => "",
    };
    format!(
        "hostcert: installed, nothing enrolled (no seeds). To enroll, write HOSTCERT_CA_URL, \
         HOSTCERT_FINGERPRINT and HOSTCERT_TOKEN lines to {SEED_FILE} (mode 0600) and run \
         `hostcert enroll`{reconfigure}."
    )
}

fn say(out: &mut dyn Write, message: &str) {
    // A closed stderr must not fail a package operation.
    let _ = writeln!(out, "{message}");
}

/// The systemd side of the hooks: what debhelper's snippets (deb) and the `%systemd_*`
/// macros (rpm) would do, every call guarded for hosts where systemd is not running.
struct Units<'a> {
    format: PackageFormat,
    root: &'a Root,
    system: &'a dyn System,
}

impl Units<'_> {
    fn running(&self) -> bool {
        self.root.is_host() && self.root.join(SYSTEMD_RUNNING).is_dir()
    }

    fn has(&self, program: &str) -> bool {
        has_program(self.root, program)
    }

    /// Runs a command; a failure is reported and does not stop the package operation,
    /// as debhelper's `|| true`.
    fn call(&self, out: &mut dyn Write, program: &str, args: &[&str]) {
        let line = format!("{program} {}", args.join(" "));
        match self.system.run(self.root, program, args) {
            Ok(o) if o.success => {}
            Ok(o) => say(
                out,
                &format!("hostcert: warning: {line} failed: {}", o.stderr.trim()),
            ),
            Err(e) => say(out, &format!("hostcert: warning: {e}")),
        }
    }

    fn enable(&self, out: &mut dyn Write) {
        // Enabling only links files, so it is done even where systemd does not run (an image
        // being built): the timers start at its first boot.
        match self.format {
            PackageFormat::Deb if self.has(DEB_SYSTEMD_HELPER) => {
                for unit in TIMERS {
                    self.call(out, DEB_SYSTEMD_HELPER, &["unmask", unit]);
                    self.call(out, DEB_SYSTEMD_HELPER, &["enable", unit]);
                }
            }
            _ if self.has(SYSTEMCTL) => {
                let mut args = vec!["--no-reload", "enable"];
                args.extend(TIMERS);
                self.call(out, SYSTEMCTL, &args);
            }
            _ => say(
                out,
                "hostcert: warning: no systemctl: the timers are not enabled",
            ),
        }
        if self.running() {
            self.call(out, SYSTEMCTL, &["daemon-reload"]);
            for unit in TIMERS {
                self.start_stop(out, "start", unit);
            }
        }
    }

    fn restart(&self, out: &mut dyn Write) {
        if self.running() {
            self.call(out, SYSTEMCTL, &["daemon-reload"]);
            let mut args = vec!["try-restart"];
            args.extend(TIMERS);
            self.call(out, SYSTEMCTL, &args);
        }
    }

    fn stop(&self, out: &mut dyn Write) {
        if self.format == PackageFormat::Rpm && self.has(SYSTEMCTL) {
            let mut args = vec!["--no-reload", "disable"];
            args.extend(TIMERS);
            self.call(out, SYSTEMCTL, &args);
        }
        if self.running() {
            for unit in TIMERS {
                self.start_stop(out, "stop", unit);
            }
        }
    }

    /// deb goes through `deb-systemd-invoke`, which honours `policy-rc.d` (no starts while
    /// an image is being built).
    fn start_stop(&self, out: &mut dyn Write, verb: &str, unit: &str) {
        if self.format == PackageFormat::Deb && self.has(DEB_SYSTEMD_INVOKE) {
            self.call(out, DEB_SYSTEMD_INVOKE, &[verb, unit]);
        } else {
            self.call(out, SYSTEMCTL, &[verb, unit]);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::system::Output;
    use std::cell::RefCell;
    use Action::*;
    use PackageFormat::{Deb, Rpm};

    fn facts(enrollment: Enrollment, seeded: bool) -> Facts {
        Facts {
            enrollment,
            seeded,
            reconfigure: false,
        }
    }

    const FRESH: Facts = Facts {
        enrollment: Enrollment::None,
        seeded: false,
        reconfigure: false,
    };
    const SEEDED: Facts = Facts {
        enrollment: Enrollment::None,
        seeded: true,
        reconfigure: false,
    };
    const PARTIAL: Facts = Facts {
        enrollment: Enrollment::Incomplete,
        seeded: false,
        reconfigure: false,
    };
    const ENROLLED: Facts = Facts {
        enrollment: Enrollment::Complete,
        seeded: false,
        reconfigure: false,
    };
    const ALL_FACTS: [Facts; 4] = [FRESH, SEEDED, PARTIAL, ENROLLED];

    fn p(
        format: PackageFormat,
        script: Script,
        args: &str,
        facts: &Facts,
    ) -> Result<Vec<Action>, HookError> {
        let args: Vec<String> = args.split_whitespace().map(str::to_string).collect();
        plan(format, script, &args, facts)
    }

    fn ok(format: PackageFormat, script: Script, args: &str, facts: &Facts) -> Vec<Action> {
        p(format, script, args, facts).unwrap_or_else(|e| panic!("{script:?} {args}: {e}"))
    }

    /// Every argument sequence dpkg passes (Debian Policy 6.5/6.6), with the versions as dpkg
    /// gives them.
    const DEB_SEQUENCES: &[(Script, &str)] = &[
        (Script::Preinst, "install"),
        (Script::Preinst, "install 0.1.0-1"),
        (Script::Preinst, "upgrade 0.1.0-1 0.2.0-1"),
        (Script::Preinst, "abort-upgrade 0.2.0-1"),
        (Script::Postinst, "configure"),
        (Script::Postinst, "configure 0.1.0-1"),
        (Script::Postinst, "abort-upgrade 0.2.0-1"),
        (Script::Postinst, "abort-remove"),
        (Script::Postinst, "abort-remove in-favour other 1.0"),
        (
            Script::Postinst,
            "abort-deconfigure in-favour other 1.0 removing hostcert 0.1.0-1",
        ),
        (Script::Prerm, "remove"),
        (Script::Prerm, "remove in-favour other 1.0"),
        (Script::Prerm, "upgrade 0.2.0-1"),
        (
            Script::Prerm,
            "deconfigure in-favour other 1.0 removing hostcert 0.1.0-1",
        ),
        (Script::Prerm, "failed-upgrade 0.1.0-1"),
        (Script::Postrm, "remove"),
        (Script::Postrm, "purge"),
        (Script::Postrm, "upgrade 0.2.0-1"),
        (Script::Postrm, "disappear other 1.0"),
        (Script::Postrm, "failed-upgrade 0.1.0-1"),
        (Script::Postrm, "abort-install"),
        (Script::Postrm, "abort-install 0.1.0-1"),
        (Script::Postrm, "abort-upgrade 0.1.0-1"),
    ];

    const RPM_SEQUENCES: &[(Script, &str)] = &[
        (Script::Pre, "1"),
        (Script::Pre, "2"),
        (Script::Post, "1"),
        (Script::Post, "2"),
        (Script::Preun, "0"),
        (Script::Preun, "1"),
        (Script::Postun, "0"),
        (Script::Postun, "1"),
    ];

    #[test]
    fn every_known_sequence_plans() {
        for facts in ALL_FACTS {
            for (script, args) in DEB_SEQUENCES {
                ok(Deb, *script, args, &facts);
            }
            for (script, args) in RPM_SEQUENCES {
                ok(Rpm, *script, args, &facts);
            }
        }
    }

    #[test]
    fn only_removal_deactivates_or_unregisters() {
        let removal = [
            (Deb, Script::Prerm, "remove"),
            (Deb, Script::Prerm, "deconfigure"),
        ];
        for facts in ALL_FACTS {
            for (format, sequences) in [(Deb, DEB_SEQUENCES), (Rpm, RPM_SEQUENCES)] {
                for (script, args) in sequences {
                    let actions = ok(format, *script, args, &facts);
                    let is_removal =
                        removal.iter().any(|(f, s, a)| {
                            *f == format && s == script && args.split(' ').next() == Some(a)
                        }) || (format == Rpm && *script == Script::Preun && *args == "0");
                    let reverts = actions.contains(&Deactivate) || actions.contains(&Unregister);
                    assert_eq!(
                        reverts, is_removal,
                        "{format:?} {script:?} {args} {facts:?}: {actions:?}"
                    );
                }
            }
        }
    }

    #[test]
    fn deb_fresh_install() {
        assert_eq!(ok(Deb, Script::Preinst, "install", &FRESH), vec![]);
        assert_eq!(
            ok(Deb, Script::Postinst, "configure", &FRESH),
            vec![EnableTimers, PrintHowToEnroll]
        );
        assert_eq!(
            ok(Deb, Script::Postinst, "configure", &SEEDED),
            vec![EnableTimers, Enroll]
        );
        // Some dpkg front ends pass an empty old version on first configuration.
        let args = vec!["configure".to_string(), String::new()];
        assert_eq!(
            plan(Deb, Script::Postinst, &args, &SEEDED).unwrap(),
            vec![EnableTimers, Enroll]
        );
    }

    #[test]
    fn deb_reinstall_after_remove_resumes_enrollment() {
        // `dpkg -r` keeps /var/lib/hostcert; the next install finds a deactivated host.
        assert_eq!(
            ok(Deb, Script::Preinst, "install 0.1.0-1", &PARTIAL),
            vec![]
        );
        assert_eq!(
            ok(Deb, Script::Postinst, "configure", &PARTIAL),
            vec![EnableTimers, Enroll]
        );
    }

    #[test]
    fn deb_upgrade() {
        assert_eq!(ok(Deb, Script::Prerm, "upgrade 0.2.0-1", &ENROLLED), vec![]);
        assert_eq!(
            ok(Deb, Script::Preinst, "upgrade 0.1.0-1 0.2.0-1", &ENROLLED),
            vec![]
        );
        assert_eq!(
            ok(Deb, Script::Postrm, "upgrade 0.2.0-1", &ENROLLED),
            vec![]
        );
        assert_eq!(
            ok(Deb, Script::Postinst, "configure 0.1.0-1", &ENROLLED),
            vec![RestartTimers]
        );
        assert_eq!(
            ok(Deb, Script::Postinst, "configure 0.1.0-1", &PARTIAL),
            vec![RestartTimers, Enroll]
        );
        assert_eq!(
            ok(Deb, Script::Postinst, "configure 0.1.0-1", &FRESH),
            vec![RestartTimers]
        );
        // Seeds on an upgrade's command line do not enroll a host that never was: the enroll
        // timer picks up a pending seed file.
        assert_eq!(
            ok(Deb, Script::Postinst, "configure 0.1.0-1", &SEEDED),
            vec![RestartTimers]
        );
    }

    #[test]
    fn deb_reconfigure_enrolls_again() {
        let mut f = facts(Enrollment::Complete, true);
        f.reconfigure = true;
        assert_eq!(
            ok(Deb, Script::Postinst, "configure 0.1.0-1", &f),
            vec![RestartTimers, Enroll]
        );
        f.seeded = false;
        assert_eq!(
            ok(Deb, Script::Postinst, "configure 0.1.0-1", &f),
            vec![RestartTimers, PrintHowToEnroll]
        );
    }

    #[test]
    fn deb_failed_upgrade_and_abort_paths() {
        assert_eq!(
            ok(Deb, Script::Prerm, "failed-upgrade 0.1.0-1", &ENROLLED),
            vec![]
        );
        assert_eq!(
            ok(Deb, Script::Postrm, "failed-upgrade 0.1.0-1", &ENROLLED),
            vec![]
        );
        assert_eq!(
            ok(Deb, Script::Preinst, "abort-upgrade 0.2.0-1", &ENROLLED),
            vec![]
        );
        assert_eq!(
            ok(Deb, Script::Postrm, "abort-upgrade 0.1.0-1", &ENROLLED),
            vec![]
        );
        assert_eq!(ok(Deb, Script::Postrm, "abort-install", &FRESH), vec![]);
        assert_eq!(
            ok(Deb, Script::Postrm, "abort-install 0.1.0-1", &FRESH),
            vec![]
        );
        assert_eq!(
            ok(Deb, Script::Postinst, "abort-upgrade 0.2.0-1", &ENROLLED),
            vec![RestartTimers]
        );
        // A removal that failed half-way (unregistered, still active) is brought back.
        assert_eq!(
            ok(Deb, Script::Postinst, "abort-remove", &PARTIAL),
            vec![RestartTimers, Enroll]
        );
        assert_eq!(
            ok(
                Deb,
                Script::Postinst,
                "abort-deconfigure in-favour x 1 removing hostcert 0.1.0-1",
                &ENROLLED
            ),
            vec![RestartTimers]
        );
    }

    #[test]
    fn deb_remove_and_purge() {
        assert_eq!(
            ok(Deb, Script::Prerm, "remove", &ENROLLED),
            vec![StopTimers, Unregister, Deactivate]
        );
        assert_eq!(
            ok(Deb, Script::Prerm, "remove", &PARTIAL),
            vec![StopTimers, Unregister, Deactivate]
        );
        // Never enrolled: nothing to unregister, deactivation is a no-op but still run.
        assert_eq!(
            ok(Deb, Script::Prerm, "remove", &FRESH),
            vec![StopTimers, Deactivate]
        );
        assert_eq!(
            ok(
                Deb,
                Script::Prerm,
                "deconfigure in-favour x 1 removing hostcert 0.1.0-1",
                &ENROLLED
            ),
            vec![StopTimers, Unregister, Deactivate]
        );
        // By postrm the binary is gone: purge is the shell's db_purge and file removal.
        assert_eq!(ok(Deb, Script::Postrm, "remove", &ENROLLED), vec![]);
        assert_eq!(ok(Deb, Script::Postrm, "purge", &ENROLLED), vec![]);
        assert_eq!(
            ok(Deb, Script::Postrm, "disappear other 1.0", &ENROLLED),
            vec![]
        );
    }

    #[test]
    fn rpm_install_upgrade_erase() {
        assert_eq!(ok(Rpm, Script::Pre, "1", &FRESH), vec![]);
        assert_eq!(
            ok(Rpm, Script::Post, "1", &FRESH),
            vec![EnableTimers, PrintHowToEnroll]
        );
        assert_eq!(
            ok(Rpm, Script::Post, "1", &SEEDED),
            vec![EnableTimers, Enroll]
        );
        // Upgrade (and `rpm --reinstall`): new %post 2, then old %preun 1 and %postun 1.
        assert_eq!(ok(Rpm, Script::Pre, "2", &ENROLLED), vec![]);
        assert_eq!(ok(Rpm, Script::Post, "2", &ENROLLED), vec![RestartTimers]);
        assert_eq!(
            ok(Rpm, Script::Post, "2", &PARTIAL),
            vec![RestartTimers, Enroll]
        );
        assert_eq!(ok(Rpm, Script::Preun, "1", &ENROLLED), vec![]);
        assert_eq!(ok(Rpm, Script::Postun, "1", &ENROLLED), vec![]);
        // Erase.
        assert_eq!(
            ok(Rpm, Script::Preun, "0", &ENROLLED),
            vec![StopTimers, Unregister, Deactivate]
        );
        assert_eq!(
            ok(Rpm, Script::Preun, "0", &FRESH),
            vec![StopTimers, Deactivate]
        );
        assert_eq!(ok(Rpm, Script::Postun, "0", &ENROLLED), vec![]);
    }

    #[test]
    fn unknown_arguments_are_refused() {
        for (format, script, args) in [
            (Deb, Script::Postinst, ""),
            (Deb, Script::Postinst, "triggered"),
            (Deb, Script::Prerm, "upgrade"),
            (Deb, Script::Prerm, "bogus"),
            (Deb, Script::Postrm, "upgrade"),
            (Deb, Script::Post, "1"),
            (Rpm, Script::Postinst, "configure"),
            (Rpm, Script::Post, ""),
            (Rpm, Script::Post, "one"),
            (Rpm, Script::Preun, "0 1"),
        ] {
            let err = p(format, script, args, &ENROLLED).expect_err(args);
            assert_eq!(err.exit(), Exit::BadInput);
        }
    }

    /// Records the agent operations; `enroll` answers with `enroll_result`.
    struct Env {
        calls: Vec<String>,
        enroll_result: fn() -> Result<(), Error>,
        unregister_fails: bool,
    }

    impl Env {
        fn new(enroll_result: fn() -> Result<(), Error>) -> Self {
            Env {
                calls: vec![],
                enroll_result,
                unregister_fails: false,
            }
        }
    }

    fn enrolled() -> Result<(), Error> {
        Ok(())
    }

    fn ca_down() -> Result<(), Error> {
        Err(Error::Unavailable("connection refused".into()))
    }

    fn bad_token() -> Result<(), Error> {
        Err(Error::BadInput("token expired".into()))
    }

    impl HookEnv for Env {
        fn settings(&self) -> Result<Effective, Error> {
            let empty = tempfile::tempdir().unwrap();
            let env = |name: &str| match name {
                "HOSTCERT_CA_URL" => Some("https://ca.example.test:8443".to_string()),
                "HOSTCERT_TAGS" => Some("env=prod".to_string()),
                "HOSTCERT_TOKEN" => Some("secret-token".to_string()),
                _ => None,
            };
            settings::resolve(&Root::new(empty.path()), &Flags::default(), &env)
        }
        fn enroll(&mut self, settings: &Effective) -> Result<(), Error> {
            assert_eq!(settings.token().map(|t| t.expose()), Some("secret-token"));
            self.calls.push("enroll".into());
            (self.enroll_result)()
        }
        fn unregister(&mut self) -> Result<(), Error> {
            self.calls.push("unregister".into());
            if self.unregister_fails {
                return Err(Error::Unavailable("connection refused".into()));
            }
            Ok(())
        }
        fn deactivate(&mut self) -> Result<(), Error> {
            self.calls.push("deactivate".into());
            Ok(())
        }
    }

    /// Records the command lines instead of running systemctl against this machine's init.
    #[derive(Default)]
    struct Commands(RefCell<Vec<String>>);

    impl System for Commands {
        fn run(&self, _root: &Root, program: &str, args: &[&str]) -> Result<Output, Error> {
            self.0
                .borrow_mut()
                .push(format!("{program} {}", args.join(" ")));
            Ok(Output {
                success: true,
                stdout: String::new(),
                stderr: String::new(),
            })
        }
    }

    /// A root with the given (empty) files, where systemd is not running.
    fn tree(files: &[&str]) -> tempfile::TempDir {
        let dir = tempfile::tempdir().unwrap();
        for file in files {
            let path = dir.path().join(file.trim_start_matches('/'));
            std::fs::create_dir_all(path.parent().unwrap()).unwrap();
            std::fs::write(path, "").unwrap();
        }
        dir
    }

    fn run_in(
        format: PackageFormat,
        actions: &[Action],
        env: &mut Env,
        dir: &tempfile::TempDir,
    ) -> (Result<(), HookError>, Vec<String>, String) {
        let system = Commands::default();
        let mut out = Vec::new();
        let result = run(
            format,
            actions,
            env,
            &Root::new(dir.path()),
            &system,
            &mut out,
        );
        (
            result,
            system.0.into_inner(),
            String::from_utf8(out).unwrap(),
        )
    }

    fn created_files(dir: &tempfile::TempDir) -> Vec<String> {
        crate::created::list(&Root::new(dir.path())).unwrap()
    }

    #[test]
    fn unreachable_ca_keeps_the_seed_and_succeeds() {
        use std::os::unix::fs::PermissionsExt;
        let mut env = Env::new(ca_down);
        let dir = tree(&[]);
        let (result, _, out) = run_in(Deb, &[Enroll], &mut env, &dir);
        result.unwrap();
        assert_eq!(env.calls, ["enroll"]);
        assert!(out.contains("hostcert-enroll.timer retries"), "{out}");
        assert!(!out.contains("secret-token"), "{out}");
        // The settings the environment carried, token included, in a root-only seed file...
        let seed = dir.path().join(SEED_FILE.trim_start_matches('/'));
        let text = std::fs::read_to_string(&seed).unwrap();
        assert!(
            text.contains("\nHOSTCERT_CA_URL=https://ca.example.test:8443\n"),
            "{text}"
        );
        assert!(text.contains("\nHOSTCERT_TAGS=env=prod\n"), "{text}");
        assert!(text.ends_with("\nHOSTCERT_TOKEN=secret-token\n"), "{text}");
        let mode = std::fs::metadata(&seed).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o600);
        // ...which the agent reads back as they were.
        let back = settings::resolve(&Root::new(dir.path()), &Flags::default(), &|_| None).unwrap();
        assert_eq!(back.get(&settings::TAGS), Some("env=prod"));
        assert_eq!(back.token().map(|t| t.expose()), Some("secret-token"));
        // hostcert wrote it, so a purge removes it.
        assert_eq!(created_files(&dir), [SEED_FILE]);
    }

    #[test]
    fn a_seed_file_the_admin_dropped_in_is_kept_and_never_listed_for_purge() {
        let mut env = Env::new(ca_down);
        let dir = tree(&[SEED_FILE]);
        let (result, _, _) = run_in(Deb, &[Enroll], &mut env, &dir);
        result.unwrap();
        let seed = dir.path().join(SEED_FILE.trim_start_matches('/'));
        assert_eq!(std::fs::read_to_string(seed).unwrap(), "");
        assert!(created_files(&dir).is_empty());
    }

    #[test]
    fn failed_enrollment_says_why_keeps_the_seed_and_does_not_fail_the_package() {
        let mut env = Env::new(bad_token);
        let dir = tree(&[]);
        let (result, _, out) = run_in(Rpm, &[Enroll, EnableTimers], &mut env, &dir);
        result.unwrap();
        assert_eq!(env.calls, ["enroll"]);
        assert!(
            out.contains("enrollment FAILED, nothing was changed") && out.contains("exit code 2"),
            "{out}"
        );
        assert!(!out.contains("secret-token"), "{out}");
        assert!(dir.path().join(SEED_FILE.trim_start_matches('/')).exists());
    }

    #[test]
    fn successful_enrollment_keeps_going() {
        let mut env = Env::new(enrolled);
        let (result, _, out) = run_in(Deb, &[Enroll], &mut env, &tree(&[]));
        result.unwrap();
        assert_eq!(env.calls, ["enroll"]);
        assert!(out.contains("hostcert: enrolled"), "{out}");
    }

    #[test]
    fn unregister_is_best_effort_and_deactivate_follows() {
        let mut env = Env::new(enrolled);
        env.unregister_fails = true;
        let (result, _, out) = run_in(
            Deb,
            &[StopTimers, Unregister, Deactivate],
            &mut env,
            &tree(&[]),
        );
        result.unwrap();
        assert_eq!(env.calls, ["unregister", "deactivate"]);
        assert!(out.contains("could not unregister"), "{out}");
    }

    #[test]
    fn deb_enables_through_deb_systemd_helper_without_starting_when_systemd_is_down() {
        let mut env = Env::new(enrolled);
        let (result, commands, out) = run_in(
            Deb,
            &[EnableTimers, PrintHowToEnroll],
            &mut env,
            &tree(&[DEB_SYSTEMD_HELPER, SYSTEMCTL]),
        );
        result.unwrap();
        assert_eq!(
            commands,
            [
                "/usr/bin/deb-systemd-helper unmask hostcert-renew.timer",
                "/usr/bin/deb-systemd-helper enable hostcert-renew.timer",
                "/usr/bin/deb-systemd-helper unmask hostcert-enroll.timer",
                "/usr/bin/deb-systemd-helper enable hostcert-enroll.timer",
            ]
        );
        assert!(out.contains("dpkg-reconfigure hostcert"), "{out}");
    }

    #[test]
    fn rpm_enables_and_disables_with_systemctl_and_never_starts_without_systemd() {
        let mut env = Env::new(enrolled);
        let (result, commands, _) = run_in(
            Rpm,
            &[EnableTimers, RestartTimers, StopTimers],
            &mut env,
            &tree(&[SYSTEMCTL]),
        );
        result.unwrap();
        assert_eq!(
            commands,
            [
                "/bin/systemctl --no-reload enable hostcert-renew.timer hostcert-enroll.timer",
                "/bin/systemctl --no-reload disable hostcert-renew.timer hostcert-enroll.timer",
            ]
        );
    }

    #[test]
    fn no_systemctl_is_a_warning_not_a_failure() {
        let mut env = Env::new(enrolled);
        let (result, commands, out) = run_in(Rpm, &[EnableTimers], &mut env, &tree(&[]));
        result.unwrap();
        assert!(commands.is_empty());
        assert!(out.contains("timers are not enabled"), "{out}");
    }
}
