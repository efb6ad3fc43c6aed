//! Backups of a live node: a consistent copy of what it durably holds,
//! taken without stopping it. How the copy stays consistent while the node
//! keeps writing is argued in [`crate::operate`]'s backup module.

use std::path::Path;

use crate::error::Result;
use crate::io::Storage;
use crate::operate::{copy_plan, BackupPlan, BackupReport, Progress};

use super::{ControlPlaneNode, SharedControlPlane};
use crate::node_role::Role;

/// Copies a live backup tries without the engine lock before it copies
/// holding it: each is started over only if a suffix truncation raced it.
const ATTEMPTS_WITHOUT_LOCK: usize = 3;

impl<R: Role, S: Storage> ControlPlaneNode<R, S> {
    /// Copies what this node durably holds (hard state, snapshot, the log up
    /// to its durable end) into the new directory `destination` (absent or
    /// empty), verifies the copy and puts it in place; see
    /// [`crate::operate`] for how the directory is made and checked. The
    /// copy opens as this node, in its role. Nothing changes here; a node
    /// whose handle stopped after a storage failure is refused
    /// ([`crate::Error::Failed`]): reopen it first.
    pub fn backup(&self, destination: impl AsRef<Path>) -> Result<BackupReport> {
        let plan = self.backup_plan()?;
        let copied = copy_plan(&plan, destination.as_ref(), &(), || Ok(true))?;
        Ok(copied.expect("a copy that is not re-checked always completes"))
    }

    /// The plan of a backup: the durable state as it is now.
    fn backup_plan(&self) -> Result<BackupPlan<S::File>> {
        self.check_not_failed()?;
        BackupPlan::of(&self.log, &self.hard_state, self.log.durable_end())
    }
}

impl<R: Role, S: Storage> SharedControlPlane<R, S> {
    /// [`ControlPlaneNode::backup`] while other threads keep appending:
    /// the engine lock is held only to take the plan (everything written so
    /// far is made durable first, so every entry acknowledged before this
    /// call is in the copy) and to check, after the copy, that no suffix
    /// truncation raced it; the bytes are copied without it.
    pub fn backup(&self, destination: impl AsRef<Path>) -> Result<BackupReport> {
        self.backup_with_progress(destination, &())
    }

    /// [`SharedControlPlane::backup`], reporting the bytes copied to
    /// `progress` (called without the engine lock).
    pub fn backup_with_progress(
        &self,
        destination: impl AsRef<Path>,
        progress: &dyn Progress,
    ) -> Result<BackupReport> {
        let destination = destination.as_ref();
        for _ in 0..ATTEMPTS_WITHOUT_LOCK {
            let plan = self.with_engine(|engine| engine.backup_plan())?;
            let epoch = plan.hard_state.log_epoch;
            let untruncated =
                || self.with_engine(|engine| Ok(engine.hard_state.log_epoch == epoch));
            if let Some(report) = copy_plan(&plan, destination, progress, untruncated)? {
                return Ok(report);
            }
        }
        // Truncations kept racing the copy: copy once holding the lock.
        self.with_engine(|engine| {
            let plan = engine.backup_plan()?;
            let copied = copy_plan(&plan, destination, progress, || Ok(true))?;
            Ok(copied.expect("a copy that is not re-checked always completes"))
        })
    }
}

#[cfg(test)]
mod tests {
    use crate::consensus::{ControlPlaneEntry, ControlPlaneIndex, MembershipChange};
    use crate::identity::ClusterVoterIdentity;
    use crate::inspect::Inspection;
    use crate::options::Options;
    use crate::DurableControlPlane;

    fn admit(n: u64) -> ControlPlaneEntry {
        let member = ClusterVoterIdentity::from_certificate_subject(&format!("CN=m{n}"));
        ControlPlaneEntry::MembershipChange(MembershipChange::Admit(member.unwrap()))
    }

    #[test]
    fn backup_never_copies_a_record_that_is_not_durable() {
        // Goal: a backup holds the log up to its durable end only, even
        // when later records are already in the file (written by group
        // commit, their sync not yet run). Method: append 3 entries
        // durably, write 2 more and flush them to the file without a sync
        // (what a group-commit leader does before its fdatasync), back up:
        // the copy ends at index 2.
        let root = tempfile::tempdir().unwrap();
        let me = ClusterVoterIdentity::from_certificate_subject("CN=a").unwrap();
        let mut node =
            DurableControlPlane::create(root.path().join("node"), me, Options::default()).unwrap();
        node.try_append_batch(&[admit(0), admit(1), admit(2)])
            .unwrap();
        node.write_batch_unsynced(&[admit(3), admit(4)]).unwrap();
        let unsynced = node
            .log
            .tail_sync_handle(crate::log::SyncDescription::Writer)
            .unwrap();
        assert_eq!(unsynced.covered_end(), 5, "the records are in the file");
        let report = node.backup(root.path().join("copy")).unwrap();
        assert_eq!((report.first_index.0, report.end_index.0), (0, 3));
        let copy = Inspection::open(root.path().join("copy")).unwrap();
        assert_eq!(copy.last_index(), Some(ControlPlaneIndex(2)));
    }
}
