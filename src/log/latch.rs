//! [`LatchedStorage`]: the one fail-stop latch. A [`Storage`] wrapper (as
//! redb's checked storage) that every write, allocation, write-back, sync,
//! create, rename, remove and directory sync of a handle passes — segments,
//! hard state, snapshots, directories — remembering the first that failed.
//! After it, every mutating call fails without being tried, and the owners
//! (the engine, the openraft stores, group commit) only read the latch.
//!
//! Why fail-stop (fault model item 4): Linux reports a page's writeback
//! error to one `fdatasync` per open file description and marks the page
//! clean either way. A sync made after a failed one can return success for
//! pages the failed one dropped, and two syncs of one file running at once
//! can split an error between them: one reports it, the other returns
//! success. A write-back ([`StorageFile::write_back`]) reports and uses up
//! those errors too, and a failed start of one
//! ([`StorageFile::start_write_back`]) may stand for pages lost for good. So
//! syncs and write-backs on one file description never overlap (group
//! commit syncs the tail outside the owner's lock while a rollover or
//! truncation may sync the same file under it; a second sync in flight runs
//! on a description of its own, see [`super::SyncDescription`]), and once
//! any call failed, nothing is tried again: a failed sync is never retried
//! into a false success. Reopening the directory is the way back.
//!
//! The latched error stays typed: [`Error::Io`] or [`Error::NoSpace`] with
//! the operation and the file's path (as renamed since it was created).
//! The error the failing call returns is that same error; every later call
//! returns [`Error::Failed`] naming it. Both reach the caller through
//! [`Error::io`], which recognises an [`io::Error`] coming out of this
//! wrapper, so call sites map errors as they always did.
//!
//! Reads (`list`, `open`, `read_at`, `len`) are not latched: they change
//! nothing, and a failed one leaves nothing behind that a later call could
//! trust wrongly. Nor is removing a temporary file (see
//! [`LatchedStorage::remove`]).

use std::borrow::Cow;
use std::fmt;
use std::io;
use std::path::PathBuf;
use std::sync::{Arc, Mutex, OnceLock, PoisonError, RwLock, TryLockError, Weak};

use crate::error::{Error, LatchedFailure, Result};
use crate::format::{HARD_STATE_FILE_NAME, SEGMENT_FILE_PREFIX, TEMPORARY_FILE_SUFFIX};
use crate::io::{DirectoryEntry, Storage, StorageFile};

/// The first storage failure of a handle, shared by its storage and every
/// file opened through it.
///
/// Invariant: set at most once; no mutating call reaches the inner storage
/// after it is set.
#[derive(Debug, Default)]
pub struct Latch {
    first_failure: OnceLock<Arc<Error>>,
}

impl Latch {
    /// The failure that stopped the handle, if any.
    pub fn failure(&self) -> Option<&Arc<Error>> {
        self.first_failure.get()
    }

    /// `Err(Error::Failed)` once a failure is latched.
    pub fn check(&self) -> Result<()> {
        match self.failure() {
            Some(cause) => Err(Error::Failed {
                cause: Arc::clone(cause),
            }),
            None => Ok(()),
        }
    }

    /// Stops the handle for a failure found outside the storage calls: an
    /// entry that is committed and durable but cannot be read back or
    /// applied (the state behind it can then never catch up, as reopening
    /// would refuse too). Refusals — invalid input, replication safety,
    /// truncated entries — and a failure already latched are not failures
    /// of the handle and are ignored.
    pub fn stop(&self, error: &Error) {
        let refusal = matches!(
            error,
            Error::InvalidInput(_)
                | Error::Replication(_)
                | Error::NotLeader { .. }
                | Error::Truncated { .. }
                | Error::Failed { .. }
        );
        if !refusal {
            let _ = self.first_failure.set(Arc::new(error.clone()));
        }
    }

