//! Opening a directory read-only for the reading commands, and the JSON
//! shape of entries and reports.

use std::path::Path;

use cpwal::inspect::{Inspection, SegmentState, SegmentSummary, SnapshotSummary};
use cpwal::{ControlPlaneEntry, DroppedTail, LogEntry, MembershipChange, WidePermission};
use serde_json::{json, Value};

use crate::failure::CliError;

/// Opens `directory` under a shared lock without changing anything, with
/// one-line errors for a path that is not a data directory.
pub fn open_read_only(directory: &Path) -> Result<Inspection, CliError> {
    // Anything under the name (even a FIFO) goes to the library, whose
    // typed error says what it is; only a missing one is not a node.
    if directory
        .join(cpwal::format::HARD_STATE_FILE_NAME)
        .symlink_metadata()
        .is_err()
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

/// Warnings that change no verdict or exit code, one line each: entries
/// cpwal does not own, and cpwal files other users may read or change
/// (with the `chmod` that fixes each).
pub fn warning_lines(inspection: &Inspection) -> Vec<String> {
    let report = inspection.recovery();
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

/// Foreign files and wide permissions as JSON (`inspect --json`).
pub fn warnings_json(inspection: &Inspection) -> Value {
    let report = inspection.recovery();
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
