//! cpwal's typed errors. Every variant says what went wrong and where; none is
//! a free-form string that callers would have to parse.

use std::fmt;
use std::io;
use std::path::PathBuf;
use std::sync::Arc;

use crate::decode_error::DecodeError;
use crate::identity::{ClusterVoterIdentity, IdentityError};
use crate::io::entry::{refused_kind, FileKind, ForeignFile};
use crate::node_role::NodeRole;
use crate::text::RangeNameError;

/// Everything that can go wrong in cpwal.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub enum Error {
    /// An operating-system call failed.
    Io {
        /// What cpwal was doing, e.g. `"fdatasync"`.
        operation: &'static str,
        /// The file or directory involved.
        path: PathBuf,
        /// The OS error (shared so the error can be latched and cloned).
        source: Arc<io::Error>,
    },
    /// The disk is full. Nothing acknowledged was lost; free space and retry
    /// after reopening.
    NoSpace {
        /// The file cpwal was writing.
        path: PathBuf,
    },
    /// Data that was once durable no longer reads back as written.
    Corruption(Corruption),
    /// An entry under one of cpwal's names (a segment, a snapshot, the hard
    /// state, the lock, a temporary) is not a regular file: a FIFO, a
    /// directory, a symbolic link, a device. cpwal never opens (a FIFO
    /// would block), follows or removes it; the operator must look.
    NotARegularFile {
        /// The entry.
        path: PathBuf,
        /// What it is.
        kind: FileKind,
    },
    /// The directory holds no node, and files cpwal did not write: it is
    /// probably not the directory meant, so no node is created in it (an
    /// empty directory, or one holding only `lost+found`, is fine). Nothing
    /// was written but the empty lock file.
    DirectoryNotEmpty {
        /// The directory.
        path: PathBuf,
        /// What it holds.
        foreign: Vec<ForeignFile>,
    },
    /// `open` found no node: the directory is missing, or holds no hard
    /// state (at most the leftovers of a creation that never finished). A
    /// typo, an unmounted volume or a wiped disk looks like this; opening
    /// never creates a node, so none of them silently becomes a fresh
    /// cluster. Create a node with `create` (for example
    /// [`DurableControlPlane::create`](crate::DurableControlPlane::create)).
    NoNode {
        /// The directory.
        path: PathBuf,
    },
    /// `create` found a node already in the directory; open it instead
    /// (for example with
    /// [`DurableControlPlane::open`](crate::DurableControlPlane::open)).
    /// Nothing was written.
    NodeExists {
        /// The directory.
        path: PathBuf,
    },
    /// Another process (or another handle in this one) holds the directory.
    DirectoryLocked {
        /// The data directory.
        path: PathBuf,
    },
    /// A file was written by a format version this build does not read.
    UnsupportedVersion {
        /// The file.
        path: PathBuf,
        /// The version found in the file.
        found: u32,
        /// The version this build reads and writes.
        supported: u32,
    },
    /// The directory belongs to another node.
    IdentityMismatch {
        /// The identity recorded in the directory.
        stored: ClusterVoterIdentity,
        /// The identity the caller opened it as.
        requested: ClusterVoterIdentity,
    },
    /// The directory was created for another role (sole voter or replica);
    /// opening it in this one could let a replica lead and commit alone.
    RoleMismatch {
        /// The role recorded in the directory.
        stored: NodeRole,
        /// The role the caller opened it in.
        requested: NodeRole,
    },
    /// The caller passed something cpwal refuses to store or obey.
    InvalidInput(InvalidInput),
    /// A previous storage failure made this handle unusable: its page cache
    /// can no longer be trusted (a failed fsync may have dropped dirty pages).
    /// Reopen the directory to recover from what is durable.
    Failed {
        /// The failure that stopped the handle.
        cause: Arc<Error>,
    },
    /// This node is not the leader; `leader` names the leader when known.
    NotLeader {
        /// The current leader, if this node knows one.
        leader: Option<ClusterVoterIdentity>,
    },
    /// The requested entry was compacted away behind a snapshot.
    Compacted {
        /// The index asked for.
        index: u64,
        /// The first index still in the log.
        first_index: u64,
    },
    /// A replication request that would break a Raft safety rule; nothing
    /// was changed (see [`ReplicationError`]).
    Replication(ReplicationError),
    /// Entries written through group commit were removed by a suffix
    /// truncation (a new leader's entries replaced them) before the call
    /// that wrote them returned: they are not acknowledged, and the indexes
    /// now hold other entries or none.
    Truncated {
        /// The indexes the call wrote.
        written: std::ops::Range<u64>,
        /// The first of them the truncation removed.
        removed_from: u64,
    },
    /// An append's entries were committed and applied, but what applying
    /// one of them did never reached the call (the engine applies entries
    /// in the order it writes them, and reports each outcome to its writer;
    /// this is that rule broken, a bug in cpwal worth reporting). The entry
    /// is durable and committed; read the catalog for its effect.
    OutcomeNotReported {
        /// The entry whose outcome is missing.
        index: u64,
    },
    /// The requested entry is beyond the end of the log.
    NotFound {
        /// The index asked for.
        index: u64,
        /// One past the last index in the log.
        end_index: u64,
    },
    /// A backup, restore or salvage was pointed at a destination that exists
    /// and is not an empty directory: these write only into a new one.
    DestinationNotEmpty {
        /// The destination.
        path: PathBuf,
    },
    /// A copy (backup, restore or salvage) did not read back as the state
    /// it was made from. It was removed; nothing was put in place.
    CopyMismatch {
        /// The copy, as it was being built.
        path: PathBuf,
        /// What differed.
        detail: CopyMismatch,
    },
    /// Salvage cannot build a directory a node could open from what
    /// survives (see [`Unsalvageable`]).
    Unsalvageable(Unsalvageable),
}

