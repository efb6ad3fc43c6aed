//! [`SegmentedLog`]: the ordered entries of the log, spread over segment
//! files — cpwal's durability layer.
//!
//! The log does not decide what is committed or who may write; it keeps the
//! bytes and their order, and knows what is durable. The files of this
//! folder follow the data path:
//!
//! * this file: the log's state, its invariants and its reads;
//! * [`recovery`]: open — listing the directory, scanning segments, judging
//!   how each one ends (torn tail or corruption);
//! * [`append`]: the write buffer, rollover to the next segment, the tail
//!   sync;
//! * [`reshape`]: suffix truncation, prefix removal, restart at a new start;
//! * [`segment`], [`record`], [`spare_segment`]: one segment file, one
//!   record's framing, the next segment prepared ahead;
//! * [`group_commit`]: many writers, one sync, stamped with the log's
//!   epoch so that no sync taken before a truncation acknowledges anything
//!   after it;
//! * [`latch`]: the storage wrapper that latches the first failure of any
//!   write, sync, create, rename or remove, and keeps syncs of one file from
//!   overlapping.

mod append;
mod group_commit;
pub(crate) mod latch;
pub(crate) mod record;
mod recovery;
mod reshape;
mod scanned;
pub(crate) mod segment;
pub(crate) mod spare_segment;

use std::borrow::Cow;
use std::path::PathBuf;
use std::sync::Arc;

use crate::consensus::ControlPlaneIndex;
use crate::directory::{ForeignFile, WidePermission};
use crate::error::{Error, Result};
use crate::io::Storage;
use segment::{Liveness, Segment, TermRun};
use spare_segment::SpareSegment;

pub use latch::{LatchedFile, LatchedStorage};

pub use append::{SyncDescription, TailSync};
pub use group_commit::{GroupCommit, SyncOwner, Ticket, DEFAULT_SECOND_SYNC_AFTER};
pub use scanned::ScannedRecords;

/// How a record says which entries are committed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CommitStamp {
    /// A sole voter: each entry is committed the moment it is durable, so
    /// each record of a batch claims the whole batch (`commit_end` = one past
    /// the batch's last index), which is true once every record of it is
    /// durable; recovery drops a batch whose records did not all survive.
    SelfCommitting,
    /// Every index below this is committed.
    Known(u64),
}

/// What recovery found and repaired at open.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RecoveryReport {
    /// A torn tail that was dropped (never acknowledged).
    pub torn_tail: Option<DroppedTail>,
    /// Records removed by an interrupted truncation, zeroed at recovery.
    pub finished_truncation: Option<DroppedTail>,
    /// Leftover files removed: temporary files and compacted segments.
    pub removed_files: Vec<String>,
    /// Entries the directory holds that cpwal did not write, sorted by
    /// path: reported, never read, changed or removed (`lost+found` is not
    /// listed).
    pub foreign_files: Vec<ForeignFile>,
    /// The directory (first) and cpwal files whose permissions let other
    /// users in (see [`WidePermission`]); reported, not refused.
    pub wide_permissions: Vec<WidePermission>,
}

impl RecoveryReport {
    /// Whether recovery changes (or, read-only, would change) anything on
    /// disk: a torn tail dropped, a truncation finished, leftover files
    /// removed. Foreign files and wide permissions are only reported.
    pub fn repairs_anything(&self) -> bool {
        self.torn_tail.is_some()
            || self.finished_truncation.is_some()
            || !self.removed_files.is_empty()
    }
}

/// Where the log starts after a compaction or restart: the first index it
/// keeps, and the term of the entry just before it (which the log no longer
/// holds, but log matching needs).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LogStart {
    /// The first index kept.
    pub index: u64,
    /// The term of `index - 1` (0 when `index` is 0).
    pub previous_term: u64,
}

/// Bytes dropped from the end of the log at recovery.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DroppedTail {
    /// The segment file.
    pub path: PathBuf,
    /// Where the dropped bytes start.
    pub offset: u64,
    /// The index the first dropped record would have had.
    pub index: ControlPlaneIndex,
    /// How many bytes were dropped.
    pub bytes: u64,
    /// Every index dropped: from `index` to one past the highest index of
    /// any valid record among the dropped bytes (at least `index` itself).
    pub indexes: std::ops::Range<ControlPlaneIndex>,
}

