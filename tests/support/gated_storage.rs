//! Real files whose writes stay in memory until `sync_data`, with a gate
//! every sync passes: dropping the handle is a power loss that keeps
//! exactly what was synced, and a test can hold syncs, let them through one
//! token at a time or by the order they reached the gate, or fail one.
//! Reads see only synced bytes, which is all the engine reads back before a
//! reopen on plain [`OsStorage`]. As with `fdatasync`, a sync through any
//! handle of a file writes what was written through every handle of it
//! (handles of one inode share their pending writes), and writes become
//! durable in the order they were made: a sync that passes the gate after a
//! later one never puts older bytes over newer ones.

#![allow(dead_code)] // each test file uses part of it

use std::borrow::Cow;
use std::collections::HashMap;
use std::io;
use std::os::unix::fs::MetadataExt;
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
    /// When set, only the syncs that entered the gate with one of these
    /// counts pass (the others wait).
    pub pass_only: Option<Vec<usize>>,
    /// Syncs that reached the gate.
    pub entered: usize,
    /// Syncs that passed the gate and returned.
    pub finished: usize,
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

    /// How many syncs passed the gate and returned.
    pub fn finished(&self) -> usize {
        self.gate.lock().unwrap().finished
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
                _ if gate
                    .pass_only
                    .as_ref()
                    .is_some_and(|pass| !pass.contains(&me)) => {}
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

/// Writes made and not yet synced, of one file, in the order they were
/// made, each numbered.
#[derive(Default)]
struct PendingWrites {
    writes: Vec<(u64, u64, Vec<u8>)>,
    next_number: u64,
}

type Pending = Arc<Mutex<PendingWrites>>;

/// The storage: [`OsStorage`] with every file's writes held until synced.
pub struct GatedStorage {
    inner: OsStorage,
    faults: Arc<Faults>,
    /// The pending writes of each file, by inode number.
    pending: Arc<Mutex<HashMap<u64, Pending>>>,
}

pub struct GatedFile {
    inner: OsFile,
    pending: Pending,
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
            pending: Arc::default(),
        };
        (storage, faults)
    }

    /// `inner`, just opened as `name` (`created`: a new file), sharing the
    /// pending writes of every other handle of its inode. A new file has
    /// none: its inode number may be a removed file's.
    fn wrap(&self, name: &str, inner: OsFile, created: bool) -> io::Result<GatedFile> {
        let inode = std::fs::metadata(self.inner.path_of(name))?.ino();
        let mut pending = self.pending.lock().unwrap();
        if created {
            pending.insert(inode, Pending::default());
        }
        let pending = Arc::clone(pending.entry(inode).or_default());
        Ok(GatedFile {
            inner,
            pending,
            faults: Arc::clone(&self.faults),
        })
    }
}

impl Storage for GatedStorage {
    type File = GatedFile;
    fn list(&self) -> io::Result<Vec<DirectoryEntry>> {
        self.inner.list()
    }
    fn create(&self, name: &str) -> io::Result<GatedFile> {
        let file = self.inner.create(name)?;
        self.wrap(name, file, true)
    }
    fn open(&self, name: &str, writable: bool) -> io::Result<GatedFile> {
        let file = self.inner.open(name, writable)?;
        self.wrap(name, file, false)
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
        let pending = Arc::clone(&self.pending);
        Ok(Self {
            inner,
            faults,
            pending,
        })
    }
}

impl GatedFile {
    /// Makes durable every write numbered below `covered` not yet durable
    /// (or, when the sync `failed`, drops them, as a failed writeback does),
    /// in the order they were made. A sync that passes the gate after a
    /// later one finds nothing left of its writes: it never puts older
    /// bytes over newer ones already durable.
    fn settle(&self, covered: u64, failed: bool, skip_fsync: bool) -> io::Result<()> {
        let mut pending = self.pending.lock().unwrap();
        let settled = pending.writes.iter().take_while(|w| w.0 < covered).count();
        for (_, offset, bytes) in pending.writes.drain(..settled) {
            if !failed {
                self.inner.write_at(offset, &bytes)?;
            }
        }
        drop(pending);
        if failed {
            return Err(io::Error::other("injected fdatasync failure"));
        }
        if skip_fsync {
            return Ok(());
        }
        self.inner.sync_data()
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
        let mut pending = self.pending.lock().unwrap();
        let number = pending.next_number;
        pending.next_number += 1;
        pending.writes.push((number, offset, bytes.to_vec()));
        Ok(())
    }
    fn read_at(&self, offset: u64, length: usize) -> io::Result<Cow<'_, [u8]>> {
        self.inner.read_at(offset, length)
    }
    fn sync_data(&self) -> io::Result<()> {
        // What this sync covers is fixed when it starts, as with fdatasync:
        // every write made before it.
        let covered = self.pending.lock().unwrap().next_number;
        let pass = self.faults.pass_gate();
        let synced = self.settle(covered, pass.fail, pass.skip_fsync);
        self.faults.set(|gate| gate.finished += 1);
        synced
    }
}
