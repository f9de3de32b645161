//! The step-ca HTTP API subset: paths, JSON bodies and encodings.
//!
//! SSH keys and certificates travel as standard base64 (with padding) of the SSH wire blob;
//! see [`encode_blob`], [`decode_certificate`] and [`decode_public_key`].

use base64::engine::general_purpose::STANDARD;
use base64::Engine;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

/// Path constants. step-ca answers each path with and without the [`paths::API_PREFIX`].
pub mod paths {
    /// The version prefix step-ca also serves every path under.
    pub const API_PREFIX: &str = "/1.0";
    /// `GET`: liveness, answers `{"status":"ok"}`.
    pub const HEALTH: &str = "/health";
    /// `GET /root/{sha256}`: the root certificate with that fingerprint (use [`root`]).
    pub const ROOT_PREFIX: &str = "/root/";
    /// `GET`: all roots; answers **201**.
    pub const ROOTS: &str = "/roots";
    /// `GET`: the SSH user and host CA public keys.
    pub const SSH_ROOTS: &str = "/ssh/roots";
    /// `POST`: sign a public key with a one-time token.
    pub const SSH_SIGN: &str = "/ssh/sign";
    /// `POST`: renew a host certificate with an SSHPOP token.
    pub const SSH_RENEW: &str = "/ssh/renew";
    /// `POST`: certify a new key with an SSHPOP token for the current certificate.
    pub const SSH_REKEY: &str = "/ssh/rekey";
    /// `GET`: the hosts known to the CA.
    pub const SSH_HOSTS: &str = "/ssh/hosts";
    /// `POST`: does a host certificate exist for a principal.
    pub const SSH_CHECK_HOST: &str = "/ssh/check-host";
    /// `POST` (hostcert only): join the inventory, SSHPOP-authenticated.
    pub const HOSTS_REGISTER: &str = "/hosts/register";
    /// `POST` (hostcert only): leave the inventory, SSHPOP-authenticated.
    pub const HOSTS_UNREGISTER: &str = "/hosts/unregister";
    /// `GET` (hostcert only): list the inventory, admin bearer credential.
    pub const HOSTS: &str = "/hosts";

    /// `path` under the `/1.0` prefix, e.g. `versioned(SSH_SIGN)` = `/1.0/ssh/sign`.
    pub fn versioned(path: &str) -> String {
        format!("{API_PREFIX}{path}")
    }

    /// The `/root/{fingerprint}` path.
    pub fn root(fingerprint: &str) -> String {
        format!("{ROOT_PREFIX}{fingerprint}")
    }
}

/// Lowercase hex of `bytes`.
pub fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// The root fingerprint: lowercase hex SHA-256 of the certificate's DER.
pub fn fingerprint_der(der: &[u8]) -> String {
    hex(&Sha256::digest(der))
}

/// Normalises a fingerprint as step-ca does: `-` and `:` stripped, lowercase.
/// Returns `None` unless the result is 64 hex digits.
pub fn normalize_fingerprint(fp: &str) -> Option<String> {
    let fp: String = fp
        .trim()
        .chars()
        .filter(|c| *c != ':' && *c != '-')
        .map(|c| c.to_ascii_lowercase())
        .collect();
    (fp.len() == 64 && fp.chars().all(|c| c.is_ascii_hexdigit())).then_some(fp)
}

/// Standard base64 (with padding) of an SSH wire blob, as the API carries keys and certificates.
pub fn encode_blob(blob: &[u8]) -> String {
    STANDARD.encode(blob)
}

/// Why a base64 SSH blob could not be decoded.
#[derive(Debug, thiserror::Error)]
pub enum BlobError {
    /// Not standard base64.
    #[error("not standard base64")]
    Base64,
    /// Base64, but not a valid SSH key or certificate.
    #[error("invalid SSH blob: {0}")]
    Ssh(#[from] ssh_key::Error),
}

/// Decodes a base64 certificate blob (a `crt` field or the SSHPOP header).
pub fn decode_certificate(b64: &str) -> Result<ssh_key::Certificate, BlobError> {
    let blob = STANDARD.decode(b64.trim()).map_err(|_| BlobError::Base64)?;
    Ok(ssh_key::Certificate::from_bytes(&blob)?)
}

/// Decodes a base64 public key blob (a `publicKey` field or an `/ssh/roots` entry).
pub fn decode_public_key(b64: &str) -> Result<ssh_key::PublicKey, BlobError> {
    let blob = STANDARD.decode(b64.trim()).map_err(|_| BlobError::Base64)?;
    Ok(ssh_key::PublicKey::from_bytes(&blob)?)
}

/// Error body of every failed call: `{"status": 401, "message": "..."}`.
///
/// hostcert-server adds a machine-readable `code` where a client must tell cases apart
/// (e.g. [`crate::inventory::CODE_NOT_REGISTERED`]); step-ca never sends it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ErrorBody {
    /// The HTTP status code, repeated.
    pub status: u16,
    /// Human-readable reason.
    pub message: String,
    /// hostcert-server only: a stable code for cases a client must recognise.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub code: Option<String>,
}

/// `GET /health` answer.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct HealthResponse {
    /// `"ok"`.
    pub status: String,
}

/// `GET /root/{fp}` answer.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RootResponse {
    /// The root certificate, PEM.
    pub ca: String,
}

/// `GET /roots` answer (status 201).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RootsResponse {
    /// Every root certificate, PEM.
    pub crts: Vec<String>,
}

