//! The command line: arguments, output and exit codes.

use std::io::Write;
use std::path::PathBuf;
use std::process::ExitCode;

use clap::{CommandFactory, Parser, Subcommand};

use crate::activation::{self, Options, Report};
use crate::certificate;
use crate::config;
use crate::enroll;
use crate::error::{Error, Exit, EXIT_CODES_HELP};
use crate::inventory::{self, Registration};
use crate::keys::KeyType;
use crate::paths::Root;
use crate::settings::{self, Flags};
use crate::status::{self, human, Status};
use crate::system::Real;

/// Turns this host into a member of an SSH certificate fleet: host certificate, sshd, PAM and
/// NSS configuration, inventory registration. Every change is recorded and reversible.
#[derive(Debug, Parser)]
#[command(name = "hostcert", version, after_help = EXIT_CODES_HELP)]
pub struct Cli {
    /// Work on the tree at DIR instead of `/`: every path read or written is taken inside DIR.
    #[arg(long, global = true, value_name = "DIR", default_value = "/")]
    pub root: PathBuf,
    /// The command.
    #[command(subcommand)]
    pub command: Command,
}

/// hostcert's commands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Configure sshd (managed block at the top of sshd_config), PAM and NSS, validate with
    /// `sshd -t`, then reload sshd. A second run changes nothing.
    #[command(after_help = EXIT_CODES_HELP)]
    Activate {
        /// The host's name, as users type it (default: the FQDN).
        hostname: Option<String>,
        /// Print a unified diff of every file that would change, and change nothing.
        #[arg(long)]
        dry_run: bool,
        /// Do not reload sshd.
        #[arg(long)]
        no_reload: bool,
    },
    /// Undo activate: original bytes where a file is as hostcert left it, only hostcert's lines
    /// removed where someone edited it since. Never activated: nothing to do.
    #[command(after_help = EXIT_CODES_HELP)]
    Deactivate {
        /// Print a unified diff of every file that would change, and change nothing.
        #[arg(long)]
        dry_run: bool,
        /// Do not reload sshd.
        #[arg(long)]
        no_reload: bool,
    },
    /// Show what is active, the effective sshd values, the host certificates and warnings.
    #[command(after_help = EXIT_CODES_HELP)]
    Status {
        /// Print a JSON document (stable field names) instead of text.
        #[arg(long)]
        json: bool,
    },
    /// Pin the CA: fetch its root without trusting TLS, check its SHA-256 fingerprint, store it
    /// with the CA URL under /etc/hostcert. Every later CA call trusts only that root.
    #[command(after_help = EXIT_CODES_HELP)]
    Bootstrap {
        /// The CA URL, `https://host[:port]`.
        #[arg(long, value_name = "URL", env = "HOSTCERT_CA_URL")]
        ca_url: String,
        /// Hex SHA-256 of the root certificate's DER (`:` and `-` allowed).
        #[arg(long, value_name = "HEX", env = "HOSTCERT_FINGERPRINT")]
        fingerprint: String,
    },
    /// Certify every host key sshd offers (generating missing ECDSA/Ed25519 keys): the first
    /// with the token, the others by SSHPOP proof with the first one's fresh certificate. The
    /// token comes from HOSTCERT_TOKEN, --token-file, HOSTCERT_TOKEN_FILE or the seed file,
    /// never from the command line.
    #[command(after_help = EXIT_CODES_HELP)]
    Certificate {
        /// Key ID and first principal (default: HOSTCERT_HOSTNAME, the seed file, the FQDN).
        #[arg(long, value_name = "NAME")]
        hostname: Option<String>,
        /// A further principal (repeatable; default: HOSTCERT_PRINCIPALS).
        #[arg(long = "principal", value_name = "P")]
        principals: Vec<String>,
        /// Which missing host key types to generate.
        #[arg(long, value_enum, default_value_t = KeyType::All)]
        key_type: KeyType,
        /// Read the token from FILE.
        #[arg(long, value_name = "FILE")]
        token_file: Option<String>,
        /// Do not reload sshd.
        #[arg(long)]
        no_reload: bool,
    },
    /// Renew the host certificates through /ssh/renew (SSHPOP) when less than a third of their
    /// lifetime is left; otherwise say "nothing to do".
    #[command(after_help = EXIT_CODES_HELP)]
    Renew {
        /// Renew even when not due.
        #[arg(long)]
        force: bool,
        /// Also replace the ECDSA/Ed25519 host keys by new ones.
        #[arg(long)]
        rekey: bool,
        /// Do not reload sshd.
        #[arg(long)]
        no_reload: bool,
    },
    /// Join the CA's inventory, authenticated by the host certificate. A re-run replaces all
    /// tags and bastion data.
    #[command(after_help = EXIT_CODES_HELP)]
    Register {
        /// The name to register (default: the certificate's key ID).
        #[arg(long, value_name = "NAME")]
        hostname: Option<String>,
        /// A tag, KEY=VALUE (repeatable).
        #[arg(long = "tag", value_name = "KEY=VALUE")]
        tags: Vec<String>,
        /// This host is a bastion.
        #[arg(long, conflicts_with = "bastion")]
        is_bastion: bool,
        /// The registered bastion this host is reached through.
        #[arg(long, value_name = "NAME")]
        bastion: Option<String>,
    },
    /// Leave the CA's inventory. Unknown to the CA: exit 0 with a note.
    #[command(after_help = EXIT_CODES_HELP)]
    Unregister {
        /// The registered name (default: the certificate's key ID).
        #[arg(long, value_name = "NAME")]
        hostname: Option<String>,
    },
    /// Enroll from settings (flags > HOSTCERT_* environment > /etc/hostcert/seed):
    /// bootstrap, certificate, activate, register, each skipped when already done. Removes the
    /// token from the seed file afterwards.
    #[command(after_help = EXIT_CODES_HELP)]
    Enroll {
        /// Say what would be done, change nothing.
        #[arg(long)]
        check: bool,
        #[command(flatten)]
        settings: SettingFlags,
        /// Do not reload sshd.
        #[arg(long)]
        no_reload: bool,
    },
    /// Print every enrollment setting's effective value and where it comes from (token masked).
    #[command(after_help = EXIT_CODES_HELP)]
    Settings {
        #[command(flatten)]
        settings: SettingFlags,
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
    /// Run a package maintainer script's step: `hostcert hook deb|rpm SCRIPT ARGS...`, called
    /// by the thin deb/rpm scripts with their own arguments (settings come from the
    /// environment and the seed file, never from argv).
    #[command(hide = true)]
    Hook {
        /// The package format.
        format: crate::hooks::PackageFormat,
        /// The maintainer script (or rpm scriptlet) calling.
        script: crate::hooks::Script,
        /// The arguments the package manager gave the script.
        #[arg(trailing_var_arg = true, allow_hyphen_values = true)]
        args: Vec<String>,
    },
    /// Write the man page and shell completions into DIR (used by the package build).
    #[command(hide = true)]
    Docs {
        /// Output directory.
        #[arg(long, value_name = "DIR")]
        out: PathBuf,
    },
}

