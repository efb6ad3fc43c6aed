//! [`SpareSegment`]: the next segment's file, allocated, zero-filled and
//! synced before the rollover that needs it.
//!
//! A segment is allocated in full with real zeros (see
//! [`crate::io::StorageFile::allocate`]) so that appends never change file
//! metadata. Doing that at rollover put a 16 MiB write and its sync inside one
//! append: a 10–12 ms stall every 16 MiB of log, against ~0.1 ms for the
//! append itself. Preparing the file while the tail segment fills moves that
//! work off the append path; the rollover then only writes the header,
//! syncs, renames and syncs the directory (`Segment::install`). The price:
//! while the spare is being written, appends share the disk with it, so
//! under a saturating batch load their p99 rose from ≈ 300 to ≈ 450 µs
//! here (README, Performance); for a control plane a 12 ms stall at every
//! rollover is the worse of the two.
//!
//! Crash safety is unchanged: until the rollover renames it, the spare is a
//! temporary file ([`SPARE_SEGMENT_FILE_NAME`] ends in `.tmp`), which
//! recovery removes after a crash (a clean close removes it itself); it never
//! holds anything but zeros and, once installed, the header.
//!
//! Preparation runs on a background thread only when the storage allows it
//! ([`crate::io::Storage::allows_background_work`]); the simulated disks of
//! the tests do not, so every crash point stays reproducible from its seed,
//! and the spare is then prepared in line at the rollover, through the same
//! code.
//!
//! The background preparation goes around the log's latch
//! ([`super::latch`]); the preparation in line at rollover goes through it.
//! No acknowledged byte depends on the background work: the spare is a
//! fresh file (its own inode) that holds nothing but zeros, so a failed
//! allocation, write or sync of it says nothing about the pages of any
//! other file (Linux keeps writeback errors per inode), and it is never
//! installed unless every one of its syncs succeeded — a failed preparation
//! is discarded and the spare made again in line, under the latch, where a
//! failure stops the log as any other does. Latching the background's
//! failures instead would stop a node for a file it never relied on.

use std::io;
use std::sync::Arc;
use std::thread::JoinHandle;

use crate::directory::RemoveOnFailure;
use crate::io::{Storage, StorageFile};

use super::latch::{LatchedFile, LatchedStorage};

pub use crate::format::SPARE_SEGMENT_FILE_NAME;

/// At most one spare segment file, being prepared or ready.
///
/// Invariant: while `preparing` is set, only its thread touches the spare
/// file; dropping a `SpareSegment` waits for that thread, so the file is never
/// written after the log that owns it is gone (and the directory lock, held
/// through `storage`, outlives the work).
pub struct SpareSegment<S: Storage> {
    storage: Arc<LatchedStorage<S>>,
    size_bytes: u64,
    preparing: Option<JoinHandle<io::Result<S::File>>>,
}

impl<S: Storage> std::fmt::Debug for SpareSegment<S> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SpareSegment")
            .field("size_bytes", &self.size_bytes)
            .field("preparing", &self.preparing.is_some())
            .finish_non_exhaustive()
    }
}

impl<S: Storage> SpareSegment<S> {
    /// No spare yet; segments will be `size_bytes` long.
    pub fn new(storage: Arc<LatchedStorage<S>>, size_bytes: u64) -> Self {
        Self {
            storage,
            size_bytes,
            preparing: None,
        }
    }

    /// Starts preparing the spare on a background thread, unless one is
    /// already under way or the storage wants everything done in line.
    pub fn prepare_ahead(&mut self) {
        if self.preparing.is_some() || !self.storage.allows_background_work() {
            return;
        }
        // Around the latch: see the module documentation.
        let storage = Arc::clone(self.storage.unlatched());
        let size_bytes = self.size_bytes;
        let spawned = std::thread::Builder::new()
            .name("cpwal-spare-segment".into())
            .spawn(move || prepare(&*storage, size_bytes, BACKGROUND_STEP_BYTES));
        // A thread that cannot be started costs only the stall it would have
        // saved: `take` then prepares the spare in line.
        self.preparing = spawned.ok();
    }

    /// The spare file, allocated in full, zero-filled and synced, under
    /// [`SPARE_SEGMENT_FILE_NAME`]: the background preparation's if every
    /// step of it succeeded, else one prepared now through the latch (whose
    /// error, such as a full disk, is the one returned, and latched).
    pub fn take(&mut self) -> io::Result<LatchedFile<S::File>> {
        let prepared = match self.preparing.take().map(JoinHandle::join) {
            Some(Ok(Ok(file))) => return Ok(self.storage.adopt(file, SPARE_SEGMENT_FILE_NAME)),
            Some(Ok(Err(error))) => Err(error),
            Some(Err(_panic)) => Err(io::Error::other("spare segment preparation panicked")),
            None => Ok(()),
        };
        if prepared.is_err() {
            // Retried below; what the failed attempt left would make the
            // retry's `create` fail. Best effort, so around the latch.
            let _ = self.storage.unlatched().remove(SPARE_SEGMENT_FILE_NAME);
        }
        prepare(&*self.storage, self.size_bytes, self.size_bytes)
    }
}

impl<S: Storage> Drop for SpareSegment<S> {
    /// Waits for a preparation under way, so no thread writes the spare once
    /// the log is gone, then removes the spare so that a cleanly closed
    /// directory holds no leftover (`cpwal verify` would report one). Both
    /// are best effort: a spare left behind is only a temporary file, which
    /// the next open removes.
    fn drop(&mut self) {
        if let Some(preparing) = self.preparing.take() {
            let _ = preparing.join();
            let _ = self.storage.unlatched().remove(SPARE_SEGMENT_FILE_NAME);
        }
    }
}

/// How much of the spare the background thread zero-fills between syncs.
/// Appends share the disk with it: a foreground `fdatasync` waits behind the
/// background writes already queued, so they go out 256 KiB at a time (one
/// 16 MiB flush held an append up for 5–9 ms here; a step's flush is a
/// sixty-fourth of that).
const BACKGROUND_STEP_BYTES: u64 = 256 << 10;

/// Creates [`SPARE_SEGMENT_FILE_NAME`] and allocates it in full, syncing
/// after every `step_bytes`. On failure (a full disk, say) the partial
/// spare is removed, so no multi-megabyte temporary is left behind.
fn prepare<S: Storage>(storage: &S, size_bytes: u64, step_bytes: u64) -> io::Result<S::File> {
    let file = storage.create(SPARE_SEGMENT_FILE_NAME)?;
    let cleanup = RemoveOnFailure::new(storage, SPARE_SEGMENT_FILE_NAME);
    let mut allocated = 0;
    while allocated < size_bytes {
        allocated = size_bytes.min(allocated + step_bytes);
        file.allocate(allocated)?;
        file.sync_data()?;
    }
    cleanup.keep();
    Ok(file)
}
