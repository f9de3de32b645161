//! Every path hostcert reads or writes, in one place, and the `--root` mapping.
//!
//! Paths are written as the running system sees them (`/etc/ssh/sshd_config`); a [`Root`] maps
//! them into the tree the agent works on, which is `/` on a real host and a copy of a real tree
//! in tests.

use std::path::{Component, Path, PathBuf};

use crate::error::{Error, Result};

/// sshd's main configuration file.
pub const SSHD_CONFIG: &str = "/etc/ssh/sshd_config";
/// The host keys sshd loads when its configuration names none, in sshd's own order.
pub const DEFAULT_HOST_KEYS: [&str; 4] = [
    "/etc/ssh/ssh_host_rsa_key",
    "/etc/ssh/ssh_host_dsa_key",
    "/etc/ssh/ssh_host_ecdsa_key",
    "/etc/ssh/ssh_host_ed25519_key",
];
/// sshd's privilege-separation directory, which `sshd -t` insists on.
pub const SSHD_PRIVSEP_DIR: &str = "/run/sshd";
/// Where sshd writes its pid, newest location first.
pub const SSHD_PID_FILES: [&str; 2] = ["/run/sshd.pid", "/var/run/sshd.pid"];

/// hostcert's configuration directory.
pub const CONFIG_DIR: &str = "/etc/hostcert";
/// The file sshd's `TrustedUserCAKeys` names: the CA's user keys plus the admin's own CA keys.
pub const TRUSTED_USER_CA_KEYS: &str = "/etc/hostcert/trusted_user_ca_keys.pub";
/// The user-CA keys the CA published (`/ssh/roots`), written when a certificate is fetched.
pub const CA_USER_KEYS: &str = "/etc/hostcert/ca_user_keys.pub";

/// hostcert's CA settings: the CA URL and the pinned root fingerprint (JSON).
pub const CA_CONFIG: &str = "/etc/hostcert/ca.json";
/// The pinned root certificate (PEM): the only TLS trust anchor for CA calls.
pub const ROOT_CERT: &str = "/etc/hostcert/root_ca.crt";
/// The CA's host keys (`/ssh/roots` hostKey), written with the certificates: what they must be
/// signed by, and what a `@cert-authority` known_hosts line names.
pub const CA_HOST_KEYS: &str = "/etc/hostcert/ca_host_keys.pub";
/// The seed file for unattended enrollment: `HOSTCERT_*=value` lines, root-only.
pub const SEED_FILE: &str = "/etc/hostcert/seed";

/// hostcert's state directory.
pub const STATE_DIR: &str = "/var/lib/hostcert";
/// The activation state: what hostcert changed, with backups.
pub const STATE_FILE: &str = "/var/lib/hostcert/state.json";

/// Present once `hostcert enroll` has completed; the enroll timer's
/// `ConditionPathExists=!` names it.
pub const ENROLLED: &str = "/var/lib/hostcert/enrolled";
/// What the host last registered in the inventory (JSON), so enroll can skip an identical call.
pub const REGISTERED: &str = "/var/lib/hostcert/registered.json";
/// Why the last `hostcert enroll` failed, until one succeeds (for `status`).
pub const ENROLL_FAILED: &str = "/var/lib/hostcert/enroll-failed.json";
/// The purge manifest: the files hostcert created, one system path a line.
pub const CREATED_FILES: &str = "/var/lib/hostcert/created-files";

/// PAM configuration of sshd.
pub const PAM_SSHD: &str = "/etc/pam.d/sshd";
/// PAM configuration of sudo.
pub const PAM_SUDO: &str = "/etc/pam.d/sudo";
/// PAM configuration of su.
pub const PAM_SU: &str = "/etc/pam.d/su";
/// The PAM module that creates home directories.
pub const PAM_MKHOMEDIR: &str = "pam_mkhomedir.so";
/// hostcert's own PAM module.
pub const PAM_HOSTCERT: &str = "pam_hostcert.so";

/// The name service switch configuration.
pub const NSSWITCH: &str = "/etc/nsswitch.conf";
/// hostcert's NSS module, as glibc loads it.
pub const NSS_HOSTCERT: &str = "libnss_hostcert.so.2";
/// The NSS source name hostcert adds to `passwd:` and `group:`.
pub const NSS_SOURCE: &str = "hostcert";

/// authselect's directory (CentOS 8 and later).
pub const AUTHSELECT_DIR: &str = "/etc/authselect";
/// authselect's record of the selected profile and features.
pub const AUTHSELECT_CONF: &str = "/etc/authselect/authselect.conf";
/// hostcert's custom authselect profile.
pub const AUTHSELECT_PROFILE_DIR: &str = "/etc/authselect/custom/hostcert";

/// The os-release files, in the order systemd reads them.
pub const OS_RELEASE: [&str; 2] = ["/etc/os-release", "/usr/lib/os-release"];
/// Present when systemd is the running init.
pub const SYSTEMD_RUNNING: &str = "/run/systemd/system";