/// The enrollment settings as flags (see [`crate::settings`]); the token only as a file.
#[derive(Debug, Clone, Default, clap::Args)]
pub struct SettingFlags {
    /// The CA URL (HOSTCERT_CA_URL).
    #[arg(long, value_name = "URL")]
    pub ca_url: Option<String>,
    /// The root fingerprint (HOSTCERT_FINGERPRINT).
    #[arg(long, value_name = "HEX")]
    pub fingerprint: Option<String>,
    /// Read the token from FILE (HOSTCERT_TOKEN_FILE; or HOSTCERT_TOKEN itself).
    #[arg(long, value_name = "FILE")]
    pub token_file: Option<String>,
    /// Key ID and first principal (HOSTCERT_HOSTNAME).
    #[arg(long, value_name = "NAME")]
    pub hostname: Option<String>,
    /// A further principal, repeatable (HOSTCERT_PRINCIPALS).
    #[arg(long = "principal", value_name = "P")]
    pub principals: Vec<String>,
    /// An inventory tag KEY=VALUE, repeatable (HOSTCERT_TAGS).
    #[arg(long = "tag", value_name = "KEY=VALUE")]
    pub tags: Vec<String>,
    /// This host is a bastion (HOSTCERT_IS_BASTION).
    #[arg(long, conflicts_with = "bastion")]
    pub is_bastion: bool,
    /// The bastion this host is reached through (HOSTCERT_BASTION).
    #[arg(long, value_name = "NAME")]
    pub bastion: Option<String>,
}

