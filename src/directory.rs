//! What a data directory holds: every entry of a listing classified once, by
//! one rule, for every reader of a directory (the log's recovery, the
//! snapshot listing, the engine's check of a new directory, inspection, and
//! the openraft snapshot store).
//!
//! The rule:
//! * names are compared as bytes; cpwal's names are ASCII, so a name that
//!   is not UTF-8 is never one of them;
//! * an entry under one of cpwal's names (including its temporary names)
//!   must be a regular file; anything else there (a FIFO, a directory, a
//!   symbolic link) is [`Error::NotARegularFile`] naming it, and nothing is
//!   opened, followed or removed;
//! * only cpwal's own temporary names are ever removed: `hardstate.tmp`,
//!   `segment-<generation>.tmp`, `segment-spare.tmp`,
//!   `snapshot-<index_end>.tmp` (20-digit numbers), and `snapshot.tmp` in
//!   the openraft snapshot directory;
//! * every other entry is *foreign*: cpwal did not write it, so it is
//!   reported for what it is ([`ForeignFile`]) and never touched, read or
//!   called corruption — except `lost+found`, the directory at the root of
//!   a fresh ext4 file system, which is ignored;
//! * the directory and every cpwal file should be private (0700 and 0600):
//!   wider permissions are reported ([`WidePermission`]), never refused.

use std::ffi::OsStr;
use std::path::PathBuf;

use crate::error::{Error, Result};
use crate::format::SPARE_SEGMENT_FILE_NAME;
use crate::format::{
    parse_segment_file_name, parse_snapshot_file_name, HARD_STATE_FILE_NAME, TEMPORARY_FILE_SUFFIX,
};
pub use crate::io::ForeignFile;
use crate::io::{FileKind, Storage, LOCK_FILE_NAME, PRIVATE_DIRECTORY_MODE, PRIVATE_FILE_MODE};

/// Which kind of cpwal directory a listing comes from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Layout {
    /// A node's data directory (or the openraft log directory): hard state,
    /// segments, snapshots.
    Node,
    /// The openraft state machine's directory: one `snapshot` file.
    #[cfg_attr(not(feature = "openraft"), allow(dead_code))]
    RaftSnapshot,
}

/// The openraft state machine's snapshot file name (see `crate::raft`).
pub(crate) const RAFT_SNAPSHOT_FILE_NAME: &str = "snapshot";

/// A data directory or cpwal file that other local users may read or
/// change: its mode has group or other bits. cpwal reports it and carries
/// on (as etcd does); `chmod <private_mode> <path>` fixes it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WidePermission {
    /// The directory or file.
    pub path: PathBuf,
    /// Its permission bits.
    pub mode: u32,
    /// The mode cpwal gives what it creates: 0700 for the directory, 0600
    /// for a file.
    pub private_mode: u32,
}

/// What one entry is to cpwal.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Role {
    Lock,
    HardState,
    Segment(u64),
    Snapshot(u64),
    RaftSnapshot,
    Temporary,
    Foreign,
    Ignored,
}

/// A directory's entries, classified.
///
/// Invariant: every name in `temporaries`, and every entry behind the other
/// cpwal fields, is a regular file (else [`Survey::of`] failed).
#[derive(Debug, Default)]
pub(crate) struct Survey {
    /// Whether `hardstate` exists.
    pub hard_state: bool,
    /// Segment generations, ascending.
    pub segments: Vec<u64>,
    /// Snapshot `index_end`s, ascending.
    pub snapshots: Vec<u64>,
    /// Whether the openraft `snapshot` file exists ([`Layout::RaftSnapshot`]).
    pub raft_snapshot: bool,
    /// cpwal's temporary files: leftovers a writer removes.
    pub temporaries: Vec<String>,
    /// Entries cpwal does not own, sorted by path.
    pub foreign: Vec<ForeignFile>,
    /// The directory (first) and the cpwal files (then, sorted by path)
    /// with group or other permission bits.
    pub wide_permissions: Vec<WidePermission>,
}