/// How a copy differed from the state it was made from.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum CopyMismatch {
    /// Its log holds other indexes.
    LogRange {
        /// The source's first index and one past its last.
        expected: std::ops::Range<u64>,
        /// The copy's.
        found: std::ops::Range<u64>,
    },
    /// Its hard state differs (identity, role, term, vote or log bounds).
    HardState,
    /// The entry at this index reads back differently.
    Entry {
        /// The index.
        index: u64,
    },
    /// This file's bytes differ from what was read from the source.
    FileBytes {
        /// The file name.
        name: String,
    },
    /// Its snapshot is not the source's.
    Snapshot,
    /// Opening it would repair something (a torn tail, leftover files): it
    /// was not written whole.
    NeedsRepair,
}

/// Why salvage refused to build a directory.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum Unsalvageable {
    /// No copy of the hard state survived, so the node's identity and role
    /// are unknown: the caller must name them.
    HardStateLost,
    /// The log was compacted up to `log_start` and no valid snapshot covers
    /// the entries below it.
    CompactedWithoutSnapshot {
        /// The first index the log keeps.
        log_start: u64,
    },
    /// The intact records end at `intact_end`, before the log's start: no
    /// entry the node keeps is readable, and no snapshot reaches past them.
    LogBeginsInDamage {
        /// The first index the log keeps.
        log_start: u64,
        /// One past the last intact record.
        intact_end: u64,
    },
    /// The snapshot and the log disagree about the term of `index`.
    SnapshotContradictsLog {
        /// The snapshot's last index.
        index: u64,
    },
}

/// A description of damage found in a durable file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Corruption {
    /// The damaged file.
    pub path: PathBuf,
    /// Byte offset of the damage within the file.
    pub offset: u64,
    /// The log index the damaged bytes held, when known.
    pub index: Option<u64>,
    /// What kind of damage.
    pub kind: CorruptionKind,
}

