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
    let mut node = DurableControlPlane::create(dir.path(), me.clone(), Options::default()).unwrap();
    node.try_append(&ControlPlaneEntry::MembershipChange(
        MembershipChange::Admit(voter("CN=a~~~b")),
    ))
    .unwrap();
    node.try_append(&transfer("shard~~~7", "CN=a~~~b", 1))
        .unwrap();
    drop(node);
    age_names(dir.path());

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
