//! Attacks on the fast paths of the append and open paths, written by an
//! adversarial review session: the 16-byte printable-ASCII check, the crc32
//! hasher template, the rebuild that decodes ahead on a second thread,
//! `check_leads` (the failure latch read once), the segment scan on every
//! core, and group commit's wake-ups only for sleepers. Two of them (a
//! system out of threads while opening) failed before open's threads fell
//! back to working in line.

mod support;

use std::path::Path;
use std::sync::mpsc;
use std::time::Duration;

use cpwal::inspect::Inspection;
use cpwal::{
    ClusterVoterIdentity, ControlPlaneCatalog, ControlPlaneEntry, ControlPlaneIndex,
    CorruptionKind, DurableControlPlane, Error, MembershipChange, Options, ReplicaControlPlane,
    SharedControlPlane,
};
use support::long_log::long_log_entry;
use support::sim_disk::SimDisk;

fn voter(subject: &str) -> ClusterVoterIdentity {
    ClusterVoterIdentity::from_certificate_subject(subject).unwrap()
}

fn admit(n: u64) -> ControlPlaneEntry {
    ControlPlaneEntry::MembershipChange(MembershipChange::Admit(voter(&format!("CN=node-{n}"))))
}

fn append_range<S: cpwal::io::Storage>(
    node: &mut DurableControlPlane<S>,
    range: std::ops::Range<u64>,
) {
    let all: Vec<u64> = range.collect();
    for chunk in all.chunks(500) {
        let batch: Vec<_> = chunk.iter().map(|&n| long_log_entry(n)).collect();
        node.try_append_batch(&batch).unwrap();
    }
}

// ---------------------------------------------------------------------------
// Printable-ASCII check (b09f9fe), through the public identity constructor.

#[test]
fn identity_control_bytes_refused_at_every_position_of_every_length() {
    // Every length 1..=100, every position, each control byte and the
    // printable bytes at the edges (0x1f, 0x20, 0x7e, 0x7f): a control
    // anywhere is refused, printable text accepted.
    // (Constructors trim, so only interior positions hold a control.)
    for length in 3..=100usize {
        let base = vec![b'x'; length];
        for at in 1..length - 1 {
            for byte in (0u8..=0x20).chain([0x7e, 0x7f]) {
                let mut text = base.clone();
                text[at] = byte;
                let text = String::from_utf8(text).unwrap();
                let made = ClusterVoterIdentity::from_certificate_subject(&text);
                if (byte as char).is_control() {
                    assert_eq!(
                        made.map(drop),
                        Err(cpwal::IdentityError::ControlCharacter { offset: at }),
                        "{byte:#x} at {at} of {length}"
                    );
                } else {
                    assert!(made.is_ok(), "{byte:#x} at {at} of {length}: {made:?}");
                }
            }
        }
    }
}

// ---------------------------------------------------------------------------
// crc template (9075943): checksums equal crc32fast::hash(salt || body).

#[test]
fn record_checksums_equal_a_fresh_crc_of_salt_and_body() {
    use cpwal::format::{record_bytes, RecordHeader, RECORD_HEADER_BYTES, RECORD_MAGIC};
    let dir = tempfile::tempdir().unwrap();
    let mut node =
        DurableControlPlane::create(dir.path(), voter("CN=n"), Options::default()).unwrap();
    for n in 0..300 {
        node.try_append(&long_log_entry(n)).unwrap();
    }
    drop(node);
    let path = dir.path().join(cpwal::format::segment_file_name(1));
    let bytes = std::fs::read(&path).unwrap();
    let header_bytes = RECORD_HEADER_BYTES as usize;
    let mut checked = 0;
    for at in (cpwal::format::SEGMENT_HEADER_BYTES as usize..bytes.len() - header_bytes)
        .step_by(cpwal::format::RECORD_ALIGNMENT_BYTES as usize)
    {
        let header: RecordHeader = bytemuck::pod_read_unaligned(&bytes[at..at + header_bytes]);
        if header.magic != RECORD_MAGIC {
            continue;
        }
        let length = record_bytes(u64::from(header.payload_bytes)) as usize;
        let body_end = at + length - 8;
        let mut salted = Vec::new();
        salted.extend_from_slice(&1u64.to_le_bytes());
        salted.extend_from_slice(&(at as u64).to_le_bytes());
        salted.extend_from_slice(&bytes[at..body_end]);
        let stored = u32::from_le_bytes(bytes[body_end..body_end + 4].try_into().unwrap());
        assert_eq!(stored, crc32fast::hash(&salted), "record at {at}");
        checked += 1;
    }
    assert_eq!(checked, 300);
}

