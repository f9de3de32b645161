//! Files hostcert creates outright (the pinned root, certificates, generated host keys, the
//! seed it keeps for a retry, its markers): written atomically and, when hostcert is the one
//! that created them, listed in the purge manifest [`CREATED_FILES`], so a package purge removes
//! exactly what hostcert created and never a file someone else put there.
//!
//! (Edits to files that existed before, such as sshd_config, go through [`crate::edit`]
//! instead, which reverts them on deactivate.)

use std::path::Path;

use crate::edit::fsio::{self, FileMeta};
use crate::error::{Error, Result};
use crate::paths::{Root, CREATED_FILES, STATE_DIR};

/// Writes `bytes` to the system path `path` atomically with `mode`; a file that did not exist
/// before is added to the purge manifest.
pub fn write(root: &Root, path: &str, bytes: &[u8], mode: u32) -> Result<()> {
    let real = root.join(path);
    let new = !real.exists();
    fsio::write_atomic(&real, bytes, &FileMeta::new_file(mode))
        .map_err(|e| Error::io(Path::new(path), e))?;
    if new {
        record(root, &[path])?;
    }
    Ok(())
}

/// The purge manifest's entries, one system path a line.
pub fn list(root: &Root) -> Result<Vec<String>> {
    match std::fs::read_to_string(root.join(CREATED_FILES)) {
        Ok(text) => Ok(text.lines().map(str::to_string).collect()),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(Vec::new()),
        Err(e) => Err(Error::io(CREATED_FILES, e)),
    }
}

/// Adds `paths` to the purge manifest, each once.
fn record(root: &Root, paths: &[&str]) -> Result<()> {
    let mut lines = list(root)?;
    let before = lines.len();
    for path in paths {
        if !lines.iter().any(|l| l == path) {
            lines.push((*path).to_string());
        }
    }
    if lines.len() == before {
        return Ok(());
    }
    fsio::ensure_dir(&root.join(STATE_DIR), 0o700).map_err(|e| Error::io(STATE_DIR, e))?;
    let text: String = lines.iter().map(|l| format!("{l}\n")).collect();
    fsio::write_atomic(
        &root.join(CREATED_FILES),
        text.as_bytes(),
        &FileMeta::new_file(0o600),
    )
    .map_err(|e| Error::io(CREATED_FILES, e))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_files_hostcert_created_are_listed() {
        let dir = tempfile::tempdir().unwrap();
        let root = Root::new(dir.path());
        std::fs::create_dir_all(root.join("/etc/hostcert")).unwrap();
        std::fs::write(root.join("/etc/hostcert/seed"), "HOSTCERT_CA_URL=x\n").unwrap();
        write(&root, "/etc/hostcert/seed", b"HOSTCERT_CA_URL=y\n", 0o600).unwrap();
        write(&root, "/etc/hostcert/ca.json", b"{}\n", 0o644).unwrap();
        write(&root, "/etc/hostcert/ca.json", b"{}\n", 0o644).unwrap();
        assert_eq!(list(&root).unwrap(), vec!["/etc/hostcert/ca.json"]);
    }
}
