//! How a [`ClusterVoterIdentity`] becomes an openraft node id, and back.
//!
//! openraft names nodes by a `Copy` integer; cpwal names them by certificate
//! identity. The mapping has two halves:
//!
//! * **identity → id** is a pure function, [`node_id_of`]: the 64-bit
//!   FNV-1a hash of the identity's UTF-8 text (offset basis
//!   `0xcbf2_9ce4_8422_2325`, prime `0x0000_0100_0000_01b3`). It depends on
//!   nothing but the text, so every node, every restart and every build
//!   computes the same id for the same identity.
//! * **id → identity** is a lookup in a [`NodeRegistry`]: the identities of
//!   the cluster's members, given by configuration and extended with every
//!   membership entry the node stores or applies. The hard state keeps the
//!   vote as an identity (its format predates openraft), so saving a vote for
//!   an id no registry entry names is refused rather than guessed.
//!
//! Collisions: two identities hashing to one id would make a vote ambiguous,
//! so a registry refuses to bind an id that is already bound to another
//! identity (and an identity already bound to another id) with
//! [`RegistryConflict`]. With 64-bit ids the chance of a collision among
//! *n* members is about n²/2⁶⁵ (below 10⁻¹⁵ for a thousand members); if it
//! ever happens, it is caught when the member is configured, never on disk.
//! [`NodeRegistry::bind`] also accepts explicitly chosen ids for callers
//! (such as openraft's storage suite) that pick their own.

use std::collections::BTreeMap;
use std::sync::{Arc, RwLock};

use crate::identity::ClusterVoterIdentity;

/// openraft's node id type for cpwal clusters.
pub type NodeId = u64;

const FNV_OFFSET_BASIS: u64 = 0xcbf2_9ce4_8422_2325;
const FNV_PRIME: u64 = 0x0000_0100_0000_01b3;

/// The stable node id of `identity`: FNV-1a 64 of its text.
pub fn node_id_of(identity: &ClusterVoterIdentity) -> NodeId {
    identity
        .as_str()
        .bytes()
        .fold(FNV_OFFSET_BASIS, |hash, byte| {
            (hash ^ u64::from(byte)).wrapping_mul(FNV_PRIME)
        })
}

/// Why a binding was refused: it would give an id two identities or an
/// identity two ids.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RegistryConflict {
    /// The id asked for.
    pub node_id: NodeId,
    /// The identity asked for.
    pub identity: ClusterVoterIdentity,
    /// The identity already bound to `node_id`, or the id already bound to
    /// `identity`, whichever conflicts.
    pub existing: (NodeId, ClusterVoterIdentity),
}

impl std::fmt::Display for RegistryConflict {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "cannot bind node id {} to {}: {} is already bound to {}",
            self.node_id, self.identity, self.existing.0, self.existing.1
        )
    }
}

impl std::error::Error for RegistryConflict {}

/// A shared, bijective map between node ids and identities. Bindings are
/// only ever added; cloning shares the same map.
#[derive(Debug, Clone, Default)]
pub struct NodeRegistry {
    inner: Arc<RwLock<Bindings>>,
}

#[derive(Debug, Default)]
struct Bindings {
    by_id: BTreeMap<NodeId, ClusterVoterIdentity>,
    by_identity: BTreeMap<ClusterVoterIdentity, NodeId>,
}

impl NodeRegistry {
    /// A registry holding each identity under its [`node_id_of`].
    pub fn with_members<'a>(
        members: impl IntoIterator<Item = &'a ClusterVoterIdentity>,
    ) -> Result<Self, RegistryConflict> {
        let registry = Self::default();
        for identity in members {
            registry.register(identity)?;
        }
        Ok(registry)
    }

    /// Binds `identity` to its stable id [`node_id_of`] and returns the id.
    pub fn register(&self, identity: &ClusterVoterIdentity) -> Result<NodeId, RegistryConflict> {
        let node_id = node_id_of(identity);
        self.bind(node_id, identity)?;
        Ok(node_id)
    }

    /// Binds `node_id` to `identity`. Binding a pair again is a no-op; a
    /// binding that would break the bijection is refused.
    pub fn bind(
        &self,
        node_id: NodeId,
        identity: &ClusterVoterIdentity,
    ) -> Result<(), RegistryConflict> {
        let mut bindings = self.inner.write().unwrap_or_else(|e| e.into_inner());
        let conflict = |existing| RegistryConflict {
            node_id,
            identity: identity.clone(),
            existing,
        };
        if let Some(bound) = bindings.by_id.get(&node_id) {
            if bound != identity {
                return Err(conflict((node_id, bound.clone())));
            }
        }
        if let Some(&bound) = bindings.by_identity.get(identity) {
            if bound != node_id {
                return Err(conflict((bound, identity.clone())));
            }
        }
        bindings.by_id.insert(node_id, identity.clone());
        bindings.by_identity.insert(identity.clone(), node_id);
        Ok(())
    }

    /// The identity bound to `node_id`.
    pub fn identity_of(&self, node_id: NodeId) -> Option<ClusterVoterIdentity> {
        let bindings = self.inner.read().unwrap_or_else(|e| e.into_inner());
        bindings.by_id.get(&node_id).cloned()
    }

    /// The id bound to `identity`.
    pub fn node_id_bound_to(&self, identity: &ClusterVoterIdentity) -> Option<NodeId> {
        let bindings = self.inner.read().unwrap_or_else(|e| e.into_inner());
        bindings.by_identity.get(identity).copied()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn id(text: &str) -> ClusterVoterIdentity {
        ClusterVoterIdentity::from_certificate_subject(text).unwrap()
    }

    #[test]
    fn node_id_of_is_fnv1a_of_the_text() {
        // Goal: the mapping is the documented pure function, so it is stable
        // across builds. Method: compare with FNV-1a 64 reference values.
        assert_eq!(node_id_of(&id("a")), 0xaf63_dc4c_8601_ec8c);
        assert_eq!(node_id_of(&id("foobar")), 0x8594_4171_f739_67e8);
        assert_ne!(node_id_of(&id("CN=node-a")), node_id_of(&id("CN=node-b")));
    }

    #[test]
    fn bind_refuses_a_second_identity_for_an_id() {
        // Goal: a collision is refused, never silently merged. Method: bind
        // an id explicitly, then try to bind it (and the identity) again.
        let registry = NodeRegistry::default();
        registry.bind(7, &id("CN=a")).unwrap();
        registry.bind(7, &id("CN=a")).unwrap();
        let clash = registry.bind(7, &id("CN=b")).unwrap_err();
        assert_eq!(clash.existing, (7, id("CN=a")));
        let clash = registry.bind(8, &id("CN=a")).unwrap_err();
        assert_eq!(clash.existing, (7, id("CN=a")));
        assert_eq!(registry.identity_of(7), Some(id("CN=a")));
        assert_eq!(registry.identity_of(8), None);
        assert_eq!(registry.node_id_bound_to(&id("CN=a")), Some(7));
    }

    #[test]
    fn with_members_registers_stable_ids() {
        // Goal: the configured members are found under their stable ids.
        // Method: build a registry and look each identity up both ways.
        let members = [id("CN=a"), id("CN=b")];
        let registry = NodeRegistry::with_members(&members).unwrap();
        for member in &members {
            let node_id = node_id_of(member);
            assert_eq!(registry.identity_of(node_id).as_ref(), Some(member));
            assert_eq!(registry.node_id_bound_to(member), Some(node_id));
        }
    }
}
