//! The edit engine: every change hostcert makes to the host's files goes through here.
//!
//! A change is planned as the file's full new content plus the [`Edit`]s it contains, computed
//! from the file *without* hostcert's earlier edits, so planning twice gives the same result and
//! a second activation changes no byte. Applying records the intent in the state file first,
//! then replaces each file atomically, then records success: a process killed at any point
//! leaves a host that a new `activate` completes and `deactivate` fully reverts, because each
//! file is then either as before (its original), or as planned (its intent).
//!
//! Reverting restores the original bytes when a file is still exactly what hostcert wrote, and
//! otherwise removes only hostcert's edits, keeping what the admin changed.

pub mod fsio;
mod state;
pub mod text;

use std::cell::Cell;
use std::fs::File;
use std::path::{Path, PathBuf};

pub use state::{sha256, AuthselectSelection, FileRecord, State};
pub use text::{Edit, RevertReport, Text};

use crate::error::{Error, Result};
use crate::paths::{Root, STATE_DIR};
use fsio::{Candidate, FileMeta};
use nix::fcntl::{Flock, FlockArg};

/// Environment variable that makes the agent abort right after its N-th durable step.
/// It exists for the crash-safety tests; nothing else sets it.
pub const CRASH_AFTER_ENV: &str = "HOSTCERT_TEST_CRASH_AFTER";

/// A planned change of one file.
#[derive(Debug)]
pub struct Change {
    path: PathBuf,
    real: PathBuf,
    old: Option<Vec<u8>>,
    new: Vec<u8>,
    edits: Vec<Edit>,
    owned: bool,
    /// The file without hostcert's edits, when the admin changed it since hostcert wrote it:
    /// that becomes the new "original" to restore.
    rebase: Option<Vec<u8>>,
    meta: FileMeta,
    candidate: Option<Candidate>,
}

impl Change {
    /// The file's system path.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Whether the change creates the file.
    pub fn creates(&self) -> bool {
        self.old.is_none()
    }

    /// The planned content.
    pub fn new_content(&self) -> &[u8] {
        &self.new
    }

    /// A unified diff of the change, for `--dry-run`.
    pub fn diff(&self) -> String {
        unified_diff(&self.path, self.old.as_deref(), Some(&self.new))
    }

    /// Writes the new content to a temp file beside the target, for a validator, and returns
    /// its path in the root. The temp file replaces the target when the change is applied.
    pub fn candidate(&mut self) -> Result<&Path> {
        if self.candidate.is_none() {
            let candidate = Candidate::write(&self.real, &self.new, &self.meta)
                .map_err(|e| Error::io(&self.path, e))?;
            self.candidate = Some(candidate);
        }
        Ok(self.candidate.as_ref().expect("just written").path())
    }

    fn write(self) -> Result<()> {
        let path = self.path;
        match self.candidate {
            Some(candidate) => candidate.commit(),
            None => fsio::write_atomic(&self.real, &self.new, &self.meta),
        }
        .map_err(|e| Error::io(path, e))
    }
}

/// How reverting one file went.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// The file was exactly what hostcert wrote: original bytes restored (or the file removed).
    Restored,
    /// The file was edited since: hostcert's lines removed, the admin's kept.
    EditsRemoved {
        /// hostcert edits that were already gone.
        missing: Vec<String>,
    },
    /// A file hostcert owns was edited since: kept as it is.
    KeptChanged,
    /// Nothing of hostcert's was in the file.
    Unchanged,
}

impl std::fmt::Display for Outcome {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Outcome::Restored => f.write_str("restored the original"),
            Outcome::EditsRemoved { missing } if missing.is_empty() => {
                f.write_str("changed since activation: removed hostcert's lines, kept the rest")
            }
            Outcome::EditsRemoved { missing } => write!(
                f,
                "changed since activation: removed hostcert's lines, kept the rest ({} already gone: {})",
                missing.len(),
                missing.join("; ")
            ),
            Outcome::KeptChanged => f.write_str("hostcert's file was changed since: kept"),
            Outcome::Unchanged => f.write_str("nothing to revert"),
        }
    }
}

