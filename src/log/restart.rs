//! Restarting the log past its end: the follower's half of installing a
//! snapshot. Every entry is dropped and the log continues at `new_start`,
//! whose predecessor (covered by the snapshot) has term `previous_term`.
//!
//! Steps, each durable before the next (crash argument in
//! [`crate::format`], "Restarting the log"):
//! 1. create the *restart segment*: generation one past the tail, first
//!    index `new_start`, and **no predecessor** (`previous_generation = 0`);
//! 2. save the hard state with `log_start = new_start` — the commit point;
//! 3. remove the old segments, oldest first.
//!
//! Recovery ([`SegmentedLog::discard_unfinished_restart`]) removes a restart
//! segment the hard state does not yet point at (crash before step 2); after
//! step 2 the ordinary compacted-head cleanup removes the old segments.

use crate::error::{InvalidInput, Result};
use crate::hard_state::{HardState, HardStateStore};
use crate::io::Storage;
use crate::log::{RecoveryReport, SegmentedLog};
use crate::segment::Segment;

impl<S: Storage> SegmentedLog<S> {
    /// Drops every entry and restarts the log at `new_start` (see the module
    /// documentation). `new_start` must be past the end of the log.
    #[cfg_attr(not(feature = "openraft"), allow(dead_code))]
    pub fn restart_at(
        &mut self,
        new_start: u64,
        previous_term: u64,
        hard_state_store: &mut HardStateStore<S::File>,
        hard_state: &mut HardState,
    ) -> Result<()> {
        if new_start <= self.end_index {
            return Err(InvalidInput::Index {
                index: new_start,
                reason: "a restart must begin past the end of the log",
            }
            .into());
        }
        let generation = self.tail().generation() + 1;
        let segment = Segment::create(
            &*self.storage,
            generation,
            0,
            new_start,
            self.segment_size_bytes,
        )?;
        let mut next = hard_state.clone();
        next.log_start = new_start;
        next.log_start_previous_term = previous_term;
        hard_state_store.save(&next)?;
        *hard_state = next;
        let old = std::mem::replace(&mut self.segments, vec![segment]);
        for stale in old {
            self.remove_file(&stale.name)?;
        }
        self.term_runs.clear();
        self.start_index = new_start;
        self.start_previous_term = previous_term;
        self.end_index = new_start;
        self.durable_end = new_start;
        self.check_invariants();
        Ok(())
    }

    /// Removes a restart segment (one naming no predecessor, after other
    /// segments) that starts beyond the hard state's log start: a restart
    /// that crashed before its commit point never happened.
    pub(super) fn discard_unfinished_restart(
        &mut self,
        writable: bool,
        report: &mut RecoveryReport,
    ) -> Result<()> {
        let unfinished = self.segments.len() > 1
            && self.segments.last().is_some_and(|last| {
                last.header.previous_generation == 0 && last.first_index() > self.start_index
            });
        if unfinished {
            let segment = self.segments.pop().expect("checked non-empty");
            if writable {
                self.remove_file(&segment.name)?;
            }
            report.removed_files.push(segment.name);
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use super::*;
    use crate::identity::ClusterVoterIdentity;
    use crate::io::{LockMode, OsStorage};
    use crate::log::CommitStamp;

    const SEGMENT_BYTES: u64 = 4096;

    fn open(
        dir: &std::path::Path,
    ) -> (
        SegmentedLog<OsStorage>,
        HardStateStore<crate::io::OsFile>,
        HardState,
    ) {
        let storage = Arc::new(OsStorage::open(dir, LockMode::Exclusive).unwrap());
        let names = storage.list().unwrap();
        let (store, state) = if names
            .iter()
            .any(|n| n == crate::format::HARD_STATE_FILE_NAME)
        {
            HardStateStore::open(&*storage, true).unwrap()
        } else {
            let node = ClusterVoterIdentity::from_certificate_subject("CN=a").unwrap();
            let state = HardState::new(node);
            (HardStateStore::create(&*storage, &state).unwrap(), state)
        };
        let (log, _) =
            SegmentedLog::open(storage, &state, SEGMENT_BYTES, true, |_| Ok(())).unwrap();
        (log, store, state)
    }

    fn fill(log: &mut SegmentedLog<OsStorage>, count: u64) {
        let payload = [7u8; 600];
        for _ in 0..count {
            log.write([(1, &payload[..])], CommitStamp::Known(0))
                .unwrap();
        }
        log.sync().unwrap();
    }

    #[test]
    fn restart_at_survives_reopen() {
        // Goal: a finished restart is what recovery finds. Method: fill a
        // few segments, restart past the end, append, reopen, compare.
        let dir = tempfile::tempdir().unwrap();
        let (mut log, mut store, mut state) = open(dir.path());
        fill(&mut log, 12);
        log.restart_at(40, 3, &mut store, &mut state).unwrap();
        fill(&mut log, 2);
        drop((log, store));
        let (log, _, state) = open(dir.path());
        assert_eq!((log.start_index(), log.end_index()), (40, 42));
        assert_eq!(log.term_at(39).unwrap(), 3);
        assert_eq!(state.log_start, 40);
        assert_eq!(log.segments().len(), 1);
    }

    #[test]
    fn discard_unfinished_restart_keeps_the_old_log() {
        // Goal: a crash after step 1 (restart segment made, hard state not
        // yet saved) leaves the old log intact. Method: perform step 1 by
        // hand, reopen, check the entries and that the segment is gone.
        let dir = tempfile::tempdir().unwrap();
        let (mut log, store, _) = open(dir.path());
        fill(&mut log, 12);
        let generation = log.tail().generation() + 1;
        Segment::create(&*log.storage, generation, 0, 40, SEGMENT_BYTES).unwrap();
        drop((log, store));
        let (log, _, _) = open(dir.path());
        assert_eq!((log.start_index(), log.end_index()), (0, 12));
        assert!(log.segments().iter().all(|s| s.generation() != generation));
    }

    #[test]
    fn restart_recovery_finishes_after_the_commit_point() {
        // Goal: a crash after step 2 (hard state saved, old segments still
        // there) completes the restart. Method: steps 1 and 2 by hand.
        let dir = tempfile::tempdir().unwrap();
        let (mut log, mut store, state) = open(dir.path());
        fill(&mut log, 12);
        let generation = log.tail().generation() + 1;
        Segment::create(&*log.storage, generation, 0, 40, SEGMENT_BYTES).unwrap();
        let next = HardState {
            log_start: 40,
            log_start_previous_term: 3,
            ..state
        };
        store.save(&next).unwrap();
        drop((log, store));
        let (log, _, _) = open(dir.path());
        assert_eq!((log.start_index(), log.end_index()), (40, 40));
        assert_eq!(log.segments().len(), 1);
        assert_eq!(log.term_at(39).unwrap(), 3);
    }
}
