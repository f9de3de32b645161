//! The host's own name.

use std::process::Command;

use crate::paths::Root;

/// The host's fully qualified name: `hostname --fqdn` on the running system (it asks the
/// resolver), the root's `/etc/hostname` under `--root`.
pub fn fqdn(root: &Root) -> Option<String> {
    let name = if root.is_host() {
        Command::new("hostname")
            .arg("--fqdn")
            .output()
            .ok()
            .filter(|o| o.status.success())
            .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_string())
            .filter(|n| !n.is_empty())
            .or_else(|| {
                nix::unistd::gethostname()
                    .ok()
                    .map(|n| n.to_string_lossy().into_owned())
            })
    } else {
        std::fs::read_to_string(root.join("/etc/hostname"))
            .ok()
            .map(|n| n.trim().to_string())
    };
    name.filter(|n| !n.is_empty())
}
