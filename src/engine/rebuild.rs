//! The catalog rebuild at open: every committed entry after the snapshot,
//! decoded in place and applied in order, straight from the segment bytes
//! the recovery scan just verified.

use crate::codec::decode_entry_view;
use crate::consensus::ControlPlaneIndex;
use crate::error::{CorruptionKind, Error, Result};
use crate::io::Storage;

use super::ControlPlaneNode;
use crate::node_role::Role;

impl<R: Role, S: Storage> ControlPlaneNode<R, S> {
    /// Applies every committed entry not yet applied, as
    /// [`ControlPlaneNode::apply_committed`] does, for `open` only (right
    /// after the recovery scan, before any write): each segment is walked in
    /// sequence, a record's checksum is not computed a second time (see
    /// [`crate::log::SegmentedLog::for_each_scanned_payload`]), and entries
    /// are decoded without allocating. This is the only decoding of those
    /// entries at open: one that does not decode fails the open as
    /// corruption at its file, offset and index. A failure is latched.
    pub(super) fn apply_committed_at_open(&mut self) -> Result<()> {
        let from = self.catalog.applied_end().0;
        let log = &self.log;
        let catalog = &mut self.catalog;
        let applied = log.for_each_scanned_payload(from, self.commit_end, |index, payload| {
            let entry = decode_entry_view(payload).map_err(|e| {
                let (path, offset) = log.location_of(index);
                Error::corruption(
                    path,
                    offset,
                    Some(index),
                    CorruptionKind::UndecodableEntry(e),
                )
            })?;
            catalog
                .apply_decoded(ControlPlaneIndex(index), entry)
                .map(drop)
        });
        self.stop_on_failure(applied)
    }
}
