//! Real files whose writes stay in memory until `sync_data`, with a gate
//! every sync passes: dropping the handle is a power loss that keeps
//! exactly what was synced, and a test can hold syncs, let them through one
//! token at a time, or fail one. Reads see only synced bytes, which is all
//! the engine reads back before a reopen on plain [`OsStorage`].

#![allow(dead_code)] // each test file uses part of it

use std::borrow::Cow;
use std::io;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Condvar, Mutex};

use cpwal::io::{DirectoryEntry, LockMode, OsFile, OsStorage, Storage, StorageFile};

/// The gate shared by every file of one [`GatedStorage`].
#[derive(Default)]
pub struct Faults {
    gate: Mutex<Gate>,
    changed: Condvar,
}

/// What the gate does to the next syncs; set with [`Faults::set`].
#[derive(Default)]
pub struct Gate {
    /// Syncs wait while this is set.
    pub hold_syncs: bool,
    /// When set, each sync takes one token, waiting for one.
    pub tokens: Option<usize>,
    /// The next sync to pass the gate fails.
    pub fail_next: bool,
    /// The sync that entered the gate with this count (1 for the first) fails.
    pub fail_entered: Option<usize>,
    /// Syncs that reached the gate.
    pub entered: usize,
    /// Write the bytes but skip the real fdatasync (speed, in a test that
    /// checks no power loss).
    pub skip_fsync: bool,
}

/// What the gate decided for one sync.
struct Pass {
    fail: bool,
    skip_fsync: bool,
}

impl Faults {
    /// Changes the gate and wakes every sync waiting at it.
    pub fn set(&self, change: impl FnOnce(&mut Gate)) {
        change(&mut self.gate.lock().unwrap());
        self.changed.notify_all();
    }

    /// How many syncs reached the gate.
    pub fn entered(&self) -> usize {
        self.gate.lock().unwrap().entered
    }

    /// Waits at the gate until it lets this sync through.
    fn pass_gate(&self) -> Pass {
        let mut gate = self.gate.lock().unwrap();
        gate.entered += 1;
        let me = gate.entered;
        self.changed.notify_all();
        loop {
            match gate.tokens {
                _ if gate.hold_syncs => {}
                Some(0) => {}
                Some(n) => {
                    gate.tokens = Some(n - 1);
                    break;
                }
                None => break,
            }
            gate = self.changed.wait(gate).unwrap();
        }
        Pass {
            fail: std::mem::take(&mut gate.fail_next) || gate.fail_entered == Some(me),
            skip_fsync: gate.skip_fsync,
        }
    }
}

/// The storage: [`OsStorage`] with every file's writes held until synced.
pub struct GatedStorage {
    inner: OsStorage,
    faults: Arc<Faults>,
}

pub struct GatedFile {
    inner: OsFile,
    pending: Mutex<Vec<(u64, Vec<u8>)>>,
    faults: Arc<Faults>,
}

impl GatedStorage {
    /// The storage of `dir`, locked exclusively, and its gate.
    pub fn open(dir: &Path) -> (Self, Arc<Faults>) {
        let faults = Arc::new(Faults::default());
        let inner = OsStorage::open(dir, LockMode::Exclusive).unwrap();
        let storage = Self {
            inner,
            faults: Arc::clone(&faults),
        };
        (storage, faults)
    }

    fn wrap(&self, inner: OsFile) -> GatedFile {
        GatedFile {
            inner,
            pending: Mutex::new(Vec::new()),
            faults: Arc::clone(&self.faults),
        }
    }
}

impl Storage for GatedStorage {
    type File = GatedFile;
    fn list(&self) -> io::Result<Vec<DirectoryEntry>> {
        self.inner.list()
    }
    fn create(&self, name: &str) -> io::Result<GatedFile> {
        Ok(self.wrap(self.inner.create(name)?))
    }
    fn open(&self, name: &str, writable: bool) -> io::Result<GatedFile> {
        Ok(self.wrap(self.inner.open(name, writable)?))
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
        let faults = Arc::clone(&self.faults);
        Ok(Self { inner, faults })
    }
}

impl StorageFile for GatedFile {
    fn len(&self) -> io::Result<u64> {
        self.inner.len()
    }
    fn allocate(&self, length_bytes: u64) -> io::Result<()> {
        self.inner.allocate(length_bytes)
    }
    fn write_at(&self, offset: u64, bytes: &[u8]) -> io::Result<()> {
        self.pending.lock().unwrap().push((offset, bytes.to_vec()));
        Ok(())
    }
    fn read_at(&self, offset: u64, length: usize) -> io::Result<Cow<'_, [u8]>> {
        self.inner.read_at(offset, length)
    }
    fn sync_data(&self) -> io::Result<()> {
        // What this sync covers is fixed when it starts, as with fdatasync.
        let writes = std::mem::take(&mut *self.pending.lock().unwrap());
        let pass = self.faults.pass_gate();
        if pass.fail {
            return Err(io::Error::other("injected fdatasync failure"));
        }
        for (offset, bytes) in writes {
            self.inner.write_at(offset, &bytes)?;
        }
        if pass.skip_fsync {
            return Ok(());
        }
        self.inner.sync_data()
    }
}
