//! Reshaping the log: removing a suffix (a leader's conflict), a prefix
//! (compaction behind a snapshot), or everything (a restart at a snapshot's
//! end). Each is durable on return; the crash argument for each order of
//! steps is in [`crate::format`].
//!
//! Each takes the owner's commit point as `commit_floor` and records it in
//! the hard state it saves: the records a reshape removes may be the only
//! ones that carry it (every record is stamped with the commit point known
//! when it was written), so the hard state must hold it before they go.

use crate::error::{Error, InvalidInput, Result};
use crate::hard_state::{HardState, HardStateStore};
use crate::io::Storage;

use super::segment::{Liveness, Segment};
use super::{LogFile, LogStart, RecoveryReport, SegmentedLog};

impl<S: Storage> SegmentedLog<S> {
    /// Removes every entry at or after `from`, durably (G4): later segments
    /// are removed newest first (after the hard state records
    /// `commit_floor`, which they may be the only ones to carry), then the
    /// hard state records the truncation, then the removed records are
    /// zeroed and synced. `from` must not be below the log start.
    pub fn truncate_suffix(
        &mut self,
        from: u64,
        commit_floor: u64,
        hard_state_store: &mut HardStateStore<LogFile<S>>,
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
        // Before anything is removed: should a step fail, no waiter whose
        // entries may be gone is told they are durable.
        self.cut_durable_end(from);
        let mut next = with_commit_floor(hard_state, commit_floor);
        if self.segments.len() > 1 && self.tail().first_index() > from {
            // The segments about to go may hold the only records carrying the
            // commit point: record it before they are removed.
            hard_state_store.save(&next)?;
            *hard_state = next.clone();
        }
        while self.segments.len() > 1 && self.tail().first_index() > from {
            let segment = self.segments.pop().expect("checked non-empty");
            self.remove_file(&segment.name)?;
        }
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
        tail.zero_range(cut, tail.end_offset)?;
        tail.offsets.truncate(keep);
        tail.end_offset = cut;
        self.end_index = from;
        let runs = self.term_runs.partition_point(|r| r.first_index < from);
        self.term_runs.truncate(runs);
        self.check_invariants();
        Ok(())
    }

    /// Forgets every entry below `start`: the hard state records the new
    /// start (and `commit_floor`) first, then segments wholly below it are
    /// removed, oldest first.
    pub fn remove_prefix(
        &mut self,
        start: LogStart,
        commit_floor: u64,
        hard_state_store: &mut HardStateStore<LogFile<S>>,
        hard_state: &mut HardState,
    ) -> Result<()> {
        self.flush_buffer()?;
        if start.index <= self.start_index {
            return Ok(());
        }
        if start.index > self.end_index {
            return Err(InvalidInput::Index {
                index: start.index,
                reason: "cannot compact past the end of the log",
            }
            .into());
        }
        self.save_start(start, commit_floor, hard_state_store, hard_state)?;
        while self.segments.len() > 1 && self.segments[1].first_index() <= start.index {
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

    /// Makes `start` the durable log start in the hard state, with
    /// `commit_floor`, then adopts it in memory.
    fn save_start(
        &mut self,
        start: LogStart,
        commit_floor: u64,
        hard_state_store: &mut HardStateStore<LogFile<S>>,
        hard_state: &mut HardState,
    ) -> Result<()> {
        let mut next = with_commit_floor(hard_state, commit_floor);
        next.log_start = start.index;
        next.log_start_previous_term = start.previous_term;
        hard_state_store.save(&next)?;
        *hard_state = next;
        self.start_index = start.index;
        self.start_previous_term = start.previous_term;
        Ok(())
    }

    /// Discards the whole log and restarts it, empty, at `start`: used when
    /// a snapshot installed from a leader covers everything this log holds.
    /// `start` must not be below the end of the log (truncate first). Steps,
    /// each durable before the next: the hard state records the new start
    /// (and `commit_floor`); a fresh segment starting there is created;
    /// every older segment is removed, oldest first. Recovery finishes an interrupted restart: with only the
    /// hard state written every segment lies below the start and is
    /// replaced; with the new segment created the older ones are a compacted
    /// head.
    pub fn restart_at(
        &mut self,
        start: LogStart,
        commit_floor: u64,
        hard_state_store: &mut HardStateStore<LogFile<S>>,
        hard_state: &mut HardState,
    ) -> Result<()> {
        self.flush_buffer()?;
        if start.index < self.end_index {
            return Err(InvalidInput::Index {
                index: start.index,
                reason: "a restart must begin at or after the end of the log",
            }
            .into());
        }
        self.save_start(start, commit_floor, hard_state_store, hard_state)?;
        let last = self.tail().generation();
        self.replace_segments(last, &mut RecoveryReport::default())
    }

    /// Creates an empty segment at the log start after generation `last`,
    /// then removes every older segment, oldest first.
    pub(super) fn replace_segments(
        &mut self,
        last: u64,
        report: &mut RecoveryReport,
    ) -> Result<()> {
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
        // Everything below the new start is behind a durable snapshot.
        self.epoch += 1;
        self.set_durable_end(self.start_index);
        self.check_invariants();
        Ok(())
    }

    pub(super) fn remove_file(&self, name: &str) -> Result<()> {
        self.storage
            .remove(name)
            .map_err(|e| Error::io("remove file", self.storage.path_of(name), e))?;
        self.storage
            .sync_directory()
            .map_err(|e| Error::io("fsync directory", self.storage.path_of(""), e))
    }
}

/// `hard_state` with its commit point raised to at least `commit_floor`.
fn with_commit_floor(hard_state: &HardState, commit_floor: u64) -> HardState {
    HardState {
        commit_end: hard_state.commit_end.max(commit_floor),
        ..hard_state.clone()
    }
}