// ---------------------------------------------------------------------------
// Decode-ahead rebuild (9f321de).

/// Appends `before`, snapshots (compact keeping everything), appends
/// `after`, then reopens: the catalog equals the appended one. All in one
/// 16 MiB segment, so the rebuild starts mid-segment at `before`.
fn rebuild_after_snapshot_matches<S: cpwal::io::Storage + Clone>(
    storage: S,
    before: u64,
    after: u64,
) {
    let mut node = DurableControlPlane::create_with_storage(
        storage.clone(),
        voter("CN=n"),
        Options::default(),
    )
    .unwrap();
    append_range(&mut node, 0..before);
    if before > 0 {
        node.compact(u64::MAX).unwrap();
    }
    append_range(&mut node, before..before + after);
    let built: ControlPlaneCatalog = node.catalog().clone();
    drop(node);
    let reopened =
        DurableControlPlane::open_with_storage(storage, voter("CN=n"), Options::default()).unwrap();
    assert_eq!(reopened.catalog(), &built, "before {before}, after {after}");
    assert_eq!(reopened.applied_end(), ControlPlaneIndex(before + after));
}

#[test]
fn rebuild_on_owned_bytes_around_the_decode_ahead_threshold() {
    // The simulated disk hands back owned bytes (checksums recomputed);
    // ranges just below, at and above 4096 and at chunk edges, starting at
    // 0 and mid-segment after a snapshot.
    for (before, after) in [
        (0, 4095),
        (0, 4096),
        (0, 4097),
        (0, 5120),
        (0, 5121),
        (1, 4096),
        (1000, 4095),
        (1000, 4096),
        (1023, 4097),
        (1024, 8193),
        (4095, 1),
        (5000, 4096),
    ] {
        rebuild_after_snapshot_matches(SimDisk::new(), before, after);
    }
}

#[test]
fn rebuild_on_memory_map_after_mid_segment_snapshot() {
    for (before, after) in [(1000, 4096), (3, 9000), (4096, 4097)] {
        let dir = tempfile::tempdir().unwrap();
        let mut node =
            DurableControlPlane::create(dir.path(), voter("CN=n"), Options::default()).unwrap();
        append_range(&mut node, 0..before);
        node.compact(u64::MAX).unwrap();
        append_range(&mut node, before..before + after);
        let built = node.catalog().clone();
        drop(node);
        let reopened =
            DurableControlPlane::open(dir.path(), voter("CN=n"), Options::default()).unwrap();
        assert_eq!(reopened.catalog(), &built, "before {before}, after {after}");
    }
}

#[test]
fn replica_commit_point_mid_segment_rebuilds_exactly_the_committed_prefix() {
    // A replica leader appends 9000 uncommitted entries and commits
    // through 4095 / 4096 / 4097 / 6000 (mid-segment): the reopened catalog
    // holds exactly the committed prefix, as a sole voter applying it would.
    for commit_through in [4094u64, 4095, 4096, 6000] {
        let disk = SimDisk::new();
        let me = voter("CN=r");
        let mut node =
            ReplicaControlPlane::create_with_storage(disk.clone(), me.clone(), Options::default())
                .unwrap();
        let term = node.start_election().unwrap();
        node.become_leader(term).unwrap();
        let all: Vec<u64> = (0..9000).collect();
        for chunk in all.chunks(500) {
            let batch: Vec<_> = chunk.iter().map(|&n| long_log_entry(n)).collect();
            node.append_uncommitted_batch(&batch).unwrap();
        }
        node.advance_commit(ControlPlaneIndex(commit_through))
            .unwrap();
        let built = node.catalog().clone();
        assert_eq!(built.applied_end(), ControlPlaneIndex(commit_through + 1));
        drop(node);
        let reopened =
            ReplicaControlPlane::open_with_storage(disk, me, Options::default()).unwrap();
        assert_eq!(
            reopened.catalog(),
            &built,
            "commit through {commit_through}"
        );
    }
}