/// The log's files and in-memory index.
///
/// Invariants (checked by [`SegmentedLog::check_invariants`] after every
/// open, write, rollover, sync, truncation, prefix removal and restart):
/// * `segments` is non-empty once a writable open returns (a read-only open
///   of a directory without segments has none); each starts where the one
///   before ends and names its generation as its successor's
///   `previous_generation`;
/// * every segment but the last has been synced in full: `durable_end` is at
///   least the tail's first index;
/// * `start_index <= durable_end` (unless the log is empty at its start),
///   `durable_end <=` the written end `<= end_index`, and `start_index` lies
///   within the first segment (or at its end);
/// * the tail's record offsets increase; those at or after its `end_offset`
///   are the buffered records, which start at the next sector boundary
///   (each sync's write starts a sector of its own), and the buffer fits in
///   the tail;
/// * `term_runs` covers `[first segment's first_index, end_index)` with
///   strictly increasing `first_index`.
#[derive(Debug)]
pub struct SegmentedLog<S: Storage> {
    storage: Arc<LatchedStorage<S>>,
    segment_size_bytes: u64,
    segments: Vec<Segment<LogFile<S>>>,
    term_runs: Vec<TermRun>,
    start_index: u64,
    start_previous_term: u64,
    end_index: u64,
    durable_end: u64,
    liveness: Liveness,
    recovered_commit_end: u64,
    /// The `durable_end` the tail's last record carried at open (see
    /// [`SegmentedLog::make_recovered_tail_durable`]).
    tail_vouched_end: u64,
    /// Records encoded by [`SegmentedLog::write`] and not yet written to the
    /// tail file: they go out in one `pwrite` when the log is synced (or a
    /// sync handle taken, or the tail is full), so group commit makes one
    /// write per sync, not one per caller. They belong to the tail and
    /// follow its `end_offset` (their offsets are already in its index).
    write_buffer: Vec<u8>,
    /// The next segment's file, prepared while the tail fills.
    spare: SpareSegment<S>,
    /// Raised by every suffix truncation and every restart, in memory: a
    /// sync or a ticket of an older epoch may describe entries the log no
    /// longer holds (see [`GroupCommit`]).
    epoch: u64,
    /// The waiters for durability; told of every change of `durable_end`.
    group: Arc<GroupCommit>,
    /// A second file description of the tail segment, beside the writer's
    /// one it was opened for, for a group-commit sync that overlaps one
    /// running on the writer's (see [`SyncDescription`]); opened on first
    /// use.
    second_description: Option<SecondDescription<S>>,
}

/// A second file description of the tail segment, and the writer's one it
/// was opened beside (see [`SegmentedLog::second_description`]).
#[derive(Debug)]
struct SecondDescription<S: Storage> {
    beside: Arc<LogFile<S>>,
    file: Arc<LogFile<S>>,
}

/// A file of the log: the storage's file, under its latch.
pub type LogFile<S> = LatchedFile<<S as Storage>::File>;

impl<S: Storage> SegmentedLog<S> {
    /// The storage the log's files live in, under the latch every owner
    /// reads (hard state and snapshots are written through it too).
    pub fn storage(&self) -> &Arc<LatchedStorage<S>> {
        &self.storage
    }

    /// The first index still readable.
    pub fn start_index(&self) -> u64 {
        self.start_index
    }

    /// One past the last index.
    pub fn end_index(&self) -> u64 {
        self.end_index
    }

    /// One past the last index known durable.
    pub fn durable_end(&self) -> u64 {
        self.durable_end
    }

    /// The one group commit of this log.
    pub fn group_commit(&self) -> &Arc<GroupCommit> {
        &self.group
    }

    /// Moves the durable end and tells group commit's waiters. Every change
    /// of `durable_end` goes through here (or [`Self::cut_durable_end`]), so
    /// no path that syncs can forget to publish.
    fn set_durable_end(&mut self, durable_end: u64) {
        self.durable_end = durable_end;
        self.group.publish(durable_end);
    }

    /// Starts a new epoch because every index from `from` on is about to be
    /// removed: syncs and tickets taken before are stale, and waiters whose
    /// entries reach `from` are told they were truncated.
    fn cut_durable_end(&mut self, from: u64) {
        self.epoch += 1;
        self.durable_end = self.durable_end.min(from);
        self.group.publish_cut(from, self.durable_end);
    }

    /// The highest commit point recovery found (hard state or records),
    /// capped at the log's end.
    pub fn recovered_commit_end(&self) -> u64 {
        self.recovered_commit_end
    }

    /// The segments, oldest first.
    pub fn segments(&self) -> &[Segment<LogFile<S>>] {
        &self.segments
    }

    /// The term of the entry at `index`, including the entry just before the
    /// log start (remembered from the compaction).
    pub fn term_at(&self, index: u64) -> Result<u64> {
        if Some(index) == self.start_index.checked_sub(1) {
            return Ok(self.start_previous_term);
        }
        self.check_readable(index)?;
        let run = self.term_runs.partition_point(|r| r.first_index <= index);
        Ok(self.term_runs[run - 1].term)
    }

    /// The term of the last entry (or of the entry before the log start when
    /// the log is empty); 0 for a log that never held anything.
    pub fn last_term(&self) -> u64 {
        match self.end_index.checked_sub(1) {
            Some(last) => self.term_at(last).unwrap_or(0),
            None => 0,
        }
    }

    fn check_readable(&self, index: u64) -> Result<()> {
        if index < self.start_index {
            return Err(Error::Compacted {
                index,
                first_index: self.start_index,
            });
        }
        let written_end = self.written_end();
        if index >= written_end {
            // Buffered records exist only between a group-commit write and
            // its sync, when no reader can reach the log; refuse rather than
            // read what is not in the file yet.
            return Err(Error::NotFound {
                index,
                end_index: written_end,
            });
        }
        Ok(())
    }