/// One file's revert, with the diff of what it changes.
#[derive(Debug, Clone)]
pub struct Reverted {
    /// System path.
    pub path: PathBuf,
    /// What happened.
    pub outcome: Outcome,
    /// Unified diff of the revert (empty when nothing changes).
    pub diff: String,
}

/// Activation state of one file, for `status`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum FileState {
    /// hostcert has nothing in the file.
    Inactive,
    /// The file is what hostcert wrote.
    Active,
    /// hostcert's changes are there, but the file was edited since.
    ChangedSinceActivation,
    /// hostcert recorded the file, but it no longer exists.
    Missing,
}

/// The engine over one root: the loaded state, the lock, and the crash hook.
pub struct Engine {
    root: Root,
    state: State,
    crash_after: Option<u32>,
    steps: Cell<u32>,
    _lock: Option<Flock<File>>,
}

impl Engine {
    /// Loads the state of `root` for reading.
    pub fn load(root: &Root) -> Result<Engine> {
        Ok(Engine {
            root: root.clone(),
            state: State::load(root)?,
            crash_after: std::env::var(CRASH_AFTER_ENV)
                .ok()
                .and_then(|v| v.parse().ok()),
            steps: Cell::new(0),
            _lock: None,
        })
    }

    /// Takes the exclusive lock that serialises hostcert runs (a timer's renewal and an admin's
    /// activate), then loads the state under it.
    pub fn lock(root: &Root) -> Result<Engine> {
        let dir = root.join(STATE_DIR);
        fsio::ensure_dir(&dir, 0o700).map_err(|e| Error::io(STATE_DIR, e))?;
        let lock_path = dir.join("lock");
        let file = File::options()
            .create(true)
            .truncate(false)
            .write(true)
            .open(&lock_path)
            .map_err(|e| Error::io(&lock_path, e))?;
        let lock = Flock::lock(file, FlockArg::LockExclusive)
            .map_err(|(_, e)| Error::io(&lock_path, e.into()))?;
        let mut engine = Engine::load(root)?;
        engine._lock = Some(lock);
        Ok(engine)
    }

    /// The root the engine works on.
    pub fn root(&self) -> &Root {
        &self.root
    }

    /// The recorded state.
    pub fn state(&self) -> &State {
        &self.state
    }

    /// The recorded state, for the parts the engine does not manage itself (host name,
    /// authselect selection). Call [`Engine::save`] to persist.
    pub fn state_mut(&mut self) -> &mut State {
        &mut self.state
    }

    /// Persists the state; counts as a durable step.
    pub fn save(&self) -> Result<()> {
        self.state.save(&self.root)?;
        self.step();
        Ok(())
    }

    /// Marks a durable step; the crash tests abort the process here.
    pub fn step(&self) {
        let n = self.steps.get() + 1;
        self.steps.set(n);
        if self.crash_after == Some(n) {
            eprintln!("hostcert: {CRASH_AFTER_ENV}={n}: aborting");
            std::process::abort();
        }
    }

    /// Reads a file of the root by system path; `None` if it does not exist.
    pub fn read(&self, path: &Path) -> Result<Option<Vec<u8>>> {
        fsio::read_optional(&self.root.join(path)).map_err(|e| Error::io(path, e))
    }

    /// The content of `path` without hostcert's edits: what the file would be had hostcert never
    /// touched it (as far as can be told). `None` if the file does not exist.
    pub fn base(&self, path: &Path) -> Result<Option<Vec<u8>>> {
        let current = self.read(path)?;
        Ok(match (self.state.file(path), current) {
            (Some(record), Some(current)) if record.owned => {
                if record.is_ours(&current) {
                    record.original.clone()
                } else {
                    Some(current)
                }
            }
            (Some(record), Some(current)) => {
                if record.is_ours(&current) {
                    record.original.clone()
                } else {
                    let mut text = Text::parse(&current);
                    text.revert(&record.edits);
                    Some(text.render())
                }
            }
            (_, current) => current,
        })
    }

