//! Command-line interface.

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand};

use crate::layout::DEFAULT_DIR;

/// Reference SSH certificate authority and host inventory for hostcert, speaking the step-ca
/// API subset hostcert's agent uses.
#[derive(Debug, Parser)]
#[command(name = "hostcert-server", version)]
pub struct Cli {
    /// What to do.
    #[command(subcommand)]
    pub command: Command,
}

/// The server directory every subcommand works on.
#[derive(Debug, Args)]
pub struct DirArg {
    /// Server directory (keys, certificates, database).
    #[arg(long, value_name = "DIR", default_value = DEFAULT_DIR)]
    pub dir: PathBuf,
}

/// Subcommands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Create the CA: X.509 root and TLS certificate, SSH host and user CA keys, provisioners,
    /// admin credential, database. Prints the CA URL and root fingerprint last.
    Init(InitArgs),
    /// Serve the CA and inventory API over HTTPS until SIGTERM or SIGINT.
    Serve(ServeArgs),
    /// Print a single-use host sign token, a fleet enrollment token, or revoke a fleet token.
    Token(TokenArgs),
    /// Sign a user certificate with the user CA (what an SSO front end would do).
    UserCert(UserCertArgs),
    /// Revoke a certificate by serial: renew, rekey and inventory calls with it are refused.
    Revoke(RevokeArgs),
    /// List the host inventory.
    Hosts(HostsArgs),
    /// Write the man pages and shell completions (used by packaging).
    #[command(hide = true)]
    Docs(DocsArgs),
    /// Pre-generate request bodies for the benchmark scripts.
    #[command(hide = true)]
    BenchBodies(BenchArgs),
}

/// `init`.
#[derive(Debug, Args)]
pub struct InitArgs {
    #[command(flatten)]
    pub dir: DirArg,
    /// DNS name or IP address of the CA (repeatable); the first one goes into the CA URL.
    #[arg(long = "dns", value_name = "NAME", required = true)]
    pub dns: Vec<String>,
    /// Address the server listens on by default; its port goes into the CA URL.
    #[arg(long, value_name = "HOST:PORT", default_value = "127.0.0.1:8443")]
    pub address: String,
}

/// `serve`.
#[derive(Debug, Args)]
pub struct ServeArgs {
    #[command(flatten)]
    pub dir: DirArg,
    /// Listen address (default: the one given to `init`); port 0 picks a free port, which is
    /// printed as `listening on https://ADDR`.
    #[arg(long, value_name = "HOST:PORT")]
    pub listen: Option<String>,
    /// Default host certificate lifetime (5m to 30d; e.g. 10m for a testbed).
    #[arg(long, value_name = "DURATION", default_value = "30d")]
    pub host_cert_ttl: String,
}

/// `token`.
#[derive(Debug, Args)]
#[command(args_conflicts_with_subcommands = true)]
pub struct TokenArgs {
    #[command(subcommand)]
    pub action: Option<TokenAction>,
    #[command(flatten)]
    pub dir: DirArg,
    /// Host name: the certificate's key ID and first principal (single-use tokens).
    #[arg(long, value_name = "NAME")]
    pub host: Option<String>,
    /// Extra principal the token allows (repeatable).
    #[arg(long = "principal", value_name = "P")]
    pub principals: Vec<String>,
    /// Token lifetime (default 5m; 24h for --enrollment).
    #[arg(long, value_name = "DURATION")]
    pub ttl: Option<String>,
    /// Print a reusable fleet enrollment token instead.
    #[arg(long)]
    pub enrollment: bool,
    /// Principal pattern for --enrollment: `*` is one or more characters within one DNS label.
    #[arg(long, value_name = "GLOB", requires = "enrollment")]
    pub pattern: Option<String>,
    /// How many certificates the fleet token may sign.
    #[arg(long, value_name = "N", default_value_t = 1, requires = "enrollment")]
    pub uses: u64,
    /// Default tag applied when a host enrolled with this token registers (repeatable).
    #[arg(long = "tag", value_name = "KEY=VALUE", requires = "enrollment")]
    pub tags: Vec<String>,
}

/// `token` subcommands.
#[derive(Debug, Subcommand)]
pub enum TokenAction {
    /// Revoke a fleet enrollment token: it signs nothing from now on.
    Revoke {
        /// The token ID printed when it was created.
        id: String,
        #[command(flatten)]
        dir: DirArg,
    },
}

/// `user-cert`.
#[derive(Debug, Args)]
pub struct UserCertArgs {
    #[command(flatten)]
    pub dir: DirArg,
    /// User name: key ID and only principal.
    #[arg(long, value_name = "NAME")]
    pub user: String,
    /// OpenSSH public key file; the certificate is written beside it as `<name>-cert.pub`.
    #[arg(long, value_name = "FILE")]
    pub pubkey: PathBuf,
    /// Certificate lifetime.
    #[arg(long, value_name = "DURATION", default_value = "16h")]
    pub ttl: String,
}

/// `revoke`.
#[derive(Debug, Args)]
pub struct RevokeArgs {
    #[command(flatten)]
    pub dir: DirArg,
    /// Serial of the certificate (decimal).
    pub serial: u64,
}

/// `hosts`.
#[derive(Debug, Args)]
pub struct HostsArgs {
    #[command(flatten)]
    pub dir: DirArg,
    /// Only hosts carrying this tag (repeatable; all must match).
    #[arg(long = "tag", value_name = "KEY=VALUE")]
    pub tags: Vec<String>,
    /// Print a JSON list of host records.
    #[arg(long)]
    pub json: bool,
}

/// `docs`.
#[derive(Debug, Args)]
pub struct DocsArgs {
    /// Output directory (created).
    #[arg(long, value_name = "DIR")]
    pub out: PathBuf,
}

/// `bench-bodies`.
#[derive(Debug, Args)]
pub struct BenchArgs {
    #[command(flatten)]
    pub dir: DirArg,
    /// Which request bodies: `sign` (POST /ssh/sign) or `register` (POST /hosts/register).
    #[arg(long, value_parser = ["sign", "register"])]
    pub kind: String,
    /// How many bodies (one per line).
    #[arg(long)]
    pub count: usize,
    /// Output file.
    #[arg(long, value_name = "FILE")]
    pub out: PathBuf,
}
