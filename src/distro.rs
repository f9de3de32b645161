//! Which system this is, from `/etc/os-release`, and the facts that differ per family.

use std::path::Path;

use crate::error::{Error, Result};
use crate::paths::{Root, OS_RELEASE};

/// A family of distributions sharing paths and service names.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Family {
    /// Debian and Ubuntu.
    Debian,
    /// CentOS, RHEL, Rocky, Alma.
    RedHat,
}

/// What differs between families, in one table.
#[derive(Debug, PartialEq, Eq)]
pub struct Facts {
    /// The systemd unit of sshd.
    pub sshd_service: &'static str,
    /// The sshd binary.
    pub sshd: &'static str,
    /// Where PAM modules live, most likely first.
    pub pam_module_dirs: &'static [&'static str],
    /// Where NSS modules live, most likely first.
    pub nss_module_dirs: &'static [&'static str],
}

const DEBIAN: Facts = Facts {
    sshd_service: "ssh",
    sshd: "/usr/sbin/sshd",
    pam_module_dirs: &[
        "/lib/x86_64-linux-gnu/security",
        "/usr/lib/x86_64-linux-gnu/security",
        "/lib/security",
    ],
    nss_module_dirs: &["/lib/x86_64-linux-gnu", "/usr/lib/x86_64-linux-gnu"],
};

const REDHAT: Facts = Facts {
    sshd_service: "sshd",
    sshd: "/usr/sbin/sshd",
    pam_module_dirs: &["/usr/lib64/security", "/lib64/security"],
    nss_module_dirs: &["/usr/lib64", "/lib64"],
};

/// The supported distributions: os-release `ID`, family, oldest supported version.
const SUPPORTED: &[(&str, Family, (u32, u32))] = &[
    ("ubuntu", Family::Debian, (18, 4)),
    ("debian", Family::Debian, (10, 0)),
    ("centos", Family::RedHat, (7, 0)),
    ("rhel", Family::RedHat, (7, 0)),
    ("rocky", Family::RedHat, (8, 0)),
    ("almalinux", Family::RedHat, (8, 0)),
];

/// The detected system.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Distro {
    /// os-release `ID`.
    pub id: String,
    /// os-release `VERSION_ID` (empty for rolling releases such as Debian sid).
    pub version: String,
    /// os-release `PRETTY_NAME`, for messages.
    pub pretty_name: String,
    /// The family.
    pub family: Family,
}

impl Distro {
    /// Reads the root's os-release and refuses systems hostcert does not support.
    pub fn detect(root: &Root) -> Result<Distro> {
        let (path, text) = OS_RELEASE
            .iter()
            .find_map(|p| std::fs::read_to_string(root.join(p)).ok().map(|t| (*p, t)))
            .ok_or_else(|| {
                Error::Unsupported(format!(
                    "no {} or {}: cannot tell which system this is",
                    OS_RELEASE[0], OS_RELEASE[1]
                ))
            })?;
        Distro::from_os_release(&text).map_err(|e| match e {
            Error::Unsupported(m) => Error::Unsupported(format!("{m} (from {path})")),
            other => other,
        })
    }

    /// Parses os-release text.
    pub fn from_os_release(text: &str) -> Result<Distro> {
        let field = |name: &str| {
            text.lines()
                .filter_map(|l| l.split_once('='))
                .find(|(k, _)| k.trim() == name)
                .map(|(_, v)| v.trim().trim_matches(['"', '\'']).to_string())
                .unwrap_or_default()
        };
        let (id, version, pretty_name) = (field("ID"), field("VERSION_ID"), field("PRETTY_NAME"));
        let name = if pretty_name.is_empty() {
            format!("{id} {version}")
        } else {
            pretty_name.clone()
        };
        let Some(&(_, family, minimum)) = SUPPORTED.iter().find(|(known, ..)| *known == id) else {
            return Err(Error::Unsupported(format!(
                "{name}: hostcert supports Ubuntu 18.04+, Debian 10+ and CentOS/RHEL/Rocky/Alma 7+"
            )));
        };
        // No VERSION_ID: a rolling release (Debian testing/sid), newer than any minimum.
        if let Some(found) = parse_version(&version) {
            if found < minimum {
                return Err(Error::Unsupported(format!(
                    "{name} is older than the oldest supported {id} ({}.{:02})",
                    minimum.0, minimum.1
                )));
            }
        }
        Ok(Distro {
            id,
            version,
            pretty_name: name,
            family,
        })
    }

    /// The family's facts.
    pub fn facts(&self) -> &'static Facts {
        match self.family {
            Family::Debian => &DEBIAN,
            Family::RedHat => &REDHAT,
        }
    }
}

fn parse_version(version: &str) -> Option<(u32, u32)> {
    let mut parts = version.split('.');
    let major = parts.next()?.parse().ok()?;
    let minor = parts.next().and_then(|m| m.parse().ok()).unwrap_or(0);
    Some((major, minor))
}

/// The first of `dirs` (resolved inside the root) that holds `file`, as a system path.
pub fn find_in(root: &Root, dirs: &[&str], file: &str) -> Option<std::path::PathBuf> {
    dirs.iter().find_map(|dir| {
        let path = root.resolve(Path::new(dir).join(file)).ok()?;
        root.join(&path).is_file().then_some(path)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn targets_are_supported() {
        for (text, family) in [
            (
                "NAME=\"Ubuntu\"\nVERSION_ID=\"18.04\"\nID=ubuntu\nID_LIKE=debian\n",
                Family::Debian,
            ),
            ("ID=debian\nVERSION_ID=\"10\"\n", Family::Debian),
            (
                "ID=debian\nPRETTY_NAME=\"Debian GNU/Linux trixie/sid\"\n",
                Family::Debian,
            ),
            ("ID=\"centos\"\nVERSION_ID=\"7\"\n", Family::RedHat),
            ("ID=\"centos\"\nVERSION_ID=\"8\"\n", Family::RedHat),
            ("ID=\"rocky\"\nVERSION_ID=\"9.3\"\n", Family::RedHat),
        ] {
            assert_eq!(
                Distro::from_os_release(text).unwrap().family,
                family,
                "{text}"
            );
        }
    }

    #[test]
    fn others_are_refused_with_a_reason() {
        for text in [
            "ID=ubuntu\nVERSION_ID=\"16.04\"\n",
            "ID=debian\nVERSION_ID=\"9\"\n",
            "ID=centos\nVERSION_ID=\"6\"\n",
            "ID=alpine\nVERSION_ID=3.19\n",
            "",
        ] {
            let err = Distro::from_os_release(text).unwrap_err();
            assert!(matches!(err, Error::Unsupported(_)), "{text}: {err}");
        }
    }
}
