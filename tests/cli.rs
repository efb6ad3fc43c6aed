//! The `cpwal` binary on real directories: a fresh one, a copy of
//! `fixtures/v1/basic`, damaged copies, and one held by another process.
//! Each test runs the binary with `std::process` and checks its output, its
//! exit code, and that read-only commands left every byte as it was.

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};

use cpwal::{
    ClusterVoterIdentity, ControlPlaneEntry, DurableControlPlane, Error, MembershipChange, Options,
    OwnershipTransition,
};

#[path = "support/binary.rs"]
mod binary;
#[path = "support/directories.rs"]
mod directories;

use binary::{arg as path_arg, cpwal, text};
use directories::files as snapshot;

/// A copy of `fixtures/v1/basic` (term 3, vote CN=node-c, indexes 0..=62).
fn fixture_copy(root: &Path) -> PathBuf {
    directories::fixture(root, "basic")
}

/// Flips one bit (`xor`) or overwrites with zeros at `offset` of `file`.
fn damage(file: &Path, offset: usize, replace: impl FnOnce(&mut [u8])) {
    let mut bytes = std::fs::read(file).unwrap();
    replace(&mut bytes[offset..]);
    std::fs::write(file, bytes).unwrap();
}

/// The offset just past the last non-zero byte of `file`.
fn written_end(file: &Path) -> usize {
    let bytes = std::fs::read(file).unwrap();
    bytes.iter().rposition(|&b| b != 0).map_or(0, |p| p + 1)
}

fn assert_one_line_error(output: &Output, code: i32, needle: &str) {
    let stderr = text(&output.stderr);
    assert_eq!(output.status.code(), Some(code), "stderr: {stderr}");
    assert_eq!(
        stderr.trim_end().lines().count(),
        1,
        "not one line: {stderr}"
    );
    assert!(stderr.contains(needle), "{needle:?} not in {stderr}");
    assert!(!stderr.contains("panicked"), "{stderr}");
}

#[test]
fn help_lists_every_command() {
    // Goal: --help is complete and hides the internal child. Method: read it.
    let help = text(&cpwal(&["--help"]).stdout);
    for command in [
        "crash-test",
        "inspect",
        "verify",
        "dump",
        "bench",
        "Exit codes",
    ] {
        assert!(help.contains(command), "{command} missing from:\n{help}");
    }
    assert!(!help.contains("crash-child"), "{help}");
}

#[test]
fn inspect_fixture_reports_state_and_changes_nothing() {
    // Goal: inspect shows term, vote, commit, range, leader history and
    // segments, and writes nothing (not even a LOCK file in a directory that
    // has none). Method: compare output with the fixture's known contents and
    // the directory's bytes before and after.
    let root = tempfile::tempdir().unwrap();
    let dir = fixture_copy(root.path());
    let before = snapshot(&dir);
    let output = cpwal(&["inspect", path_arg(&dir)]);
    let stdout = text(&output.stdout);
    assert!(output.status.success(), "{}", text(&output.stderr));
    for line in [
        "node:       CN=node-a",
        "term:       3",
        "vote:       CN=node-c",
        "commit:     index 62",
        "log:        indexes 0..=62 (63 entries)",
        "term      1: CN=node-a (index 0)",
        "segments (2):",
        "indexes 40..=62 (23 entries)",
        "recovery:   clean",
    ] {
        assert!(stdout.contains(line), "{line:?} missing from:\n{stdout}");
    }
    assert_eq!(snapshot(&dir), before, "inspect changed the directory");
}

#[test]
fn inspect_json_parses_with_the_same_facts() {
    // Goal: --json is machine-readable. Method: parse it and check fields.
    let root = tempfile::tempdir().unwrap();
    let dir = fixture_copy(root.path());
    let output = cpwal(&["inspect", path_arg(&dir), "--json"]);
    let report: serde_json::Value = serde_json::from_slice(&output.stdout).unwrap();
    assert_eq!(report["term"], 3);
    assert_eq!(report["vote"], "CN=node-c");
    assert_eq!(report["commit_index"], 62);
    assert_eq!(report["last_index"], 62);
    assert_eq!(report["segments"].as_array().unwrap().len(), 2);
    assert_eq!(report["segments"][1]["state"], "active");
    assert_eq!(report["leader_history"][0]["leader"], "CN=node-a");
    assert!(report["recovery_would"]["torn_tail"].is_null());
}