    /// Refuses a mutating call once a failure is latched.
    fn refuse_if_failed(&self) -> io::Result<()> {
        match self.failure() {
            Some(cause) => Err(LatchedFailure::wrap(Arc::clone(cause), false)),
            None => Ok(()),
        }
    }

    /// Runs a mutating call unless a failure is latched, latching its error
    /// as `operation` on `path`.
    fn run<T>(
        &self,
        operation: &'static str,
        path: impl FnOnce() -> PathBuf,
        call: impl FnOnce() -> io::Result<T>,
    ) -> io::Result<T> {
        self.refuse_if_failed()?;
        call().map_err(|error| {
            let typed = Arc::new(Error::io(operation, path(), error));
            let first = self.first_failure.set(Arc::clone(&typed)).is_ok();
            let latched = self.first_failure.get().map_or(typed, Arc::clone);
            LatchedFailure::wrap(latched, first)
        })
    }
}

/// What a file is, for naming a failed operation on it.
#[derive(Debug, Clone, Copy)]
enum FileKind {
    Segment,
    HardState,
    Snapshot,
    Other,
}

impl FileKind {
    fn of(name: &str) -> Self {
        if name.starts_with(SEGMENT_FILE_PREFIX) {
            FileKind::Segment
        } else if name.starts_with(HARD_STATE_FILE_NAME) {
            FileKind::HardState
        } else if name.starts_with("snapshot") {
            // The engine's `snapshot-<index_end>` and the openraft state
            // machine's `snapshot`, with their temporary files.
            FileKind::Snapshot
        } else {
            FileKind::Other
        }
    }
}

/// A mutating operation on a file.
#[derive(Debug, Clone, Copy)]
enum FileOperation {
    Create,
    Allocate,
    Write,
    WriteBack,
    Sync,
    Rename,
    Remove,
}

impl FileOperation {
    /// The operation's name in errors, e.g. `"fdatasync segment"`.
    fn describe(self, kind: FileKind) -> &'static str {
        macro_rules! on {
            ($verb:literal) => {
                match kind {
                    FileKind::Segment => concat!($verb, " segment"),
                    FileKind::HardState => concat!($verb, " hard state"),
                    FileKind::Snapshot => concat!($verb, " snapshot"),
                    FileKind::Other => concat!($verb, " file"),
                }
            };
        }
        match self {
            FileOperation::Create => on!("create"),
            FileOperation::Allocate => on!("allocate"),
            FileOperation::Write => on!("write"),
            FileOperation::WriteBack => on!("write back"),
            FileOperation::Sync => on!("fdatasync"),
            FileOperation::Rename => on!("rename"),
            FileOperation::Remove => on!("remove"),
        }
    }
}

/// The path shown for a file; a rename through the storage updates it.
type SharedPath = Arc<RwLock<PathBuf>>;

/// A [`Storage`] whose mutating calls pass one [`Latch`].
#[derive(Debug)]
pub struct LatchedStorage<S: Storage> {
    inner: Arc<S>,
    latch: Arc<Latch>,
    /// The paths of the files created through this storage and still open,
    /// so that a rename (temporary name to final name) shows in their errors.
    created: Mutex<Vec<Weak<RwLock<PathBuf>>>>,
}

impl<S: Storage> LatchedStorage<S> {
    /// Wraps `inner`, with no failure latched yet.
    pub fn new(inner: S) -> Self {
        Self::shared(Arc::new(inner))
    }

    /// Wraps `inner`, which others hold too, with no failure latched yet.
    pub fn shared(inner: Arc<S>) -> Self {
        Self {
            inner,
            latch: Arc::default(),
            created: Mutex::default(),
        }
    }

    /// The latch: what every owner reads.
    pub fn latch(&self) -> &Latch {
        &self.latch
    }

    /// The latch, to share with those who only read it.
    pub(crate) fn shared_latch(&self) -> Arc<Latch> {
        Arc::clone(&self.latch)
    }

