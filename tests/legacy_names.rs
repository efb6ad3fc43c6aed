//! Names an older build wrote before identities and range names refused
//! invisible characters (issue #13) stay readable: such a directory opens,
//! serves its entries and catalog, compacts and reopens; only new names are
//! held to the new rule.

use std::path::Path;

use cpwal::format::{segment_file_name, RECORD_HEADER_BYTES};
use cpwal::{
    ClusterVoterIdentity, ControlPlaneEntry, ControlPlaneIndex, DurableControlPlane, Error,
    InvalidInput, MembershipChange, Options, OwnershipTransition, RangeNameError,
};

#[path = "support/records.rs"]
mod records;

fn voter(subject: &str) -> ClusterVoterIdentity {
    ClusterVoterIdentity::from_certificate_subject(subject).unwrap()
}

fn transfer(range: &str, owner: &str, epoch: u64) -> ControlPlaneEntry {
    ControlPlaneEntry::OwnershipTransition(OwnershipTransition {
        range: range.into(),
        new_owner: voter(owner),
        ownership_epoch: epoch,
    })
}

/// Three bytes that stand in a name for U+200B (ZERO WIDTH SPACE, UTF-8
/// `E2 80 8B`, also three bytes) until [`age_names`] swaps them.
const PLACEHOLDER: &[u8] = b"~~~";
const ZERO_WIDTH_SPACE: &[u8] = "\u{200B}".as_bytes();

/// Rewrites every [`PLACEHOLDER`] in the first segment's records into a zero
/// width space and recomputes each record's checksum exactly as the writer
/// does (salt of generation and offset, then header, payload and padding):
/// the directory an older build, which let such names through, wrote.
fn age_names(dir: &Path) {
    let path = dir.join(segment_file_name(1));
    let mut bytes = std::fs::read(&path).unwrap();
    for (offset, length, _) in records::records_of(&bytes) {
        let (offset, body_end) = (offset as usize, (offset + length) as usize - 8);
        let payload = offset + RECORD_HEADER_BYTES as usize..body_end;
        while let Some(at) = bytes[payload.clone()]
            .windows(PLACEHOLDER.len())
            .position(|w| w == PLACEHOLDER)
        {
            let at = payload.start + at;
            bytes[at..at + PLACEHOLDER.len()].copy_from_slice(ZERO_WIDTH_SPACE);
        }
        let mut hasher = crc32fast::Hasher::new();
        hasher.update(&1u64.to_le_bytes());
        hasher.update(&(offset as u64).to_le_bytes());
        hasher.update(&bytes[offset..body_end]);
        bytes[body_end..body_end + 4].copy_from_slice(&hasher.finalize().to_le_bytes());
    }
    std::fs::write(&path, bytes).unwrap();
}

/// A node whose log holds, from an older build, member `CN=a\u{200B}b`
/// (entry 0) and range `shard\u{200B}7` owned by it (entry 1).
fn node_with_legacy_names(dir: &Path) {
    let mut node = DurableControlPlane::create(dir, voter("CN=n"), Options::default()).unwrap();
    node.try_append(&ControlPlaneEntry::MembershipChange(
        MembershipChange::Admit(voter("CN=a~~~b")),
    ))
    .unwrap();
    node.try_append(&transfer("shard~~~7", "CN=a~~~b", 1))
        .unwrap();
    drop(node);
    age_names(dir);
}

/// Runs the `cpwal` binary; returns its exit code and standard output.
fn cpwal(args: &[&std::ffi::OsStr]) -> (Option<i32>, String) {
    let output = std::process::Command::new(env!("CARGO_BIN_EXE_cpwal"))
        .args(args)
        .output()
        .unwrap();
    (
        output.status.code(),
        String::from_utf8(output.stdout).unwrap(),
    )
}

