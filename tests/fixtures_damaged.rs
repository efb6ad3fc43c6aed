//! Damaged data directories under `fixtures/v1/`, each with the outcome
//! `fixtures/README.md` promises. Goal: recovery's judgement of real damage
//! (torn tail vs corruption, one vs two hard-state copies, broken segment
//! chains, foreign files, unknown versions) is pinned on real files, so a
//! change that starts dropping synced data or refusing a recoverable
//! directory fails here. Method: each test copies its fixture to a temporary
//! directory (opening writes a LOCK file and may repair) and opens it with
//! the real file system.
//!
//! Regenerate, only on purpose, with `CPWAL_WRITE_FIXTURES=1`: each fixture
//! is written by the engine (4096-byte segments) and then damaged by the
//! `damage_*` function next to its test.

#[path = "support/records.rs"]
mod records;

use std::fs;
use std::path::{Path, PathBuf};

use records::records_of;

use cpwal::format::{
    HardStateSlot, HARD_STATE_CRC_OFFSET, HARD_STATE_SLOT_BYTES, SECTOR_BYTES, SEGMENT_HEADER_BYTES,
};
use cpwal::{
    ClusterVoterIdentity, ControlPlaneEntry, ControlPlaneIndex, ControlPlaneTerm, CorruptionKind,
    DurableControlPlane, DurableVoteState, Error, Options, OwnershipTransition, SegmentChainDetail,
    VoteRequest,
};

fn voter(subject: &str) -> ClusterVoterIdentity {
    ClusterVoterIdentity::from_certificate_subject(subject).unwrap()
}

fn options() -> Options {
    Options::default().with_segment_size_bytes(4096)
}

/// Entries appended by every fixture: records of 150..1000 bytes, so there
/// are several 4 KiB segments and records span sectors.
const ENTRY_COUNT: u64 = 24;

fn entry(n: u64) -> ControlPlaneEntry {
    ControlPlaneEntry::OwnershipTransition(OwnershipTransition {
        range: format!("range-{n}-{}", "x".repeat((100 + n * 131 % 800) as usize)),
        new_owner: voter("CN=node-b"),
        ownership_epoch: n + 1,
    })
}

/// The term of entry `n`: half written in term 1, half after an election.
fn term_of(n: u64) -> u64 {
    if n < ENTRY_COUNT / 2 {
        1
    } else {
        2
    }
}

/// The vote every fixture ends with.
fn final_vote() -> DurableVoteState {
    DurableVoteState {
        term: ControlPlaneTerm(3),
        voted_for: Some(voter("CN=node-c")),
    }
}

/// Writes the undamaged directory: entries in terms 1 and 2 (one acknowledged
/// append at a time), then a vote for node-c in term 3. `after_each` sees the
/// directory after each append (for the stale-segment snapshot).
fn write_directory(dir: &Path, mut after_each: impl FnMut(&Path, u64)) {
    let mut node = DurableControlPlane::create(dir, voter("CN=node-a"), options()).unwrap();
    for n in 0..ENTRY_COUNT {
        if node.current_term().0 < term_of(n) {
            node.start_election().unwrap();
        }
        node.try_append(&entry(n)).unwrap();
        after_each(dir, n);
    }
    node.grant_vote(&VoteRequest {
        term: ControlPlaneTerm(3),
        candidate: voter("CN=node-c"),
        last_log_index: Some(ControlPlaneIndex(ENTRY_COUNT - 1)),
        last_log_term: ControlPlaneTerm(2),
    })
    .unwrap();
    drop(node);
    fs::remove_file(dir.join("LOCK")).unwrap();
}

fn segment_path(dir: &Path, generation: u64) -> PathBuf {
    dir.join(cpwal::format::segment_file_name(generation))
}

fn segment_count(dir: &Path) -> u64 {
    fs::read_dir(dir)
        .unwrap()
        .filter(|e| {
            e.as_ref()
                .unwrap()
                .file_name()
                .to_string_lossy()
                .starts_with("segment-")
        })
        .count() as u64
}

/// The fixtures written with segment format `version`: 1 (frozen, written
/// by an earlier build) and 2 (what this build writes).
fn fixture_root(version: u32) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join(format!("fixtures/v{version}"))
}

/// Copies of fixture `name` in both segment formats, each in a fresh
/// temporary directory; the version 2 one is regenerated first with `build`
/// when `CPWAL_WRITE_FIXTURES` is set (version 1 can no longer be written).
fn fixture_copies(name: &str, build: fn(&Path)) -> Vec<tempfile::TempDir> {
    if std::env::var_os("CPWAL_WRITE_FIXTURES").is_some() {
        let fixture = fixture_root(2).join(name);
        let _ = fs::remove_dir_all(&fixture);
        build(&fixture);
    }
    [1, 2]
        .map(|version| fixture_copy(&fixture_root(version).join(name)))
        .into()
}

