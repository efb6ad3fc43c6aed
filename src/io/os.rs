//! [`OsStorage`]: the real file system behind the io seam.

use std::borrow::Cow;
use std::fs::{self, File};
use std::io;
use std::os::fd::AsRawFd;
use std::os::unix::fs::{FileExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::sync::OnceLock;

use memmap2::Mmap;

use super::private::directory_mode;
use super::{
    create_private_directory, create_private_file, not_a_regular_file, open_regular_file,
    sync_directory, DirectoryEntry, FileKind, Storage, StorageFile,
};
use crate::error::{Error, Result};

/// The name of the lock file inside a data directory. It holds no data; its
/// `flock` says who owns the directory.
pub const LOCK_FILE_NAME: &str = "LOCK";

/// How a handle holds the data directory.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LockMode {
    /// The one writer. Refused while any other handle holds the directory.
    Exclusive,
    /// A reader (inspection tools). Refused while a writer holds it.
    Shared,
}

/// A data directory on the real file system, locked for as long as this value
/// lives (the lock is released when it is dropped or the process dies).
#[derive(Debug)]
pub struct OsStorage {
    root: PathBuf,
    /// How the directory is held; a [`LockMode::Shared`] handle refuses
    /// every call that would change the directory.
    mode: LockMode,
    /// Holds the `flock`; never read, only kept open (and unlocked on drop).
    /// `None` only for a shared handle on a directory without a lock file
    /// (see [`OsStorage::open`]).
    lock: Option<File>,
}

impl OsStorage {
    /// Opens (creating it durably if missing, in [`LockMode::Exclusive`]) the
    /// directory `root` and locks it. A second opener gets
    /// [`Error::DirectoryLocked`] at once; it never waits. A directory this
    /// creates, and each missing parent, is private (0700) whatever the
    /// umask (see [`create_private_directory`]); so is the lock file (0600).
    /// The lock file must be a regular file: anything else under its name
    /// is [`Error::NotARegularFile`], at once.
    ///
    /// A [`LockMode::Shared`] handle never writes: it opens the lock file
    /// read-only, and every [`Storage`] call that would change the directory
    /// fails with `PermissionDenied`. If the directory has no lock file (it
    /// was copied without one, or written by hand), no cpwal writer holds it,
    /// so the shared handle proceeds unlocked rather than create one; a
    /// writer that starts afterwards is then not kept out.
    pub fn open(root: impl AsRef<Path>, mode: LockMode) -> Result<Self> {
        let root = root.as_ref().to_path_buf();
        if mode == LockMode::Exclusive {
            if root.symlink_metadata().is_err() {
                create_private_directory(&root)
                    .map_err(|e| Error::io("create directory", &root, e))?;
            }
            // Whether this process created the directory or an earlier one
            // did and was killed before syncing the parent, the directory's
            // own entry must be durable before anything in it is trusted.
            let parent = root
                .parent()
                .filter(|p| !p.as_os_str().is_empty())
                .unwrap_or(Path::new("."));
            sync_directory(parent).map_err(|e| Error::io("fsync directory", parent, e))?;
        }
        let lock_path = root.join(LOCK_FILE_NAME);
        let lock = match open_lock_file(&lock_path, mode) {
            Ok(lock) => lock,
            Err(e) if mode == LockMode::Shared && e.kind() == io::ErrorKind::NotFound => {
                if !root.is_dir() {
                    return Err(Error::io("open directory", &root, e));
                }
                return Ok(Self {
                    root,
                    mode,
                    lock: None,
                });
            }
            Err(e) => return Err(Error::io("open lock file", &lock_path, e)),
        };
        let locked = match mode {
            LockMode::Exclusive => fs2::FileExt::try_lock_exclusive(&lock),
            LockMode::Shared => fs2::FileExt::try_lock_shared(&lock),
        };
        if let Err(e) = locked {
            if e.kind() == fs2::lock_contended_error().kind()
                || e.raw_os_error() == fs2::lock_contended_error().raw_os_error()
            {
                return Err(Error::DirectoryLocked { path: root });
            }
            return Err(Error::io("lock", &lock_path, e));
        }
        Ok(Self {
            root,
            mode,
            lock: Some(lock),
        })
    }