#[test]
fn verify_and_inspect_warn_about_each_stored_name_with_an_invisible_character() {
    // Goal: an operator is told, name by name, where a directory holds a
    // name that prints like another (issue #13), without a change of
    // verdict: in the log's entries and, after compaction, in the
    // snapshot's catalog. Method: age names in a log; run verify and
    // inspect, as text and JSON; compact and verify again.
    let dir = tempfile::tempdir().unwrap();
    node_with_legacy_names(dir.path());
    let path = dir.path().as_os_str();
    let expected = [
        r#"warning: entry 0: member "CN=a\u{200b}b" holds the invisible character U+200B at byte 4"#,
        r#"warning: entry 1: range name "shard\u{200b}7" holds the invisible character U+200B at byte 5"#,
        r#"warning: entry 1: owner "CN=a\u{200b}b" holds the invisible character U+200B at byte 4"#,
    ];
    for command in ["verify", "inspect"] {
        let (code, text) = cpwal(&[command.as_ref(), path]);
        assert_eq!(code, Some(0), "{command}: {text}");
        let warnings: Vec<_> = text
            .lines()
            .filter(|l| l.contains("invisible character"))
            .map(|l| l.split(';').next().unwrap())
            .collect();
        assert_eq!(warnings, expected, "{command}: {text}");
        let (code, json) = cpwal(&[command.as_ref(), path, "--json".as_ref()]);
        assert_eq!(code, Some(0), "{command} --json: {json}");
        let compact: String = json.split_whitespace().collect();
        assert!(compact.contains(r#""suspect_names":{"listed":[{"byte_offset":4,"character":"U+200B","index":0,"kind":"member""#), "{json}");
        assert!(compact.contains(r#""total":3"#), "{json}");
    }

    let mut node =
        DurableControlPlane::open(dir.path(), voter("CN=n"), Options::default()).unwrap();
    node.try_append(&transfer("shard-8", "CN=c", 1)).unwrap();
    node.compact(0).unwrap();
    drop(node);
    let (code, text) = cpwal(&["verify".as_ref(), path]);
    assert_eq!(code, Some(0), "{text}");
    let from_snapshot = text
        .lines()
        .filter(|l| l.starts_with("warning: the snapshot's catalog: "))
        .count();
    assert_eq!(from_snapshot, 3, "member, range and owner: {text}");
}

#[test]
fn open_reads_invisible_characters_an_older_build_wrote() {
    // Goal: a log holding a range name and a member identity with a zero
    // width space (valid when written) opens, reads back byte for byte,
    // compacts into a snapshot and reopens from it; a new entry naming
    // such a range is refused with the rule and byte, and the node keeps
    // working. Method: write names with a 3-byte placeholder, swap in
    // U+200B with valid checksums, reopen.
    let dir = tempfile::tempdir().unwrap();
    let me = voter("CN=n");
    node_with_legacy_names(dir.path());

    let legacy_member = "CN=a\u{200B}b";
    let legacy_range = "shard\u{200B}7";
    let mut node = DurableControlPlane::open(dir.path(), me.clone(), Options::default()).unwrap();
    let catalog = node.catalog();
    assert!(catalog
        .members()
        .iter()
        .any(|m| m.as_str() == legacy_member));
    let owner = catalog.owner_of(legacy_range).expect("the legacy range");
    assert_eq!(owner.owner.as_str(), legacy_member);
    let entry = node.read(ControlPlaneIndex(1)).unwrap().entry;
    assert!(matches!(
        entry,
        ControlPlaneEntry::OwnershipTransition(ref t) if t.range == legacy_range
    ));

    let refused = node.try_append(&transfer(legacy_range, "CN=c", 2));
    assert!(
        matches!(
            refused,
            Err(Error::InvalidInput(InvalidInput::RangeName(
                RangeNameError::InvisibleCharacter {
                    offset: 5,
                    character: '\u{200B}'
                }
            )))
        ),
        "{refused:?}"
    );
    node.try_append(&transfer("shard-8", "CN=c", 1)).unwrap();
    node.compact(0).unwrap();
    let before = node.catalog().clone();
    drop(node);
    let node = DurableControlPlane::open(dir.path(), me, Options::default()).unwrap();
    assert_eq!(node.catalog(), &before);
    assert!(node.catalog().owner_of(legacy_range).is_some());
}
