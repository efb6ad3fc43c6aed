//! `cpwal verify DIR`: a read-only full check with distinct exit codes.

use std::path::Path;

use cpwal::{Corruption, Error};

use crate::failure::{CliError, EXIT_CORRUPTION, EXIT_TORN_TAIL};
use crate::render::{open_read_only, recovery_lines, warning_lines};

/// Checks every file and every entry of `directory`; returns the exit code:
/// 0 clean, 3 recovery would repair a crash's leftovers, 4 corruption.
/// Foreign files and wide permissions are warnings that change no code.
pub fn run(directory: &Path) -> Result<u8, CliError> {
    let inspection = match open_read_only(directory) {
        Err(CliError::Engine { error, .. }) if error.as_corruption().is_some() => {
            return Ok(report_corruption(&error));
        }
        other => other?,
    };
    let entries = match inspection.read_all() {
        Ok(count) => count,
        Err(error) if error.as_corruption().is_some() => return Ok(report_corruption(&error)),
        Err(error) => return Err(CliError::engine("cannot read an entry", error)),
    };
    for line in warning_lines(&inspection) {
        println!("{line}");
    }
    let repairs = recovery_lines(&inspection);
    if !repairs.is_empty() {
        for line in &repairs {
            println!("torn: on next open a writer will {line}");
        }
        println!(
            "{} entries verified before it; a torn tail is what a crash mid-write leaves and was never acknowledged, unless the disk lost synced data (exit {EXIT_TORN_TAIL})",
            entries
        );
        return Ok(EXIT_TORN_TAIL as u8);
    }
    let vote = inspection.durable_vote();
    let snapshot = inspection.snapshot().map_or_else(
        || "no snapshot".to_owned(),
        |s| format!("snapshot {} readable", s.name),
    );
    println!(
        "clean: {entries} entries verified, term {}, {} segment file(s), {snapshot}, hard state readable",
        vote.term.0,
        inspection.segments().map_or(0, |s| s.len())
    );
    Ok(0)
}

/// Prints where the damage is and returns the corruption exit code.
fn report_corruption(error: &Error) -> u8 {
    if let Some(Corruption {
        path,
        offset,
        index,
        kind,
    }) = error.as_corruption()
    {
        let index = index.map_or_else(|| "none".to_owned(), |i| i.to_string());
        println!(
            "corrupt: file {} offset {offset} index {index}: {kind:?}; restore this node from a peer or a backup (exit {EXIT_CORRUPTION})",
            path.display()
        );
    }
    EXIT_CORRUPTION as u8
}
