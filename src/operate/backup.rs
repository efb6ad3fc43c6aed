//! Backups: a consistent copy of a data directory, byte for byte, of a
//! state the node durably had.
//!
//! A [`BackupPlan`] names that state: the hard state, each segment up to
//! the durable end of the log (never a record that was not yet durable),
//! and the newest snapshot. It is taken in one step, under the engine lock
//! for a live node (`DurableControlPlane::backup`,
//! `SharedControlPlane::backup`) or under the shared lock of a stopped
//! directory ([`backup_directory`]); the bytes are then copied without the
//! engine lock. Why that copy is still the planned state:
//!
//! * the plan holds open handles on its segment and snapshot files, so a
//!   compaction or snapshot install that removes them meanwhile only
//!   unlinks names (the bytes stay readable through the handles);
//! * a segment's bytes below the durable end never change while the node
//!   runs, except by a suffix truncation, which zeroes and rewrites the
//!   tail and always raises the hard state's `log_epoch` first. A live
//!   backup compares the epoch after copying with the plan's and starts
//!   over if it moved (and, after a few races, copies once more holding the
//!   engine lock throughout);
//! * the hard state is not copied as bytes: the plan's value is written
//!   afresh (both copies, as a new directory's), so a save racing the copy
//!   cannot tear it.
//!
//! The copy is then verified before it is put in place (see
//! [`crate::operate`]).

use std::path::{Path, PathBuf};
use std::sync::Arc;

use super::staging::StagedDirectory;
use super::Progress;
use crate::consensus::{ControlPlaneIndex, DurableVoteState};
use crate::error::{CopyMismatch, Error, Result};
use crate::format::{snapshot_file_name, TEMPORARY_FILE_SUFFIX};
use crate::hard_state::{HardState, HardStateStore, NodeRole};
use crate::identity::ClusterVoterIdentity;
use crate::inspect::Inspection;
use crate::io::{OsStorage, Storage, StorageFile};
use crate::log::{RecoveryReport, SegmentedLog};
use crate::snapshot::{list_snapshots, open_snapshot, write_snapshot};

/// Bytes read and written per step of a copy.
const COPY_CHUNK_BYTES: u64 = 1 << 20;

/// A state the node durably had, with open handles on the files that hold
/// it.
#[derive(Debug)]
pub(crate) struct BackupPlan<F> {
    /// The hard state to write (identity, role, term, vote, log bounds).
    pub hard_state: HardState,
    /// The log's segments, oldest first, each with how much of it to copy.
    pub segments: Vec<PlannedSegment<F>>,
    /// The newest snapshot, if any.
    pub snapshot: Option<PlannedSnapshot<F>>,
    /// The first index of the log.
    pub log_start: u64,
    /// One past the last index copied: the durable end of the log.
    pub log_end: u64,
}

/// One segment of a [`BackupPlan`].
#[derive(Debug)]
pub(crate) struct PlannedSegment<F> {
    file: Arc<F>,
    name: String,
    size_bytes: u64,
    /// Bytes copied from offset 0 (header and the durable records); the
    /// rest of the copy is zeros.
    keep_bytes: u64,
}

/// The snapshot of a [`BackupPlan`].
#[derive(Debug)]
pub(crate) struct PlannedSnapshot<F> {
    file: F,
    index_end: u64,
    file_bytes: u64,
}

