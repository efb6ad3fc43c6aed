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
//! leftover temporary — never a partial file under its final name.

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
    let path = storage.path_of(&temporary);
    let leftover = storage
        .list()
        .map_err(|e| Error::io("list directory", storage.path_of(""), e))?
        .contains(&temporary);
    if leftover {
        storage
            .remove(&temporary)
            .map_err(|e| Error::io("remove file", &path, e))?;
    }
    storage
        .create(&temporary)
        .map_err(|e| Error::io("create file", &path, e))
}

/// Makes `file`, written under `temporary`, the file `name`: the file is
/// synced, renamed and the directory synced, in that order.
pub(crate) fn install<S: Storage>(
    storage: &S,
    file: &S::File,
    temporary: &str,
    name: &str,
) -> Result<()> {
    let path = storage.path_of(temporary);
    file.sync_data()
        .map_err(|e| Error::io("fdatasync file", &path, e))?;
    storage
        .rename(temporary, name)
        .map_err(|e| Error::io("rename file", &path, e))?;
    storage
        .sync_directory()
        .map_err(|e| Error::io("fsync directory", storage.path_of(""), e))
}

/// [`create_temporary`], `fill`, then [`install`]: the file `name`, whole,
/// holding what `fill` wrote. Returns the open file.
pub(crate) fn write_whole<S: Storage>(
    storage: &S,
    name: &str,
    fill: impl FnOnce(&S::File) -> Result<()>,
) -> Result<S::File> {
    let file = create_temporary(storage, name)?;
    fill(&file)?;
    install(storage, &file, &temporary_name(name), name)?;
    Ok(file)
}
