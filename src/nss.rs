//! NSS: the `hostcert` source in `passwd:` and `group:` of `/etc/nsswitch.conf`.
//!
//! Where authselect owns the file (CentOS 8: `/etc/nsswitch.conf` links into
//! `/etc/authselect/`), hand edits are overwritten or break `authselect apply-changes`, so
//! hostcert goes through authselect instead: a custom profile based on the current one, with
//! the source added, selected with the current features; deactivate selects the original back.

use std::path::{Path, PathBuf};

use crate::distro::{find_in, Facts};
use crate::edit::{AuthselectSelection, Edit, Text};
use crate::error::{Error, Result};
use crate::paths::{Root, AUTHSELECT_CONF, AUTHSELECT_DIR, NSSWITCH, NSS_HOSTCERT, NSS_SOURCE};
use crate::system::System;

/// The databases hostcert serves.
const DATABASES: [&str; 2] = ["passwd:", "group:"];
/// hostcert's authselect profile id.
pub const PROFILE: &str = "custom/hostcert";
/// The authselect binary.
const AUTHSELECT: &str = "/usr/bin/authselect";

/// How the NSS source gets configured on this host.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Route {
    /// Edit `/etc/nsswitch.conf` (or the file it links to) directly.
    Direct,
    /// Go through authselect, starting from this selection.
    Authselect(AuthselectSelection),
    /// Nothing to do, and why.
    Skip(String),
}

/// Decides the route. `recorded` is the selection hostcert replaced on an earlier activation.
pub fn route(root: &Root, facts: &Facts, recorded: Option<&AuthselectSelection>) -> Result<Route> {
    if let Some(selection) = recorded {
        return Ok(Route::Authselect(selection.clone()));
    }
    if find_in(root, facts.nss_module_dirs, NSS_HOSTCERT).is_none() {
        return Ok(Route::Skip(format!("{NSS_HOSTCERT} is not installed")));
    }
    let target = root.resolve(NSSWITCH)?;
    if !target.starts_with(AUTHSELECT_DIR) || target == Path::new(NSSWITCH) {
        return Ok(Route::Direct);
    }
    match current_selection(root) {
        Some(selection) if selection.profile == PROFILE => Ok(Route::Skip(format!(
            "authselect already selects {PROFILE}, but hostcert has no record of it"
        ))),
        Some(selection) => Ok(Route::Authselect(selection)),
        None => Ok(Route::Skip(format!(
            "{NSSWITCH} belongs to authselect, but {AUTHSELECT_CONF} does not say which profile is selected"
        ))),
    }
}

/// The selection authselect records: the profile id, then one feature a line.
pub fn current_selection(root: &Root) -> Option<AuthselectSelection> {
    let text = std::fs::read_to_string(root.join(AUTHSELECT_CONF)).ok()?;
    let mut words = text
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.starts_with('#'));
    let profile = words.next()?.to_string();
    Some(AuthselectSelection {
        profile,
        features: words.map(str::to_string).collect(),
    })
}

/// Appends the hostcert source to `passwd:` and `group:` where it is missing.
pub fn add_source(text: &mut Text) -> Vec<Edit> {
    let mut edits = Vec::new();
    for key in DATABASES {
        let Some(i) =
            (0..text.len()).find(|&i| text.line(i).split_whitespace().next() == Some(key))
        else {
            continue;
        };
        let line = text.line(i);
        let sources = line
            .split('#')
            .next()
            .unwrap_or_default()
            .split('{')
            .next()
            .unwrap_or_default();
        if !sources.split_whitespace().any(|w| w == NSS_SOURCE) {
            edits.push(text.append_word(i, key, NSS_SOURCE));
        }
    }
    edits
}

/// The profile's nsswitch.conf template that hostcert's custom profile starts from.
pub fn base_template(root: &Root, profile: &str) -> Result<PathBuf> {
    let candidates: Vec<PathBuf> = match profile.strip_prefix("custom/") {
        Some(name) => vec![Path::new(AUTHSELECT_DIR)
            .join("custom")
            .join(name)
            .join("nsswitch.conf")],
        None => [
            "/usr/share/authselect/vendor",
            "/usr/share/authselect/default",
        ]
        .iter()
        .map(|d| Path::new(d).join(profile).join("nsswitch.conf"))
        .collect(),
    };
    candidates
        .iter()
        .find(|p| root.join(p).is_file())
        .cloned()
        .ok_or_else(|| {
            Error::BadInput(format!(
                "authselect profile {profile}: no nsswitch.conf template found"
            ))
        })
}

/// `authselect create-profile` arguments for hostcert's profile based on `base`.
pub fn create_profile_args(base: &str) -> Vec<String> {
    [
        "create-profile",
        "hostcert",
        "--base-on",
        base,
        "--symlink-meta",
        "--symlink-pam",
        "--symlink-dconf",
    ]
    .iter()
    .map(|s| s.to_string())
    .collect()
}

/// `authselect select` arguments for a selection.
pub fn select_args(selection: &AuthselectSelection) -> Vec<String> {
    let mut args = vec!["select".to_string(), selection.profile.clone()];
    args.extend(selection.features.iter().cloned());
    args
}

/// Runs authselect in the root: every authselect call hostcert makes goes through here.
pub fn authselect(root: &Root, system: &dyn System, args: &[String]) -> Result<()> {
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let out = system.run(root, AUTHSELECT, &args)?;
    if out.success {
        Ok(())
    } else {
        Err(Error::Command {
            command: format!("authselect {}", args.join(" ")),
            message: out.stderr.trim().to_string(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn source_goes_after_existing_sources_and_before_templates() {
        let mut text = Text::parse(
            b"passwd:     sss files systemd   {exclude if \"with-custom-passwd\"}\ngroup: files hostcert\nshadow: files\n",
        );
        let edits = add_source(&mut text);
        assert_eq!(edits.len(), 1);
        assert_eq!(
            String::from_utf8(text.render()).unwrap(),
            "passwd:     sss files systemd hostcert   {exclude if \"with-custom-passwd\"}\ngroup: files hostcert\nshadow: files\n"
        );
    }
}
