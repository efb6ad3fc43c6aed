//! The bodies of the fuzz targets, shared by the cargo-fuzz crate (`fuzz/`)
//! and the bounded property tests (`tests/fuzz_decoders.rs`) that CI runs.
//!
//! Record and hard-state decoding are private to cpwal, so they are reached
//! the way a damaged disk reaches them: the input becomes bytes of a file in
//! a simulated data directory and the real `open` runs on it. Every body
//! accepts any input; a panic (or an allocation the input could make
//! unbounded) is the bug these targets look for.

use std::sync::OnceLock;

use cpwal::format::{
    align_up, RecordHeader, HARD_STATE_FILE_NAME, RECORD_END_MAGIC, RECORD_HEADER_BYTES,
    RECORD_MAGIC, SEGMENT_HEADER_BYTES,
};
use cpwal::{ControlPlaneIndex, ControlPlaneTerm, VoteRequest};

use super::sim_disk::{Rng, SimDisk};
use super::workload::{options, random_entry, voter, Node, NODE_SUBJECT};

/// Name of the first segment file.
pub const FIRST_SEGMENT: &str = "segment-00000000000000000001";

/// A valid directory image: a few entries in two terms and a vote, in
/// 4096-byte segments. Built once per process.
pub fn base_directory() -> &'static Vec<(String, Vec<u8>)> {
    static BASE: OnceLock<Vec<(String, Vec<u8>)>> = OnceLock::new();
    BASE.get_or_init(|| {
        let disk = SimDisk::new();
        let mut node = Node::create_with_storage(disk.clone(), voter(NODE_SUBJECT), options())
            .expect("a new node is created");
        let mut rng = Rng::new(42);
        for n in 0..12 {
            if n == 6 {
                node.start_election().expect("election");
            }
            node.try_append(&random_entry(&mut rng)).expect("append");
        }
        drop(node);
        disk.durable_names()
            .into_iter()
            .map(|name| {
                let image = disk.durable_image(&name).expect("listed");
                (name, image)
            })
            .collect()
    })
}

/// Opens a directory holding exactly `files`, then, if it opened, reads
/// everything, changes state and reopens: the whole recovery path and the
/// first writes after it.
pub fn open_directory_image(files: &[(String, Vec<u8>)]) {
    let disk = SimDisk::new();
    for (name, bytes) in files {
        disk.put_durable_file(name, bytes);
    }
    let Ok(mut node) = Node::open_with_storage(disk.clone(), voter(NODE_SUBJECT), options()) else {
        return;
    };
    let first = node.first_index();
    let end = node.last_index().map_or(first.0, |i| i.0 + 1);
    for index in first.0.saturating_sub(1)..end.saturating_add(1) {
        let _ = node.read(ControlPlaneIndex(index));
        let _ = node.term_at(ControlPlaneIndex(index));
    }
    let _ = node.grant_vote(&VoteRequest {
        term: ControlPlaneTerm(node.current_term().0.saturating_add(1)),
        candidate: voter(NODE_SUBJECT),
        last_log_index: Some(ControlPlaneIndex(u64::MAX - 1)),
        last_log_term: ControlPlaneTerm(u64::MAX),
    });
    let _ = node.try_append(&random_entry(&mut Rng::new(end)));
    drop(node);
    let _ = Node::open_with_storage(disk, voter(NODE_SUBJECT), options());
}

/// The base directory with `name` replaced by `bytes`.
fn base_with(name: &str, bytes: Vec<u8>) -> Vec<(String, Vec<u8>)> {
    let mut files: Vec<_> = base_directory()
        .iter()
        .filter(|(n, _)| n != name)
        .cloned()
        .collect();
    files.push((name.to_owned(), bytes));
    files
}

/// Target: arbitrary bytes as the `hardstate` file.
pub fn hard_state_bytes(input: &[u8]) {
    open_directory_image(&base_with(HARD_STATE_FILE_NAME, input.to_vec()));
}

/// Target: arbitrary bytes as the records of the first segment (its header
/// kept valid, so the record scanner and the torn-vs-corrupt judge run).
pub fn segment_record_bytes(input: &[u8]) {
    let (_, base) = base_directory()
        .iter()
        .find(|(n, _)| n == FIRST_SEGMENT)
        .expect("the base has a first segment");
    let mut image = base.clone();
    let area = &mut image[SEGMENT_HEADER_BYTES as usize..];
    let length = input.len().min(area.len());
    area[..length].copy_from_slice(&input[..length]);
    area[length..].fill(0);
    open_directory_image(&base_with(FIRST_SEGMENT, image));
}

