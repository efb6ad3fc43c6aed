//! The hard state: term, vote and the log's durable bounds, kept as two
//! checksummed copies so that neither a torn write nor one damaged copy can
//! roll it back. The layout and the crash argument are in [`crate::format`].

use std::path::{Path, PathBuf};

use crate::codec::decode_identity;
use crate::consensus::{ControlPlaneIndex, ControlPlaneTerm, DurableVoteState};
use crate::error::{CorruptionKind, Error, Result};
use crate::format::{
    HardStateSlot, FORMAT_VERSION, HARD_STATE_CRC_OFFSET, HARD_STATE_FILE_BYTES,
    HARD_STATE_FILE_NAME, HARD_STATE_MAGIC, HARD_STATE_SLOT_BYTES, IDENTITY_FIELD_BYTES,
};
use crate::identity::ClusterVoterIdentity;
use crate::io::whole_file;
use crate::io::{Access, Storage, StorageFile};
use crate::limits::MAX_END;
pub use crate::node_role::NodeRole;

/// Everything the node must never forget, in one value.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HardState {
    /// The node this directory belongs to.
    pub node: ClusterVoterIdentity,
    /// How this node takes part in consensus.
    pub role: NodeRole,
    /// The current term.
    pub term: u64,
    /// Whom this node voted for in `term`.
    pub vote: Option<ClusterVoterIdentity>,
    /// Whether `vote` is known to be granted by a quorum (openraft's
    /// committed vote: this node's leader of `term` is established). Only
    /// the openraft adapter sets it; a change of term or vote clears it.
    pub vote_committed: bool,
    /// Every index below this is committed.
    pub commit_end: u64,
    /// The first index still in the log; everything below was compacted.
    pub log_start: u64,
    /// The term of `log_start - 1` (0 when `log_start` is 0).
    pub log_start_previous_term: u64,
    /// Bumped by each suffix truncation; stamped on every record.
    pub log_epoch: u64,
    /// The first index the latest suffix truncation removed.
    pub truncated_from: u64,
}

impl HardState {
    /// The state of a brand-new node: term 0, no vote, empty log.
    pub fn new(node: ClusterVoterIdentity, role: NodeRole) -> Self {
        Self {
            node,
            role,
            term: 0,
            vote: None,
            vote_committed: false,
            commit_end: 0,
            log_start: 0,
            log_start_previous_term: 0,
            log_epoch: 0,
            truncated_from: u64::MAX,
        }
    }

    /// The term and vote as the public type.
    pub fn durable_vote(&self) -> DurableVoteState {
        DurableVoteState {
            term: ControlPlaneTerm(self.term),
            voted_for: self.vote.clone(),
        }
    }

    /// The truncation epoch stamped on live records, and the first index
    /// the latest suffix truncation removed (`None`: never truncated, which
    /// the stored value says with `u64::MAX`).
    pub fn truncation(&self) -> (u64, Option<ControlPlaneIndex>) {
        let truncated_from = (self.truncated_from != u64::MAX).then_some(self.truncated_from);
        (self.log_epoch, truncated_from.map(ControlPlaneIndex))
    }
}

/// The hard-state file and the sequence number of its latest copy.
///
/// Invariant: after [`HardStateStore::save`] returns `Ok`, both copies on
/// disk hold the saved state with sequence `self.sequence`.
#[derive(Debug)]
pub struct HardStateStore<F> {
    file: F,
    path: PathBuf,
    sequence: u64,
}

