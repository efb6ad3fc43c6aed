//! [`CpwalStateMachine`]: openraft's [`RaftStateMachine`] over the
//! control-plane [catalog](crate::ControlPlaneCatalog), with snapshots kept
//! durably in the node's `snapshot/` directory.
//!
//! The applied state lives in memory; what survives a restart is the last
//! snapshot plus the log. On reopen the machine is the snapshot's state and
//! openraft re-applies the committed entries after it (it reads the commit
//! point with `read_committed`). openraft only purges entries a durable
//! snapshot covers, so the entries to re-apply are always still in the log.

use std::io::Cursor;
use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};

use openraft::storage::{RaftStateMachine, Snapshot};
use openraft::{EntryPayload, RaftSnapshotBuilder, SnapshotMeta, StorageIOError, StoredMembership};

use crate::catalog::{ApplyOutcome, ControlPlaneCatalog};
use crate::error::{Error, Result};
use crate::io::{LockMode, OsStorage, Storage};
use crate::log::LatchedStorage;
use crate::raft::log_store::{register_membership, storage_error};
use crate::raft::node_id::{NodeId, NodeRegistry};
use crate::raft::snapshot_file::{
    decode_snapshot, encode_snapshot, read_snapshot_file, write_snapshot_file, SnapshotContent,
    SnapshotFault,
};
use crate::raft::types::{ClusterNode, CpwalEntry, CpwalLogId, CpwalRaftConfig, CpwalStorageError};

#[derive(Debug)]
struct Applied {
    catalog: ControlPlaneCatalog,
    last_applied: Option<CpwalLogId>,
    membership: StoredMembership<NodeId, ClusterNode>,
    /// The durable snapshot: its content's metadata and file bytes.
    snapshot: Option<(SnapshotMeta<NodeId, ClusterNode>, Vec<u8>)>,
}

/// The state-machine half of a cpwal openraft node, over any [`Storage`]
/// (the real file system by default; a simulated disk in tests). Clones
/// share the machine.
#[derive(Debug)]
pub struct CpwalStateMachine<S: Storage = OsStorage> {
    applied: Arc<Mutex<Applied>>,
    storage: Arc<LatchedStorage<S>>,
    registry: NodeRegistry,
    builds: Arc<AtomicU64>,
}

impl<S: Storage> Clone for CpwalStateMachine<S> {
    fn clone(&self) -> Self {
        Self {
            applied: Arc::clone(&self.applied),
            storage: Arc::clone(&self.storage),
            registry: self.registry.clone(),
            builds: Arc::clone(&self.builds),
        }
    }
}

fn meta_of(content: &SnapshotContent) -> SnapshotMeta<NodeId, ClusterNode> {
    SnapshotMeta {
        last_log_id: content.last_applied,
        last_membership: content.membership.clone(),
        snapshot_id: content.snapshot_id.clone(),
    }
}

impl CpwalStateMachine<OsStorage> {
    /// Opens (creating it durably if needed, with any missing parent) the
    /// snapshot directory `directory` and restores the last durable
    /// snapshot, if any.
    pub fn open(directory: impl AsRef<Path>, registry: NodeRegistry) -> Result<Self> {
        let storage = OsStorage::open(directory, LockMode::Exclusive)?;
        Self::open_with_storage(storage, registry)
    }
}

impl<S: Storage> CpwalStateMachine<S> {
    /// Opens the snapshot directory `storage` (for a node on a simulated
    /// disk, the node's storage's [`Storage::open_subdirectory`] of
    /// [`SNAPSHOT_DIRECTORY`](crate::raft::SNAPSHOT_DIRECTORY)), as
    /// [`CpwalStateMachine::open`] does.
    pub fn open_with_storage(storage: S, registry: NodeRegistry) -> Result<Self> {
        let storage = Arc::new(LatchedStorage::new(storage));
        let mut applied = Applied {
            catalog: ControlPlaneCatalog::new(),
            last_applied: None,
            membership: StoredMembership::default(),
            snapshot: None,
        };
        // The snapshot this open is about to serve may be visible only in
        // the page cache: a process killed (or a directory sync that failed)
        // right after its rename leaves the new name unsynced. Sync the
        // directory first, so what openraft is told survives a power cut.
        storage
            .sync_directory()
            .map_err(|e| Error::io("fsync directory", storage.path_of(""), e))?;
        if let Some((content, bytes)) = read_snapshot_file(&*storage)? {
            register_membership(&registry, content.membership.membership())?;
            applied.snapshot = Some((meta_of(&content), bytes));
            applied.catalog = content.catalog;
            applied.last_applied = content.last_applied;
            applied.membership = content.membership;
        }
        Ok(Self {
            applied: Arc::new(Mutex::new(applied)),
            storage,
            registry,
            builds: Arc::new(AtomicU64::new(0)),
        })
    }

    fn lock(&self) -> MutexGuard<'_, Applied> {
        self.applied.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// A copy of the catalog as applied so far.
    pub fn catalog(&self) -> ControlPlaneCatalog {
        self.lock().catalog.clone()
    }

    /// The last applied log id.
    pub fn last_applied(&self) -> Option<CpwalLogId> {
        self.lock().last_applied
    }

    /// Applies one entry. Control-plane entries go to the catalog, which
    /// numbers them by its own sequence (`applied_end`: the count of
    /// control-plane entries applied), not by log index, since blank and
    /// membership entries of the replication layer sit between them.
    fn apply_one(&self, applied: &mut Applied, entry: &CpwalEntry) -> Result<Option<ApplyOutcome>> {
        let outcome = match &entry.payload {
            EntryPayload::Blank => None,
            EntryPayload::Normal(command) => {
                let sequence = applied.catalog.applied_end();
                Some(applied.catalog.apply(sequence, command)?)
            }
            EntryPayload::Membership(membership) => {
                register_membership(&self.registry, membership)?;
                applied.membership = StoredMembership::new(Some(entry.log_id), membership.clone());
                None
            }
        };
        applied.last_applied = Some(entry.log_id);
        Ok(outcome)
    }