impl Survey {
    /// Lists and classifies `storage`'s directory, reading no file.
    pub fn of<S: Storage>(storage: &S, layout: Layout) -> Result<Self> {
        let root = storage.path_of("");
        let entries = storage
            .list()
            .map_err(|e| Error::io("list directory", &root, e))?;
        let mut survey = Survey::default();
        let directory_mode = storage
            .directory_mode()
            .map_err(|e| Error::io("stat directory", &root, e))?;
        for entry in entries {
            let role = classify(&entry.name, entry.kind, layout);
            let path = root.join(&entry.name);
            match role {
                Role::Foreign => {
                    survey.foreign.push(ForeignFile {
                        path,
                        kind: entry.kind,
                    });
                    continue;
                }
                Role::Ignored => continue,
                _ if entry.kind != FileKind::RegularFile => {
                    return Err(Error::NotARegularFile {
                        path,
                        kind: entry.kind,
                    });
                }
                _ => {}
            }
            survey
                .wide_permissions
                .extend(wide(path, entry.mode, PRIVATE_FILE_MODE));
            survey.add(role, &entry.name);
        }
        survey.segments.sort_unstable();
        survey.snapshots.sort_unstable();
        survey.temporaries.sort_unstable();
        survey.foreign.sort_by(|a, b| a.path.cmp(&b.path));
        survey.wide_permissions.sort_by(|a, b| a.path.cmp(&b.path));
        let directory = wide(
            directory_path(storage),
            directory_mode,
            PRIVATE_DIRECTORY_MODE,
        );
        survey.wide_permissions.splice(0..0, directory);
        Ok(survey)
    }

    fn add(&mut self, role: Role, name: &OsStr) {
        match role {
            Role::HardState => self.hard_state = true,
            Role::Segment(generation) => self.segments.push(generation),
            Role::Snapshot(index_end) => self.snapshots.push(index_end),
            Role::RaftSnapshot => self.raft_snapshot = true,
            Role::Temporary => self
                .temporaries
                .push(name.to_str().expect("cpwal's names are ASCII").to_owned()),
            Role::Lock | Role::Foreign | Role::Ignored => {}
        }
    }

    /// Removes every cpwal temporary file, then syncs the directory (when
    /// any was removed), so the removals are durable before the caller
    /// relies on them.
    pub fn remove_temporaries<S: Storage>(&self, storage: &S) -> Result<()> {
        for name in &self.temporaries {
            storage
                .remove(name)
                .map_err(|e| Error::io("remove file", storage.path_of(name), e))?;
        }
        if !self.temporaries.is_empty() {
            storage
                .sync_directory()
                .map_err(|e| Error::io("fsync directory", storage.path_of(""), e))?;
        }
        Ok(())
    }
}

/// The path of `storage`'s directory itself, without a trailing separator.
pub(crate) fn directory_path<S: Storage>(storage: &S) -> PathBuf {
    storage.path_of("").components().collect()
}

/// `path`'s [`WidePermission`] if its `mode` lets group or others in.
fn wide(path: PathBuf, mode: Option<u32>, private_mode: u32) -> Option<WidePermission> {
    let mode = mode.filter(|m| m & 0o077 != 0)?;
    Some(WidePermission {
        path,
        mode,
        private_mode,
    })
}

/// What the entry `name` of kind `kind` is in a directory of `layout`.
fn classify(name: &OsStr, kind: FileKind, layout: Layout) -> Role {
    let Some(name) = name.to_str() else {
        return Role::Foreign; // cpwal's names are ASCII.
    };
    if name == "lost+found" && kind == FileKind::Directory {
        return Role::Ignored;
    }
    if name == LOCK_FILE_NAME {
        return Role::Lock;
    }
    match layout {
        Layout::Node => classify_node_name(name),
        Layout::RaftSnapshot if name == RAFT_SNAPSHOT_FILE_NAME => Role::RaftSnapshot,
        Layout::RaftSnapshot if is_temporary_of(name, RAFT_SNAPSHOT_FILE_NAME) => Role::Temporary,
        Layout::RaftSnapshot => Role::Foreign,
    }
}

fn classify_node_name(name: &str) -> Role {
    if name == HARD_STATE_FILE_NAME {
        return Role::HardState;
    }
    if let Some(generation) = parse_segment_file_name(name) {
        return Role::Segment(generation);
    }
    if let Some(index_end) = parse_snapshot_file_name(name) {
        return Role::Snapshot(index_end);
    }
    let Some(base) = name.strip_suffix(TEMPORARY_FILE_SUFFIX) else {
        return Role::Foreign;
    };
    let temporary = base == HARD_STATE_FILE_NAME
        || name == SPARE_SEGMENT_FILE_NAME
        || parse_segment_file_name(base).is_some()
        || parse_snapshot_file_name(base).is_some();
    if temporary {
        Role::Temporary
    } else {
        Role::Foreign
    }
}

