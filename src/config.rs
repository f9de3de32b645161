//! hostcert's CA settings under `/etc/hostcert`: the CA URL and pinned root fingerprint
//! ([`CA_CONFIG`]), and the root certificate itself ([`ROOT_CERT`]); and `hostcert bootstrap`,
//! which creates them.

use hostcert_proto::api;
use serde::{Deserialize, Serialize};

use crate::activation::require_root;
use crate::ca::{self, Client};
use crate::created;
use crate::edit::fsio;
use crate::error::{Error, Result};
use crate::paths::{Root, CA_CONFIG, CA_HOST_KEYS, CONFIG_DIR, REGISTERED, ROOT_CERT};

/// The contents of [`CA_CONFIG`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CaConfig {
    /// `https://host[:port]`.
    pub ca_url: String,
    /// Lowercase hex SHA-256 of the root certificate's DER.
    pub fingerprint: String,
}

/// The stored CA settings, `None` before bootstrap.
pub fn load(root: &Root) -> Result<Option<CaConfig>> {
    let Some(bytes) =
        fsio::read_optional(&root.join(CA_CONFIG)).map_err(|e| Error::io(CA_CONFIG, e))?
    else {
        return Ok(None);
    };
    serde_json::from_slice(&bytes).map(Some).map_err(|e| {
        Error::BadInput(format!(
            "{CA_CONFIG} is corrupt ({e}): run hostcert bootstrap again"
        ))
    })
}

/// A client of the bootstrapped CA, trusting only the stored root.
pub fn client(root: &Root) -> Result<Client> {
    let Some(config) = load(root)? else {
        return Err(Error::BadInput(
            "no CA configured: run `hostcert bootstrap --ca-url URL --fingerprint HEX` first"
                .into(),
        ));
    };
    let pem = std::fs::read_to_string(root.join(ROOT_CERT)).map_err(|e| Error::io(ROOT_CERT, e))?;
    let der = ca::pem_to_der(&pem)?;
    if api::fingerprint_der(&der) != config.fingerprint {
        return Err(Error::Untrusted(format!(
            "{ROOT_CERT} does not have the fingerprint {CA_CONFIG} pins: run hostcert bootstrap again"
        )));
    }
    Client::new(&config.ca_url, &pem)
}

/// What bootstrap did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Bootstrap {
    /// The stored settings.
    pub config: CaConfig,
    /// Whether anything was written (false: already bootstrapped to the same CA).
    pub changed: bool,
}

/// Checks `ca_url` and `fingerprint`, fetches and verifies the root, checks the CA answers over
/// TLS trusting only that root, and only then stores root and settings.
pub fn bootstrap(root: &Root, ca_url: &str, fingerprint: &str) -> Result<Bootstrap> {
    require_root(root)?;
    let config = check(ca_url, fingerprint)?;
    let pem = ca::fetch_root(&config.ca_url, &config.fingerprint)?;
    Client::new(&config.ca_url, &pem)?.health()?;
    let changed = store(root, &config, &pem)?;
    Ok(Bootstrap { config, changed })
}

/// Normalises the operator's URL and fingerprint, or says what is wrong with them.
pub fn check(ca_url: &str, fingerprint: &str) -> Result<CaConfig> {
    let ca_url = ca::normalize_url(ca_url)?;
    let fingerprint = api::normalize_fingerprint(fingerprint).ok_or_else(|| {
        Error::BadInput(format!(
            "fingerprint {fingerprint:?} is not 64 hex digits (SHA-256 of the root certificate)"
        ))
    })?;
    Ok(CaConfig {
        ca_url,
        fingerprint,
    })
}

/// Writes the root, then the settings that pin it (the commit point). Returns whether anything
/// changed.
fn store(root: &Root, config: &CaConfig, pem: &str) -> Result<bool> {
    let same_config = load(root).ok().flatten().as_ref() == Some(config);
    let same_root = std::fs::read_to_string(root.join(ROOT_CERT))
        .ok()
        .as_deref()
        == Some(pem);
    if same_config && same_root {
        return Ok(false);
    }
    fsio::ensure_dir(&root.join(CONFIG_DIR), 0o755).map_err(|e| Error::io(CONFIG_DIR, e))?;
    // Another CA: the old one's certificates and registration no longer count as done.
    if !same_config {
        for stale in [CA_HOST_KEYS, REGISTERED] {
            fsio::remove(&root.join(stale)).map_err(|e| Error::io(stale, e))?;
        }
    }
    created::write(root, ROOT_CERT, pem.as_bytes(), 0o644)?;
    let mut json = serde_json::to_vec_pretty(config).expect("config serialises");
    json.push(b'\n');
    created::write(root, CA_CONFIG, &json, 0o644)?;
    Ok(true)
}