    /// Refuses a change to the directory through a shared (read-only) handle.
    fn check_writable(&self) -> io::Result<()> {
        match self.mode {
            LockMode::Exclusive => Ok(()),
            LockMode::Shared => Err(io::Error::new(
                io::ErrorKind::PermissionDenied,
                "the directory is open read-only (shared lock)",
            )),
        }
    }

    /// The directory this storage lives in.
    pub fn root(&self) -> &Path {
        &self.root
    }
}

impl Drop for OsStorage {
    /// Releases the lock explicitly rather than by closing the descriptor.
    /// A `flock` belongs to the open file description, which a child
    /// process forked meanwhile shares until it calls `exec` (or for good,
    /// if it never does); closing only this descriptor would leave the
    /// directory locked by the child, and a reopen in this process would
    /// fail with [`Error::DirectoryLocked`]. Unlocking through any
    /// descriptor releases it for all of them.
    fn drop(&mut self) {
        if let Some(lock) = &self.lock {
            let _ = fs2::FileExt::unlock(lock);
        }
    }
}

/// Opens the lock file as a regular file only (a FIFO named `LOCK` must not
/// block the open); a writer creates it, private, when it is missing.
fn open_lock_file(path: &Path, mode: LockMode) -> io::Result<File> {
    let writable = mode == LockMode::Exclusive;
    match open_regular_file(path, writable) {
        Err(e) if writable && e.kind() == io::ErrorKind::NotFound => {
            match create_private_file(path) {
                Err(e) if e.kind() == io::ErrorKind::AlreadyExists => {
                    open_regular_file(path, writable)
                }
                created => created,
            }
        }
        opened => opened,
    }
}

impl Storage for OsStorage {
    type File = OsFile;

    fn list(&self) -> io::Result<Vec<DirectoryEntry>> {
        let mut entries = Vec::new();
        for entry in fs::read_dir(&self.root)? {
            let entry = entry?;
            // `DirEntry::metadata` does not follow a symbolic link.
            let metadata = match entry.metadata() {
                Err(e) if e.kind() == io::ErrorKind::NotFound => continue, // Gone since.
                metadata => metadata?,
            };
            entries.push(DirectoryEntry {
                name: entry.file_name(),
                kind: FileKind::of(metadata.file_type()),
                mode: Some(metadata.permissions().mode() & 0o7777),
            });
        }
        Ok(entries)
    }

    fn directory_mode(&self) -> io::Result<Option<u32>> {
        directory_mode(&self.root).map(Some)
    }

    fn create(&self, name: &str) -> io::Result<OsFile> {
        self.check_writable()?;
        create_private_file(&self.root.join(name)).map(OsFile::new)
    }

    fn open(&self, name: &str, writable: bool) -> io::Result<OsFile> {
        if writable {
            self.check_writable()?;
        }
        open_regular_file(&self.root.join(name), writable).map(OsFile::new)
    }

    fn rename(&self, from: &str, to: &str) -> io::Result<()> {
        self.check_writable()?;
        fs::rename(self.root.join(from), self.root.join(to))
    }

    fn remove(&self, name: &str) -> io::Result<()> {
        self.check_writable()?;
        let path = self.root.join(name);
        let kind = FileKind::of(path.symlink_metadata()?.file_type());
        if kind != FileKind::RegularFile {
            return Err(not_a_regular_file(kind));
        }
        fs::remove_file(path)
    }

    fn sync_directory(&self) -> io::Result<()> {
        self.check_writable()?;
        sync_directory(&self.root)
    }

    fn path_of(&self, name: &str) -> PathBuf {
        self.root.join(name)
    }

    /// [`OsStorage::open`] on `root/name`, in this handle's lock mode: the
    /// subdirectory has its own lock file.
    fn open_subdirectory(&self, name: &str) -> Result<Self> {
        OsStorage::open(self.root.join(name), self.mode)
    }