/// Copies the fixture directory `fixture` to a fresh temporary directory.
fn fixture_copy(fixture: &Path) -> tempfile::TempDir {
    let name = fixture.display();
    let copy = tempfile::tempdir().unwrap();
    for entry in fs::read_dir(fixture).unwrap_or_else(|e| panic!("fixture {name}: {e}")) {
        let entry = entry.unwrap();
        fs::copy(entry.path(), copy.path().join(entry.file_name())).unwrap();
    }
    copy
}

fn open(dir: &Path) -> cpwal::Result<DurableControlPlane> {
    DurableControlPlane::open(dir, voter("CN=node-a"), options())
}

/// The entries `[0, end)` read back, compared with what was written.
fn assert_entries(node: &DurableControlPlane, end: u64) {
    assert_eq!(node.first_index(), ControlPlaneIndex(0));
    assert_eq!(node.last_index(), end.checked_sub(1).map(ControlPlaneIndex));
    for n in 0..end {
        let read = node.read(ControlPlaneIndex(n)).unwrap();
        assert_eq!(
            (read.term.0, read.entry),
            (term_of(n), entry(n)),
            "entry {n}"
        );
    }
}

/// The corruption an open reports.
fn open_corruption(dir: &Path) -> cpwal::Corruption {
    match open(dir) {
        Ok(node) => panic!(
            "opened a damaged directory: log ends at {:?}",
            node.last_index()
        ),
        Err(error) => error
            .as_corruption()
            .unwrap_or_else(|| panic!("expected Corruption, got {error:?}"))
            .clone(),
    }
}

fn last_segment(dir: &Path) -> PathBuf {
    segment_path(dir, segment_count(dir))
}

// ---------------------------------------------------------------- torn tail

/// The shape an interrupted final append leaves: the log's last record
/// (about 800 bytes, spanning sectors, vouched for by nothing) has its
/// final sector still at its old, zero content.
fn damage_torn_tail(dir: &Path) {
    write_directory(dir, |_, _| {});
    let path = last_segment(dir);
    let mut image = fs::read(&path).unwrap();
    let (offset, bytes, _) = *records_of(&image).last().unwrap();
    let last_sector = (offset + bytes - 1) / SECTOR_BYTES * SECTOR_BYTES;
    assert!(last_sector > offset, "the last record spans sectors");
    image[last_sector as usize..(last_sector + SECTOR_BYTES) as usize].fill(0);
    fs::write(&path, image).unwrap();
}

#[test]
fn open_torn_tail_fixture_drops_only_the_torn_record() {
    // Expected: opens; the last record (whose final sector is still zero, the
    // shape of an interrupted write, and which nothing vouches for) is
    // dropped and reported; every earlier entry is intact.
    for dir in fixture_copies("torn-tail", damage_torn_tail) {
        let node = open(dir.path()).unwrap();
        assert_entries(&node, ENTRY_COUNT - 1);
        let torn = node
            .recovery_report()
            .torn_tail
            .clone()
            .expect("a torn tail");
        assert_eq!(torn.index, ControlPlaneIndex(ENTRY_COUNT - 1));
        assert_eq!(node.durable_vote(), final_vote());
        drop(node);
        // The dropped bytes were zeroed durably: a second open finds a clean log.
        let node = open(dir.path()).unwrap();
        assert_eq!(node.recovery_report().torn_tail, None);
        assert_entries(&node, ENTRY_COUNT - 1);
    }
}

// ------------------------------------------------- zeroed sector, vouched

/// A sector zeroed inside a record of the last segment that a later durable
/// record vouches for.
fn damage_zeroed_vouched_sector(dir: &Path) {
    write_directory(dir, |_, _| {});
    let path = last_segment(dir);
    let mut image = fs::read(&path).unwrap();
    let records = records_of(&image);
    assert!(records.len() >= 2, "the last segment holds two records");
    // The whole sector just before the last record's sector: it holds
    // bytes of earlier records only, so the last record stays readable and
    // its durable_end vouches for them.
    let last_offset = records[records.len() - 1].0;
    let sector = (last_offset / SECTOR_BYTES * SECTOR_BYTES)
        .checked_sub(SECTOR_BYTES)
        .expect("the last record starts past the first sector");
    assert!(sector >= SEGMENT_HEADER_BYTES, "the header is spared");
    image[sector as usize..(sector + SECTOR_BYTES) as usize].fill(0);
    fs::write(&path, image).unwrap();
}

