//! hostcert's host-inventory API (not part of step-ca).
//!
//! `POST /hosts/register` and `POST /hosts/unregister` are authenticated by an SSHPOP token
//! ([`crate::sshpop`], audience path = the call's path) signed by the host's current key; a host
//! may only act on its own certificate's key ID or principals. `GET /hosts` takes the admin
//! credential as `Authorization: Bearer <credential>` and `tag=KEY=VALUE` filters
//! (see [`hosts_path`]); it answers `{"hosts": [HostRecord...]}`.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

/// [`crate::api::ErrorBody::code`] of the 404 that `unregister` answers for a host that is not
/// in the inventory; the agent reports it as a note and exits 0.
pub const CODE_NOT_REGISTERED: &str = "host-not-registered";

/// [`crate::api::ErrorBody::code`] of the 400 that `register` answers when `bastion` does not
/// name a registered bastion.
pub const CODE_UNKNOWN_BASTION: &str = "unknown-bastion";

/// `POST /hosts/register` body. A re-registration **replaces** tags and bastion data.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct RegisterRequest {
    /// SSHPOP token for [`crate::api::paths::HOSTS_REGISTER`].
    pub ott: String,
    /// The name to register; must be the certificate's key ID or one of its principals.
    /// Defaults to the key ID.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub hostname: Option<String>,
    /// Tags (validated with [`crate::tags`]); a fleet token's default tags are merged under them.
    #[serde(default)]
    pub tags: BTreeMap<String, String>,
    /// This host is a bastion.
    #[serde(default)]
    pub is_bastion: bool,
    /// The registered bastion this host is reached through (excludes `is_bastion`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub bastion: Option<String>,
}

/// `POST /hosts/unregister` body.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct UnregisterRequest {
    /// SSHPOP token for [`crate::api::paths::HOSTS_UNREGISTER`].
    pub ott: String,
    /// As in [`RegisterRequest::hostname`].
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub hostname: Option<String>,
}

/// `POST /hosts/unregister` answer (200); an unknown host gets a 404 with
/// [`CODE_NOT_REGISTERED`] instead.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct UnregisterResponse {
    /// The host removed.
    pub hostname: String,
}

/// One inventory entry; `POST /hosts/register` answers 201 with it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct HostRecord {
    /// Host name (certificate key ID or principal).
    pub hostname: String,
    /// Tags as a `{key: value}` map.
    pub tags: BTreeMap<String, String>,
    /// This host is a bastion.
    pub is_bastion: bool,
    /// The bastion this host is reached through.
    pub bastion: Option<String>,
    /// First registration, Unix seconds (kept across re-registrations).
    pub registered_at: u64,
    /// Last register or renew call, Unix seconds.
    pub last_seen: u64,
    /// Serial of the certificate the host last authenticated with, as a decimal string (serials
    /// exceed the 2^53 that JSON tools like jq keep exactly).
    #[serde(with = "decimal_string")]
    pub serial: u64,
}

/// `GET /hosts` answer.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct HostsResponse {
    /// Matching hosts, sorted by hostname.
    pub hosts: Vec<HostRecord>,
}

/// The `GET /hosts` path with one `tag=KEY%3DVALUE` query parameter per filter; a host must
/// carry every filter tag.
pub fn hosts_path(filters: &BTreeMap<String, String>) -> String {
    let query: Vec<String> = filters
        .iter()
        .map(|(k, v)| format!("tag={k}%3D{v}"))
        .collect();
    if query.is_empty() {
        crate::api::paths::HOSTS.to_string()
    } else {
        format!("{}?{}", crate::api::paths::HOSTS, query.join("&"))
    }
}

mod decimal_string {
    use serde::{Deserialize, Deserializer, Serializer};

    pub fn serialize<S: Serializer>(v: &u64, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(v)
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<u64, D::Error> {
        String::deserialize(d)?
            .parse()
            .map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn host_record_json_shape() {
        let rec = HostRecord {
            hostname: "h1".into(),
            tags: [("env".to_string(), "prod".to_string())].into(),
            is_bastion: false,
            bastion: Some("b1".into()),
            registered_at: 1,
            last_seen: 2,
            serial: u64::MAX,
        };
        let json = serde_json::to_value(&rec).unwrap();
        assert_eq!(json["tags"]["env"], "prod");
        assert_eq!(json["serial"], u64::MAX.to_string());
        assert_eq!(json["bastion"], "b1");
        let back: HostRecord = serde_json::from_value(json).unwrap();
        assert_eq!(back, rec);
    }

    #[test]
    fn hosts_path_encodes_filters() {
        assert_eq!(hosts_path(&BTreeMap::new()), "/hosts");
        let f = crate::tags::parse_all(["env=prod", "role=web"]).unwrap();
        assert_eq!(hosts_path(&f), "/hosts?tag=env%3Dprod&tag=role%3Dweb");
    }
}
