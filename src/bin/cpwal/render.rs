//! Opening a directory for the reading commands, and how reports read: the
//! JSON shapes and the plain-words lines shared by several commands.

use std::path::Path;

use cpwal::inspect::{SegmentState, SegmentSummary, SnapshotSummary};
use cpwal::operate::{
    Examination, HardStateCopy, HardStateCopyState, LogStop, StopReason, Verdict,
};
use cpwal::{
    ControlPlaneEntry, Corruption, DroppedTail, Error, LogEntry, MembershipChange, RecoveryReport,
    WidePermission,
};
use serde_json::{json, Value};

use crate::failure::CliError;

/// Examines `directory` read-only (shared lock), damaged or not; a path
/// without a hard state or any log file is not a data directory.
pub fn examine(directory: &Path) -> Result<Examination, CliError> {
    Examination::open(directory).map_err(|error| match &error {
        Error::Io { path, source, .. }
            if source.kind() == std::io::ErrorKind::NotFound
                && path.ends_with(cpwal::format::HARD_STATE_FILE_NAME) =>
        {
            CliError::NotADataDirectory(directory.to_path_buf())
        }
        _ => CliError::engine("cannot read the directory", error),
    })
}

/// An entry as JSON: `{"index", "term", "entry": {"type", ...}}`.
pub fn entry_json(entry: &LogEntry) -> Value {
    let body = match &entry.entry {
        ControlPlaneEntry::MembershipChange(change) => {
            let (action, member) = match change {
                MembershipChange::Admit(m) => ("admit", m),
                MembershipChange::Remove(m) => ("remove", m),
            };
            json!({"type": "membership_change", "action": action, "member": member.as_str()})
        }
        ControlPlaneEntry::OwnershipTransition(t) => json!({
            "type": "ownership_transition",
            "range": t.range,
            "new_owner": t.new_owner.as_str(),
            "ownership_epoch": t.ownership_epoch,
        }),
        ControlPlaneEntry::LeaderConfiguration { term, leader } => json!({
            "type": "leader_configuration",
            "term": term.0,
            "leader": leader.as_str(),
        }),
    };
    json!({"index": entry.index.0, "term": entry.term.0, "entry": body})
}

/// A segment as JSON.
pub fn segment_json(segment: &SegmentSummary) -> Value {
    json!({
        "name": segment.name,
        "generation": segment.generation,
        "previous_generation": segment.previous_generation,
        "first_index": segment.first_index.0,
        "end_index": segment.end_index.0,
        "file_bytes": segment.file_bytes,
        "used_bytes": segment.used_bytes,
        "state": state_word(segment.state),
    })
}

/// "sealed" or "active".
pub fn state_word(state: SegmentState) -> &'static str {
    match state {
        SegmentState::Sealed => "sealed",
        SegmentState::Active => "active",
    }
}

/// A verdict as one word, for JSON and the first line of a report.
pub fn verdict_word(verdict: Verdict) -> &'static str {
    match verdict {
        Verdict::Clean => "clean",
        Verdict::Repairable => "repairable",
        Verdict::Degraded => "degraded",
        Verdict::Damaged => "damaged",
    }
}

/// Indexes `first..end` the way they are typed: "indexes 3..=7 (5
/// entries)", or "no entries (next index 3)".
pub fn index_range(first: u64, end: u64) -> String {
    if end <= first {
        return format!("no entries (next index {first})");
    }
    format!("indexes {first}..={} ({} entries)", end - 1, end - first)
}

/// The indexes of the log that read back intact, as the numbers the
/// reports print and count with.
pub fn readable_indexes(examination: &Examination) -> std::ops::Range<u64> {
    let readable = examination.readable();
    readable.start.0..readable.end.0
}

fn dropped_json(tail: &Option<DroppedTail>) -> Value {
    match tail {
        Some(t) => json!({
            "file": t.path.display().to_string(),
            "offset": t.offset,
            "index": t.index.0,
            "bytes": t.bytes,
        }),
        None => Value::Null,
    }
}

/// The index a writer would restart the log at: a snapshot beyond the log's
/// end (an install a crash interrupted).
fn pending_restart(examination: &Examination) -> Option<u64> {
    examination
        .snapshot()
        .filter(|s| s.restart_pending && examination.verdict() != Verdict::Damaged)
        .map(|s| s.index_end.0)
}

/// The newest snapshot as JSON (`null` without one).
pub fn snapshot_json(snapshot: Option<&SnapshotSummary>) -> Value {
    match snapshot {
        Some(s) => json!({
            "file": s.name,
            "index_end": s.index_end.0,
            "last_term": s.last_term.0,
            "file_bytes": s.file_bytes,
            "members": s.members,
            "ranges": s.ranges,
            "leader_configurations": s.leader_configurations,
        }),
        None => Value::Null,
    }
}

