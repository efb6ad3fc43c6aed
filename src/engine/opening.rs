//! Creating and opening a node: two different acts. `create` makes a new
//! node and refuses a directory that holds one; `open` opens the node a
//! directory holds and refuses one that holds none, so a typo, an unmounted
//! volume or a wiped disk never silently becomes a fresh cluster. Each role
//! has its own calls ([`DurableControlPlane::create`],
//! [`ReplicaControlPlane::create`], ...), and the role a directory was
//! created in is checked at every open.

use std::marker::PhantomData;
use std::path::Path;
use std::sync::Arc;

use crate::consensus::ControlPlaneTerm;
use crate::directory::{Layout, Survey};
use crate::error::{CorruptionKind, Error, Result};
use crate::hard_state::{HardState, HardStateStore};
use crate::identity::ClusterVoterIdentity;
use crate::io::{Access, LockMode, OsStorage, Storage};
use crate::log::{LatchedStorage, SegmentedLog};
use crate::node_role::Role;
use crate::options::Options;

use super::unapplied::UnappliedEntries;
use super::{compaction, ControlPlaneNode};
#[cfg(doc)]
use super::{DurableControlPlane, ReplicaControlPlane};

/// Whether a call makes a new node or opens the one a directory holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Opening {
    /// A new node: refused where one exists ([`Error::NodeExists`]).
    Create,
    /// An existing node: refused where there is none ([`Error::NoNode`]).
    Open,
}

/// Validates `options` before touching the disk, then exclusively locks
/// `directory`: creating it if missing when a node is to be created; a
/// missing directory to open is [`Error::NoNode`] and is not created.
fn lock_directory(
    directory: impl AsRef<Path>,
    options: &Options,
    opening: Opening,
) -> Result<OsStorage> {
    options.validate()?;
    let directory = directory.as_ref();
    if directory.symlink_metadata().is_err() {
        if opening == Opening::Open {
            return Err(Error::NoNode {
                path: directory.to_path_buf(),
            });
        }
    } else {
        // Refuse what can be refused before the lock file is made, so a
        // refusal leaves the directory as it was. Under the lock the same
        // check runs again and decides.
        let looking = OsStorage::open(directory, LockMode::Shared)?;
        refuse_opening(&looking, &Survey::of(&looking, Layout::Node)?, opening)?;
    }
    OsStorage::open(directory, LockMode::Exclusive)
}

impl<R: Role> ControlPlaneNode<R, OsStorage> {
    /// Creates a new node of this role in `directory` (created if missing)
    /// as node `identity`: a sole voter ([`DurableControlPlane::create`]) as
    /// leader of term 1 with its own vote, a replica
    /// ([`ReplicaControlPlane::create`]) at term 0 with no vote. Refused
    /// where a node exists ([`Error::NodeExists`]: open it instead) or the
    /// directory holds files cpwal did not write
    /// ([`Error::DirectoryNotEmpty`]). A creation that fails once the hard
    /// state is durable (say its first segment found no space) leaves the
    /// node: a retry gets [`Error::NodeExists`], and opening it completes it.
    pub fn create(
        directory: impl AsRef<Path>,
        identity: ClusterVoterIdentity,
        options: Options,
    ) -> Result<Self> {
        let storage = lock_directory(directory, &options, Opening::Create)?;
        Self::create_with_storage(storage, identity, options)
    }

    /// Opens the node of this role `directory` holds as node `identity`,
    /// locking it exclusively and recovering from any crash. A missing
    /// directory, or one holding no node, is [`Error::NoNode`]: opening
    /// never creates a node (see [`ControlPlaneNode::create`]); a directory
    /// created in the other role is [`Error::RoleMismatch`].
    pub fn open(
        directory: impl AsRef<Path>,
        identity: ClusterVoterIdentity,
        options: Options,
    ) -> Result<Self> {
        let storage = lock_directory(directory, &options, Opening::Open)?;
        Self::open_with_storage(storage, identity, options)
    }
}

impl<R: Role, S: Storage> ControlPlaneNode<R, S> {
    /// Creates a node of this role over any [`Storage`] (a simulated disk
    /// in tests); see [`ControlPlaneNode::create`].
    pub fn create_with_storage(
        storage: S,
        identity: ClusterVoterIdentity,
        options: Options,
    ) -> Result<Self> {
        Self::open_as(storage, identity, options, Opening::Create)
    }

    /// Opens a node of this role over any [`Storage`]; see
    /// [`ControlPlaneNode::open`].
    pub fn open_with_storage(
        storage: S,
        identity: ClusterVoterIdentity,
        options: Options,
    ) -> Result<Self> {
        Self::open_as(storage, identity, options, Opening::Open)
    }

