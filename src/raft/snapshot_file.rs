//! The snapshot of the replicated state machine: its byte format (specified
//! in [`crate::format`], "openraft snapshot") and its durable file.
//!
//! The bytes openraft ships to a lagging follower are exactly the file's
//! bytes, so a follower verifies a received snapshot with the same checksum
//! it uses for its own file.

use openraft::StoredMembership;

use crate::catalog::ControlPlaneCatalog;
use crate::codec::DecodeError;
use crate::directory::{Layout, Survey};
use crate::error::{CorruptionKind, Error, Result};
use crate::io::whole_file;
use crate::io::{Storage, StorageFile};
use crate::limits::{MAX_INDEX, MAX_TERM};
use crate::raft::envelope::{encode_membership, Reader};
use crate::raft::log_store::log_id;
use crate::raft::node_id::NodeId;
use crate::raft::types::{ClusterNode, CpwalLogId};

/// Magic of a snapshot file.
pub const RAFT_SNAPSHOT_MAGIC: [u8; 8] = *b"CPWRAFTS";
/// The snapshot format version this build writes and reads.
pub const RAFT_SNAPSHOT_FORMAT_VERSION: u32 = 1;
/// Bytes before the body: magic, version, crc32, body length.
pub const RAFT_SNAPSHOT_HEADER_BYTES: usize = 24;
/// The largest body accepted, so a damaged length cannot make a reader
/// allocate without bound.
pub const MAX_RAFT_SNAPSHOT_BODY_BYTES: u64 = 1 << 30;
/// The snapshot's file name in the node's `snapshot/` directory.
pub const RAFT_SNAPSHOT_FILE_NAME: &str = crate::directory::RAFT_SNAPSHOT_FILE_NAME;

/// Everything a snapshot holds.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SnapshotContent {
    /// The last entry the snapshot includes.
    pub last_applied: Option<CpwalLogId>,
    /// The membership in force at `last_applied`.
    pub membership: StoredMembership<NodeId, ClusterNode>,
    /// openraft's identifier of this snapshot.
    pub snapshot_id: String,
    /// The catalog after `last_applied`.
    pub catalog: ControlPlaneCatalog,
}

fn put_log_id(out: &mut Vec<u8>, id: Option<&CpwalLogId>) {
    match id {
        None => out.push(0),
        Some(id) => {
            out.push(1);
            out.extend_from_slice(&id.leader_id.term.to_le_bytes());
            out.extend_from_slice(&id.index.to_le_bytes());
        }
    }
}

/// The file bytes of `content`. The catalog is embedded in the engine's
/// own snapshot format ([`crate::snapshot`]), which checks it again.
pub fn encode_snapshot(content: &SnapshotContent) -> Result<Vec<u8>> {
    let mut body = Vec::new();
    put_log_id(&mut body, content.last_applied.as_ref());
    put_log_id(&mut body, content.membership.log_id().as_ref());
    encode_membership(content.membership.membership(), &mut body);
    body.extend_from_slice(&(content.snapshot_id.len() as u16).to_le_bytes());
    body.extend_from_slice(content.snapshot_id.as_bytes());
    let last_term = content.last_applied.map_or(0, |id| id.leader_id.term);
    let catalog = crate::snapshot::encode_snapshot(&content.catalog, last_term)?;
    body.extend_from_slice(&(catalog.len() as u64).to_le_bytes());
    body.extend_from_slice(&catalog);
    let mut out = Vec::with_capacity(RAFT_SNAPSHOT_HEADER_BYTES + body.len());
    out.extend_from_slice(&RAFT_SNAPSHOT_MAGIC);
    out.extend_from_slice(&RAFT_SNAPSHOT_FORMAT_VERSION.to_le_bytes());
    out.extend_from_slice(&crc32fast::hash(&body).to_le_bytes());
    out.extend_from_slice(&(body.len() as u64).to_le_bytes());
    out.extend_from_slice(&body);
    Ok(out)
}

/// Why snapshot bytes were refused.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub enum SnapshotFault {
    /// Not a snapshot, or damaged beyond its checksum.
    Corrupt(CorruptionKind),
    /// The embedded catalog snapshot is refused (see [`crate::snapshot`]).
    Catalog(Error),
    /// Written by another version of the format.
    Version(u32),
}

