//! The operator's tools as a library: everything `cpwal` does beyond
//! reading a clean directory, kept here so it is tested and reusable, and
//! the binary only parses, calls and renders.
//!
//! * [`Examination`]: a best-effort view of any data directory, damaged
//!   ones included: term and vote from whichever hard-state copy is valid,
//!   the intact prefix of the log, the snapshot if valid, the damage listed
//!   beside them, and one [`Verdict`] that agrees with what a writer would
//!   do (clean, repairable, degraded, damaged).
//! * [`CatalogView`]: members, range owners with epochs and the leader
//!   history at the commit point (the snapshot, then the committed log).
//! * Backup ([`backup_directory`], `DurableControlPlane::backup`,
//!   `SharedControlPlane::backup`), [`restore`] and [`salvage`]: each
//!   builds a NEW directory and never changes its source.
//!
//! # How a new directory is made
//! Backup, restore and salvage write under a temporary sibling name
//! (`.<name>.cpwal-partial`), made 0700 before anything goes in and held
//! with the exclusive lock a writer takes. Every file is created under a
//! temporary name and renamed once whole. The finished directory is read
//! back (see "Verification"); then every file is restricted to 0600 and
//! synced (`fsync`: data and mode), the directory synced (every create and
//! rename in it), renamed onto the destination, and the parent synced. So a
//! crash at any point leaves either no destination or a complete, verified
//! one: never a directory a node would open half-made (a leftover
//! `.cpwal-partial` is removed by the next run into the same destination).
//! `tests/cli_operator.rs` checks that order on the system calls of each
//! command (under `strace`).
//!
//! # Verification
//! Before it is renamed into place, each copy is opened read-only exactly
//! as `cpwal verify` opens a directory: it must need no repair, hold the
//! source's hard state, log range and snapshot, and every entry must read
//! back with its checksum. A byte copy (backup, restore) is also compared
//! file by file with a checksum of the bytes read from the source; a
//! salvage, which rewrites the entries, is compared entry by entry with
//! the source's intact prefix. A copy that fails is removed and the call
//! returns [`Error::CopyMismatch`](crate::Error::CopyMismatch).
//!
//! # Recovery modes, and why salvage is a separate command
//! RocksDB replays its WAL under one of four modes (tolerate a corrupted
//! tail, absolute consistency, point in time, skip any corrupted record)
//! and raft-engine under three (absolute consistency, tolerate tail
//! corruption, tolerate any corruption). cpwal's open has one mode, the
//! strictest that a crash allows: a tail that only a crash can explain is
//! dropped, anything else is refused (see the format's "Torn tail or
//! corruption"). [`salvage`] is the point-in-time mode, and only that: it
//! keeps the longest valid prefix of the log, because a Raft log with a
//! hole is not a log (skipping a damaged record would make a later entry
//! follow one it never followed). It runs only when an operator asks,
//! writes a new directory beside the damaged one, and reports exactly what
//! was lost, since a node that forgets committed entries or a vote is only
//! safe once the operator knows it and has no healthy peer to copy from.

mod backup;
mod examine;
mod restore;
mod salvage;
mod staging;
mod suspect_names;
mod walk;

pub use backup::{backup_directory, BackupReport};
pub(crate) use backup::{copy_plan, BackupPlan};
pub use examine::{CatalogView, Examination, HardStateCopy, HardStateCopyState, Verdict};
pub use restore::{restore, RestoreOptions, RestoreReport};
pub use salvage::{salvage, LostEntries, SalvageOptions, SalvageReport, VoteFate};
pub use suspect_names::{suspect_names_in_catalog, suspect_names_in_entry, NameKind, SuspectName};
pub use walk::{LogStop, StopReason};

/// Receives how far a long operation has come; the `cpwal` binary draws a
/// progress bar from it on a terminal. Units are bytes for copies.
pub trait Progress: Sync {
    /// `done` of `total` units are finished.
    fn update(&self, done: u64, total: u64);
}

/// No progress reporting.
impl Progress for () {
    fn update(&self, _done: u64, _total: u64) {}
}
