//! The agent's error type and the exit codes it maps to.

use std::path::PathBuf;

/// Process exit codes: part of the interface, scripts and package hooks rely on them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u8)]
pub enum Exit {
    /// Success.
    Ok = 0,
    /// An unexpected failure (I/O error, a command that could not run).
    Failure = 1,
    /// Bad input: a wrong argument, a malformed or missing file, a corrupt state file.
    BadInput = 2,
    /// The new configuration failed validation; nothing was changed (or it was rolled back).
    ValidationFailed = 3,
    /// The command needs root.
    NotRoot = 4,
    /// This system is not one hostcert supports.
    Unsupported = 5,
    /// The CA could not be reached or answered with a temporary failure: retry later.
    Unavailable = 6,
    /// The CA refused the request (bad, expired, replayed or revoked token or certificate).
    Refused = 7,
    /// The CA is not the one pinned: wrong root fingerprint, or a TLS certificate that does not
    /// chain to the pinned root.
    Untrusted = 8,
}

/// The help text's table of exit codes, kept beside the codes themselves.
pub const EXIT_CODES_HELP: &str = "\
Exit codes:
  0  success (also: nothing to do)
  1  unexpected failure (I/O error, a command that could not run)
  2  bad input (wrong argument, malformed or missing file, corrupt state file)
  3  validation failed: the new configuration was refused, nothing changed / rolled back
  4  not root
  5  unsupported system
  6  CA unreachable or temporarily failing: nothing changed, retry later
  7  refused by the CA (token or certificate not accepted)
  8  CA not trusted: wrong root fingerprint, or TLS certificate not from the pinned root";

/// Everything that can go wrong in the agent's library.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A file could not be read, written or inspected.
    #[error("{path}: {source}")]
    Io {
        /// The system path (inside the root) concerned.
        path: PathBuf,
        /// The underlying error.
        source: std::io::Error,
    },
    /// The host's input is not usable as it is.
    #[error("{0}")]
    BadInput(String),
    /// A candidate configuration was refused by its validator.
    #[error("validation failed, nothing changed: {0}")]
    Validation(String),
    /// The command must run as root.
    #[error("this command must run as root (or with --root on a tree you own)")]
    NotRoot,
    /// The system is not supported.
    #[error("unsupported system: {0}")]
    Unsupported(String),
    /// An external command failed to run.
    #[error("{command}: {message}")]
    Command {
        /// The command line, for the operator.
        command: String,
        /// What went wrong.
        message: String,
    },
    /// The CA could not be reached, or failed in a way worth retrying.
    #[error("CA unreachable, retry later: {0}")]
    Unavailable(String),
    /// The CA answered with a refusal.
    #[error("refused by the CA ({status}): {message}")]
    Refused {
        /// HTTP status.
        status: u16,
        /// The CA's message, with a clock-skew hint where one applies.
        message: String,
    },
    /// The CA is not the pinned one.
    #[error("CA not trusted: {0}")]
    Untrusted(String),
}

impl Error {
    /// Builds an [`Error::Io`] for `path`.
    pub fn io(path: impl Into<PathBuf>, source: std::io::Error) -> Self {
        Error::Io {
            path: path.into(),
            source,
        }
    }

    /// The exit code this error maps to.
    pub fn exit(&self) -> Exit {
        match self {
            Error::Io { .. } | Error::Command { .. } => Exit::Failure,
            Error::BadInput(_) => Exit::BadInput,
            Error::Validation(_) => Exit::ValidationFailed,
            Error::NotRoot => Exit::NotRoot,
            Error::Unsupported(_) => Exit::Unsupported,
            Error::Unavailable(_) => Exit::Unavailable,
            Error::Refused { .. } => Exit::Refused,
            Error::Untrusted(_) => Exit::Untrusted,
        }
    }
}

/// The agent's result type.
pub type Result<T, E = Error> = std::result::Result<T, E>;
