//! `cpwal inspect DIR [--json]`: everything a directory holds, read-only,
//! damaged or not. A damaged directory gets a best-effort report headed
//! DAMAGED and exit 4; anything else exit 0.

use std::path::Path;

use cpwal::inspect::SegmentSummary;
use cpwal::operate::{Examination, Verdict};
use cpwal::{ControlPlaneEntry, ControlPlaneIndex};
use serde_json::json;

use crate::failure::{CliError, EXIT_CORRUPTION};
use crate::output::outln;
use crate::render::{
    copies_json, copies_text, corruption_json, corruption_line, degraded_line, examine,
    index_range, log_stop_json, log_stop_text, optional_identity, readable_indexes, recovery_json,
    recovery_lines, segment_json, snapshot_json, state_word, verdict_word, warning_lines,
    warnings_json,
};
use crate::suspects::SuspectNames;

/// One elected leader: from the snapshot's catalog (no index) or a
/// `LeaderConfiguration` entry of the readable log.
struct LeaderRecord {
    index: Option<u64>,
    term: u64,
    leader: String,
}

/// What `inspect` learns by reading every entry after the snapshot.
struct Scan {
    /// The leader history: the snapshot's, then the log's entries after it.
    history: Vec<LeaderRecord>,
    /// Stored names with an invisible character.
    suspects: SuspectNames,
}

/// Reads the snapshot's catalog and every readable entry after it.
fn scan(examination: &Examination) -> Result<Scan, CliError> {
    let mut history = Vec::new();
    let mut suspects = SuspectNames::default();
    if let Some(catalog) = examination.snapshot_catalog() {
        suspects.note_snapshot(catalog);
        for (term, leader) in catalog.leader_history() {
            history.push(LeaderRecord {
                index: None,
                term: term.0,
                leader: leader.as_str().to_owned(),
            });
        }
    }
    let snapshot_end = examination.snapshot().map_or(0, |s| s.index_end.0);
    let readable = readable_indexes(examination);
    for index in readable.start.max(snapshot_end)..readable.end {
        let entry = examination
            .read(ControlPlaneIndex(index))
            .map_err(|e| CliError::engine("cannot read an entry", e))?;
        suspects.note_entry(entry.index, &entry.entry);
        if let ControlPlaneEntry::LeaderConfiguration { term, leader } = entry.entry {
            history.push(LeaderRecord {
                index: Some(index),
                term: term.0,
                leader: leader.as_str().to_owned(),
            });
        }
    }
    Ok(Scan { history, suspects })
}

/// Prints the report for `directory`, as text or JSON; returns the exit
/// code (4 when the directory is damaged and the report is partial).
pub fn run(directory: &Path, as_json: bool) -> Result<u8, CliError> {
    let examination = examine(directory)?;
    let scanned = scan(&examination)?;
    let segments = examination
        .segments()
        .map_err(|e| CliError::engine("cannot read the segments", e))?;
    if as_json {
        print_json(&examination, &scanned, &segments)?;
    } else {
        print_text(&examination, &scanned, &segments)?;
    }
    Ok(match examination.verdict() {
        Verdict::Damaged => EXIT_CORRUPTION as u8,
        _ => 0,
    })
}

fn print_json(
    examination: &Examination,
    scanned: &Scan,
    segments: &[SegmentSummary],
) -> Result<(), CliError> {
    let vote = examination.durable_vote();
    let truncation = examination.truncation();
    let readable = readable_indexes(examination);
    let report = json!({
        "directory": examination.directory().display().to_string(),
        "verdict": verdict_word(examination.verdict()),
        "damage": examination.damage().iter().map(corruption_json).collect::<Vec<_>>(),
        "node": optional_identity(examination.node()),
        "role": examination.role().map(|r| r.to_string()),
        "term": vote.as_ref().map(|v| v.term.0),
        "vote": vote.as_ref().and_then(|v| v.voted_for.as_ref()).map(|v| v.as_str()),
        "hard_state_copies": copies_json(examination),
        "hard_state_served_by": examination.served_by().map(|c| c.name),
        "commit_index": examination.commit_index().map(|i| i.0),
        "first_index": examination.first_index().0,
        "first_index_previous_term": examination.first_index_previous_term().map(|t| t.0),
        "last_index": readable.end.checked_sub(1).filter(|&l| l >= readable.start),
        "log_stop": log_stop_json(examination.log_stop()),
        "segments_beyond_damage": examination.segments_beyond(),
        "log_epoch": truncation.map(|t| t.0),
        "truncated_from": truncation.and_then(|t| t.1).map(|i| i.0),
        "leader_history": scanned.history.iter().map(|r| json!({
            "index": r.index, "term": r.term, "leader": r.leader,
        })).collect::<Vec<_>>(),
        "segments": segments.iter().map(segment_json).collect::<Vec<_>>(),
        "warnings": warnings_json(examination),
        "suspect_names": scanned.suspects.json(),
        "recovery_would": recovery_json(examination),
        "snapshot": snapshot_json(examination.snapshot()),
    });
    outln!("{report:#}")?;
    Ok(())
}

