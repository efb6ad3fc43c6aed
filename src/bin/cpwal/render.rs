//! Opening a directory read-only for the reading commands, and the JSON
//! shape of entries and reports.

use std::path::Path;

use cpwal::inspect::{Inspection, SegmentState, SegmentSummary, SnapshotSummary};
use cpwal::{ControlPlaneEntry, DroppedTail, LogEntry, MembershipChange};
use serde_json::{json, Value};

use crate::failure::CliError;

/// Opens `directory` under a shared lock without changing anything, with
/// one-line errors for a path that is not a data directory.
pub fn open_read_only(directory: &Path) -> Result<Inspection, CliError> {
    if !directory
        .join(cpwal::format::HARD_STATE_FILE_NAME)
        .is_file()
    {
        return Err(CliError::NotADataDirectory(directory.to_path_buf()));
    }
    Inspection::open(directory).map_err(|e| CliError::engine("cannot read the directory", e))
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
        "first_index": segment.first_index,
        "end_index": segment.end_index,
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

fn dropped_json(tail: &Option<DroppedTail>) -> Value {
    match tail {
        Some(t) => json!({
            "file": t.path.display().to_string(),
            "offset": t.offset,
            "index": t.index,
            "bytes": t.bytes,
        }),
        None => Value::Null,
    }
}

/// The index a writer would restart the log at: a snapshot beyond the log's
/// end (an install a crash interrupted).
fn pending_restart(inspection: &Inspection) -> Option<u64> {
    inspection
        .snapshot()
        .filter(|s| s.restart_pending)
        .map(|s| s.index_end)
}

/// The newest snapshot as JSON (`null` without one).
pub fn snapshot_json(snapshot: Option<&SnapshotSummary>) -> Value {
    match snapshot {
        Some(s) => json!({
            "file": s.name,
            "index_end": s.index_end,
            "last_term": s.last_term,
            "file_bytes": s.file_bytes,
            "members": s.members,
            "ranges": s.ranges,
            "leader_configurations": s.leader_configurations,
        }),
        None => Value::Null,
    }
}

/// What a writable open would repair, as JSON.
pub fn recovery_json(inspection: &Inspection) -> Value {
    let report = inspection.recovery();
    json!({
        "torn_tail": dropped_json(&report.torn_tail),
        "unfinished_truncation": dropped_json(&report.finished_truncation),
        "leftover_files": report.removed_files,
        "restart_log_at_snapshot": pending_restart(inspection),
    })
}

/// What a writable open would repair, as one line of text per item.
pub fn recovery_lines(inspection: &Inspection) -> Vec<String> {
    let report = inspection.recovery();
    let mut lines = Vec::new();
    if let Some(index_end) = pending_restart(inspection) {
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
