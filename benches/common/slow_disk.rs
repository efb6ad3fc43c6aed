//! A disk whose syncs take longer: real files ([`OsStorage`]) whose every
//! `sync_data` first waits a fixed delay. It emulates the throttled regime
//! of this machine's virtual disk (`fdatasync` ≈ 4 ms, during which the
//! device serves other requests: two raw syncs in flight at once ran 2.74×
//! one at a time there), which comes and goes on its own and cannot be
//! chosen for a run. An emulation, labelled as one: it shows what
//! overlapping syncs buy when syncs are slow and independent, not what a
//! given disk does.
#![allow(dead_code)] // Only the concurrent bench uses it.

use std::borrow::Cow;
use std::io;
use std::path::{Path, PathBuf};
use std::time::Duration;

use cpwal::io::{DirectoryEntry, LockMode, OsFile, OsStorage, Storage, StorageFile};

/// [`OsStorage`] whose files sync `delay` late.
pub struct SlowDisk {
    inner: OsStorage,
    delay: Duration,
}

pub struct SlowFile {
    inner: OsFile,
    delay: Duration,
}

impl SlowDisk {
    /// The storage of `dir`, locked exclusively.
    pub fn open(dir: &Path, delay: Duration) -> Self {
        std::fs::create_dir_all(dir).unwrap();
        let inner = OsStorage::open(dir, LockMode::Exclusive).unwrap();
        Self { inner, delay }
    }

    fn slow(&self, inner: OsFile) -> SlowFile {
        SlowFile {
            inner,
            delay: self.delay,
        }
    }
}

impl Storage for SlowDisk {
    type File = SlowFile;
    fn list(&self) -> io::Result<Vec<DirectoryEntry>> {
        self.inner.list()
    }
    fn create(&self, name: &str) -> io::Result<SlowFile> {
        Ok(self.slow(self.inner.create(name)?))
    }
    fn open(&self, name: &str, writable: bool) -> io::Result<SlowFile> {
        Ok(self.slow(self.inner.open(name, writable)?))
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
    fn open_subdirectory(&self, name: &str) -> cpwal::Result<Self> {
        let inner = self.inner.open_subdirectory(name)?;
        Ok(Self {
            inner,
            delay: self.delay,
        })
    }
    fn allows_background_work(&self) -> bool {
        self.inner.allows_background_work()
    }
}

impl StorageFile for SlowFile {
    fn len(&self) -> io::Result<u64> {
        self.inner.len()
    }
    fn allocate(&self, length_bytes: u64) -> io::Result<()> {
        self.inner.allocate(length_bytes)
    }
    fn write_at(&self, offset: u64, bytes: &[u8]) -> io::Result<()> {
        self.inner.write_at(offset, bytes)
    }
    fn read_at(&self, offset: u64, length: usize) -> io::Result<Cow<'_, [u8]>> {
        self.inner.read_at(offset, length)
    }
    fn sync_data(&self) -> io::Result<()> {
        std::thread::sleep(self.delay);
        self.inner.sync_data()
    }
}
