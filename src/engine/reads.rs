//! Reads for replication: entries by range under a byte budget, and what to
//! send a peer that needs entries from some index on.

use crate::consensus::{ControlPlaneIndex, ControlPlaneTerm};
use crate::error::{Error, Result};
use crate::io::Storage;

use super::{ControlPlaneNode, LogEntry};
use crate::node_role::Role;

/// What a leader should send a peer whose next needed index is `next_index`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PeerBatch {
    /// Entries from the log, with the index and term just before them (for
    /// the log-matching check of an AppendEntries request).
    Entries {
        /// The index before the first entry; `None` when they start at 0.
        prev_log_index: Option<ControlPlaneIndex>,
        /// The term of `prev_log_index` (`GENESIS` when it is `None`).
        prev_log_term: ControlPlaneTerm,
        /// Consecutive entries from `next_index`, possibly none (a
        /// heartbeat when the peer is up to date).
        entries: Vec<LogEntry>,
    },
    /// The entries the peer needs were compacted: send the snapshot, which
    /// covers every index below `log_start`.
    SendSnapshot {
        /// The first index still in the log.
        log_start: ControlPlaneIndex,
    },
}

impl<R: Role, S: Storage> ControlPlaneNode<R, S> {
    /// Reads entries from `from` up to (not including) `to`, stopping early
    /// once their payloads exceed `byte_budget` — but always returning at
    /// least one entry when `from < to`, so a peer always makes progress.
    /// `to` is capped at the end of the log. Below the log start:
    /// [`Error::Compacted`].
    pub fn entries(
        &self,
        from: ControlPlaneIndex,
        to: ControlPlaneIndex,
        byte_budget: usize,
    ) -> Result<Vec<LogEntry>> {
        let to = to.0.min(self.log.end_index());
        if from.0 < self.log.start_index() && from.0 < to {
            return Err(Error::Compacted {
                index: from.0,
                first_index: self.log.start_index(),
            });
        }
        let mut entries = Vec::new();
        let mut bytes = 0usize;
        for index in from.0..to {
            let entry = self.read(ControlPlaneIndex(index))?;
            bytes = bytes.saturating_add(crate::codec::encoded_entry(&entry.entry).len());
            if !entries.is_empty() && bytes > byte_budget {
                break;
            }
            entries.push(entry);
        }
        Ok(entries)
    }
    /// What to send a peer that needs entries from `next_index` on (a
    /// replica's followers, or a new replica seeded from a sole voter): the
    /// entries (at most `byte_budget` bytes of payload, at least one when
    /// there is any) with the previous index and term, or
    /// [`PeerBatch::SendSnapshot`] when `next_index - 1` was compacted (its
    /// term is unknown, so log matching cannot be checked from the log).
    pub fn entries_for_peer(
        &self,
        next_index: ControlPlaneIndex,
        byte_budget: usize,
    ) -> Result<PeerBatch> {
        let start = self.log.start_index();
        if next_index.0 < start {
            return Ok(PeerBatch::SendSnapshot {
                log_start: ControlPlaneIndex(start),
            });
        }
        let next = next_index.0.min(self.log.end_index());
        let prev_log_index = next.checked_sub(1).map(ControlPlaneIndex);
        let prev_log_term = match prev_log_index {
            Some(prev) => ControlPlaneTerm(self.log.term_at(prev.0)?),
            None => ControlPlaneTerm::GENESIS,
        };
        let entries = self.entries(
            ControlPlaneIndex(next),
            ControlPlaneIndex(self.log.end_index()),
            byte_budget,
        )?;
        Ok(PeerBatch::Entries {
            prev_log_index,
            prev_log_term,
            entries,
        })
    }
}
