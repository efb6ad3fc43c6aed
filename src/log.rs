//! [`SegmentedLog`]: the ordered entries of the log, spread over segment
//! files. Appends, reads, suffix truncation, prefix removal and recovery.
//!
//! The log does not decide what is committed or who may write; it keeps the
//! bytes and their order, and knows what is durable.

use std::borrow::Cow;
use std::path::PathBuf;
use std::sync::Arc;

use crate::codec::DecodeError;
use crate::directory::{ForeignFile, Layout, Survey, WidePermission};
use crate::error::{CorruptionKind, Error, InvalidInput, Result, SegmentChainDetail};
use crate::format::{
    record_bytes, RecordHeader, HARD_STATE_FILE_NAME, RECORD_HEADER_BYTES, RECORD_MAGIC,
    SECTOR_BYTES, SEGMENT_FORMAT_VERSION, SEGMENT_HEADER_BYTES,
};
use crate::hard_state::{HardState, HardStateStore, NodeRole};
use crate::io::{Storage, StorageFile};
use crate::record::{
    frame_record, parse_record, read_record, seal_records, RecordPlace, RecordRead,
};
use crate::segment::{new_header, Liveness, ScanEnd, Segment, SegmentScan, TermRun};
use crate::spare_segment::{SpareSegment, SPARE_SEGMENT_FILE_NAME};
use crate::sync_gate::SyncGate;

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

/// Bytes dropped from the end of the log at recovery.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DroppedTail {
    /// The segment file.
    pub path: PathBuf,
    /// Where the dropped bytes start.
    pub offset: u64,
    /// The index the first dropped record would have had.
    pub index: u64,
    /// How many bytes were dropped.
    pub bytes: u64,
    /// Every index dropped: from `index` to one past the highest index of
    /// any valid record among the dropped bytes (at least `index` itself).
    pub indexes: std::ops::Range<u64>,
}

/// One sync of the tail segment, taken under the engine lock and run
/// without it (group commit): it makes durable every entry below
/// `covered_end`, which were all written before it was taken.
#[derive(Debug)]
pub struct TailSync<F> {
    file: Arc<F>,
    path: PathBuf,
    covered_end: u64,
    gate: Arc<SyncGate>,
}

impl<F: StorageFile> TailSync<F> {
    /// One past the last index this sync makes durable.
    pub fn covered_end(&self) -> u64 {
        self.covered_end
    }

    /// Runs the sync through the log's [`SyncGate`].
    pub fn run(&self) -> Result<()> {
        self.gate
            .sync(&*self.file)
            .map_err(|e| Error::io("fdatasync segment", &self.path, e))
    }
}

/// The log's files and in-memory index.
///
/// Invariants (checked by [`SegmentedLog::check_invariants`]):
/// * `segments` is non-empty; each starts where the one before ends and
///   names its generation as its successor's `previous_generation`;
/// * every segment but the last has been synced in full;
/// * `start_index <= durable_end <= end_index`, and `start_index` lies within
///   the first segment (or at its end);
/// * `term_runs` covers `[first segment's first_index, end_index)` with
///   strictly increasing `first_index`.
#[derive(Debug)]
pub struct SegmentedLog<S: Storage> {
    storage: Arc<S>,
    segment_size_bytes: u64,
    segments: Vec<Segment<S::File>>,
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
    /// Every sync of a segment goes through it (see [`SyncGate`]).
    sync_gate: Arc<SyncGate>,
}