    fn allows_background_work(&self) -> bool {
        self.mode == LockMode::Exclusive
    }
}

/// A real file. Reads are served from a read-only shared memory map of the
/// file, made on first read; writes go through `pwrite`, which the page cache
/// keeps coherent with the map.
#[derive(Debug)]
pub struct OsFile {
    file: File,
    map: OnceLock<Option<Mmap>>,
    /// Whether `sync_file_range` is accepted for this file, probed once
    /// (see `write_back_with`).
    ranges_accepted: OnceLock<bool>,
}

impl OsFile {
    fn new(file: File) -> Self {
        Self {
            file,
            map: OnceLock::new(),
            ranges_accepted: OnceLock::new(),
        }
    }

    /// `sync_file_range` with no flags, which does nothing: refused exactly
    /// where the call is (a seccomp filter, no such call, not a regular
    /// file), and touching no writeback error. Asked once per file.
    fn probe_ranges(&self) -> io::Result<()> {
        let accepted = *self
            .ranges_accepted
            .get_or_init(|| sync_file_range(&self.file, 0, 0, 0).is_ok());
        if accepted {
            Ok(())
        } else {
            Err(io::ErrorKind::Unsupported.into())
        }
    }

    fn mapping(&self) -> Option<&Mmap> {
        self.map
            .get_or_init(|| {
                let length = self.file.metadata().ok()?.len();
                if length == 0 {
                    return None;
                }
                // SAFETY: the map is read-only and shared; cpwal never writes
                // through it. What makes reading it sound:
                // * No access past the file's end (SIGBUS): the map covers the
                //   file's length now, and cpwal never shrinks a file it has
                //   read — segments and the hard state are allocated in full
                //   before their first read, snapshots are written whole
                //   before theirs, and files are only removed or replaced
                //   whole (the mapped inode outlives the unlink or rename).
                //   The directory lock keeps other cpwal processes out; a
                //   foreign process truncating the file is outside the fault
                //   model.
                // * No bytes change under a live borrow: files mapped here
                //   are also rewritten in place with `pwrite` (the hard state
                //   is saved over its own copies; a truncation zeroes records
                //   that were readable; appends fill the zeros after the
                //   log's end), which the page cache shows through the map at
                //   once. A slice handed out by `read_at` borrows the file,
                //   and each owner only writes a file through `&mut self`
                //   (`SegmentedLog`, `HardStateStore`) while its readers hold
                //   `&self`, so no write of a region runs while a slice of it
                //   is alive; every value read is validated (checksums, magic,
                //   lengths) before it is trusted.
                unsafe { Mmap::map(&self.file) }.ok()
            })
            .as_ref()
    }
}

impl StorageFile for OsFile {
    fn len(&self) -> io::Result<u64> {
        Ok(self.file.metadata()?.len())
    }

    /// Reserves the space with `posix_fallocate`, then writes real zeros
    /// over the bytes it added.
    ///
    /// `posix_fallocate` is called directly: it returns its error number
    /// rather than setting `errno`, and `fs2` 0.4 read `errno`, so a full
    /// disk came back as "Success (os error 0)" (or as a stale `EAGAIN` from
    /// another call on the same thread), never as `ENOSPC`.
    ///
    /// Why the zeros: `fallocate` leaves unwritten extents on ext4 (and XFS),
    /// and the first write into each such block turns it into a written
    /// extent, a metadata change that makes the following `fdatasync` commit
    /// the file system journal too. Measured here (`cargo bench --bench
    /// append`, disk in its fast regime): 64-entry batches appended into a
    /// zero-filled file synced 1.5x faster than into a fallocated one, 1024
    /// entries 2x; single small appends (mostly landing in a block already
    /// written) showed no difference. The price is one sequential write of
    /// each new segment when it is created.
    fn allocate(&self, length_bytes: u64) -> io::Result<()> {
        let old_length = self.len()?;
        if length_bytes > 0 {
            reserve(&self.file, length_bytes)?;
        }
        write_zeros(&self.file, old_length, length_bytes)
    }

