//! `cpwal inspect DIR [--json]`: what a directory holds, read-only.

use std::path::Path;

use cpwal::inspect::{Inspection, SegmentSummary};
use cpwal::{ControlPlaneEntry, ControlPlaneIndex};
use serde_json::json;

use crate::failure::CliError;
use crate::render::{
    open_read_only, recovery_json, recovery_lines, segment_json, snapshot_json, state_word,
    warning_lines, warnings_json,
};

/// Where the leader history comes from: each `LeaderConfiguration` entry.
struct LeaderRecord {
    index: u64,
    term: u64,
    leader: String,
}

fn leader_history(inspection: &Inspection) -> Result<Vec<LeaderRecord>, CliError> {
    let Some(last) = inspection.last_index() else {
        return Ok(Vec::new());
    };
    let mut history = Vec::new();
    for index in inspection.first_index().0..=last.0 {
        let entry = inspection
            .read(ControlPlaneIndex(index))
            .map_err(|e| CliError::engine("cannot read an entry", e))?;
        if let ControlPlaneEntry::LeaderConfiguration { term, leader } = entry.entry {
            history.push(LeaderRecord {
                index,
                term: term.0,
                leader: leader.as_str().to_owned(),
            });
        }
    }
    Ok(history)
}

/// Prints the report for `directory`, as text or JSON.
pub fn run(directory: &Path, as_json: bool) -> Result<(), CliError> {
    let inspection = open_read_only(directory)?;
    let history = leader_history(&inspection)?;
    let segments = inspection
        .segments()
        .map_err(|e| CliError::engine("cannot read the segments", e))?;
    if as_json {
        print_json(directory, &inspection, &history, &segments);
    } else {
        print_text(directory, &inspection, &history, &segments);
    }
    Ok(())
}

fn print_json(
    directory: &Path,
    inspection: &Inspection,
    history: &[LeaderRecord],
    segments: &[SegmentSummary],
) {
    let vote = inspection.durable_vote();
    let (log_epoch, truncated_from) = inspection.truncation();
    let report = json!({
            "directory": directory.display().to_string(),
            "node": inspection.node().as_str(),
            "term": vote.term.0,
            "vote": vote.voted_for.as_ref().map(|v| v.as_str()),
            "commit_index": inspection.commit_index().map(|i| i.0),
            "first_index": inspection.first_index().0,
            "first_index_previous_term": inspection.first_index_previous_term().0,
            "last_index": inspection.last_index().map(|i| i.0),
            "log_epoch": log_epoch,
            "truncated_from": (truncated_from != u64::MAX).then_some(truncated_from),
            "leader_history": history.iter().map(|r| json!({
                "index": r.index, "term": r.term, "leader": r.leader,
            })).collect::<Vec<_>>(),
            "segments": segments.iter().map(segment_json).collect::<Vec<_>>(),
            "recovery_would": recovery_json(inspection),
            "snapshot": snapshot_json(inspection.snapshot()),
            "warnings": warnings_json(inspection),
    });
    println!("{report:#}");
}

fn print_text(
    directory: &Path,
    inspection: &Inspection,
    history: &[LeaderRecord],
    segments: &[SegmentSummary],
) {
    let vote = inspection.durable_vote();
    let (log_epoch, truncated_from) = inspection.truncation();
    let none = || "none".to_owned();
    println!("directory:  {}", directory.display());
    println!("node:       {}", inspection.node());
    println!("term:       {}", vote.term.0);
    println!(
        "vote:       {}",
        vote.voted_for.map_or_else(none, |v| v.as_str().to_owned())
    );
    println!(
        "commit:     {}",
        inspection
            .commit_index()
            .map_or_else(none, |i| format!("index {}", i.0))
    );
    let first = inspection.first_index().0;
    match inspection.last_index() {
        Some(last) => println!(
            "log:        indexes {first}..={} ({} entries)",
            last.0,
            last.0 + 1 - first
        ),
        None => println!("log:        empty (next index {first})"),
    }
    if first > 0 {
        println!(
            "compacted:  entries below {first} (term of {}: {})",
            first - 1,
            inspection.first_index_previous_term().0
        );
    }
    if truncated_from != u64::MAX {
        println!("truncation: epoch {log_epoch}, latest from index {truncated_from}");
    }
    print_snapshot(inspection);
    println!(
        "leader history ({} LeaderConfiguration entries):",
        history.len()
    );
    for record in history {
        println!(
            "  term {:>6}: {} (index {})",
            record.term, record.leader, record.index
        );
    }
    println!("segments ({}):", segments.len());
    for s in segments {
        println!(
            "  {}  generation {}  indexes {}..{}  {} of {} bytes used  {}",
            s.name,
            s.generation,
            s.first_index,
            s.end_index,
            s.used_bytes,
            s.file_bytes,
            state_word(s.state)
        );
    }
    let repairs = recovery_lines(inspection);
    if repairs.is_empty() {
        println!("recovery:   clean, a writer would change nothing");
    }
    for line in repairs {
        println!("recovery:   a writer would {line}");
    }
    for line in warning_lines(inspection) {
        println!("{line}");
    }
}

fn print_snapshot(inspection: &Inspection) {
    match inspection.snapshot() {
        Some(s) => println!(
            "snapshot:   {} covers indexes below {} (last term {}), {} bytes; catalog: {} members, {} ranges, {} leader configurations",
            s.name,
            s.index_end,
            s.last_term,
            s.file_bytes,
            s.members,
            s.ranges,
            s.leader_configurations
        ),
        None => println!("snapshot:   none"),
    }
}
