//! # The on-disk format, version 1
//!
//! This is the one description of cpwal's files; every size and offset below
//! is defined once, here, as a constant or a `#[repr(C)]` struct, and the
//! fixtures under `fixtures/v1/` pin it.
//!
//! All integers are little-endian. (cpwal refuses to build on big-endian
//! targets rather than write a second byte order.)
//!
//! ## Media assumptions
//!
//! 1. A write that was not followed by a successful `fdatasync` may be lost
//!    entirely, kept entirely, or kept in part: each 512-byte sector is either
//!    all new or all old, in any combination. Sectors are the unit of tearing.
//! 2. A create, rename or remove is only durable after the directory is
//!    synced.
//! 3. Synced data may later rot or be misplaced; checksums detect it.
//! 4. A disk that acknowledges a flush it did not perform is out of scope.
//! 5. A process can die at any instruction while the machine runs on: the
//!    page cache, and every create, rename or remove not yet synced, survive
//!    it, unsynced, and a later power cut may still lose them. A failed
//!    `fdatasync` reports its error once and marks the pages clean, so the
//!    page cache then shows bytes the disk may not hold, and a later sync
//!    does not write them again. What a writable open reads may therefore
//!    be in the page cache only: see "What a writable open makes durable".
//!
//! ## Directory
//!
//! ```text
//! LOCK                     empty; flock'ed by the one writer (shared by readers)
//! hardstate                two copies of the hard state (term, vote, log bounds)
//! segment-<generation>     log segments, <generation> 20 decimal digits
//! snapshot-<index_end>     the catalog with entries below <index_end> applied,
//!                          <index_end> 20 decimal digits
//! hardstate.tmp            files being created; removed by recovery
//! segment-<generation>.tmp
//! segment-spare.tmp
//! snapshot-<index_end>.tmp
//! ```
//!
//! The directory is 0700 and every file 0600 when cpwal creates them. Each
//! of these names must be a regular file; anything else under one (a FIFO,
//! a directory, a symbolic link) is
//! [`Error::NotARegularFile`](crate::Error::NotARegularFile) and is never
//! opened or removed. Any other name is *foreign*: reported
//! ([`RecoveryReport::foreign_files`](crate::RecoveryReport)), never read,
//! changed or removed; `lost+found` is ignored. Names are compared as bytes
//! (one that is not UTF-8 is foreign). The rule lives in one place,
//! `src/directory.rs`.
//!
//! ## `hardstate` (2048 bytes)
//!
//! Two copies of one [`HardStateSlot`], at offsets 0 and 1024; each copy
//! spans two whole sectors of its own. An update writes copy A, syncs, writes
//! copy B, syncs, both with the same new `sequence`. Recovery takes the valid
//! copy with the highest `sequence`:
//!
//! * a crash while A is written leaves B (the previous state, never
//!   acknowledged as replaced) — correct;
//! * a crash while B is written leaves A (the new state) — correct;
//! * once an update returned, both copies hold it, so damage to either copy
//!   still leaves the acknowledged state: the engine never falls back to an
//!   older vote, which would be a double vote;
//! * a writable open saves the state it recovered again before acting on it
//!   (see "What a writable open makes durable"): recovery may serve one
//!   copy only (the other torn, stale or damaged), and the next update
//!   overwrites copy A first, so without that a crash during it would fall
//!   back to the stale copy (an older vote) or to no valid copy;
//! * both copies invalid is
//!   [`CorruptionKind::HardStateUnreadable`](crate::CorruptionKind::HardStateUnreadable).
//!
//! ```text
//! offset size field
//!      0    8 magic                     "CPWALHST"
//!      8    4 format_version            1
//!     12    4 node_identity_bytes       1..=255
//!     16    8 sequence                  bumped by every update
//!     24    8 term                      current term
//!     32    8 commit_end                indexes below it are committed
//!     40    8 log_start                 first index kept (below: compacted)
//!     48    8 log_start_previous_term   term of log_start - 1 (0 if none)
//!     56    8 log_epoch                 bumped by every suffix truncation
//!     64    8 truncated_from            first index removed by the last truncation
//!     72    4 vote_bytes                0 = no vote in `term`
//!     76    4 vote_committed            1 = the vote was granted by a quorum
//!                                       (openraft's `Vote::committed`), else 0
//!     80  255 node_identity             this node; padded with zeros
//!    335  255 vote                      voted-for identity; padded with zeros
//!    590    2 role                      0 = sole voter, 1 = replica (see below)
//!    592  428 reserved                  zero
//!   1020    4 crc32                     of bytes 0..1020
//! ```
//!
//! ## `segment-<generation>` (`segment_size_bytes`, allocated in full)
//!
//! A [`SegmentHeader`] at offset 0, then records, then zeros up to the end
//! of the file. Every record starts at an 8-byte aligned offset; since
//! segment format version 2 the records one sync writes start at a sector
//! boundary (the first sync at 512, after the header's sector), and the
//! bytes between the end of one sync's records and the next boundary are
//! zero padding. So a sector never holds records of two syncs, and rot that
//! zeroes a sector cannot pass for a tear unless it is in the last sync
//! (see "Torn tail or corruption"). In a version 1 segment the records
//! follow each other without gaps. Segments are
//! created under a temporary name (`segment-<generation>.tmp`, or the spare
//! `segment-spare.tmp` allocated while the previous segment filled), allocated
//! in full, given their header, synced, renamed and the directory synced; so
//! every segment under its final name has a valid header, and such a
//! temporary file is a leftover that recovery removes (a creation that
//! fails, on a full disk say, removes its own). Generations increase by one
//! per segment created, and stay at most `MAX_INDEX + 1` (as does
//! `first_index`; a larger value is
//! [`CorruptionKind::OutOfRange`](crate::CorruptionKind::OutOfRange));
//! each header names its predecessor, so a missing, stale or duplicated
//! segment breaks the chain and is reported.
//!
//! ```text
//! segment header (64 bytes)
//! offset size field
//!      0    8 magic                 "CPWALSEG"
//!      8    4 format_version        2 (1: no sync padding, still read)
//!     12    4 header_bytes          64
//!     16    8 generation            also in the file name
//!     24    8 previous_generation   generation of the segment before (0: none)
//!     32    8 first_index           index of the first record
//!     40    8 size_bytes            the file's allocated length
//!     48   12 reserved              zero
//!     60    4 crc32                 of bytes 0..60
//!
//! record (8-byte aligned; 48-byte header, payload, zero padding, 8-byte trailer)
//! offset size field
//!      0    4 magic                 0x4C415743 ("CWAL")
//!      4    4 payload_bytes         1..=MAX_RECORD_PAYLOAD_BYTES (64 KiB)
//!      8    8 log_epoch             hard state's log_epoch when written
//!     16    8 index                 the entry's log index
//!     24    8 term                  the entry's term
//!     32    8 durable_end           every index below it was durable before
//!                                   this record was written (filled in, and
//!                                   the checksum computed, when the record
//!                                   reaches the file, not when it is framed)
//!     40    8 commit_end            every index below it is committed, once
//!                                   this record is durable: for a sole voter
//!                                   one past the record's batch (every
//!                                   record of a batch carries the batch's
//!                                   end); for a replica the commit point it
//!                                   knew
//!     48    n payload               the encoded entry (see codec)
//!   48+n    p padding               zeros to an 8-byte boundary
//!      …    4 crc32                 of salt ‖ header ‖ payload ‖ padding
//!      …    4 end_magic             0x444E4557 ("WEND")
//! salt = generation (8 bytes) ‖ record offset in the file (8 bytes)
//! ```
//!
//! The salt makes a record valid only in the file and at the offset it was
//! written to: a stale or misdirected copy fails its checksum.
//!
//! ## Torn tail or corruption
//!
//! A record that fails its check at recovery is a *torn tail* (never
//! acknowledged; dropped) only if all of these hold, and *corruption* (a
//! typed error naming file, offset and index) otherwise:
//!
//! 1. it is in the last segment (a segment is synced before the next one is
//!    created);
//! 2. no later record in the file vouches for it: every live record carries
//!    `durable_end`, and one with `durable_end` above the failed index proves
//!    the failed record had been synced;
//! 3. its index is not below the hard state's `commit_end`;
//! 4. the failure has the shape of a tear: some sector of the record is still
//!    at its pre-write content, zero. A written record never holds a zero
//!    sector — its header starts with a non-zero magic, its trailer ends with
//!    one, and no payload codec writes more than
//!    [`MAX_PAYLOAD_ZERO_RUN_BYTES`] zeros in a row (the header's fields
//!    and padding add fewer than 64), so every sector-aligned piece of a
//!    record holds a non-zero byte, however long the record — so a failed
//!    record whose sectors all hold data was written whole and then damaged.
//!
//! After zero padding that ends at a sector boundary (version 2), the
//! record at the boundary is the next sync's first: a valid one continues
//! the scan; a missing or failing one is judged as itself, at its own offset
//! (its first sector is whole or old, so a bad header there is no tear).
//! Except where the last suffix truncation cut the log: what lies past the
//! cut was written by an older sync, and is judged from the cut.
//!
//! **Batches.** A sole voter's batch (one call's entries) is atomic across
//! errors and crashes. Every record of it carries the batch's end as
//! `commit_end`, which is true only once all of them are durable, so in the
//! last segment a run of records whose `commit_end` lies beyond the
//! recovered end is an incomplete batch, never acknowledged, and recovery
//! drops it with the tail. A batch never spans segments: when it does not fit
//! in the tail the log rolls over before writing any of it, and one larger
//! than a segment is refused, so a failed rollover (a full disk) leaves none
//! of it. (A replica's batch may be cut by a crash: its entries are not
//! committed by being written, and a leader resends what a follower lacks.)
//!
//! **What rot can still hide.** Every sync's records start a sector of their
//! own and vouch, through `durable_end`, for every sync that completed
//! before they were written; so a zeroed sector that holds records of an
//! earlier sync is vouched for by the later ones and is corruption. Only a
//! zeroed sector in the records of the *last* sync has the shape of a tear;
//! those records, and only they, are dropped and named in the recovery
//! report ([`DroppedTail::indexes`](crate::DroppedTail::indexes)) — unless
//! the sector held every byte of that sync, which then leaves no trace at
//! all.
//!
//! The bytes of a dropped tail are zeroed and synced before the log accepts
//! a new write, so the next tear is again measured against zeros.
//!
//! ## What a writable open makes durable
//!
//! A node killed and restarted (or reopened after a failed sync) reads the
//! page cache, which may hold what never reached the disk (media assumption
//! 5). Before it serves a read or acknowledges anything, a writable open
//! makes durable everything it is about to trust:
//!
//! 1. the data directory's entry in its parent: the parent is synced;
//! 2. the hard state: the file is synced (a copy written but never synced
//!    by a killed process must not tear while the other is rewritten), then
//!    the recovered state is written to the copy that did not serve, synced,
//!    then to the serving copy, synced — a crash at any step leaves one
//!    whole copy holding either the recovered state or a state the previous
//!    process wrote and never acknowledged;
//! 3. the tail segment: its records from the first one its last record does
//!    not vouch for are written again byte for byte, the rest of the
//!    segment is written with zeros, and the file is synced (rewriting
//!    dirties the pages, so they are written back even if a failed sync
//!    marked them clean); earlier segments were synced in full before the
//!    next was created;
//! 4. the directory: every create, rename and remove the previous process
//!    made, and those of recovery itself, are synced.
//!
//! A version 1 tail then gets a successor segment of version 2, so the two
//! layouts never share a file.
//!
//! ## Truncation and compaction
//!
//! A suffix truncation at index `t` first removes the segments that start
//! above `t` (newest first, syncing the directory after each; a segment of
//! removed records must not outlive the hard-state change, or recovery
//! would find dead records in a segment that is not the last), then makes
//! the hard state durable with `log_epoch + 1`, `truncated_from = t` and the
//! node's commit point (the removed records may have been its only
//! carriers), then zeroes and syncs the removed records of the tail. A
//! record is *live* if its `log_epoch` is the hard state's or its index is
//! below `truncated_from`; recovery treats any other record as removed and
//! finishes the zeroing. So a crash at any step leaves a prefix of the old
//! log that reaches at least index `t - 1` (the truncated entries are never
//! committed, so losing some early is safe), or the truncated log; never
//! removed entries after kept-new ones.
//!
//! Compaction makes `log_start` durable in the hard state first, then removes
//! whole segments below it, oldest first. A crash leaves extra head segments,
//! which recovery removes; never a hole.
//!
//! ## `snapshot-<index_end>` (64-byte header, then the body)
//!
//! The control-plane catalog after applying every entry below `index_end`.
//! Written whole under `snapshot-<index_end>.tmp`, synced, renamed, and the
//! directory synced; so a file under its final name was complete and synced
//! before it appeared, and damage to it is corruption, never a crash
//! artifact. Recovery uses the snapshot with the highest `index_end` and
//! removes older ones (and `.tmp` leftovers); a newer snapshot is durable
//! before any older one is removed.
//!
//! ```text
//! snapshot header (64 bytes)
//! offset size field
//!      0    8 magic                 "CPWALSNP"
//!      8    4 format_version        1
//!     12    4 header_bytes          64
//!     16    8 index_end             entries below it are applied (also in the name)
//!     24    8 last_term             term of index_end - 1 (0 when index_end is 0)
//!     32    8 body_bytes            at most MAX_SNAPSHOT_BODY_BYTES
//!     40    4 body_crc32            of the body
//!     44   16 reserved              zero
//!     60    4 crc32                 of bytes 0..60
//!
//! body
//!      0    8 refused_count         entries the catalog refused so far
//!      8    4 item_count
//!     12    … items, each: 2-byte length n, then n bytes of one entry in the
//!             codec's encoding (see codec): every member as an Admit, then
//!             every range as an OwnershipTransition (its owner and epoch),
//!             then the leader history as LeaderConfiguration entries in
//!             strictly increasing term. Nothing may follow the last item.
//! ```
//!
//! ## Compaction with a snapshot
//!
//! 1. the snapshot at `index_end` is made durable (above);
//! 2. the hard state records the new `log_start` (at most `index_end`, with
//!    the term before it and the current commit point), synced;
//! 3. segments wholly below `log_start` are removed, oldest first, each
//!    followed by a directory sync;
//! 4. older snapshots are removed and the directory synced.
//!
//! A crash after 1 leaves an extra snapshot; after 2 extra head segments;
//! after 3 extra old snapshots — recovery removes each. It never leaves a
//! hole: `log_start` is durable only after the snapshot covering the entries
//! below it, and recovery refuses a `log_start` above the newest snapshot's
//! `index_end` as
//! [`CorruptionKind::CommittedEntryMissing`](crate::CorruptionKind::CommittedEntryMissing).
//!
//! ## Installing a leader's snapshot
//!
//! A follower that receives a snapshot ending at `index_end` beyond its
//! commit point: if its log holds `index_end - 1` with the snapshot's last
//! term, it makes the snapshot file durable as above, compacts up to
//! `index_end` as above and keeps the entries after it. Otherwise it (1)
//! truncates every uncommitted entry (see "Truncation"), (2) makes the
//! snapshot file durable, (3) saves the hard state with
//! `log_start = index_end` and `commit_end = index_end`, (4) creates an
//! empty segment (next generation) starting at `index_end`, (5) removes
//! every older segment, oldest first, then (6) older snapshots. Recovery:
//! after 1 the log ends at the commit point and there is no new snapshot (a
//! plain truncation); after 2 the newest snapshot ends beyond the log, which
//! is only ever an interrupted install, so the restart (3–5) is finished;
//! after 3 every segment lies below `log_start`, so they are replaced by an
//! empty segment at it; after 4 the older segments are a compacted head. A
//! log that holds `index_end - 1` with another term than the snapshot's is
//! refused as [`CorruptionKind::SnapshotInvalid`](crate::CorruptionKind::SnapshotInvalid):
//! step 1 cuts at the commit point, below `index_end`, before the snapshot
//! is durable, so no crash leaves it. (Writing the snapshot first, as an
//! earlier version did, left it after a crash between the two steps: the
//! node then refused to open.)
//!
//! ## openraft storage (feature `openraft`)
//!
//! A replicated node (`src/raft/`) keeps its files in two locked
//! subdirectories of its data directory: `log/` (a `hardstate` and
//! segments exactly as above) and `snapshot/` (one `snapshot` file below).
//!
//! **Log id.** openraft runs with `single-term-leader`, so a log id is
//! `(term, index)`: the record's term and position. Nothing more is stored.
//!
//! **Vote.** openraft's vote `(term, voted_for, committed)` is the hard
//! state's `term`, `vote` (the identity bound to the node id, see
//! `src/raft/node_id.rs`) and `vote_committed`.
//!
//! **Entry envelope** (a record's payload), version 1, little-endian:
//!
//! ```text
//! size field
//!    1 envelope_version          1
//!    1 kind                      1 blank, 2 normal, 3 membership
//! normal:     a control-plane entry in the codec encoding (crate::codec)
//! membership: 1 config_count (1..=2)
//!             per config: 2 voter_count (<= 64), 8 node_id each
//!             2 node_count (<= 64; every voter listed)
//!             per node:   8 node_id, 1 identity_bytes (0 = none), identity,
//!                         1 address_bytes (<= 255), address (UTF-8)
//! ```
//!
//! An envelope holds at most 18 zero bytes in a row (a zero identity or
//! address length sits between two node ids, and ids are distinct; see
//! `MAX_ENVELOPE_ZERO_RUN_BYTES` in `src/raft/envelope.rs`), within
//! [`MAX_PAYLOAD_ZERO_RUN_BYTES`], so the torn-write argument above still
//! holds: a record never holds a zero sector. Its largest encoding (a
//! membership of 64 nodes with 255-byte identities and addresses, 34 313
//! bytes) is within [`MAX_RECORD_PAYLOAD_BYTES`].
//!
//! **`snapshot`** (written to `snapshot.tmp`, synced, renamed over
//! `snapshot`, directory synced — so it is always whole):
//!
//! ```text
//! offset size field
//!      0    8 magic                 "CPWRAFTS"
//!      8    4 format_version        1
//!     12    4 body_crc              crc32 of the body
//!     16    8 body_bytes            at most 1 GiB, exactly the rest of the file
//!     24      body:
//!               1+16 last_applied log id      (flag, then term and index)
//!               1+16 last_membership log id   (flag, then term and index)
//!                    membership               (as in the envelope)
//!               2+n  snapshot_id              (UTF-8)
//!               8+n  catalog                  a whole `snapshot-<index_end>`
//!                                             file image (above), which
//!                                             carries its own checksums
//! ```
//!
//! The snapshot's bytes are also what a leader sends a lagging follower,
//! which verifies them the same way before installing. openraft purges the
//! log only below a durable snapshot, and after a restart re-applies the
//! committed entries after the snapshot, so `snapshot` plus `log/` always
//! hold every applied entry.
//!
//! ## Version changes
//!
//! * Segments 2 — each sync's records start at a sector boundary (zero
//!   padding before them); a sole voter's records carry their batch's end as
//!   `commit_end`. A build that reads only version 1 would take the padding
//!   for a tear and drop acknowledged records, so it must refuse these
//!   segments, and does: their header says 2. This build reads both, and
//!   never appends to a version 1 segment. Every other file stays version 1.
//!
//! * 1 — the first format. Bytes 590..592 of a hard-state copy, reserved and
//!   zero before, hold the node's role (0 sole voter, 1 replica), so older
//!   directories read as sole voters — the only role they could have had.
//!   A node opened in the other role is refused
//!   ([`Error::RoleMismatch`](crate::Error::RoleMismatch)): a replica's
//!   directory opened as a sole voter would lead and commit on its own.
//!   Bytes 76..80 of a hard-state copy, reserved and
//!   zero until the openraft adapter, now hold `vote_committed` (0 or 1), so
//!   files written before read as "vote not committed".
//!
//! * 1, unchanged layout — the record payload limit, `MAX_ENTRY_BYTES`
//!   (1292) at first, is [`MAX_RECORD_PAYLOAD_BYTES`] (64 KiB), so that the
//!   openraft envelope's largest membership fits; and a segment may be
//!   larger than `segment_size_bytes` when one record needs it. Files
//!   written before read unchanged; a build from before refuses a record
//!   above 1292 bytes as `ImpossibleLength`.
//!
//! A file with another `format_version` is refused with
//! [`Error::UnsupportedVersion`](crate::Error::UnsupportedVersion); cpwal never
//! guesses at a format it does not know.

