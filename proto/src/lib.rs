//! Wire types and token code shared by the hostcert agent and `hostcert-server`.
//!
//! Modules: [`api`] holds the step-ca HTTP API subset (path constants with
//! [`api::paths::versioned`] for the `/1.0` prefix, request/response structs with step-ca's exact
//! JSON field names, the `{"status","message"}` error body, base64 helpers for SSH blobs and the
//! root fingerprint helpers); [`inventory`] holds hostcert's own host-inventory API
//! (`POST /hosts/register`, `POST /hosts/unregister`, `GET /hosts`, the [`inventory::HostRecord`]);
//! [`ott`] issues and verifies step-ca one-time sign tokens (ES256 JWK provisioner, plus hostcert's
//! reusable fleet enrollment tokens); [`sshpop`] issues and verifies SSHPOP tokens, the proof of
//! possession of a host certificate's private key used for renew, rekey and the inventory calls
//! ([`sshpop::issue`], [`sshpop::verify`]); [`tags`] validates `KEY=VALUE` host tags. Token
//! functions take the current time as Unix seconds ([`now`] reads the clock) and fail with the
//! typed [`TokenError`]; the JWS plumbing is pure RustCrypto (p256, ed25519-dalek) unless the
//! optional `ring` feature (used by the server for speed) routes ES256 through ring.

#![warn(missing_docs)]

pub mod api;
pub mod inventory;
mod jws;
pub mod ott;
pub mod sshpop;
pub mod tags;

pub use jws::{Registered, TokenError};

/// Clock leeway applied to token `nbf`/`exp` checks, in seconds (step-ca uses one minute).
pub const LEEWAY_SECS: u64 = 60;

/// The current time as Unix seconds, the unit every token function takes.
pub fn now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

/// A random 128-bit identifier as 32 lowercase hex digits (token `jti`s).
pub fn random_hex_id() -> String {
    use rand_core::RngCore;
    let mut bytes = [0u8; 16];
    rand_core::OsRng.fill_bytes(&mut bytes);
    api::hex(&bytes)
}
