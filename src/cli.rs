//! The command line: arguments, output and exit codes.

use std::io::Write;
use std::path::PathBuf;
use std::process::ExitCode;

use clap::{CommandFactory, Parser, Subcommand};

use crate::activation::{self, Options, Report};
use crate::error::{Error, Exit, EXIT_CODES_HELP};
use crate::paths::Root;
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
    /// Write the man page and shell completions into DIR (used by the package build).
    #[command(hide = true)]
    Docs {
        /// Output directory.
        #[arg(long, value_name = "DIR")]
        out: PathBuf,
    },
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
        Command::Docs { out: dir } => write_docs(&dir).map_err(|e| Error::io(&dir, e))?,
    }
    Ok(())
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
