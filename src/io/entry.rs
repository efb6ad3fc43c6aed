//! What a directory listing says about each entry: its name as the file
//! system stores it (bytes, not necessarily UTF-8), its kind (not following
//! symbolic links) and its permission bits.

use std::ffi::OsString;
use std::fmt;
use std::io;
use std::path::PathBuf;

/// One entry of a directory, as [`Storage::list`](super::Storage::list)
/// returns it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DirectoryEntry {
    /// The name, exactly as stored: compared as bytes, never made lossy.
    pub name: OsString,
    /// What the entry is; a symbolic link is reported as one, not followed.
    pub kind: FileKind,
    /// The permission bits (`st_mode & 0o7777`), where the storage has them
    /// (a simulated disk has none).
    pub mode: Option<u32>,
}

/// The kinds of directory entry a file system can hold.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum FileKind {
    /// A regular file: the only kind cpwal ever opens.
    RegularFile,
    /// A directory.
    Directory,
    /// A symbolic link (never followed).
    SymbolicLink,
    /// A FIFO (named pipe): opening it for reading blocks until a writer
    /// appears, which is why cpwal never opens one.
    Fifo,
    /// A Unix domain socket.
    Socket,
    /// A block device.
    BlockDevice,
    /// A character device.
    CharacterDevice,
    /// Anything else the file system reports.
    Unknown,
}

impl FileKind {
    /// The kind a file type (from `lstat`, not following links) describes.
    pub fn of(file_type: std::fs::FileType) -> Self {
        use std::os::unix::fs::FileTypeExt;
        if file_type.is_file() {
            FileKind::RegularFile
        } else if file_type.is_dir() {
            FileKind::Directory
        } else if file_type.is_symlink() {
            FileKind::SymbolicLink
        } else if file_type.is_fifo() {
            FileKind::Fifo
        } else if file_type.is_socket() {
            FileKind::Socket
        } else if file_type.is_block_device() {
            FileKind::BlockDevice
        } else if file_type.is_char_device() {
            FileKind::CharacterDevice
        } else {
            FileKind::Unknown
        }
    }
}

impl fmt::Display for FileKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            FileKind::RegularFile => "regular file",
            FileKind::Directory => "directory",
            FileKind::SymbolicLink => "symbolic link",
            FileKind::Fifo => "FIFO (named pipe)",
            FileKind::Socket => "socket",
            FileKind::BlockDevice => "block device",
            FileKind::CharacterDevice => "character device",
            FileKind::Unknown => "file of unknown kind",
        })
    }
}

/// The error a [`Storage`](super::Storage) returns when asked to open or
/// remove an entry that is not a regular file. cpwal's
/// [`Error`](crate::Error) turns it into
/// [`Error::NotARegularFile`](crate::Error::NotARegularFile) naming the path.
pub fn not_a_regular_file(kind: FileKind) -> io::Error {
    io::Error::other(NotARegularFile(kind))
}

/// The kind of entry behind a [`not_a_regular_file`] error, if it is one.
pub(crate) fn refused_kind(error: &io::Error) -> Option<FileKind> {
    let refusal = error.get_ref()?.downcast_ref::<NotARegularFile>()?;
    Some(refusal.0)
}

#[derive(Debug)]
struct NotARegularFile(FileKind);

impl fmt::Display for NotARegularFile {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "a {}, not a regular file", self.0)
    }
}

impl std::error::Error for NotARegularFile {}

/// A directory entry cpwal did not create. Reported, never touched.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ForeignFile {
    /// Its path (the name exactly as stored, perhaps not UTF-8).
    pub path: PathBuf,
    /// What it is.
    pub kind: FileKind,
}