    /// Creates or opens (as `opening` says) a node of role `R` over
    /// `storage`, recovering from any crash and applying every committed
    /// entry to the catalog.
    fn open_as(
        storage: S,
        identity: ClusterVoterIdentity,
        options: Options,
        opening: Opening,
    ) -> Result<Self> {
        options.validate()?;
        let storage = Arc::new(LatchedStorage::new(storage));
        let (mut hard_state_store, mut hard_state) =
            open_or_create_hard_state::<R, _>(&*storage, &identity, opening)?;
        let (mut log, mut recovery) = SegmentedLog::open(
            Arc::clone(&storage),
            &hard_state,
            options.segment_size_bytes,
            Access::Writable,
            |_payload| Ok(()), // Decoded once, when applied (`apply_committed_at_open`) or read.
        )?;
        log.group_commit()
            .set_second_sync_after(options.second_sync_after);
        let (catalog, snapshot_end) = compaction::load_snapshot(
            &mut log,
            &mut hard_state_store,
            &mut hard_state,
            &mut recovery.removed_files,
        )?;
        let commit_end = log.recovered_commit_end().max(snapshot_end);
        let mut node = Self {
            leader: None,
            identity,
            hard_state_store,
            hard_state,
            log,
            commit_end,
            last_append_error: None,
            recovery,
            encode_buffer: Vec::new(),
            role: PhantomData,
            catalog,
            entry_spans: Vec::new(),
            single_outcome: Vec::new(),
            unapplied: UnappliedEntries::default(),
            outcomes: Default::default(),
            applied_ahead: Default::default(),
        };
        node.lead_if_own_vote_is_majority();
        node.apply_committed_at_open()?;
        Ok(node)
    }
}

/// The hard state of a new node of role `R`: a node whose own vote is a
/// majority starts as leader of term 1 with its own vote; a replica at
/// term 0 with no vote.
fn initial_hard_state<R: Role>(identity: &ClusterVoterIdentity) -> HardState {
    let blank = HardState::new(identity.clone(), R::NODE_ROLE);
    if R::OWN_VOTE_IS_MAJORITY {
        HardState {
            term: ControlPlaneTerm::GENESIS.next().0,
            vote: Some(identity.clone()),
            ..blank
        }
    } else {
        blank
    }
}

/// A replica's hard state for the openraft log store, which keeps its
/// open-or-create lifecycle: the node the directory holds, or a new one
/// where it holds none (with [`open_or_create_hard_state`]'s checks).
#[cfg(feature = "openraft")]
pub(crate) fn open_or_create_replica_hard_state<S: Storage>(
    storage: &S,
    identity: &ClusterVoterIdentity,
) -> Result<(HardStateStore<S::File>, HardState)> {
    match open_or_create_hard_state::<crate::node_role::Replica, _>(
        storage,
        identity,
        Opening::Open,
    ) {
        Err(Error::NoNode { .. }) => open_or_create_hard_state::<crate::node_role::Replica, _>(
            storage,
            identity,
            Opening::Create,
        ),
        opened => opened,
    }
}

/// Creates the hard state of a new node of role `R`, or opens an existing
/// node's and checks it is the node and role asked for.
fn open_or_create_hard_state<R: Role, S: Storage>(
    storage: &S,
    identity: &ClusterVoterIdentity,
    opening: Opening,
) -> Result<(HardStateStore<S::File>, HardState)> {
    let survey = Survey::of(storage, Layout::Node)?;
    refuse_opening(storage, &survey, opening)?;
    if opening == Opening::Create {
        let state = initial_hard_state::<R>(identity);
        let store = HardStateStore::create(storage, &state)?;
        return Ok((store, state));
    }
    let (store, state) = HardStateStore::open(storage, Access::Writable)?;
    if state.node != *identity {
        return Err(Error::IdentityMismatch {
            stored: state.node,
            requested: identity.clone(),
        });
    }
    if state.role != R::NODE_ROLE {
        return Err(Error::RoleMismatch {
            stored: state.role,
            requested: R::NODE_ROLE,
        });
    }
    Ok((store, state))
}

/// Refuses `opening` a directory whose `survey` says it cannot be done: a
/// creation where a node exists ([`Error::NodeExists`]) or where the
/// directory holds files cpwal did not write or lost its hard state; an
/// open where no node is ([`Error::NoNode`]) or the hard state was lost.
fn refuse_opening<S: Storage>(storage: &S, survey: &Survey, opening: Opening) -> Result<()> {
    match (opening, survey.hard_state) {
        (Opening::Create, true) => Err(Error::NodeExists {
            path: crate::directory::directory_path(storage),
        }),
        (Opening::Create, false) => refuse_uninitialized_leftovers(storage, survey),
        (Opening::Open, false) => {
            refuse_lost_hard_state(storage, survey)?;
            Err(Error::NoNode {
                path: crate::directory::directory_path(storage),
            })
        }
        (Opening::Open, true) => Ok(()),
    }
}

/// A directory without a hard state is new only if it holds nothing but
/// leftovers of an interrupted creation (cpwal's temporary files) and
/// `lost+found`. Segments or snapshots without a hard state mean the hard
/// state was lost: starting afresh would forget votes, so it is corruption.
/// Foreign files mean it is probably not the directory meant:
/// [`Error::DirectoryNotEmpty`].
fn refuse_uninitialized_leftovers<S: Storage>(storage: &S, survey: &Survey) -> Result<()> {
    refuse_lost_hard_state(storage, survey)?;
    if !survey.foreign.is_empty() {
        return Err(Error::DirectoryNotEmpty {
            path: crate::directory::directory_path(storage),
            foreign: survey.foreign.clone(),
        });
    }
    Ok(())
}

/// Segments or snapshots without a hard state: the hard state was lost, and
/// a node that starts afresh would forget its votes, so it is corruption
/// (for `create` and `open` alike), never "no node".
fn refuse_lost_hard_state<S: Storage>(storage: &S, survey: &Survey) -> Result<()> {
    if survey.segments.is_empty() && survey.snapshots.is_empty() {
        return Ok(());
    }
    Err(Error::corruption(
        storage.path_of(crate::format::HARD_STATE_FILE_NAME),
        0,
        None,
        CorruptionKind::HardStateUnreadable,
    ))
}