impl From<SettingFlags> for Flags {
    fn from(f: SettingFlags) -> Flags {
        Flags {
            ca_url: f.ca_url,
            fingerprint: f.fingerprint,
            token_file: f.token_file,
            hostname: f.hostname,
            principals: f.principals,
            tags: f.tags,
            bastion: f.bastion,
            is_bastion: f.is_bastion,
        }
    }
}

/// Parses the command line, runs the command, and maps the outcome to an exit code.
pub fn main() -> ExitCode {
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        Err(e) => {
            let _ = e.print();
            return ExitCode::from(if e.use_stderr() {
                Exit::BadInput as u8
            } else {
                Exit::Ok as u8
            });
        }
    };
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_env("HOSTCERT_LOG")
                .unwrap_or_else(|_| "warn".into()),
        )
        .with_writer(std::io::stderr)
        .without_time()
        .init();
    match run(cli) {
        Ok(()) => ExitCode::from(Exit::Ok as u8),
        Err(e) => {
            eprintln!("hostcert: {e}");
            ExitCode::from(e.exit() as u8)
        }
    }
}

fn run(cli: Cli) -> Result<(), Error> {
    let root = Root::new(&cli.root);
    let mut out = std::io::stdout().lock();
    match cli.command {
        Command::Activate {
            hostname,
            dry_run,
            no_reload,
        } => {
            let options = Options {
                hostname,
                dry_run,
                no_reload,
            };
            let report = activation::activate(&root, &Real, &options)?;
            print_report(&mut out, &report, "activate");
        }
        Command::Deactivate { dry_run, no_reload } => {
            let options = Options {
                dry_run,
                no_reload,
                ..Options::default()
            };
            let report = activation::deactivate(&root, &Real, &options)?;
            print_report(&mut out, &report, "deactivate");
        }
        Command::Status { json } => {
            let status = status::status(&root, &Real)?;
            if json {
                let _ = writeln!(
                    out,
                    "{}",
                    serde_json::to_string_pretty(&status).expect("status serialises")
                );
            } else {
                print_status(&mut out, &status);
            }
        }
        Command::Bootstrap {
            ca_url,
            fingerprint,
        } => {
            let done = config::bootstrap(&root, &ca_url, &fingerprint)?;
            let _ = writeln!(
                out,
                "{} {} (root fingerprint {})",
                if done.changed {
                    "bootstrapped: pinned"
                } else {
                    "already bootstrapped to"
                },
                done.config.ca_url,
                done.config.fingerprint
            );
        }
        Command::Certificate {
            hostname,
            principals,
            key_type,
            token_file,
            no_reload,
        } => {
            let flags = Flags {
                token_file,
                hostname,
                principals,
                ..Flags::default()
            };
            let effective = settings::resolve(&root, &flags, &settings::process_env)?;
            let token = effective.token().ok_or_else(|| {
                Error::BadInput(format!(
                    "no token: set {} or {}, use --token-file FILE, or put it in the seed file",
                    settings::TOKEN.env,
                    settings::TOKEN_FILE_ENV
                ))
            })?;
            let request = certificate::Request {
                hostname: effective.get(&settings::HOSTNAME).map(str::to_string),
                principals: effective.principals(),
                key_type,
                no_reload,
            };
            let report = certificate::certificate(&root, &Real, token, &request)?;
            print_certificates(&mut out, &report);
        }
        Command::Renew {
            force,
            rekey,
            no_reload,
        } => {
            let options = certificate::RenewOptions {
                force,
                rekey,
                no_reload,
            };
            let report = certificate::renew(&root, &Real, &options)?;
            print_certificates(&mut out, &report);
        }
        Command::Register {
            hostname,
            tags,
            is_bastion,
            bastion,
        } => {
            let registration = Registration::new(hostname, &tags, is_bastion, bastion)?;
            let record = inventory::register(&root, &registration)?;
            let _ = writeln!(
                out,
                "registered {} (tags {}{})",
                record.hostname,
                if record.tags.is_empty() {
                    "none".to_string()
                } else {
                    hostcert_proto::tags::format_list(&record.tags)
                },
                match (&record.bastion, record.is_bastion) {
                    (_, true) => ", bastion".to_string(),
                    (Some(b), _) => format!(", through bastion {b}"),
                    _ => String::new(),
                }
            );
        }
        Command::Unregister { hostname } => match inventory::unregister(&root, hostname)? {
            Some(name) => {
                let _ = writeln!(out, "unregistered {name}");
            }
            None => {
                let _ = writeln!(
                    out,
                    "note: the CA's inventory does not know this host: nothing to do"
                );
            }
        },
        Command::Enroll {
            check,
            settings: flags,
            no_reload,
        } => {
            let effective = settings::resolve(&root, &flags.into(), &settings::process_env)?;
            let report = enroll::enroll(&root, &Real, &effective, check, no_reload)?;
            for step in &report.steps {
                let verb = match (report.check, step.run) {
                    (true, true) => "would run",
                    (true, false) => "already done",
                    (false, true) => "done",
                    (false, false) => "skipped (already done)",
                };
                let _ = writeln!(out, "{:<12} {verb}: {}", step.step, step.detail);
            }
            for note in &report.notes {
                let _ = writeln!(out, "note: {note}");
            }
            if !report.check {
                let _ = writeln!(out, "enrolled");
            }
        }
        Command::Settings {
            settings: flags,
            json,
        } => {
            let effective = settings::resolve(&root, &flags.into(), &settings::process_env)?;
            let lines = effective.describe();
            if json {
                let doc: Vec<serde_json::Value> = lines
                    .iter()
                    .map(|(s, value, source)| {
                        serde_json::json!({
                            "setting": s.name, "flag": s.flag, "environment": s.env,
                            "debconf": s.debconf, "type": s.kind, "value": value, "source": source,
                        })
                    })
                    .collect();
                let _ = writeln!(
                    out,
                    "{}",
                    serde_json::to_string_pretty(&doc).expect("settings serialise")
                );
            } else {
                for (s, value, source) in lines {
                    let _ = writeln!(
                        out,
                        "{:<22} {:<42} {}",
                        s.env,
                        value.unwrap_or_else(|| "(unset)".into()),
                        source.map(|s| format!("({s})")).unwrap_or_default()
                    );
                }
            }
        }
        Command::Hook {
            format,
            script,
            args,
        } => {
            let mut agent = crate::hooks::Agent::new(&root, &Real);
            let mut messages = std::io::stderr();
            crate::hooks::dispatch(
                format,
                script,
                &args,
                &mut agent,
                &root,
                &Real,
                &mut messages,
            )
            .map_err(|e| match e {
                crate::hooks::HookError::Arguments { .. } => Error::BadInput(e.to_string()),
                crate::hooks::HookError::Facts { source }
                | crate::hooks::HookError::Action { source, .. } => source,
            })?;
        }
        Command::Docs { out: dir } => write_docs(&dir).map_err(|e| Error::io(&dir, e))?,
    }
    Ok(())
}