impl<F: StorageFile> BackupPlan<F> {
    /// The plan for `log` up to `durable_end` (which must not be below the
    /// start of its last segment: only the tail holds unsynced records),
    /// with `hard_state` and the newest snapshot beside the log.
    pub(crate) fn of<S: Storage<File = F>>(
        log: &SegmentedLog<S>,
        hard_state: &HardState,
        durable_end: u64,
    ) -> Result<Self> {
        let segments = log
            .segments()
            .iter()
            .map(|segment| {
                let durable = durable_end.saturating_sub(segment.first_index()) as usize;
                let keep_bytes = segment
                    .offsets
                    .get(durable)
                    .map_or(segment.end_offset, |&offset| u64::from(offset));
                PlannedSegment {
                    file: segment.file.unlatched(),
                    name: segment.name.clone(),
                    size_bytes: segment.header.size_bytes,
                    keep_bytes,
                }
            })
            .collect();
        // Read only: around the latch.
        let storage = log.storage().unlatched();
        let snapshot = match list_snapshots(&**storage)?.last() {
            Some(&index_end) => {
                let (file, _, file_bytes) = open_snapshot(&**storage, index_end)?;
                Some(PlannedSnapshot {
                    file,
                    index_end,
                    file_bytes,
                })
            }
            None => None,
        };
        Ok(Self {
            hard_state: hard_state.clone(),
            segments,
            snapshot,
            log_start: log.start_index(),
            log_end: durable_end,
        })
    }

    /// Bytes the copy reads from the source.
    fn total_bytes(&self) -> u64 {
        let segments: u64 = self.segments.iter().map(|s| s.keep_bytes).sum();
        segments + self.snapshot.as_ref().map_or(0, |s| s.file_bytes)
    }
}

/// What a backup (or restore) wrote.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BackupReport {
    /// The new directory.
    pub destination: PathBuf,
    /// The node the copy belongs to.
    pub node: ClusterVoterIdentity,
    /// Its role.
    pub role: NodeRole,
    /// Term and vote in the copy.
    pub vote: DurableVoteState,
    /// The first index of the copy's log.
    pub first_index: ControlPlaneIndex,
    /// One past its last index (the source's durable end when copied).
    pub end_index: ControlPlaneIndex,
    /// The copy's snapshot covers the entries below this (`None`: no
    /// snapshot).
    pub snapshot_index_end: Option<ControlPlaneIndex>,
    /// Segment files copied.
    pub segments: usize,
    /// Bytes read from the source (and read back from the copy).
    pub bytes_copied: u64,
    /// What the source's recovery would have repaired, left out of the
    /// copy (a stopped directory's torn tail or leftover files).
    pub left_out: RecoveryReport,
}

/// Backs up the stopped directory `source` into the new directory
/// `destination` (absent or empty): what a writer reopening `source` would
/// serve, so a torn tail and leftover files are left out. `source` is held
/// under a shared lock throughout (refused while a writer holds it) and
/// never changed; damage a writer refuses is refused here too (see
/// [`salvage`](super::salvage)).
pub fn backup_directory(
    source: impl AsRef<Path>,
    destination: impl AsRef<Path>,
    progress: &dyn Progress,
) -> Result<BackupReport> {
    let inspection = Inspection::open(source)?;
    let log = inspection.log();
    let plan = BackupPlan::of(log, inspection.hard_state(), log.end_index())?;
    let mut report = copy_plan(&plan, destination.as_ref(), progress, || Ok(true))?
        .expect("a copy that is not re-checked always completes");
    report.left_out = inspection.recovery().clone();
    Ok(report)
}

/// Copies `plan` into the new directory `destination`, reads the copy
/// back, and puts it in place if `still_valid` (asked after the copy)
/// agrees; returns `None`, leaving nothing behind, if it does not.
pub(crate) fn copy_plan<F: StorageFile>(
    plan: &BackupPlan<F>,
    destination: &Path,
    progress: &dyn Progress,
    still_valid: impl FnOnce() -> Result<bool>,
) -> Result<Option<BackupReport>> {
    let mut staged = StagedDirectory::begin(destination)?;
    let storage = staged.storage().expect("a new staged directory is locked");
    let digests = write_plan(plan, storage, progress)?;
    if !still_valid()? {
        return Ok(None);
    }
    staged.release();
    verify_copy(plan, staged.path(), &digests, progress)?;
    let destination = staged.commit()?;
    Ok(Some(BackupReport {
        destination,
        node: plan.hard_state.node.clone(),
        role: plan.hard_state.role,
        vote: plan.hard_state.durable_vote(),
        first_index: ControlPlaneIndex(plan.log_start),
        end_index: ControlPlaneIndex(plan.log_end),
        snapshot_index_end: plan
            .snapshot
            .as_ref()
            .map(|s| ControlPlaneIndex(s.index_end)),
        segments: plan.segments.len(),
        bytes_copied: plan.total_bytes(),
        left_out: RecoveryReport::default(),
    }))
}

