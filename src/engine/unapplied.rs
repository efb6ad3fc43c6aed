//! [`UnappliedEntries`]: the entries a [`SharedControlPlane`] wrote and
//! whose sync has not yet committed them, kept in memory so the catalog can
//! apply them after the sync without reading them back from the log.
//!
//! Reading back costs a checksum, a decode with its allocations and page
//! faults on the read map for every entry; on the group-commit path it was a
//! third of the CPU spent per append. The copy kept here is only a cache:
//! an index it does not hold is read from the log as before.
//!
//! [`SharedControlPlane`]: super::SharedControlPlane

use std::collections::VecDeque;

use crate::consensus::ControlPlaneEntry;

/// Entries at consecutive indexes `start..start + entries.len()`, written to
/// the log by this node and not yet applied to the catalog.
///
/// Invariant: `entries[k]` is exactly the entry the log holds at index
/// `start + k`. Whoever changes what the log holds at an index this may cover
/// (truncation, a snapshot install) calls [`UnappliedEntries::clear`].
#[derive(Debug, Default)]
pub(super) struct UnappliedEntries {
    start: u64,
    entries: VecDeque<ControlPlaneEntry>,
}

impl UnappliedEntries {
    /// Remembers `entries`, just written at indexes starting at `start`. If
    /// they do not follow the ones held, the older ones are forgotten: the
    /// cache only ever holds one run of consecutive indexes.
    pub(super) fn remember(&mut self, start: u64, entries: &[ControlPlaneEntry]) {
        if start != self.start + self.entries.len() as u64 {
            self.clear();
            self.start = start;
        }
        self.entries.extend(entries.iter().cloned());
    }

    /// The entry at `index`, taken out of the cache together with every entry
    /// below it; `None` if the cache does not hold it.
    pub(super) fn take(&mut self, index: u64) -> Option<ControlPlaneEntry> {
        if index < self.start {
            return None;
        }
        let skip = (index - self.start).min(self.entries.len() as u64);
        self.entries.drain(..skip as usize);
        self.start += skip;
        let entry = self.entries.pop_front()?;
        self.start += 1;
        Some(entry)
    }

    /// Forgets every entry.
    pub(super) fn clear(&mut self) {
        self.entries.clear();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::consensus::OwnershipTransition;
    use crate::identity::ClusterVoterIdentity;

    fn entry(epoch: u64) -> ControlPlaneEntry {
        ControlPlaneEntry::OwnershipTransition(OwnershipTransition {
            range: "r".into(),
            new_owner: ClusterVoterIdentity::from_certificate_subject("CN=a").unwrap(),
            ownership_epoch: epoch,
        })
    }

    #[test]
    fn take_serves_only_the_indexes_remembered() {
        // Goal: the cache answers an index only with the entry written there.
        // Method: remember two runs, one not following the other, and take
        // indexes inside, below and past them.
        let mut cache = UnappliedEntries::default();
        cache.remember(5, &[entry(5), entry(6), entry(7)]);
        assert_eq!(cache.take(4), None);
        assert_eq!(cache.take(6), Some(entry(6)), "skips 5");
        assert_eq!(cache.take(6), None, "taken once");
        cache.remember(8, &[entry(8)]);
        assert_eq!(cache.take(7), Some(entry(7)));
        assert_eq!(cache.take(8), Some(entry(8)));
        assert_eq!(cache.take(9), None);
        cache.remember(20, &[entry(20)]);
        assert_eq!(cache.take(9), None, "a gap resets the run");
        assert_eq!(cache.take(20), Some(entry(20)));
        cache.remember(21, &[entry(21)]);
        cache.clear();
        assert_eq!(cache.take(21), None);
    }
}
