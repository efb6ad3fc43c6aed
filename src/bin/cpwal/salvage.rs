//! `cpwal salvage DAMAGED DEST [--node ID --role ROLE]`: the longest valid
//! prefix of a damaged directory copied into a new one, with exactly what
//! was lost. Never automatic, never touches DAMAGED.

use std::path::Path;

use cpwal::operate::{SalvageOptions, SalvageReport, VoteFate};
use serde_json::json;

use crate::failure::CliError;
use crate::output::outln;
use crate::progress::{Progress, Unit};
use crate::render::{corruption_json, corruption_line, index_range, verdict_word};

/// Salvages `damaged` into `destination`.
pub fn run(
    damaged: &Path,
    destination: &Path,
    options: &SalvageOptions,
    as_json: bool,
) -> Result<u8, CliError> {
    let progress = Progress::new("salvage", Unit::Entries);
    let report = cpwal::operate::salvage(damaged, destination, options, &progress)
        .map_err(|e| CliError::engine("cannot salvage", e))?;
    drop(progress);
    if as_json {
        print_json(&report)?;
    } else {
        print_text(damaged, &report)?;
    }
    Ok(0)
}

/// The term and vote's fate in words.
fn vote_words(report: &SalvageReport) -> String {
    let vote = report
        .vote
        .as_ref()
        .map_or_else(|| "none".to_owned(), |v| v.to_string());
    match &report.vote_fate {
        VoteFate::Kept => format!(
            "term {} and vote {vote} survived, from hard-state copy {}",
            report.term,
            report.hard_state_from.unwrap_or("?")
        ),
        VoteFate::DroppedByTermRaise { old_term, old_vote } => format!(
            "hard-state copy {} held term {old_term} (vote {}), below the log's; the term is raised to {} and that vote, cast in an older term, is dropped",
            report.hard_state_from.unwrap_or("?"),
            old_vote.as_ref().map_or_else(|| "none".to_owned(), |v| v.to_string()),
            report.term
        ),
        VoteFate::Lost => format!(
            "LOST: no hard-state copy survived; the term is set to {}, the highest the kept log or snapshot holds, with no vote. This node may already have voted in term {}: keep it out of elections until the cluster has moved past that term",
            report.term, report.term
        ),
    }
}

fn vote_fate_word(fate: &VoteFate) -> &'static str {
    match fate {
        VoteFate::Kept => "kept",
        VoteFate::DroppedByTermRaise { .. } => "dropped_by_term_raise",
        VoteFate::Lost => "lost",
    }
}

fn print_text(damaged: &Path, report: &SalvageReport) -> Result<(), CliError> {
    outln!(
        "salvaged {} into {} and verified it entry by entry; {} was not changed",
        damaged.display(),
        report.destination.display(),
        damaged.display()
    )?;
    outln!("source:     {}", verdict_word(report.source_verdict))?;
    for corruption in &report.damage {
        outln!("damage:     {}", corruption_line(corruption))?;
    }
    outln!("node:       {} ({})", report.node, report.role)?;
    outln!("vote:       {}", vote_words(report))?;
    outln!(
        "kept:       {}; snapshot: {}; commit: {}",
        index_range(report.kept.start.0, report.kept.end.0),
        report.snapshot_index_end.map_or_else(
            || "none".to_owned(),
            |e| format!("covers indexes below {e}")
        ),
        report
            .commit_end
            .0
            .checked_sub(1)
            .map_or_else(|| "none".to_owned(), |i| format!("index {i}"))
    )?;
    let lost = &report.lost;
    if lost.known.is_empty() {
        outln!("lost:       no entry known lost")?;
    } else {
        let committed = lost.committed_end.0.saturating_sub(lost.known.start.0);
        outln!(
            "lost:       {} known to have existed, {committed} of them committed; more may have existed past the damage",
            index_range(lost.known.start.0, lost.known.end.0),
        )?;
    }
    outln!(
        "lost:       {} bytes of log data past the damage not kept{}",
        report.bytes_lost,
        if report.segments_left_behind.is_empty() {
            String::new()
        } else {
            format!(
                "; segment files left behind: {}",
                report.segments_left_behind.join(", ")
            )
        }
    )?;
    Ok(())
}

fn print_json(report: &SalvageReport) -> Result<(), CliError> {
    let lost = &report.lost;
    let value = json!({
        "destination": report.destination.display().to_string(),
        "source_verdict": verdict_word(report.source_verdict),
        "damage": report.damage.iter().map(corruption_json).collect::<Vec<_>>(),
        "node": report.node.as_str(),
        "role": report.role.to_string(),
        "hard_state_from": report.hard_state_from,
        "term": report.term.0,
        "vote": report.vote.as_ref().map(|v| v.as_str()),
        "vote_fate": vote_fate_word(&report.vote_fate),
        "kept": {"first_index": report.kept.start.0, "end_index": report.kept.end.0},
        "snapshot_index_end": report.snapshot_index_end.map(|e| e.0),
        "commit_index": report.commit_end.0.checked_sub(1),
        "lost": {
            "first_index": lost.known.start.0,
            "known_end_index": lost.known.end.0,
            "committed_end_index": lost.committed_end.0,
            "bytes": report.bytes_lost,
            "segments_left_behind": report.segments_left_behind,
        },
        "verified": true,
    });
    outln!("{value:#}")?;
    Ok(())
}