/// `GET /ssh/roots` answer.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct SshRootsResponse {
    /// User CA public keys (base64 blobs): what sshd's `TrustedUserCAKeys` lists.
    #[serde(rename = "userKey", default)]
    pub user_key: Vec<String>,
    /// Host CA public keys (base64 blobs): what signs host certificates.
    #[serde(rename = "hostKey", default)]
    pub host_key: Vec<String>,
}

/// The certificate type of a sign request or token.
pub const CERT_TYPE_HOST: &str = "host";
/// The user certificate type.
pub const CERT_TYPE_USER: &str = "user";

/// `POST /ssh/sign` body.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct SignRequest {
    /// The key to certify (base64 blob).
    #[serde(rename = "publicKey")]
    pub public_key: String,
    /// The one-time token (or a hostcert fleet enrollment token).
    pub ott: String,
    /// `"host"` or `"user"`.
    #[serde(rename = "certType", default)]
    pub cert_type: String,
    /// Requested principals; must be a subset of the token's (fleet tokens: match its pattern).
    #[serde(default)]
    pub principals: Vec<String>,
    /// Requested key ID.
    #[serde(rename = "keyID", default)]
    pub key_id: String,
    /// Go duration or RFC 3339; `""` = unset.
    #[serde(rename = "validAfter", default)]
    pub valid_after: String,
    /// Go duration or RFC 3339; `""` = unset.
    #[serde(rename = "validBefore", default)]
    pub valid_before: String,
}

/// Answer of sign, renew and rekey (status 201).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CertificateResponse {
    /// The certificate (base64 blob); write `<algorithm> <crt>` to a `-cert.pub` file.
    pub crt: String,
}

/// `POST /ssh/renew` body.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RenewRequest {
    /// SSHPOP token signed by the current certificate's key (see [`crate::sshpop`]).
    pub ott: String,
}

/// `POST /ssh/rekey` body.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RekeyRequest {
    /// SSHPOP token signed by the current certificate's key.
    pub ott: String,
    /// The new key to certify (base64 blob), with the presenting certificate's identity.
    #[serde(rename = "publicKey")]
    pub public_key: String,
}

/// One `/ssh/hosts` tag. step-ca serialises these with capitalised field names.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct HostTag {
    /// Tag identifier (hostcert-server: the key).
    #[serde(rename = "ID", default)]
    pub id: String,
    /// Tag key.
    #[serde(rename = "Name")]
    pub name: String,
    /// Tag value.
    #[serde(rename = "Value")]
    pub value: String,
}

/// One `/ssh/hosts` entry.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SshHost {
    /// Host ID (`""` on hostcert-server).
    #[serde(default)]
    pub hid: String,
    /// Tags, `null` when the host has none.
    #[serde(default)]
    pub host_tags: Option<Vec<HostTag>>,
    /// The host name (certificate key ID).
    pub hostname: String,
}

/// `GET /ssh/hosts` answer.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct SshHostsResponse {
    /// Known hosts.
    pub hosts: Vec<SshHost>,
}

/// `POST /ssh/check-host` body.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CheckHostRequest {
    /// `"host"`.
    #[serde(rename = "type")]
    pub cert_type: String,
    /// The principal to look for.
    pub principal: String,
}

/// `POST /ssh/check-host` answer.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CheckHostResponse {
    /// Whether a current host certificate names the principal.
    pub exists: bool,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sign_request_uses_step_ca_field_names() {
        let req = SignRequest {
            public_key: "AAAA".into(),
            ott: "t".into(),
            cert_type: CERT_TYPE_HOST.into(),
            principals: vec!["a".into()],
            key_id: "a".into(),
            ..Default::default()
        };
        let v = serde_json::to_value(&req).unwrap();
        for k in [
            "publicKey",
            "ott",
            "certType",
            "principals",
            "keyID",
            "validAfter",
            "validBefore",
        ] {
            assert!(v.get(k).is_some(), "missing {k}");
        }
    }

    #[test]
    fn ssh_hosts_parses_step_ca_answer() {
        let r: SshHostsResponse =
            serde_json::from_str(r#"{"hosts":[{"hid":"","host_tags":null,"hostname":"h"}]}"#)
                .unwrap();
        assert_eq!(r.hosts[0].hostname, "h");
        assert!(r.hosts[0].host_tags.is_none());
        let roots: SshRootsResponse = serde_json::from_str(r#"{"hostKey":["x"]}"#).unwrap();
        assert_eq!(roots.host_key, ["x"]);
        assert!(roots.user_key.is_empty());
    }

    #[test]
    fn error_body_code_is_optional() {
        let e: ErrorBody = serde_json::from_str(r#"{"status":401,"message":"no"}"#).unwrap();
        assert_eq!(e.code, None);
        assert_eq!(
            serde_json::to_string(&e).unwrap(),
            r#"{"status":401,"message":"no"}"#
        );
    }

    #[test]
    fn fingerprints_normalise() {
        let fp = "AB:".repeat(31) + "AB";
        assert_eq!(normalize_fingerprint(&fp), Some("ab".repeat(32)));
        assert_eq!(normalize_fingerprint("abc"), None);
        assert_eq!(normalize_fingerprint(&"zz".repeat(32)), None);
        assert_eq!(fingerprint_der(b"").len(), 64);
        assert_eq!(paths::versioned(paths::SSH_SIGN), "/1.0/ssh/sign");
    }
}