// ---------------------------------------------------------------------------
// Parallel scan (0c3c5f0): error order.

fn small_segments() -> Options {
    Options::default().with_segment_size_bytes(4096)
}

fn segment(dir: &Path, generation: u64) -> std::path::PathBuf {
    dir.join(cpwal::format::segment_file_name(generation))
}

fn flip_first_record(dir: &Path, generation: u64) {
    let mut bytes = std::fs::read(segment(dir, generation)).unwrap();
    bytes[512 + 50] ^= 0x10;
    std::fs::write(segment(dir, generation), &bytes).unwrap();
}

/// A log of at least `segments` full segments of 36 KiB (over 1 MiB in all
/// from 29 on, so that open scans them on every core), appended in batches
/// of 100: each segment's first record is at 512.
fn many_segments(dir: &Path, segments: u64) {
    let options = Options::default().with_segment_size_bytes(36 << 10);
    let mut node = DurableControlPlane::create(dir, voter("CN=node-a"), options).unwrap();
    let mut next = 0;
    while !segment(dir, segments + 1).exists() {
        let batch: Vec<_> = (next..next + 100).map(admit).collect();
        node.try_append_batch(&batch).unwrap();
        next += 100;
    }
}

#[test]
fn earliest_damage_wins_over_later_damage_of_every_kind() {
    // Damage in generation 4 (checksum) and checksum damage in 20 and 29,
    // 30+ segments scanned on every core: open and read-only inspection
    // both name generation 4, at its first record, every time. Damage in
    // 29 alone names 29.
    let dir = tempfile::tempdir().unwrap();
    many_segments(dir.path(), 31);
    assert!(segment(dir.path(), 30).exists(), "at least 30 segments");
    flip_first_record(dir.path(), 29);
    let error = DurableControlPlane::open(dir.path(), voter("CN=node-a"), small_segments())
        .expect_err("damage accepted");
    let corruption = error.as_corruption().unwrap_or_else(|| panic!("{error:?}"));
    assert_eq!(corruption.path, segment(dir.path(), 29), "{error:?}");
    assert_eq!(corruption.offset, 512);
    flip_first_record(dir.path(), 4);
    flip_first_record(dir.path(), 20);
    // (A later segment cut short is refused by Segment::open, before any
    // scan, as before the parallel scan: not attacked here.)
    for _ in 0..10 {
        let error = DurableControlPlane::open(dir.path(), voter("CN=node-a"), small_segments())
            .expect_err("damage accepted");
        let corruption = error.as_corruption().unwrap_or_else(|| panic!("{error:?}"));
        assert_eq!(corruption.path, segment(dir.path(), 4), "{error:?}");
        assert_eq!(corruption.offset, 512);
        assert_eq!(corruption.kind, CorruptionKind::ChecksumMismatch);
        let inspected = Inspection::open(dir.path()).expect_err("inspection accepted damage");
        let corruption = inspected
            .as_corruption()
            .unwrap_or_else(|| panic!("{inspected:?}"));
        assert_eq!(corruption.path, segment(dir.path(), 4), "{inspected:?}");
    }
}

