//! Every enrollment setting, documented once: its command-line flag, environment variable,
//! seed-file key and debconf question ([`SETTINGS`]). Operators script these names: they are
//! fixed.
//!
//! Precedence: flags > `HOSTCERT_*` environment > the seed file [`SEED_FILE`] (same names as
//! the environment, `KEY=value` lines). The seed file holds the token, so it must be root-only:
//! a seed readable by group or others is refused. The token itself never comes from argv:
//! `HOSTCERT_TOKEN`, a token file (`--token-file`, `HOSTCERT_TOKEN_FILE`) or the seed file.

use std::collections::BTreeMap;
use std::os::unix::fs::MetadataExt;

use crate::edit::fsio::{self, FileMeta};
use crate::error::{Error, Result};
use crate::paths::{Root, SEED_FILE};

/// How debconf asks for a setting.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Kind {
    /// Free text.
    String,
    /// Hidden text.
    Password,
    /// `true` / `false`.
    Boolean,
}

/// One setting and all its names.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
pub struct Setting {
    /// What it is.
    pub name: &'static str,
    /// The `hostcert enroll` flag.
    pub flag: &'static str,
    /// The environment variable, also the seed-file key.
    pub env: &'static str,
    /// The debconf question.
    pub debconf: &'static str,
    /// The debconf type.
    pub kind: Kind,
}

/// The CA URL.
pub const CA_URL: Setting = Setting {
    name: "CA URL",
    flag: "--ca-url",
    env: "HOSTCERT_CA_URL",
    debconf: "hostcert/ca-url",
    kind: Kind::String,
};
/// The root fingerprint.
pub const FINGERPRINT: Setting = Setting {
    name: "root fingerprint",
    flag: "--fingerprint",
    env: "HOSTCERT_FINGERPRINT",
    debconf: "hostcert/fingerprint",
    kind: Kind::String,
};
/// The enrollment token (never a flag: `--token-file` or `HOSTCERT_TOKEN_FILE` name a file).
pub const TOKEN: Setting = Setting {
    name: "token",
    flag: "--token-file",
    env: "HOSTCERT_TOKEN",
    debconf: "hostcert/token",
    kind: Kind::Password,
};
/// The host name (key ID and first principal).
pub const HOSTNAME: Setting = Setting {
    name: "hostname",
    flag: "--hostname",
    env: "HOSTCERT_HOSTNAME",
    debconf: "hostcert/hostname",
    kind: Kind::String,
};
/// Extra principals, comma-separated.
pub const PRINCIPALS: Setting = Setting {
    name: "extra principals",
    flag: "--principal",
    env: "HOSTCERT_PRINCIPALS",
    debconf: "hostcert/principals",
    kind: Kind::String,
};
/// Inventory tags, comma-separated `KEY=VALUE`.
pub const TAGS: Setting = Setting {
    name: "tags",
    flag: "--tag",
    env: "HOSTCERT_TAGS",
    debconf: "hostcert/tags",
    kind: Kind::String,
};
/// The bastion this host is reached through.
pub const BASTION: Setting = Setting {
    name: "bastion to go through",
    flag: "--bastion",
    env: "HOSTCERT_BASTION",
    debconf: "hostcert/bastion",
    kind: Kind::String,
};
/// Whether this host is a bastion.
pub const IS_BASTION: Setting = Setting {
    name: "is a bastion",
    flag: "--is-bastion",
    env: "HOSTCERT_IS_BASTION",
    debconf: "hostcert/is-bastion",
    kind: Kind::Boolean,
};

/// The table, in the order `hostcert settings` prints it.
pub const SETTINGS: [Setting; 8] = [
    CA_URL,
    FINGERPRINT,
    TOKEN,
    HOSTNAME,
    PRINCIPALS,
    TAGS,
    BASTION,
    IS_BASTION,
];

/// Names a file holding the token (environment and seed file); `--token-file` is its flag.
pub const TOKEN_FILE_ENV: &str = "HOSTCERT_TOKEN_FILE";

/// A secret: never printed, never logged.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(String);

impl Secret {
    /// Wraps a secret.
    pub fn new(value: impl Into<String>) -> Secret {
        Secret(value.into())
    }

    /// The secret itself, for the one place that sends it.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl std::fmt::Debug for Secret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Secret(***)")
    }
}

/// Where an effective value came from.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Source {
    /// A command-line flag.
    Flag,
    /// The environment.
    Environment,
    /// The seed file.
    SeedFile,
}

impl std::fmt::Display for Source {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Source::Flag => "flag",
            Source::Environment => "environment",
            Source::SeedFile => SEED_FILE,
        })
    }
}

