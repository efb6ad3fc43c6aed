//! Creating and opening files on the real file system the way a node's data
//! must be: private to its owner, regular files only, never blocking.
//!
//! Every directory cpwal creates is [`PRIVATE_DIRECTORY_MODE`] (0700) and
//! every file [`PRIVATE_FILE_MODE`] (0600), whatever the process umask: the
//! mode is given at creation and then set again explicitly, because a umask
//! only ever removes bits and an odd one (0277, say) could leave a file the
//! owner cannot write. A node's directory holds its vote, the membership
//! and every range owner; other local users must not read or change them.
//! Tools that write node data elsewhere (backups, salvage) use these same
//! functions.
//!
//! Opening never blocks and never follows a symbolic link: a FIFO opened
//! for reading waits for a writer forever, and a device or a link could
//! point anywhere. [`open_regular_file`] checks the entry with `lstat`
//! before opening it (so a device is never opened at all), opens it with
//! `O_NONBLOCK | O_NOFOLLOW`, and checks the opened file again with `fstat`.
//! `O_NONBLOCK` stays set on the descriptor: Linux ignores it for regular
//! files, whose reads and writes never return `EAGAIN`.

use std::fs::{self, DirBuilder, File, OpenOptions, Permissions};
use std::io;
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt, PermissionsExt};
use std::path::Path;

use super::entry::{not_a_regular_file, FileKind};

/// The mode of every directory cpwal creates: its owner only.
pub const PRIVATE_DIRECTORY_MODE: u32 = 0o700;
/// The mode of every file cpwal creates: its owner only, no execution.
pub const PRIVATE_FILE_MODE: u32 = 0o600;

/// Creates `path` and every missing parent, each with mode 0700 whatever
/// the umask, and makes each creation durable by syncing the directory
/// that holds it. An existing directory is left as it is.
pub fn create_private_directory(path: &Path) -> io::Result<()> {
    let missing: Vec<&Path> = path
        .ancestors()
        .filter(|p| !p.as_os_str().is_empty())
        .take_while(|p| p.symlink_metadata().is_err())
        .collect();
    for directory in missing.into_iter().rev() {
        match DirBuilder::new()
            .mode(PRIVATE_DIRECTORY_MODE)
            .create(directory)
        {
            Ok(()) => {
                fs::set_permissions(directory, Permissions::from_mode(PRIVATE_DIRECTORY_MODE))?
            }
            Err(e) if e.kind() == io::ErrorKind::AlreadyExists && directory.is_dir() => continue,
            Err(e) => return Err(e),
        }
        let parent = directory
            .parent()
            .filter(|p| !p.as_os_str().is_empty())
            .unwrap_or(Path::new("."));
        sync_directory(parent)?;
    }
    Ok(())
}

/// Creates the new file `path` (refusing an existing name) with mode 0600
/// whatever the umask, open for reading and writing. Not durable until its
/// directory is synced.
pub fn create_private_file(path: &Path) -> io::Result<File> {
    let file = OpenOptions::new()
        .read(true)
        .write(true)
        .create_new(true)
        .mode(PRIVATE_FILE_MODE)
        .open(path)?;
    file.set_permissions(Permissions::from_mode(PRIVATE_FILE_MODE))?;
    Ok(file)
}

/// Opens the existing regular file `path`, for writing too when
/// `writable`. Anything else (a FIFO, a directory, a symbolic link, a
/// device, a socket) is refused with
/// [`not_a_regular_file`](super::not_a_regular_file), without blocking.
pub fn open_regular_file(path: &Path, writable: bool) -> io::Result<File> {
    let kind = FileKind::of(path.symlink_metadata()?.file_type());
    if kind != FileKind::RegularFile {
        return Err(not_a_regular_file(kind));
    }
    let file = OpenOptions::new()
        .read(true)
        .write(writable)
        .custom_flags(libc::O_NONBLOCK | libc::O_NOFOLLOW)
        .open(path)
        .map_err(|e| match e.raw_os_error() {
            // Replaced by a link between the check and the open.
            Some(libc::ELOOP) => not_a_regular_file(FileKind::SymbolicLink),
            _ => e,
        })?;
    let kind = FileKind::of(file.metadata()?.file_type());
    if kind != FileKind::RegularFile {
        return Err(not_a_regular_file(kind));
    }
    Ok(file)
}

/// Makes the entries of the directory `path` durable (`fsync` on it).
pub fn sync_directory(path: &Path) -> io::Result<()> {
    File::open(path)?.sync_all()
}

/// The permission bits of the directory `path` (following a link to it: a
/// data directory may be reached through one).
pub(crate) fn directory_mode(path: &Path) -> io::Result<u32> {
    Ok(fs::metadata(path)?.permissions().mode() & 0o7777)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn open_regular_file_refuses_every_other_kind_at_once() {
        // Goal: a directory, a FIFO and a symbolic link (even one to a
        // regular file) are refused by kind, and nothing blocks. Method:
        // make one of each and open it both ways.
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("file");
        fs::write(&file, b"x").unwrap();
        let fifo = dir.path().join("fifo");
        let made = std::process::Command::new("mkfifo").arg(&fifo).status();
        assert!(made.unwrap().success());
        let link = dir.path().join("link");
        std::os::unix::fs::symlink(&file, &link).unwrap();
        let cases = [
            (dir.path().to_path_buf(), FileKind::Directory),
            (fifo, FileKind::Fifo),
            (link, FileKind::SymbolicLink),
        ];
        for (path, kind) in cases {
            for writable in [false, true] {
                let error = open_regular_file(&path, writable).unwrap_err();
                assert_eq!(super::super::entry::refused_kind(&error), Some(kind));
            }
        }
        assert!(open_regular_file(&file, true).is_ok());
    }

    #[test]
    fn create_private_directory_makes_every_missing_parent_0700() {
        // Goal: nested creation gives each new directory 0700 and leaves an
        // existing one alone. Method: create a/b/c under a 0755 directory.
        let dir = tempfile::tempdir().unwrap();
        fs::set_permissions(dir.path(), Permissions::from_mode(0o755)).unwrap();
        let leaf = dir.path().join("a/b/c");
        create_private_directory(&leaf).unwrap();
        for path in [dir.path().join("a"), dir.path().join("a/b"), leaf] {
            assert_eq!(directory_mode(&path).unwrap(), PRIVATE_DIRECTORY_MODE);
        }
        assert_eq!(directory_mode(dir.path()).unwrap(), 0o755);
        create_private_directory(&dir.path().join("a/b/c")).unwrap();
    }
}