#[test]
fn chain_gap_before_later_damage_is_reported_first() {
    // An index gap (a middle segment removed) and damage in a later
    // segment: the gap is reported, as a sequential scan found it.
    let dir = tempfile::tempdir().unwrap();
    many_segments(dir.path(), 31);
    flip_first_record(dir.path(), 15);
    let sequential = {
        // Baseline: what a fresh copy with only the gap reports.
        std::fs::remove_file(segment(dir.path(), 6)).unwrap();
        DurableControlPlane::open(dir.path(), voter("CN=node-a"), small_segments())
            .expect_err("a removed segment was accepted")
    };
    let corruption = sequential
        .as_corruption()
        .unwrap_or_else(|| panic!("{sequential:?}"));
    assert!(
        matches!(corruption.kind, CorruptionKind::SegmentChainBroken { .. }),
        "{sequential:?}"
    );
    assert_ne!(corruption.path, segment(dir.path(), 15), "{sequential:?}");
}

#[test]
fn earlier_short_segment_wins_over_later_checksum_damage() {
    // A cut-short segment 5 and a flipped bit in 25: the error names
    // segment 5. (Segment::open refuses the short file before any scan, so
    // this pins the order only; it passed before the parallel scan too.)
    let dir = tempfile::tempdir().unwrap();
    many_segments(dir.path(), 31);
    flip_first_record(dir.path(), 25);
    let cut = segment(dir.path(), 5);
    let file = std::fs::OpenOptions::new().write(true).open(&cut).unwrap();
    file.set_len(3000).unwrap();
    drop(file);
    for _ in 0..10 {
        let error = DurableControlPlane::open(dir.path(), voter("CN=node-a"), small_segments())
            .expect_err("damage accepted");
        let text = format!("{error:?}");
        assert!(
            text.contains(&cpwal::format::segment_file_name(5)),
            "the error does not name segment 5: {text}"
        );
    }
}

// ---------------------------------------------------------------------------
// Threads at open: a spawn that fails must not panic the open.

/// Environment variable telling the child tests which directory to open.
const CHILD_DIR: &str = "CPWAL_TEST_NO_THREADS_DIR";

/// In a child process only: no further thread can be created (RLIMIT_NPROC
/// of 1, as a non-root user), then opens `dir` as `open` says.
fn child_without_threads(open: impl FnOnce(&Path)) {
    let Some(dir) = std::env::var_os(CHILD_DIR) else {
        return; // not the child
    };
    // SAFETY: not a memory map: plain system calls on this (child) process's
    // own limits and credentials, taking integers and a pointer to a local
    // that outlives the call; no memory of ours is shared with them.
    unsafe {
        let limit = libc::rlimit {
            rlim_cur: 1,
            rlim_max: 1,
        };
        assert_eq!(libc::setrlimit(libc::RLIMIT_NPROC, &limit), 0);
        if libc::geteuid() == 0 {
            assert_eq!(libc::setgid(65534), 0);
            assert_eq!(libc::setuid(65534), 0);
        }
    }
    assert!(
        std::thread::Builder::new().spawn(|| ()).is_err(),
        "the child could still create threads"
    );
    open(Path::new(&dir));
}

#[test]
fn child_inspection_without_threads() {
    child_without_threads(|dir| {
        let inspected = Inspection::open(dir);
        println!("CHILD-RESULT inspection ok={}", inspected.is_ok());
    });
}

#[test]
fn child_open_without_threads() {
    child_without_threads(|dir| {
        let opened = DurableControlPlane::open(dir, voter("CN=n"), Options::default());
        println!("CHILD-RESULT open ok={}", opened.is_ok());
    });
}

fn open_everything(dir: &Path) {
    let walk = std::fs::read_dir(dir).unwrap();
    std::fs::set_permissions(dir, std::os::unix::fs::PermissionsExt::from_mode(0o777)).unwrap();
    for entry in walk {
        let path = entry.unwrap().path();
        std::fs::set_permissions(&path, std::os::unix::fs::PermissionsExt::from_mode(0o666))
            .unwrap();
    }
}

/// Runs child test `name` of this binary on `dir` and returns its output.
fn run_child(name: &str, dir: &Path) -> (bool, String) {
    let output = std::process::Command::new(std::env::current_exe().unwrap())
        .args([name, "--exact", "--nocapture", "--test-threads=1"])
        .env(CHILD_DIR, dir)
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&output.stdout).into_owned()
        + &String::from_utf8_lossy(&output.stderr);
    (output.status.success(), text)
}

