//! Host keys: the ones sshd offers, reused as they are, and any missing ECDSA P-256 / Ed25519
//! key generated with ssh-key (private key 0600, public key 0644).
//!
//! New keys are made in memory and written only after the CA has certified them, so a refused
//! or unreachable CA leaves the host as it was.

use std::path::Path;

use ssh_key::private::{EcdsaKeypair, KeypairData};
use ssh_key::{Algorithm, EcdsaCurve, LineEnding, PrivateKey};

use crate::created;
use crate::edit::Text;
use crate::error::{Error, Result};
use crate::paths::{Root, SSHD_CONFIG};
use crate::sshd::{certificate_path, SshdConfig};

/// Which key types to generate when sshd has none of that type.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, clap::ValueEnum)]
pub enum KeyType {
    /// ECDSA P-256 only.
    Ecdsa,
    /// Ed25519 only.
    Ed25519,
    /// Both ECDSA P-256 and Ed25519.
    #[default]
    All,
}

impl KeyType {
    fn wants(self, algorithm: &Algorithm) -> bool {
        matches!(
            (self, algorithm),
            (KeyType::All, _)
                | (KeyType::Ecdsa, Algorithm::Ecdsa { .. })
                | (KeyType::Ed25519, Algorithm::Ed25519)
        )
    }
}

/// The ECDSA and Ed25519 default key files, which hostcert may create.
const GENERATED: [(&str, Algorithm); 2] = [
    (
        "/etc/ssh/ssh_host_ecdsa_key",
        Algorithm::Ecdsa {
            curve: EcdsaCurve::NistP256,
        },
    ),
    ("/etc/ssh/ssh_host_ed25519_key", Algorithm::Ed25519),
];

/// One host key sshd offers.
#[derive(Debug, Clone)]
pub struct HostKey {
    /// System path of the private key.
    pub path: String,
    /// The key.
    pub key: PrivateKey,
    /// Made by this run, not yet on disk.
    pub generated: bool,
}

impl HostKey {
    /// System path of its certificate.
    pub fn certificate_path(&self) -> String {
        certificate_path(&self.path)
    }

    /// Whether the key can sign an SSHPOP token (ECDSA P-256 or Ed25519).
    pub fn can_prove(&self) -> bool {
        matches!(
            self.key.key_data(),
            KeypairData::Ed25519(_) | KeypairData::Ecdsa(EcdsaKeypair::NistP256 { .. })
        )
    }

    /// Writes a generated key: the private key 0600 first, then the public key.
    pub fn write(&self, root: &Root) -> Result<()> {
        let private = self
            .key
            .to_openssh(LineEnding::LF)
            .map_err(|e| Error::BadInput(format!("{}: cannot encode the key: {e}", self.path)))?;
        let public =
            self.key.public_key().to_openssh().map_err(|e| {
                Error::BadInput(format!("{}: cannot encode the key: {e}", self.path))
            })?;
        created::write(root, &self.path, private.as_bytes(), 0o600)?;
        created::write(
            root,
            &format!("{}.pub", self.path),
            format!("{public}\n").as_bytes(),
            0o644,
        )
    }
}

/// The host keys sshd offers; with `generate`, the missing keys of those types are made (in
/// memory) where sshd would load them: at the default paths when sshd_config lists no
/// `HostKey`, or at a listed path whose name says its type.
pub fn host_keys(root: &Root, generate: Option<KeyType>) -> Result<Vec<HostKey>> {
    let text = std::fs::read(root.join(root.resolve(SSHD_CONFIG)?))
        .map_err(|e| Error::io(SSHD_CONFIG, e))?;
    let config = SshdConfig::read(root, &Text::parse(&text));
    let mut paths = config.offered_host_keys(root);
    if config.host_keys.is_empty() && generate.is_some() {
        for (path, _) in GENERATED {
            if !paths.iter().any(|p| p == path) {
                paths.push(path.to_string());
            }
        }
    }
    let mut keys = Vec::new();
    for path in paths {
        let file = root.join(root.resolve(&path)?);
        if file.is_file() {
            let key = PrivateKey::read_openssh_file(&file).map_err(|e| {
                Error::BadInput(format!("{path}: not a readable OpenSSH private key: {e}"))
            })?;
            keys.push(HostKey {
                path,
                key,
                generated: false,
            });
            continue;
        }
        let Some(kind) = generate else {
            continue;
        };
        let Some(algorithm) = algorithm_for(&path) else {
            return Err(Error::BadInput(format!(
                "{path} (a HostKey in {SSHD_CONFIG}) does not exist and its name does not say \
                 whether to make an ECDSA or Ed25519 key"
            )));
        };
        if !kind.wants(&algorithm) {
            continue;
        }
        let key = PrivateKey::random(&mut rand_core::OsRng, algorithm)
            .map_err(|e| Error::BadInput(format!("{path}: cannot generate a key: {e}")))?;
        keys.push(HostKey {
            path,
            key,
            generated: true,
        });
    }
    Ok(keys)
}

/// A key type from a key file's name (`..._ecdsa_key`, `..._ed25519_key`).
fn algorithm_for(path: &str) -> Option<Algorithm> {
    let name = Path::new(path)
        .file_name()?
        .to_string_lossy()
        .to_lowercase();
    GENERATED
        .iter()
        .find(|(default, _)| {
            let kind = default
                .trim_start_matches("/etc/ssh/ssh_host_")
                .trim_end_matches("_key");
            name.contains(kind)
        })
        .map(|(_, a)| a.clone())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn key_types_from_names() {
        assert_eq!(
            algorithm_for("/etc/ssh/ssh_host_ed25519_key"),
            Some(Algorithm::Ed25519)
        );
        assert!(matches!(
            algorithm_for("/srv/keys/host_ecdsa_key"),
            Some(Algorithm::Ecdsa { .. })
        ));
        assert_eq!(algorithm_for("/etc/ssh/ssh_host_rsa_key"), None);
    }

    #[test]
    fn missing_keys_are_generated_in_memory_only() {
        let dir = tempfile::tempdir().unwrap();
        let root = Root::new(dir.path());
        std::fs::create_dir_all(root.join("/etc/ssh")).unwrap();
        std::fs::write(root.join(SSHD_CONFIG), "PermitRootLogin no\n").unwrap();
        assert!(host_keys(&root, None).unwrap().is_empty());
        let keys = host_keys(&root, Some(KeyType::Ed25519)).unwrap();
        assert_eq!(keys.len(), 1);
        assert!(keys[0].generated && keys[0].can_prove());
        assert!(!root.join("/etc/ssh/ssh_host_ed25519_key").exists());
        keys[0].write(&root).unwrap();
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(root.join("/etc/ssh/ssh_host_ed25519_key"))
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o600);
        let again = host_keys(&root, Some(KeyType::All)).unwrap();
        assert_eq!(again.len(), 2);
        assert!(
            !again
                .iter()
                .find(|k| k.path.contains("ed25519"))
                .unwrap()
                .generated
        );
    }
}
