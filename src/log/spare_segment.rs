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
//! while the spare is being written, appends share the disk with it: under a
//! saturating batch load, the calls that meet a step of it take longer, and
//! they set the p99 (see [`BACKGROUND_STEP_BYTES`] for how the steps are
//! kept small and free of cache flushes); for a control plane a 12 ms stall
//! at every rollover would be worse.
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
//! installed unless its final sync succeeded — a failed preparation
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

/// How much of the spare the background thread zero-fills before it waits
/// for those pages to reach the disk. Appends share the disk with it: a
/// foreground `fdatasync` waits behind whatever background writes are
/// already queued, so the spare goes out 64 KiB at a time (one 16 MiB
/// flush held an append up for 5–9 ms here). Each step is written back
/// without a cache flush ([`StorageFile::write_back`]), and the whole spare
/// is synced once at the end: a sync per 256 KiB step, as before, made 64
/// cache flushes per segment, and the appends that met one took ≈ 250 µs
/// longer. Measured here with 64-entry batches over three rollovers
/// (2026-11-29, eight alternating runs of 4000 calls each): the p99 of a
/// call 420 → 353 µs (medians), throughput within noise; the append bench's
/// `TAIL` line measures it (README, Performance).
const BACKGROUND_STEP_BYTES: u64 = 64 << 10;

