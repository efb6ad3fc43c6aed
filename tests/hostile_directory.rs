//! Hostile directories: FIFOs, directories and non-UTF-8 names where cpwal
//! expects its files, and files cpwal does not own.
//!
//! The rules (see `cpwal::directory` and `cpwal::io`): only regular files are
//! ever opened, and an open never blocks; names are compared as bytes; only
//! cpwal's own temporary names are ever removed; a file cpwal does not own is
//! reported as foreign (never corruption, never deleted); `lost+found` is
//! ignored; an entry with one of cpwal's names that is not a regular file is
//! a typed error naming the path and what it is.

use std::ffi::OsStr;
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};
use std::sync::mpsc;
use std::time::Duration;

use cpwal::inspect::Inspection;
use cpwal::io::FileKind;
use cpwal::{
    ClusterVoterIdentity, ControlPlaneEntry, DurableControlPlane, Error, ForeignFile,
    MembershipChange, Options,
};

fn voter(subject: &str) -> ClusterVoterIdentity {
    ClusterVoterIdentity::from_certificate_subject(subject).unwrap()
}

fn options() -> Options {
    Options::default().with_segment_size_bytes(4096)
}

fn create(dir: &Path) -> cpwal::Result<DurableControlPlane> {
    DurableControlPlane::create(dir, voter("CN=a"), options())
}

fn open(dir: &Path) -> cpwal::Result<DurableControlPlane> {
    DurableControlPlane::open(dir, voter("CN=a"), options())
}

/// Runs `work` on a thread and returns its result, failing the test if it
/// takes longer than five seconds (a FIFO opened for reading blocks until
/// a writer appears: forever, here).
fn within_five_seconds<T: Send + 'static>(work: impl FnOnce() -> T + Send + 'static) -> T {
    let (sender, receiver) = mpsc::channel();
    std::thread::spawn(move || {
        let _ = sender.send(work());
    });
    receiver
        .recv_timeout(Duration::from_secs(5))
        .expect("the call hung (a FIFO was opened as a file?)")
}

/// Makes a FIFO at `path` (with `mkfifo(3)`, not the command: a child
/// process forked while another test closes a node would briefly share
/// that node's lock).
fn mkfifo(path: &Path) {
    let c_path = std::ffi::CString::new(path.as_os_str().as_bytes()).unwrap();
    // SAFETY: `c_path` is a valid NUL-terminated string for the call.
    let made = unsafe { libc::mkfifo(c_path.as_ptr(), 0o600) };
    assert_eq!(made, 0, "mkfifo {}", path.display());
}

/// A node with entries in three segments, a snapshot, closed.
fn populated_node(dir: &Path) {
    let mut node = create(dir).unwrap();
    for n in 0..120 {
        let member = voter(&format!("CN=member-{n:03}-with-a-longer-name"));
        let entry = ControlPlaneEntry::MembershipChange(MembershipChange::Admit(member));
        node.try_append(&entry).unwrap();
    }
    node.compact(200).unwrap();
    drop(node);
    assert!(dir.join("segment-00000000000000000003").is_file());
    assert!(dir.join("snapshot-00000000000000000120").is_file());
}

/// Asserts `error` is the typed refusal of `path` for being a `kind`.
fn assert_not_regular(error: &Error, path: &Path, kind: FileKind) {
    match error {
        Error::NotARegularFile {
            path: found,
            kind: found_kind,
        } => {
            assert_eq!(found, path);
            assert_eq!(*found_kind, kind);
        }
        other => panic!(
            "expected NotARegularFile for {}, got {other:?}",
            path.display()
        ),
    }
    let message = error.to_string();
    assert!(message.contains(&path.display().to_string()), "{message}");
}

