//! hostcert, the host agent: turns a plain Linux host into a member of an SSH certificate fleet.
//!
//! The crate is organised by concern:
//! - [`paths`]: every path the agent touches, and the `--root` mapping;
//! - [`distro`]: which system this is, and its per-family facts;
//! - [`edit`]: the reversible, crash-safe edit engine (state file, atomic writes, revert);
//! - [`sshd`], [`pam`], [`nss`]: the file transformations, as plain functions over text;
//! - [`system`]: the external commands (sshd, systemctl, authselect) behind one seam;
//! - [`activation`]: activate / deactivate, which plan the transformations and run the engine;
//! - [`host`]: the host's own name;
//! - [`status`]: what is active, the effective sshd values and the host certificates;
//! - [`cli`]: the command line, exit codes and output.

pub mod activation;
pub mod cli;
pub mod distro;
pub mod edit;
pub mod error;
pub mod host;
pub mod nss;
pub mod pam;
pub mod paths;
pub mod sshd;
pub mod status;
pub mod system;
