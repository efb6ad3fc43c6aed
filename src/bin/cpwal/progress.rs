//! Progress bars on stderr for long work (verify, dump, backup, restore,
//! salvage, crash-test), drawn by `indicatif` only when stderr is a
//! terminal: a script, a pipe or a log file sees nothing but the report.

use std::time::Duration;

use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};

/// What a bar counts.
#[derive(Debug, Clone, Copy)]
pub enum Unit {
    /// Bytes copied or read.
    Bytes,
    /// Log entries.
    Entries,
    /// Seconds of a timed run.
    Seconds,
}

/// A progress bar that is hidden unless stderr is a terminal, and cleared
/// when dropped.
#[derive(Debug)]
pub struct Progress(ProgressBar);

impl Progress {
    /// A bar labelled `label`, counting `unit`s.
    pub fn new(label: &str, unit: Unit) -> Self {
        let counter = match unit {
            Unit::Bytes => "{bytes}/{total_bytes} ({bytes_per_sec}, {eta} left)",
            Unit::Entries => "{human_pos}/{human_len} entries ({per_sec}, {eta} left)",
            Unit::Seconds => "{pos}/{len} s",
        };
        let template = format!("{{prefix}} [{{bar:30}}] {counter}");
        let style = ProgressStyle::with_template(&template)
            .unwrap_or_else(|_| ProgressStyle::default_bar())
            .progress_chars("=> ");
        let bar = ProgressBar::with_draw_target(Some(0), ProgressDrawTarget::stderr())
            .with_style(style)
            .with_prefix(label.to_owned());
        // indicatif's stderr target draws nothing unless stderr is a
        // terminal; no ticking thread is needed then either.
        if !bar.is_hidden() {
            bar.enable_steady_tick(Duration::from_millis(200));
        }
        Self(bar)
    }

    /// Runs `print` (which writes lines on stderr) with the bar cleared
    /// meanwhile, so lines and bar do not mix.
    pub fn suspend<T>(&self, print: impl FnOnce() -> T) -> T {
        self.0.suspend(print)
    }

    /// `done` of `total` finished.
    pub fn set(&self, done: u64, total: u64) {
        self.0.set_length(total);
        self.0.set_position(done);
    }
}

impl cpwal::operate::Progress for Progress {
    fn update(&self, done: u64, total: u64) {
        self.set(done, total);
    }
}

impl Drop for Progress {
    fn drop(&mut self) {
        self.0.finish_and_clear();
    }
}
