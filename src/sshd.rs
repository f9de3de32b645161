//! sshd_config: reading what sshd would use, and hostcert's managed block at the top.
//!
//! None of the target OpenSSH versions (7.4–8.0) knows `Include`, and sshd keeps the *first*
//! value it reads for most keywords while `HostKey` and `HostCertificate` accumulate. So the
//! block goes at the top of the file, after the leading comment header and before any `Match`,
//! where its `TrustedUserCAKeys` is the one that counts.

use std::path::{Path, PathBuf};

use crate::distro::Facts;
use crate::edit::{Edit, Text};
use crate::error::{Error, Result};
use crate::paths::{Root, DEFAULT_HOST_KEYS, SSHD_PRIVSEP_DIR, TRUSTED_USER_CA_KEYS};
use crate::system::{has_program, System};

/// First line of hostcert's block.
pub const BEGIN_MARKER: &str = "# BEGIN hostcert managed block (`hostcert deactivate` removes it)";
/// Last line of hostcert's block.
pub const END_MARKER: &str = "# END hostcert managed block";

/// How deep `Include`s are followed (sshd itself allows 16).
const MAX_INCLUDE_DEPTH: usize = 16;

/// What an sshd configuration sets, read the way sshd reads it (outside `Match` blocks).
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct SshdConfig {
    /// `HostKey` values, in order.
    pub host_keys: Vec<String>,
    /// `HostCertificate` values, in order.
    pub host_certificates: Vec<String>,
    /// The first `TrustedUserCAKeys` value: the one sshd uses.
    pub trusted_user_ca_keys: Option<String>,
    /// Whether the configuration has a `Match` block.
    pub has_match: bool,
}

impl SshdConfig {
    /// Reads `text`, following `Include` directives inside the root.
    pub fn read(root: &Root, text: &Text) -> SshdConfig {
        let mut config = SshdConfig::default();
        config.read_text(root, text, 0);
        config
    }

    fn read_text(&mut self, root: &Root, text: &Text, depth: usize) {
        let mut in_match = false;
        for line in text.lines() {
            let Some((keyword, value)) = directive(&line) else {
                continue;
            };
            match keyword.as_str() {
                "match" => {
                    in_match = true;
                    self.has_match = true;
                }
                _ if in_match => {}
                "hostkey" => self.host_keys.push(value),
                "hostcertificate" => self.host_certificates.push(value),
                "trustedusercakeys" if self.trusted_user_ca_keys.is_none() => {
                    self.trusted_user_ca_keys = Some(value)
                }
                "include" if depth < MAX_INCLUDE_DEPTH => {
                    for pattern in value.split_whitespace() {
                        for file in expand_include(root, pattern) {
                            if let Ok(bytes) = std::fs::read(root.join(&file)) {
                                self.read_text(root, &Text::parse(&bytes), depth + 1);
                            }
                        }
                    }
                }
                _ => {}
            }
        }
    }

    /// The host keys sshd offers: the listed ones, or every default key that exists.
    pub fn offered_host_keys(&self, root: &Root) -> Vec<String> {
        if self.host_keys.is_empty() {
            default_host_keys(root)
        } else {
            self.host_keys.clone()
        }
    }
}

/// The default host keys that exist in the root.
pub fn default_host_keys(root: &Root) -> Vec<String> {
    DEFAULT_HOST_KEYS
        .iter()
        .filter(|k| root.join(k).is_file())
        .map(|k| k.to_string())
        .collect()
}

/// A directive's lower-cased keyword and its value (`Keyword value`, `Keyword=value`).
pub fn directive(line: &str) -> Option<(String, String)> {
    let line = line.trim();
    if line.is_empty() || line.starts_with('#') {
        return None;
    }
    let end = line
        .find(|c: char| c.is_whitespace() || c == '=')
        .unwrap_or(line.len());
    let (keyword, rest) = line.split_at(end);
    let value = rest.trim_start().strip_prefix('=').unwrap_or(rest).trim();
    Some((keyword.to_ascii_lowercase(), unquote(value).to_string()))
}

fn unquote(value: &str) -> &str {
    value
        .strip_prefix('"')
        .and_then(|v| v.strip_suffix('"'))
        .unwrap_or(value)
}

/// The files an `Include` pattern names, sorted as sshd sorts them (relative to `/etc/ssh`).
fn expand_include(root: &Root, pattern: &str) -> Vec<PathBuf> {
    let pattern = if pattern.starts_with('/') {
        PathBuf::from(pattern)
    } else {
        Path::new("/etc/ssh").join(pattern)
    };
    let in_root = root.join(&pattern);
    let Ok(paths) = glob::glob(&in_root.to_string_lossy()) else {
        return Vec::new();
    };
    let mut files: Vec<PathBuf> = paths
        .filter_map(|p| p.ok())
        .filter_map(|p| {
            p.strip_prefix(root.dir())
                .ok()
                .map(|rel| Path::new("/").join(rel))
        })
        .collect();
    files.sort();
    files
}

/// The certificate file sshd pairs with a host key.
pub fn certificate_path(host_key: &str) -> String {
    format!("{host_key}-cert.pub")
}

