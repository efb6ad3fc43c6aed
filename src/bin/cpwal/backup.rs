//! `cpwal backup SRC DEST` and `cpwal restore BACKUP DEST --node ID`:
//! verified copies into a new directory (see `cpwal::operate`).

use std::path::Path;

use cpwal::operate::{BackupReport, RestoreOptions, RestoreReport};
use cpwal::{ClusterVoterIdentity, NodeRole};
use serde_json::{json, Value};

use crate::failure::CliError;
use crate::output::outln;
use crate::progress::{Progress, Unit};
use crate::render::{index_range, recovery_lines_of};

/// The role as typed on the command line.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum RoleArgument {
    /// The only voter of its cluster.
    SoleVoter,
    /// One voter of a multi-node cluster.
    Replica,
}

impl From<RoleArgument> for NodeRole {
    fn from(role: RoleArgument) -> Self {
        match role {
            RoleArgument::SoleVoter => NodeRole::SoleVoter,
            RoleArgument::Replica => NodeRole::Replica,
        }
    }
}

/// A node identity from the command line.
pub fn parse_identity(text: &str) -> Result<ClusterVoterIdentity, String> {
    ClusterVoterIdentity::from_certificate_subject(text).map_err(|e| e.to_string())
}

/// Backs up the stopped directory `source` into `destination`.
pub fn run_backup(source: &Path, destination: &Path, as_json: bool) -> Result<u8, CliError> {
    let progress = Progress::new("backup", Unit::Bytes);
    let report = cpwal::operate::backup_directory(source, destination, &progress)
        .map_err(|e| CliError::engine("cannot back up", e))?;
    drop(progress);
    if as_json {
        outln!("{:#}", backup_json(&report))?;
        return Ok(0);
    }
    outln!(
        "backed up {} into {} and verified it",
        source.display(),
        report.destination.display()
    )?;
    print_copy(&report)?;
    for line in recovery_lines_of(&report.left_out, None) {
        outln!("left out:   what a writer would repair, never acknowledged: {line}")?;
    }
    Ok(0)
}

/// Restores `backup` into `destination` for the node and role given.
pub fn run_restore(
    backup: &Path,
    destination: &Path,
    options: &RestoreOptions,
    as_json: bool,
) -> Result<u8, CliError> {
    let progress = Progress::new("restore", Unit::Bytes);
    let report = cpwal::operate::restore(backup, destination, options, &progress)
        .map_err(|e| CliError::engine("cannot restore", e))?;
    drop(progress);
    if as_json {
        outln!("{:#}", restore_json(&report))?;
        return Ok(0);
    }
    outln!(
        "restored {} into {} and verified it",
        backup.display(),
        report.copy.destination.display()
    )?;
    print_copy(&report.copy)?;
    if let Some(node) = &report.node_changed_from {
        outln!(
            "identity:   the backup belonged to {node}; the copy belongs to {} and its vote was cleared",
            report.copy.node
        )?;
    }
    if let Some(role) = report.role_changed_from {
        outln!(
            "role:       the backup was a {role}; the copy is a {}",
            report.copy.role
        )?;
    }
    Ok(0)
}

fn print_copy(report: &BackupReport) -> Result<(), CliError> {
    outln!("node:       {} ({})", report.node, report.role)?;
    outln!(
        "term:       {}; vote: {}",
        report.vote.term.0,
        report
            .vote
            .voted_for
            .as_ref()
            .map_or_else(|| "none".to_owned(), |v| v.to_string())
    )?;
    outln!(
        "log:        {}",
        index_range(report.first_index.0, report.end_index.0)
    )?;
    outln!(
        "snapshot:   {}",
        report.snapshot_index_end.map_or_else(
            || "none".to_owned(),
            |e| format!("covers indexes below {e}")
        )
    )?;
    outln!(
        "copied:     {} segment file(s), {} bytes, read back and checked",
        report.segments,
        report.bytes_copied
    )?;
    Ok(())
}

/// A backup's report as JSON.
pub fn backup_json(report: &BackupReport) -> Value {
    json!({
        "destination": report.destination.display().to_string(),
        "node": report.node.as_str(),
        "role": report.role.to_string(),
        "term": report.vote.term.0,
        "vote": report.vote.voted_for.as_ref().map(|v| v.as_str()),
        "first_index": report.first_index.0,
        "end_index": report.end_index.0,
        "snapshot_index_end": report.snapshot_index_end.map(|e| e.0),
        "segments": report.segments,
        "bytes_copied": report.bytes_copied,
        "left_out": recovery_lines_of(&report.left_out, None),
        "verified": true,
    })
}

fn restore_json(report: &RestoreReport) -> Value {
    let mut value = backup_json(&report.copy);
    value["node_changed_from"] = json!(report.node_changed_from.as_ref().map(|n| n.as_str()));
    value["role_changed_from"] = json!(report.role_changed_from.map(|r| r.to_string()));
    value
}