#[test]
fn open_zeroed_vouched_sector_fixture_is_corruption() {
    // Expected: Corruption naming the last segment, the damaged record's
    // offset and index; not a torn tail, because the later record's
    // durable_end proves the damaged one had been synced.
    for dir in fixture_copies("zeroed-sector-vouched", damage_zeroed_vouched_sector) {
        let path = last_segment(dir.path());
        let records = records_of(&fs::read(&path).unwrap());
        // The scan stops at the damaged record, so the file now shows it first
        // among the unreadable ones; find it by its zero sector.
        let corruption = open_corruption(dir.path());
        assert_eq!(corruption.path, path);
        let damaged = records
            .iter()
            .find(|(offset, _, _)| *offset == corruption.offset)
            .expect("the report names a record start");
        assert_eq!(corruption.index, Some(damaged.2));
        assert_eq!(corruption.kind, CorruptionKind::ChecksumMismatch);
        assert!(damaged.2 < ENTRY_COUNT - 1, "not the last record");
    }
}

// ------------------------------------------------ bit flip, last record

fn damage_bit_flip_last_record(dir: &Path) {
    write_directory(dir, |_, _| {});
    let path = last_segment(dir);
    let mut image = fs::read(&path).unwrap();
    let (offset, bytes, _) = *records_of(&image).last().unwrap();
    image[(offset + bytes / 2) as usize] ^= 0x10;
    fs::write(&path, image).unwrap();
}

#[test]
fn open_bit_flip_in_last_record_fixture_is_corruption_not_truncation() {
    // Expected: Corruption (ChecksumMismatch) at the last record's offset
    // and index: every sector of it holds data, so it was written whole and
    // then damaged; dropping it would lose an acknowledged entry.
    for dir in fixture_copies("bit-flip-last-record", damage_bit_flip_last_record) {
        let corruption = open_corruption(dir.path());
        assert_eq!(corruption.path, last_segment(dir.path()));
        assert_eq!(corruption.index, Some(ENTRY_COUNT - 1));
        assert_eq!(corruption.kind, CorruptionKind::ChecksumMismatch);
    }
}

// ------------------------------------------------------------ hard state

fn damage_hard_state_copy(dir: &Path, slot: u64) {
    let path = dir.join("hardstate");
    let mut image = fs::read(&path).unwrap();
    let start = (slot * HARD_STATE_SLOT_BYTES) as usize;
    image[start + 100] ^= 0xFF; // inside the node identity, under the checksum
    fs::write(&path, image).unwrap();
}

fn damage_one_hard_state_copy(dir: &Path) {
    write_directory(dir, |_, _| {});
    damage_hard_state_copy(dir, 0);
}

#[test]
fn open_one_hard_state_copy_damaged_fixture_serves_the_other() {
    // Expected: opens with the same term and vote from copy B, full log.
    for dir in fixture_copies("hardstate-one-copy-damaged", damage_one_hard_state_copy) {
        let node = open(dir.path()).unwrap();
        assert_eq!(node.durable_vote(), final_vote());
        assert_entries(&node, ENTRY_COUNT);
    }
}

fn damage_both_hard_state_copies(dir: &Path) {
    write_directory(dir, |_, _| {});
    damage_hard_state_copy(dir, 0);
    damage_hard_state_copy(dir, 1);
}

#[test]
fn open_both_hard_state_copies_damaged_fixture_is_corruption() {
    // Expected: Corruption HardStateUnreadable naming `hardstate`; cpwal
    // never falls back to "no vote".
    for dir in fixture_copies("hardstate-both-damaged", damage_both_hard_state_copies) {
        let corruption = open_corruption(dir.path());
        assert_eq!(corruption.path, dir.path().join("hardstate"));
        assert_eq!(corruption.kind, CorruptionKind::HardStateUnreadable);
    }
}

// --------------------------------------------------------- segment chain

/// Segment 2 replaced by an older image of itself (taken when it held two
/// records): a stale copy served by the disk.
fn damage_stale_segment(dir: &Path) {
    let mut stale = None;
    write_directory(dir, |dir, _| {
        let path = segment_path(dir, 2);
        if stale.is_none() && path.exists() {
            let image = fs::read(&path).unwrap();
            if records_of(&image).len() == 2 {
                stale = Some(image);
            }
        }
    });
    assert!(segment_count(dir) >= 3, "segment 2 is not the last");
    fs::write(
        segment_path(dir, 2),
        stale.expect("segment 2 held two records"),
    )
    .unwrap();
}

