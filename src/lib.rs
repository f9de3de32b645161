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
//! - [`ca`]: the one HTTP client of the CA (pinned root, typed errors, clock-skew detection);
//! - [`config`]: the CA URL and pinned root under `/etc/hostcert`, and `bootstrap`;
//! - [`created`]: files hostcert creates outright, and the purge manifest;
//! - [`keys`]: the host keys sshd offers, generating missing ones;
//! - [`certificate`]: signing every host key with one token, verification, renewal;
//! - [`inventory`]: register / unregister, authenticated by the host certificate;
//! - [`settings`]: every enrollment setting once (flag, environment, seed file, debconf);
//! - [`enroll`]: bootstrap → certificate → activate → register, resumable;
//! - [`hooks`]: the package maintainer scripts' logic (plan per script and arguments, then run);
//! - [`cli`]: the command line, exit codes and output.

pub mod activation;
pub mod ca;
pub mod certificate;
pub mod cli;
pub mod config;
pub mod created;
pub mod distro;
pub mod edit;
pub mod enroll;
pub mod error;
pub mod hooks;
pub mod host;
pub mod inventory;
pub mod keys;
pub mod nss;
pub mod pam;
pub mod paths;
pub mod settings;
pub mod sshd;
pub mod status;
pub mod system;