fn print_certificates(out: &mut impl Write, report: &certificate::Report) {
    let now = hostcert_proto::now();
    for issued in &report.issued {
        let _ = writeln!(
            out,
            "{}: serial {}, {} left{}",
            issued.path,
            issued.serial,
            human(issued.valid_before.saturating_sub(now)),
            if issued.new_key { " (new key)" } else { "" }
        );
    }
    if let Some(activation) = &report.activation {
        for file in &activation.files {
            let _ = writeln!(out, "{}: {}", file.path.display(), file.action);
        }
    }
    if let Some(reload) = &report.reload {
        let _ = writeln!(out, "{reload}");
    }
    for note in &report.notes {
        let _ = writeln!(out, "note: {note}");
    }
}

fn print_report(out: &mut impl Write, report: &Report, verb: &str) {
    if report.dry_run {
        for file in &report.files {
            let _ = write!(out, "{}", file.diff);
        }
        for command in &report.commands {
            let _ = writeln!(out, "would run: {command}");
        }
        if !report.changed() {
            let _ = writeln!(out, "{verb}: nothing would change");
        }
    } else if report.changed() {
        for file in &report.files {
            let _ = writeln!(out, "{}: {}", file.path.display(), file.action);
        }
        for command in &report.commands {
            let _ = writeln!(out, "ran: {command}");
        }
    } else {
        let _ = writeln!(out, "{verb}: nothing to change");
    }
    if let Some(validation) = &report.validation {
        let _ = writeln!(out, "{validation}");
    }
    if let Some(reload) = &report.reload {
        let _ = writeln!(out, "{reload}");
    }
    for note in &report.notes {
        let _ = writeln!(out, "note: {note}");
    }
}

