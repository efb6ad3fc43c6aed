//! The `cpwal` binary writing into a pipe whose reader is gone, as in
//! `cpwal inspect DIR | head -1`. Every command that prints must end
//! quietly: no panic ("failed printing to stdout: Broken pipe", exit 101),
//! nothing on stderr, and the exit code its work earned (0 on a healthy
//! directory, the corruption code on a damaged one, so
//! `set -o pipefail` still sees the damage).

use std::path::Path;
use std::process::{Command, Output, Stdio};

#[path = "support/binary.rs"]
mod binary;
#[path = "support/directories.rs"]
mod directories;

use binary::{arg, text};
use directories::fixture;

/// Runs `cpwal args...` with stdout a pipe whose read end was closed
/// before the process started, so its first write to stdout fails with
/// `EPIPE` whatever the timing (a `| head -1` reader closes the pipe at
/// some point during the run; this is the earliest one).
fn cpwal_into_closed_pipe(args: &[&str]) -> Output {
    let (reader, writer) = std::io::pipe().expect("pipe");
    drop(reader);
    Command::new(env!("CARGO_BIN_EXE_cpwal"))
        .args(args)
        .stdout(Stdio::from(writer))
        .stderr(Stdio::piped())
        .output()
        .expect("run cpwal")
}

/// Runs `args` into a closed stdout and checks the exit code, no panic and,
/// on success, no error line (`cpwal: ...`); returns stderr (where `bench`
/// and `crash-test` report progress, and `dump` a damaged directory, by
/// design).
fn assert_quiet_exit(args: &[&str], code: i32) -> String {
    let output = cpwal_into_closed_pipe(args);
    let stderr = text(&output.stderr);
    assert!(!stderr.contains("panicked"), "{args:?}: {stderr}");
    assert!(!stderr.contains("Broken pipe"), "{args:?}: {stderr}");
    assert!(
        code != 0 || !stderr.contains("cpwal: "),
        "{args:?}: {stderr}"
    );
    assert_eq!(output.status.code(), Some(code), "{args:?}: {stderr}");
    stderr
}

fn path(root: &Path, name: &str) -> String {
    arg(&root.join(name)).to_owned()
}

#[test]
fn every_printing_command_exits_cleanly_when_stdout_is_closed() {
    // Goal: each command that prints (text and JSON) survives a closed
    // stdout and exits 0 on a healthy directory, with nothing on stderr.
    // Method: run each against a copy of `fixtures/v1/basic` with stdout a
    // pipe closed before the start; the writing commands (backup, restore,
    // salvage) must still have done their work.
    let root = tempfile::tempdir().unwrap();
    let basic = fixture(root.path(), "basic");
    let dir = arg(&basic);
    for args in [
        vec!["inspect", dir],
        vec!["inspect", "--json", dir],
        vec!["verify", dir],
        vec!["verify", "--json", dir],
        vec!["catalog", dir],
        vec!["catalog", "--json", dir],
        vec!["dump", dir],
    ] {
        assert_eq!(assert_quiet_exit(&args, 0), "", "{args:?}");
    }
    for (n, json) in [(1, false), (2, true)] {
        let backup = path(root.path(), &format!("backup-{n}"));
        let restored = path(root.path(), &format!("restored-{n}"));
        let salvaged = path(root.path(), &format!("salvaged-{n}"));
        let flag = |args: &mut Vec<&str>| {
            if json {
                args.insert(1, "--json");
            }
        };
        let mut backup_args = vec!["backup", dir, &backup];
        flag(&mut backup_args);
        assert_eq!(assert_quiet_exit(&backup_args, 0), "");
        let mut restore_args = vec!["restore", &backup, &restored, "--node", "CN=node-a"];
        flag(&mut restore_args);
        assert_eq!(assert_quiet_exit(&restore_args, 0), "");
        let mut salvage_args = vec!["salvage", dir, &salvaged];
        flag(&mut salvage_args);
        assert_eq!(assert_quiet_exit(&salvage_args, 0), "");
        for done in [&backup, &restored, &salvaged] {
            let verified = binary::cpwal(&["verify", done]);
            assert_eq!(verified.status.code(), Some(0), "{done}");
        }
    }
    let scratch = path(root.path(), "bench");
    std::fs::create_dir(&scratch).unwrap();
    assert_quiet_exit(&["bench", "--dir", &scratch, "--samples", "10"], 0);
    assert_quiet_exit(
        &["bench", "--json", "--dir", &scratch, "--samples", "10"],
        0,
    );
    assert_quiet_exit(&["crash-test", "--seconds", "0.5"], 0);
}

#[test]
fn closed_stdout_keeps_the_exit_code_of_a_damaged_directory() {
    // Goal: a reader that left early does not turn damage into success:
    // the commands still exit with the corruption code (4), without a
    // panic. Method: the `bit-flip-last-record` fixture, stdout closed.
    let root = tempfile::tempdir().unwrap();
    let damaged = fixture(root.path(), "bit-flip-last-record");
    let dir = arg(&damaged);
    for args in [
        vec!["verify", dir],
        vec!["verify", "--json", dir],
        vec!["inspect", dir],
        vec!["catalog", dir],
        vec!["dump", dir],
    ] {
        assert_quiet_exit(&args, 4);
    }
}