/// Values given on the command line (the token only as a file name).
#[derive(Debug, Clone, Default)]
pub struct Flags {
    /// `--ca-url`.
    pub ca_url: Option<String>,
    /// `--fingerprint`.
    pub fingerprint: Option<String>,
    /// `--token-file`.
    pub token_file: Option<String>,
    /// `--hostname`.
    pub hostname: Option<String>,
    /// `--principal`, repeated.
    pub principals: Vec<String>,
    /// `--tag`, repeated.
    pub tags: Vec<String>,
    /// `--bastion`.
    pub bastion: Option<String>,
    /// `--is-bastion`.
    pub is_bastion: bool,
}

/// The effective settings, each with its source.
#[derive(Debug, Clone, Default)]
pub struct Effective {
    values: BTreeMap<&'static str, (String, Source)>,
    token: Option<(Secret, Source)>,
}

impl Effective {
    /// The value of `setting` (not the token: see [`Effective::token`]).
    pub fn get(&self, setting: &Setting) -> Option<&str> {
        self.values.get(setting.env).map(|(v, _)| v.as_str())
    }

    /// The token and where it came from.
    pub fn token(&self) -> Option<&Secret> {
        self.token.as_ref().map(|(t, _)| t)
    }

    /// Extra principals.
    pub fn principals(&self) -> Vec<String> {
        split_list(self.get(&PRINCIPALS).unwrap_or_default())
    }

    /// Tags, validated.
    pub fn tags(&self) -> Result<BTreeMap<String, String>> {
        hostcert_proto::tags::parse_list(self.get(&TAGS).unwrap_or_default())
            .map_err(|e| Error::BadInput(format!("{}: {e}", TAGS.env)))
    }

    /// Whether this host is a bastion.
    pub fn is_bastion(&self) -> Result<bool> {
        match self
            .get(&IS_BASTION)
            .map(str::to_ascii_lowercase)
            .as_deref()
        {
            None | Some("") | Some("false") => Ok(false),
            Some("true") => Ok(true),
            Some(other) => Err(Error::BadInput(format!(
                "{}={other}: expected true or false",
                IS_BASTION.env
            ))),
        }
    }

    /// One line per setting: name, value (token masked), source.
    pub fn describe(&self) -> Vec<(Setting, Option<String>, Option<Source>)> {
        SETTINGS
            .iter()
            .map(|s| {
                if s.env == TOKEN.env {
                    let token = self.token.as_ref();
                    (
                        *s,
                        token.map(|_| "********".to_string()),
                        token.map(|(_, src)| src.clone()),
                    )
                } else {
                    let v = self.values.get(s.env);
                    (*s, v.map(|(v, _)| v.clone()), v.map(|(_, src)| src.clone()))
                }
            })
            .collect()
    }
}

/// A comma-separated list, blanks and empty items dropped.
pub fn split_list(list: &str) -> Vec<String> {
    list.split(',')
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(str::to_string)
        .collect()
}

/// Resolves every setting: `flags`, then `env` (the process environment in production), then
/// the seed file.
pub fn resolve(
    root: &Root,
    flags: &Flags,
    env: &dyn Fn(&str) -> Option<String>,
) -> Result<Effective> {
    let seed = read_seed(root)?;
    let mut effective = Effective::default();
    let flag_values: [(&Setting, Option<String>); 7] = [
        (&CA_URL, flags.ca_url.clone()),
        (&FINGERPRINT, flags.fingerprint.clone()),
        (&HOSTNAME, flags.hostname.clone()),
        (
            &PRINCIPALS,
            (!flags.principals.is_empty()).then(|| flags.principals.join(",")),
        ),
        (
            &TAGS,
            (!flags.tags.is_empty()).then(|| flags.tags.join(",")),
        ),
        (&BASTION, flags.bastion.clone()),
        (&IS_BASTION, flags.is_bastion.then(|| "true".to_string())),
    ];
    for (setting, flag) in flag_values {
        let value = flag
            .map(|v| (v, Source::Flag))
            .or_else(|| {
                env(setting.env)
                    .filter(|v| !v.is_empty())
                    .map(|v| (v, Source::Environment))
            })
            .or_else(|| seed.get(setting.env).map(|v| (v.clone(), Source::SeedFile)));
        if let Some(value) = value {
            effective.values.insert(setting.env, value);
        }
    }
    let token_file = |path: &str, source: Source| -> Result<(Secret, Source)> {
        let text = std::fs::read_to_string(path)
            .map_err(|e| Error::BadInput(format!("token file {path}: {e}")))?;
        let token = text.trim();
        if token.is_empty() {
            return Err(Error::BadInput(format!("token file {path} is empty")));
        }
        Ok((Secret::new(token), source))
    };
    effective.token = if let Some(path) = &flags.token_file {
        Some(token_file(path, Source::Flag)?)
    } else if let Some(token) = env(TOKEN.env).filter(|t| !t.trim().is_empty()) {
        Some((Secret::new(token.trim()), Source::Environment))
    } else if let Some(path) = env(TOKEN_FILE_ENV).filter(|p| !p.is_empty()) {
        Some(token_file(&path, Source::Environment)?)
    } else if let Some(token) = seed.get(TOKEN.env).filter(|t| !t.is_empty()) {
        Some((Secret::new(token.as_str()), Source::SeedFile))
    } else if let Some(path) = seed.get(TOKEN_FILE_ENV) {
        Some(token_file(path, Source::SeedFile)?)
    } else {
        None
    };
    if effective.is_bastion()? && effective.get(&BASTION).is_some() {
        return Err(Error::BadInput(format!(
            "{} and {} exclude each other: a bastion is not reached through another",
            IS_BASTION.env, BASTION.env
        )));
    }
    Ok(effective)
}