fn print_status(out: &mut impl Write, status: &Status) {
    let _ = writeln!(
        out,
        "hostcert: {}",
        if status.active { "active" } else { "inactive" }
    );
    if let Some(distro) = &status.distro {
        let _ = writeln!(out, "system: {}", distro.pretty_name);
    }
    if let Some(name) = &status.hostname {
        let _ = writeln!(out, "hostname: {name}");
    }
    let _ = writeln!(out, "files:");
    for file in &status.files {
        let state = serde_json::to_value(file.state).expect("state serialises");
        let _ = writeln!(
            out,
            "  {:<45} {}",
            file.path.display(),
            state.as_str().unwrap_or_default().replace('_', " ")
        );
    }
    if let Some(selection) = &status.authselect_replaced {
        let _ = writeln!(
            out,
            "authselect: replaced {} {}",
            selection.profile,
            selection.features.join(" ")
        );
    }
    let _ = writeln!(out, "sshd ({}):", status.sshd.source);
    let _ = writeln!(
        out,
        "  TrustedUserCAKeys {}",
        status
            .sshd
            .trusted_user_ca_keys
            .as_deref()
            .unwrap_or("(none)")
    );
    for key in &status.sshd.host_keys {
        let _ = writeln!(out, "  HostKey {key}");
    }
    for cert in &status.sshd.host_certificates {
        let _ = writeln!(out, "  HostCertificate {cert}");
    }
    if let Some(admin) = &status.admin_user_ca {
        let _ = writeln!(
            out,
            "admin's user CA file {}: {}",
            admin.path,
            if admin.carried {
                "its keys are carried in hostcert's file"
            } else {
                "NOT carried"
            }
        );
    }
    let enrollment = &status.enrollment;
    let _ = writeln!(
        out,
        "enrollment: {}{}",
        enrollment.state.replace('_', " "),
        enrollment
            .hostname
            .as_deref()
            .map(|h| format!(" as {h}"))
            .unwrap_or_default()
    );
    if let (Some(url), Some(fp)) = (&status.ca_url, &status.root_fingerprint) {
        let _ = writeln!(out, "CA: {url} (root fingerprint {fp})");
    }
    for cert in &status.certificates {
        let _ = writeln!(
            out,
            "certificate {}: key ID {}, serial {}, principals {}, {}",
            cert.path,
            cert.key_id,
            cert.serial,
            cert.principals.join(","),
            if cert.seconds_left == 0 {
                "expired".to_string()
            } else {
                format!("{} left", human(cert.seconds_left))
            }
        );
    }
    for warning in &status.warnings {
        let _ = writeln!(out, "warning: {warning}");
    }
}

/// Writes `hostcert.1` (and one page per subcommand) plus bash, zsh and fish completions.
fn write_docs(dir: &std::path::Path) -> std::io::Result<()> {
    std::fs::create_dir_all(dir)?;
    let command = Cli::command();
    clap_mangen::generate_to(command.clone(), dir)?;
    for shell in [
        clap_complete::Shell::Bash,
        clap_complete::Shell::Zsh,
        clap_complete::Shell::Fish,
    ] {
        clap_complete::generate_to(shell, &mut command.clone(), "hostcert", dir)?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn command_line_is_consistent() {
        Cli::command().debug_assert();
    }

    #[test]
    fn tokens_never_come_from_argv() {
        for command in ["certificate", "enroll"] {
            assert!(Cli::try_parse_from(["hostcert", command, "--token", "secret"]).is_err());
        }
        let both = ["hostcert", "register", "--is-bastion", "--bastion", "b1"];
        assert!(Cli::try_parse_from(both).is_err());
    }
}