/// Target: records with valid framing and checksums but arbitrary header
/// fields and payloads, so the checks *behind* the checksum run: index
/// sequence, epochs, vouching, and entry decoding of any payload.
/// `records` is `(header fields, payload)`; fields are the index's distance
/// from the record's position (0: in sequence), term, log_epoch,
/// durable_end, commit_end.
pub fn framed_records(records: &[([u64; 5], Vec<u8>)]) {
    let (_, base) = base_directory()
        .iter()
        .find(|(n, _)| n == FIRST_SEGMENT)
        .expect("the base has a first segment");
    let mut image = base[..SEGMENT_HEADER_BYTES as usize].to_vec();
    let size = base.len();
    for (position, (fields, payload)) in records.iter().enumerate() {
        if payload.is_empty() {
            continue;
        }
        let mut fields = *fields;
        fields[0] = (position as u64).wrapping_add(fields[0]);
        let mut record = frame_record(1, image.len() as u64, fields, payload);
        if image.len() + record.len() > size {
            break;
        }
        image.append(&mut record);
    }
    image.resize(size, 0);
    open_directory_image(&base_with(FIRST_SEGMENT, image));
}

/// Frames one record exactly as `src/format.rs` documents it.
pub fn frame_record(generation: u64, offset: u64, fields: [u64; 5], payload: &[u8]) -> Vec<u8> {
    let header = RecordHeader {
        magic: RECORD_MAGIC,
        payload_bytes: payload.len() as u32,
        index: fields[0],
        term: fields[1],
        log_epoch: fields[2],
        durable_end: fields[3],
        commit_end: fields[4],
    };
    let mut body = bytemuck::bytes_of(&header).to_vec();
    body.extend_from_slice(payload);
    body.resize(
        align_up(RECORD_HEADER_BYTES + payload.len() as u64) as usize,
        0,
    );
    let mut hasher = crc32fast::Hasher::new();
    hasher.update(&generation.to_le_bytes());
    hasher.update(&offset.to_le_bytes());
    hasher.update(&body);
    body.extend_from_slice(&hasher.finalize().to_le_bytes());
    body.extend_from_slice(&RECORD_END_MAGIC.to_le_bytes());
    body
}

/// Target: arbitrary bytes to the public entry decoder; what decodes must
/// encode back to the same bytes (one encoding per entry).
pub fn entry_bytes(input: &[u8]) {
    if let Ok(entry) = cpwal::codec::decode_entry(input) {
        assert_eq!(
            cpwal::codec::encoded_entry(&entry),
            input,
            "non-canonical encoding accepted"
        );
    }
}

/// Names a directory image may hold: cpwal's own, a leftover, a foreign one.
const NAMES: [&str; 6] = [
    HARD_STATE_FILE_NAME,
    FIRST_SEGMENT,
    "segment-00000000000000000002",
    "segment-00000000000000000003",
    "segment-00000000000000000002.tmp",
    "foreign",
];

/// Target: an arbitrary directory. The input is a list of files, each a
/// name selector byte, a 16-bit little-endian length and that many bytes;
/// a selector's high bit asks for the base directory's file of that name
/// with the bytes xor-ed over it instead (damage to a valid file).
pub fn directory_bytes(input: &[u8]) {
    let mut files: Vec<(String, Vec<u8>)> = Vec::new();
    let mut rest = input;
    while rest.len() >= 3 && files.len() < 8 {
        let selector = rest[0];
        let length = u16::from_le_bytes([rest[1], rest[2]]) as usize;
        let bytes = &rest[3..3 + length.min(rest.len() - 3)];
        rest = &rest[3 + bytes.len()..];
        let name = NAMES[selector as usize % NAMES.len()].to_owned();
        let content = if selector & 0x80 != 0 {
            let mut base = base_directory()
                .iter()
                .find(|(n, _)| *n == name)
                .map_or_else(Vec::new, |(_, image)| image.clone());
            let length = base.len().max(1);
            for (at, byte) in bytes.iter().enumerate() {
                if let Some(target) = base.get_mut(at * 61 % length) {
                    *target ^= byte;
                }
            }
            base
        } else {
            bytes.to_vec()
        };
        files.retain(|(n, _)| *n != name);
        files.push((name, content));
    }
    open_directory_image(&files);
}