/// Runs child test `child` on a directory `make` fills (made readable and
/// writable by the child's unprivileged user); the child must report
/// `expect` and exit cleanly.
fn open_in_child_without_threads(child: &str, expect: &str, make: impl FnOnce(&Path)) {
    if std::env::var_os(CHILD_DIR).is_some() {
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    std::fs::set_permissions(
        tmp.path(),
        std::os::unix::fs::PermissionsExt::from_mode(0o777),
    )
    .unwrap();
    let dir = tmp.path().join("node");
    make(&dir);
    open_everything(&dir);
    let (ok, text) = run_child(child, &dir);
    assert!(
        ok && text.contains(expect),
        "the open panicked or failed when no thread could be spawned:\n{text}"
    );
}

#[test]
fn parallel_scan_survives_a_failed_thread_spawn() {
    // Before 0c3c5f0 an open's scan used no thread. Now it spawns one
    // helper per further core with `Scope::spawn`, which panics when the OS
    // refuses a thread (EAGAIN under RLIMIT_NPROC or a pids cgroup, ENOMEM):
    // read-only inspection (`cpwal verify`) and every open of a log of 2+
    // segments panic instead of scanning in line. Needs 2+ cores.
    if std::thread::available_parallelism().map_or(1, |n| n.get()) < 2 {
        return;
    }
    open_in_child_without_threads(
        "child_inspection_without_threads",
        "CHILD-RESULT inspection ok=true",
        |dir| many_segments(dir, 31),
    );
}

#[test]
fn decode_ahead_rebuild_survives_a_failed_thread_spawn() {
    // Before 9f321de the catalog rebuild used no thread. Now a segment of
    // 4096+ committed entries is decoded ahead on a `Scope::spawn`ed
    // thread, which panics when the OS refuses one: opening a node (one
    // segment, so the scan spawns nothing) panics instead of decoding in
    // line.
    open_in_child_without_threads(
        "child_open_without_threads",
        "CHILD-RESULT open ok=true",
        |dir| {
            let mut node =
                DurableControlPlane::create(dir, voter("CN=n"), Options::default()).unwrap();
            append_range(&mut node, 0..5000);
        },
    );
}

// ---------------------------------------------------------------------------
// Group commit (1eaa341) and check_leads (30c173c).

/// Runs `f` on a thread and fails the test if it does not finish in
/// `limit` (a lost wake-up hangs it).
fn within<T: Send + 'static>(
    limit: Duration,
    what: &str,
    f: impl FnOnce() -> T + Send + 'static,
) -> T {
    let (done, finished) = mpsc::channel();
    std::thread::spawn(move || {
        let _ = done.send(f());
    });
    finished
        .recv_timeout(limit)
        .unwrap_or_else(|_| panic!("{what}: no answer in {limit:?} (lost wake-up?)"))
}

#[test]
fn many_writers_on_few_cores_never_hang() {
    // 16 threads, single appends and small batches, interleaved with
    // with_engine calls (which sync under the engine lock while a group
    // sync may be in flight): every call returns, every entry is applied.
    for round in 0..5 {
        within(Duration::from_secs(120), "group commit round", move || {
            let disk = SimDisk::new();
            let node =
                DurableControlPlane::create_with_storage(disk, voter("CN=n"), Options::default())
                    .unwrap();
            let shared = SharedControlPlane::new(node);
            let threads: Vec<_> = (0..16u64)
                .map(|t| {
                    let shared = shared.clone();
                    std::thread::spawn(move || {
                        for i in 0..150u64 {
                            let n = t * 1_000 + i;
                            match (i + round) % 5 {
                                0 => {
                                    shared
                                        .try_append_batch(&[admit(n), admit(n + 500)])
                                        .unwrap();
                                }
                                1 if t == 0 => {
                                    shared.with_engine(|_| Ok(())).unwrap();
                                }
                                _ => {
                                    shared.try_append(&admit(n)).unwrap();
                                }
                            }
                        }
                    })
                })
                .collect();
            for thread in threads {
                thread.join().unwrap();
            }
            let applied = shared.with_catalog(|c| c.applied_end());
            assert_eq!(
                Some(ControlPlaneIndex(applied.0 - 1)),
                shared.commit_index()
            );
        });
    }
}