impl<S: Storage> SegmentedLog<S> {
    /// Opens the log described by `hard_state`, recovering from any crash:
    /// leftover files are removed, a torn tail dropped, an interrupted
    /// truncation finished. Damage that a crash cannot explain is an error.
    /// With `writable == false` nothing on disk is changed.
    pub fn open(
        storage: Arc<S>,
        hard_state: &HardState,
        segment_size_bytes: u64,
        writable: bool,
        decode: impl Fn(&[u8]) -> std::result::Result<(), DecodeError> + Copy,
    ) -> Result<(Self, RecoveryReport)> {
        let mut report = RecoveryReport::default();
        let generations = list_segments(&*storage, writable, &mut report)?;
        let mut log = Self {
            spare: SpareSegment::new(Arc::clone(&storage), segment_size_bytes),
            sync_gate: Arc::default(),
            storage,
            segment_size_bytes,
            segments: Vec::with_capacity(generations.len()),
            term_runs: Vec::new(),
            start_index: hard_state.log_start,
            start_previous_term: hard_state.log_start_previous_term,
            end_index: hard_state.log_start,
            durable_end: hard_state.log_start,
            liveness: Liveness {
                log_epoch: hard_state.log_epoch,
                truncated_from: hard_state.truncated_from,
            },
            recovered_commit_end: hard_state.commit_end,
            tail_vouched_end: 0,
            write_buffer: Vec::new(),
        };
        for generation in generations {
            let name = crate::format::segment_file_name(generation);
            log.segments
                .push(Segment::open(&*log.storage, &name, writable)?);
        }
        log.remove_compacted_head(writable, &mut report)?;
        log.check_chain()?;
        log.scan_segments(hard_state, writable, &mut report, decode)?;
        if log.segments.is_empty() {
            if !writable {
                return Ok((log, report));
            }
            let segment =
                Segment::create(&*log.storage, 1, 0, log.start_index, segment_size_bytes)?;
            log.segments.push(segment);
        }
        if hard_state.commit_end > log.end_index {
            return Err(Error::corruption(
                log.storage.path_of(HARD_STATE_FILE_NAME),
                0,
                Some(log.end_index),
                CorruptionKind::CommittedEntryMissing {
                    commit_end: hard_state.commit_end,
                    log_end: log.end_index,
                },
            ));
        }
        log.recovered_commit_end = log.recovered_commit_end.min(log.end_index);
        if writable {
            log.make_recovered_tail_durable()?;
            if log.tail().header.format_version < SEGMENT_FORMAT_VERSION {
                // New records are written as this version lays them out
                // (each sync from a sector boundary), which a version 1
                // segment must not hold: continue in a new segment.
                log.roll_over()?;
            }
        }
        log.check_invariants();
        Ok((log, report))
    }

    /// Makes durable everything a writable open is about to trust, before
    /// the node serves or acknowledges anything (fault model item 1, 4).
    ///
    /// The scan read the page cache, which may hold what never reached the
    /// disk: records a killed process wrote but never synced, pages a failed
    /// sync marked clean (a later sync does not write them again), zeros
    /// a failed zeroing left only in memory, a segment renamed into place or
    /// a leftover removed whose directory entry was never synced. So:
    ///
    /// * the tail's records from the first one its last record does not
    ///   vouch for (its `durable_end`: every index below it was synced before
    ///   it was written) are written again, byte for byte, and the rest of
    ///   the tail is written with zeros, then synced: rewriting dirties the
    ///   pages, so their writeback happens again. Earlier segments were
    ///   synced in full before the next one was created;
    /// * the directory is synced.
    ///
    /// Afterwards `durable_end == end_index` is true of the disk, not only of
    /// the page cache.
    fn make_recovered_tail_durable(&mut self) -> Result<()> {
        let tail = self.segments.last().expect("a writable log has a segment");
        let vouched = self
            .tail_vouched_end
            .clamp(tail.first_index(), tail.end_index());
        let from = tail
            .offsets
            .get((vouched - tail.first_index()) as usize)
            .map_or(tail.end_offset, |&offset| u64::from(offset));
        let io = |operation| {
            let path = tail.path.clone();
            move |e| Error::io(operation, path, e)
        };
        if from < tail.end_offset {
            let records = tail
                .file
                .read_at(from, (tail.end_offset - from) as usize)
                .map_err(io("read segment"))?
                .into_owned();
            tail.file
                .write_at(from, &records)
                .map_err(io("rewrite segment tail"))?;
        }
        tail.write_zeros(tail.end_offset, tail.header.size_bytes)?;
        self.sync_gate
            .sync(&*tail.file)
            .map_err(io("fdatasync segment"))?;
        self.storage
            .sync_directory()
            .map_err(|e| Error::io("fsync directory", self.storage.path_of(""), e))
    }

    /// Removes segments wholly below the log start: the leftovers of a
    /// compaction that crashed after making the new start durable.
    fn remove_compacted_head(&mut self, writable: bool, report: &mut RecoveryReport) -> Result<()> {
        while self.segments.len() > 1 && self.segments[1].first_index() <= self.start_index {
            let segment = self.segments.remove(0);
            if writable {
                self.remove_file(&segment.name)?;
            }
            report.removed_files.push(segment.name);
        }
        if let Some(first) = self.segments.first() {
            if first.first_index() > self.start_index {
                return Err(Error::corruption(
                    &first.path,
                    0,
                    Some(self.start_index),
                    CorruptionKind::SegmentChainBroken {
                        detail: SegmentChainDetail::MissingHead {
                            expected: self.start_index,
                            found: first.first_index(),
                        },
                    },
                ));
            }
        }
        Ok(())
    }