/// The checksum of the bytes copied into one file, to compare with the
/// copy when it is read back.
#[derive(Debug)]
struct FileDigest {
    name: String,
    bytes: u64,
    crc: u32,
}

/// Writes every file of `plan` into `storage`: the hard state, the
/// snapshot, then the segments (each written under a temporary name and
/// renamed). Nobody reads the staging directory before it is complete, so
/// the order only has to leave every file whole; the segments are synced,
/// and their renames made durable, when the directory is committed.
fn write_plan<F: StorageFile>(
    plan: &BackupPlan<F>,
    storage: &OsStorage,
    progress: &dyn Progress,
) -> Result<Vec<FileDigest>> {
    let total = 2 * plan.total_bytes(); // Copied once, read back once.
    let mut done = 0;
    let mut digests = Vec::new();
    HardStateStore::create(storage, &plan.hard_state)?;
    if let Some(snapshot) = &plan.snapshot {
        let name = snapshot_file_name(snapshot.index_end);
        let bytes = snapshot
            .file
            .read_at(0, snapshot.file_bytes as usize)
            .map_err(|e| Error::io("read snapshot", &name, e))?;
        write_snapshot(storage, snapshot.index_end, &bytes)?;
        done += snapshot.file_bytes;
        progress.update(done, total);
        digests.push(FileDigest {
            name,
            bytes: snapshot.file_bytes,
            crc: crc32fast::hash(&bytes),
        });
    }
    for segment in &plan.segments {
        digests.push(copy_segment(segment, storage, &mut |bytes| {
            done += bytes;
            progress.update(done, total);
        })?);
    }
    Ok(digests)
}

/// Copies the kept bytes of `segment` under a temporary name, zero-fills
/// the rest of its length and renames it to its own name (synced when the
/// directory is committed).
fn copy_segment<F: StorageFile>(
    segment: &PlannedSegment<F>,
    storage: &OsStorage,
    advance: &mut dyn FnMut(u64),
) -> Result<FileDigest> {
    let temporary = format!("{}{TEMPORARY_FILE_SUFFIX}", segment.name);
    let path = storage.path_of(&temporary);
    let io = |operation| {
        let path = path.clone();
        move |e| Error::io(operation, path, e)
    };
    let copy = storage.create(&temporary).map_err(io("create segment"))?;
    let mut hasher = crc32fast::Hasher::new();
    let mut offset = 0;
    while offset < segment.keep_bytes {
        let length = (segment.keep_bytes - offset).min(COPY_CHUNK_BYTES);
        let bytes = segment
            .file
            .read_at(offset, length as usize)
            .map_err(|e| Error::io("read segment", &segment.name, e))?;
        copy.write_at(offset, &bytes).map_err(io("write segment"))?;
        hasher.update(&bytes);
        offset += length;
        advance(length);
    }
    copy.allocate(segment.size_bytes)
        .map_err(io("allocate segment"))?;
    storage
        .rename(&temporary, &segment.name)
        .map_err(io("rename segment"))?;
    Ok(FileDigest {
        name: segment.name.clone(),
        bytes: segment.keep_bytes,
        crc: hasher.finalize(),
    })
}

