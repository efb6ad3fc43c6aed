//! The io seam: the only place cpwal touches the operating system.
//!
//! The engine sees a data directory as a [`Storage`] holding flat files, each a
//! [`StorageFile`]. [`OsStorage`] is the real thing (files, `fdatasync`,
//! read-only memory maps, an `fs2` lock); tests substitute a simulated disk
//! that can lose power, fail a sync or fill up, and the engine cannot tell the
//! difference. Faults are injected per instance, never through globals.
//!
//! Durability contract every implementation honours, and the engine relies on:
//! * bytes passed to [`StorageFile::write_at`] are durable once a later
//!   [`StorageFile::sync_data`] on the same file returns `Ok`;
//! * a create, rename or remove is durable once a later
//!   [`Storage::sync_directory`] returns `Ok`; a subdirectory is durable
//!   once [`Storage::open_subdirectory`] returns;
//! * before that, a crash may keep any subset of the unsynced 512-byte sectors
//!   and of the unsynced directory changes.

pub(crate) mod entry;
mod os;
mod private;
pub(crate) mod whole_file;

use std::borrow::Cow;
use std::io;
use std::path::PathBuf;

pub use entry::{not_a_regular_file, DirectoryEntry, FileKind, ForeignFile};
pub use os::{LockMode, OsFile, OsStorage, LOCK_FILE_NAME};
pub use private::{
    create_private_directory, create_private_file, open_regular_file, sync_directory,
    PRIVATE_DIRECTORY_MODE, PRIVATE_FILE_MODE,
};

/// Whether a handle may change what it opens. An open for inspection
/// ([`Access::ReadOnly`]) changes nothing on disk, not even to repair what
/// a crash left.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Access {
    /// Read, and change nothing.
    ReadOnly,
    /// Read, write and repair.
    Writable,
}

impl Access {
    /// Whether writes are allowed.
    pub fn is_writable(self) -> bool {
        self == Access::Writable
    }
}

/// A directory of files, as the engine sees it.
pub trait Storage: Send + Sync + 'static {
    /// The file handle type.
    type File: StorageFile;

    /// Every entry of the directory (the lock file included), in no
    /// particular order, with names exactly as stored.
    fn list(&self) -> io::Result<Vec<DirectoryEntry>>;

    /// The directory's own permission bits, where the storage has them.
    fn directory_mode(&self) -> io::Result<Option<u32>> {
        Ok(None)
    }

    /// Creates a new, empty file opened for reading and writing, readable
    /// and writable by its owner only (mode 0600 where the storage has
    /// modes). Fails if the name exists.
    fn create(&self, name: &str) -> io::Result<Self::File>;

    /// Opens an existing regular file, for writing too when `writable`.
    /// Any other kind of entry is refused with [`not_a_regular_file`] at
    /// once: an open never blocks (as a FIFO's would) and never follows a
    /// link.
    fn open(&self, name: &str, writable: bool) -> io::Result<Self::File>;

    /// Renames `from` to `to`, replacing `to` if it exists.
    fn rename(&self, from: &str, to: &str) -> io::Result<()>;

    /// Removes a regular file; any other kind of entry is refused with
    /// [`not_a_regular_file`].
    fn remove(&self, name: &str) -> io::Result<()>;

    /// Makes every create, rename and remove so far durable.
    fn sync_directory(&self) -> io::Result<()>;

    /// The path to show in errors for `name` (the directory itself for "").
    fn path_of(&self, name: &str) -> PathBuf;

    /// Opens the subdirectory `name` as a storage of its own (held as this
    /// one is), creating it durably if it is missing: the directory is
    /// created, then this one synced, before it is returned — a crash can
    /// then no longer lose it with the files made in it.
    fn open_subdirectory(&self, name: &str) -> crate::Result<Self>
    where
        Self: Sized;

    /// Whether slow preparation (allocating the next segment while the tail
    /// segment fills) may run on a background thread. The
    /// default, no, keeps every operation in line, as a simulated disk needs
    /// for crash points that replay exactly from a seed.
    fn allows_background_work(&self) -> bool {
        false
    }
}

/// One open file. Every method takes `&self` so a file can be shared between
/// the writer and a thread that syncs it.
pub trait StorageFile: Send + Sync + 'static {
    /// The file's length in bytes.
    fn len(&self) -> io::Result<u64>;

    /// Whether the file is empty.
    fn is_empty(&self) -> io::Result<bool> {
        Ok(self.len()? == 0)
    }

    /// Reserves disk space so the file is at least `length_bytes` long and
    /// writes inside it cannot fail for lack of space.
    fn allocate(&self, length_bytes: u64) -> io::Result<()>;

    /// Writes all of `bytes` at `offset`.
    fn write_at(&self, offset: u64, bytes: &[u8]) -> io::Result<()>;

    /// Reads `length` bytes at `offset`; a read past the end fails with
    /// `UnexpectedEof`. Implementations may serve it from a memory map.
    fn read_at(&self, offset: u64, length: usize) -> io::Result<Cow<'_, [u8]>>;

    /// Makes every write so far durable (`fdatasync`).
    fn sync_data(&self) -> io::Result<()>;

    /// Writes the bytes of `[offset, offset + length)` written so far out to
    /// the disk and waits for them, *without* promising that they are
    /// durable: the disk's volatile cache is not flushed and the file's
    /// metadata is not written, so only a later [`StorageFile::sync_data`]
    /// guarantees it. Background work calls it to keep little of its own
    /// writing in flight, so that a foreground sync does not queue behind
    /// it; it changes nothing the durability contract promises. An empty
    /// range writes nothing.
    ///
    /// An error is a failed writeback, as a failed sync's is: it may be
    /// reported here *instead of* by the next sync of the file, so a caller
    /// must treat it as a failed sync (never retry into a success). The
    /// default does nothing (a simulated disk has no writeback to pace).
    fn write_back(&self, offset: u64, length: u64) -> io::Result<()> {
        let _ = (offset, length);
        Ok(())
    }

    /// Starts writing `[offset, offset + length)` out to the disk and
    /// returns without waiting: a head start for the
    /// [`StorageFile::sync_data`] that must follow, so that the caller can
    /// work while the disk writes. It promises nothing (only the sync makes
    /// the range durable), so where it is unavailable it does nothing. An
    /// empty range writes nothing.
    ///
    /// An implementation returns an error only where pages may never reach
    /// the disk (having queued less than asked is no error), and it is
    /// treated as a failed sync, as [`StorageFile::write_back`]'s is. The
    /// default does nothing.
    fn start_write_back(&self, offset: u64, length: u64) -> io::Result<()> {
        let _ = (offset, length);
        Ok(())
    }
}