use std::mem::offset_of;

use bytemuck::{Pod, Zeroable};

#[cfg(target_endian = "big")]
compile_error!("cpwal's on-disk structs are little-endian; big-endian targets are not supported");

/// The format version of every file this build writes, segments aside.
pub const FORMAT_VERSION: u32 = 1;

/// The format version of the segments this build writes (see "Version
/// changes"); it reads segments of versions 1 and 2.
pub const SEGMENT_FORMAT_VERSION: u32 = 2;

/// The oldest segment format version this build reads.
pub const OLDEST_SEGMENT_FORMAT_VERSION: u32 = 1;

/// The unit a torn write preserves or loses whole.
pub const SECTOR_BYTES: u64 = 512;

/// Every record starts at a multiple of this.
pub const RECORD_ALIGNMENT_BYTES: u64 = 8;

/// Name of the hard-state file.
pub const HARD_STATE_FILE_NAME: &str = "hardstate";
/// Prefix of segment file names; the generation follows as 20 digits.
pub const SEGMENT_FILE_PREFIX: &str = "segment-";
/// Prefix of snapshot file names; `index_end` follows as 20 digits.
pub const SNAPSHOT_FILE_PREFIX: &str = "snapshot-";
/// Magic of a snapshot header.
pub const SNAPSHOT_MAGIC: [u8; 8] = *b"CPWALSNP";
/// Bytes of the snapshot header; the body starts here.
pub const SNAPSHOT_HEADER_BYTES: u64 = 64;
/// Offset of the snapshot header's checksum; it covers every byte before it.
pub const SNAPSHOT_HEADER_CRC_OFFSET: usize = SNAPSHOT_HEADER_BYTES as usize - 4;
/// The largest snapshot body accepted (G7: a damaged length cannot make
/// recovery allocate without bound).
pub const MAX_SNAPSHOT_BODY_BYTES: u64 = 256 << 20;