    /// Makes `content` the durable snapshot and returns it as openraft's.
    fn store_snapshot(
        &self,
        applied: &mut Applied,
        content: &SnapshotContent,
        bytes: Vec<u8>,
    ) -> Result<Snapshot<CpwalRaftConfig>> {
        write_snapshot_file(&*self.storage, &bytes)?;
        let meta = meta_of(content);
        applied.snapshot = Some((meta.clone(), bytes.clone()));
        Ok(Snapshot {
            meta,
            snapshot: Box::new(Cursor::new(bytes)),
        })
    }
}

impl<S: Storage> RaftSnapshotBuilder<CpwalRaftConfig> for CpwalStateMachine<S> {
    async fn build_snapshot(
        &mut self,
    ) -> std::result::Result<Snapshot<CpwalRaftConfig>, CpwalStorageError> {
        let build = self.builds.fetch_add(1, Ordering::Relaxed);
        let machine = self.clone();
        let mut applied = machine.lock();
        let id = applied.last_applied.map_or_else(
            || "empty".to_owned(),
            |l| format!("{}-{}", l.leader_id.term, l.index),
        );
        let content = SnapshotContent {
            last_applied: applied.last_applied,
            membership: applied.membership.clone(),
            snapshot_id: format!("{id}-{build}"),
            catalog: applied.catalog.clone(),
        };
        encode_snapshot(&content)
            .and_then(|bytes| self.store_snapshot(&mut applied, &content, bytes))
            .map_err(|e| storage_error(|a| StorageIOError::write_snapshot(None, a), &e))
    }
}

impl<S: Storage> RaftStateMachine<CpwalRaftConfig> for CpwalStateMachine<S> {
    type SnapshotBuilder = Self;

    async fn applied_state(
        &mut self,
    ) -> std::result::Result<
        (Option<CpwalLogId>, StoredMembership<NodeId, ClusterNode>),
        CpwalStorageError,
    > {
        let applied = self.lock();
        Ok((applied.last_applied, applied.membership.clone()))
    }

    async fn apply<I>(
        &mut self,
        entries: I,
    ) -> std::result::Result<Vec<Option<ApplyOutcome>>, CpwalStorageError>
    where
        I: IntoIterator<Item = CpwalEntry> + Send,
        I::IntoIter: Send,
    {
        let machine = self.clone();
        let mut applied = machine.lock();
        let mut outcomes = Vec::new();
        for entry in entries {
            match self.apply_one(&mut applied, &entry) {
                Ok(outcome) => outcomes.push(outcome),
                Err(e) => {
                    return Err(storage_error(
                        |a| StorageIOError::apply(entry.log_id, a),
                        &e,
                    ))
                }
            }
        }
        Ok(outcomes)
    }

    async fn get_snapshot_builder(&mut self) -> Self::SnapshotBuilder {
        self.clone()
    }

    async fn begin_receiving_snapshot(
        &mut self,
    ) -> std::result::Result<Box<Cursor<Vec<u8>>>, CpwalStorageError> {
        Ok(Box::new(Cursor::new(Vec::new())))
    }

    async fn install_snapshot(
        &mut self,
        meta: &SnapshotMeta<NodeId, ClusterNode>,
        snapshot: Box<Cursor<Vec<u8>>>,
    ) -> std::result::Result<(), CpwalStorageError> {
        let bytes = snapshot.into_inner();
        let refuse = |error: Error| {
            storage_error(
                |a| StorageIOError::read_snapshot(Some(meta.signature()), a),
                &error,
            )
        };
        let content = decode_snapshot(&bytes).map_err(|fault| {
            refuse(match fault {
                SnapshotFault::Corrupt(kind) => {
                    Error::corruption(self.storage.path_of("received snapshot"), 0, None, kind)
                }
                SnapshotFault::Version(found) => Error::UnsupportedVersion {
                    path: self.storage.path_of("received snapshot"),
                    found,
                    supported: crate::raft::snapshot_file::RAFT_SNAPSHOT_FORMAT_VERSION,
                },
                SnapshotFault::Catalog(error) => error,
            })
        })?;
        if meta_of(&content) != *meta {
            let mismatch = Error::InvalidInput(crate::error::InvalidInput::Option {
                name: "snapshot",
                reason: "the received bytes do not match the snapshot metadata",
            });
            return Err(refuse(mismatch));
        }
        register_membership(&self.registry, content.membership.membership()).map_err(refuse)?;
        let machine = self.clone();
        let mut applied = machine.lock();
        self.store_snapshot(&mut applied, &content, bytes)
            .map_err(|e| {
                storage_error(
                    |a| StorageIOError::write_snapshot(Some(meta.signature()), a),
                    &e,
                )
            })?;
        applied.catalog = content.catalog;
        applied.last_applied = content.last_applied;
        applied.membership = content.membership;
        Ok(())
    }

    async fn get_current_snapshot(
        &mut self,
    ) -> std::result::Result<Option<Snapshot<CpwalRaftConfig>>, CpwalStorageError> {
        let applied = self.lock();
        Ok(applied.snapshot.as_ref().map(|(meta, bytes)| Snapshot {
            meta: meta.clone(),
            snapshot: Box::new(Cursor::new(bytes.clone())),
        }))
    }
}
