//! Opening the log: the directory is listed, each segment's header
//! validated and its records scanned, and how the last one ends judged —
//! a torn tail (dropped) or corruption (an error). See [`crate::format`],
//! "Torn tail or corruption".

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use crate::codec::DecodeError;
use crate::consensus::ControlPlaneIndex;
use crate::directory::{Layout, Survey};
use crate::error::{CorruptionKind, Error, Result, SegmentChainDetail};
use crate::format::{
    HARD_STATE_FILE_NAME, SEGMENT_FIRST_INDEX_OFFSET, SEGMENT_FORMAT_VERSION,
    SEGMENT_PREVIOUS_GENERATION_OFFSET,
};
use crate::hard_state::{HardState, NodeRole};
use crate::io::{Access, Storage, StorageFile};
use crate::parallelism::available_cores;

use super::segment::{Liveness, ScanEnd, Segment, SegmentScan};
use super::spare_segment::SpareSegment;
use super::{DroppedTail, GroupCommit, LatchedStorage, RecoveryReport, SegmentedLog};

/// Below this many bytes of segments, open scans them on the calling thread
/// alone: starting a helper (tens of microseconds) pays only over more
/// than a few hundred kilobytes, and small logs are opened often (a
/// reopening supervisor; the crash simulators reopen logs of 4 KiB
/// segments thousands of times, and ran five times slower with a helper
/// per open).
const PARALLEL_SCAN_MIN_BYTES: u64 = 1 << 20;