    fn write_at(&self, offset: u64, bytes: &[u8]) -> io::Result<()> {
        self.file.write_all_at(bytes, offset)
    }

    fn read_at(&self, offset: u64, length: usize) -> io::Result<Cow<'_, [u8]>> {
        let end = offset
            .checked_add(length as u64)
            .ok_or_else(|| io::Error::from(io::ErrorKind::UnexpectedEof))?;
        if let Some(map) = self.mapping() {
            if end <= map.len() as u64 {
                return Ok(Cow::Borrowed(&map[offset as usize..end as usize]));
            }
        }
        if end > self.len()? {
            return Err(io::ErrorKind::UnexpectedEof.into());
        }
        let mut buffer = vec![0; length];
        self.file.read_exact_at(&mut buffer, offset)?;
        Ok(Cow::Owned(buffer))
    }

    fn sync_data(&self) -> io::Result<()> {
        self.file.sync_data()
    }

    /// `sync_file_range(WAIT_BEFORE | WRITE | WAIT_AFTER)`: starts the
    /// range's writeback and waits for it, with no cache flush. Where the
    /// call is refused (a seccomp filter, a kernel or emulation without it,
    /// not a regular file), an `fdatasync` does the job instead: slower for
    /// whoever shares the disk, never weaker (see `write_back_with` below).
    fn write_back(&self, offset: u64, length: u64) -> io::Result<()> {
        // Refused alike whether or not the call is available.
        to_off_t(offset.saturating_add(length))?;
        write_back_with(
            || self.probe_ranges(),
            || sync_file_range(&self.file, offset, length, WRITE_BACK_AND_WAIT),
            || self.file.sync_data(),
            length,
        )
    }

    /// `sync_file_range(WRITE)`: queues the range's dirty pages for
    /// writeback and returns. Where the call is refused it does nothing:
    /// the `fdatasync` that must follow writes whatever this did not. Its
    /// errors are judged by `judge_started_write_back`.
    fn start_write_back(&self, offset: u64, length: u64) -> io::Result<()> {
        // Refused alike whether or not the call is available.
        to_off_t(offset.saturating_add(length))?;
        if length == 0 || self.probe_ranges().is_err() {
            return Ok(());
        }
        judge_started_write_back(sync_file_range(
            &self.file,
            offset,
            length,
            START_WRITE_BACK,
        ))
    }
}

/// Reserves the blocks of `file` up to `length_bytes` (`posix_fallocate`;
/// `length_bytes` must not be 0), reporting a full disk as `ENOSPC` (or a
/// quota as `EDQUOT`), which [`Error::io`] makes [`Error::NoSpace`].
fn reserve(file: &File, length_bytes: u64) -> io::Result<()> {
    let length = to_off_t(length_bytes)?;
    // SAFETY: not a memory map, but one of the two other kinds of call cpwal
    // makes outside std (the other is `sync_file_range` in `write_back`):
    // `posix_fallocate` takes a descriptor and two integers and touches no
    // memory of ours. The descriptor is `file`'s, borrowed for the duration
    // of the call, so it is open and cannot be reused.
    let code = unsafe { libc::posix_fallocate(file.as_raw_fd(), 0, length) };
    match code {
        0 => Ok(()),
        error => Err(io::Error::from_raw_os_error(error)),
    }
}

/// `value` as a file offset or length, refused with `InvalidInput` where
/// `off_t` cannot hold it (rather than wrapped to a negative).
fn to_off_t(value: u64) -> io::Result<libc::off_t> {
    libc::off_t::try_from(value).map_err(|_| io::Error::from(io::ErrorKind::InvalidInput))
}

/// The flags of a write-back: wait for writeback already under way, start
/// it for every dirty page of the range, wait for it all.
#[cfg(target_os = "linux")]
const WRITE_BACK_AND_WAIT: u32 = libc::SYNC_FILE_RANGE_WAIT_BEFORE
    | libc::SYNC_FILE_RANGE_WRITE
    | libc::SYNC_FILE_RANGE_WAIT_AFTER;