/// How many symlinks [`Root::resolve`] follows before it calls it a loop (as Linux does).
const MAX_LINKS: usize = 40;

/// The tree the agent works on: `/` on a real host, a directory in tests.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Root {
    dir: PathBuf,
}

impl Root {
    /// A root at `dir`.
    pub fn new(dir: impl Into<PathBuf>) -> Self {
        Root { dir: dir.into() }
    }

    /// The running system's own root, `/`.
    pub fn host() -> Self {
        Root::new("/")
    }

    /// The directory this root maps to.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// Whether this is the running system (so services may be reloaded).
    pub fn is_host(&self) -> bool {
        self.dir == Path::new("/")
    }

    /// Maps a system path into the root, without following links.
    pub fn join(&self, system_path: impl AsRef<Path>) -> PathBuf {
        let rel = system_path
            .as_ref()
            .strip_prefix("/")
            .unwrap_or(system_path.as_ref());
        self.dir.join(rel)
    }

    /// Follows symlinks the way the system would, keeping absolute targets inside the root,
    /// and returns the system path of the final file (which need not exist).
    ///
    /// On CentOS 8 `/etc/nsswitch.conf` is a link to `/etc/authselect/nsswitch.conf`; under
    /// `--root` that must be the root's file, never the host's.
    pub fn resolve(&self, system_path: impl AsRef<Path>) -> Result<PathBuf> {
        let mut pending: Vec<PathBuf> = vec![system_path.as_ref().to_path_buf()];
        let mut resolved = PathBuf::from("/");
        let mut links = 0;
        while let Some(path) = pending.pop() {
            let mut components: Vec<Component> = path.components().collect();
            components.reverse();
            while let Some(component) = components.pop() {
                match component {
                    Component::RootDir => resolved = PathBuf::from("/"),
                    Component::CurDir | Component::Prefix(_) => {}
                    Component::ParentDir => {
                        resolved.pop();
                    }
                    Component::Normal(name) => {
                        let candidate = resolved.join(name);
                        let real = self.join(&candidate);
                        match std::fs::symlink_metadata(&real) {
                            Ok(meta) if meta.file_type().is_symlink() => {
                                links += 1;
                                if links > MAX_LINKS {
                                    return Err(Error::BadInput(format!(
                                        "{}: too many levels of symbolic links",
                                        system_path.as_ref().display()
                                    )));
                                }
                                let target = std::fs::read_link(&real)
                                    .map_err(|e| Error::io(&candidate, e))?;
                                // The rest of this path continues after the link's target.
                                let rest: PathBuf = components.iter().rev().collect();
                                pending.push(rest);
                                pending.push(target);
                                components.clear();
                            }
                            _ => resolved = candidate,
                        }
                    }
                }
            }
        }
        Ok(resolved)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn resolve_keeps_absolute_links_inside_the_root() {
        let dir = tempfile::tempdir().unwrap();
        let root = Root::new(dir.path());
        std::fs::create_dir_all(root.join("/etc/authselect")).unwrap();
        std::fs::write(
            root.join("/etc/authselect/nsswitch.conf"),
            "passwd: files\n",
        )
        .unwrap();
        std::os::unix::fs::symlink("/etc/authselect/nsswitch.conf", root.join(NSSWITCH)).unwrap();
        assert_eq!(
            root.resolve(NSSWITCH).unwrap(),
            Path::new("/etc/authselect/nsswitch.conf")
        );
    }

    #[test]
    fn resolve_follows_relative_links_and_linked_directories() {
        let dir = tempfile::tempdir().unwrap();
        let root = Root::new(dir.path());
        std::fs::create_dir_all(root.join("/usr/lib")).unwrap();
        std::os::unix::fs::symlink("usr/lib", root.join("/lib")).unwrap();
        std::fs::create_dir_all(root.join("/etc/pam.d")).unwrap();
        std::os::unix::fs::symlink("system-auth-ac", root.join("/etc/pam.d/system-auth")).unwrap();
        assert_eq!(
            root.resolve("/lib/security/x.so").unwrap(),
            Path::new("/usr/lib/security/x.so")
        );
        assert_eq!(
            root.resolve("/etc/pam.d/system-auth").unwrap(),
            Path::new("/etc/pam.d/system-auth-ac")
        );
    }

    #[test]
    fn resolve_refuses_loops() {
        let dir = tempfile::tempdir().unwrap();
        let root = Root::new(dir.path());
        std::fs::create_dir_all(root.join("/etc")).unwrap();
        std::os::unix::fs::symlink("/etc/b", root.join("/etc/a")).unwrap();
        std::os::unix::fs::symlink("/etc/a", root.join("/etc/b")).unwrap();
        assert!(root.resolve("/etc/a").is_err());
    }
}
