//! Opening the log: the directory is listed, each segment's header
//! validated and its records scanned, and how the last one ends judged —
//! a torn tail (dropped) or corruption (an error). See [`crate::format`],
//! "Torn tail or corruption".

use std::sync::Arc;

use crate::codec::DecodeError;
use crate::error::{CorruptionKind, Error, Result, SegmentChainDetail};
use crate::format::{
    parse_segment_file_name, parse_snapshot_file_name, HARD_STATE_FILE_NAME,
    SEGMENT_FIRST_INDEX_OFFSET, SEGMENT_PREVIOUS_GENERATION_OFFSET, TEMPORARY_FILE_SUFFIX,
};
use crate::hard_state::HardState;
use crate::io::{Access, Storage};

use super::record::RecordFault;
use super::segment::{Liveness, ScanEnd, Segment};
use super::spare_segment::SpareSegment;
use super::{DroppedTail, GroupCommit, LatchedStorage, RecoveryReport, SegmentedLog};

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
        decode: impl Fn(&[u8]) -> std::result::Result<(), DecodeError> + Copy,
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
            write_buffer: Vec::new(),
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
        log.check_invariants();
        Ok((log, report))
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

    fn scan_segments(
        &mut self,
        hard_state: &HardState,
        access: Access,
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
            let scan = segment.scan(self.liveness, decode)?;
            let end_index = segment.end_index();
            let dropped = DroppedTail {
                path: segment.path.clone(),
                offset: segment.end_offset,
                index: end_index,
                bytes: scan.written_end - segment.end_offset,
            };
            let corrupt = |kind| {
                Err(Error::corruption(
                    &dropped.path,
                    dropped.offset,
                    Some(end_index),
                    kind,
                ))
            };
            match scan.end {
                ScanEnd::Clean => {}
                _ if !is_last => return corrupt(damage_kind(scan.end)),
                ScanEnd::Removed => report.finished_truncation = Some(dropped.clone()),
                ScanEnd::Damaged {
                    tear_shaped,
                    vouched_end,
                    ..
                } => {
                    let vouched = vouched_end > end_index || hard_state.commit_end > end_index;
                    if vouched || !tear_shaped {
                        return corrupt(damage_kind(scan.end));
                    }
                    report.torn_tail = Some(dropped.clone());
                }
            }
            if access.is_writable() && dropped.bytes > 0 {
                segment.zero_range(dropped.offset, dropped.offset + dropped.bytes)?;
            }
            self.term_runs.extend(scan.term_runs);
            self.recovered_commit_end = self.recovered_commit_end.max(scan.commit_end);
            expected_first = end_index;
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

/// What to report when a segment's records end badly where they must not.
fn damage_kind(end: ScanEnd) -> CorruptionKind {
    match end {
        ScanEnd::Damaged {
            fault: Some(RecordFault::BadMagic),
            ..
        } => CorruptionKind::BadMagic,
        ScanEnd::Damaged {
            fault: Some(RecordFault::ImpossibleLength(length)),
            ..
        } => CorruptionKind::ImpossibleLength { length },
        _ => CorruptionKind::ChecksumMismatch,
    }
}

/// Lists the directory: segment generations in order; leftover temporary
/// files are removed (with [`Access::Writable`]); anything unknown is
/// refused.
fn list_segments<S: Storage>(
    storage: &S,
    access: Access,
    report: &mut RecoveryReport,
) -> Result<Vec<u64>> {
    let names = storage
        .list()
        .map_err(|e| Error::io("list directory", storage.path_of(""), e))?;
    let mut generations = Vec::new();
    for name in names {
        if name == HARD_STATE_FILE_NAME || parse_snapshot_file_name(&name).is_some() {
            continue; // Snapshots are the engine's (see crate::snapshot).
        }
        if let Some(generation) = parse_segment_file_name(&name) {
            generations.push(generation);
        } else if name.ends_with(TEMPORARY_FILE_SUFFIX) {
            if access.is_writable() {
                storage
                    .remove(&name)
                    .map_err(|e| Error::io("remove file", storage.path_of(&name), e))?;
            }
            report.removed_files.push(name);
        } else {
            return Err(Error::corruption(
                storage.path_of(&name),
                0,
                None,
                CorruptionKind::UnexpectedFile,
            ));
        }
    }
    if access.is_writable() && !report.removed_files.is_empty() {
        storage
            .sync_directory()
            .map_err(|e| Error::io("fsync directory", storage.path_of(""), e))?;
    }
    generations.sort_unstable();
    Ok(generations)
}