#[test]
fn verify_fixture_copy_is_clean() {
    // Goal: an intact directory verifies with exit 0 and stays untouched.
    let root = tempfile::tempdir().unwrap();
    let dir = fixture_copy(root.path());
    let before = snapshot(&dir);
    let output = cpwal(&["verify", path_arg(&dir)]);
    assert_eq!(output.status.code(), Some(0), "{}", text(&output.stderr));
    assert!(text(&output.stdout).contains("clean: 63 entries verified"));
    assert_eq!(snapshot(&dir), before);
}

#[test]
fn verify_bit_flip_in_last_record_reports_corruption() {
    // Goal: a flipped bit in the last (acknowledged) record is corruption
    // (exit 4) naming file, offset and index, never a torn tail, and verify
    // does not repair it. Method: flip a bit 20 bytes before the end of the
    // last segment's records.
    let root = tempfile::tempdir().unwrap();
    let dir = fixture_copy(root.path());
    let segment = dir.join("segment-00000000000000000002");
    let end = written_end(&segment);
    damage(&segment, end - 20, |b| b[0] ^= 0x10);
    let before = snapshot(&dir);
    let output = cpwal(&["verify", path_arg(&dir)]);
    let stdout = text(&output.stdout);
    assert_eq!(output.status.code(), Some(4), "{stdout}");
    assert!(stdout.contains("segment-00000000000000000002"), "{stdout}");
    assert!(stdout.contains("index 62"), "{stdout}");
    assert!(stdout.contains("offset"), "{stdout}");
    assert_eq!(
        snapshot(&dir),
        before,
        "verify modified a damaged directory"
    );
    let inspect = cpwal(&["inspect", path_arg(&dir)]);
    let report = text(&inspect.stdout);
    assert_eq!(inspect.status.code(), Some(4), "{report}");
    for line in [
        "verdict:    DAMAGED",
        "term:       3",
        "vote:       CN=node-c",
        "log:        intact indexes 0..=61 (62 entries)",
    ] {
        assert!(report.contains(line), "{line:?} missing from:\n{report}");
    }
}

#[test]
fn verify_zeroed_tail_sector_reports_torn_tail() {
    // Goal: a zeroed last sector (the shape of a torn write) is reported as a
    // torn tail that the next open would drop (exit 3), without dropping it.
    // Method: zero the 512-byte sector holding the end of the records.
    let root = tempfile::tempdir().unwrap();
    let dir = fixture_copy(root.path());
    let segment = dir.join("segment-00000000000000000002");
    let sector = (written_end(&segment) - 1) / 512 * 512;
    damage(&segment, sector, |b| b[..512].fill(0));
    let before = snapshot(&dir);
    let output = cpwal(&["verify", path_arg(&dir)]);
    let stdout = text(&output.stdout);
    assert_eq!(output.status.code(), Some(3), "{stdout}");
    assert!(stdout.contains("torn tail"), "{stdout}");
    assert_eq!(snapshot(&dir), before, "verify dropped the tail itself");
}

#[test]
fn dump_range_prints_json_lines() {
    // Goal: dump prints the asked range, one JSON object per line.
    let root = tempfile::tempdir().unwrap();
    let dir = fixture_copy(root.path());
    let output = cpwal(&["dump", path_arg(&dir), "--from", "60", "--to", "62"]);
    assert!(output.status.success(), "{}", text(&output.stderr));
    let lines: Vec<serde_json::Value> = text(&output.stdout)
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    let indexes: Vec<_> = lines.iter().map(|l| l["index"].as_u64().unwrap()).collect();
    assert_eq!(indexes, [60, 61, 62]);
    assert_eq!(lines[2]["term"], 2);
    assert_eq!(lines[2]["entry"]["type"], "membership_change");
    assert_eq!(lines[2]["entry"]["member"], "CN=node-b");
    let whole = cpwal(&["dump", path_arg(&dir)]);
    assert_eq!(text(&whole.stdout).lines().count(), 63);
}

#[test]
fn dump_index_outside_the_log_is_a_one_line_error() {
    // Goal: a bad range is refused with one actionable line, exit 1.
    let root = tempfile::tempdir().unwrap();
    let dir = fixture_copy(root.path());
    let output = cpwal(&["dump", path_arg(&dir), "--from", "70"]);
    assert_one_line_error(&output, 1, "outside the log");
}

#[test]
fn reading_commands_refuse_a_non_data_directory() {
    // Goal: a wrong path gives one line saying so, exit 1, for each reader.
    let root = tempfile::tempdir().unwrap();
    for command in ["inspect", "verify", "dump"] {
        let output = cpwal(&[command, path_arg(root.path())]);
        assert_one_line_error(&output, 1, "not a cpwal data directory");
    }
    assert!(std::fs::read_dir(root.path()).unwrap().next().is_none());
}