#[cfg(not(target_os = "linux"))]
const WRITE_BACK_AND_WAIT: u32 = 0;

/// The flags of a write-back started and not waited for.
#[cfg(target_os = "linux")]
const START_WRITE_BACK: u32 = libc::SYNC_FILE_RANGE_WRITE;
#[cfg(not(target_os = "linux"))]
const START_WRITE_BACK: u32 = 0;

/// A write-back of `length` bytes (none: nothing to do; `sync_file_range`
/// would read a length of 0 as "to the end of the file").
///
/// `probe`, the call with no flags, is refused exactly where the call is
/// (a seccomp filter, no such call, not a regular file) and touches no
/// writeback error: only then does `fallback` (`fdatasync`) run. Once the
/// probe passed, every error of `range` is returned as it is. Judging by
/// the real call's errno instead would be wrong: with `WAIT_BEFORE` or
/// `WAIT_AFTER` it reports the file's writeback error with whatever errno
/// the file system gave it (a FUSE or network file system can fail a page
/// with `EPERM` or `EOPNOTSUPP`), and reporting it marks it seen, so an
/// `fdatasync` run after it would succeed over pages that were never
/// written.
fn write_back_with(
    probe: impl FnOnce() -> io::Result<()>,
    range: impl FnOnce() -> io::Result<()>,
    fallback: impl FnOnce() -> io::Result<()>,
    length: u64,
) -> io::Result<()> {
    if length == 0 {
        return Ok(());
    }
    match probe() {
        Ok(()) => range(),
        Err(_refused) => fallback(),
    }
}

/// What an error of a started write-back (`sync_file_range(WRITE)`, no
/// wait) means. The call only queues pages (`WB_SYNC_NONE`) and reports
/// none of the file's writeback errors, which stay for the sync. Where an
/// allocation fails it gives up with `ENOMEM` instead of retrying as a sync
/// does: it queued less than asked, and the sync that follows writes the
/// rest, so that error (and `EAGAIN` or `EINTR`, should a file system give
/// them) is no failure. Any other error may stand for pages lost for good
/// and is returned, to be latched as a failed sync.
fn judge_started_write_back(result: io::Result<()>) -> io::Result<()> {
    match result {
        Err(error)
            if matches!(
                error.raw_os_error(),
                Some(libc::ENOMEM | libc::EAGAIN | libc::EINTR)
            ) =>
        {
            Ok(())
        }
        other => other,
    }
}

/// `sync_file_range(file, offset, length, flags)`. Nothing becomes durable
/// by it: it writes no metadata and flushes no disk cache.
#[cfg(target_os = "linux")]
fn sync_file_range(file: &File, offset: u64, length: u64, flags: u32) -> io::Result<()> {
    let offset = libc::off64_t::from(to_off_t(offset)?);
    let length = libc::off64_t::from(to_off_t(length)?);
    // SAFETY: as for `posix_fallocate` in `reserve`: a descriptor and three
    // integers, no memory of ours. The descriptor is `file`'s, borrowed for
    // the duration of the call, so it is open and cannot be reused.
    let code = unsafe { libc::sync_file_range(file.as_raw_fd(), offset, length, flags) };
    match code {
        0 => Ok(()),
        _ => Err(io::Error::last_os_error()),
    }
}

/// Elsewhere there is no such call: every write-back falls back.
#[cfg(not(target_os = "linux"))]
fn sync_file_range(_file: &File, _offset: u64, _length: u64, _flags: u32) -> io::Result<()> {
    Err(io::ErrorKind::Unsupported.into())
}

