//! Crash-safe file operations: atomic replacement that keeps owner, mode and SELinux label.

use std::fs::{File, OpenOptions};
use std::io::{self, Write};
use std::os::unix::fs::{MetadataExt, OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

/// The extended attribute that carries a file's SELinux label.
const SELINUX_XATTR: &str = "security.selinux";

/// Owner, permission bits and SELinux label of a file: what a replacement must keep.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FileMeta {
    /// Owner user id.
    pub uid: u32,
    /// Owner group id.
    pub gid: u32,
    /// Permission bits (`0o644`).
    pub mode: u32,
    /// The `security.selinux` label, when the file system has one.
    #[serde(default)]
    pub selinux: Option<String>,
}

impl FileMeta {
    /// What hostcert gives a file it creates: root-owned, `mode`, label from policy.
    pub fn new_file(mode: u32) -> Self {
        FileMeta {
            uid: 0,
            gid: 0,
            mode,
            selinux: None,
        }
    }

    /// Reads the metadata of an existing file (following links), `None` if it does not exist.
    pub fn of(path: &Path) -> io::Result<Option<FileMeta>> {
        let meta = match std::fs::metadata(path) {
            Ok(meta) => meta,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(e),
        };
        let selinux = match xattr::get(path, SELINUX_XATTR) {
            Ok(Some(label)) => Some(
                String::from_utf8_lossy(&label)
                    .trim_end_matches('\0')
                    .to_string(),
            ),
            // No label, or a file system without xattrs: nothing to keep.
            Ok(None) | Err(_) => None,
        };
        Ok(Some(FileMeta {
            uid: meta.uid(),
            gid: meta.gid(),
            mode: meta.permissions().mode() & 0o7777,
            selinux,
        }))
    }
}

/// Reads a file, `None` if it does not exist.
pub fn read_optional(path: &Path) -> io::Result<Option<Vec<u8>>> {
    match std::fs::read(path) {
        Ok(bytes) => Ok(Some(bytes)),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(e),
    }
}

/// A new version of a file, written in full beside it and not yet in place.
///
/// Dropping it without [`Candidate::commit`] removes it, so a failed validation leaves nothing.
#[derive(Debug)]
pub struct Candidate {
    temp: PathBuf,
    target: PathBuf,
    committed: bool,
}

impl Candidate {
    /// Writes `bytes` to a temp file in `target`'s directory with `meta`, and fsyncs it.
    pub fn write(target: &Path, bytes: &[u8], meta: &FileMeta) -> io::Result<Candidate> {
        if target.file_name().is_none() {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                "not a file path",
            ));
        }
        let temp = candidate_path(target);
        let candidate = Candidate {
            temp,
            target: target.to_path_buf(),
            committed: false,
        };
        let mut file = OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(true)
            .mode(0o600)
            .open(&candidate.temp)?;
        file.write_all(bytes)?;
        apply_meta(&file, &candidate.temp, meta)?;
        file.sync_all()?;
        Ok(candidate)
    }

    /// Where the candidate is, for a validator to read.
    pub fn path(&self) -> &Path {
        &self.temp
    }

    /// Puts the candidate in place atomically and makes the rename durable.
    pub fn commit(mut self) -> io::Result<()> {
        std::fs::rename(&self.temp, &self.target)?;
        self.committed = true;
        sync_parent(&self.target)
    }
}

impl Drop for Candidate {
    fn drop(&mut self) {
        if !self.committed {
            let _ = std::fs::remove_file(&self.temp);
        }
    }
}

/// Where the candidate of `target` is written: a fixed name, so a leftover from a crash is
/// overwritten by the next run, or removed by [`discard_candidate`].
fn candidate_path(target: &Path) -> PathBuf {
    let name = target.file_name().unwrap_or_default().to_string_lossy();
    target.with_file_name(format!(".{name}.hostcert-new"))
}

/// Removes a candidate of `target` left behind by a process that was killed.
pub fn discard_candidate(target: &Path) -> io::Result<()> {
    remove(&candidate_path(target))
}

/// Replaces `target` with `bytes` atomically: temp file, fsync, rename, fsync the directory.
pub fn write_atomic(target: &Path, bytes: &[u8], meta: &FileMeta) -> io::Result<()> {
    Candidate::write(target, bytes, meta)?.commit()
}

/// Removes a file durably; a file already gone is fine.
pub fn remove(target: &Path) -> io::Result<()> {
    match std::fs::remove_file(target) {
        Ok(()) => sync_parent(target),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(e),
    }
}

/// Creates `dir` (and parents) with `mode` if missing.
pub fn ensure_dir(dir: &Path, mode: u32) -> io::Result<()> {
    if dir.is_dir() {
        return Ok(());
    }
    std::fs::create_dir_all(dir)?;
    std::fs::set_permissions(dir, std::fs::Permissions::from_mode(mode))
}

fn apply_meta(file: &File, path: &Path, meta: &FileMeta) -> io::Result<()> {
    // chown before chmod: chown clears set-id bits.
    nix::unistd::fchown(
        std::os::fd::AsRawFd::as_raw_fd(file),
        Some(nix::unistd::Uid::from_raw(meta.uid)),
        Some(nix::unistd::Gid::from_raw(meta.gid)),
    )
    .or_else(|e| {
        // Without CAP_CHOWN (tests on a tree the user owns) keeping our own ids is all we can do.
        if e == nix::errno::Errno::EPERM && nix::unistd::geteuid().as_raw() != 0 {
            Ok(())
        } else {
            Err(io::Error::from(e))
        }
    })?;
    file.set_permissions(std::fs::Permissions::from_mode(meta.mode))?;
    if let Some(label) = &meta.selinux {
        xattr::set(path, SELINUX_XATTR, label.as_bytes())?;
    }
    Ok(())
}

fn sync_parent(path: &Path) -> io::Result<()> {
    let parent = match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p,
        _ => Path::new("."),
    };
    File::open(parent)?.sync_all()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn write_atomic_keeps_mode_and_leaves_no_temp() {
        let dir = tempfile::tempdir().unwrap();
        let target = dir.path().join("f");
        std::fs::write(&target, "old").unwrap();
        std::fs::set_permissions(&target, std::fs::Permissions::from_mode(0o640)).unwrap();
        let meta = FileMeta::of(&target).unwrap().unwrap();
        write_atomic(&target, b"new", &meta).unwrap();
        assert_eq!(std::fs::read(&target).unwrap(), b"new");
        assert_eq!(FileMeta::of(&target).unwrap().unwrap().mode, 0o640);
        assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 1);
    }

    #[test]
    fn dropped_candidate_changes_nothing() {
        let dir = tempfile::tempdir().unwrap();
        let target = dir.path().join("f");
        std::fs::write(&target, "old").unwrap();
        let candidate = Candidate::write(&target, b"new", &FileMeta::new_file(0o644)).unwrap();
        assert!(candidate.path().exists());
        drop(candidate);
        assert_eq!(std::fs::read(&target).unwrap(), b"old");
        assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 1);
    }
}