    /// The storage underneath, which no latch guards. Only for work whose
    /// failure cannot affect an acknowledged byte (see
    /// [`super::spare_segment`]).
    pub(crate) fn unlatched(&self) -> &Arc<S> {
        &self.inner
    }

    /// Takes `file`, opened or created as `name` through
    /// [`Self::unlatched`], under the latch.
    pub(crate) fn adopt(&self, file: S::File, name: &str) -> LatchedFile<S::File> {
        let path = Arc::new(RwLock::new(self.inner.path_of(name)));
        self.remember_created(&path);
        LatchedFile::new(file, Arc::clone(&self.latch), path, FileKind::of(name))
    }

    fn remember_created(&self, path: &SharedPath) {
        let mut created = self.created.lock().unwrap_or_else(PoisonError::into_inner);
        created.retain(|p| p.strong_count() > 0);
        created.push(Arc::downgrade(path));
    }

    /// Points the open files created as `from` at `to`.
    fn follow_rename(&self, from: &str, to: &str) {
        let (from, to) = (self.inner.path_of(from), self.inner.path_of(to));
        let mut created = self.created.lock().unwrap_or_else(PoisonError::into_inner);
        created.retain(|p| p.strong_count() > 0);
        for path in created.iter().filter_map(Weak::upgrade) {
            let mut path = path.write().unwrap_or_else(PoisonError::into_inner);
            if *path == from {
                path.clone_from(&to);
            }
        }
    }

    fn run_on<T>(
        &self,
        operation: FileOperation,
        name: &str,
        call: impl FnOnce() -> io::Result<T>,
    ) -> io::Result<T> {
        let describe = operation.describe(FileKind::of(name));
        self.latch.run(describe, || self.inner.path_of(name), call)
    }
}

impl<S: Storage> Storage for LatchedStorage<S> {
    type File = LatchedFile<S::File>;

    fn list(&self) -> io::Result<Vec<DirectoryEntry>> {
        self.inner.list()
    }

    fn directory_mode(&self) -> io::Result<Option<u32>> {
        self.inner.directory_mode()
    }

    fn create(&self, name: &str) -> io::Result<Self::File> {
        let file = self.run_on(FileOperation::Create, name, || self.inner.create(name))?;
        Ok(self.adopt(file, name))
    }

    fn open(&self, name: &str, writable: bool) -> io::Result<Self::File> {
        let file = self.inner.open(name, writable)?;
        let path = Arc::new(RwLock::new(self.inner.path_of(name)));
        Ok(LatchedFile::new(
            file,
            Arc::clone(&self.latch),
            path,
            FileKind::of(name),
        ))
    }

    fn rename(&self, from: &str, to: &str) -> io::Result<()> {
        self.run_on(FileOperation::Rename, from, || self.inner.rename(from, to))?;
        self.follow_rename(from, to);
        Ok(())
    }

    /// A temporary file (`*.tmp`) is removed around the latch, before and
    /// after a failure alike: it holds nothing acknowledged (a crash leaves
    /// it to recovery anyway), so removing it cannot make anything the node
    /// relies on untrue — it is how a creation that failed cleans up after
    /// itself (no multi-megabyte temporary left behind), and a removal that
    /// fails (one that was never there, say) changes nothing anyone reads.
    fn remove(&self, name: &str) -> io::Result<()> {
        if name.ends_with(TEMPORARY_FILE_SUFFIX) {
            return self.inner.remove(name);
        }
        self.run_on(FileOperation::Remove, name, || self.inner.remove(name))
    }

    fn sync_directory(&self) -> io::Result<()> {
        let path = || self.inner.path_of("");
        self.latch
            .run("fsync directory", path, || self.inner.sync_directory())
    }

    fn path_of(&self, name: &str) -> PathBuf {
        self.inner.path_of(name)
    }

