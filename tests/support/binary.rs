//! Running the `cpwal` binary from a test. Included with
//! `#[path = "support/binary.rs"] mod ...;` by the suites that need the
//! `cli` feature.
#![allow(dead_code)] // Each test file uses a different part.

use std::path::Path;
use std::process::{Command, Output};

/// Runs `cpwal args...` to completion.
pub fn cpwal(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_cpwal"))
        .args(args)
        .output()
        .expect("run cpwal")
}

/// Output bytes as text.
pub fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

/// A path as a command-line argument.
pub fn arg(path: &Path) -> &str {
    path.to_str().expect("temporary paths are UTF-8")
}