#[test]
fn open_refuses_fifos_named_like_cpwal_files_without_hanging() {
    // Goal: a FIFO under any of cpwal's names (a segment in the chain, a
    // snapshot, the lock, the hard state) is refused at once with a typed
    // error naming it, by the writer's open and by inspection; before, the
    // read-only opens blocked forever. Method: for each name, a fresh
    // populated node with that file replaced by a FIFO; both opens run
    // under a five-second limit.
    let names = [
        "segment-00000000000000000002",
        "snapshot-00000000000000000120",
        "LOCK",
        "hardstate",
    ];
    for name in names {
        let dir = tempfile::tempdir().unwrap();
        populated_node(dir.path());
        let path = dir.path().join(name);
        if path.exists() {
            std::fs::remove_file(&path).unwrap();
        }
        mkfifo(&path);
        let root = dir.path().to_path_buf();
        let written = within_five_seconds(move || open(&root).map(drop));
        assert_not_regular(&written.unwrap_err(), &path, FileKind::Fifo);
        let root = dir.path().to_path_buf();
        let inspected = within_five_seconds(move || Inspection::open(&root).map(drop));
        assert_not_regular(&inspected.unwrap_err(), &path, FileKind::Fifo);
    }
}

#[test]
fn open_refuses_directories_and_symlinks_named_like_cpwal_files() {
    // Goal: a directory or a symbolic link under one of cpwal's names is a
    // typed error naming it and its kind, never an `Io(remove file)` and
    // never followed. Method: a new directory holding a directory named
    // `hardstate`; one holding a directory named `segment-spare.tmp` (a
    // name recovery removes); a populated node whose newest segment is
    // replaced by a symlink to a copy of itself.
    let dir = tempfile::tempdir().unwrap();
    let hard_state = dir.path().join("hardstate");
    std::fs::create_dir(&hard_state).unwrap();
    assert_not_regular(
        &open(dir.path()).unwrap_err(),
        &hard_state,
        FileKind::Directory,
    );

    let dir = tempfile::tempdir().unwrap();
    populated_node(dir.path());
    let spare = dir.path().join("segment-spare.tmp");
    std::fs::create_dir(&spare).unwrap();
    assert_not_regular(&open(dir.path()).unwrap_err(), &spare, FileKind::Directory);
    assert!(spare.is_dir(), "cpwal removed a directory");

    let dir = tempfile::tempdir().unwrap();
    populated_node(dir.path());
    let segment = dir.path().join("segment-00000000000000000002");
    let elsewhere = tempfile::tempdir().unwrap();
    let target = elsewhere.path().join("copy");
    std::fs::copy(&segment, &target).unwrap();
    std::fs::remove_file(&segment).unwrap();
    std::os::unix::fs::symlink(&target, &segment).unwrap();
    assert_not_regular(
        &open(dir.path()).unwrap_err(),
        &segment,
        FileKind::SymbolicLink,
    );
}

/// The foreign entries a hostile directory test plants, and their kinds.
fn plant_foreign_entries(dir: &Path) -> Vec<(PathBuf, FileKind)> {
    let notes = dir.join("notes.txt");
    std::fs::write(&notes, b"an operator's note\n").unwrap();
    let directory_tmp = dir.join("x.tmp");
    std::fs::create_dir(&directory_tmp).unwrap();
    let non_utf8 = dir.join(OsStr::from_bytes(b"leftover-\xff.tmp"));
    std::fs::write(&non_utf8, b"not cpwal's").unwrap();
    let user_tmp = dir.join("segment-7.tmp");
    std::fs::write(&user_tmp, b"named like cpwal's, but not one of its names").unwrap();
    std::fs::create_dir(dir.join("lost+found")).unwrap();
    vec![
        (notes, FileKind::RegularFile),
        (directory_tmp, FileKind::Directory),
        (non_utf8, FileKind::RegularFile),
        (user_tmp, FileKind::RegularFile),
    ]
}

fn sorted(mut foreign: Vec<ForeignFile>) -> Vec<(PathBuf, FileKind)> {
    foreign.sort_by(|a, b| a.path.cmp(&b.path));
    foreign.into_iter().map(|f| (f.path, f.kind)).collect()
}

