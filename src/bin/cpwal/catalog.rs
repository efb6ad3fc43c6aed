//! `cpwal catalog DIR [--json]`: the control-plane state at the commit
//! point (members, range owners with epochs, the leader history): the
//! snapshot's catalog with every committed entry after it applied.
//! Read-only; exit 4 on a damaged directory, whose catalog is then the one
//! at the last committed entry that could be read.

use std::path::Path;

use cpwal::operate::{CatalogView, Examination, Verdict};
use serde_json::json;

use crate::failure::{CliError, EXIT_CORRUPTION};
use crate::output::outln;
use crate::render::{corruption_line, examine, verdict_word};

/// Prints the catalog of `directory`; returns the exit code.
pub fn run(directory: &Path, as_json: bool) -> Result<u8, CliError> {
    let examination = examine(directory)?;
    let view = examination
        .catalog()
        .map_err(|e| CliError::engine("cannot apply the committed entries", e))?;
    if as_json {
        print_json(&examination, &view)?;
    } else {
        print_text(&examination, &view)?;
    }
    Ok(match examination.verdict() {
        Verdict::Damaged => EXIT_CORRUPTION as u8,
        _ => 0,
    })
}

/// "commit index N (snapshot-… covers below S, then K committed log
/// entries)" — where the catalog's state comes from.
fn provenance(view: &CatalogView) -> String {
    let applied_end = view.catalog.applied_end().0;
    let point = applied_end
        .checked_sub(1)
        .map_or_else(|| "nothing committed".to_owned(), |i| format!("index {i}"));
    let from_snapshot = view.snapshot_index_end.map_or(0, |e| e.0);
    let source = match view.snapshot_index_end {
        Some(end) => format!(
            "the snapshot (entries below {end}), then {} committed log entries",
            applied_end - from_snapshot
        ),
        None => format!("{applied_end} committed log entries"),
    };
    format!("{point}: {source}")
}

fn print_text(examination: &Examination, view: &CatalogView) -> Result<(), CliError> {
    let catalog = &view.catalog;
    outln!("directory: {}", examination.directory().display())?;
    if examination.verdict() == Verdict::Damaged {
        outln!(
            "verdict:   DAMAGED: the catalog below stops at the last committed entry that could be read"
        )?;
        for corruption in examination.damage() {
            outln!("damage:    {}", corruption_line(corruption))?;
        }
        let (applied_end, commit_end) = (catalog.applied_end().0, view.commit_end.0);
        if commit_end > applied_end {
            outln!(
                "hidden:    the directory records commits through index {}; entries {}..={} cannot be read",
                commit_end - 1,
                applied_end,
                commit_end - 1
            )?;
        }
    }
    outln!("as of:     {}", provenance(view))?;
    outln!("members ({}):", catalog.members().len())?;
    for member in catalog.members() {
        outln!("  {member}")?;
    }
    outln!("ranges ({}):", catalog.range_count())?;
    for (range, ownership) in catalog.ranges() {
        outln!(
            "  {range}: owner {}, epoch {}",
            ownership.owner,
            ownership.epoch
        )?;
    }
    outln!("leader history ({}):", catalog.leader_history().len())?;
    for (term, leader) in catalog.leader_history() {
        outln!("  term {:>6}: {leader}", term.0)?;
    }
    outln!(
        "refused entries: {} (fenced ownership transitions and stale leader records)",
        catalog.refused_count()
    )?;
    Ok(())
}

fn print_json(examination: &Examination, view: &CatalogView) -> Result<(), CliError> {
    let catalog = &view.catalog;
    let report = json!({
        "directory": examination.directory().display().to_string(),
        "verdict": verdict_word(examination.verdict()),
        "commit_index": catalog.applied_end().0.checked_sub(1),
        "recorded_commit_index": view.commit_end.0.checked_sub(1),
        "snapshot_index_end": view.snapshot_index_end.map(|e| e.0),
        "members": catalog.members().iter().map(|m| m.as_str()).collect::<Vec<_>>(),
        "ranges": catalog.ranges().map(|(range, ownership)| json!({
            "range": range,
            "owner": ownership.owner.as_str(),
            "epoch": ownership.epoch,
        })).collect::<Vec<_>>(),
        "leader_history": catalog.leader_history().iter().map(|(term, leader)| json!({
            "term": term.0,
            "leader": leader.as_str(),
        })).collect::<Vec<_>>(),
        "refused_entries": catalog.refused_count(),
    });
    outln!("{report:#}")?;
    Ok(())
}
