//! PAM: hostcert's lines in `/etc/pam.d/sshd`, `sudo` and `su`.
//!
//! These three files belong to no distro tool on any target (unlike `common-*`, owned by
//! pam-auth-update, and `system-auth`/`password-auth`, owned by authconfig/authselect), so they
//! are edited directly. A line is added only when the module it names exists on disk: a PAM
//! stack naming a missing module locks everyone out.

use crate::distro::{find_in, Facts};
use crate::edit::{Edit, Text};
use crate::paths::{Root, PAM_HOSTCERT, PAM_MKHOMEDIR};

/// The comment before every line hostcert adds.
pub const MARKER: &str = "# Added by hostcert; `hostcert deactivate` removes it with the next line";
/// Creates the home directory of a directory user at first login.
pub const MKHOMEDIR_LINE: &str =
    "session    optional     pam_mkhomedir.so skel=/etc/skel umask=0077";
/// Lets hostcert's module decide account access for directory users; it can only deny or
/// pass, so local users keep working exactly as before.
pub const ACCOUNT_LINE: &str =
    "account    [success=ok ignore=ignore user_unknown=ignore default=bad] pam_hostcert.so";

/// One planned PAM line, or why there is none.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Plan {
    /// Insert these lines (marker first) before line `at`.
    Insert {
        /// Where.
        at: usize,
        /// The marker and the PAM line.
        lines: Vec<String>,
    },
    /// Nothing to add, and why.
    Skip(String),
}

/// The PAM type of a line (`session`, `-session` → `session`; `@include common-session` →
/// `session`), if it is a rule.
fn rule_type(line: &str) -> Option<String> {
    let line = line.trim();
    if line.starts_with('#') {
        return None;
    }
    if let Some(included) = line.strip_prefix("@include") {
        let name = included.trim();
        return ["auth", "account", "password", "session"]
            .iter()
            .find(|t| name.starts_with(&format!("common-{t}")))
            .map(|t| t.to_string());
    }
    let first = line.split_whitespace().next()?;
    let kind = first.trim_start_matches('-').to_ascii_lowercase();
    ["auth", "account", "password", "session"]
        .contains(&kind.as_str())
        .then_some(kind)
}

/// Whether a non-comment line of `text` names `module`.
fn mentions(text: &Text, module: &str) -> bool {
    let stem = module.trim_end_matches(".so");
    text.lines()
        .any(|l| !l.trim_start().starts_with('#') && l.contains(stem))
}

/// The mkhomedir session line for `/etc/pam.d/sshd`: before `pam_selinux.so open` (what follows
/// it runs in the user's context, and creating a home directory is root's work), else after the
/// last session rule.
pub fn plan_mkhomedir(root: &Root, facts: &Facts, text: &Text) -> Plan {
    if find_in(root, facts.pam_module_dirs, PAM_MKHOMEDIR).is_none() {
        return Plan::Skip(format!("{PAM_MKHOMEDIR} is not installed"));
    }
    if mentions(text, PAM_MKHOMEDIR) {
        return Plan::Skip(format!("{PAM_MKHOMEDIR} is already configured"));
    }
    let is_session = |i: usize| rule_type(&text.line(i)).as_deref() == Some("session");
    let selinux_open = (0..text.len()).find(|&i| {
        let line = text.line(i);
        is_session(i)
            && line.contains("pam_selinux.so")
            && line.split_whitespace().any(|w| w == "open")
    });
    // Keep the comment that explains the pam_selinux line next to it.
    let selinux_open = selinux_open.map(|mut at| {
        while at > 0 && text.line(at - 1).trim_start().starts_with('#') {
            at -= 1;
        }
        at
    });
    let at = selinux_open
        .or_else(|| {
            (0..text.len())
                .rev()
                .find(|&i| is_session(i))
                .map(|i| i + 1)
        })
        .unwrap_or(text.len());
    Plan::Insert {
        at,
        lines: vec![MARKER.to_string(), MKHOMEDIR_LINE.to_string()],
    }
}

/// hostcert's account line for `sudo` and `su`: before the first account rule.
pub fn plan_account(root: &Root, facts: &Facts, text: &Text) -> Plan {
    if find_in(root, facts.pam_module_dirs, PAM_HOSTCERT).is_none() {
        return Plan::Skip(format!("{PAM_HOSTCERT} is not installed"));
    }
    if mentions(text, PAM_HOSTCERT) {
        return Plan::Skip(format!("{PAM_HOSTCERT} is already configured"));
    }
    let at = (0..text.len())
        .find(|&i| rule_type(&text.line(i)).as_deref() == Some("account"))
        .unwrap_or(text.len());
    Plan::Insert {
        at,
        lines: vec![MARKER.to_string(), ACCOUNT_LINE.to_string()],
    }
}

/// Carries out a plan on `text`, returning the edits made.
pub fn apply(text: &mut Text, plan: Plan) -> Vec<Edit> {
    match plan {
        Plan::Insert { at, lines } => vec![text.insert_lines(at, lines)],
        Plan::Skip(_) => Vec::new(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rule_types_cover_includes_and_dash_rules() {
        assert_eq!(
            rule_type("-session optional pam_systemd.so").as_deref(),
            Some("session")
        );
        assert_eq!(
            rule_type("@include common-session-noninteractive").as_deref(),
            Some("session")
        );
        assert_eq!(
            rule_type("account\tinclude\t\tsystem-auth").as_deref(),
            Some("account")
        );
        assert_eq!(rule_type("#%PAM-1.0"), None);
        assert_eq!(rule_type(""), None);
    }

    #[test]
    fn missing_module_means_no_line() {
        let root = Root::new("/nonexistent");
        let facts = crate::distro::Distro::from_os_release("ID=debian\nVERSION_ID=10\n")
            .unwrap()
            .facts();
        let text = Text::parse(b"session required pam_unix.so\n");
        assert!(matches!(plan_mkhomedir(&root, facts, &text), Plan::Skip(_)));
        assert!(matches!(plan_account(&root, facts, &text), Plan::Skip(_)));
    }
}