/// The kinds of damage cpwal recognises.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum CorruptionKind {
    /// A record's checksum does not match and the damage cannot be a torn
    /// write: either later durable records vouch for it, or every sector of it
    /// was written.
    ChecksumMismatch,
    /// A file does not start with the magic bytes of its kind.
    BadMagic,
    /// A length field is impossible (larger than the limit or than the file).
    ImpossibleLength {
        /// The length found.
        length: u64,
    },
    /// A record holds a different index than its position requires.
    IndexOutOfSequence {
        /// The index the position requires.
        expected: u64,
        /// The index stored.
        found: u64,
    },
    /// Segments do not follow each other: a segment is missing, stale or
    /// duplicated.
    SegmentChainBroken {
        /// What was expected at this point of the chain.
        detail: SegmentChainDetail,
    },
    /// A file is shorter than its header says.
    TruncatedFile {
        /// The length the header declares.
        expected_bytes: u64,
        /// The length found.
        actual_bytes: u64,
    },
    /// Neither copy of the hard state is valid.
    HardStateUnreadable,
    /// An entry's payload passed its checksum but does not decode.
    UndecodableEntry(DecodeError),
    /// An entry that the hard state records as committed is missing.
    CommittedEntryMissing {
        /// One past the highest committed index on record.
        commit_end: u64,
        /// One past the last index found in the log.
        log_end: u64,
    },
    /// A number a file holds (named by `field`) is beyond anything cpwal
    /// writes: an index or generation above
    /// [`MAX_INDEX`](crate::limits::MAX_INDEX) + 1, a counter at its
    /// largest value.
    OutOfRange {
        /// The field, as named in [`crate::format`].
        field: &'static str,
        /// The value found.
        value: u64,
    },
    /// The log or the snapshot holds a term above the hard state's term,
    /// which no crash leaves (a term is durable in the hard state before
    /// anything is written in it): the hard state is stale, e.g. restored
    /// from an older backup, and may have forgotten a vote.
    TermAheadOfHardState {
        /// The term found in the log (its last entry) or the snapshot.
        entry_term: u64,
        /// The hard state's term.
        hard_state_term: u64,
    },
    /// A record whose checksum holds carries a log epoch above the hard
    /// state's: it was written after a suffix truncation the hard state does
    /// not record, which no crash leaves (the hard state records a
    /// truncation before anything is written after it). The hard state is
    /// stale, e.g. restored from an older backup, and may have forgotten a
    /// vote.
    EpochAheadOfHardState {
        /// The record's log epoch.
        record_epoch: u64,
        /// The hard state's log epoch.
        hard_state_epoch: u64,
    },
    /// A snapshot whose checksums hold but whose catalog breaks an invariant
    /// (a duplicate member or range, leader terms not increasing, items out
    /// of order).
    SnapshotInvalid,
}

/// How the chain of segments is broken.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum SegmentChainDetail {
    /// The segment should start at `expected` but starts at `found`.
    IndexGap {
        /// The first index the chain requires.
        expected: u64,
        /// The first index the segment declares.
        found: u64,
    },
    /// The segment names a predecessor generation other than the one before it.
    GenerationMismatch {
        /// The generation of the segment before it.
        expected: u64,
        /// The predecessor generation it declares.
        found: u64,
    },
    /// The segment's name disagrees with its header.
    NameMismatch,
    /// The log starts after the hard state's recorded log start.
    MissingHead {
        /// The first index the hard state requires.
        expected: u64,
        /// The first index available.
        found: u64,
    },
}

/// Input cpwal refuses.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum InvalidInput {
    /// An identity failed validation.
    Identity(IdentityError),
    /// A range name breaks a rule (see [`RangeNameError`]: empty, too
    /// long, a control or invisible character at a byte offset).
    RangeName(RangeNameError),
    /// An entry's encoding is larger than a record can carry
    /// ([`MAX_RECORD_PAYLOAD_BYTES`](crate::format::MAX_RECORD_PAYLOAD_BYTES)).
    EntryTooLarge {
        /// Bytes of the entry's encoding.
        bytes: u64,
        /// The largest encoding a record carries.
        limit: u64,
    },
    /// An entry whose encoding is empty: a record carries at least one byte.
    EmptyEntry,
    /// A sole voter's batch is larger than a fresh segment holds. Its
    /// records may not span two segments (that keeps the batch atomic
    /// across a crash), so it is refused whole; split it.
    BatchTooLarge {
        /// Bytes the batch's records take.
        bytes: u64,
        /// Bytes a fresh segment holds for records.
        limit: u64,
    },
    /// A snapshot is larger than the snapshot format accepts.
    SnapshotTooLarge {
        /// Bytes of the snapshot's body.
        bytes: u64,
        /// The largest body accepted.
        limit: u64,
    },
    /// An option is out of its documented range.
    Option {
        /// The option's name.
        name: &'static str,
        /// Why its value is refused.
        reason: &'static str,
    },
    /// An index argument is out of range for the operation (for a peer's
    /// index, above [`MAX_INDEX`](crate::limits::MAX_INDEX)).
    Index {
        /// The index given.
        index: u64,
        /// Why it is refused.
        reason: &'static str,
    },
    /// A term is out of range: above
    /// [`MAX_TERM`](crate::limits::MAX_TERM), or inconsistent with the term
    /// that carries it.
    Term {
        /// The term given.
        term: u64,
        /// Why it is refused.
        reason: &'static str,
    },
}