/// The process environment.
pub fn process_env(name: &str) -> Option<String> {
    std::env::var(name).ok()
}

/// Reads the seed file (empty when there is none), refusing one others can read.
pub fn read_seed(root: &Root) -> Result<BTreeMap<String, String>> {
    let path = root.join(SEED_FILE);
    let meta = match std::fs::metadata(&path) {
        Ok(meta) => meta,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(BTreeMap::new()),
        Err(e) => return Err(Error::io(SEED_FILE, e)),
    };
    if meta.mode() & 0o077 != 0 {
        return Err(Error::BadInput(format!(
            "refusing {SEED_FILE}: it holds the enrollment token but is readable by group or \
             others (mode {:04o}); run `chmod 600 {SEED_FILE}`",
            meta.mode() & 0o7777
        )));
    }
    let text = std::fs::read_to_string(&path).map_err(|e| Error::io(SEED_FILE, e))?;
    parse_seed(&text)
}

/// Parses `KEY=value` lines (comments, blank lines and `export ` allowed; optional quotes).
pub fn parse_seed(text: &str) -> Result<BTreeMap<String, String>> {
    let mut map = BTreeMap::new();
    for (n, line) in text.lines().enumerate() {
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let line = line.strip_prefix("export ").unwrap_or(line);
        let Some((key, value)) = line.split_once('=') else {
            return Err(Error::BadInput(format!(
                "{SEED_FILE} line {}: expected KEY=value",
                n + 1
            )));
        };
        let key = key.trim();
        if !SETTINGS.iter().any(|s| s.env == key) && key != TOKEN_FILE_ENV {
            return Err(Error::BadInput(format!(
                "{SEED_FILE} line {}: unknown setting {key} (known: {}, {TOKEN_FILE_ENV})",
                n + 1,
                SETTINGS
                    .iter()
                    .map(|s| s.env)
                    .collect::<Vec<_>>()
                    .join(", ")
            )));
        }
        let value = value.trim();
        let value = value
            .strip_prefix('"')
            .and_then(|v| v.strip_suffix('"'))
            .or_else(|| value.strip_prefix('\'').and_then(|v| v.strip_suffix('\'')))
            .unwrap_or(value);
        map.insert(key.to_string(), value.to_string());
    }
    Ok(map)
}

