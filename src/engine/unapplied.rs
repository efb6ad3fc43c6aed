//! [`UnappliedEntries`]: the encoded entries a [`SharedControlPlane`] wrote
//! and whose sync has not yet committed them, kept in memory so the catalog
//! can apply them after the sync without reading them back from the log.
//!
//! Reading back costs a checksum, a decode with its allocations and page
//! faults on the read map for every entry; on the group-commit path it was a
//! third of the CPU spent per append. The copy kept here is only a cache:
//! an index it does not hold is read from the log as before. It keeps the
//! encoded bytes in one reused buffer, so remembering an entry allocates
//! nothing once the buffer has grown.
//!
//! [`SharedControlPlane`]: super::SharedControlPlane

use std::ops::Range;

/// The encodings of the entries at consecutive indexes from `start`, written
/// to the log by this node and not yet applied to the catalog.
///
/// Invariant: `bytes[spans[next + k]]` is exactly the payload the log holds
/// at index `start + k`. Whoever changes what the log holds at an index this
/// may cover calls [`UnappliedEntries::clear`].
#[derive(Debug, Default)]
pub(super) struct UnappliedEntries {
    start: u64,
    bytes: Vec<u8>,
    spans: Vec<Range<usize>>,
    next: usize,
}

impl UnappliedEntries {
    /// Remembers the payloads `encoded[span]`, just written at consecutive
    /// indexes from `start`. If they do not follow the ones held, those are
    /// forgotten: the cache holds one run of consecutive indexes.
    pub(super) fn remember(
        &mut self,
        start: u64,
        encoded: &[u8],
        spans: impl Iterator<Item = Range<usize>>,
    ) {
        if self.next == self.spans.len() || start != self.start + self.held() {
            self.clear();
            self.start = start;
        }
        let base = self.bytes.len();
        self.bytes.extend_from_slice(encoded);
        self.spans
            .extend(spans.map(|span| base + span.start..base + span.end));
    }

    /// The payload at `index`, taken out of the cache together with every
    /// entry below it; `None` if the cache does not hold it.
    pub(super) fn take(&mut self, index: u64) -> Option<&[u8]> {
        if index < self.start || index - self.start >= self.held() {
            return None;
        }
        let position = self.next + (index - self.start) as usize;
        self.next = position + 1;
        self.start = index + 1;
        Some(&self.bytes[self.spans[position].clone()])
    }

    /// Forgets every entry (keeping the buffers' capacity).
    pub(super) fn clear(&mut self) {
        self.bytes.clear();
        self.spans.clear();
        self.next = 0;
    }

    /// How many entries are held.
    fn held(&self) -> u64 {
        (self.spans.len() - self.next) as u64
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Remembers one-byte payloads `[n]` for each `n` in `indexes`.
    fn remember(cache: &mut UnappliedEntries, indexes: Range<u64>) {
        let encoded: Vec<u8> = indexes.clone().map(|n| n as u8).collect();
        cache.remember(
            indexes.start,
            &encoded,
            (0..encoded.len()).map(|i| i..i + 1),
        );
    }

    #[test]
    fn take_serves_only_the_indexes_remembered() {
        // Goal: the cache answers an index only with the payload written
        // there. Method: remember runs, one not following the other, and
        // take indexes inside, below and past them.
        let mut cache = UnappliedEntries::default();
        remember(&mut cache, 5..8);
        assert_eq!(cache.take(4), None);
        assert_eq!(cache.take(6), Some(&[6u8][..]), "skips 5");
        assert_eq!(cache.take(6), None, "taken once");
        remember(&mut cache, 8..9);
        assert_eq!(cache.take(7), Some(&[7u8][..]));
        assert_eq!(cache.take(8), Some(&[8u8][..]));
        assert_eq!(cache.take(9), None);
        remember(&mut cache, 20..21);
        assert_eq!(cache.take(9), None, "a gap resets the run");
        assert_eq!(cache.take(20), Some(&[20u8][..]));
        remember(&mut cache, 21..23);
        cache.clear();
        assert_eq!(cache.take(21), None);
    }

    #[test]
    fn remember_reuses_the_buffer_once_everything_was_taken() {
        // Goal: steady state allocates nothing. Method: remember and take
        // the same amount repeatedly; the buffer never grows past one batch.
        let mut cache = UnappliedEntries::default();
        for round in 0..10u64 {
            remember(&mut cache, round * 4..round * 4 + 4);
            for index in round * 4..round * 4 + 4 {
                assert_eq!(cache.take(index), Some(&[index as u8][..]));
            }
            assert!(cache.bytes.len() <= 4 && cache.spans.len() <= 4);
        }
    }
}