/// Replication requests refused because obeying them would break Raft's
/// safety: they reveal a bug in the caller's consensus layer, not damage on
/// disk, so they are not latched as failures.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum ReplicationError {
    /// A leader's entries conflict with an entry this node already knows to
    /// be committed: truncating it would lose a committed entry.
    TruncatesCommitted {
        /// The first conflicting index.
        index: u64,
        /// One past the highest committed index.
        commit_end: u64,
    },
    /// Two different leaders claim the same term.
    ConflictingLeader {
        /// The term.
        term: u64,
        /// The leader this node already follows (or is).
        known: ClusterVoterIdentity,
        /// The other claimant.
        claimed: ClusterVoterIdentity,
    },
    /// `become_leader` for a term this node is not a candidate in (it does
    /// not hold its own vote in that term).
    NotCandidate {
        /// The term asked for.
        term: u64,
        /// This node's current term.
        current_term: u64,
    },
    /// A leader may only commit by counting replicas of an entry of its own
    /// term (Raft §5.4.2, figure 8); `index` has an older term.
    CommitOfOlderTerm {
        /// The index asked for.
        index: u64,
        /// Its term.
        entry_term: u64,
        /// The leader's term.
        leader_term: u64,
    },
}

/// Shorthand for results in cpwal.
pub type Result<T, E = Error> = std::result::Result<T, E>;

impl Error {
    /// Wraps an I/O error, classifying a full disk as [`Error::NoSpace`].
    /// An error out of the latched storage is already typed: it is returned
    /// as it was latched (see [`LatchedFailure`]).
    pub(crate) fn io(operation: &'static str, path: impl Into<PathBuf>, source: io::Error) -> Self {
        if let Some(latched) = LatchedFailure::unwrap(&source) {
            return latched;
        }
        let path = path.into();
        if is_no_space(&source) {
            return Error::NoSpace { path };
        }
        if let Some(kind) = refused_kind(&source) {
            return Error::NotARegularFile { path, kind };
        }
        Error::Io {
            operation,
            path,
            source: Arc::new(source),
        }
    }

    pub(crate) fn corruption(
        path: impl Into<PathBuf>,
        offset: u64,
        index: Option<u64>,
        kind: CorruptionKind,
    ) -> Self {
        Error::Corruption(Corruption {
            path: path.into(),
            offset,
            index,
            kind,
        })
    }

    /// The corruption report, if this error is one (directly or as the cause
    /// of a latched failure).
    pub fn as_corruption(&self) -> Option<&Corruption> {
        match self {
            Error::Corruption(c) => Some(c),
            Error::Failed { cause } => cause.as_corruption(),
            _ => None,
        }
    }
}

/// What an [`io::Error`] out of the latched storage
/// ([`crate::log::latch`]) carries: the latched error, and whether this call
/// is the one that failed (else it was refused after it). Defined here so
/// that [`Error::io`] recognises it without depending on the log.
#[derive(Debug)]
pub(crate) struct LatchedFailure {
    error: Arc<Error>,
    first: bool,
}

impl LatchedFailure {
    pub(crate) fn wrap(error: Arc<Error>, first: bool) -> io::Error {
        let kind = match &*error {
            Error::Io { source, .. } => source.kind(),
            Error::NoSpace { .. } => io::ErrorKind::StorageFull,
            _ => io::ErrorKind::Other,
        };
        io::Error::new(kind, Self { error, first })
    }

    /// The typed error behind `error`, if it came out of the wrapper: the
    /// latched error itself for the call that failed, [`Error::Failed`] for
    /// a call refused after it.
    pub(crate) fn unwrap(error: &io::Error) -> Option<Error> {
        let latched = error.get_ref()?.downcast_ref::<Self>()?;
        Some(match latched.first {
            true => (*latched.error).clone(),
            false => Error::Failed {
                cause: Arc::clone(&latched.error),
            },
        })
    }
}

impl fmt::Display for LatchedFailure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.first {
            true => self.error.fmt(f),
            false => write!(f, "refused after an earlier failure ({})", self.error),
        }
    }
}

impl std::error::Error for LatchedFailure {}