/// The header at the start of every snapshot file (see the byte diagram).
#[allow(missing_docs)]
#[repr(C)]
#[derive(Debug, Clone, Copy, Pod, Zeroable)]
pub struct SnapshotHeader {
    pub magic: [u8; 8],
    pub format_version: u32,
    pub header_bytes: u32,
    pub index_end: u64,
    pub last_term: u64,
    pub body_bytes: u64,
    pub body_crc: u32,
    pub reserved: [u8; 16],
    pub crc: u32,
}

/// Where the snapshot header's `index_end` field starts.
pub const SNAPSHOT_INDEX_END_OFFSET: u64 = offset_of!(SnapshotHeader, index_end) as u64;
/// Where the snapshot header's `last_term` field starts.
pub const SNAPSHOT_LAST_TERM_OFFSET: u64 = offset_of!(SnapshotHeader, last_term) as u64;
/// Where the snapshot header's `body_bytes` field starts.
pub const SNAPSHOT_BODY_BYTES_OFFSET: u64 = offset_of!(SnapshotHeader, body_bytes) as u64;

/// The file name of the snapshot covering the entries below `index_end`.
pub fn snapshot_file_name(index_end: u64) -> String {
    format!("{SNAPSHOT_FILE_PREFIX}{index_end:020}")
}

