//! The state file: per touched file, the original bytes and metadata and what hostcert put in.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use base64::Engine as _;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use super::fsio::{self, FileMeta};
use super::text::Edit;
use crate::error::{Error, Result};
use crate::paths::{Root, STATE_FILE};

/// The version of the state file's format this agent writes.
const FORMAT: u32 = 1;

/// Everything hostcert needs to undo its changes, written before each change is made.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct State {
    /// Format version.
    pub format: u32,
    /// The host name activation was done for.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub hostname: Option<String>,
    /// The sshd service name of the distro at activation, so deactivate can reload it anywhere.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sshd_service: Option<String>,
    /// The authselect selection hostcert replaced, to select it back on deactivate.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub authselect: Option<AuthselectSelection>,
    /// Every file hostcert changed, by system path (links resolved).
    #[serde(default)]
    pub files: BTreeMap<PathBuf, FileRecord>,
}

/// An authselect profile and its features, as `authselect current` reports them.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AuthselectSelection {
    /// Profile id, e.g. `sssd` or `custom/site`.
    pub profile: String,
    /// Enabled features, e.g. `with-fingerprint`.
    pub features: Vec<String>,
}

/// What hostcert knows about one file it changed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FileRecord {
    /// The bytes before hostcert changed the file; `None` when hostcert created it.
    #[serde(with = "b64")]
    pub original: Option<Vec<u8>>,
    /// Owner, mode and label before hostcert changed it.
    pub meta: Option<FileMeta>,
    /// hostcert owns the whole content (a file it created), rather than some lines in it.
    #[serde(default)]
    pub owned: bool,
    /// What hostcert inserted.
    #[serde(default)]
    pub edits: Vec<Edit>,
    /// SHA-256 of the content hostcert last wrote.
    pub written: String,
    /// SHA-256 of a content hostcert is about to write (the intent), until it is known written.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pending: Option<String>,
}

impl FileRecord {
    /// Whether `content` is exactly what hostcert wrote (or was about to write).
    pub fn is_ours(&self, content: &[u8]) -> bool {
        let hash = sha256(content);
        hash == self.written || self.pending.as_deref() == Some(&hash)
    }

    /// Whether `content` is the original (absent counts for a file hostcert created).
    pub fn is_original(&self, content: Option<&[u8]>) -> bool {
        self.original.as_deref() == content
    }
}

impl State {
    /// Loads the state file of `root`; a missing file is an empty state.
    pub fn load(root: &Root) -> Result<State> {
        let path = root.join(STATE_FILE);
        let Some(bytes) = fsio::read_optional(&path).map_err(|e| Error::io(STATE_FILE, e))? else {
            return Ok(State {
                format: FORMAT,
                ..State::default()
            });
        };
        let state: State = serde_json::from_slice(&bytes).map_err(|e| {
            Error::BadInput(format!(
                "{STATE_FILE} is corrupt ({e}); nothing was changed. Inspect or restore it: it holds \
                 the backups hostcert needs to revert"
            ))
        })?;
        if state.format != FORMAT {
            return Err(Error::BadInput(format!(
                "{STATE_FILE} has format {}, this hostcert reads format {FORMAT}",
                state.format
            )));
        }
        Ok(state)
    }

    /// Writes the state atomically (root-only: it holds backups of configuration files), or
    /// removes the file when there is nothing left to remember.
    pub fn save(&self, root: &Root) -> Result<()> {
        let path = root.join(STATE_FILE);
        if self.is_empty() {
            return fsio::remove(&path).map_err(|e| Error::io(STATE_FILE, e));
        }
        let dir = path.parent().expect("state file has a directory");
        fsio::ensure_dir(dir, 0o700).map_err(|e| Error::io(dir, e))?;
        let mut bytes = serde_json::to_vec_pretty(self).expect("state serialises");
        bytes.push(b'\n');
        fsio::write_atomic(&path, &bytes, &FileMeta::new_file(0o600))
            .map_err(|e| Error::io(STATE_FILE, e))
    }

    /// Whether hostcert has nothing recorded.
    pub fn is_empty(&self) -> bool {
        self.files.is_empty() && self.authselect.is_none()
    }

    /// The record of `path`, if hostcert changed it.
    pub fn file(&self, path: &Path) -> Option<&FileRecord> {
        self.files.get(path)
    }
}

/// Hex SHA-256 of `bytes`.
pub fn sha256(bytes: &[u8]) -> String {
    Sha256::digest(bytes)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// Backups are binary-safe in JSON as base64.
mod b64 {
    use super::*;
    use serde::{Deserializer, Serializer};

    pub fn serialize<S: Serializer>(value: &Option<Vec<u8>>, s: S) -> Result<S::Ok, S::Error> {
        match value {
            Some(bytes) => {
                s.serialize_some(&base64::engine::general_purpose::STANDARD.encode(bytes))
            }
            None => s.serialize_none(),
        }
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Option<Vec<u8>>, D::Error> {
        let text: Option<String> = Option::deserialize(d)?;
        text.map(|t| {
            base64::engine::general_purpose::STANDARD
                .decode(t)
                .map_err(serde::de::Error::custom)
        })
        .transpose()
    }
}
