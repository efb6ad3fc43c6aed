//! `cpwal dump DIR [--from I] [--to J]`: entries as JSON lines, for jq.
//! On a damaged directory only the intact prefix is printed, and the run
//! ends with a line on stderr saying so and exit 4.

use std::io::{BufWriter, Write};
use std::path::Path;

use cpwal::operate::{Examination, Verdict};
use cpwal::ControlPlaneIndex;

use crate::failure::{CliError, EXIT_CORRUPTION};
use crate::output::{muted_on_closed_pipe, stdout_closed};
use crate::progress::{Progress, Unit};
use crate::render::{entry_json, examine, index_range, readable_indexes};

/// Writes entries `from..=to` (default: the whole readable log) one JSON
/// object per line on stdout; returns the exit code. A closed pipe
/// (`| head`) ends the printing quietly; the exit code still says whether
/// the directory is damaged (see [`crate::output`]).
pub fn run(directory: &Path, from: Option<u64>, to: Option<u64>) -> Result<u8, CliError> {
    let examination = examine(directory)?;
    let range = pick_range(&examination, from, to)?;
    let progress = Progress::new("dump", Unit::Entries);
    let total = range.end.saturating_sub(range.start);
    progress.set(0, total);
    let mut out = BufWriter::new(std::io::stdout().lock());
    for index in range.clone() {
        let entry = examination
            .read(ControlPlaneIndex(index))
            .map_err(|e| CliError::engine("cannot read an entry", e))?;
        muted_on_closed_pipe(writeln!(out, "{}", entry_json(&entry)))?;
        if stdout_closed() {
            break;
        }
        if index % 4096 == 0 {
            progress.set(index - range.start, total);
        }
    }
    muted_on_closed_pipe(out.flush())?;
    drop(progress);
    if examination.verdict() != Verdict::Damaged {
        return Ok(0);
    }
    let readable = readable_indexes(&examination);
    eprintln!(
        "cpwal: the directory is damaged: printed entries of its intact prefix only, which holds {}; run `cpwal verify` for the damage (exit {EXIT_CORRUPTION})",
        index_range(readable.start, readable.end)
    );
    Ok(EXIT_CORRUPTION as u8)
}

/// The indexes to print: `from..=to` within the readable log. On a damaged
/// directory, a `--to` past the intact prefix stops at its end (the run
/// then says so); anything else outside it is refused.
fn pick_range(
    examination: &Examination,
    from: Option<u64>,
    to: Option<u64>,
) -> Result<std::ops::Range<u64>, CliError> {
    let readable = readable_indexes(examination);
    let (first, end) = (readable.start, readable.end);
    let damaged = examination.verdict() == Verdict::Damaged;
    let to = match to {
        Some(to) if damaged && to >= end && end > first && from.is_none_or(|f| f < end) => {
            Some(end - 1)
        }
        other => other,
    };
    for index in [from, to].into_iter().flatten() {
        if index < first {
            return Err(CliError::Compacted { index, first });
        }
        if index < first || index >= end {
            return Err(CliError::IndexOutOfRange {
                index,
                first,
                end,
                damaged,
            });
        }
    }
    Ok(from.unwrap_or(first)..to.map_or(end, |t| t + 1))
}
