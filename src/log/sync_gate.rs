//! [`SyncGate`]: one `fdatasync` at a time for a log's segment files, and the
//! memory of the first one that failed.
//!
//! Linux reports a page's writeback error to one `fdatasync` per open file
//! description, and marks the page clean either way. So two syncs of one
//! file running at once can split an error between them: one reports it, the
//! other returns success for pages that never reached the disk. And a sync
//! made after a failed one returns success for pages the failed one dropped.
//! Group commit syncs the tail outside the engine lock while a writer may
//! sync the same file under it (a rollover, a truncation), so every sync of
//! the log's segments passes this gate: none overlaps another, and once one
//! has failed, every later one fails without being tried (fault model item
//! 4: a failed sync is never retried into a false success).

use std::io;
use std::sync::{Mutex, PoisonError};

use crate::io::StorageFile;

/// Serializes syncs and latches the first failure.
///
/// Invariant: once `first_failure` is set it never changes, and no sync is
/// attempted after it.
#[derive(Debug, Default)]
pub struct SyncGate {
    first_failure: Mutex<Option<(io::ErrorKind, String)>>,
}

impl SyncGate {
    /// `file.sync_data()`, unless a sync through this gate already failed,
    /// after any sync in progress.
    pub fn sync<F: StorageFile>(&self, file: &F) -> io::Result<()> {
        let mut first_failure = self
            .first_failure
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        if let Some((kind, message)) = &*first_failure {
            return Err(io::Error::new(
                *kind,
                format!(
                    "an earlier fdatasync of this log failed ({message}); no later one is trusted"
                ),
            ));
        }
        let result = file.sync_data();
        if let Err(error) = &result {
            *first_failure = Some((error.kind(), error.to_string()));
        }
        result
    }
}