fn is_temporary_of(name: &str, base: &str) -> bool {
    name.strip_suffix(TEMPORARY_FILE_SUFFIX) == Some(base)
}

/// Removes the leftover temporary `name` if it exists (a crash during an
/// earlier creation can leave it; without its removal the creation's
/// `create` would refuse the name). Only a regular file is removed.
pub(crate) fn remove_leftover<S: Storage>(storage: &S, name: &str) -> Result<()> {
    match storage.remove(name) {
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
        removed => removed.map_err(|e| Error::io("remove file", storage.path_of(name), e)),
    }
}

/// Removes the temporary file `name` when dropped, unless
/// [`RemoveOnFailure::keep`] was called: a creation that fails (a full disk
/// while allocating, say) leaves no multi-megabyte temporary behind. The
/// removal is best effort and not synced: a temporary that a crash keeps is
/// removed by the next writable open.
pub(crate) struct RemoveOnFailure<'a, S: Storage> {
    storage: &'a S,
    name: &'a str,
    armed: bool,
}

impl<'a, S: Storage> RemoveOnFailure<'a, S> {
    /// Guards the temporary `name`, just created in `storage`.
    pub fn new(storage: &'a S, name: &'a str) -> Self {
        Self {
            storage,
            name,
            armed: true,
        }
    }

    /// The creation succeeded (the temporary was renamed): nothing to remove.
    pub fn keep(mut self) {
        self.armed = false;
    }
}

impl<S: Storage> Drop for RemoveOnFailure<'_, S> {
    fn drop(&mut self) {
        if self.armed {
            let _ = self.storage.remove(self.name);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn role(name: &[u8], kind: FileKind) -> Role {
        use std::os::unix::ffi::OsStrExt;
        classify(OsStr::from_bytes(name), kind, Layout::Node)
    }

    #[test]
    fn survey_refuses_a_cpwal_name_that_is_not_a_regular_file() {
        // Goal: the rule holds for every storage, not only where the io
        // layer's own check would catch it later: a directory named like a
        // segment is refused by the listing itself, naming it, while a
        // directory with a foreign name is only reported. Method: real
        // directories under both names, surveyed.
        let dir = tempfile::tempdir().unwrap();
        let storage =
            crate::io::OsStorage::open(dir.path(), crate::io::LockMode::Exclusive).unwrap();
        std::fs::create_dir(dir.path().join("x.tmp")).unwrap();
        let survey = Survey::of(&storage, Layout::Node).unwrap();
        assert_eq!(survey.foreign.len(), 1);
        let segment = dir.path().join("segment-00000000000000000005");
        std::fs::create_dir(&segment).unwrap();
        match Survey::of(&storage, Layout::Node) {
            Err(Error::NotARegularFile { path, kind }) => {
                assert_eq!((path, kind), (segment, FileKind::Directory));
            }
            other => panic!("expected NotARegularFile, got {other:?}"),
        }
    }

    #[test]
    fn classify_knows_cpwal_names_and_nothing_else() {
        // Goal: exactly cpwal's names are cpwal's; near misses are foreign.
        let file = FileKind::RegularFile;
        assert_eq!(role(b"hardstate", file), Role::HardState);
        assert_eq!(role(b"LOCK", file), Role::Lock);
        assert_eq!(
            role(b"segment-00000000000000000007", file),
            Role::Segment(7)
        );
        assert_eq!(
            role(b"snapshot-00000000000000000042", file),
            Role::Snapshot(42)
        );
        for temporary in [
            &b"hardstate.tmp"[..],
            b"segment-spare.tmp",
            b"segment-00000000000000000007.tmp",
            b"snapshot-00000000000000000042.tmp",
        ] {
            assert_eq!(role(temporary, file), Role::Temporary);
        }
        for foreign in [
            &b"notes.txt"[..],
            b"x.tmp",
            b"segment-7.tmp",
            b"segment-00000000000000000007.tmp.tmp",
            b"hardstate\xff.tmp",
            b"snapshot",
            b"snapshot.tmp",
            b"lost+found",
        ] {
            assert_eq!(role(foreign, file), Role::Foreign, "{foreign:?}");
        }
        assert_eq!(role(b"lost+found", FileKind::Directory), Role::Ignored);
        let raft = |name: &str| classify(OsStr::new(name), file, Layout::RaftSnapshot);
        assert_eq!(raft("snapshot"), Role::RaftSnapshot);
        assert_eq!(raft("snapshot.tmp"), Role::Temporary);
        assert_eq!(raft("hardstate"), Role::Foreign);
    }
}