#[test]
fn open_stale_segment_fixture_is_corruption() {
    // Expected: Corruption SegmentChainBroken (IndexGap) at segment 3: the
    // stale segment 2 ends early, so segment 3 does not start where it ends.
    for dir in fixture_copies("stale-segment", damage_stale_segment) {
        let corruption = open_corruption(dir.path());
        assert_eq!(corruption.path, segment_path(dir.path(), 3));
        assert!(
            matches!(
                corruption.kind,
                CorruptionKind::SegmentChainBroken {
                    detail: SegmentChainDetail::IndexGap { .. }
                }
            ),
            "{corruption}"
        );
    }
}

fn damage_missing_middle_segment(dir: &Path) {
    write_directory(dir, |_, _| {});
    assert!(segment_count(dir) >= 3);
    fs::remove_file(segment_path(dir, 2)).unwrap();
}

#[test]
fn open_missing_middle_segment_fixture_is_corruption() {
    // Expected: Corruption SegmentChainBroken (GenerationMismatch) at
    // segment 3, which names segment 2 as its predecessor.
    for dir in fixture_copies("missing-middle-segment", damage_missing_middle_segment) {
        let corruption = open_corruption(dir.path());
        assert_eq!(corruption.path, segment_path(dir.path(), 3));
        assert_eq!(
            corruption.kind,
            CorruptionKind::SegmentChainBroken {
                detail: SegmentChainDetail::GenerationMismatch {
                    expected: 1,
                    found: 2
                }
            }
        );
    }
}

fn damage_truncated_segment(dir: &Path) {
    write_directory(dir, |_, _| {});
    let path = segment_path(dir, 1);
    let image = fs::read(&path).unwrap();
    fs::write(&path, &image[..2048]).unwrap();
}

#[test]
fn open_truncated_segment_fixture_is_corruption() {
    // Expected: Corruption TruncatedFile (4096 expected, 2048 found) for
    // segment 1; never a shorter log.
    for dir in fixture_copies("truncated-segment", damage_truncated_segment) {
        let corruption = open_corruption(dir.path());
        assert_eq!(corruption.path, segment_path(dir.path(), 1));
        assert_eq!(
            corruption.kind,
            CorruptionKind::TruncatedFile {
                expected_bytes: 4096,
                actual_bytes: 2048
            }
        );
    }
}

// ------------------------------------------------------ directory level

fn damage_unknown_version(dir: &Path) {
    write_directory(dir, |_, _| {});
    let path = dir.join("hardstate");
    let mut image = fs::read(&path).unwrap();
    for slot in 0..2 {
        let start = (slot * HARD_STATE_SLOT_BYTES) as usize;
        let bytes = &mut image[start..start + HARD_STATE_SLOT_BYTES as usize];
        let mut copy: HardStateSlot = bytemuck::pod_read_unaligned(bytes);
        copy.format_version = 2;
        let body = bytemuck::bytes_of(&copy);
        copy.crc = crc32fast::hash(&body[..HARD_STATE_CRC_OFFSET]);
        bytes.copy_from_slice(bytemuck::bytes_of(&copy));
    }
    fs::write(&path, image).unwrap();
}

#[test]
fn open_unknown_format_version_fixture_is_refused() {
    // Expected: Error::UnsupportedVersion (found 2, supported 1) for the
    // hard state, whose copies are otherwise valid: cpwal never guesses.
    for dir in fixture_copies("unknown-version", damage_unknown_version) {
        match open(dir.path()) {
            Err(Error::UnsupportedVersion {
                path,
                found: 2,
                supported: 1,
            }) => assert_eq!(path, dir.path().join("hardstate")),
            other => panic!("expected UnsupportedVersion, got {other:?}"),
        }
    }
}

fn damage_foreign_file(dir: &Path) {
    write_directory(dir, |_, _| {});
    fs::write(dir.join("notes.txt"), b"not a cpwal file\n").unwrap();
}

#[test]
fn open_foreign_file_fixture_reports_it_and_keeps_it() {
    // Expected: the node opens with every entry; `notes.txt` is reported as
    // a foreign regular file (not corruption) and left as it was.
    for dir in fixture_copies("foreign-file", damage_foreign_file) {
        let node = open(dir.path()).expect("a foreign file is not corruption");
        let foreign = &node.recovery_report().foreign_files;
        assert_eq!(foreign.len(), 1, "{foreign:?}");
        assert_eq!(foreign[0].path, dir.path().join("notes.txt"));
        assert_eq!(foreign[0].kind, cpwal::io::FileKind::RegularFile);
        assert_entries(&node, ENTRY_COUNT);
        drop(node);
        let notes = fs::read(dir.path().join("notes.txt")).unwrap();
        assert_eq!(notes, b"not a cpwal file\n");
    }
}
