//! `cpwal verify DIR [--json]`: a read-only full check with one exit code
//! per verdict: 0 clean, 3 repairable, 6 degraded, 4 damaged.

use std::path::Path;

use cpwal::operate::{Examination, Verdict};
use cpwal::{ControlPlaneIndex, Corruption};
use serde_json::json;

use crate::failure::{CliError, EXIT_CORRUPTION, EXIT_DEGRADED, EXIT_TORN_TAIL};
use crate::output::outln;
use crate::progress::{Progress, Unit};
use crate::render::{
    copies_json, copies_text, corruption_json, corruption_line, degraded_line, examine,
    index_range, log_stop_json, log_stop_text, optional_identity, readable_indexes, recovery_json,
    recovery_lines, snapshot_json, verdict_word, warning_lines, warnings_json,
};
use crate::suspects::SuspectNames;

/// What the full check found.
struct Outcome {
    verdict: Verdict,
    /// The directory's damage, plus any entry that failed its re-read.
    damage: Vec<Corruption>,
    entries_verified: u64,
    /// Stored names with an invisible character (warnings, no exit code).
    suspects: SuspectNames,
}

/// Checks every file and every entry of `directory`; returns the exit
/// code of the verdict.
pub fn run(directory: &Path, as_json: bool) -> Result<u8, CliError> {
    let examination = examine(directory)?;
    let outcome = check_entries(&examination)?;
    let code = exit_code(outcome.verdict);
    if as_json {
        print_json(&examination, &outcome, code)?;
    } else {
        print_text(&examination, &outcome)?;
    }
    Ok(code)
}

/// Re-reads every readable entry (checksum and decoding); a failure makes
/// the directory damaged.
fn check_entries(examination: &Examination) -> Result<Outcome, CliError> {
    let mut outcome = Outcome {
        verdict: examination.verdict(),
        damage: examination.damage().to_vec(),
        entries_verified: 0,
        suspects: SuspectNames::default(),
    };
    if let Some(catalog) = examination.snapshot_catalog() {
        outcome.suspects.note_snapshot(catalog);
    }
    let readable = readable_indexes(examination);
    let total = readable.end - readable.start;
    let progress = Progress::new("verify", Unit::Entries);
    progress.set(0, total);
    for index in readable {
        match examination.read(ControlPlaneIndex(index)) {
            Ok(read) => {
                outcome.entries_verified += 1;
                outcome.suspects.note_entry(read.index, &read.entry);
            }
            Err(error) => match error.as_corruption() {
                Some(corruption) => {
                    outcome.verdict = Verdict::Damaged;
                    outcome.damage.push(corruption.clone());
                    break;
                }
                None => return Err(CliError::engine("cannot read an entry", error)),
            },
        }
        if outcome.entries_verified.is_multiple_of(4096) {
            progress.set(outcome.entries_verified, total);
        }
    }
    Ok(outcome)
}

fn exit_code(verdict: Verdict) -> u8 {
    (match verdict {
        Verdict::Clean => 0,
        Verdict::Repairable => EXIT_TORN_TAIL,
        Verdict::Degraded => EXIT_DEGRADED,
        Verdict::Damaged => EXIT_CORRUPTION,
    }) as u8
}

/// Prints foreign files, wide permissions and suspect names as warning
/// lines (they change no exit code), then the verdict in words, last.
fn print_text(examination: &Examination, outcome: &Outcome) -> Result<(), CliError> {
    for line in warning_lines(examination) {
        outln!("{line}")?;
    }
    for line in outcome.suspects.lines() {
        outln!("{line}")?;
    }
    print_verdict(examination, outcome)?;
    Ok(())
}

fn print_verdict(examination: &Examination, outcome: &Outcome) -> Result<(), CliError> {
    let entries = outcome.entries_verified;
    match outcome.verdict {
        Verdict::Damaged => print_damaged(examination, outcome)?,
        Verdict::Clean => {
            let vote = examination.durable_vote().map_or(0, |v| v.term.0);
            let snapshot = examination.snapshot().map_or_else(
                || "no snapshot".to_owned(),
                |s| format!("snapshot {} readable", s.name),
            );
            outln!(
                "clean: {entries} entries verified, term {vote}, {} segment file(s), {snapshot}, both hard-state copies current",
                examination.segments().map_or(0, |s| s.len())
            )?;
        }
        Verdict::Repairable | Verdict::Degraded => {
            if let Some(line) = degraded_line(examination) {
                outln!("degraded: {line} (exit {EXIT_DEGRADED})")?;
            }
            for line in recovery_lines(examination) {
                outln!("torn: on next open a writer will {line}")?;
            }
            if !recovery_lines(examination).is_empty() {
                outln!(
                    "{entries} entries verified before it; a torn tail is what a crash mid-write leaves and was never acknowledged, unless the disk lost synced data (exit {EXIT_TORN_TAIL})"
                )?;
            } else {
                outln!("{entries} entries verified; the log and the snapshot are intact")?;
            }
        }
    }
    Ok(())
}

fn print_damaged(examination: &Examination, outcome: &Outcome) -> Result<(), CliError> {
    for corruption in &outcome.damage {
        outln!("corrupt: {}", corruption_line(corruption))?;
    }
    let readable = readable_indexes(examination);
    let mut intact = format!(
        "readable: {} intact and verified",
        index_range(readable.start, readable.end)
    );
    if let Some(stop) = examination.log_stop() {
        intact.push_str(&format!("; the log stops at {}", log_stop_text(stop)));
    }
    outln!("{intact}")?;
    match (examination.durable_vote(), examination.served_by()) {
        (Some(vote), Some(copy)) => outln!(
            "readable: term {} and vote {} from hard-state copy {} ({})",
            vote.term.0,
            vote.voted_for
                .map_or_else(|| "none".to_owned(), |v| v.to_string()),
            copy.name,
            copies_text(examination)
        )?,
        _ => outln!(
            "readable: no valid hard-state copy: term and vote are lost ({})",
            copies_text(examination)
        )?,
    }
    outln!(
        "the directory is damaged: restore this node from a peer or a backup, or copy what is readable into a new directory with `cpwal salvage DIR NEW_DIR` (exit {EXIT_CORRUPTION})"
    )?;
    Ok(())
}

fn print_json(examination: &Examination, outcome: &Outcome, code: u8) -> Result<(), CliError> {
    let vote = examination.durable_vote();
    let readable = readable_indexes(examination);
    let report = json!({
        "directory": examination.directory().display().to_string(),
        "verdict": verdict_word(outcome.verdict),
        "exit_code": code,
        "entries_verified": outcome.entries_verified,
        "damage": outcome.damage.iter().map(corruption_json).collect::<Vec<_>>(),
        "degraded": degraded_line(examination),
        "recovery_would": recovery_json(examination),
        "node": optional_identity(examination.node()),
        "term": vote.as_ref().map(|v| v.term.0),
        "vote": vote.as_ref().and_then(|v| v.voted_for.as_ref()).map(|v| v.as_str()),
        "hard_state_copies": copies_json(examination),
        "hard_state_served_by": examination.served_by().map(|c| c.name),
        "first_index": readable.start,
        "end_index": readable.end,
        "log_stop": log_stop_json(examination.log_stop()),
        "snapshot": snapshot_json(examination.snapshot()),
        "warnings": warnings_json(examination),
        "suspect_names": outcome.suspects.json(),
    });
    outln!("{report:#}")?;
    Ok(())
}