/// The `index_end` a snapshot file name carries, if it is one.
pub fn parse_snapshot_file_name(name: &str) -> Option<u64> {
    let digits = name.strip_prefix(SNAPSHOT_FILE_PREFIX)?;
    if digits.len() != 20 || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    digits.parse().ok()
}

/// Suffix of a file that is still being created.
pub const TEMPORARY_FILE_SUFFIX: &str = ".tmp";

/// The spare segment's name (the next segment, prepared while the tail
/// fills): a temporary file, removed by recovery if a crash leaves it
/// behind.
pub const SPARE_SEGMENT_FILE_NAME: &str = "segment-spare.tmp";

/// Magic of the hard-state slot.
pub const HARD_STATE_MAGIC: [u8; 8] = *b"CPWALHST";
/// Bytes of one hard-state copy; two sectors, so copies never share a sector.
pub const HARD_STATE_SLOT_BYTES: u64 = 1024;
/// Bytes of the hard-state file: two copies.
pub const HARD_STATE_FILE_BYTES: u64 = 2 * HARD_STATE_SLOT_BYTES;
/// Room for an identity in the hard state.
pub const IDENTITY_FIELD_BYTES: usize = crate::identity::MAX_IDENTITY_BYTES;

/// One copy of the hard state. Fields are described in the byte diagram above.
#[allow(missing_docs)]
#[repr(C)]
#[derive(Debug, Clone, Copy, Pod, Zeroable)]
pub struct HardStateSlot {
    pub magic: [u8; 8],
    pub format_version: u32,
    pub node_identity_bytes: u32,
    pub sequence: u64,
    pub term: u64,
    pub commit_end: u64,
    pub log_start: u64,
    pub log_start_previous_term: u64,
    pub log_epoch: u64,
    pub truncated_from: u64,
    pub vote_bytes: u32,
    /// 1 when the vote in `term` is known granted by a quorum, else 0. Was
    /// `reserved` (always 0) before the openraft adapter, so older files read
    /// as "not committed"; any other value is damage.
    pub vote_committed: u32,
    pub node_identity: [u8; IDENTITY_FIELD_BYTES],
    pub vote: [u8; IDENTITY_FIELD_BYTES],
    /// `NodeRole` as stored: 0 sole voter, 1 replica. Reserved (zero) before
    /// roles were stored, so older directories read as sole voters, which is
    /// all they could be.
    pub role: u16,
    pub reserved1: [u8; 428],
    pub crc: u32,
}