    /// Plans an edit of the text file at `path` (links followed): `transform` gets the file
    /// without hostcert's earlier edits and returns the edits it makes. `None` if the file
    /// would not change.
    pub fn plan_edit(
        &self,
        path: &Path,
        transform: impl FnOnce(&mut Text) -> Result<Vec<Edit>>,
    ) -> Result<Option<Change>> {
        let path = self.root.resolve(path)?;
        let Some(base) = self.base(&path)? else {
            return Err(Error::BadInput(format!("{}: no such file", path.display())));
        };
        let mut text = Text::parse(&base);
        let edits = transform(&mut text)?;
        self.change(path, text.render(), edits, false, Some(base), 0o644)
    }

    /// Plans a file whose whole content is hostcert's, created with `mode` if missing.
    pub fn plan_file(&self, path: &Path, content: Vec<u8>, mode: u32) -> Result<Option<Change>> {
        let path = self.root.resolve(path)?;
        let base = self.base(&path)?;
        self.change(path, content, Vec::new(), true, base, mode)
    }

    fn change(
        &self,
        path: PathBuf,
        new: Vec<u8>,
        edits: Vec<Edit>,
        owned: bool,
        base: Option<Vec<u8>>,
        new_mode: u32,
    ) -> Result<Option<Change>> {
        let real = self.root.join(&path);
        let old = self.read(&path)?;
        let record = self.state.file(&path);
        // Nothing to write, and the record already says so.
        let recorded = match (record, &old) {
            (Some(r), Some(old)) => r.edits == edits && r.owned == owned && r.is_ours(old),
            (Some(_), None) => false,
            (None, _) => edits.is_empty() && !owned,
        };
        if old.as_deref() == Some(new.as_slice()) && recorded {
            return Ok(None);
        }
        // Edited since hostcert wrote it: the file without hostcert's lines is the new original.
        // (A file hostcert owns keeps its original: hostcert's content replaces the edit.)
        let edited_since =
            |r: &FileRecord, old: &[u8]| !r.is_ours(old) && !r.is_original(Some(old));
        let rebase = match (record, &old) {
            (Some(record), Some(old)) if !owned && edited_since(record, old) => base,
            _ => None,
        };
        let meta = FileMeta::of(&real)
            .map_err(|e| Error::io(&path, e))?
            .unwrap_or_else(|| FileMeta::new_file(new_mode));
        Ok(Some(Change {
            path,
            real,
            old,
            new,
            edits,
            owned,
            rebase,
            meta,
            candidate: None,
        }))
    }

    /// Applies planned changes: the intent (with whatever else the caller put in the state) is
    /// saved first, then each file is replaced. Success needs no second save: a file whose
    /// content is its record's `pending` hash is known written, and the next intent folds that
    /// into `written`. If a write fails, the files already replaced in this run are put back.
    pub fn apply(&mut self, changes: Vec<Change>) -> Result<()> {
        if changes.is_empty() {
            return Ok(());
        }
        let before = self.state.clone();
        for change in &changes {
            let hash = sha256(&change.new);
            let record = self
                .state
                .files
                .entry(change.path.clone())
                .or_insert_with(|| FileRecord {
                    original: change.old.clone(),
                    meta: change.old.as_ref().map(|_| change.meta.clone()),
                    owned: change.owned,
                    edits: Vec::new(),
                    written: sha256(change.old.as_deref().unwrap_or_default()),
                    pending: None,
                });
            // The last intent landed: it is what hostcert last wrote.
            if let (Some(pending), Some(old)) = (&record.pending, &change.old) {
                if *pending == sha256(old) {
                    record.written = pending.clone();
                }
            }
            if let Some(rebase) = &change.rebase {
                record.original = Some(rebase.clone());
            }
            record.edits = change.edits.clone();
            record.owned = change.owned;
            record.pending = Some(hash);
        }
        self.save()?;
        let mut done: Vec<(PathBuf, PathBuf, Option<Vec<u8>>, FileMeta)> = Vec::new();
        for change in changes {
            let undo = (
                change.path.clone(),
                change.real.clone(),
                change.old.clone(),
                change.meta.clone(),
            );
            if let Err(e) = change.write() {
                self.roll_back(&done);
                self.state = before;
                let _ = self.state.save(&self.root);
                return Err(e);
            }
            self.step();
            done.push(undo);
        }
        Ok(())
    }

