//! [`Options`]: how a [`DurableControlPlane`](crate::DurableControlPlane) lays
//! out its files.

use std::time::Duration;

use crate::codec::MAX_ENTRY_BYTES;
use crate::error::InvalidInput;
use crate::format::{record_bytes, FIRST_SYNC_OFFSET};
use crate::log::DEFAULT_SECOND_SYNC_AFTER;

/// The smallest segment accepted: room for the header and one largest entry.
pub const MIN_SEGMENT_SIZE_BYTES: u64 = 4096;
/// The largest segment accepted (record offsets are kept as `u32`).
pub const MAX_SEGMENT_SIZE_BYTES: u64 = 1 << 31;

/// Tuning for a data directory. `Options::default()` suits a control plane;
/// change a setting with its `with_` method, so that options added later
/// (the struct is `#[non_exhaustive]`) keep their defaults:
///
/// ```
/// let options = cpwal::Options::default().with_segment_size_bytes(1 << 20);
/// assert_eq!(options.segment_size_bytes, 1 << 20);
/// assert!(options.validate().is_ok());
/// ```
///
/// A struct literal does not compile outside cpwal (a new option would
/// break it):
///
/// ```compile_fail
/// let options = cpwal::Options { segment_size_bytes: 1 << 20 };
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct Options {
    /// Bytes of each segment file, allocated in full when the segment is
    /// created. Larger segments mean fewer rollovers (each costs a file
    /// creation and two syncs); smaller ones let compaction free space sooner.
    /// Between [`MIN_SEGMENT_SIZE_BYTES`] and [`MAX_SEGMENT_SIZE_BYTES`], a
    /// multiple of 4096. Default: 16 MiB (about 150 000 typical entries).
    /// Only used for new segments; existing ones keep their size.
    pub segment_size_bytes: u64,
    /// How long a group-commit sync runs before a writer it does not cover
    /// starts a second one beside it, on a second file description of the
    /// tail segment, instead of waiting for it. At most two syncs are in
    /// flight, and they are acknowledged in the order they started; a
    /// failure of either fails every writer the other would have covered.
    /// A fast disk's syncs end before this and never overlap; a disk whose
    /// syncs take milliseconds gets two at once. On a volume that runs at
    /// its operations budget (IOPS limit) and whose syncs are slow, every
    /// sync spends part of the budget and a second one in flight means
    /// smaller batches: there use `Duration::MAX` (measured on a
    /// kernel-throttled disk: the default ran 0.81× one sync in flight
    /// with syncs 4 ms late, 0.95× with fast ones; the README has the
    /// runs). `cpwal bench` measures both on a given disk and says which
    /// to use. `Duration::MAX`: never. Default: 1 ms.
    pub second_sync_after: Duration,
}

impl Default for Options {
    fn default() -> Self {
        Self {
            segment_size_bytes: 16 << 20,
            second_sync_after: DEFAULT_SECOND_SYNC_AFTER,
        }
    }
}

impl Options {
    /// These options with segments of `bytes` (see
    /// [`Options::segment_size_bytes`]; checked by [`Options::validate`],
    /// which every create and open runs before touching the disk).
    pub fn with_segment_size_bytes(mut self, bytes: u64) -> Self {
        self.segment_size_bytes = bytes;
        self
    }

    /// These options with a second group-commit sync started once one has
    /// run for `after` (see [`Options::second_sync_after`]).
    pub fn with_second_sync_after(mut self, after: Duration) -> Self {
        self.second_sync_after = after;
        self
    }

    /// Refuses option values outside their documented ranges.
    pub fn validate(&self) -> Result<(), InvalidInput> {
        let size = self.segment_size_bytes;
        let reason = if size < MIN_SEGMENT_SIZE_BYTES {
            "below the minimum of 4096 bytes"
        } else if size > MAX_SEGMENT_SIZE_BYTES {
            "above the maximum of 2 GiB"
        } else if !size.is_multiple_of(4096) {
            "not a multiple of 4096"
        } else {
            return Ok(());
        };
        Err(InvalidInput::Option {
            name: "segment_size_bytes",
            reason,
        })
    }
}

// A segment of the minimum size holds the largest control-plane entry (so
// the engine's segments never need to grow for one).
const _: () =
    assert!(FIRST_SYNC_OFFSET + record_bytes(MAX_ENTRY_BYTES as u64) <= MIN_SEGMENT_SIZE_BYTES);