fn voter(subject: &str) -> ClusterVoterIdentity {
    ClusterVoterIdentity::from_certificate_subject(subject).unwrap()
}

#[test]
fn commands_on_a_fresh_directory() {
    // Goal: every reading command works on a directory a node just wrote.
    // Method: append three entries with the library, then run them all.
    let root = tempfile::tempdir().unwrap();
    let dir = root.path().join("fresh");
    let mut node =
        DurableControlPlane::create(&dir, voter("CN=fresh"), Options::default()).unwrap();
    for subject in ["CN=a", "CN=b", "CN=c"] {
        let entry = ControlPlaneEntry::MembershipChange(MembershipChange::Admit(voter(subject)));
        node.try_append(&entry).unwrap();
    }
    drop(node);
    let inspect = text(&cpwal(&["inspect", path_arg(&dir)]).stdout);
    assert!(
        inspect.contains("log:        indexes 0..=2 (3 entries)"),
        "{inspect}"
    );
    assert!(inspect.contains("vote:       CN=fresh"), "{inspect}");
    assert_eq!(cpwal(&["verify", path_arg(&dir)]).status.code(), Some(0));
    let dump = text(&cpwal(&["dump", path_arg(&dir), "--from", "2"]).stdout);
    assert!(dump.contains(r#""member":"CN=c""#), "{dump}");
}

/// A directory compacted by the library: 120 entries (admits of `CN=m0`..
/// `CN=m39`, 80 range transitions `r0`..`r79`) over 4 KiB segments,
/// compacted keeping 10 entries (snapshot at 120, log start 110), then two
/// more admits. Returns the directory and the compaction's report.
fn compacted_directory(root: &Path) -> (PathBuf, cpwal::CompactionReport) {
    let dir = root.join("compacted");
    let options = Options::default().with_segment_size_bytes(4096);
    let mut node = DurableControlPlane::create(&dir, voter("CN=compactor"), options).unwrap();
    for i in 0..120 {
        let entry = if i % 3 == 0 {
            let member = voter(&format!("CN=m{}", i / 3));
            ControlPlaneEntry::MembershipChange(MembershipChange::Admit(member))
        } else {
            ControlPlaneEntry::OwnershipTransition(OwnershipTransition {
                range: format!("r{}", i - i / 3 - 1),
                new_owner: voter("CN=m0"),
                ownership_epoch: 1,
            })
        };
        node.try_append(&entry).unwrap();
    }
    let report = node.compact(10).unwrap();
    for subject in ["CN=late-1", "CN=late-2"] {
        let entry = ControlPlaneEntry::MembershipChange(MembershipChange::Admit(voter(subject)));
        node.try_append(&entry).unwrap();
    }
    drop(node);
    (dir, report)
}

#[test]
fn reading_commands_on_a_compacted_directory() {
    // Goal: inspect (text and JSON), verify and dump understand a compacted
    // directory: the snapshot is loaded and reported, the log starts after
    // the compacted prefix, `dump --from` below it is a one-line error saying
    // where the log starts, and no command changes a byte. Method: compact a
    // directory with `DurableControlPlane::compact`, run every reader.
    let root = tempfile::tempdir().unwrap();
    let (dir, report) = compacted_directory(root.path());
    assert_eq!(report.snapshot_index_end.0, 120);
    assert_eq!(report.log_start.0, 110);
    assert!(report.removed_segments > 0, "{report:?}");
    let before = snapshot(&dir);
    let snapshot_name = "snapshot-00000000000000000120";
    let snapshot_bytes = before[snapshot_name].len();

    let inspect = text(&cpwal(&["inspect", path_arg(&dir)]).stdout);
    let expected = format!(
        "snapshot:   {snapshot_name} covers indexes below 120 (last term 1), {snapshot_bytes} bytes; catalog: 40 members, 80 ranges"
    );
    assert!(inspect.contains(&expected), "{inspect}");
    assert!(
        inspect.contains("log:        indexes 110..=121 (12 entries)"),
        "{inspect}"
    );
    assert!(inspect.contains("commit:     index 121"), "{inspect}");

    let json = cpwal(&["inspect", "--json", path_arg(&dir)]);
    let json: serde_json::Value = serde_json::from_slice(&json.stdout).unwrap();
    assert_eq!(json["snapshot"]["file"], snapshot_name);
    assert_eq!(json["snapshot"]["index_end"], 120);
    assert_eq!(json["snapshot"]["last_term"], 1);
    assert_eq!(json["snapshot"]["file_bytes"], snapshot_bytes as u64);
    assert_eq!(json["snapshot"]["members"], 40);
    assert_eq!(json["snapshot"]["ranges"], 80);
    assert_eq!(json["first_index"], 110);

    let verify = cpwal(&["verify", path_arg(&dir)]);
    let verified = text(&verify.stdout);
    assert_eq!(verify.status.code(), Some(0), "{verified}");
    assert!(verified.contains("12 entries verified"), "{verified}");
    assert!(
        verified.contains(&format!("snapshot {snapshot_name} readable")),
        "{verified}"
    );

    let below = cpwal(&["dump", path_arg(&dir), "--from", "5"]);
    assert_one_line_error(&below, 1, "the log starts at index 110");
    let dump = text(&cpwal(&["dump", path_arg(&dir)]).stdout);
    let first: serde_json::Value = serde_json::from_str(dump.lines().next().unwrap()).unwrap();
    assert_eq!(first["index"], 110);
    assert_eq!(dump.lines().count(), 12);
    assert_eq!(snapshot(&dir), before, "a reading command changed a byte");
}

#[test]
fn verify_damaged_snapshot_reports_corruption() {
    // Goal: a damaged snapshot (synced before it was named, so never torn) is
    // corruption, exit 4, naming the snapshot file and the offset of its
    // body, for verify and inspect alike, and nothing is repaired. Method:
    // flip one bit in the body of a compacted directory's snapshot.
    let root = tempfile::tempdir().unwrap();
    let (dir, _) = compacted_directory(root.path());
    let file = dir.join("snapshot-00000000000000000120");
    damage(&file, 100, |b| b[0] ^= 0x04);
    let before = snapshot(&dir);
    let output = cpwal(&["verify", path_arg(&dir)]);
    let stdout = text(&output.stdout);
    assert_eq!(output.status.code(), Some(4), "{stdout}");
    assert!(
        stdout.contains("snapshot-00000000000000000120 offset 64"),
        "{stdout}"
    );
    assert!(stdout.contains("checksum mismatch"), "{stdout}");
    let inspect = cpwal(&["inspect", path_arg(&dir)]);
    assert_eq!(inspect.status.code(), Some(4));
    assert!(text(&inspect.stdout).contains("verdict:    DAMAGED"));
    assert_eq!(snapshot(&dir), before, "verify modified a damaged snapshot");
}

#[test]
fn verify_hard_state_behind_the_log_reports_corruption() {
    // Goal: a hard state restored from an older copy (term 1) next to a log
    // written in term 3 is corruption (exit 4) naming the hard-state file,
    // both terms and the last index; nothing is changed. Method: copy the
    // hard-state file after the first append, run two elections, append,
    // put the old copy back, verify.
    let root = tempfile::tempdir().unwrap();
    let dir = root.path().join("stale");
    let mut node =
        DurableControlPlane::create(&dir, voter("CN=stale"), Options::default()).unwrap();
    let admit = |s| ControlPlaneEntry::MembershipChange(MembershipChange::Admit(voter(s)));
    node.try_append(&admit("CN=a")).unwrap();
    let hard_state = dir.join(cpwal::format::HARD_STATE_FILE_NAME);
    let backup = std::fs::read(&hard_state).unwrap();
    node.start_election().unwrap();
    node.start_election().unwrap();
    node.try_append(&admit("CN=b")).unwrap();
    drop(node);
    std::fs::write(&hard_state, backup).unwrap();
    let before = snapshot(&dir);
    let output = cpwal(&["verify", path_arg(&dir)]);
    let stdout = text(&output.stdout);
    assert_eq!(output.status.code(), Some(4), "{stdout}");
    assert!(stdout.contains("hardstate offset 0 index 1"), "{stdout}");
    assert!(
        stdout.contains("the log holds term 3 but the hard state only term 1"),
        "{stdout}"
    );
    assert_eq!(snapshot(&dir), before, "verify changed a byte");
}

/// A writer process holding `dir`: the crash-test child, once it has opened.
fn writer_process(dir: &Path) -> Child {
    // The crash-test child opens the node its parent created; so does this.
    let me = voter("CN=crash-test-node");
    drop(DurableControlPlane::create(dir, me, Options::default()).unwrap());
    let mut child = Command::new(env!("CARGO_BIN_EXE_cpwal"))
        .args([
            "crash-child",
            "--dir",
            path_arg(dir),
            "--seed",
            "3",
            "--cycle",
            "0",
        ])
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let mut first = String::new();
    BufReader::new(child.stdout.as_mut().unwrap())
        .read_line(&mut first)
        .unwrap();
    assert!(first.starts_with("opened"), "writer did not open: {first}");
    child
}

#[test]
fn directory_held_by_another_process() {
    // Goal: while another process writes, readers are refused with one line
    // and a second writer gets DirectoryLocked (G6). Method: run the
    // crash-test writer child on a directory and try each.
    let root = tempfile::tempdir().unwrap();
    let dir = root.path().join("held");
    let mut writer = writer_process(&dir);
    let inspect = cpwal(&["inspect", path_arg(&dir)]);
    let verify = cpwal(&["verify", path_arg(&dir)]);
    let second = DurableControlPlane::open(&dir, voter("CN=crash-test-node"), Options::default());
    writer.kill().unwrap();
    writer.wait().unwrap();
    assert_one_line_error(&inspect, 1, "locked");
    assert_one_line_error(&verify, 1, "locked");
    assert!(
        matches!(second, Err(Error::DirectoryLocked { .. })),
        "{second:?}"
    );
    // A kill leaves at most what the next writer repairs (a hard-state
    // update cut between its two copies: exit 3), never more.
    let verify = cpwal(&["verify", path_arg(&dir)]);
    assert!(
        matches!(verify.status.code(), Some(0 | 3)),
        "{}",
        text(&verify.stdout)
    );
}

#[test]
fn readers_share_the_directory_and_keep_writers_out() {
    // Goal: readers take a shared lock: two may read at once, a writer is
    // refused meanwhile. Method: hold an Inspection in this process, run
    // `cpwal inspect`, and try to open a writer.
    let root = tempfile::tempdir().unwrap();
    let dir = fixture_copy(root.path());
    std::fs::write(dir.join("LOCK"), b"").unwrap();
    let reader = cpwal::inspect::Inspection::open(&dir).unwrap();
    let output = cpwal(&["inspect", path_arg(&dir)]);
    assert!(output.status.success(), "{}", text(&output.stderr));
    let writer = DurableControlPlane::open(&dir, voter("CN=node-a"), Options::default());
    assert!(
        matches!(writer, Err(Error::DirectoryLocked { .. })),
        "{writer:?}"
    );
    drop(reader);
}

#[test]
fn bench_prints_figures_beside_raw_fdatasync_and_cleans_up() {
    // Goal: bench measures on the given disk, prints each figure beside the
    // raw baseline and a verdict, and leaves nothing behind. Method: a tiny
    // sample count in a temporary directory.
    let root = tempfile::tempdir().unwrap();
    let output = cpwal(&["bench", "--dir", path_arg(root.path()), "--samples", "10"]);
    let stdout = text(&output.stdout);
    assert!(output.status.success(), "{}", text(&output.stderr));
    for needle in [
        "raw pwrite+fdatasync",
        "durable append",
        "vote/term change",
        "group commit (8 writers)",
        "overlap: ",
        "verdict:",
    ] {
        assert!(stdout.contains(needle), "{needle} missing:\n{stdout}");
    }
    assert!(std::fs::read_dir(root.path()).unwrap().next().is_none());
}

#[test]
fn shared_storage_refuses_every_change() {
    // Goal: a read-only (shared) handle cannot write, whatever the caller
    // does: the guarantee behind "reading commands never change a byte".
    // Method: try each changing call of the io seam on a shared handle.
    use cpwal::io::{LockMode, OsStorage, Storage};
    let root = tempfile::tempdir().unwrap();
    let dir = fixture_copy(root.path());
    let before = snapshot(&dir);
    let storage = OsStorage::open(&dir, LockMode::Shared).unwrap();
    let denied = std::io::ErrorKind::PermissionDenied;
    assert_eq!(storage.create("new").err().map(|e| e.kind()), Some(denied));
    assert_eq!(
        storage.open("hardstate", true).err().map(|e| e.kind()),
        Some(denied)
    );
    assert_eq!(storage.rename("hardstate", "x").unwrap_err().kind(), denied);
    assert_eq!(storage.remove("hardstate").unwrap_err().kind(), denied);
    assert_eq!(storage.sync_directory().unwrap_err().kind(), denied);
    assert!(storage.open("hardstate", false).is_ok());
    drop(storage);
    assert_eq!(snapshot(&dir), before);
}

#[test]
fn crash_test_refuses_a_non_empty_directory() {
    // Goal: crash-test never runs its model against a directory it did not
    // start (the checker would blame the engine for foreign entries), and
    // says so in one line. Method: point it at the fixture copy.
    let root = tempfile::tempdir().unwrap();
    let dir = fixture_copy(root.path());
    let before = snapshot(&dir);
    let output = cpwal(&["crash-test", "--dir", path_arg(&dir), "--seconds", "1"]);
    assert_one_line_error(&output, 1, "is not empty");
    assert_eq!(snapshot(&dir), before);
}