    fn roll_back(&self, done: &[(PathBuf, PathBuf, Option<Vec<u8>>, FileMeta)]) {
        for (path, real, old, meta) in done.iter().rev() {
            let result = match old {
                Some(bytes) => fsio::write_atomic(real, bytes, meta),
                None => fsio::remove(real),
            };
            if let Err(e) = result {
                tracing::error!("rolling back {}: {e}", path.display());
            }
        }
    }

    /// Activation state of `path` (links followed).
    pub fn file_state(&self, path: &Path) -> Result<FileState> {
        let path = self.root.resolve(path)?;
        let Some(record) = self.state.file(&path) else {
            return Ok(FileState::Inactive);
        };
        Ok(match self.read(&path)? {
            None if record.original.is_none() && record.pending.is_some() => FileState::Inactive,
            None => FileState::Missing,
            Some(current) if record.is_ours(&current) => FileState::Active,
            Some(current) if record.is_original(Some(&current)) => FileState::Inactive,
            Some(_) => FileState::ChangedSinceActivation,
        })
    }

    /// Plans the revert of one recorded file: its new content (`None`: remove it) and outcome.
    fn plan_revert(
        current: Option<&[u8]>,
        record: &FileRecord,
    ) -> (Option<Option<Vec<u8>>>, Outcome) {
        let Some(current) = current else {
            return (None, Outcome::Unchanged);
        };
        if record.is_original(Some(current)) {
            return (None, Outcome::Unchanged);
        }
        if record.is_ours(current) {
            return (Some(record.original.clone()), Outcome::Restored);
        }
        if record.owned {
            return (None, Outcome::KeptChanged);
        }
        let mut text = Text::parse(current);
        let report = text.revert(&record.edits);
        let new = text.render();
        if new == current {
            return (None, Outcome::Unchanged);
        }
        (
            Some(Some(new)),
            Outcome::EditsRemoved {
                missing: report.missing,
            },
        )
    }

    /// Reverts every recorded file under `prefix` (all files for `/`), and forgets them.
    pub fn revert(&mut self, prefix: &Path, dry_run: bool) -> Result<Vec<Reverted>> {
        let paths: Vec<PathBuf> = self
            .state
            .files
            .keys()
            .filter(|p| p.starts_with(prefix))
            .cloned()
            .collect();
        let mut reverted = Vec::new();
        for path in paths {
            let record = self.state.files[&path].clone();
            let current = self.read(&path)?;
            let (action, outcome) = Self::plan_revert(current.as_deref(), &record);
            let diff = match &action {
                Some(new) => unified_diff(&path, current.as_deref(), new.as_deref()),
                None => String::new(),
            };
            if !dry_run {
                if let Some(new) = action {
                    let real = self.root.join(&path);
                    match new {
                        Some(bytes) => {
                            let meta = match (&outcome, &record.meta) {
                                (Outcome::Restored, Some(meta)) => meta.clone(),
                                _ => FileMeta::of(&real)
                                    .map_err(|e| Error::io(&path, e))?
                                    .unwrap_or_else(|| FileMeta::new_file(0o644)),
                            };
                            fsio::write_atomic(&real, &bytes, &meta)
                        }
                        None => fsio::remove(&real),
                    }
                    .map_err(|e| Error::io(&path, e))?;
                    self.step();
                }
                self.state.files.remove(&path);
            }
            reverted.push(Reverted {
                path,
                outcome,
                diff,
            });
        }
        if !dry_run {
            self.save()?;
        }
        Ok(reverted)
    }
}

/// A unified diff between two versions of a file (absent = `/dev/null`).
pub fn unified_diff(path: &Path, old: Option<&[u8]>, new: Option<&[u8]>) -> String {
    let old_text = String::from_utf8_lossy(old.unwrap_or_default());
    let new_text = String::from_utf8_lossy(new.unwrap_or_default());
    let name = path.display().to_string();
    let (a, b) = (
        if old.is_some() {
            format!("a{name}")
        } else {
            "/dev/null".into()
        },
        if new.is_some() {
            format!("b{name}")
        } else {
            "/dev/null".into()
        },
    );
    similar::TextDiff::from_lines(old_text.as_ref(), new_text.as_ref())
        .unified_diff()
        .context_radius(3)
        .header(&a, &b)
        .to_string()
}