impl<F: StorageFile> HardStateStore<F> {
    /// Creates the hard-state file for a new directory with `state` in both
    /// copies, whole ([`whole_file`]: written and synced under a temporary
    /// name, then renamed into place and the directory synced), so
    /// `hardstate` is never seen half made.
    pub fn create<S: Storage<File = F>>(storage: &S, state: &HardState) -> Result<Self> {
        let temporary_path = storage.path_of(&whole_file::temporary_name(HARD_STATE_FILE_NAME));
        let file = whole_file::write_whole(storage, HARD_STATE_FILE_NAME, |file| {
            file.allocate(HARD_STATE_FILE_BYTES)
                .map_err(|e| Error::io("allocate hard state", &temporary_path, e))?;
            write_copies(file, &temporary_path, 1, state, [0, 1])
        })?;
        Ok(Self {
            file,
            path: storage.path_of(HARD_STATE_FILE_NAME),
            sequence: 1,
        })
    }

    /// Opens the hard-state file and returns the newest valid copy. A
    /// writable open then saves that state again, both copies, each synced,
    /// before the node acts on it:
    ///
    /// * what it read may exist only in the page cache: a process killed
    ///   after writing copy B but before syncing it leaves both copies equal
    ///   in memory while the disk holds the old B, and a failed sync leaves
    ///   pages marked clean that never reached the disk. The restarted node
    ///   serves that state, so it must be durable first, or a power cut
    ///   (with one copy damaged) rolls it back into a second vote;
    /// * recovery may serve one copy only (the other torn, stale or
    ///   damaged); the next save overwrites copy A first, and a crash during
    ///   it would fall back to the stale copy. Saving restores "both copies
    ///   hold the state".
    ///
    /// A crash during this save can only fall back to a state the previous
    /// process wrote and never acknowledged: this node has served nothing
    /// yet.
    pub fn open<S: Storage<File = F>>(storage: &S, access: Access) -> Result<(Self, HardState)> {
        let path = storage.path_of(HARD_STATE_FILE_NAME);
        let file = storage
            .open(HARD_STATE_FILE_NAME, access.is_writable())
            .map_err(|e| Error::io("open hard state", &path, e))?;
        let length = file
            .len()
            .map_err(|e| Error::io("stat hard state", &path, e))?;
        let readable = length.min(HARD_STATE_FILE_BYTES) as usize;
        let bytes = file
            .read_at(0, readable)
            .map_err(|e| Error::io("read hard state", &path, e))?;
        let copies = decode_copies(&bytes);
        // The serving copy and the other one.
        let newest = match copies {
            [Ok(a), Ok(b)] if b.0 > a.0 => Ok((b, 0)),
            [Ok(a), _] => Ok((a, 1)),
            [Err(_), Ok(b)] => Ok((b, 0)),
            [Err(a), Err(b)] => Err(worse_fault(a, b)),
        };
        let ((sequence, state), other_slot) = match newest {
            Ok(found) => found,
            Err(SlotFault::Version(found)) => {
                return Err(Error::UnsupportedVersion {
                    path,
                    found,
                    supported: FORMAT_VERSION,
                })
            }
            Err(_) => {
                return Err(Error::corruption(
                    &path,
                    0,
                    None,
                    CorruptionKind::HardStateUnreadable,
                ))
            }
        };
        let mut store = Self {
            file,
            path,
            sequence,
        };
        if access.is_writable() {
            // First a sync: a copy the previous process wrote but never
            // synced (it was killed) is in the page cache only, and must
            // not be torn while the other one is rewritten. Then the other
            // copy, then the serving one: the serving copy may be the only
            // valid one on disk (the other torn or rotted), so a crash while
            // a copy is rewritten always leaves the other whole.
            store.sync()?;
            store.save_in_order(&state, [other_slot, 1 - other_slot])?;
        }
        Ok((store, state))
    }

    /// Makes `state` durable: copy A, sync, copy B, sync. Returns only when
    /// both copies hold it.
    pub fn save(&mut self, state: &HardState) -> Result<()> {
        self.save_in_order(state, [0, 1])
    }

    fn sync(&self) -> Result<()> {
        sync(&self.file, &self.path)
    }

    /// Writes `state` with the next sequence into the copies in `order`,
    /// syncing after each (see [`write_copies`]).
    fn save_in_order(&mut self, state: &HardState, order: [u64; 2]) -> Result<()> {
        let sequence = self.sequence + 1;
        write_copies(&self.file, &self.path, sequence, state, order)?;
        self.sequence = sequence;
        Ok(())
    }
}

