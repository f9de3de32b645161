//! `hostcert-server`: reference SSH CA and host inventory for hostcert.

mod admin;
mod api;
mod auth;
mod bench;
mod ca;
mod cli;
mod db;
mod docs;
mod init;
mod layout;
mod serve;
mod timespec;
mod writer;

use clap::Parser;
use tracing_subscriber::EnvFilter;

fn main() -> std::process::ExitCode {
    let cli = cli::Cli::parse();
    let default_level = match cli.command {
        cli::Command::Serve(_) => "info",
        _ => "warn",
    };
    tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .with_env_filter(
            EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new(default_level)),
        )
        .init();
    let result = match cli.command {
        cli::Command::Init(args) => init::run(&args),
        cli::Command::Serve(args) => serve::run(&args),
        cli::Command::Token(args) => admin::token(&args),
        cli::Command::UserCert(args) => admin::user_cert(&args),
        cli::Command::Revoke(args) => admin::revoke(&args),
        cli::Command::Hosts(args) => admin::hosts(&args),
        cli::Command::Docs(args) => docs::run(&args),
        cli::Command::BenchBodies(args) => bench::run(&args),
    };
    match result {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("hostcert-server: error: {e:#}");
            std::process::ExitCode::FAILURE
        }
    }
}