/// Creates [`SPARE_SEGMENT_FILE_NAME`] and allocates it in full,
/// `step_bytes` at a time, each step written back before the next, then
/// syncs it once. On failure (a full disk, say) the partial spare is
/// removed, so no multi-megabyte temporary is left behind.
fn prepare<S: Storage>(storage: &S, size_bytes: u64, step_bytes: u64) -> io::Result<S::File> {
    let file = storage.create(SPARE_SEGMENT_FILE_NAME)?;
    let cleanup = RemoveOnFailure::new(storage, SPARE_SEGMENT_FILE_NAME);
    let mut allocated = 0;
    while allocated < size_bytes {
        let step_end = size_bytes.min(allocated + step_bytes);
        file.allocate(step_end)?;
        file.write_back(allocated, step_end - allocated)?;
        allocated = step_end;
    }
    file.sync_data()?;
    cleanup.keep();
    Ok(file)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::io::{DirectoryEntry, LockMode, OsFile, OsStorage};
    use std::borrow::Cow;
    use std::path::PathBuf;
    use std::sync::Mutex;

    /// A file operation of the spare, as recorded.
    #[derive(Debug, Clone, Copy, PartialEq, Eq)]
    enum Call {
        Allocate(u64),
        WriteBack { offset: u64, length: u64 },
        Sync,
    }

    /// What a [`Recording`] storage saw, and the write-backs it should fail.
    #[derive(Default)]
    struct Log {
        calls: Mutex<Vec<Call>>,
        failing_write_backs: Mutex<u32>,
    }

    /// The real file system, with the spare's operations recorded and
    /// background work allowed (as [`OsStorage`] allows it).
    struct Recording {
        inner: OsStorage,
        log: Arc<Log>,
    }

    struct RecordingFile {
        inner: OsFile,
        log: Arc<Log>,
    }

    impl RecordingFile {
        fn record(&self, call: Call) {
            self.log.calls.lock().unwrap().push(call);
        }
    }

    impl Recording {
        fn recorded(&self, inner: OsFile) -> RecordingFile {
            let log = Arc::clone(&self.log);
            RecordingFile { inner, log }
        }
    }

    impl Storage for Recording {
        type File = RecordingFile;
        fn list(&self) -> io::Result<Vec<DirectoryEntry>> {
            self.inner.list()
        }
        fn create(&self, name: &str) -> io::Result<RecordingFile> {
            Ok(self.recorded(self.inner.create(name)?))
        }
        fn open(&self, name: &str, writable: bool) -> io::Result<RecordingFile> {
            Ok(self.recorded(self.inner.open(name, writable)?))
        }
        fn rename(&self, from: &str, to: &str) -> io::Result<()> {
            self.inner.rename(from, to)
        }
        fn remove(&self, name: &str) -> io::Result<()> {
            self.inner.remove(name)
        }
        fn sync_directory(&self) -> io::Result<()> {
            self.inner.sync_directory()
        }
        fn path_of(&self, name: &str) -> PathBuf {
            self.inner.path_of(name)
        }
        fn open_subdirectory(&self, _name: &str) -> crate::Result<Self> {
            unreachable!("a spare segment opens no subdirectory")
        }
        fn allows_background_work(&self) -> bool {
            true
        }
    }

    impl StorageFile for RecordingFile {
        fn len(&self) -> io::Result<u64> {
            self.inner.len()
        }
        fn allocate(&self, length_bytes: u64) -> io::Result<()> {
            self.record(Call::Allocate(length_bytes));
            self.inner.allocate(length_bytes)
        }
        fn write_at(&self, offset: u64, bytes: &[u8]) -> io::Result<()> {
            self.inner.write_at(offset, bytes)
        }
        fn read_at(&self, offset: u64, length: usize) -> io::Result<Cow<'_, [u8]>> {
            self.inner.read_at(offset, length)
        }
        fn sync_data(&self) -> io::Result<()> {
            self.record(Call::Sync);
            self.inner.sync_data()
        }
        fn write_back(&self, offset: u64, length: u64) -> io::Result<()> {
            self.record(Call::WriteBack { offset, length });
            let mut failing = self.log.failing_write_backs.lock().unwrap();
            if *failing > 0 {
                *failing -= 1;
                return Err(io::Error::from_raw_os_error(libc::EIO));
            }
            self.inner.write_back(offset, length)
        }
    }

    const SPARE_BYTES: u64 = 4 * BACKGROUND_STEP_BYTES + 4096;

    fn spare_on_disk() -> (tempfile::TempDir, SpareSegment<Recording>, Arc<Log>) {
        let dir = tempfile::tempdir().unwrap();
        let inner = OsStorage::open(dir.path(), LockMode::Exclusive).unwrap();
        let log = Arc::new(Log::default());
        let recording = Recording {
            inner,
            log: Arc::clone(&log),
        };
        let storage = Arc::new(LatchedStorage::new(recording));
        (dir, SpareSegment::new(storage, SPARE_BYTES), log)
    }

    /// The calls that prepare `size_bytes` in steps of `step_bytes`, each
    /// step written back, then one sync.
    fn paced_preparation(size_bytes: u64, step_bytes: u64) -> Vec<Call> {
        let mut calls = Vec::new();
        let mut offset = 0;
        while offset < size_bytes {
            let end = size_bytes.min(offset + step_bytes);
            calls.push(Call::Allocate(end));
            let length = end - offset;
            calls.push(Call::WriteBack { offset, length });
            offset = end;
        }
        calls.push(Call::Sync);
        calls
    }

    fn assert_zeroed_spare(file: &impl StorageFile) {
        assert_eq!(file.len().unwrap(), SPARE_BYTES);
        let bytes = file.read_at(0, SPARE_BYTES as usize).unwrap();
        assert!(bytes.iter().all(|&b| b == 0));
    }

    #[test]
    fn the_background_writes_back_each_step_and_syncs_once_at_the_end() {
        // Goal: the background preparation keeps at most one step of its
        // writing in flight and flushes the disk's cache once, not once per
        // step (each flush held up the appends that met it), and the spare
        // it hands over is whole, zeroed and synced last. Method: prepare
        // a spare of four steps and a bit through a recording storage and
        // compare the calls with the paced sequence.
        let (_dir, mut spare, log) = spare_on_disk();
        spare.prepare_ahead();
        let file = spare.take().unwrap();
        let calls = log.calls.lock().unwrap().clone();
        assert_eq!(calls, paced_preparation(SPARE_BYTES, BACKGROUND_STEP_BYTES));
        assert_zeroed_spare(&file);
    }

    #[test]
    fn a_failed_write_back_in_the_background_is_redone_in_line() {
        // Goal: a writeback error in the background (whose pages may be
        // lost) never reaches the log: that spare is discarded and a new
        // one is made in line, through the latch, and synced. Method: fail
        // the first write-back; the calls are the background's one step,
        // then a whole in-line preparation.
        let (_dir, mut spare, log) = spare_on_disk();
        *log.failing_write_backs.lock().unwrap() = 1;
        spare.prepare_ahead();
        let file = spare.take().unwrap();
        let calls = log.calls.lock().unwrap().clone();
        let mut expected = paced_preparation(SPARE_BYTES, BACKGROUND_STEP_BYTES);
        expected.truncate(2);
        expected.extend(paced_preparation(SPARE_BYTES, SPARE_BYTES));
        assert_eq!(calls, expected);
        assert_zeroed_spare(&file);
    }

    #[test]
    fn a_failed_write_back_in_line_is_latched() {
        // Goal: in line, a writeback error is the log's own failure: it is
        // returned typed, names the operation, and later calls are refused.
        // Method: fail the background's and the in-line write-backs.
        let (_dir, mut spare, log) = spare_on_disk();
        *log.failing_write_backs.lock().unwrap() = 2;
        spare.prepare_ahead();
        let error = spare.take().unwrap_err();
        let message = error.to_string();
        assert!(message.contains("write back segment"), "{message}");
        assert!(message.contains(SPARE_SEGMENT_FILE_NAME), "{message}");
        assert!(spare.take().is_err(), "the failure is latched");
        assert!(!log.calls.lock().unwrap().contains(&Call::Sync));
    }
}