#[test]
fn open_reports_foreign_files_and_never_removes_them() {
    // Goal: files cpwal does not own (a note, a directory named `x.tmp`, a
    // `.tmp` file whose name is not UTF-8, a `.tmp` file that is not one of
    // cpwal's temporary names) and `lost+found` neither fail the open nor
    // get removed; each but `lost+found` is reported as foreign, with its
    // kind, by the writer and by inspection, every time. Before, the open
    // failed with Corruption(UnexpectedFile) or Io(remove file).
    let dir = tempfile::tempdir().unwrap();
    populated_node(dir.path());
    let mut planted = plant_foreign_entries(dir.path());
    planted.sort();
    for _ in 0..2 {
        let inspection = Inspection::open(dir.path()).unwrap();
        assert_eq!(sorted(inspection.recovery().foreign_files.clone()), planted);
        assert!(inspection.recovery().removed_files.is_empty());
        drop(inspection);
        let node = open(dir.path()).unwrap();
        assert_eq!(
            sorted(node.recovery_report().foreign_files.clone()),
            planted
        );
        assert!(node.recovery_report().removed_files.is_empty());
        drop(node);
        for (path, _) in &planted {
            assert!(
                path.symlink_metadata().is_ok(),
                "{} was removed",
                path.display()
            );
        }
        assert!(dir.path().join("lost+found").is_dir());
    }
}

#[test]
fn open_creates_a_node_beside_lost_and_found() {
    // Goal: the root of a fresh ext4 file system (empty but for
    // `lost+found`) is an empty directory to cpwal: a node is created in
    // it. Before, `lost+found` was corruption. Method: plant `lost+found`
    // in a new directory, open, append, reopen.
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir(dir.path().join("lost+found")).unwrap();
    let mut node = create(dir.path()).unwrap();
    let member = voter("CN=b");
    let entry = ControlPlaneEntry::MembershipChange(MembershipChange::Admit(member));
    node.try_append(&entry).unwrap();
    drop(node);
    let node = open(dir.path()).unwrap();
    assert!(node.recovery_report().foreign_files.is_empty());
    assert_eq!(node.last_index().map(|i| i.0), Some(0));
}

#[test]
fn open_refuses_to_create_a_node_among_foreign_files() {
    // Goal: a directory that holds no node but holds files cpwal does not
    // own is probably not the directory meant: creation is refused with a
    // typed error listing them (not corruption), and nothing is written,
    // not even the lock file (the refusal is found before locking).
    let dir = tempfile::tempdir().unwrap();
    let notes = dir.path().join("notes.txt");
    std::fs::write(&notes, b"hello").unwrap();
    match create(dir.path()) {
        Err(Error::DirectoryNotEmpty { path, foreign }) => {
            assert_eq!(path, dir.path());
            assert_eq!(sorted(foreign), vec![(notes, FileKind::RegularFile)]);
        }
        other => panic!("expected DirectoryNotEmpty, got {other:?}"),
    }
    let mut names: Vec<_> = std::fs::read_dir(dir.path())
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    names.sort();
    assert_eq!(names, [OsStr::new("notes.txt")]);
}

#[test]
fn compact_refuses_a_directory_under_its_temporary_name() {
    // Goal: a directory that appears, while the node runs, under the name
    // a compaction writes its snapshot to is a typed error naming it, and
    // is not removed (the removal of a stale temporary refuses anything but
    // a regular file). Method: open, append, create
    // `snapshot-…0003.tmp` as a directory, compact at index 3.
    let dir = tempfile::tempdir().unwrap();
    let mut node = create(dir.path()).unwrap();
    for n in 0..3 {
        let member = voter(&format!("CN=member-{n}"));
        let entry = ControlPlaneEntry::MembershipChange(MembershipChange::Admit(member));
        node.try_append(&entry).unwrap();
    }
    let temporary = dir.path().join("snapshot-00000000000000000003.tmp");
    std::fs::create_dir(&temporary).unwrap();
    assert_not_regular(
        &node.compact(0).unwrap_err(),
        &temporary,
        FileKind::Directory,
    );
    assert!(temporary.is_dir());
}
