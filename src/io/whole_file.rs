//! Files that appear whole: written under a temporary name, synced, renamed
//! into place, the directory synced. The one copy of that sequence, used by
//! segments, the hard state, the engine's snapshots and the openraft state
//! machine's snapshot.
//!
//! Crash argument: until the rename, the file exists only under its
//! temporary name (ending in [`TEMPORARY_FILE_SUFFIX`]), which recovery
//! removes; the rename comes only after the content is durable, and the
//! directory sync after it makes the final name durable before the caller
//! goes on. So a file under its final name is always whole, and a crash
//! leaves either no file, the whole file, or the whole file beside a
//! leftover temporary — never a partial file under its final name. A
//! creation that fails before the rename (a full disk, say) removes its
//! temporary, so it leaves no multi-megabyte file behind.

use crate::directory::{remove_leftover, RemoveOnFailure};
use crate::error::{Error, Result};
use crate::format::TEMPORARY_FILE_SUFFIX;

use super::{Storage, StorageFile};

/// The temporary name `name` is written under.
pub(crate) fn temporary_name(name: &str) -> String {
    format!("{name}{TEMPORARY_FILE_SUFFIX}")
}

/// Creates the temporary file of `name`, first removing one that a crash
/// left behind (it holds nothing acknowledged; without removing it the
/// creation would fail, and the name could never be written again).
pub(crate) fn create_temporary<S: Storage>(storage: &S, name: &str) -> Result<S::File> {
    let temporary = temporary_name(name);
    remove_leftover(storage, &temporary)?;
    storage
        .create(&temporary)
        .map_err(|e| Error::io("create file", storage.path_of(&temporary), e))
}

/// Makes `file`, created as `temporary`, the file `name`: `finish` writes
/// what is still to write, then the file is synced, renamed and the
/// directory synced, in that order. If a step before the rename fails, the
/// temporary is removed (best effort: one a crash keeps is removed by the
/// next writable open).
pub(crate) fn install<S: Storage>(
    storage: &S,
    file: &S::File,
    temporary: &str,
    name: &str,
    finish: impl FnOnce(&S::File) -> Result<()>,
) -> Result<()> {
    let path = storage.path_of(temporary);
    let cleanup = RemoveOnFailure::new(storage, temporary);
    finish(file)?;
    file.sync_data()
        .map_err(|e| Error::io("fdatasync file", &path, e))?;
    storage
        .rename(temporary, name)
        .map_err(|e| Error::io("rename file", &path, e))?;
    cleanup.keep();
    storage
        .sync_directory()
        .map_err(|e| Error::io("fsync directory", storage.path_of(""), e))
}

/// [`create_temporary`], then [`install`] with `fill`: the file `name`,
/// whole, holding what `fill` wrote. Returns the open file.
pub(crate) fn write_whole<S: Storage>(
    storage: &S,
    name: &str,
    fill: impl FnOnce(&S::File) -> Result<()>,
) -> Result<S::File> {
    let file = create_temporary(storage, name)?;
    install(storage, &file, &temporary_name(name), name, fill)?;
    Ok(file)
}
