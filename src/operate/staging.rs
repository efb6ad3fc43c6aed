//! [`StagedDirectory`]: a new data directory built under a temporary
//! sibling name and renamed into place only once it is complete, durable
//! and verified (see the module docs of [`crate::operate`]).

use std::fs::{self, File};
use std::io;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use crate::error::{Error, Result};
use crate::io::{LockMode, OsStorage};

/// Suffix of the temporary name a destination is built under.
const STAGING_SUFFIX: &str = ".cpwal-partial";

/// A directory being built for `destination`.
///
/// Invariant: until [`StagedDirectory::commit`] returns, `destination` is
/// untouched and everything written lives under `staging`, which dropping
/// the value removes.
#[derive(Debug)]
pub(crate) struct StagedDirectory {
    destination: PathBuf,
    parent: PathBuf,
    staging: PathBuf,
    /// The writer's lock on `staging` while files are written.
    storage: Option<Arc<OsStorage>>,
    committed: bool,
}

impl StagedDirectory {
    /// Checks that `destination` is absent or an empty directory, and
    /// creates the staging directory beside it (0700), locked. A staging
    /// directory left by an interrupted run is removed first; one another
    /// run is still filling (its lock is held) is refused.
    pub(crate) fn begin(destination: &Path) -> Result<Self> {
        refuse_occupied(destination)?;
        let name = destination.file_name().ok_or_else(|| {
            let error = io::Error::new(io::ErrorKind::InvalidInput, "the path names no directory");
            Error::io("choose destination", destination, error)
        })?;
        let parent = match destination.parent() {
            Some(parent) if !parent.as_os_str().is_empty() => parent.to_path_buf(),
            _ => PathBuf::from("."),
        };
        let mut staging_name = std::ffi::OsString::from(".");
        staging_name.push(name);
        staging_name.push(STAGING_SUFFIX);
        let staging = parent.join(staging_name);
        if staging.exists() {
            // Taking its lock proves no other run is filling it.
            drop(OsStorage::open(&staging, LockMode::Exclusive)?);
            fs::remove_dir_all(&staging)
                .map_err(|e| Error::io("remove interrupted copy", &staging, e))?;
        }
        crate::io::create_private_directory(&staging)
            .map_err(|e| Error::io("create directory", &staging, e))?;
        let mut staged = Self {
            destination: destination.to_path_buf(),
            parent,
            staging,
            storage: None,
            committed: false,
        };
        let storage = OsStorage::open(&staged.staging, LockMode::Exclusive)?;
        staged.storage = Some(Arc::new(storage));
        Ok(staged)
    }

    /// Where the directory is being built.
    pub(crate) fn path(&self) -> &Path {
        &self.staging
    }

    /// The storage to write through, locked exclusively; `None` once
    /// [`StagedDirectory::release`] was called.
    pub(crate) fn storage(&self) -> Option<&Arc<OsStorage>> {
        self.storage.as_ref()
    }

    /// Releases the lock (once every clone of the storage is dropped), so
    /// the finished directory can be read back.
    pub(crate) fn release(&mut self) {
        self.storage = None;
    }

    /// Puts the finished directory in place: every file restricted to its
    /// owner and synced, the directory synced (every create and rename in
    /// it), renamed onto the destination (an empty directory there is
    /// replaced), and the parent synced, so the new name survives a power
    /// cut. Returns the destination.
    pub(crate) fn commit(mut self) -> Result<PathBuf> {
        self.release();
        restrict_and_sync_files(&self.staging)
            .map_err(|e| Error::io("set permissions and fsync", &self.staging, e))?;
        sync_directory(&self.staging)?;
        fs::rename(&self.staging, &self.destination)
            .map_err(|e| Error::io("rename copy into place", &self.destination, e))?;
        self.committed = true;
        sync_directory(&self.parent)?;
        Ok(self.destination.clone())
    }
}

impl Drop for StagedDirectory {
    /// A copy that was not committed is removed (best effort: a leftover is
    /// removed by the next run into the same destination).
    fn drop(&mut self) {
        if !self.committed {
            self.storage = None;
            let _ = fs::remove_dir_all(&self.staging);
        }
    }
}

/// Refuses a destination that exists and is not an empty directory.
fn refuse_occupied(destination: &Path) -> Result<()> {
    let occupied = || Error::DestinationNotEmpty {
        path: destination.to_path_buf(),
    };
    match fs::read_dir(destination) {
        Ok(mut entries) => match entries.next() {
            None => Ok(()),
            Some(_) => Err(occupied()),
        },
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(()),
        Err(e) if e.kind() == io::ErrorKind::NotADirectory => Err(occupied()),
        Err(e) => Err(Error::io("read destination", destination, e)),
    }
}

/// Makes every create, rename and remove in `directory` durable.
pub(crate) fn sync_directory(directory: &Path) -> Result<()> {
    File::open(directory)
        .and_then(|d| d.sync_all())
        .map_err(|e| Error::io("fsync directory", directory, e))
}

/// Restricts every file directly in `directory` to its owner and syncs it
/// (`fsync`: its data and its mode, which `fdatasync` need not write): the
/// one sync every file of a new directory gets before the directory itself
/// is synced and renamed into place. Files are created inside a directory
/// that is already 0700, so nobody else could reach them meanwhile.
fn restrict_and_sync_files(directory: &Path) -> std::io::Result<()> {
    use std::os::unix::fs::PermissionsExt;
    for entry in fs::read_dir(directory)? {
        let entry = entry?;
        if entry.file_type()?.is_file() {
            let file = fs::File::open(entry.path())?;
            let mode = fs::Permissions::from_mode(crate::io::PRIVATE_FILE_MODE);
            file.set_permissions(mode)?;
            file.sync_all()?;
        }
    }
    Ok(())
}
