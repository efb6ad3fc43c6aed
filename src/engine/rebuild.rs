//! The catalog rebuild at open: every committed entry after the snapshot,
//! decoded in place and applied in order, straight from the segment bytes
//! the recovery scan just verified.
//!
//! Decoding (UTF-8 and the name rules for every string) and applying (one
//! hashed lookup per name) cost about the same per entry, and only
//! applying must be sequential. So on a machine with two cores or more, in
//! a segment with enough entries, a second thread decodes a chunk ahead
//! while this one applies the chunk before it: the rebuild then costs about
//! one of the two, not their sum.

use std::sync::mpsc;

use crate::catalog::ControlPlaneCatalog;
use crate::codec::{decode_entry_view, EntryView};
use crate::consensus::ControlPlaneIndex;
use crate::error::{CorruptionKind, Result};
use crate::io::Storage;
use crate::log::ScannedRecords;
use crate::parallelism::available_cores;

use super::ControlPlaneNode;
use crate::node_role::Role;

/// Entries decoded per message to the applying thread: large enough that
/// handing a chunk over costs nothing next to decoding it, small enough
/// that the two threads overlap from the start (about 50 KB of views).
const DECODE_CHUNK_ENTRIES: u64 = 1024;

/// Decoding ahead pays from this many entries in a segment; fewer are
/// decoded in line (a thread costs tens of microseconds to start).
const DECODE_AHEAD_MIN_ENTRIES: u64 = 4 * DECODE_CHUNK_ENTRIES;

/// How many decoded chunks may wait for the applying thread.
const CHUNKS_IN_FLIGHT: usize = 2;

impl<R: Role, S: Storage> ControlPlaneNode<R, S> {
    /// Applies every committed entry not yet applied, as
    /// [`ControlPlaneNode::apply_committed`] does, for `open` only (right
    /// after the recovery scan, before any write): each segment is walked in
    /// sequence, a record's checksum is not computed a second time (see
    /// [`crate::log::SegmentedLog::for_each_scanned_segment`]), and entries
    /// are decoded without allocating, a chunk ahead on a second thread (see
    /// the module docs). This is the only decoding of those entries at open:
    /// the first one in index order that does not decode fails the open as
    /// corruption at its file, offset and index, and nothing after it is
    /// applied. A failure is latched.
    pub(super) fn apply_committed_at_open(&mut self) -> Result<()> {
        let from = self.catalog.applied_end().0;
        let catalog = &mut self.catalog;
        // On a single core a second thread would only take turns with this one.
        let cores = available_cores();
        let applied = self
            .log
            .for_each_scanned_segment(from, self.commit_end, |records| {
                let entries = records.indexes().end - records.indexes().start;
                if cores < 2 || entries < DECODE_AHEAD_MIN_ENTRIES {
                    apply_in_line(catalog, records)
                } else {
                    apply_decoded_ahead(catalog, records)
                }
            });
        self.stop_on_failure(applied)
    }
}

/// The entry at `index` of `records`, decoded in place.
fn decode<'a>(records: &ScannedRecords<'a>, index: u64) -> Result<EntryView<'a>> {
    let payload = records.payload(index)?;
    decode_entry_view(payload)
        .map_err(|e| records.corruption(index, CorruptionKind::UndecodableEntry(e)))
}

fn apply_in_line(catalog: &mut ControlPlaneCatalog, records: &ScannedRecords<'_>) -> Result<()> {
    for index in records.indexes() {
        let entry = decode(records, index)?;
        catalog.apply_decoded(ControlPlaneIndex(index), entry)?;
    }
    Ok(())
}

/// Applies `records` in order while a scoped thread decodes them a chunk
/// ahead ([`decode_chunks`]); in line if the system cannot start a thread.
fn apply_decoded_ahead(
    catalog: &mut ControlPlaneCatalog,
    records: &ScannedRecords<'_>,
) -> Result<()> {
    std::thread::scope(|scope| {
        let (decoded, to_apply) = mpsc::sync_channel(CHUNKS_IN_FLIGHT);
        let decoder = std::thread::Builder::new().name("cpwal-open-decode".into());
        if decoder
            .spawn_scoped(scope, move || decode_chunks(records, &decoded))
            .is_err()
        {
            return apply_in_line(catalog, records);
        }
        let mut index = records.indexes().start;
        for chunk in to_apply {
            for entry in chunk? {
                catalog.apply_decoded(ControlPlaneIndex(index), entry)?;
                index += 1;
            }
        }
        Ok(())
    })
}

/// Sends `records` decoded, a chunk at a time, in order. Stops after its
/// first failure, which is sent in the chunk's place; or when the receiver
/// is gone (applying failed first).
fn decode_chunks<'a>(
    records: &ScannedRecords<'a>,
    decoded: &mpsc::SyncSender<Result<Vec<EntryView<'a>>>>,
) {
    let indexes = records.indexes();
    let mut start = indexes.start;
    while start < indexes.end {
        let end = indexes.end.min(start + DECODE_CHUNK_ENTRIES);
        let chunk: Result<Vec<EntryView<'a>>> =
            (start..end).map(|index| decode(records, index)).collect();
        let failed = chunk.is_err();
        if decoded.send(chunk).is_err() || failed {
            return;
        }
        start = end;
    }
}
