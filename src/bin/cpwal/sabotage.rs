//! Deliberate damage for the checker's self-test (hidden `--sabotage`):
//! each kind destroys something a guarantee protects, between the kill and
//! the reopen, so a run that still reports zero violations would prove the
//! checker blind to that guarantee.

use std::path::Path;

use cpwal::format::HARD_STATE_FILE_NAME;

use crate::failure::CliError;

/// What to destroy after each kill.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Sabotage {
    /// Zero the last written sector of the newest segment: acknowledged
    /// entries lost (G3, G5).
    ZeroTail,
    /// Put back the hard-state file as it was before the cycle: acknowledged
    /// votes and terms rolled back (G1).
    StaleHardState,
}

/// What `before_cycle` kept for `after_kill`.
#[derive(Debug)]
pub struct Saved(Option<Vec<u8>>);

impl Sabotage {
    /// The name on the command line.
    pub fn name(self) -> &'static str {
        match self {
            Self::ZeroTail => "zero-tail",
            Self::StaleHardState => "stale-hard-state",
        }
    }

    /// Keeps what the damage needs, before the child starts.
    pub fn before_cycle(self, data: &Path) -> Result<Saved, CliError> {
        let path = data.join(HARD_STATE_FILE_NAME);
        match self {
            Self::StaleHardState if path.exists() => std::fs::read(&path)
                .map(|bytes| Saved(Some(bytes)))
                .map_err(|e| CliError::io("read the hard state", e)),
            _ => Ok(Saved(None)),
        }
    }

    /// Does the damage, after the kill and before the reopen.
    pub fn after_kill(self, data: &Path, saved: Saved) -> Result<(), CliError> {
        match (self, saved.0) {
            (Self::ZeroTail, _) => zero_last_written_sector(data),
            (Self::StaleHardState, Some(bytes)) => {
                std::fs::write(data.join(HARD_STATE_FILE_NAME), bytes)
                    .map_err(|e| CliError::io("write the hard state", e))
            }
            (Self::StaleHardState, None) => Ok(()),
        }
    }
}

/// Zeroes the 512-byte sector holding the last non-zero byte of the newest
/// segment (never its header sector): the checker's self-test.
fn zero_last_written_sector(data: &Path) -> Result<(), CliError> {
    let io = |what: &'static str| move |e| CliError::io(what, e);
    let newest = std::fs::read_dir(data)
        .map_err(io("list the data directory"))?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| {
            let name = p.file_name().map(|n| n.to_string_lossy().into_owned());
            name.and_then(|n| cpwal::format::parse_segment_file_name(&n))
                .is_some()
        })
        .max();
    let Some(segment) = newest else { return Ok(()) };
    let mut bytes = std::fs::read(&segment).map_err(io("read the newest segment"))?;
    let Some(last) = bytes.iter().rposition(|&b| b != 0) else {
        return Ok(());
    };
    let sector = last / 512 * 512;
    if sector == 0 {
        return Ok(());
    }
    let end = (sector + 512).min(bytes.len());
    bytes[sector..end].fill(0);
    std::fs::write(&segment, bytes).map_err(io("write the newest segment"))
}
