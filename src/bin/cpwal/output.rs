//! Writing the tool's reports to stdout. `println!` panics when the reader
//! is gone ("failed printing to stdout: Broken pipe" on
//! `cpwal inspect DIR | head -1`); everything the tool prints goes through
//! [`outln!`] instead, which treats a closed stdout as a reader that has
//! seen enough.
//!
//! Once a write finds the pipe closed, stdout is muted: later lines are
//! dropped and the command finishes its work and exits with the code that
//! work earned, with nothing on stderr. So a healthy directory exits 0, and
//! `set -o pipefail; cpwal verify DIR | head -1` still fails on a damaged
//! one (exit 4) instead of reporting success because the reader left early.
//! Any other write error (a full disk under `> file`) is a [`CliError`].

use std::fmt;
use std::io::{self, ErrorKind, Write};
use std::sync::atomic::{AtomicBool, Ordering};

use crate::failure::CliError;

/// Set once a write to stdout found its reader gone.
static STDOUT_CLOSED: AtomicBool = AtomicBool::new(false);

/// Writes `line` and a newline to stdout (see the module docs for a closed
/// stdout).
pub fn write_line(line: fmt::Arguments<'_>) -> Result<(), CliError> {
    if stdout_closed() {
        return Ok(());
    }
    let mut out = io::stdout().lock();
    let written = out
        .write_fmt(line)
        .and_then(|()| out.write_all(b"\n"))
        .and_then(|()| out.flush());
    muted_on_closed_pipe(written)
}

/// `Ok` for a write that succeeded or found the reader gone (muting stdout
/// from then on); any other failure is the command's error.
pub fn muted_on_closed_pipe(written: io::Result<()>) -> Result<(), CliError> {
    match written {
        Err(error) if error.kind() == ErrorKind::BrokenPipe => {
            STDOUT_CLOSED.store(true, Ordering::Relaxed);
            Ok(())
        }
        Err(error) => Err(CliError::io("write to stdout", error)),
        Ok(()) => Ok(()),
    }
}

/// Whether a write found stdout's reader gone: a command printing many
/// lines can stop producing them.
pub fn stdout_closed() -> bool {
    STDOUT_CLOSED.load(Ordering::Relaxed)
}

/// `println!` that returns `Result<(), CliError>` instead of panicking
/// (see [`write_line`]).
macro_rules! outln {
    ($($arg:tt)*) => {
        $crate::output::write_line(format_args!($($arg)*))
    };
}
pub(crate) use outln;