/// Writes `state` with `sequence` into the copies of `file` in `order`,
/// syncing after each: while one is written the other holds a whole state
/// (the new one, or the one it held before).
fn write_copies<F: StorageFile>(
    file: &F,
    path: &Path,
    sequence: u64,
    state: &HardState,
    order: [u64; 2],
) -> Result<()> {
    let slot = encode_slot(sequence, state);
    for copy in order {
        file.write_at(copy * HARD_STATE_SLOT_BYTES, bytemuck::bytes_of(&slot))
            .map_err(|e| Error::io("write hard state", path, e))?;
        sync(file, path)?;
    }
    Ok(())
}

fn sync<F: StorageFile>(file: &F, path: &Path) -> Result<()> {
    file.sync_data()
        .map_err(|e| Error::io("fdatasync hard state", path, e))
}

/// Why one copy of the hard state cannot serve.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum SlotFault {
    /// The file is too short to hold it.
    Missing,
    /// It fails its checksum or a field check.
    Damaged,
    /// It was written by another format version.
    Version(u32),
}

/// Each copy of the hard-state file's `bytes` (copy A, then copy B),
/// decoded and re-validated on its own, with its sequence number. The one
/// decoder behind [`HardStateStore::open`] and the operator's view of a
/// damaged directory (`crate::operate`), so both judge a copy alike.
pub(crate) fn decode_copies(bytes: &[u8]) -> [Result<(u64, HardState), SlotFault>; 2] {
    [0, 1].map(|slot| {
        let start = slot * HARD_STATE_SLOT_BYTES as usize;
        bytes
            .get(start..start + HARD_STATE_SLOT_BYTES as usize)
            .map_or(Err(SlotFault::Missing), decode_slot)
    })
}

/// Of two faulty copies, the one worth reporting: an unknown version wins
/// only when both copies agree that the file is from another version.
fn worse_fault(a: SlotFault, b: SlotFault) -> SlotFault {
    match (a, b) {
        (SlotFault::Version(x), SlotFault::Version(_)) => SlotFault::Version(x),
        (SlotFault::Version(x), SlotFault::Missing)
        | (SlotFault::Missing, SlotFault::Version(x)) => SlotFault::Version(x),
        _ => SlotFault::Damaged,
    }
}

fn encode_slot(sequence: u64, state: &HardState) -> HardStateSlot {
    let mut slot: HardStateSlot = bytemuck::Zeroable::zeroed();
    slot.magic = HARD_STATE_MAGIC;
    slot.format_version = FORMAT_VERSION;
    slot.sequence = sequence;
    slot.term = state.term;
    slot.commit_end = state.commit_end;
    slot.log_start = state.log_start;
    slot.log_start_previous_term = state.log_start_previous_term;
    slot.log_epoch = state.log_epoch;
    slot.truncated_from = state.truncated_from;
    slot.vote_committed = u32::from(state.vote_committed);
    slot.role = state.role.to_disk();
    slot.node_identity_bytes = put_identity(&mut slot.node_identity, &state.node);
    if let Some(vote) = &state.vote {
        slot.vote_bytes = put_identity(&mut slot.vote, vote);
    }
    let bytes = bytemuck::bytes_of(&slot);
    slot.crc = crc32fast::hash(&bytes[..HARD_STATE_CRC_OFFSET]);
    slot
}

fn put_identity(field: &mut [u8; IDENTITY_FIELD_BYTES], identity: &ClusterVoterIdentity) -> u32 {
    let text = identity.as_str().as_bytes();
    field[..text.len()].copy_from_slice(text);
    text.len() as u32
}