/// Offset of the checksum within a hard-state slot; it covers every byte
/// before it.
pub const HARD_STATE_CRC_OFFSET: usize = HARD_STATE_SLOT_BYTES as usize - 4;

/// Magic of a segment header.
pub const SEGMENT_MAGIC: [u8; 8] = *b"CPWALSEG";
/// Bytes of the segment header; records start here.
pub const SEGMENT_HEADER_BYTES: u64 = 64;
/// Offset of the segment header's checksum; it covers every byte before it.
pub const SEGMENT_HEADER_CRC_OFFSET: usize = SEGMENT_HEADER_BYTES as usize - 4;

/// The header at the start of every segment file (see the byte diagram).
#[allow(missing_docs)]
#[repr(C)]
#[derive(Debug, Clone, Copy, Pod, Zeroable)]
pub struct SegmentHeader {
    pub magic: [u8; 8],
    pub format_version: u32,
    pub header_bytes: u32,
    pub generation: u64,
    pub previous_generation: u64,
    pub first_index: u64,
    pub size_bytes: u64,
    pub reserved: [u8; 12],
    pub crc: u32,
}

/// Where the segment header's `generation` field starts.
pub const SEGMENT_GENERATION_OFFSET: u64 = offset_of!(SegmentHeader, generation) as u64;
/// Where the segment header's `previous_generation` field starts.
pub const SEGMENT_PREVIOUS_GENERATION_OFFSET: u64 =
    offset_of!(SegmentHeader, previous_generation) as u64;