/// Removes the token line from the seed file, atomically, keeping every other line, its owner
/// and mode. Returns whether there was one.
pub fn remove_seed_token(root: &Root) -> Result<bool> {
    let path = root.join(SEED_FILE);
    let Some(bytes) = fsio::read_optional(&path).map_err(|e| Error::io(SEED_FILE, e))? else {
        return Ok(false);
    };
    let text = String::from_utf8_lossy(&bytes);
    let is_token = |line: &str| {
        let line = line.trim_start();
        let line = line.strip_prefix("export ").unwrap_or(line);
        line.split_once('=').map(|(k, _)| k.trim()) == Some(TOKEN.env)
    };
    if !text.lines().any(is_token) {
        return Ok(false);
    }
    let kept: String = text
        .split_inclusive('\n')
        .filter(|line| !is_token(line))
        .collect();
    let meta = FileMeta::of(&path)
        .map_err(|e| Error::io(SEED_FILE, e))?
        .unwrap_or_else(|| FileMeta::new_file(0o600));
    fsio::write_atomic(&path, kept.as_bytes(), &meta).map_err(|e| Error::io(SEED_FILE, e))?;
    Ok(true)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    fn tree(seed: Option<(&str, u32)>) -> (tempfile::TempDir, Root) {
        let dir = tempfile::tempdir().unwrap();
        let root = Root::new(dir.path());
        std::fs::create_dir_all(root.join("/etc/hostcert")).unwrap();
        if let Some((text, mode)) = seed {
            std::fs::write(root.join(SEED_FILE), text).unwrap();
            std::fs::set_permissions(root.join(SEED_FILE), std::fs::Permissions::from_mode(mode))
                .unwrap();
        }
        (dir, root)
    }

    #[test]
    fn names_are_the_documented_ones() {
        let envs: Vec<&str> = SETTINGS.iter().map(|s| s.env).collect();
        assert_eq!(
            envs,
            [
                "HOSTCERT_CA_URL",
                "HOSTCERT_FINGERPRINT",
                "HOSTCERT_TOKEN",
                "HOSTCERT_HOSTNAME",
                "HOSTCERT_PRINCIPALS",
                "HOSTCERT_TAGS",
                "HOSTCERT_BASTION",
                "HOSTCERT_IS_BASTION"
            ]
        );
        for s in SETTINGS {
            assert_eq!(
                s.debconf,
                format!(
                    "hostcert/{}",
                    s.env
                        .trim_start_matches("HOSTCERT_")
                        .to_lowercase()
                        .replace('_', "-")
                )
            );
        }
    }

    #[test]
    fn flags_beat_environment_beat_seed() {
        let (_d, root) = tree(Some((
            "HOSTCERT_CA_URL=https://seed\nHOSTCERT_HOSTNAME=\"seed-host\"\nHOSTCERT_TAGS=a=1\nHOSTCERT_TOKEN=seed-token\n",
            0o600,
        )));
        let env = |k: &str| match k {
            "HOSTCERT_CA_URL" => Some("https://env".to_string()),
            "HOSTCERT_TAGS" => Some("b=2".to_string()),
            _ => None,
        };
        let flags = Flags {
            ca_url: Some("https://flag".into()),
            ..Flags::default()
        };
        let e = resolve(&root, &flags, &env).unwrap();
        assert_eq!(e.get(&CA_URL), Some("https://flag"));
        assert_eq!(e.get(&TAGS), Some("b=2"));
        assert_eq!(e.get(&HOSTNAME), Some("seed-host"));
        assert_eq!(e.token().unwrap().expose(), "seed-token");
        let lines = e.describe();
        let token = lines.iter().find(|l| l.0 == TOKEN).unwrap();
        assert_eq!(token.1.as_deref(), Some("********"));
        assert_eq!(token.2, Some(Source::SeedFile));
        assert!(!format!("{e:?}").contains("seed-token"));
    }

    #[test]
    fn readable_seed_is_refused() {
        let (_d, root) = tree(Some(("HOSTCERT_TOKEN=x\n", 0o644)));
        let err = resolve(&root, &Flags::default(), &|_| None).unwrap_err();
        assert!(err.to_string().contains("chmod 600"), "{err}");
    }

    #[test]
    fn bad_seeds_and_exclusive_bastion_flags() {
        assert!(parse_seed("HOSTCERT_TOKEM=x\n").is_err());
        assert!(parse_seed("just words\n").is_err());
        let (_d, root) = tree(None);
        let flags = Flags {
            is_bastion: true,
            bastion: Some("b1".into()),
            ..Flags::default()
        };
        assert!(resolve(&root, &flags, &|_| None).is_err());
        let env = |k: &str| (k == "HOSTCERT_IS_BASTION").then(|| "maybe".to_string());
        let err = resolve(&root, &Flags::default(), &env).unwrap_err();
        assert!(err.to_string().contains("expected true or false"), "{err}");
    }

    #[test]
    fn token_line_is_removed_and_the_rest_kept() {
        let seed = "# seed\nHOSTCERT_CA_URL=https://ca\nHOSTCERT_TOKEN=secret\nHOSTCERT_TAGS=a=1\n";
        let (_d, root) = tree(Some((seed, 0o600)));
        assert!(remove_seed_token(&root).unwrap());
        assert_eq!(
            std::fs::read_to_string(root.join(SEED_FILE)).unwrap(),
            "# seed\nHOSTCERT_CA_URL=https://ca\nHOSTCERT_TAGS=a=1\n"
        );
        let mode = std::fs::metadata(root.join(SEED_FILE))
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o600);
        assert!(!remove_seed_token(&root).unwrap());
    }
}
