//! Who may read what the operator's tools create: directories 0700, files
//! 0600, whatever the process umask (a node's files hold its vote, the
//! membership and every range owner). The one place backup, restore and
//! salvage set permissions, so it can follow the io layer's rule.

use std::fs;
use std::io;
use std::os::unix::fs::{DirBuilderExt, PermissionsExt};
use std::path::Path;

/// Permissions of a directory the tools create.
pub(crate) const DIRECTORY_MODE: u32 = 0o700;
/// Permissions of a file the tools create.
pub(crate) const FILE_MODE: u32 = 0o600;

/// Creates the directory `path` (its parent must exist) readable by its
/// owner only. The mode is set again after creation because the umask can
/// only narrow what `mkdir` is given, never widen it to what is asked.
pub(crate) fn create_directory(path: &Path) -> io::Result<()> {
    fs::DirBuilder::new().mode(DIRECTORY_MODE).create(path)?;
    fs::set_permissions(path, fs::Permissions::from_mode(DIRECTORY_MODE))
}

/// Restricts every file directly in `directory` to its owner and syncs it
/// (`fsync`: its data and its mode, which `fdatasync` need not write): the
/// one sync every file of a new directory gets before the directory itself
/// is synced and renamed into place. Files are created inside a directory
/// that is already 0700, so nobody else could reach them meanwhile.
pub(crate) fn restrict_and_sync_files(directory: &Path) -> io::Result<()> {
    for entry in fs::read_dir(directory)? {
        let entry = entry?;
        if entry.file_type()?.is_file() {
            let file = fs::File::open(entry.path())?;
            file.set_permissions(fs::Permissions::from_mode(FILE_MODE))?;
            file.sync_all()?;
        }
    }
    Ok(())
}
