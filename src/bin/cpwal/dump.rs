//! `cpwal dump DIR [--from I] [--to J]`: entries as JSON lines, for jq.

use std::io::{BufWriter, ErrorKind, Write};
use std::path::Path;

use cpwal::ControlPlaneIndex;

use crate::failure::CliError;
use crate::render::{entry_json, open_read_only};

/// Writes entries `from..=to` (default: the whole log) one JSON object per
/// line on stdout. A closed pipe (`| head`) ends the dump quietly.
pub fn run(directory: &Path, from: Option<u64>, to: Option<u64>) -> Result<(), CliError> {
    let inspection = open_read_only(directory)?;
    let first = inspection.first_index().0;
    let end = inspection.last_index().map_or(first, |i| i.0 + 1);
    for index in [from, to].into_iter().flatten() {
        if index < first {
            return Err(CliError::Compacted { index, first });
        }
        if index >= end {
            return Err(CliError::IndexOutOfRange { index, first, end });
        }
    }
    let from = from.unwrap_or(first);
    let to_end = to.map_or(end, |t| t + 1);
    let mut out = BufWriter::new(std::io::stdout().lock());
    for index in from..to_end {
        let entry = inspection
            .read(ControlPlaneIndex(index))
            .map_err(|e| CliError::engine("cannot read an entry", e))?;
        if let Err(error) = writeln!(out, "{}", entry_json(&entry)) {
            return quiet_on_closed_pipe(error);
        }
    }
    out.flush().or_else(quiet_on_closed_pipe)
}

fn quiet_on_closed_pipe(error: std::io::Error) -> Result<(), CliError> {
    if error.kind() == ErrorKind::BrokenPipe {
        return Ok(());
    }
    Err(CliError::io("write to stdout", error))
}