/// Decodes one copy, re-validating every field; returns its sequence.
fn decode_slot(bytes: &[u8]) -> Result<(u64, HardState), SlotFault> {
    let slot: HardStateSlot = bytemuck::pod_read_unaligned(bytes);
    if slot.magic != HARD_STATE_MAGIC {
        return Err(SlotFault::Damaged);
    }
    if slot.format_version != FORMAT_VERSION {
        return Err(SlotFault::Version(slot.format_version));
    }
    if slot.crc != crc32fast::hash(&bytes[..HARD_STATE_CRC_OFFSET]) {
        return Err(SlotFault::Damaged);
    }
    let node = get_identity(&slot.node_identity, slot.node_identity_bytes)?;
    let vote = match slot.vote_bytes {
        0 => None,
        length => Some(get_identity(&slot.vote, length)?),
    };
    let vote_committed = match slot.vote_committed {
        0 => false,
        1 => true,
        _ => return Err(SlotFault::Damaged),
    };
    let role = NodeRole::from_disk(slot.role).ok_or(SlotFault::Damaged)?;
    // Counters that are bumped (`sequence`, `log_epoch`) and the log start
    // must leave room for the arithmetic on them; cpwal never writes more.
    if slot.sequence >= MAX_END || slot.log_epoch >= MAX_END || slot.log_start > MAX_END {
        return Err(SlotFault::Damaged);
    }
    let state = HardState {
        node,
        role,
        term: slot.term,
        vote,
        vote_committed,
        commit_end: slot.commit_end,
        log_start: slot.log_start,
        log_start_previous_term: slot.log_start_previous_term,
        log_epoch: slot.log_epoch,
        truncated_from: slot.truncated_from,
    };
    Ok((slot.sequence, state))
}

fn get_identity(
    field: &[u8; IDENTITY_FIELD_BYTES],
    length: u32,
) -> Result<ClusterVoterIdentity, SlotFault> {
    let text = field.get(..length as usize).ok_or(SlotFault::Damaged)?;
    decode_identity(text).map_err(|_| SlotFault::Damaged)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn state() -> HardState {
        let node = ClusterVoterIdentity::from_certificate_subject("CN=node-a").unwrap();
        HardState {
            term: 7,
            vote: Some(ClusterVoterIdentity::from_certificate_subject("CN=node-b").unwrap()),
            vote_committed: true,
            commit_end: 12,
            log_start: 3,
            log_start_previous_term: 2,
            log_epoch: 1,
            truncated_from: 20,
            ..HardState::new(node, NodeRole::Replica)
        }
    }

    #[test]
    fn decode_slot_round_trips() {
        let slot = encode_slot(9, &state());
        assert_eq!(decode_slot(bytemuck::bytes_of(&slot)), Ok((9, state())));
    }

    #[test]
    fn decode_slot_refuses_any_single_bit_flip() {
        let slot = encode_slot(9, &state());
        let bytes = bytemuck::bytes_of(&slot).to_vec();
        for bit in (0..bytes.len() * 8).step_by(7) {
            let mut damaged = bytes.clone();
            damaged[bit / 8] ^= 1 << (bit % 8);
            assert!(decode_slot(&damaged).is_err(), "bit {bit} flip accepted");
        }
    }

    proptest! {
        #[test]
        fn decode_slot_never_panics(bytes in proptest::collection::vec(any::<u8>(), 1024)) {
            let _ = decode_slot(&bytes);
        }

        #[test]
        fn decode_slot_never_panics_on_valid_crc_over_garbage(mut bytes in proptest::collection::vec(any::<u8>(), 1024)) {
            bytes[..8].copy_from_slice(&HARD_STATE_MAGIC);
            bytes[8..12].copy_from_slice(&FORMAT_VERSION.to_le_bytes());
            let crc = crc32fast::hash(&bytes[..HARD_STATE_CRC_OFFSET]);
            bytes[HARD_STATE_CRC_OFFSET..].copy_from_slice(&crc.to_le_bytes());
            let _ = decode_slot(&bytes);
        }
    }
}
