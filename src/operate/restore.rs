//! Restore: a backup put back as a node's data directory, checked to be
//! the node and role the operator says it is for.
//!
//! Restoring node A's backup as node B would give B A's votes; restoring a
//! replica's as a sole voter would let it commit on its own. Both are
//! refused unless the operator says otherwise, and then the hard state is
//! rewritten to say so: a new identity clears the vote (it was the other
//! node's), a new role is recorded (as a sole voter the node commits every
//! entry it holds at its next append: etcd's "force new cluster").

use std::path::Path;

use super::backup::{copy_plan, BackupPlan, BackupReport};
use super::Progress;
use crate::error::{Error, Result};
use crate::hard_state::NodeRole;
use crate::identity::ClusterVoterIdentity;
use crate::inspect::Inspection;

/// Who the restored directory is for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RestoreOptions {
    /// The node the directory must belong to.
    pub node: ClusterVoterIdentity,
    /// The role it must have (`None`: the backup's).
    pub role: Option<NodeRole>,
    /// Restore a backup of another node as `node`, with the vote cleared.
    pub allow_other_node: bool,
    /// Restore a backup of the other role as `role`.
    pub allow_role_change: bool,
}

impl RestoreOptions {
    /// A restore for `node` that refuses any mismatch.
    pub fn new(node: ClusterVoterIdentity) -> Self {
        Self {
            node,
            role: None,
            allow_other_node: false,
            allow_role_change: false,
        }
    }
}

/// What a restore wrote.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RestoreReport {
    /// The copy.
    pub copy: BackupReport,
    /// The node the backup belonged to, when it was restored as another.
    pub node_changed_from: Option<ClusterVoterIdentity>,
    /// The backup's role, when it was restored in the other.
    pub role_changed_from: Option<NodeRole>,
}

/// Restores the backup `backup` (any stopped data directory a writer would
/// open) into the new directory `destination` (absent or empty), for the
/// node and role `options` name: an identity mismatch is
/// [`Error::IdentityMismatch`], a role mismatch [`Error::RoleMismatch`],
/// unless allowed. The backup is read under a shared lock and never
/// changed; the restored directory is verified and every file and
/// directory made durable before it is put in place.
pub fn restore(
    backup: impl AsRef<Path>,
    destination: impl AsRef<Path>,
    options: &RestoreOptions,
    progress: &dyn Progress,
) -> Result<RestoreReport> {
    let inspection = Inspection::open(backup)?;
    let log = inspection.log();
    let mut plan = BackupPlan::of(log, inspection.hard_state(), log.end_index())?;
    let state = &mut plan.hard_state;
    let node_changed_from = (state.node != options.node).then(|| state.node.clone());
    if let Some(stored) = &node_changed_from {
        if !options.allow_other_node {
            return Err(Error::IdentityMismatch {
                stored: stored.clone(),
                requested: options.node.clone(),
            });
        }
        state.node = options.node.clone();
        state.vote = None;
        state.vote_committed = false;
    }
    let requested = options.role.unwrap_or(state.role);
    let role_changed_from = (state.role != requested).then_some(state.role);
    if let Some(stored) = role_changed_from {
        if !options.allow_role_change {
            return Err(Error::RoleMismatch { stored, requested });
        }
        state.role = requested;
    }
    let copy = copy_plan(&plan, destination.as_ref(), progress, || Ok(true))?
        .expect("a copy that is not re-checked always completes");
    Ok(RestoreReport {
        copy,
        node_changed_from,
        role_changed_from,
    })
}