/// What a writable open would repair, as JSON.
pub fn recovery_json(examination: &Examination) -> Value {
    let report: &RecoveryReport = examination.recovery();
    json!({
        "torn_tail": dropped_json(&report.torn_tail),
        "unfinished_truncation": dropped_json(&report.finished_truncation),
        "leftover_files": report.removed_files,
        "restart_log_at_snapshot": pending_restart(examination),
        "rewrite_hard_state_copy": stale_copy(examination)
            .map(|(stale, _)| stale.name)
            .or_else(|| degraded_copy(examination).map(|c| c.name)),
    })
}

/// What a writable open would repair, as one line of text per item.
pub fn recovery_lines(examination: &Examination) -> Vec<String> {
    let mut lines = recovery_lines_of(examination.recovery(), pending_restart(examination));
    if let Some((stale, serving)) = stale_copy(examination) {
        lines.push(format!(
            "finish an interrupted hard-state update: rewrite copy {} from copy {}, which holds the newer state",
            stale.name, serving.name
        ));
    }
    lines
}

/// A valid hard-state copy older than the serving one (what an update a
/// crash interrupted leaves), with the serving copy.
fn stale_copy(examination: &Examination) -> Option<(&HardStateCopy, &HardStateCopy)> {
    let serving = examination.served_by()?;
    let stale = examination
        .hard_state_copies()
        .iter()
        .find(|c| matches!(c.state, HardStateCopyState::Stale { .. }))?;
    Some((stale, serving))
}

/// The repairs of `report` (and a restart of the log at a snapshot's end),
/// one line of text each.
pub fn recovery_lines_of(report: &RecoveryReport, restart_at: Option<u64>) -> Vec<String> {
    let mut lines = Vec::new();
    if let Some(index_end) = restart_at {
        lines.push(format!(
            "finish an interrupted snapshot install: restart the log empty at index {index_end}"
        ));
    }
    if let Some(t) = &report.torn_tail {
        lines.push(format!(
            "drop a torn tail of {} bytes at {} offset {} (index {} onward)",
            t.bytes,
            t.path.display(),
            t.offset,
            t.index
        ));
    }
    if let Some(t) = &report.finished_truncation {
        lines.push(format!(
            "finish an interrupted truncation: zero {} bytes at {} offset {} (index {} onward)",
            t.bytes,
            t.path.display(),
            t.offset,
            t.index
        ));
    }
    for name in &report.removed_files {
        lines.push(format!("remove leftover file {name}"));
    }
    lines
}

/// Damage as JSON: where, and what in a code and in words.
pub fn corruption_json(corruption: &Corruption) -> Value {
    json!({
        "file": corruption.path.display().to_string(),
        "offset": corruption.offset,
        "index": corruption.index,
        "kind": corruption.kind.code(),
        "description": corruption.kind.to_string(),
    })
}

/// Damage as one line: "file F offset O index I: what".
pub fn corruption_line(corruption: &Corruption) -> String {
    let index = corruption
        .index
        .map_or_else(|| "none".to_owned(), |i| i.to_string());
    format!(
        "file {} offset {} index {index}: {}",
        corruption.path.display(),
        corruption.offset,
        corruption.kind
    )
}

/// A hard-state copy's state as a word, and its sequence when valid.
fn copy_state(copy: &HardStateCopy) -> (&'static str, Option<u64>) {
    match copy.state {
        HardStateCopyState::Current { sequence } => ("current", Some(sequence)),
        HardStateCopyState::Stale { sequence } => ("stale", Some(sequence)),
        HardStateCopyState::Damaged => ("damaged", None),
        HardStateCopyState::Missing => ("missing", None),
        HardStateCopyState::OtherVersion { .. } => ("other_version", None),
    }
}

/// Both hard-state copies as JSON.
pub fn copies_json(examination: &Examination) -> Value {
    let copies: Vec<Value> = examination
        .hard_state_copies()
        .iter()
        .map(|copy| {
            let (state, sequence) = copy_state(copy);
            json!({"copy": copy.name, "offset": copy.offset, "state": state, "sequence": sequence})
        })
        .collect();
    Value::Array(copies)
}

/// Both hard-state copies in words: "copy A current (sequence 7), copy B
/// damaged".
pub fn copies_text(examination: &Examination) -> String {
    let words: Vec<String> = examination
        .hard_state_copies()
        .iter()
        .map(|copy| match copy.state {
            HardStateCopyState::OtherVersion { found } => {
                format!("copy {} written by format version {found}", copy.name)
            }
            _ => match copy_state(copy) {
                (state, Some(sequence)) => {
                    format!("copy {} {state} (sequence {sequence})", copy.name)
                }
                (state, None) => format!("copy {} {state}", copy.name),
            },
        })
        .collect();
    words.join(", ")
}