/// The lines of hostcert's block for a configuration read from the file without the block.
///
/// `HostKey` lines are listed only when the file lists none: then sshd would otherwise use
/// every default key, and listing one would drop the others and break clients that know them.
pub fn block(root: &Root, config: &SshdConfig) -> Vec<String> {
    let mut lines = vec![BEGIN_MARKER.to_string()];
    let keys = config.offered_host_keys(root);
    if config.host_keys.is_empty() {
        lines.extend(keys.iter().map(|k| format!("HostKey {k}")));
    }
    for key in &keys {
        let cert = certificate_path(key);
        if root.join(&cert).is_file() && !config.host_certificates.contains(&cert) {
            lines.push(format!("HostCertificate {cert}"));
        }
    }
    lines.push(format!("TrustedUserCAKeys {TRUSTED_USER_CA_KEYS}"));
    lines.push(END_MARKER.to_string());
    lines
}

/// Inserts the block after the leading comment header (and the blank line after it), followed
/// by a blank line: before every directive, so before any `Match`.
pub fn insert_block(text: &mut Text, mut block: Vec<String>) -> Edit {
    let header = text
        .lines()
        .take_while(|l| l.trim_start().starts_with('#'))
        .count();
    let at = if header > 0 && header < text.len() && text.line(header).trim().is_empty() {
        header + 1
    } else {
        header
    };
    block.push(String::new());
    text.insert_lines(at, block)
}

/// Removes a hostcert block hostcert has no record of (a lost state file), so there is never
/// more than one.
pub fn remove_stray_block(text: &mut Text) {
    if text.lines().any(|l| l == BEGIN_MARKER) {
        text.revert(&[Edit::Lines {
            lines: vec![BEGIN_MARKER.to_string(), END_MARKER.to_string()],
        }]);
    }
}

/// How a validation went.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "snake_case", tag = "validation", content = "detail")]
pub enum Validation {
    /// `sshd -t` accepted the file.
    Passed(String),
    /// Not run, and why.
    Skipped(String),
}

impl std::fmt::Display for Validation {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Validation::Passed(how) => write!(f, "validated with {how}"),
            Validation::Skipped(why) => write!(f, "validation skipped: {why}"),
        }
    }
}

/// Checks a candidate sshd_config (a system path inside the root) with the root's own `sshd -t`.
pub fn validate(
    root: &Root,
    system: &dyn System,
    facts: &Facts,
    candidate: &Path,
) -> Result<Validation> {
    if !has_program(root, facts.sshd) {
        return Ok(Validation::Skipped(format!(
            "{} has no {}",
            root.dir().display(),
            facts.sshd
        )));
    }
    // sshd -t refuses to run without its privilege-separation directory.
    let privsep = root.join(SSHD_PRIVSEP_DIR);
    if !privsep.is_dir() {
        std::fs::create_dir_all(&privsep).map_err(|e| Error::io(SSHD_PRIVSEP_DIR, e))?;
    }
    let candidate = candidate.to_string_lossy();
    let out = system.run(root, facts.sshd, &["-t", "-f", &candidate])?;
    if out.success {
        Ok(Validation::Passed(format!("{} -t", facts.sshd)))
    } else {
        Err(Error::Validation(format!(
            "{} -t refused the new sshd_config: {}",
            facts.sshd,
            out.stderr.trim()
        )))
    }
}

/// The effective values of the keywords hostcert cares about, from `sshd -T`.
pub fn effective(root: &Root, system: &dyn System, facts: &Facts) -> Option<Vec<(String, String)>> {
    if !has_program(root, facts.sshd) {
        return None;
    }
    let out = system.run(root, facts.sshd, &["-T"]).ok()?;
    if !out.success {
        return None;
    }
    Some(
        out.stdout
            .lines()
            .filter_map(|l| l.split_once(' '))
            .filter(|(k, _)| matches!(*k, "hostkey" | "hostcertificate" | "trustedusercakeys"))
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect(),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn directives_parse_like_sshd() {
        assert_eq!(
            directive("  HostKey /k"),
            Some(("hostkey".into(), "/k".into()))
        );
        assert_eq!(
            directive("TrustedUserCAKeys=/ca"),
            Some(("trustedusercakeys".into(), "/ca".into()))
        );
        assert_eq!(
            directive("TrustedUserCAKeys = \"/ca\""),
            Some(("trustedusercakeys".into(), "/ca".into()))
        );
        assert_eq!(
            directive("\tSubsystem\tsftp\t/x"),
            Some(("subsystem".into(), "sftp\t/x".into()))
        );
        assert_eq!(directive("# HostKey /k"), None);
    }

    #[test]
    fn reading_stops_at_match_and_keeps_the_first_ca() {
        let root = Root::new("/nonexistent");
        let text = Text::parse(
            b"TrustedUserCAKeys /a\nTrustedUserCAKeys /b\nHostKey /k\nMatch User x\n  HostKey /m\n",
        );
        let config = SshdConfig::read(&root, &text);
        assert_eq!(config.trusted_user_ca_keys.as_deref(), Some("/a"));
        assert_eq!(config.host_keys, vec!["/k"]);
        assert!(config.has_match);
    }
}