    /// The segment holding `index` (which must be readable) and the record's
    /// offset in it.
    fn locate(&self, index: u64) -> (&Segment<LogFile<S>>, u64) {
        let position = self.segments.partition_point(|s| s.first_index() <= index) - 1;
        let segment = &self.segments[position];
        let offset = u64::from(segment.offsets[(index - segment.first_index()) as usize]);
        (segment, offset)
    }

    /// The file and offset of the record for `index`, for error reports.
    pub fn location_of(&self, index: u64) -> (PathBuf, u64) {
        if self.check_readable(index).is_err() {
            return (self.storage.path_of(""), 0);
        }
        let (segment, offset) = self.locate(index);
        (segment.path.clone(), offset)
    }

    /// The term and payload of the entry at `index`, checksum re-verified.
    pub fn read(&self, index: u64) -> Result<(u64, Cow<'_, [u8]>)> {
        self.check_readable(index)?;
        self.locate(index).0.read_entry(index)
    }

    /// One past the last entry in the file: the buffered ones, at or after
    /// the tail's `end_offset`, are not there yet.
    fn written_end(&self) -> u64 {
        let Some(tail) = self.segments.last() else {
            return self.end_index; // A read-only open of an empty directory.
        };
        let in_file = tail
            .offsets
            .partition_point(|&offset| u64::from(offset) < tail.end_offset);
        tail.first_index() + in_file as u64
    }

    fn tail(&self) -> &Segment<LogFile<S>> {
        self.segments.last().expect("an open log has a segment")
    }

    /// Asserts the invariants listed on [`SegmentedLog`] (debug builds only).
    pub fn check_invariants(&self) {
        if !cfg!(debug_assertions) {
            return;
        }
        for pair in self.segments.windows(2) {
            assert_eq!(pair[0].end_index(), pair[1].first_index());
            assert_eq!(pair[1].header.previous_generation, pair[0].generation());
        }
        if let (Some(first), Some(tail)) = (self.segments.first(), self.segments.last()) {
            assert!(first.first_index() <= self.start_index);
            assert_eq!(tail.end_index(), self.end_index);
            assert!(
                self.durable_end >= tail.first_index(),
                "an earlier segment is unsynced"
            );
            self.check_tail_invariants(tail);
        }
        assert!(self.start_index <= self.durable_end || self.end_index == self.start_index);
        assert!(self.durable_end <= self.written_end());
        assert!(self.written_end() <= self.end_index);
        for pair in self.term_runs.windows(2) {
            assert!(pair[0].first_index < pair[1].first_index);
        }
        if let Some(last) = self.term_runs.last() {
            assert!(last.first_index < self.end_index);
        }
    }

    /// The tail's part of [`Self::check_invariants`], in time logarithmic in
    /// its records (it runs after every write): offsets are pushed in order,
    /// so the last pair and the boundary of the buffered ones suffice.
    fn check_tail_invariants(&self, tail: &Segment<LogFile<S>>) {
        if let [.., before, last] = tail.offsets[..] {
            assert!(before < last);
        }
        let in_file = tail
            .offsets
            .partition_point(|&offset| u64::from(offset) < tail.end_offset);
        match tail.offsets.get(in_file) {
            Some(&first_buffered) => assert_eq!(u64::from(first_buffered), self.buffer_offset()),
            None => assert!(
                self.write_buffer.is_empty(),
                "buffered bytes without records"
            ),
        }
        let buffered_end = self.buffer_offset() + self.write_buffer.len() as u64;
        assert!(self.write_buffer.is_empty() || buffered_end <= tail.header.size_bytes);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::hard_state::HardState;

    #[test]
    fn read_refuses_buffered_records_until_they_are_written() {
        // Goal: records waiting in the write buffer are never read as if
        // they were in the file (the file holds zeros there). Method: write
        // two entries on real files without syncing; both reads refuse with
        // NotFound naming the written end; after `sync`, both read back.
        let dir = tempfile::tempdir().unwrap();
        let storage = crate::io::OsStorage::open(dir.path(), crate::io::LockMode::Exclusive);
        let node = crate::identity::ClusterVoterIdentity::from_certificate_subject("CN=a");
        let state = HardState::new(node.unwrap(), crate::hard_state::NodeRole::SoleVoter);
        let storage = Arc::new(LatchedStorage::new(storage.unwrap()));
        let (mut log, _) = SegmentedLog::open(
            storage,
            &state,
            1 << 16,
            crate::io::Access::Writable,
            |_| Ok(()),
        )
        .unwrap();
        let payloads: [&[u8]; 2] = [b"first", b"second"];
        log.write(
            payloads.iter().map(|p| (1, *p)),
            CommitStamp::SelfCommitting,
        )
        .unwrap();
        for index in 0..2 {
            let refused = log.read(index).map(|_| ());
            assert!(
                matches!(refused, Err(Error::NotFound { end_index: 0, .. })),
                "{refused:?}"
            );
        }
        log.sync().unwrap();
        for (index, payload) in payloads.iter().enumerate() {
            assert_eq!(&*log.read(index as u64).unwrap().1, *payload);
        }
    }
}