    /// The subdirectory under this storage's latch: a failure in either
    /// stops both. A failed creation or sync of it is latched; a lock held
    /// by another handle is not a failure of this one.
    fn open_subdirectory(&self, name: &str) -> Result<Self> {
        self.latch.check()?;
        let inner = self.inner.open_subdirectory(name).inspect_err(|error| {
            if matches!(error, Error::Io { .. } | Error::NoSpace { .. }) {
                self.latch.stop(error);
            }
        })?;
        Ok(Self {
            inner: Arc::new(inner),
            latch: Arc::clone(&self.latch),
            created: Mutex::default(),
        })
    }

    fn allows_background_work(&self) -> bool {
        self.inner.allows_background_work()
    }
}

/// A file description whose mutating calls pass its storage's [`Latch`],
/// and whose syncs never overlap.
pub struct LatchedFile<F> {
    inner: Arc<F>,
    latch: Arc<Latch>,
    path: SharedPath,
    kind: FileKind,
    /// Held for the length of each `sync_data`.
    syncing: Mutex<()>,
}

impl<F> fmt::Debug for LatchedFile<F> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("LatchedFile")
            .field(
                "path",
                &*self.path.read().unwrap_or_else(PoisonError::into_inner),
            )
            .finish_non_exhaustive()
    }
}

impl<F: StorageFile> LatchedFile<F> {
    fn new(inner: F, latch: Arc<Latch>, path: SharedPath, kind: FileKind) -> Self {
        Self {
            inner: Arc::new(inner),
            latch,
            path,
            kind,
            syncing: Mutex::new(()),
        }
    }

    /// The file underneath, for readers that only read it (operator tools
    /// copying or walking segments): reads are not latched anyway.
    pub(crate) fn unlatched(&self) -> Arc<F> {
        Arc::clone(&self.inner)
    }

    fn run<T>(
        &self,
        operation: FileOperation,
        call: impl FnOnce() -> io::Result<T>,
    ) -> io::Result<T> {
        let path = || {
            let path = self.path.read().unwrap_or_else(PoisonError::into_inner);
            path.clone()
        };
        self.latch.run(operation.describe(self.kind), path, call)
    }
}

impl<F: StorageFile> StorageFile for LatchedFile<F> {
    fn len(&self) -> io::Result<u64> {
        self.inner.len()
    }

    fn allocate(&self, length_bytes: u64) -> io::Result<()> {
        self.run(FileOperation::Allocate, || {
            self.inner.allocate(length_bytes)
        })
    }

    fn write_at(&self, offset: u64, bytes: &[u8]) -> io::Result<()> {
        self.run(FileOperation::Write, || self.inner.write_at(offset, bytes))
    }