/// Where the segment header's `first_index` field starts.
pub const SEGMENT_FIRST_INDEX_OFFSET: u64 = offset_of!(SegmentHeader, first_index) as u64;
/// Where the segment header's `size_bytes` field starts.
pub const SEGMENT_SIZE_OFFSET: u64 = offset_of!(SegmentHeader, size_bytes) as u64;

/// First bytes of every record.
pub const RECORD_MAGIC: u32 = u32::from_le_bytes(*b"CWAL");
/// Last bytes of every record.
pub const RECORD_END_MAGIC: u32 = u32::from_le_bytes(*b"WEND");
/// Bytes of a record header.
pub const RECORD_HEADER_BYTES: u64 = 48;
/// Bytes of a record trailer.
pub const RECORD_TRAILER_BYTES: u64 = 8;

/// The fixed header in front of every record's payload (see the byte diagram).
#[allow(missing_docs)]
#[repr(C)]
#[derive(Debug, Clone, Copy, PartialEq, Eq, Pod, Zeroable)]
pub struct RecordHeader {
    pub magic: u32,
    pub payload_bytes: u32,
    pub log_epoch: u64,
    pub index: u64,
    pub term: u64,
    pub durable_end: u64,
    pub commit_end: u64,
}

/// The trailer after every record's padding (see the byte diagram).
#[allow(missing_docs)]
#[repr(C)]
#[derive(Debug, Clone, Copy, PartialEq, Eq, Pod, Zeroable)]
pub struct RecordTrailer {
    pub crc: u32,
    pub end_magic: u32,
}