/// Decodes and verifies snapshot bytes.
pub fn decode_snapshot(bytes: &[u8]) -> std::result::Result<SnapshotContent, SnapshotFault> {
    let corrupt = SnapshotFault::Corrupt;
    if bytes.len() < RAFT_SNAPSHOT_HEADER_BYTES || bytes[..8] != RAFT_SNAPSHOT_MAGIC {
        return Err(corrupt(CorruptionKind::BadMagic));
    }
    let mut header = Reader { bytes: &bytes[8..] };
    let undecodable = |e| corrupt(CorruptionKind::UndecodableEntry(e));
    let version = header.u32().map_err(undecodable)?;
    if version != RAFT_SNAPSHOT_FORMAT_VERSION {
        return Err(SnapshotFault::Version(version));
    }
    let crc = header.u32().map_err(undecodable)?;
    let length = header.u64().map_err(undecodable)?;
    if length > MAX_RAFT_SNAPSHOT_BODY_BYTES || length != header.bytes.len() as u64 {
        return Err(corrupt(CorruptionKind::ImpossibleLength { length }));
    }
    if crc32fast::hash(header.bytes) != crc {
        return Err(corrupt(CorruptionKind::ChecksumMismatch));
    }
    let (mut content, catalog) = decode_body(header.bytes).map_err(undecodable)?;
    let path = std::path::Path::new("embedded catalog snapshot");
    content.catalog = crate::snapshot::decode_snapshot(catalog, path)
        .map_err(SnapshotFault::Catalog)?
        .catalog;
    Ok(content)
}

fn get_log_id(reader: &mut Reader<'_>) -> std::result::Result<Option<CpwalLogId>, DecodeError> {
    match reader.u8()? {
        0 => Ok(None),
        1 => {
            let (term, index) = (reader.u64()?, reader.u64()?);
            if term > MAX_TERM || index > MAX_INDEX {
                return Err(DecodeError::Malformed("snapshot log id out of range"));
            }
            Ok(Some(log_id(term, index)))
        }
        _ => Err(DecodeError::Malformed("snapshot log id")),
    }
}

/// The body's fields, and the embedded catalog snapshot's bytes.
fn decode_body(body: &[u8]) -> std::result::Result<(SnapshotContent, &[u8]), DecodeError> {
    let mut reader = Reader { bytes: body };
    let last_applied = get_log_id(&mut reader)?;
    let membership_log_id = get_log_id(&mut reader)?;
    let membership = reader.membership()?;
    let id_bytes = reader.u16()? as usize;
    let snapshot_id = std::str::from_utf8(reader.take(id_bytes)?)
        .map_err(|_| DecodeError::NotUtf8)?
        .to_owned();
    let catalog_bytes = reader.u64()?;
    if catalog_bytes != reader.bytes.len() as u64 {
        return Err(DecodeError::Malformed("snapshot catalog length"));
    }
    let content = SnapshotContent {
        last_applied,
        membership: StoredMembership::new(membership_log_id, membership),
        snapshot_id,
        catalog: ControlPlaneCatalog::new(),
    };
    Ok((content, reader.bytes))
}

/// Replaces the snapshot file with `bytes`, atomically and durably
/// ([`whole_file`]: written and synced under a temporary name, renamed over
/// the old one, directory synced).
pub fn write_snapshot_file(storage: &impl Storage, bytes: &[u8]) -> Result<()> {
    let path = storage.path_of(&whole_file::temporary_name(RAFT_SNAPSHOT_FILE_NAME));
    whole_file::write_whole(storage, RAFT_SNAPSHOT_FILE_NAME, |file| {
        file.write_at(0, bytes)
            .map_err(|e| Error::io("write snapshot", &path, e))
    })
    .map(drop)
}

/// Reads and verifies the snapshot file, if there is one.
pub fn read_snapshot_file(storage: &impl Storage) -> Result<Option<(SnapshotContent, Vec<u8>)>> {
    if !Survey::of(storage, Layout::RaftSnapshot)?.raft_snapshot {
        return Ok(None);
    }
    let path = storage.path_of(RAFT_SNAPSHOT_FILE_NAME);
    let file = storage
        .open(RAFT_SNAPSHOT_FILE_NAME, false)
        .map_err(|e| Error::io("open snapshot", &path, e))?;
    let length = file
        .len()
        .map_err(|e| Error::io("stat snapshot", &path, e))?;
    if length > MAX_RAFT_SNAPSHOT_BODY_BYTES + RAFT_SNAPSHOT_HEADER_BYTES as u64 {
        return Err(Error::corruption(
            &path,
            0,
            None,
            CorruptionKind::ImpossibleLength { length },
        ));
    }
    let bytes = file
        .read_at(0, length as usize)
        .map_err(|e| Error::io("read snapshot", &path, e))?
        .into_owned();
    match decode_snapshot(&bytes) {
        Ok(content) => Ok(Some((content, bytes))),
        Err(SnapshotFault::Corrupt(kind)) => Err(Error::corruption(&path, 0, None, kind)),
        Err(SnapshotFault::Catalog(error)) => Err(error),
        Err(SnapshotFault::Version(found)) => Err(Error::UnsupportedVersion {
            path,
            found,
            supported: RAFT_SNAPSHOT_FORMAT_VERSION,
        }),
    }
}
