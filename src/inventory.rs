//! `hostcert register` / `unregister`: the host joins or leaves the CA's inventory, authenticated
//! by an SSHPOP token signed with its own certified host key (no other secret on the host).
//!
//! A registration replaces all tags and bastion data. What was registered is recorded in
//! [`REGISTERED`], so `enroll` can skip an identical call.

use std::collections::BTreeMap;

use hostcert_proto::api::paths;
use hostcert_proto::inventory::{HostRecord, RegisterRequest, UnregisterRequest};
use hostcert_proto::sshpop;
use serde::{Deserialize, Serialize};
use ssh_key::{Certificate, PrivateKey};

use crate::activation::require_root;
use crate::ca::Client;
use crate::certificate::read_certificate;
use crate::config;
use crate::created;
use crate::edit::fsio;
use crate::error::{Error, Result};
use crate::keys;
use crate::paths::{Root, REGISTERED, STATE_DIR};

/// The inventory data of this host.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Registration {
    /// The name to register (default: the certificate's key ID).
    pub hostname: Option<String>,
    /// Tags.
    pub tags: BTreeMap<String, String>,
    /// This host is a bastion.
    pub is_bastion: bool,
    /// The bastion this host is reached through.
    pub bastion: Option<String>,
}

impl Registration {
    /// Builds a registration from flags, checking tags and the bastion options.
    pub fn new(
        hostname: Option<String>,
        tags: &[String],
        is_bastion: bool,
        bastion: Option<String>,
    ) -> Result<Registration> {
        let tags =
            hostcert_proto::tags::parse_all(tags).map_err(|e| Error::BadInput(e.to_string()))?;
        if is_bastion && bastion.is_some() {
            return Err(Error::BadInput(
                "--is-bastion and --bastion exclude each other".into(),
            ));
        }
        Ok(Registration {
            hostname,
            tags,
            is_bastion,
            bastion,
        })
    }
}

/// The host's identity: its first certified ECDSA/Ed25519 key and that certificate.
pub fn identity(root: &Root) -> Result<(PrivateKey, Certificate)> {
    for key in keys::host_keys(root, None)? {
        if !key.can_prove() {
            continue;
        }
        if let Some(cert) = read_certificate(root, &key.certificate_path())? {
            if cert.public_key() == key.key.public_key().key_data() {
                return Ok((key.key, cert));
            }
        }
    }
    Err(Error::BadInput(
        "no certified ECDSA or Ed25519 host key: run hostcert certificate first".into(),
    ))
}

fn proof(client: &Client, root: &Root, path: &str) -> Result<String> {
    let (key, cert) = identity(root)?;
    sshpop::issue(&key, &cert, &client.audience(path), hostcert_proto::now())
        .map_err(|e| Error::BadInput(format!("cannot sign the SSHPOP token: {e}")))
}

/// Registers this host (replacing its tags and bastion data).
pub fn register(root: &Root, registration: &Registration) -> Result<HostRecord> {
    require_root(root)?;
    let client = config::client(root)?;
    let request = RegisterRequest {
        ott: proof(&client, root, paths::HOSTS_REGISTER)?,
        hostname: registration.hostname.clone(),
        tags: registration.tags.clone(),
        is_bastion: registration.is_bastion,
        bastion: registration.bastion.clone(),
    };
    let record = client.register(&request)?;
    let mut json = serde_json::to_vec_pretty(registration).expect("registration serialises");
    json.push(b'\n');
    fsio::ensure_dir(&root.join(STATE_DIR), 0o700).map_err(|e| Error::io(STATE_DIR, e))?;
    created::write(root, REGISTERED, &json, 0o644)?;
    Ok(record)
}

/// Whether the last registration recorded is `registration`.
pub fn registered_as(root: &Root, registration: &Registration) -> bool {
    std::fs::read(root.join(REGISTERED))
        .ok()
        .and_then(|b| serde_json::from_slice::<Registration>(&b).ok())
        .as_ref()
        == Some(registration)
}

/// Removes this host from the inventory; `None` when the CA did not know it.
pub fn unregister(root: &Root, hostname: Option<String>) -> Result<Option<String>> {
    require_root(root)?;
    let client = config::client(root)?;
    let request = UnregisterRequest {
        ott: proof(&client, root, paths::HOSTS_UNREGISTER)?,
        hostname,
    };
    let removed = client.unregister(&request)?;
    fsio::remove(&root.join(REGISTERED)).map_err(|e| Error::io(REGISTERED, e))?;
    Ok(removed)
}