#[test]
fn many_writers_on_real_fdatasync_never_hang() {
    // Real fdatasync (ext4): syncs take long enough that writers sleep on
    // the condition variable (sleepers > 0) every round.
    for _ in 0..3 {
        within(Duration::from_secs(300), "real-disk group commit", || {
            let dir = tempfile::tempdir().unwrap();
            let node =
                DurableControlPlane::create(dir.path(), voter("CN=n"), Options::default()).unwrap();
            let shared = SharedControlPlane::new(node);
            let threads: Vec<_> = (0..16u64)
                .map(|t| {
                    let shared = shared.clone();
                    std::thread::spawn(move || {
                        for i in 0..40u64 {
                            shared.try_append(&admit(t * 1000 + i)).unwrap();
                        }
                    })
                })
                .collect();
            for thread in threads {
                thread.join().unwrap();
            }
            assert_eq!(shared.commit_index(), Some(ControlPlaneIndex(16 * 40 - 1)));
        });
    }
}

#[test]
fn failed_sync_under_load_is_failed_never_not_leader_and_nobody_hangs() {
    // A sync fails while 12 threads append: every call returns; each error
    // is Error::Failed (or the Io error of the sync's own leader), never
    // NotLeader naming this node (check_leads).
    for fail_at in [3u64, 10, 25, 60] {
        within(Duration::from_secs(120), "failed sync round", move || {
            let disk = SimDisk::new();
            let node = DurableControlPlane::create_with_storage(
                disk.clone(),
                voter("CN=n"),
                Options::default(),
            )
            .unwrap();
            let syncs = disk.counters().syncs;
            disk.fail_sync(syncs + fail_at);
            let shared = SharedControlPlane::new(node);
            let threads: Vec<_> = (0..12u64)
                .map(|t| {
                    let shared = shared.clone();
                    std::thread::spawn(move || {
                        let mut errors = Vec::new();
                        for i in 0..60u64 {
                            if let Err(e) = shared.try_append(&admit(t * 1000 + i)) {
                                errors.push(e);
                            }
                        }
                        errors
                    })
                })
                .collect();
            let mut saw_failure = false;
            for thread in threads {
                for error in thread.join().unwrap() {
                    saw_failure = true;
                    assert!(
                        matches!(error, Error::Failed { .. } | Error::Io { .. }),
                        "fail at sync {fail_at}: {error:?}"
                    );
                }
            }
            assert!(saw_failure, "the sync never failed");
            assert!(!shared.is_leader());
        });
    }
}

#[test]
fn replica_advance_commit_is_not_leader_on_a_follower_and_failed_after_a_failure() {
    let disk = SimDisk::new();
    let me = voter("CN=r");
    let mut node =
        ReplicaControlPlane::create_with_storage(disk.clone(), me.clone(), Options::default())
            .unwrap();
    let refused = node.advance_commit(ControlPlaneIndex(0));
    assert!(
        matches!(&refused, Err(Error::NotLeader { leader: None })),
        "{refused:?}"
    );
    let term = node.start_election().unwrap();
    node.become_leader(term).unwrap();
    let index = node.append_uncommitted(&admit(1)).unwrap();
    let syncs = disk.counters().syncs;
    disk.fail_sync(syncs + 1);
    let failed = node.append_uncommitted(&admit(2));
    assert!(failed.is_err());
    for result in [
        node.advance_commit(index),
        node.append_uncommitted(&admit(3)).map(drop),
    ] {
        assert!(matches!(&result, Err(Error::Failed { .. })), "{result:?}");
    }
    assert!(!node.is_leader());
}
