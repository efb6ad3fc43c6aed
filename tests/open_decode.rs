//! An entry whose record is intact (its checksum matches) but whose payload
//! does not decode: no crash and no disk damage produces one (the checksum
//! covers the payload, so it was written that way: a bug or a forgery), and
//! it must never be applied or served. Open does not decode payloads during
//! the recovery scan (the catalog rebuild after it decodes every committed
//! entry once); these tests pin that such an entry is still reported as
//! typed corruption naming its segment file, record offset and index: at
//! open when it is committed and after the snapshot, on read otherwise, and
//! by read-only inspection (`cpwal verify`) in every case.

mod support;

use std::path::{Path, PathBuf};

use cpwal::codec::DecodeError;
use cpwal::format::{
    segment_file_name, RecordHeader, RECORD_ALIGNMENT_BYTES, RECORD_HEADER_BYTES, RECORD_MAGIC,
    SEGMENT_HEADER_BYTES,
};
use cpwal::inspect::Inspection;
use cpwal::{
    ClusterVoterIdentity, ControlPlaneCatalog, ControlPlaneEntry, ControlPlaneIndex, Corruption,
    CorruptionKind, DurableControlPlane, Error, MembershipChange, Options, ReplicaControlPlane,
};
use support::long_log::long_log_entry;

fn voter(subject: &str) -> ClusterVoterIdentity {
    ClusterVoterIdentity::from_certificate_subject(subject).unwrap()
}

fn admit(subject: &str) -> ControlPlaneEntry {
    ControlPlaneEntry::MembershipChange(MembershipChange::Admit(voter(subject)))
}

/// The first segment's path (every test here writes far less than one
/// segment).
fn first_segment(dir: &Path) -> PathBuf {
    dir.join(segment_file_name(1))
}

/// Rewrites the payload's first byte (the entry format version) of the
/// record for `index` in the first segment to 99 and recomputes the record's
/// checksum exactly as the writer does (salt of generation and offset, then
/// header, payload and padding), so only decoding can tell. The record is
/// found at a record-aligned offset by its magic and index (each sync's
/// records start on a sector, so records are not contiguous). Returns the
/// record's offset.
fn forge_undecodable_record(dir: &Path, index: u64) -> u64 {
    let path = first_segment(dir);
    let mut bytes = std::fs::read(&path).unwrap();
    let generation = 1u64;
    let header_bytes = RECORD_HEADER_BYTES as usize;
    let offset = (SEGMENT_HEADER_BYTES as usize..bytes.len() - header_bytes)
        .step_by(RECORD_ALIGNMENT_BYTES as usize)
        .find(|&at| {
            let header: RecordHeader = bytemuck::pod_read_unaligned(&bytes[at..at + header_bytes]);
            header.magic == RECORD_MAGIC && header.index == index
        })
        .expect("the record of the index is in the first segment");
    let header: RecordHeader = bytemuck::pod_read_unaligned(&bytes[offset..offset + header_bytes]);
    let length = cpwal::format::record_bytes(u64::from(header.payload_bytes)) as usize;
    bytes[offset + header_bytes] = 99;
    let body_end = offset + length - 8;
    let mut hasher = crc32fast::Hasher::new();
    hasher.update(&generation.to_le_bytes());
    hasher.update(&(offset as u64).to_le_bytes());
    hasher.update(&bytes[offset..body_end]);
    bytes[body_end..body_end + 4].copy_from_slice(&hasher.finalize().to_le_bytes());
    std::fs::write(&path, bytes).unwrap();
    offset as u64
}

fn expect_undecodable(result: Error, dir: &Path, offset: u64, index: u64) {
    let expected = Corruption {
        path: first_segment(dir),
        offset,
        index: Some(index),
        kind: CorruptionKind::UndecodableEntry(DecodeError::UnknownVersion(99)),
    };
    assert_eq!(result.as_corruption(), Some(&expected), "{result:?}");
}

#[test]
fn open_undecodable_committed_entry_is_corruption_at_its_record() {
    // Goal: a committed entry that does not decode makes open fail with
    // typed corruption at its file, offset and index (the catalog rebuild
    // decodes it), and read-only inspection refuses the directory alike.
    // Method: a sole voter writes four committed entries; the record of
    // index 2 is forged (valid checksum, unknown format version); reopen.
    let dir = tempfile::tempdir().unwrap();
    let mut node =
        DurableControlPlane::create(dir.path(), voter("CN=n"), Options::default()).unwrap();
    for subject in ["CN=a", "CN=b", "CN=c", "CN=d"] {
        node.try_append(&admit(subject)).unwrap();
    }
    drop(node);
    let offset = forge_undecodable_record(dir.path(), 2);
    let error = DurableControlPlane::open(dir.path(), voter("CN=n"), Options::default())
        .expect_err("an undecodable committed entry was accepted");
    expect_undecodable(error, dir.path(), offset, 2);
    let inspected = Inspection::open(dir.path()).expect_err("inspection accepted it");
    expect_undecodable(inspected, dir.path(), offset, 2);
}