/// Writes real zeros over `[from, to)` of `file`, a megabyte at a time.
fn write_zeros(file: &File, from: u64, to: u64) -> io::Result<()> {
    const CHUNK_BYTES: u64 = 1 << 20;
    let zeros = vec![0u8; CHUNK_BYTES.min(to.saturating_sub(from)) as usize];
    let mut offset = from;
    while offset < to {
        let length = (to - offset).min(CHUNK_BYTES) as usize;
        file.write_all_at(&zeros[..length], offset)?;
        offset += length as u64;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn drop_releases_the_lock_held_by_a_copied_descriptor() {
        // Goal: closing a handle frees the directory even while another
        // descriptor of the same lock file description is open, as in a
        // child process forked (by any thread) before it runs `exec`.
        // Method: copy the lock's descriptor (`dup`, what `fork` does),
        // drop the storage, reopen while the copy is still open.
        let dir = tempfile::tempdir().unwrap();
        let storage = OsStorage::open(dir.path(), LockMode::Exclusive).unwrap();
        let copy = storage.lock.as_ref().unwrap().try_clone().unwrap();
        drop(storage);
        OsStorage::open(dir.path(), LockMode::Exclusive).expect("the copy kept the lock");
        drop(copy);
    }

    #[test]
    fn allocate_keeps_written_bytes_and_zero_fills_the_rest() {
        // Goal: allocating never clobbers bytes already written, and the
        // added range reads as zeros. Method: write a few bytes, allocate
        // past a megabyte boundary (several zero chunks), read everything.
        let dir = tempfile::tempdir().unwrap();
        let storage = OsStorage::open(dir.path(), LockMode::Exclusive).unwrap();
        let file = storage.create("f").unwrap();
        file.write_at(0, b"abc").unwrap();
        let length = (2 << 20) + 5;
        file.allocate(length).unwrap();
        assert_eq!(file.len().unwrap(), length);
        let bytes = file.read_at(0, length as usize).unwrap();
        assert_eq!(&bytes[..3], b"abc");
        assert!(bytes[3..].iter().all(|&b| b == 0));
    }

    #[test]
    fn write_backs_keep_the_bytes_and_refuse_a_range_beyond_off_t() {
        // Goal: writing a range back, or starting to, changes nothing a
        // read sees; an empty range or one past the end is no error (there
        // is nothing to write); a range `off_t` cannot express is refused,
        // not wrapped to a negative.
        type WriteBack = fn(&OsFile, u64, u64) -> io::Result<()>;
        let calls: [(&str, WriteBack); 2] = [
            ("write_back", OsFile::write_back),
            ("start_write_back", OsFile::start_write_back),
        ];
        for (name, write_back) in calls {
            let dir = tempfile::tempdir().unwrap();
            let storage = OsStorage::open(dir.path(), LockMode::Exclusive).unwrap();
            let file = storage.create("f").unwrap();
            file.write_at(0, &[7; 10_000]).unwrap();
            write_back(&file, 0, 10_000).unwrap();
            write_back(&file, 4096, 0).unwrap();
            write_back(&file, 1 << 30, 4096).unwrap();
            file.sync_data().unwrap();
            let bytes = file.read_at(0, 10_000).unwrap();
            assert_eq!(&*bytes, &[7; 10_000][..], "{name}");
            for (offset, length) in [(u64::MAX, 1), (0, 1 << 63)] {
                let refused = write_back(&file, offset, length).unwrap_err();
                assert_eq!(refused.kind(), io::ErrorKind::InvalidInput, "{name}");
            }
        }
    }

    /// A FIFO made in `dir`, open for reading and writing: a file that
    /// refuses `sync_file_range` and `fdatasync`.
    fn fifo_in(dir: &std::path::Path) -> File {
        let path = dir.join("fifo");
        let status = std::process::Command::new("mkfifo").arg(&path).status();
        assert!(status.unwrap().success());
        File::options().read(true).write(true).open(&path).unwrap()
    }

    #[test]
    fn write_back_falls_back_to_fdatasync_where_the_call_is_refused() {
        // Goal: where `sync_file_range` is refused, write_back does an
        // `fdatasync` instead (stronger, never weaker) rather than failing
        // the preparation that paces itself with it. Method: a FIFO refuses
        // the call (ESPIPE) already at the probe, with no flags; the
        // fallback's own refusal (EINVAL: a FIFO cannot be synced either)
        // shows that the fallback ran.
        let dir = tempfile::tempdir().unwrap();
        let fifo = fifo_in(dir.path());
        // ESPIPE; EPERM under a seccomp filter that refuses the call.
        assert!(sync_file_range(&fifo, 0, 0, 0).is_err());
        let fallback = OsFile::new(fifo).write_back(0, 4096).unwrap_err();
        assert_eq!(fallback.raw_os_error(), Some(libc::EINVAL));
    }

    #[test]
    fn start_write_back_does_nothing_where_the_call_is_refused() {
        // Goal: where the call is refused (a FIFO) starting a write-back
        // does nothing and succeeds, since the sync that must follow does
        // the writing (unlike `write_back`, whose fallback is that sync).
        let dir = tempfile::tempdir().unwrap();
        let fifo = OsFile::new(fifo_in(dir.path()));
        fifo.start_write_back(0, 4096).unwrap();
    }

    #[test]
    fn a_started_write_back_fails_only_where_pages_may_be_lost() {
        // Goal: a write-back started without waiting that queued less than
        // asked (the kernel's `ENOMEM` where it does not retry) does not
        // stop the node, since the sync that follows writes the rest; any
        // other error is returned, to be latched as a failed sync.
        for errno in [libc::ENOMEM, libc::EAGAIN, libc::EINTR] {
            let error = io::Error::from_raw_os_error(errno);
            assert!(judge_started_write_back(Err(error)).is_ok(), "{errno}");
        }
        for errno in [libc::EIO, libc::ENOSPC, libc::EPERM, libc::EBADF] {
            let error = io::Error::from_raw_os_error(errno);
            let judged = judge_started_write_back(Err(error)).unwrap_err();
            assert_eq!(judged.raw_os_error(), Some(errno));
        }
        assert!(judge_started_write_back(Ok(())).is_ok());
    }

    /// Runs [`write_back_with`] with a probe and a range call that give
    /// these results, and says which calls ran and what came back.
    fn judged_write_back(
        probe: io::Result<()>,
        range: io::Result<()>,
        length: u64,
    ) -> (Vec<&'static str>, io::Result<()>) {
        let calls = std::cell::RefCell::new(Vec::new());
        let result = write_back_with(
            || {
                calls.borrow_mut().push("probe");
                probe
            },
            || {
                calls.borrow_mut().push("range");
                range
            },
            || {
                calls.borrow_mut().push("fdatasync");
                Ok(())
            },
            length,
        );
        (calls.into_inner(), result)
    }

    #[test]
    fn a_writeback_error_is_returned_whatever_its_errno() {
        // Goal: once the call is known to be available, every error of the
        // write-back is a failed writeback, returned as it is, even with an
        // errno that could also mean "refused" (a FUSE or network file
        // system fails pages with EPERM or EOPNOTSUPP): falling back to an
        // `fdatasync` there would report success over pages the write-back
        // had already reported lost. Method: a probe that passes, a range
        // call that fails with each errno.
        for errno in [
            libc::EPERM,
            libc::EOPNOTSUPP,
            libc::ENOSYS,
            libc::EIO,
            libc::ENOSPC,
        ] {
            let failed = Err(io::Error::from_raw_os_error(errno));
            let (calls, result) = judged_write_back(Ok(()), failed, 4096);
            assert_eq!(calls, ["probe", "range"], "errno {errno}");
            assert_eq!(result.unwrap_err().raw_os_error(), Some(errno));
        }
    }

    #[test]
    fn a_refused_probe_falls_back_and_an_empty_range_does_nothing() {
        // Goal: only a refused probe (which touches no error state) leads to
        // the `fdatasync` fallback; an empty range is no call at all (the
        // kernel would read a length of 0 as "to the end of the file").
        let refused = Err(io::Error::from_raw_os_error(libc::EPERM));
        let (calls, result) = judged_write_back(refused, Ok(()), 4096);
        assert_eq!(calls, ["probe", "fdatasync"]);
        assert!(result.is_ok());
        let (calls, result) = judged_write_back(Ok(()), Ok(()), 0);
        assert!(calls.is_empty());
        assert!(result.is_ok());
    }
}