/// Opens the copy at `path` read-only as `cpwal verify` does and checks it
/// holds exactly the planned state: nothing to repair, the plan's hard
/// state, log range and snapshot, every file's bytes as read from the
/// source, every entry readable with its checksum.
fn verify_copy<F: StorageFile>(
    plan: &BackupPlan<F>,
    path: &Path,
    digests: &[FileDigest],
    progress: &dyn Progress,
) -> Result<()> {
    let mismatch = |detail| Error::CopyMismatch {
        path: path.to_path_buf(),
        detail,
    };
    let copy = Inspection::open(path).map_err(|error| match error.as_corruption() {
        Some(corruption) => mismatch(CopyMismatch::FileBytes {
            name: file_name(&corruption.path),
        }),
        None => error,
    })?;
    let recovery = copy.recovery();
    if recovery.torn_tail.is_some()
        || recovery.finished_truncation.is_some()
        || !recovery.removed_files.is_empty()
    {
        return Err(mismatch(CopyMismatch::NeedsRepair));
    }
    if *copy.hard_state() != plan.hard_state {
        return Err(mismatch(CopyMismatch::HardState));
    }
    let found = copy.first_index().0..copy.last_index().map_or(copy.first_index().0, |i| i.0 + 1);
    if found != (plan.log_start..plan.log_end) {
        let expected = plan.log_start..plan.log_end;
        return Err(mismatch(CopyMismatch::LogRange { expected, found }));
    }
    if copy.snapshot().map(|s| s.index_end.0) != plan.snapshot.as_ref().map(|s| s.index_end) {
        return Err(mismatch(CopyMismatch::Snapshot));
    }
    let total = 2 * plan.total_bytes();
    let mut done = plan.total_bytes();
    for digest in digests {
        if digest_of(path, digest)? != digest.crc {
            let name = digest.name.clone();
            return Err(mismatch(CopyMismatch::FileBytes { name }));
        }
        done += digest.bytes;
        progress.update(done, total);
    }
    copy.read_all()
        .map_err(|error| match error.as_corruption() {
            Some(corruption) => mismatch(CopyMismatch::Entry {
                index: corruption.index.unwrap_or(plan.log_start),
            }),
            None => error,
        })?;
    Ok(())
}

/// The checksum of the first `digest.bytes` bytes of the copied file.
fn digest_of(directory: &Path, digest: &FileDigest) -> Result<u32> {
    use std::os::unix::fs::FileExt;
    let path = directory.join(&digest.name);
    let file = std::fs::File::open(&path).map_err(|e| Error::io("open copy", &path, e))?;
    let mut hasher = crc32fast::Hasher::new();
    let mut buffer = vec![0; COPY_CHUNK_BYTES.min(digest.bytes) as usize];
    let mut offset = 0;
    while offset < digest.bytes {
        let length = (digest.bytes - offset).min(COPY_CHUNK_BYTES) as usize;
        file.read_exact_at(&mut buffer[..length], offset)
            .map_err(|e| Error::io("read copy", &path, e))?;
        hasher.update(&buffer[..length]);
        offset += length as u64;
    }
    Ok(hasher.finalize())
}

fn file_name(path: &Path) -> String {
    path.file_name().map_or_else(
        || path.display().to_string(),
        |n| n.to_string_lossy().into_owned(),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn copy_plan_that_a_race_invalidated_leaves_nothing_behind() {
        // Goal: a copy whose source changed under it (the re-check after
        // the copy fails) is removed whole: no destination, no staging
        // directory. Method: back up a fresh directory with a re-check
        // that says no.
        let root = tempfile::tempdir().unwrap();
        let me = crate::ClusterVoterIdentity::from_certificate_subject("CN=a").unwrap();
        drop(crate::DurableControlPlane::create(
            root.path().join("node"),
            me,
            Default::default(),
        ));
        let inspection = Inspection::open(root.path().join("node")).unwrap();
        let log = inspection.log();
        let plan = BackupPlan::of(log, inspection.hard_state(), log.end_index()).unwrap();
        let copied = copy_plan(&plan, &root.path().join("copy"), &(), || Ok(false)).unwrap();
        assert!(copied.is_none());
        let names: Vec<_> = std::fs::read_dir(root.path())
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        assert_eq!(names, ["node"]);
    }
}