/// The hard-state copy that fails its checks or is missing while the other
/// serves (`None` when both are valid, or neither).
fn degraded_copy(examination: &Examination) -> Option<&HardStateCopy> {
    examination.served_by()?;
    examination.hard_state_copies().iter().find(|c| {
        !matches!(
            c.state,
            HardStateCopyState::Current { .. } | HardStateCopyState::Stale { .. }
        )
    })
}

/// What a degraded hard state means and what the next writer does about
/// it; `None` unless one copy fails while the other serves.
pub fn degraded_line(examination: &Examination) -> Option<String> {
    let serving = examination.served_by()?;
    let other = degraded_copy(examination)?;
    let problem = match other.state {
        HardStateCopyState::Current { .. } | HardStateCopyState::Stale { .. } => return None,
        HardStateCopyState::Damaged => {
            "fails its checks (an update torn by a power cut, or damage)"
        }
        HardStateCopyState::Missing => "is missing (the file is short)",
        HardStateCopyState::OtherVersion { .. } => "carries another format version",
    };
    Some(format!(
        "hard-state copy {} {problem}; copy {} serves the term and vote alone, so one more damaged copy would lose them; the next writable open rewrites copy {} from copy {}",
        other.name, serving.name, other.name, serving.name
    ))
}

/// Where the intact prefix stops, as JSON (`null`: it does not).
pub fn log_stop_json(stop: Option<&LogStop>) -> Value {
    match stop {
        Some(stop) => json!({
            "file": stop.path.display().to_string(),
            "offset": stop.offset,
            "index": stop.index.0,
            "reason": stop_reason(&stop.reason),
        }),
        None => Value::Null,
    }
}

/// Why the intact prefix stops, in words.
pub fn stop_reason(reason: &StopReason) -> String {
    match reason {
        StopReason::Record { kind, tear_shaped } => {
            let shape = if *tear_shaped {
                " (some sector of it is zero, the shape of an interrupted write)"
            } else {
                ""
            };
            format!("a record fails: {kind}{shape}")
        }
        StopReason::UnknownTruncation {
            record_epoch,
            hard_state_epoch,
        } => format!(
            "a record of truncation epoch {record_epoch} follows, but the hard state records epoch {hard_state_epoch}: the hard state is older than the log"
        ),
        StopReason::SegmentHeader(kind) => format!("the segment's header fails: {kind}"),
        StopReason::SegmentVersion { found } => {
            format!("the segment was written by format version {found}")
        }
        StopReason::Chain(detail) => format!("segment chain broken: {detail}"),
    }
}

/// Where the intact prefix stops, in words.
pub fn log_stop_text(stop: &LogStop) -> String {
    format!(
        "{} offset {} (index {}): {}",
        stop.path.display(),
        stop.offset,
        stop.index,
        stop_reason(&stop.reason)
    )
}

/// The identity as text, or `null` for JSON.
pub fn optional_identity(identity: Option<&cpwal::ClusterVoterIdentity>) -> Value {
    identity.map_or(Value::Null, |i| Value::String(i.as_str().to_owned()))
}

/// Warnings that change no verdict: files cpwal does not own, and cpwal
/// files or the directory readable or writable by other local users (with
/// the `chmod` that fixes each).
pub fn warning_lines(examination: &Examination) -> Vec<String> {
    let report = examination.recovery();
    let foreign = report.foreign_files.iter().map(|file| {
        format!(
            "warning: {} is a {} that cpwal does not own; it is not part of the node, and cpwal never reads, changes or removes it",
            file.path.display(),
            file.kind
        )
    });
    let wide = report.wide_permissions.iter().map(|wide| {
        format!(
            "warning: {} has mode {:04o}, so other local users can read or change this node's data; run: {}",
            wide.path.display(),
            wide.mode,
            chmod_command(wide)
        )
    });
    foreign.chain(wide).collect()
}

/// The shell command that gives `wide` cpwal's private mode.
fn chmod_command(wide: &WidePermission) -> String {
    let path = wide.path.display().to_string().replace('\'', "'\\''");
    format!("chmod {:o} '{path}'", wide.private_mode)
}

/// The warnings as JSON (`inspect --json`, `verify --json`).
pub fn warnings_json(examination: &Examination) -> Value {
    let report = examination.recovery();
    json!({
        "foreign_files": report.foreign_files.iter().map(|f| json!({
            "path": f.path.display().to_string(),
            "kind": f.kind.to_string(),
        })).collect::<Vec<_>>(),
        "wide_permissions": report.wide_permissions.iter().map(|w| json!({
            "path": w.path.display().to_string(),
            "mode": format!("{:04o}", w.mode),
            "chmod": chmod_command(w),
        })).collect::<Vec<_>>(),
    })
}
