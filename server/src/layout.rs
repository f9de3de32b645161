//! The server directory (`--dir`): file names, the config file, and loading the authority.

use std::fs;
use std::io::Write;
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};

use anyhow::{bail, Context, Result};
use p256::pkcs8::DecodePrivateKey;
use serde::{Deserialize, Serialize};

use crate::ca::CaKey;

/// Default `--dir`.
pub const DEFAULT_DIR: &str = "/var/lib/hostcert-server";

/// Paths of everything `init` creates under the server directory.
pub struct Layout {
    dir: PathBuf,
}

impl Layout {
    /// The layout of `dir`.
    pub fn new(dir: &Path) -> Layout {
        Layout {
            dir: dir.to_path_buf(),
        }
    }

    /// The directory itself.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// Written last by `init`: its presence means the directory is complete.
    pub fn config(&self) -> PathBuf {
        self.dir.join("config.json")
    }
    /// X.509 root certificate, PEM.
    pub fn root_cert(&self) -> PathBuf {
        self.dir.join("root_ca.crt")
    }
    /// X.509 root key, PKCS#8 PEM (0600).
    pub fn root_key(&self) -> PathBuf {
        self.dir.join("root_ca.key")
    }
    /// TLS server certificate, PEM.
    pub fn tls_cert(&self) -> PathBuf {
        self.dir.join("tls.crt")
    }
    /// TLS server key, PKCS#8 PEM (0600).
    pub fn tls_key(&self) -> PathBuf {
        self.dir.join("tls.key")
    }
    /// SSH host CA private key, OpenSSH format (0600).
    pub fn host_ca_key(&self) -> PathBuf {
        self.dir.join("ssh_host_ca_key")
    }
    /// SSH user CA private key, OpenSSH format (0600).
    pub fn user_ca_key(&self) -> PathBuf {
        self.dir.join("ssh_user_ca_key")
    }
    /// JWK provisioner private key (ES256), PKCS#8 PEM (0600).
    pub fn provisioner_key(&self) -> PathBuf {
        self.dir.join("provisioner.key")
    }
    /// Admin bearer credential for `GET /hosts` (0600).
    pub fn admin_credential(&self) -> PathBuf {
        self.dir.join("admin.credential")
    }
    /// The SQLite database.
    pub fn db(&self) -> PathBuf {
        self.dir.join("hostcert.db")
    }
}

/// `config.json`.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Config {
    /// `https://<first DNS name>:<port>`, what agents are given.
    pub ca_url: String,
    /// Names (and IPs) in the TLS certificate; token audiences must name one of them.
    pub dns: Vec<String>,
    /// The default listen address.
    pub address: String,
    /// Name of the JWK provisioner (the OTT `iss`).
    pub provisioner: String,
    /// Hex SHA-256 of the root certificate's DER.
    pub root_fingerprint: String,
}

/// Everything `serve` and the signing subcommands need from the directory.
pub struct Authority {
    /// The configuration.
    pub config: Config,
    /// Root certificate PEM.
    pub root_pem: String,
    /// Host CA.
    pub host_ca: CaKey,
    /// User CA.
    pub user_ca: CaKey,
    /// Provisioner signing key.
    pub provisioner: p256::ecdsa::SigningKey,
    /// Admin credential.
    pub admin_credential: String,
}

impl Layout {
    /// Reads the config, failing clearly when `init` has not run.
    pub fn load_config(&self) -> Result<Config> {
        let path = self.config();
        if !path.exists() {
            bail!(
                "{} is not an initialised hostcert-server directory (run `hostcert-server init --dir {}`)",
                self.dir.display(),
                self.dir.display()
            );
        }
        let text =
            fs::read_to_string(&path).with_context(|| format!("reading {}", path.display()))?;
        serde_json::from_str(&text).with_context(|| format!("parsing {}", path.display()))
    }

    /// Loads keys and config.
    pub fn load_authority(&self) -> Result<Authority> {
        let config = self.load_config()?;
        let read =
            |p: PathBuf| fs::read_to_string(&p).with_context(|| format!("reading {}", p.display()));
        let provisioner = p256::ecdsa::SigningKey::from_pkcs8_pem(&read(self.provisioner_key())?)
            .context("parsing the provisioner key")?;
        Ok(Authority {
            root_pem: read(self.root_cert())?,
            host_ca: CaKey::from_openssh(&read(self.host_ca_key())?).context("host CA key")?,
            user_ca: CaKey::from_openssh(&read(self.user_ca_key())?).context("user CA key")?,
            provisioner,
            admin_credential: read(self.admin_credential())?.trim().to_string(),
            config,
        })
    }
}

/// Creates `path` (never overwriting) with `mode` and writes `data`.
pub fn write_new(path: &Path, data: &[u8], mode: u32) -> Result<()> {
    let mut f = fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(mode)
        .open(path)
        .with_context(|| format!("creating {}", path.display()))?;
    // The umask may have narrowed the mode; secrets must be exactly 0600, others readable.
    f.set_permissions(fs::Permissions::from_mode(mode))?;
    f.write_all(data)
        .and_then(|_| f.sync_all())
        .with_context(|| format!("writing {}", path.display()))
}

/// Replaces `path` atomically (temp file + rename) with `data`, mode `mode`.
pub fn write_replace(path: &Path, data: &[u8], mode: u32) -> Result<()> {
    let tmp = path.with_extension("hostcert-tmp");
    let _ = fs::remove_file(&tmp);
    write_new(&tmp, data, mode)?;
    fs::rename(&tmp, path).with_context(|| format!("replacing {}", path.display()))
}