#[test]
fn read_undecodable_uncommitted_entry_is_corruption_at_its_record() {
    // Goal: an undecodable entry that open does not apply (a replica's entry
    // past the commit point) is typed corruption when it is read, and the
    // node refuses to commit past it (applying it fails and is latched).
    // Method: a replica leader appends three uncommitted entries; the record
    // of index 1 is forged; reopen as a replica, read it, then lead a new
    // term and try to commit an entry of it (which commits all before it).
    let dir = tempfile::tempdir().unwrap();
    let me = voter("CN=r");
    let mut node = ReplicaControlPlane::create(dir.path(), me.clone(), Options::default()).unwrap();
    let term = node.start_election().unwrap();
    node.become_leader(term).unwrap();
    for subject in ["CN=a", "CN=b", "CN=c"] {
        node.append_uncommitted(&admit(subject)).unwrap();
    }
    drop(node);
    let offset = forge_undecodable_record(dir.path(), 1);
    let mut node = ReplicaControlPlane::open(dir.path(), me, Options::default()).unwrap();
    assert_eq!(node.applied_end(), ControlPlaneIndex(0));
    let error = node.read(ControlPlaneIndex(1)).unwrap_err();
    expect_undecodable(error, dir.path(), offset, 1);
    assert!(node.read(ControlPlaneIndex(0)).is_ok());
    let term = node.start_election().unwrap();
    node.become_leader(term).unwrap();
    let next = node.append_uncommitted(&admit("CN=e")).unwrap();
    let commit = node.advance_commit(next);
    let error = commit.expect_err("committed past an undecodable entry");
    expect_undecodable(error, dir.path(), offset, 1);
    assert_eq!(node.applied_end(), ControlPlaneIndex(1));
}

/// Creates a sole voter in `dir` holding `count` entries of
/// [`long_log_entry`], appended in batches of 500, all in the first
/// segment; returns the catalog the appends built.
fn write_long_log(dir: &Path, count: u64) -> ControlPlaneCatalog {
    let mut node = DurableControlPlane::create(dir, voter("CN=n"), Options::default()).unwrap();
    for start in (0..count).step_by(500) {
        let batch: Vec<_> = (start..count.min(start + 500))
            .map(long_log_entry)
            .collect();
        node.try_append_batch(&batch).unwrap();
    }
    node.catalog().clone()
}

/// Entries in the long logs below: more than the rebuild decodes in line
/// in one segment (it decodes ahead on a second thread from 4096 on), and
/// several of its 1024-entry chunks.
const LONG_LOG_ENTRIES: u64 = 12_000;

#[test]
fn open_rebuild_decoding_ahead_gives_the_catalog_the_appends_built() {
    // Goal: the rebuild that decodes on a second thread while applying on
    // the first applies every entry once, in order: the reopened catalog
    // equals the one the appends built (members, ranges with owners and
    // epochs, leaders, the count of fenced entries, the applied end).
    // Method: 12,000 entries in one segment; reopen twice.
    let dir = tempfile::tempdir().unwrap();
    let built = write_long_log(dir.path(), LONG_LOG_ENTRIES);
    assert!(built.refused_count() > 1000, "the log fences some entries");
    assert_eq!(built.applied_end(), ControlPlaneIndex(LONG_LOG_ENTRIES));
    for _ in 0..2 {
        let node = DurableControlPlane::open(dir.path(), voter("CN=n"), Options::default());
        assert_eq!(node.unwrap().catalog(), &built);
    }
}

#[test]
fn open_undecodable_entry_decoded_ahead_is_corruption_at_its_record() {
    // Goal: in a segment decoded ahead on a second thread, an undecodable
    // committed entry still fails open as corruption at its own file,
    // offset and index, and with two of them it is the first in index
    // order, wherever they fall in the 1024-entry chunks. Method: forge one
    // entry in the first chunk, one in a later chunk, one in the last; then
    // two in one chunk.
    for forged in [[3, 3], [9_500, 9_500], [11_999, 11_999], [6_000, 6_100]] {
        let dir = tempfile::tempdir().unwrap();
        write_long_log(dir.path(), LONG_LOG_ENTRIES);
        let first_offset = forge_undecodable_record(dir.path(), forged[0]);
        forge_undecodable_record(dir.path(), forged[1]);
        let error = DurableControlPlane::open(dir.path(), voter("CN=n"), Options::default())
            .expect_err("an undecodable committed entry was accepted");
        expect_undecodable(error, dir.path(), first_offset, forged[0]);
    }
}
