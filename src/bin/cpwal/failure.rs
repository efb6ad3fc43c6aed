//! The tool's errors: each prints as ONE line saying what is wrong and what
//! to do, and maps to a documented exit code.

use std::fmt;
use std::path::PathBuf;

use cpwal::Error;

/// Exit code: the command could not do its job (bad directory, I/O error,
/// lock held, ...). Clap uses 2 for usage errors.
pub const EXIT_FAILED: i32 = 1;
/// Exit code of `verify`: recovery would drop a torn tail (or finish an
/// interrupted truncation, snapshot install or hard-state update, or
/// remove leftover files).
pub const EXIT_TORN_TAIL: i32 = 3;
/// Exit code of `verify`: durable data is damaged (and of `inspect`,
/// `dump`, `catalog` when their report is partial for that reason).
pub const EXIT_CORRUPTION: i32 = 4;
/// Exit code of `crash-test`: a guarantee was violated.
pub const EXIT_VIOLATION: i32 = 5;
/// Exit code of `verify`: redundancy is lost (one hard-state copy fails
/// its checks or is missing); a writer opens it and repairs it.
pub const EXIT_DEGRADED: i32 = 6;

/// Why a command failed.
#[derive(Debug)]
pub enum CliError {
    /// The engine refused; `context` says what the tool was doing.
    Engine {
        /// What the tool was doing.
        context: &'static str,
        /// The engine's error.
        error: Error,
    },
    /// The path is not a cpwal data directory.
    NotADataDirectory(PathBuf),
    /// An index outside the readable log was asked for.
    IndexOutOfRange {
        /// The index asked for.
        index: u64,
        /// The first index in the log.
        first: u64,
        /// One past the last readable index.
        end: u64,
        /// Whether the log is damaged and `end` the end of its intact
        /// prefix.
        damaged: bool,
    },
    /// An index below the log's start was asked for: compaction removed it
    /// (the snapshot holds its effect, not the entry).
    Compacted {
        /// The index asked for.
        index: u64,
        /// The first index still in the log.
        first: u64,
    },
    /// A filesystem step of the tool itself failed.
    Io {
        /// What the tool was doing, with the path.
        context: String,
        /// The OS error.
        error: std::io::Error,
    },
    /// `crash-test --dir` was given a directory that already holds files.
    DirectoryNotEmpty(PathBuf),
    /// The crash-test child stopped before it was killed.
    ChildExited {
        /// The cycle it was in.
        cycle: u64,
        /// How it ended.
        status: std::process::ExitStatus,
    },
    /// The thread reading the child's pipe panicked.
    PipeReaderPanicked,
    /// The engine put a batch somewhere other than the end of the log.
    MisplacedBatch {
        /// The log's end before the append.
        expected: u64,
        /// Where the batch went.
        found: u64,
    },
    /// `crash-test` found this many violations (already printed).
    Violations(usize),
    /// `crash-test --shutdown-fs` was given a path that is not the root of
    /// a mount.
    NotAMountPoint(PathBuf),
    /// A system command the tool runs (`xfs_io`, `mount`) failed.
    CommandFailed {
        /// The command line.
        command: String,
        /// What it printed on stderr.
        stderr: String,
    },
}

impl CliError {
    /// An engine error while doing `context`.
    pub fn engine(context: &'static str, error: Error) -> Self {
        Self::Engine { context, error }
    }

    /// An I/O error of the tool while doing `context`.
    pub fn io(context: impl Into<String>, error: std::io::Error) -> Self {
        Self::Io {
            context: context.into(),
            error,
        }
    }

    /// The process exit code for this error.
    pub fn exit_code(&self) -> i32 {
        match self {
            Self::Violations(_) => EXIT_VIOLATION,
            Self::IndexOutOfRange { damaged: true, .. } => EXIT_CORRUPTION,
            Self::Engine { error, .. } if error.as_corruption().is_some() => EXIT_CORRUPTION,
            _ => EXIT_FAILED,
        }
    }
}