fn print_text(
    examination: &Examination,
    scanned: &Scan,
    segments: &[SegmentSummary],
) -> Result<(), CliError> {
    let unknown = || "unknown (no valid hard-state copy)".to_owned();
    let damaged = examination.verdict() == Verdict::Damaged;
    outln!("directory:  {}", examination.directory().display())?;
    if damaged {
        outln!(
            "verdict:    DAMAGED: a writer refuses this directory; below is what could be read, not a node's state"
        )?;
        for corruption in examination.damage() {
            outln!("damage:     {}", corruption_line(corruption))?;
        }
    } else {
        outln!("verdict:    {}", verdict_word(examination.verdict()))?;
    }
    let vote = examination.durable_vote();
    outln!(
        "node:       {}",
        examination.node().map_or_else(unknown, |n| n.to_string())
    )?;
    outln!(
        "role:       {}",
        examination.role().map_or_else(unknown, |r| r.to_string())
    )?;
    outln!(
        "term:       {}",
        vote.as_ref().map_or_else(unknown, |v| v.term.0.to_string())
    )?;
    outln!(
        "vote:       {}",
        vote.as_ref().map_or_else(unknown, |v| v
            .voted_for
            .as_ref()
            .map_or_else(|| "none".to_owned(), |v| v.to_string()))
    )?;
    outln!("hard state: {}", copies_text(examination))?;
    if let Some(line) = degraded_line(examination) {
        outln!("degraded:   {line}")?;
    }
    outln!(
        "commit:     {}",
        examination
            .commit_index()
            .map_or_else(|| "none".to_owned(), |i| format!("index {}", i.0))
    )?;
    print_log(examination)?;
    print_snapshot(examination)?;
    outln!(
        "leader history ({} LeaderConfiguration entries):",
        scanned.history.len()
    )?;
    for record in &scanned.history {
        let place = record
            .index
            .map_or_else(|| "from the snapshot".to_owned(), |i| format!("index {i}"));
        outln!("  term {:>6}: {} ({place})", record.term, record.leader)?;
    }
    print_segments(examination, segments)?;
    print_recovery(examination)?;
    for line in scanned.suspects.lines() {
        outln!("{line}")?;
    }
    Ok(())
}

fn print_log(examination: &Examination) -> Result<(), CliError> {
    let readable = readable_indexes(examination);
    let first = examination.first_index().0;
    match examination.log_stop() {
        Some(stop) => {
            outln!(
                "log:        intact {}; it stops at {}",
                index_range(readable.start, readable.end),
                log_stop_text(stop)
            )?;
        }
        None => outln!("log:        {}", index_range(readable.start, readable.end))?,
    }
    if first > 0 {
        let previous = examination
            .first_index_previous_term()
            .map_or_else(|| "unknown".to_owned(), |t| t.0.to_string());
        outln!(
            "compacted:  entries below {first} (term of {}: {previous})",
            first - 1
        )?;
    }
    if let Some((log_epoch, Some(truncated_from))) = examination.truncation() {
        outln!("truncation: epoch {log_epoch}, latest from index {truncated_from}")?;
    }
    for line in warning_lines(examination) {
        outln!("{line}")?;
    }
    Ok(())
}

fn print_snapshot(examination: &Examination) -> Result<(), CliError> {
    match examination.snapshot() {
        Some(s) => outln!(
            "snapshot:   {} covers indexes below {} (last term {}), {} bytes; catalog: {} members, {} ranges, {} leader configurations (list them: cpwal catalog)",
            s.name,
            s.index_end,
            s.last_term,
            s.file_bytes,
            s.members,
            s.ranges,
            s.leader_configurations
        )?,
        None => outln!("snapshot:   none")?,
    }
    Ok(())
}

fn print_segments(examination: &Examination, segments: &[SegmentSummary]) -> Result<(), CliError> {
    outln!("segments ({}):", segments.len())?;
    for s in segments {
        outln!(
            "  {}  generation {}  {}  {} of {} bytes used  {}",
            s.name,
            s.generation,
            index_range(s.first_index.0, s.end_index.0),
            s.used_bytes,
            s.file_bytes,
            state_word(s.state)
        )?;
    }
    for name in examination.segments_beyond() {
        outln!("  {name}  beyond the damage: not part of the readable log")?;
    }
    Ok(())
}

fn print_recovery(examination: &Examination) -> Result<(), CliError> {
    if examination.verdict() == Verdict::Damaged {
        outln!(
            "recovery:   a writer refuses this directory; restore it from a peer or a backup, or copy what is readable with `cpwal salvage`"
        )?;
        return Ok(());
    }
    let repairs = recovery_lines(examination);
    if repairs.is_empty() && examination.verdict() == Verdict::Clean {
        outln!("recovery:   clean, a writer would change nothing")?;
    }
    for line in repairs {
        outln!("recovery:   a writer would {line}")?;
    }
    if degraded_line(examination).is_some() {
        outln!(
            "recovery:   a writer would rewrite the failing hard-state copy from the serving one"
        )?;
    }
    Ok(())
}