/// The checks every file header gets, in the order the version rules
/// require: the magic first (is this our file at all?), then the format
/// version (a future version may lay the rest out differently, so its
/// checksum means nothing to us), then the checksum and declared header size.
/// `readable` is the oldest version of this kind of file this build reads;
/// the newest is the one it writes.
pub(crate) fn check_file_header(
    path: &std::path::Path,
    magic_matches: bool,
    format_version: u32,
    readable: std::ops::RangeInclusive<u32>,
    checksum_and_size_match: bool,
) -> crate::Result<()> {
    use crate::{CorruptionKind, Error};
    if !magic_matches {
        return Err(Error::corruption(path, 0, None, CorruptionKind::BadMagic));
    }
    if !readable.contains(&format_version) {
        return Err(Error::UnsupportedVersion {
            path: path.to_path_buf(),
            found: format_version,
            supported: *readable.end(),
        });
    }
    if !checksum_and_size_match {
        let kind = CorruptionKind::ChecksumMismatch;
        return Err(Error::corruption(path, 0, None, kind));
    }
    Ok(())
}

/// The largest payload one record carries: the one limit of the record
/// framing. Every payload codec's maximum fits, as compile-time assertions
/// beside each codec check (the control-plane entry,
/// [`crate::codec::MAX_ENTRY_BYTES`] ≈ 1.3 KiB; the openraft envelope, whose
/// largest membership — 64 nodes with 255-byte identities and addresses —
/// is ≈ 34 KiB). A segment holds any record: one that does not fit in a
/// segment of the configured size gets a segment just large enough.
pub const MAX_RECORD_PAYLOAD_BYTES: usize = 64 << 10;

/// The longest run of zero bytes a payload codec may write. The torn-write
/// rule ("Torn tail or corruption", 4) needs every run of zeros inside a
/// record to be shorter than a sector; a record's header, padding and
/// trailer contribute fewer than 64 more.
pub const MAX_PAYLOAD_ZERO_RUN_BYTES: usize = 32;

const _: () = assert!(MAX_PAYLOAD_ZERO_RUN_BYTES + 64 < SECTOR_BYTES as usize);
const _: () = assert!(MAX_RECORD_PAYLOAD_BYTES <= u32::MAX as usize);