/// What an operator should do about an engine error.
fn advice(error: &Error) -> &'static str {
    match error {
        Error::DirectoryLocked { .. } => {
            "stop the process that holds it, or run on a copy (cp -r DIR COPY)"
        }
        Error::Corruption(_) => {
            "run `cpwal verify DIR` for details; restore this node from a peer or a backup, or copy what is readable with `cpwal salvage DIR NEW_DIR`"
        }
        Error::DestinationNotEmpty { .. } => "name a new directory, or an empty one",
        Error::RoleMismatch { .. } => {
            "name the role the backup has (--role), or add --allow-role-change to restore it in the other"
        }
        Error::Unsalvageable(_) => "restore this node from a peer or a backup",
        Error::CopyMismatch { .. } => "check the destination's disk, then retry",
        Error::UnsupportedVersion { .. } => "use a cpwal build that reads this format version",
        Error::NoSpace { .. } => "free disk space and retry",
        Error::NotARegularFile { .. } => {
            "move it out of the directory (cpwal never opens or removes it), then retry"
        }
        Error::IdentityMismatch { .. } => {
            "use the node identity the directory belongs to (restore: --node), or add --allow-other-node to restore it as another node"
        }
        Error::Io { source, .. } if source.kind() == std::io::ErrorKind::NotFound => {
            "check the path"
        }
        Error::Io { source, .. } if source.kind() == std::io::ErrorKind::PermissionDenied => {
            "check the permissions of the directory and its files"
        }
        _ => "check the directory and the disk, then retry",
    }
}

impl fmt::Display for CliError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let line = match self {
            Self::Engine { context, error } => {
                format!("{context}: {error}; {}", advice(error))
            }
            Self::NotADataDirectory(path) => format!(
                "{} is not a cpwal data directory (no hardstate file); point at a directory a cpwal node wrote",
                path.display()
            ),
            Self::IndexOutOfRange {
                index,
                first,
                end,
                damaged: false,
            } => format!(
                "index {index} is outside the log, which holds {}; pick --from/--to within it",
                crate::render::index_range(*first, *end)
            ),
            Self::IndexOutOfRange {
                index,
                first,
                end,
                damaged: true,
            } => format!(
                "index {index} is past the intact prefix of this damaged directory, which holds {}; run `cpwal verify` for the damage",
                crate::render::index_range(*first, *end)
            ),
            Self::Compacted { index, first } => format!(
                "index {index} was compacted into a snapshot; the log starts at index {first}; pick --from {first} or later"
            ),
            Self::Io { context, error } => {
                format!("{context}: {error}; check the path, its permissions and free space")
            }
            Self::DirectoryNotEmpty(path) => format!(
                "{} is not empty; crash-test needs a fresh or empty directory (omit --dir for a temporary one)",
                path.display()
            ),
            Self::ChildExited { cycle, status } => format!(
                "the crash-test child exited by itself ({status}) in cycle {cycle}; its message is above; rerun with the same --seed to reproduce"
            ),
            Self::PipeReaderPanicked => {
                "the thread reading the crash-test child's pipe panicked; rerun with the same --seed".to_owned()
            }
            Self::MisplacedBatch { expected, found } => format!(
                "the engine placed a batch at index {found} instead of the log end {expected}; report this as an engine bug"
            ),
            Self::Violations(count) => format!(
                "{count} guarantee violation(s) found (listed above); keep the directory for analysis and report the seed"
            ),
            Self::NotAMountPoint(path) => format!(
                "{} is not the root of a mounted file system; --shutdown-fs takes the mount point of the file system under --dir (which it shuts down and mounts again: use a scratch file system, e.g. a loop-mounted image)",
                path.display()
            ),
            Self::CommandFailed { command, stderr } => format!(
                "`{command}` failed: {stderr}; --shutdown-fs needs root, xfs_io (xfsprogs) and a file system that supports shutdown (XFS, ext4)"
            ),
        };
        // One line, whatever the parts contained.
        f.write_str(&line.replace('\n', " "))
    }
}