    fn read_at(&self, offset: u64, length: usize) -> io::Result<Cow<'_, [u8]>> {
        self.inner.read_at(offset, length)
    }

    /// A failed write-back latches as a failed sync does: the pages it
    /// could not write may be gone from the cache, and the error it
    /// reported no later sync reports again. Like a sync, it waits for any
    /// sync of this file in progress, so the two cannot split an error.
    fn write_back(&self, offset: u64, length: u64) -> io::Result<()> {
        let _one_at_a_time = self.syncing.lock().unwrap_or_else(PoisonError::into_inner);
        self.run(FileOperation::WriteBack, || {
            self.inner.write_back(offset, length)
        })
    }

    /// A failed start of a write-back latches as a failed write-back does,
    /// and it never overlaps a sync of this file, as a write-back does not:
    /// an implementation may report a writeback error through it. While a
    /// sync of this file is in progress it does nothing: that sync writes
    /// the pages already, and waiting for it would hold the caller (a
    /// group-commit leader, under its owner's lock) for a whole sync.
    fn start_write_back(&self, offset: u64, length: u64) -> io::Result<()> {
        let _one_at_a_time = match self.syncing.try_lock() {
            Ok(guard) => guard,
            Err(TryLockError::Poisoned(poisoned)) => poisoned.into_inner(),
            Err(TryLockError::WouldBlock) => return Ok(()),
        };
        self.run(FileOperation::WriteBack, || {
            self.inner.start_write_back(offset, length)
        })
    }

    /// `fdatasync`, after any sync of this file in progress, unless a
    /// failure is latched by then.
    fn sync_data(&self) -> io::Result<()> {
        let _one_at_a_time = self.syncing.lock().unwrap_or_else(PoisonError::into_inner);
        self.run(FileOperation::Sync, || self.inner.sync_data())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::io::{LockMode, OsFile, OsStorage};
    use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};

    /// Faults and call counts shared by a [`Scripted`] storage and its files.
    #[derive(Default)]
    struct Script {
        /// The next call with this name fails with this OS error.
        fail: Mutex<Option<(&'static str, i32)>>,
        /// Mutating calls that reached the storage.
        calls: AtomicUsize,
        syncing: AtomicBool,
        overlapped: AtomicBool,
    }

    impl Script {
        fn call(&self, name: &'static str) -> io::Result<()> {
            self.calls.fetch_add(1, Ordering::SeqCst);
            let mut fail = self.fail.lock().unwrap();
            if fail.is_some_and(|(chosen, _)| chosen == name) {
                let (_, errno) = fail.take().unwrap();
                return Err(io::Error::from_raw_os_error(errno));
            }
            Ok(())
        }
    }

    /// Real files, with one scripted failure and a count of mutating calls.
    struct Scripted {
        inner: OsStorage,
        script: Arc<Script>,
    }

    struct ScriptedFile {
        inner: OsFile,
        script: Arc<Script>,
    }

    impl Storage for Scripted {
        type File = ScriptedFile;
        fn list(&self) -> io::Result<Vec<DirectoryEntry>> {
            self.inner.list()
        }
        fn create(&self, name: &str) -> io::Result<ScriptedFile> {
            self.script.call("create")?;
            let inner = self.inner.create(name)?;
            let script = Arc::clone(&self.script);
            Ok(ScriptedFile { inner, script })
        }
        fn open(&self, name: &str, writable: bool) -> io::Result<ScriptedFile> {
            let inner = self.inner.open(name, writable)?;
            let script = Arc::clone(&self.script);
            Ok(ScriptedFile { inner, script })
        }
        fn rename(&self, from: &str, to: &str) -> io::Result<()> {
            self.script.call("rename")?;
            self.inner.rename(from, to)
        }
        fn remove(&self, name: &str) -> io::Result<()> {
            self.script.call("remove")?;
            self.inner.remove(name)
        }
        fn sync_directory(&self) -> io::Result<()> {
            self.script.call("sync_directory")?;
            self.inner.sync_directory()
        }
        fn path_of(&self, name: &str) -> PathBuf {
            self.inner.path_of(name)
        }
        fn open_subdirectory(&self, name: &str) -> Result<Self> {
            let inner = self.inner.open_subdirectory(name)?;
            let script = Arc::clone(&self.script);
            Ok(Scripted { inner, script })
        }
    }

    impl StorageFile for ScriptedFile {
        fn len(&self) -> io::Result<u64> {
            self.inner.len()
        }
        fn allocate(&self, length_bytes: u64) -> io::Result<()> {
            self.script.call("allocate")?;
            self.inner.allocate(length_bytes)
        }
        fn write_at(&self, offset: u64, bytes: &[u8]) -> io::Result<()> {
            self.script.call("write_at")?;
            self.inner.write_at(offset, bytes)
        }
        fn read_at(&self, offset: u64, length: usize) -> io::Result<Cow<'_, [u8]>> {
            self.inner.read_at(offset, length)
        }
        fn sync_data(&self) -> io::Result<()> {
            if self.script.syncing.swap(true, Ordering::SeqCst) {
                self.script.overlapped.store(true, Ordering::SeqCst);
            }
            std::thread::sleep(std::time::Duration::from_millis(2));
            self.script.syncing.store(false, Ordering::SeqCst);
            self.script.call("sync_data")?;
            self.inner.sync_data()
        }
        fn write_back(&self, offset: u64, length: u64) -> io::Result<()> {
            self.script.call("write_back")?;
            self.inner.write_back(offset, length)
        }
        fn start_write_back(&self, offset: u64, length: u64) -> io::Result<()> {
            self.script.call("start_write_back")?;
            self.inner.start_write_back(offset, length)
        }
    }

    fn scripted(dir: &std::path::Path) -> (LatchedStorage<Scripted>, Arc<Script>) {
        let inner = OsStorage::open(dir, LockMode::Exclusive).unwrap();
        let script = Arc::new(Script::default());
        let storage = Scripted {
            inner,
            script: Arc::clone(&script),
        };
        (LatchedStorage::new(storage), script)
    }

    /// Every mutating call, on `storage` and on its file `file`.
    fn every_mutating_call(
        storage: &LatchedStorage<Scripted>,
        file: &LatchedFile<ScriptedFile>,
    ) -> [(&'static str, io::Result<()>); 9] {
        [
            ("create", storage.create("segment-new.tmp").map(drop)),
            ("allocate", file.allocate(8192)),
            ("write_at", file.write_at(0, b"bytes")),
            ("start_write_back", file.start_write_back(0, 5)),
            ("write_back", file.write_back(0, 5)),
            ("sync_data", file.sync_data()),
            ("rename", storage.rename("hardstate", "hardstate.moved")),
            ("remove", storage.remove("hardstate.moved")),
            ("sync_directory", storage.sync_directory()),
        ]
    }

    #[test]
    fn latched_storage_refuses_every_mutating_call_after_any_failure() {
        // Goal: whichever mutating call fails first, it returns the typed
        // error, which is latched, and every later mutating call — on any
        // file or the directory — fails with `Failed` naming it without
        // reaching the storage; reads still work. Method: for each of the
        // nine calls, a fresh directory; script that call to fail with EIO,
        // run all nine, then all nine again, counting the calls that got
        // through.
        for failing in [
            "create",
            "allocate",
            "write_at",
            "start_write_back",
            "write_back",
            "sync_data",
            "rename",
            "remove",
        ]
        .into_iter()
        .chain(["sync_directory"])
        {
            let dir = tempfile::tempdir().unwrap();
            let (storage, script) = scripted(dir.path());
            let file = storage.create("hardstate").unwrap();
            *script.fail.lock().unwrap() = Some((failing, 5));
            let first = every_mutating_call(&storage, &file);
            let (_, failed) = first
                .into_iter()
                .find(|(name, _)| *name == failing)
                .unwrap();
            let error = failed.expect_err(failing);
            let returned = Error::io("caller's name", "caller's path", error);
            let latched = storage.latch().failure().expect("latched").clone();
            assert!(
                matches!(&*latched, Error::Io { .. }),
                "{failing}: {latched:?}"
            );
            assert_eq!(returned.to_string(), latched.to_string(), "{failing}");
            let calls = script.calls.load(Ordering::SeqCst);
            for (name, result) in every_mutating_call(&storage, &file) {
                let error = result.expect_err(name);
                let typed = Error::io("caller's name", "caller's path", error);
                assert!(
                    matches!(&typed, Error::Failed { cause } if Arc::ptr_eq(cause, &latched)),
                    "{failing} then {name}: {typed:?}"
                );
            }
            assert_eq!(script.calls.load(Ordering::SeqCst), calls, "{failing}");
            assert_eq!(&*file.read_at(0, 0).unwrap(), b"");
        }
    }

    #[test]
    fn latched_file_failure_is_typed_with_its_current_path() {
        // Goal: the latched error names the operation and the file as it is
        // named now (a segment installed from a temporary name), and a full
        // disk stays `NoSpace`. Method: create a temporary file, rename it
        // to a segment name, fail its sync with EIO; on another directory,
        // fail an allocation with ENOSPC.
        let dir = tempfile::tempdir().unwrap();
        let (storage, script) = scripted(dir.path());
        let file = storage.create("segment-spare.tmp").unwrap();
        storage.rename("segment-spare.tmp", "segment-7").unwrap();
        *script.fail.lock().unwrap() = Some(("sync_data", 5));
        let error = Error::io(
            "caller's name",
            "caller's path",
            file.sync_data().unwrap_err(),
        );
        match error {
            Error::Io {
                operation, path, ..
            } => {
                assert_eq!(operation, "fdatasync segment");
                assert_eq!(path, dir.path().join("segment-7"));
            }
            other => panic!("{other:?}"),
        }
        let dir = tempfile::tempdir().unwrap();
        let (storage, script) = scripted(dir.path());
        let file = storage.create("hardstate.tmp").unwrap();
        *script.fail.lock().unwrap() = Some(("allocate", 28));
        let error = Error::io(
            "caller's name",
            "caller's path",
            file.allocate(4096).unwrap_err(),
        );
        assert!(
            matches!(&error, Error::NoSpace { path } if *path == dir.path().join("hardstate.tmp")),
            "{error:?}"
        );
        assert!(matches!(
            storage.latch().failure().map(|e| &**e),
            Some(Error::NoSpace { .. })
        ));
    }

    #[test]
    fn latched_file_syncs_never_overlap() {
        // Goal: two syncs of one file never run at once (a writeback error
        // could otherwise be reported to one and hidden from the other).
        // Method: eight threads sync one file 20 times each; the inner file
        // notes any sync that starts while another is in progress.
        let dir = tempfile::tempdir().unwrap();
        let (storage, script) = scripted(dir.path());
        let file = Arc::new(storage.create("segment-1").unwrap());
        let threads: Vec<_> = (0..8)
            .map(|_| {
                let file = Arc::clone(&file);
                std::thread::spawn(move || (0..20).for_each(|_| file.sync_data().unwrap()))
            })
            .collect();
        for thread in threads {
            thread.join().unwrap();
        }
        assert!(!script.overlapped.load(Ordering::SeqCst));
    }

    #[test]
    fn a_started_write_back_skips_a_sync_in_progress() {
        // Goal: starting a write-back never waits for a sync of the same
        // file (a group-commit leader starts one under its owner's lock,
        // beside a sync in flight) and never overlaps it either: it does
        // nothing then. Method: hold the file's sync lock as a sync in
        // progress does; start a write-back from another thread, which must
        // return at once without reaching the file; release, and the next
        // one reaches it.
        let dir = tempfile::tempdir().unwrap();
        let (storage, script) = scripted(dir.path());
        let file = Arc::new(storage.create("segment-1").unwrap());
        let calls = || script.calls.load(Ordering::SeqCst);
        let syncing = file.syncing.lock().unwrap();
        let before = calls();
        let (sender, receiver) = std::sync::mpsc::channel();
        let starter = Arc::clone(&file);
        std::thread::spawn(move || sender.send(starter.start_write_back(0, 5)).unwrap());
        let started = receiver.recv_timeout(std::time::Duration::from_secs(10));
        assert!(
            matches!(started, Ok(Ok(()))),
            "waited for the sync: {started:?}"
        );
        assert_eq!(calls(), before, "overlapped the sync in progress");
        drop(syncing);
        file.start_write_back(0, 5).unwrap();
        assert_eq!(calls(), before + 1);
    }

    #[test]
    fn latch_stop_ignores_refusals() {
        // Goal: only a failure of the handle stops it, never a refusal of
        // input. Method: offer an invalid input, then a corruption.
        let latch = Latch::default();
        latch.stop(&Error::InvalidInput(crate::error::InvalidInput::EmptyEntry));
        assert!(latch.check().is_ok());
        let damage = Error::corruption("f", 0, Some(3), crate::error::CorruptionKind::BadMagic);
        latch.stop(&damage);
        assert!(matches!(latch.check(), Err(Error::Failed { .. })));
    }
}