/// Where the first sync's records start in a segment of the current
/// version: the header's sector holds the header alone, and each sync's
/// write starts at a sector boundary.
pub const FIRST_SYNC_OFFSET: u64 = SEGMENT_HEADER_BYTES.div_ceil(SECTOR_BYTES) * SECTOR_BYTES;

/// The length of a segment that holds one record of `payload_bytes` in its
/// first sync, rounded up to 4096 bytes as segment sizes are.
pub const fn segment_bytes_holding(payload_bytes: u64) -> u64 {
    (FIRST_SYNC_OFFSET + record_bytes(payload_bytes)).div_ceil(4096) * 4096
}

/// Bytes a record with `payload_bytes` of payload occupies on disk.
pub const fn record_bytes(payload_bytes: u64) -> u64 {
    align_up(RECORD_HEADER_BYTES + payload_bytes) + RECORD_TRAILER_BYTES
}

/// `offset` rounded up to [`RECORD_ALIGNMENT_BYTES`].
pub const fn align_up(offset: u64) -> u64 {
    offset.div_ceil(RECORD_ALIGNMENT_BYTES) * RECORD_ALIGNMENT_BYTES
}

/// The file name of the segment of `generation`.
pub fn segment_file_name(generation: u64) -> String {
    format!("{SEGMENT_FILE_PREFIX}{generation:020}")
}

/// The generation a segment file name carries, if it is one.
pub fn parse_segment_file_name(name: &str) -> Option<u64> {
    let digits = name.strip_prefix(SEGMENT_FILE_PREFIX)?;
    if digits.len() != 20 || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    digits.parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn struct_sizes_match_the_documented_layout() {
        assert_eq!(
            std::mem::size_of::<HardStateSlot>() as u64,
            HARD_STATE_SLOT_BYTES
        );
        assert_eq!(
            std::mem::offset_of!(HardStateSlot, crc),
            HARD_STATE_CRC_OFFSET
        );
        assert_eq!(std::mem::offset_of!(HardStateSlot, node_identity), 80);
        assert_eq!(std::mem::offset_of!(HardStateSlot, vote), 335);
        assert_eq!(
            std::mem::size_of::<SegmentHeader>() as u64,
            SEGMENT_HEADER_BYTES
        );
        assert_eq!(
            std::mem::offset_of!(SegmentHeader, crc),
            SEGMENT_HEADER_CRC_OFFSET
        );
        assert_eq!(
            std::mem::size_of::<SnapshotHeader>() as u64,
            SNAPSHOT_HEADER_BYTES
        );
        assert_eq!(
            std::mem::offset_of!(SnapshotHeader, crc),
            SNAPSHOT_HEADER_CRC_OFFSET
        );
        assert_eq!(std::mem::offset_of!(SnapshotHeader, body_crc), 40);
        // The diagrams' offsets of the fields errors point at.
        assert_eq!(SEGMENT_GENERATION_OFFSET, 16);
        assert_eq!(SEGMENT_PREVIOUS_GENERATION_OFFSET, 24);
        assert_eq!(SEGMENT_FIRST_INDEX_OFFSET, 32);
        assert_eq!(SEGMENT_SIZE_OFFSET, 40);
        assert_eq!(SNAPSHOT_INDEX_END_OFFSET, 16);
        assert_eq!(SNAPSHOT_LAST_TERM_OFFSET, 24);
        assert_eq!(SNAPSHOT_BODY_BYTES_OFFSET, 32);
        assert_eq!(
            std::mem::size_of::<RecordHeader>() as u64,
            RECORD_HEADER_BYTES
        );
        assert_eq!(
            std::mem::size_of::<RecordTrailer>() as u64,
            RECORD_TRAILER_BYTES
        );
    }

    #[test]
    fn record_bytes_are_aligned() {
        assert_eq!(record_bytes(1), 48 + 8 + 8);
        assert_eq!(record_bytes(8), 48 + 8 + 8);
        assert_eq!(record_bytes(9), 48 + 16 + 8);
        for n in 0..100 {
            assert_eq!(record_bytes(n) % RECORD_ALIGNMENT_BYTES, 0);
        }
    }

    #[test]
    fn segment_file_names_round_trip() {
        assert_eq!(segment_file_name(7), "segment-00000000000000000007");
        assert_eq!(
            parse_segment_file_name(&segment_file_name(u64::MAX)),
            Some(u64::MAX)
        );
        assert_eq!(parse_segment_file_name("segment-7"), None);
        assert_eq!(
            parse_segment_file_name("segment-00000000000000000007.tmp"),
            None
        );
    }
}