fn is_no_space(error: &io::Error) -> bool {
    // ENOSPC and EDQUOT both mean "no room to store this".
    matches!(error.raw_os_error(), Some(28) | Some(122))
        || error.kind() == io::ErrorKind::StorageFull
}

/// A caller's bad identity, e.g. `ClusterVoterIdentity::from_certificate_subject(s)?`
/// in a function returning [`Result`].
impl From<IdentityError> for Error {
    fn from(error: IdentityError) -> Self {
        Error::InvalidInput(InvalidInput::Identity(error))
    }
}

impl From<InvalidInput> for Error {
    fn from(input: InvalidInput) -> Self {
        Error::InvalidInput(input)
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Error::Io {
                operation,
                path,
                source,
            } => write!(f, "{operation} failed on {}: {source}", path.display()),
            Error::NoSpace { path } => write!(
                f,
                "no space left while writing {}; acknowledged data is intact",
                path.display()
            ),
            Error::Corruption(c) => c.fmt(f),
            Error::NotARegularFile { path, kind } => write!(
                f,
                "{} is a {kind}, not a regular file; cpwal never opens or removes it",
                path.display()
            ),
            Error::DirectoryNotEmpty { path, foreign } => {
                write!(f, "{} holds no cpwal node but holds", path.display())?;
                for (n, file) in foreign.iter().enumerate() {
                    let separator = if n == 0 { "" } else { "," };
                    write!(f, "{separator} {} ({})", file.path.display(), file.kind)?;
                }
                write!(f, "; a new node is only created in an empty directory")
            }
            Error::NoNode { path } => write!(
                f,
                "{} holds no cpwal node; opening never creates one: create it with `create` (a new node) if that is what is meant",
                path.display()
            ),
            Error::NodeExists { path } => write!(
                f,
                "{} already holds a cpwal node; open it with `open` instead of creating one",
                path.display()
            ),
            Error::DirectoryLocked { path } => write!(
                f,
                "{} is locked by another cpwal handle or process",
                path.display()
            ),
            Error::UnsupportedVersion {
                path,
                found,
                supported,
            } => write!(
                f,
                "{} has format version {found}; this build reads version {supported}",
                path.display()
            ),
            Error::IdentityMismatch { stored, requested } => {
                write!(f, "directory belongs to node {stored}, not to {requested}")
            }
            Error::RoleMismatch { stored, requested } => write!(
                f,
                "directory was created for a {stored} node; it cannot be opened as a {requested}"
            ),
            Error::InvalidInput(input) => write!(f, "invalid input: {input}"),
            Error::Failed { cause } => write!(
                f,
                "handle stopped after an earlier storage failure ({cause}); reopen to recover"
            ),
            Error::NotLeader {
                leader: Some(leader),
            } => {
                write!(f, "not the leader; the leader is {leader}")
            }
            Error::NotLeader { leader: None } => write!(f, "not the leader; no leader is known"),
            Error::Compacted { index, first_index } => write!(
                f,
                "index {index} was compacted; the log starts at {first_index}"
            ),
            Error::Replication(e) => write!(f, "replication safety: {e}"),
            Error::Truncated {
                written,
                removed_from,
            } => write!(
                f,
                "entries {}..{} are not acknowledged: a truncation removed the log from index {removed_from} on before they were durable",
                written.start, written.end
            ),
            Error::OutcomeNotReported { index } => write!(
                f,
                "entry {index} is committed but what applying it did was not reported to its append (a bug in cpwal)"
            ),
            Error::NotFound { index, end_index } => {
                write!(f, "index {index} is past the end of the log ({end_index})")
            }
            Error::DestinationNotEmpty { path } => write!(
                f,
                "{} exists and is not an empty directory; give a new or empty one",
                path.display()
            ),
            Error::CopyMismatch { path, detail } => write!(
                f,
                "the copy at {} did not read back as its source ({detail}); it was removed",
                path.display()
            ),
            Error::Unsalvageable(reason) => write!(f, "nothing to salvage: {reason}"),
        }
    }
}

impl std::error::Error for Error {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            Error::Io { source, .. } => Some(source.as_ref()),
            Error::Failed { cause } => Some(cause.as_ref()),
            _ => None,
        }
    }
}

impl fmt::Display for Corruption {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "corruption in {} at offset {}",
            self.path.display(),
            self.offset
        )?;
        if let Some(index) = self.index {
            write!(f, " (index {index})")?;
        }
        write!(f, ": {}", self.kind)
    }
}