    /// Checks that each segment names its predecessor's generation.
    fn check_chain(&self) -> Result<()> {
        for pair in self.segments.windows(2) {
            let (before, after) = (&pair[0], &pair[1]);
            if after.header.previous_generation != before.generation() {
                return Err(Error::corruption(
                    &after.path,
                    24,
                    None,
                    CorruptionKind::SegmentChainBroken {
                        detail: SegmentChainDetail::GenerationMismatch {
                            expected: before.generation(),
                            found: after.header.previous_generation,
                        },
                    },
                ));
            }
        }
        Ok(())
    }

    fn scan_segments(
        &mut self,
        hard_state: &HardState,
        writable: bool,
        report: &mut RecoveryReport,
        decode: impl Fn(&[u8]) -> std::result::Result<(), DecodeError> + Copy,
    ) -> Result<()> {
        let count = self.segments.len();
        let mut expected_first = self
            .segments
            .first()
            .map_or(self.start_index, |s| s.first_index());
        for position in 0..count {
            let is_last = position + 1 == count;
            let segment = &mut self.segments[position];
            if segment.first_index() != expected_first {
                return Err(Error::corruption(
                    &segment.path,
                    32,
                    Some(expected_first),
                    CorruptionKind::SegmentChainBroken {
                        detail: SegmentChainDetail::IndexGap {
                            expected: expected_first,
                            found: segment.first_index(),
                        },
                    },
                ));
            }
            let mut scan = segment.scan(self.liveness, decode)?;
            let self_committing = is_last && hard_state.role == NodeRole::SoleVoter;
            let dropped =
                judge_segment_end(segment, &mut scan, hard_state, is_last, self_committing)?;
            if let Some((cause, dropped)) = dropped {
                if writable && dropped.bytes > 0 {
                    segment.zero_range(
                        dropped.offset,
                        dropped.offset + dropped.bytes,
                        &self.sync_gate,
                    )?;
                }
                match cause {
                    ScanEnd::Removed => report.finished_truncation = Some(dropped),
                    _ => report.torn_tail = Some(dropped),
                }
            }
            self.term_runs.extend(scan.term_runs);
            self.recovered_commit_end = self.recovered_commit_end.max(scan.commit_end);
            self.tail_vouched_end = scan.last_durable_end;
            expected_first = segment.end_index();
        }
        self.end_index = expected_first;
        self.durable_end = expected_first;
        if self.end_index < self.start_index && writable && !self.segments.is_empty() {
            // Every segment lies below the recorded start: a restart after an
            // installed snapshot (`restart_at`) was interrupted; finish it.
            let last = self.tail().generation();
            return self.replace_segments(last, report);
        }
        if self.end_index < self.start_index {
            let path = self
                .segments
                .last()
                .map_or_else(|| self.storage.path_of(""), |s| s.path.clone());
            return Err(Error::corruption(
                path,
                0,
                Some(self.start_index),
                CorruptionKind::CommittedEntryMissing {
                    commit_end: self.start_index,
                    log_end: self.end_index,
                },
            ));
        }
        Ok(())
    }