impl<S: Storage> SegmentedLog<S> {
    /// Opens the log described by `hard_state`, recovering from any crash:
    /// leftover files are removed, a torn tail dropped, an interrupted
    /// truncation finished. Damage that a crash cannot explain is an error.
    /// With [`Access::ReadOnly`] nothing on disk is changed.
    pub fn open(
        storage: Arc<LatchedStorage<S>>,
        hard_state: &HardState,
        segment_size_bytes: u64,
        access: Access,
        decode: impl Fn(&[u8]) -> std::result::Result<(), DecodeError> + Copy + Sync,
    ) -> Result<(Self, RecoveryReport)> {
        let mut report = RecoveryReport::default();
        let generations = list_segments(&*storage, access, &mut report)?;
        let latch = storage.shared_latch();
        let mut log = Self {
            epoch: 0,
            group: Arc::new(GroupCommit::new(hard_state.log_start, latch)),
            spare: SpareSegment::new(Arc::clone(&storage), segment_size_bytes),
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
            second_description: None,
        };
        for generation in generations {
            let name = crate::format::segment_file_name(generation);
            log.segments
                .push(Segment::open(&*log.storage, &name, access)?);
        }
        log.remove_compacted_head(access, &mut report)?;
        log.check_chain()?;
        log.scan_segments(hard_state, access, &mut report, decode)?;
        if log.segments.is_empty() {
            if !access.is_writable() {
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
        if access.is_writable() {
            log.make_recovered_tail_durable()?;
            if log.tail().header.format_version < SEGMENT_FORMAT_VERSION {
                // New records are written as this version lays them out
                // (each sync from a sector boundary), which a version 1
                // segment must not hold: continue in a new segment.
                log.roll_over(0)?;
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
        tail.file.sync_data().map_err(io("fdatasync segment"))?;
        self.storage
            .sync_directory()
            .map_err(|e| Error::io("fsync directory", self.storage.path_of(""), e))
    }

    /// Removes segments wholly below the log start: the leftovers of a
    /// compaction that crashed after making the new start durable.
    fn remove_compacted_head(&mut self, access: Access, report: &mut RecoveryReport) -> Result<()> {
        while self.segments.len() > 1 && self.segments[1].first_index() <= self.start_index {
            let segment = self.segments.remove(0);
            if access.is_writable() {
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
                    SEGMENT_PREVIOUS_GENERATION_OFFSET,
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

    /// Every segment's scan ([`Segment::scan`]), in order, several at a
    /// time: checksumming each record is most of what an open does, and a
    /// scan only reads its own segment. The calling thread scans too, with
    /// one more thread per further core (a single core, a log under
    /// [`PARALLEL_SCAN_MIN_BYTES`], or a system out of threads scans in
    /// line).
    fn scan_every_segment(
        &self,
        decode: impl Fn(&[u8]) -> std::result::Result<(), DecodeError> + Copy + Sync,
    ) -> Vec<Result<SegmentScan>> {
        let next = AtomicUsize::new(0);
        let scan_some = || {
            let mut scanned = Vec::new();
            loop {
                let position = next.fetch_add(1, Ordering::Relaxed);
                let Some(segment) = self.segments.get(position) else {
                    return scanned;
                };
                scanned.push((position, segment.scan(self.liveness, decode)));
            }
        };
        let helpers = if self.bytes_to_scan() < PARALLEL_SCAN_MIN_BYTES {
            0
        } else {
            available_cores().min(self.segments.len()).saturating_sub(1)
        };
        let mut scans: Vec<Option<Result<SegmentScan>>> = Vec::new();
        scans.resize_with(self.segments.len(), || None);
        std::thread::scope(|scope| {
            // A helper the system cannot start leaves its share to the others.
            let helpers: Vec<_> = (0..helpers)
                .filter_map(|_| {
                    let helper = std::thread::Builder::new().name("cpwal-open-scan".into());
                    helper.spawn_scoped(scope, scan_some).ok()
                })
                .collect();
            let mut scanned = scan_some();
            for helper in helpers {
                // A scan never panics on what it reads (see `scan_records`);
                // a panic here is a bug, passed on as it is.
                scanned.extend(
                    helper
                        .join()
                        .unwrap_or_else(|p| std::panic::resume_unwind(p)),
                );
            }
            for (position, scan) in scanned {
                scans[position] = Some(scan);
            }
        });
        scans
            .into_iter()
            .map(|scan| scan.expect("every position was taken by one scanner"))
            .collect()
    }

    /// The bytes of every segment file, as their headers state.
    fn bytes_to_scan(&self) -> u64 {
        self.segments.iter().map(|s| s.header.size_bytes).sum()
    }

    fn scan_segments(
        &mut self,
        hard_state: &HardState,
        access: Access,
        report: &mut RecoveryReport,
        decode: impl Fn(&[u8]) -> std::result::Result<(), DecodeError> + Copy + Sync,
    ) -> Result<()> {
        let count = self.segments.len();
        let mut scans = self.scan_every_segment(decode).into_iter();
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
                    SEGMENT_FIRST_INDEX_OFFSET,
                    Some(expected_first),
                    CorruptionKind::SegmentChainBroken {
                        detail: SegmentChainDetail::IndexGap {
                            expected: expected_first,
                            found: segment.first_index(),
                        },
                    },
                ));
            }
            let mut scan = scans.next().expect("one scan per segment")?;
            segment.adopt_scan(&mut scan);
            let self_committing = is_last && hard_state.role == NodeRole::SoleVoter;
            let dropped =
                judge_segment_end(segment, &mut scan, hard_state, is_last, self_committing)?;
            if let Some((cause, dropped)) = dropped {
                if access.is_writable() && dropped.bytes > 0 {
                    segment.zero_range(dropped.offset, dropped.offset + dropped.bytes)?;
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
        self.set_durable_end(expected_first);
        if self.end_index < self.start_index && access.is_writable() && !self.segments.is_empty() {
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
        let kind = end.corruption_kind();
        if let CorruptionKind::EpochAheadOfHardState { .. } = kind {
            // The record is sound; the hard state is the stale file.
            let hard_state_path = segment.path.with_file_name(HARD_STATE_FILE_NAME);
            return Err(Error::corruption(hard_state_path, 0, Some(end_index), kind));
        }
        let offset = end.damage_offset().unwrap_or(segment.end_offset);
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
            index: ControlPlaneIndex(first),
            bytes: scan.written_end.max(segment.end_offset) - segment.end_offset,
            indexes: ControlPlaneIndex::range(first..scan.dropped_index_end.max(first + 1)),
        },
    )))
}

/// Lists the directory (see [`crate::directory`]): segment generations in
/// order; cpwal's leftover temporary files are removed (when writable);
/// foreign files and wide permissions are reported.
fn list_segments<S: Storage>(
    storage: &S,
    access: Access,
    report: &mut RecoveryReport,
) -> Result<Vec<u64>> {
    let survey = Survey::of(storage, Layout::Node)?;
    if access.is_writable() {
        survey.remove_temporaries(storage)?;
    }
    report.removed_files.extend(survey.temporaries);
    report.foreign_files = survey.foreign;
    report.wide_permissions = survey.wide_permissions;
    Ok(survey.segments)
}
