//! `cpwal verify` and `cpwal inspect` on hostile directories: a FIFO where a
//! file belongs must not hang them, files cpwal does not own are warnings
//! (not corruption, exit code unchanged), and permissions wider than
//! cpwal's are warnings that carry the exact `chmod` to run.

use std::ffi::OsStr;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

use cpwal::{
    ClusterVoterIdentity, ControlPlaneEntry, DurableControlPlane, MembershipChange, Options,
};

/// Runs `cpwal args…`, killing it and failing the test after ten seconds.
fn cpwal_within_ten_seconds(args: &[&OsStr]) -> Output {
    let mut child = Command::new(env!("CARGO_BIN_EXE_cpwal"))
        .args(args)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("run cpwal");
    let deadline = Instant::now() + Duration::from_secs(10);
    while child.try_wait().unwrap().is_none() {
        if Instant::now() > deadline {
            child.kill().unwrap();
            let _ = child.wait();
            panic!("cpwal {args:?} hung for ten seconds");
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    child.wait_with_output().unwrap()
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

/// A closed node with entries in several segments and a snapshot.
fn node(dir: &Path) {
    let me = ClusterVoterIdentity::from_certificate_subject("CN=a").unwrap();
    let options = Options::default().with_segment_size_bytes(4096);
    let mut node = DurableControlPlane::create(dir, me, options).unwrap();
    for n in 0..120 {
        let subject = format!("CN=member-{n:03}-with-a-longer-name");
        let member = ClusterVoterIdentity::from_certificate_subject(&subject).unwrap();
        let entry = ControlPlaneEntry::MembershipChange(MembershipChange::Admit(member));
        node.try_append(&entry).unwrap();
    }
    node.compact(200).unwrap();
}

fn mkfifo(path: &Path) {
    let status = Command::new("mkfifo").arg(path).status().unwrap();
    assert!(status.success());
}

#[test]
fn verify_and_inspect_refuse_a_fifo_at_once() {
    // Goal: a FIFO under a segment's, a snapshot's or the lock's name makes
    // `verify` and `inspect` fail at once (exit 1, one line naming the
    // FIFO), never hang as they did. Method: replace each file of a closed
    // node by a FIFO in turn; run both commands with a ten-second limit.
    for name in [
        "segment-00000000000000000002",
        "snapshot-00000000000000000120",
        "LOCK",
    ] {
        let dir = tempfile::tempdir().unwrap();
        node(dir.path());
        let fifo = dir.path().join(name);
        std::fs::remove_file(&fifo).unwrap();
        mkfifo(&fifo);
        for command in ["verify", "inspect"] {
            let output = cpwal_within_ten_seconds(&[command.as_ref(), dir.path().as_os_str()]);
            let stderr = text(&output.stderr);
            assert_eq!(output.status.code(), Some(1), "{command} {name}: {stderr}");
            assert!(stderr.contains(&fifo.display().to_string()), "{stderr}");
            assert!(stderr.contains("FIFO"), "{stderr}");
            assert_eq!(stderr.trim_end().lines().count(), 1, "{stderr}");
        }
    }
}

#[test]
fn verify_warns_about_foreign_files_and_stays_clean() {
    // Goal: files cpwal does not own are warnings naming each (exit 0, the
    // verdict clean), `lost+found` is not mentioned, and nothing is removed;
    // before, `verify` reported corruption (exit 4) and advised restoring
    // the node from a peer. Method: plant a note, a directory `x.tmp`, a
    // `.tmp` file with a non-UTF-8 name and `lost+found`; run verify and
    // inspect (text and JSON).
    let dir = tempfile::tempdir().unwrap();
    node(dir.path());
    let notes = dir.path().join("notes.txt");
    std::fs::write(&notes, b"hello").unwrap();
    let directory_tmp = dir.path().join("x.tmp");
    std::fs::create_dir(&directory_tmp).unwrap();
    let non_utf8 = dir.path().join(OsStr::from_bytes(b"y\xff.tmp"));
    std::fs::write(&non_utf8, b"?").unwrap();
    std::fs::create_dir(dir.path().join("lost+found")).unwrap();
    let verify = cpwal_within_ten_seconds(&["verify".as_ref(), dir.path().as_os_str()]);
    let stdout = text(&verify.stdout);
    assert_eq!(
        verify.status.code(),
        Some(0),
        "{stdout}{}",
        text(&verify.stderr)
    );
    assert!(
        stdout.lines().last().unwrap().starts_with("clean:"),
        "{stdout}"
    );
    for (path, kind) in [
        (&notes, "regular file"),
        (&directory_tmp, "directory"),
        (&non_utf8, "regular file"),
    ] {
        let expected = format!(
            "warning: {} is a {kind} that cpwal does not own",
            path.display()
        );
        assert!(stdout.contains(&expected), "{expected:?} not in {stdout}");
    }
    assert!(!stdout.contains("lost+found"), "{stdout}");
    assert!(notes.exists() && directory_tmp.is_dir() && non_utf8.exists());
    let inspect = cpwal_within_ten_seconds(&["inspect".as_ref(), dir.path().as_os_str()]);
    assert_eq!(inspect.status.code(), Some(0));
    assert!(text(&inspect.stdout).contains("notes.txt is a regular file"));
    let json = cpwal_within_ten_seconds(&[
        "inspect".as_ref(),
        "--json".as_ref(),
        dir.path().as_os_str(),
    ]);
    let report: serde_json::Value = serde_json::from_slice(&json.stdout).unwrap();
    let foreign = report["warnings"]["foreign_files"].as_array().unwrap();
    assert_eq!(foreign.len(), 3, "{report:#}");
}

#[test]
fn verify_prints_the_chmod_for_wide_permissions() {
    // Goal: a world-readable data directory and a group-readable hard state
    // are warnings carrying the exact command that fixes each (exit 0), and
    // running those commands silences them. Method: chmod a closed node,
    // verify, run the printed commands with `sh -c`, verify again.
    let root = tempfile::tempdir().unwrap();
    let dir = root.path().join("node with 'quote");
    node(&dir);
    let set_mode = |path: &Path, mode| {
        std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode)).unwrap()
    };
    set_mode(&dir, 0o755);
    set_mode(&dir.join("hardstate"), 0o640);
    let verify = cpwal_within_ten_seconds(&["verify".as_ref(), dir.as_os_str()]);
    let stdout = text(&verify.stdout);
    assert_eq!(verify.status.code(), Some(0), "{stdout}");
    let commands: Vec<&str> = stdout
        .lines()
        .filter_map(|line| line.split_once("; run: ").map(|(_, command)| command))
        .collect();
    let quoted = dir.display().to_string().replace('\'', "'\\''");
    assert_eq!(
        commands,
        [
            format!("chmod 700 '{quoted}'"),
            format!("chmod 600 '{quoted}/hardstate'"),
        ],
        "{stdout}"
    );
    assert!(stdout.contains("has mode 0755"), "{stdout}");
    assert!(stdout.contains("has mode 0640"), "{stdout}");
    for command in &commands {
        let status = Command::new("sh").args(["-c", command]).status().unwrap();
        assert!(status.success(), "{command}");
    }
    let verify = cpwal_within_ten_seconds(&["verify".as_ref(), dir.as_os_str()]);
    let stdout = text(&verify.stdout);
    assert!(!stdout.contains("warning"), "{stdout}");
}