    /// The storage the log's files live in.
    pub fn storage(&self) -> &Arc<S> {
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

    /// The highest commit point recovery found (hard state or records),
    /// capped at the log's end.
    pub fn recovered_commit_end(&self) -> u64 {
        self.recovered_commit_end
    }

    /// The segments, oldest first.
    pub fn segments(&self) -> &[Segment<S::File>] {
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
    fn locate(&self, index: u64) -> (&Segment<S::File>, u64) {
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
        let (segment, offset) = self.locate(index);
        let place = RecordPlace {
            generation: segment.generation(),
            offset,
        };
        let io = |e| Error::io("read segment", &segment.path, e);
        let head = segment
            .file
            .read_at(offset, RECORD_HEADER_BYTES as usize)
            .map_err(io)?;
        let header: RecordHeader = bytemuck::pod_read_unaligned(&head);
        let length =
            record_bytes(u64::from(header.payload_bytes)).min(segment.header.size_bytes - offset);
        let bytes = segment.file.read_at(offset, length as usize).map_err(io)?;
        let corrupt = || {
            Error::corruption(
                &segment.path,
                offset,
                Some(index),
                CorruptionKind::ChecksumMismatch,
            )
        };
        let (term, payload_range) = match parse_record(&bytes, place) {
            RecordRead::Valid { header, payload } if header.index == index => {
                let start = RECORD_HEADER_BYTES as usize;
                (header.term, start..start + payload.len())
            }
            _ => return Err(corrupt()),
        };
        let payload = match bytes {
            Cow::Borrowed(b) => Cow::Borrowed(&b[payload_range]),
            Cow::Owned(mut b) => {
                b.truncate(payload_range.end);
                b.drain(..payload_range.start);
                Cow::Owned(b)
            }
        };
        Ok((term, payload))
    }

    /// Calls `visit(index, payload)` for every entry in `[from, to)`, in
    /// order, walking each segment's records in sequence (one read per
    /// segment instead of a lookup and a read per entry).
    ///
    /// For the catalog rebuild at open only, before anything is written:
    /// when the segment's bytes come back borrowed (the memory map, the very
    /// bytes the recovery scan of this open just verified), a record's
    /// checksum is not computed a second time; only its magic and index are
    /// checked. Bytes that come back owned (a fresh copy from the file) are
    /// verified as [`SegmentedLog::read`] verifies them, which every read
    /// after open does.
    pub fn for_each_scanned_payload(
        &self,
        from: u64,
        to: u64,
        mut visit: impl FnMut(u64, &[u8]) -> Result<()>,
    ) -> Result<()> {
        if from >= to {
            return Ok(());
        }
        self.check_readable(from)?;
        self.check_readable(to - 1)?;
        let first = self.segments.partition_point(|s| s.first_index() <= from) - 1;
        let mut index = from;
        for segment in &self.segments[first..] {
            let stop = to.min(segment.end_index());
            if index >= stop {
                break;
            }
            let bytes = segment
                .file
                .read_at(0, segment.header.size_bytes as usize)
                .map_err(|e| Error::io("read segment", &segment.path, e))?;
            let verified = matches!(bytes, Cow::Borrowed(_));
            let skip = (index - segment.first_index()) as usize;
            let count = (stop - index) as usize;
            for &offset in &segment.offsets[skip..skip + count] {
                let place = RecordPlace {
                    generation: segment.generation(),
                    offset: u64::from(offset),
                };
                let payload = payload_at(&bytes, place, index, verified).ok_or_else(|| {
                    let kind = CorruptionKind::ChecksumMismatch;
                    Error::corruption(&segment.path, place.offset, Some(index), kind)
                })?;
                visit(index, payload)?;
                index += 1;
            }
        }
        Ok(())
    }

    /// Appends entries after the end of the log, without syncing (see
    /// [`SegmentedLog::sync`]). Each element is `(term, payload)`. The
    /// records are framed into the write buffer and reach the file when the
    /// log is synced or a [`SegmentedLog::tail_sync_handle`] is taken, so one
    /// `pwrite` serves every write since the last sync; a full segment is
    /// written and synced before the next one is created, so only the last
    /// segment ever holds unsynced records.
    ///
    /// The entries are one batch. A batch of self-committing entries (a sole
    /// voter's) is atomic across errors and crashes: every record carries
    /// the batch's end as its commit point, recovery drops a batch whose
    /// records do not all survive, and the batch never spans two segments
    /// (when it does not fit in the tail the log rolls over before writing
    /// any of it; one larger than a segment is refused). So a failed
    /// rollover, a full disk or a crash leaves all of it or none.
    ///
    /// On error the handle must be considered failed: in-memory state may be
    /// ahead of the disk.
    pub fn write<'a>(
        &mut self,
        entries: impl IntoIterator<Item = (u64, &'a [u8])> + Clone,
        commit: CommitStamp,
    ) -> Result<()> {
        let (count, bytes) = self.check_fits(entries.clone())?;
        let whole_batch_room = self.segment_size_bytes - SEGMENT_HEADER_BYTES;
        if commit == CommitStamp::SelfCommitting && bytes > whole_batch_room {
            return Err(InvalidInput::BatchTooLarge {
                bytes,
                limit: whole_batch_room,
            }
            .into());
        }
        if bytes > self.pending_room() && bytes <= whole_batch_room {
            self.roll_over()?;
        }
        let commit_end = match commit {
            CommitStamp::SelfCommitting => self.end_index + count,
            CommitStamp::Known(end) => end,
        };
        for (term, payload) in entries {
            if record_bytes(payload.len() as u64) > self.pending_room() {
                self.roll_over()?;
            }
            self.frame_into_buffer(term, payload, commit_end);
        }
        if self.pending_room() < self.segment_size_bytes / 2 {
            self.spare.prepare_ahead();
        }
        Ok(())
    }

    /// Refuses, before anything is written, an entry no segment could hold;
    /// returns the batch's entry count and the bytes its records take.
    fn check_fits<'a>(
        &self,
        entries: impl IntoIterator<Item = (u64, &'a [u8])>,
    ) -> Result<(u64, u64)> {
        let limit = self.segment_size_bytes - SEGMENT_HEADER_BYTES;
        let (mut count, mut total) = (0u64, 0u64);
        for (_, payload) in entries {
            let bytes = record_bytes(payload.len() as u64);
            if bytes > limit || payload.is_empty() || payload.len() > crate::codec::MAX_ENTRY_BYTES
            {
                return Err(InvalidInput::BatchTooLarge { bytes, limit }.into());
            }
            count += 1;
            total = total.saturating_add(bytes);
        }
        Ok((count, total))
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

    fn tail(&self) -> &Segment<S::File> {
        self.segments.last().expect("an open log has a segment")
    }

    /// Where the write buffer goes in the tail: the next sector boundary at
    /// or after the tail's end, so that every sync's write starts a sector
    /// of its own (see the format's "Torn tail or corruption": a sector then
    /// never holds records of two syncs, and rot in it cannot pass for a
    /// tear unless it is in the last sync). The header's sector holds the
    /// header alone, so the first sync starts at the second sector.
    fn buffer_offset(&self) -> u64 {
        let end = self.tail().end_offset;
        end.div_ceil(SECTOR_BYTES) * SECTOR_BYTES
    }

    /// Bytes left in the tail segment after what is already buffered.
    fn pending_room(&self) -> u64 {
        self.tail()
            .header
            .size_bytes
            .saturating_sub(self.buffer_offset() + self.write_buffer.len() as u64)
    }

    /// Frames one record into the write buffer. Its `durable_end` and
    /// checksum are filled in when the buffer is written
    /// ([`SegmentedLog::flush_buffer`]), so the record vouches for every
    /// sync that completed before it reached the file.
    fn frame_into_buffer(&mut self, term: u64, payload: &[u8], commit_end: u64) {
        let index = self.end_index;
        let offset = self.buffer_offset() + self.write_buffer.len() as u64;
        let header = RecordHeader {
            magic: 0,
            payload_bytes: 0,
            log_epoch: self.liveness.log_epoch,
            index,
            term,
            durable_end: 0,
            commit_end,
        };
        frame_record(&mut self.write_buffer, header, payload);
        let tail = self.segments.last_mut().expect("an open log has a segment");
        tail.offsets.push(offset as u32);
        if self.term_runs.last().map(|r| r.term) != Some(term) {
            self.term_runs.push(TermRun {
                first_index: index,
                term,
            });
        }
        self.end_index += 1;
    }

    /// Seals the buffered records (their `durable_end` is what is durable
    /// now; then their checksums) and writes them at the tail's next sector
    /// boundary in one `pwrite`.
    fn flush_buffer(&mut self) -> Result<()> {
        if self.write_buffer.is_empty() {
            return Ok(());
        }
        let at = self.buffer_offset();
        let tail = self.segments.last_mut().expect("an open log has a segment");
        seal_records(
            &mut self.write_buffer,
            tail.generation(),
            at,
            self.durable_end,
        );
        tail.file
            .write_at(at, &self.write_buffer)
            .map_err(|e| Error::io("write segment", &tail.path, e))?;
        tail.end_offset = at + self.write_buffer.len() as u64;
        self.write_buffer.clear();
        Ok(())
    }

    /// Syncs the full tail and starts a new segment after it, in the spare
    /// file prepared while the tail filled.
    fn roll_over(&mut self) -> Result<()> {
        self.sync()?;
        let tail = self.tail();
        let header = new_header(
            tail.generation() + 1,
            tail.generation(),
            self.end_index,
            self.segment_size_bytes,
        );
        let spare = self.spare.take().map_err(|e| {
            let path = self.storage.path_of(SPARE_SEGMENT_FILE_NAME);
            Error::io("prepare segment", path, e)
        })?;
        let segment = Segment::install(&*self.storage, spare, SPARE_SEGMENT_FILE_NAME, header)?;
        self.segments.push(segment);
        Ok(())
    }

    /// Makes every written entry durable.
    pub fn sync(&mut self) -> Result<()> {
        if self.durable_end == self.end_index {
            return Ok(());
        }
        self.flush_buffer()?;
        let tail = self.tail();
        self.sync_gate
            .sync(&*tail.file)
            .map_err(|e| Error::io("fdatasync segment", &tail.path, e))?;
        self.durable_end = self.end_index;
        Ok(())
    }

    /// Writes the buffered records, then returns a sync of the tail segment
    /// that can run without `&mut self` (group commit) and the index it will
    /// make durable.
    pub fn tail_sync_handle(&mut self) -> Result<TailSync<S::File>> {
        self.flush_buffer()?;
        let tail = self.tail();
        Ok(TailSync {
            file: Arc::clone(&tail.file),
            path: tail.path.clone(),
            covered_end: self.end_index,
            gate: Arc::clone(&self.sync_gate),
        })
    }

    /// Records that a sync through a [`SegmentedLog::tail_sync_handle`]
    /// made everything below `durable_end` durable.
    pub fn mark_durable(&mut self, durable_end: u64) {
        self.durable_end = self.durable_end.max(durable_end.min(self.end_index));
    }

    /// Removes every entry at or after `from`, durably (G4): later segments
    /// are removed newest first (after `hard_state` is saved as given, so the
    /// commit point they may carry survives), then the hard state records
    /// the truncation, then the removed records are zeroed and synced. `from` must not be
    /// below the log start.
    pub fn truncate_suffix(
        &mut self,
        from: u64,
        hard_state_store: &mut HardStateStore<S::File>,
        hard_state: &mut HardState,
    ) -> Result<()> {
        self.flush_buffer()?;
        if from >= self.end_index {
            return Ok(());
        }
        if from < self.start_index {
            return Err(InvalidInput::Index {
                index: from,
                reason: "cannot truncate below the log start",
            }
            .into());
        }
        if self.segments.len() > 1 && self.tail().first_index() > from {
            // The segments about to go may hold the only records carrying the
            // commit point (callers raise `hard_state.commit_end` for this):
            // record it before they are removed.
            hard_state_store.save(hard_state)?;
        }
        while self.segments.len() > 1 && self.tail().first_index() > from {
            let segment = self.segments.pop().expect("checked non-empty");
            self.remove_file(&segment.name)?;
        }
        let mut next = hard_state.clone();
        next.log_epoch += 1;
        next.truncated_from = from;
        hard_state_store.save(&next)?;
        *hard_state = next;
        self.liveness = Liveness {
            log_epoch: hard_state.log_epoch,
            truncated_from: from,
        };
        let tail = self.segments.last_mut().expect("an open log has a segment");
        let keep = (from - tail.first_index()) as usize;
        let cut = tail
            .offsets
            .get(keep)
            .map_or(tail.end_offset, |&o| u64::from(o));
        tail.zero_range(cut, tail.end_offset, &self.sync_gate)?;
        tail.offsets.truncate(keep);
        tail.end_offset = cut;
        self.end_index = from;
        self.durable_end = self.durable_end.min(from);
        let runs = self.term_runs.partition_point(|r| r.first_index < from);
        self.term_runs.truncate(runs);
        self.check_invariants();
        Ok(())
    }

    /// Forgets every entry below `new_start` (whose predecessor has term
    /// `previous_term`): the hard state records the new start first, then
    /// segments wholly below it are removed, oldest first.
    pub fn remove_prefix(
        &mut self,
        new_start: u64,
        previous_term: u64,
        hard_state_store: &mut HardStateStore<S::File>,
        hard_state: &mut HardState,
    ) -> Result<()> {
        self.flush_buffer()?;
        if new_start <= self.start_index {
            return Ok(());
        }
        if new_start > self.end_index {
            return Err(InvalidInput::Index {
                index: new_start,
                reason: "cannot compact past the end of the log",
            }
            .into());
        }
        self.save_start(new_start, previous_term, hard_state_store, hard_state)?;
        while self.segments.len() > 1 && self.segments[1].first_index() <= new_start {
            let segment = self.segments.remove(0);
            self.remove_file(&segment.name)?;
        }
        let first_kept = self.segments[0].first_index();
        let runs = self
            .term_runs
            .partition_point(|r| r.first_index <= first_kept);
        self.term_runs.drain(..runs.saturating_sub(1));
        self.check_invariants();
        Ok(())
    }

    /// Makes `new_start` (whose predecessor has term `previous_term`) the
    /// durable log start in the hard state, then adopts it in memory.
    fn save_start(
        &mut self,
        new_start: u64,
        previous_term: u64,
        hard_state_store: &mut HardStateStore<S::File>,
        hard_state: &mut HardState,
    ) -> Result<()> {
        let mut next = hard_state.clone();
        next.log_start = new_start;
        next.log_start_previous_term = previous_term;
        hard_state_store.save(&next)?;
        *hard_state = next;
        self.start_index = new_start;
        self.start_previous_term = previous_term;
        Ok(())
    }

    /// Discards the whole log and restarts it, empty, at `new_start` (whose
    /// predecessor has term `previous_term`): used when a snapshot installed
    /// from a leader covers everything this log holds. `new_start` must not
    /// be below the end of the log (truncate first). Steps, each durable
    /// before the next: the hard state records the new start; a fresh
    /// segment starting there is created; every older segment is removed,
    /// oldest first. Recovery finishes an interrupted restart: with only the
    /// hard state written every segment lies below the start and is
    /// replaced; with the new segment created the older ones are a compacted
    /// head.
    pub fn restart_at(
        &mut self,
        new_start: u64,
        previous_term: u64,
        hard_state_store: &mut HardStateStore<S::File>,
        hard_state: &mut HardState,
    ) -> Result<()> {
        self.flush_buffer()?;
        if new_start < self.end_index {
            return Err(InvalidInput::Index {
                index: new_start,
                reason: "a restart must begin at or after the end of the log",
            }
            .into());
        }
        self.save_start(new_start, previous_term, hard_state_store, hard_state)?;
        let last = self.tail().generation();
        self.replace_segments(last, &mut RecoveryReport::default())
    }

    /// Creates an empty segment at the log start after generation `last`,
    /// then removes every older segment, oldest first.
    fn replace_segments(&mut self, last: u64, report: &mut RecoveryReport) -> Result<()> {
        let fresh = Segment::create(
            &*self.storage,
            last + 1,
            last,
            self.start_index,
            self.segment_size_bytes,
        )?;
        for old in std::mem::replace(&mut self.segments, vec![fresh]) {
            self.remove_file(&old.name)?;
            report.removed_files.push(old.name);
        }
        self.term_runs.clear();
        self.end_index = self.start_index;
        self.durable_end = self.start_index;
        Ok(())
    }

    fn remove_file(&self, name: &str) -> Result<()> {
        self.storage
            .remove(name)
            .map_err(|e| Error::io("remove file", self.storage.path_of(name), e))?;
        self.storage
            .sync_directory()
            .map_err(|e| Error::io("fsync directory", self.storage.path_of(""), e))
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
        if let (Some(first), Some(last)) = (self.segments.first(), self.segments.last()) {
            assert!(first.first_index() <= self.start_index);
            assert_eq!(last.end_index(), self.end_index);
        }
        assert!(self.start_index <= self.durable_end || self.end_index == self.start_index);
        assert!(self.durable_end <= self.end_index);
        for pair in self.term_runs.windows(2) {
            assert!(pair[0].first_index < pair[1].first_index);
        }
    }
}

/// Judges how a scanned segment's live records end, and what recovery
/// drops after them: nothing (a clean end); the remains of an interrupted
/// truncation; a torn tail — the never-acknowledged records of the last
/// sync — only in the last segment, unless a later record or the hard
/// state's commit point vouches for them, or the damage does not have the
/// shape of a tear (then it is corruption). In the last segment of a sole
/// voter, a batch whose records did not all survive is dropped too (each of
/// its records carries the batch's end as commit point, so a missing one
/// shows). Returns the cause and the dropped bytes, the segment cut to what
/// stays and `scan` adjusted to it.
fn judge_segment_end<F: StorageFile>(
    segment: &mut Segment<F>,
    scan: &mut SegmentScan,
    hard_state: &HardState,
    is_last: bool,
    self_committing: bool,
) -> Result<Option<(ScanEnd, DroppedTail)>> {
    let end_index = segment.end_index();
    let corrupt = |end: &ScanEnd| {
        let offset = end.damage_offset().unwrap_or(segment.end_offset);
        let kind = end.corruption_kind();
        Err(Error::corruption(
            &segment.path,
            offset,
            Some(end_index),
            kind,
        ))
    };
    match &scan.end {
        ScanEnd::Clean => {}
        _ if !is_last => return corrupt(&scan.end),
        ScanEnd::Removed => {}
        ScanEnd::Refused { .. } => return corrupt(&scan.end),
        ScanEnd::Damaged {
            tear_shaped,
            vouched_end,
            ..
        } => {
            let vouched = *vouched_end > end_index || hard_state.commit_end > end_index;
            if vouched || !tear_shaped {
                return corrupt(&scan.end);
            }
        }
    }
    let incomplete = scan
        .last_batch
        .filter(|batch| self_committing && batch.commit_end > end_index);
    let mut cause = scan.end.clone();
    if let Some(batch) = incomplete {
        segment.drop_batch(batch);
        scan.commit_end = batch.commit_end_before;
        let kept_runs = scan
            .term_runs
            .partition_point(|run| run.first_index < batch.first_index);
        scan.term_runs.truncate(kept_runs);
        scan.dropped_index_end = scan.dropped_index_end.max(end_index);
        cause = ScanEnd::Damaged {
            offset: batch.first_offset,
            fault: None,
            tear_shaped: true,
            vouched_end: 0,
        };
    } else if scan.end == ScanEnd::Clean {
        return Ok(None);
    }
    let first = segment.end_index();
    Ok(Some((
        cause,
        DroppedTail {
            path: segment.path.clone(),
            offset: segment.end_offset,
            index: first,
            bytes: scan.written_end.max(segment.end_offset) - segment.end_offset,
            indexes: first..scan.dropped_index_end.max(first + 1),
        },
    )))
}

/// Lists the directory (see [`crate::directory`]): segment generations in
/// order; cpwal's leftover temporary files are removed (when writable);
/// foreign files and wide permissions are reported.
fn list_segments<S: Storage>(
    storage: &S,
    writable: bool,
    report: &mut RecoveryReport,
) -> Result<Vec<u64>> {
    let survey = Survey::of(storage, Layout::Node)?;
    if writable {
        survey.remove_temporaries(storage)?;
    }
    report.removed_files.extend(survey.temporaries);
    report.foreign_files = survey.foreign;
    report.wide_permissions = survey.wide_permissions;
    Ok(survey.segments)
}

/// The payload of the record at `place` in `segment` (the whole file's
/// bytes), which must hold `index`. Its checksum is verified unless
/// `already_verified` (see [`SegmentedLog::for_each_scanned_payload`]);
/// `None` when the record fails a check.
fn payload_at(
    segment: &[u8],
    place: RecordPlace,
    index: u64,
    already_verified: bool,
) -> Option<&[u8]> {
    if !already_verified {
        return match read_record(segment, place) {
            RecordRead::Valid { header, payload } if header.index == index => Some(payload),
            _ => None,
        };
    }
    let start = usize::try_from(place.offset).ok()?;
    let payload_start = start + RECORD_HEADER_BYTES as usize;
    let header: RecordHeader = bytemuck::pod_read_unaligned(segment.get(start..payload_start)?);
    let payload = segment.get(payload_start..payload_start + header.payload_bytes as usize)?;
    (header.magic == RECORD_MAGIC && header.index == index).then_some(payload)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::record::encode_record;

    /// A segment's bytes holding one record of `payload` for `index` at
    /// offset 0, placed at generation 1.
    fn one_record(index: u64, payload: &[u8]) -> (Vec<u8>, RecordPlace) {
        let place = RecordPlace {
            generation: 1,
            offset: 0,
        };
        let header = RecordHeader {
            magic: 0,
            payload_bytes: 0,
            log_epoch: 0,
            index,
            term: 1,
            durable_end: index + 1,
            commit_end: index + 1,
        };
        let mut bytes = Vec::new();
        encode_record(&mut bytes, place, header, payload);
        (bytes, place)
    }

    #[test]
    fn payload_at_verifies_checksum_unless_already_verified() {
        // Goal: the rebuild's record reader recomputes the checksum of bytes
        // it was not handed verified, and always checks the index and the
        // bounds. Method: flip a payload bit of a valid record and read it
        // both ways; ask for the wrong index; cut the bytes short.
        let (mut bytes, place) = one_record(7, b"payload");
        assert_eq!(payload_at(&bytes, place, 7, false), Some(&b"payload"[..]));
        assert_eq!(payload_at(&bytes, place, 7, true), Some(&b"payload"[..]));
        assert_eq!(payload_at(&bytes, place, 8, false), None);
        assert_eq!(payload_at(&bytes, place, 8, true), None);
        let short = &bytes[..RECORD_HEADER_BYTES as usize + 3];
        assert_eq!(payload_at(short, place, 7, true), None);
        assert_eq!(payload_at(short, place, 7, false), None);
        bytes[RECORD_HEADER_BYTES as usize] ^= 1;
        assert_eq!(payload_at(&bytes, place, 7, false), None);
        assert_eq!(payload_at(&bytes, place, 7, true), Some(&b"qayload"[..]));
        bytes[0] ^= 1;
        assert_eq!(payload_at(&bytes, place, 7, true), None);
    }

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
        let storage = Arc::new(storage.unwrap());
        let (mut log, _) = SegmentedLog::open(storage, &state, 1 << 16, true, |_| Ok(())).unwrap();
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