impl CorruptionKind {
    /// A stable snake_case name for the kind, for scripts (the `kind` of
    /// the `cpwal` tool's JSON). Defined here, where the match is
    /// exhaustive, so a new kind cannot go without a name.
    pub fn code(&self) -> &'static str {
        match self {
            CorruptionKind::ChecksumMismatch => "checksum_mismatch",
            CorruptionKind::BadMagic => "bad_magic",
            CorruptionKind::ImpossibleLength { .. } => "impossible_length",
            CorruptionKind::IndexOutOfSequence { .. } => "index_out_of_sequence",
            CorruptionKind::SegmentChainBroken { .. } => "segment_chain_broken",
            CorruptionKind::TruncatedFile { .. } => "truncated_file",
            CorruptionKind::HardStateUnreadable => "hard_state_unreadable",
            CorruptionKind::UndecodableEntry(_) => "undecodable_entry",
            CorruptionKind::CommittedEntryMissing { .. } => "committed_entry_missing",
            CorruptionKind::OutOfRange { .. } => "out_of_range",
            CorruptionKind::TermAheadOfHardState { .. } => "term_ahead_of_hard_state",
            CorruptionKind::EpochAheadOfHardState { .. } => "epoch_ahead_of_hard_state",
            CorruptionKind::SnapshotInvalid => "snapshot_invalid",
        }
    }
}

/// Plain words for operators: what is wrong, with the numbers that show it.
impl fmt::Display for CorruptionKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            CorruptionKind::ChecksumMismatch => {
                f.write_str("checksum mismatch: the bytes changed after they were written")
            }
            CorruptionKind::BadMagic => f.write_str("the file does not start as a cpwal file of its kind"),
            CorruptionKind::ImpossibleLength { length } => {
                write!(f, "impossible length {length} (beyond the limit or the file)")
            }
            CorruptionKind::IndexOutOfSequence { expected, found } => {
                write!(f, "record holds index {found} where index {expected} belongs")
            }
            CorruptionKind::SegmentChainBroken { detail } => {
                write!(f, "segment chain broken: {detail}")
            }
            CorruptionKind::TruncatedFile {
                expected_bytes,
                actual_bytes,
            } => write!(
                f,
                "file cut short: {actual_bytes} bytes where its header declares {expected_bytes}"
            ),
            CorruptionKind::HardStateUnreadable => f.write_str(
                "no valid copy of the hard state (term, vote, log bounds): both copies are damaged or the file is missing",
            ),
            CorruptionKind::UndecodableEntry(e) => {
                write!(f, "entry passes its checksum but does not decode: {e}")
            }
            CorruptionKind::CommittedEntryMissing {
                commit_end,
                log_end,
            } => write!(
                f,
                "committed entries missing: indexes below {commit_end} are committed but the log ends before index {log_end}"
            ),
            CorruptionKind::OutOfRange { field, value } => write!(
                f,
                "{field} holds {value}, beyond what any log can reach (no crash writes it)"
            ),
            CorruptionKind::TermAheadOfHardState {
                entry_term,
                hard_state_term,
            } => write!(
                f,
                "the log holds term {entry_term} but the hard state only term {hard_state_term}: the hard state is stale (restored from an older copy?) and may have forgotten a vote"
            ),
            CorruptionKind::EpochAheadOfHardState {
                record_epoch,
                hard_state_epoch,
            } => write!(
                f,
                "a record of log epoch {record_epoch} but the hard state only knows epoch {hard_state_epoch}: the hard state is stale (restored from an older copy?) and may have forgotten a vote"
            ),
            CorruptionKind::SnapshotInvalid => f.write_str(
                "snapshot contradicts the log or breaks a catalog rule (duplicate item, leader terms not increasing)",
            ),
        }
    }
}

impl fmt::Display for SegmentChainDetail {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            SegmentChainDetail::IndexGap { expected, found } => write!(
                f,
                "segment starts at index {found} where index {expected} belongs (a segment is missing or stale)"
            ),
            SegmentChainDetail::GenerationMismatch { expected, found } => write!(
                f,
                "segment follows generation {found} but the segment before it is generation {expected} (a segment is missing or stale)"
            ),
            SegmentChainDetail::NameMismatch => {
                f.write_str("the file name disagrees with the generation in its header")
            }
            SegmentChainDetail::MissingHead { expected, found } => write!(
                f,
                "the log must start at index {expected} but the first segment starts at index {found}"
            ),
        }
    }
}

impl fmt::Display for ReplicationError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ReplicationError::TruncatesCommitted { index, commit_end } => write!(
                f,
                "entries from index {index} conflict with committed entries (committed below {commit_end})"
            ),
            ReplicationError::ConflictingLeader {
                term,
                known,
                claimed,
            } => write!(f, "{claimed} claims term {term}, which {known} already leads"),
            ReplicationError::NotCandidate { term, current_term } => write!(
                f,
                "cannot lead term {term}: this node is not a candidate in it (current term {current_term})"
            ),
            ReplicationError::CommitOfOlderTerm {
                index,
                entry_term,
                leader_term,
            } => write!(
                f,
                "a leader of term {leader_term} cannot commit index {index} of term {entry_term} by counting replicas"
            ),
        }
    }
}

impl fmt::Display for CopyMismatch {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let range = |r: &std::ops::Range<u64>| match r.end.checked_sub(1) {
            Some(last) if r.end > r.start => format!("indexes {}..={last}", r.start),
            _ => format!("no entry (next index {})", r.start),
        };
        match self {
            CopyMismatch::LogRange { expected, found } => write!(
                f,
                "its log holds {} instead of {}",
                range(found),
                range(expected)
            ),
            CopyMismatch::HardState => f.write_str("its hard state differs"),
            CopyMismatch::Entry { index } => write!(f, "entry {index} differs"),
            CopyMismatch::FileBytes { name } => write!(f, "the bytes of {name} differ"),
            CopyMismatch::Snapshot => f.write_str("its snapshot differs"),
            CopyMismatch::NeedsRepair => f.write_str("opening it would repair a partial write"),
        }
    }
}

impl fmt::Display for Unsalvageable {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Unsalvageable::HardStateLost => f.write_str(
                "no copy of the hard state survived, so the node's identity and role are unknown; name them",
            ),
            Unsalvageable::CompactedWithoutSnapshot { log_start } => write!(
                f,
                "the log was compacted up to index {log_start} and no valid snapshot holds the entries below it"
            ),
            Unsalvageable::LogBeginsInDamage {
                log_start,
                intact_end,
            } => write!(
                f,
                "the intact records end at index {intact_end}, before the log's start at index {log_start}, and no snapshot reaches past them"
            ),
            Unsalvageable::SnapshotContradictsLog { index } => write!(
                f,
                "the snapshot and the log disagree about the term of index {index}; cannot tell which is right"
            ),
        }
    }
}

impl fmt::Display for InvalidInput {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            InvalidInput::Identity(e) => e.fmt(f),
            InvalidInput::RangeName(e) => e.fmt(f),
            InvalidInput::EntryTooLarge { bytes, limit } => write!(
                f,
                "an entry of {bytes} bytes is larger than a record carries ({limit} bytes)"
            ),
            InvalidInput::EmptyEntry => write!(f, "an entry must not be empty"),
            InvalidInput::BatchTooLarge { bytes, limit } => {
                write!(f, "batch needs {bytes} bytes but a segment holds {limit}")
            }
            InvalidInput::SnapshotTooLarge { bytes, limit } => write!(
                f,
                "a snapshot body of {bytes} bytes is larger than the limit of {limit} bytes"
            ),
            InvalidInput::Option { name, reason } => write!(f, "option {name}: {reason}"),
            InvalidInput::Index { index, reason } => write!(f, "index {index}: {reason}"),
            InvalidInput::Term { term, reason } => write!(f, "term {term}: {reason}"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn question_mark_turns_an_identity_error_into_invalid_input() {
        // Goal: a caller returning cpwal's `Result` can use `?` on an
        // identity it builds, and gets the typed identity error back.
        fn build(subject: &str) -> Result<ClusterVoterIdentity> {
            Ok(ClusterVoterIdentity::from_certificate_subject(subject)?)
        }
        assert!(build("CN=a").is_ok());
        let error = build(" ").unwrap_err();
        assert!(matches!(
            error,
            Error::InvalidInput(InvalidInput::Identity(IdentityError::Blank))
        ));
        assert_eq!(error.to_string(), "invalid input: identity is blank");
    }
}
