//! The payload of an openraft log entry in a cpwal record: a versioned,
//! bounded envelope around [`crate::codec`]. The byte layout is specified
//! in [`crate::format`] ("openraft entry envelope"); the log id is not in
//! the envelope — the record's term and position already are `(term,
//! index)`.

use std::collections::{BTreeMap, BTreeSet};

use openraft::EntryPayload;

use crate::codec::{decode_entry, decode_identity, encode_entry, validate_entry, DecodeError};
use crate::error::InvalidInput;
use crate::identity::MAX_IDENTITY_BYTES;
use crate::raft::node_id::NodeId;
use crate::raft::types::{ClusterNode, CpwalMembership, CpwalRaftConfig, MAX_ADDRESS_BYTES};
use crate::text::first_control_character;

/// The envelope version this build writes and reads.
pub const ENVELOPE_VERSION: u8 = 1;

/// The most nodes (voters and learners) a membership entry may name.
pub const MAX_MEMBERSHIP_NODES: usize = 64;

/// The most configurations in a membership: two during a joint change.
pub const MAX_JOINT_CONFIGS: usize = 2;

/// The largest envelope: a joint membership of two configurations of
/// [`MAX_MEMBERSHIP_NODES`] voters each, and as many nodes, each with a
/// 255-byte identity and a 255-byte address (a control-plane entry, at most
/// [`crate::codec::MAX_ENTRY_BYTES`] plus two, is smaller).
pub const MAX_ENVELOPE_BYTES: usize = 2
    + 1
    + MAX_JOINT_CONFIGS * (2 + 8 * MAX_MEMBERSHIP_NODES)
    + 2
    + MAX_MEMBERSHIP_NODES * (8 + 1 + MAX_IDENTITY_BYTES + 1 + MAX_ADDRESS_BYTES);

/// The longest run of zero bytes an envelope can hold: the zero high byte
/// of the node count, a node id 0, its empty identity and address lengths,
/// then the seven zero low bytes of the next id (2^56); two ids are never
/// both zero, and text holds no NUL.
pub const MAX_ENVELOPE_ZERO_RUN_BYTES: usize = 1 + 8 + 1 + 1 + 7;

// An envelope is a record payload: it must fit the record framing and keep
// the torn-write rule (see `crate::format`).
const _: () = assert!(MAX_ENVELOPE_BYTES <= crate::format::MAX_RECORD_PAYLOAD_BYTES);
const _: () = assert!(2 + crate::codec::MAX_ENTRY_BYTES <= MAX_ENVELOPE_BYTES);
const _: () = assert!(MAX_ENVELOPE_ZERO_RUN_BYTES <= crate::format::MAX_PAYLOAD_ZERO_RUN_BYTES);

const KIND_BLANK: u8 = 1;
const KIND_NORMAL: u8 = 2;
const KIND_MEMBERSHIP: u8 = 3;

/// Refuses what the envelope cannot carry: an invalid control-plane entry,
/// a membership with too many nodes or configurations, or a bad address.
pub fn validate_payload(payload: &EntryPayload<CpwalRaftConfig>) -> Result<(), InvalidInput> {
    match payload {
        EntryPayload::Blank => Ok(()),
        EntryPayload::Normal(entry) => validate_entry(entry),
        EntryPayload::Membership(membership) => validate_membership(membership),
    }
}

/// Refuses a membership the envelope cannot carry.
pub fn validate_membership(membership: &CpwalMembership) -> Result<(), InvalidInput> {
    let configs = membership.get_joint_config();
    let too_many_configs = configs.is_empty() || configs.len() > MAX_JOINT_CONFIGS;
    let too_many_voters = configs.iter().any(|c| c.len() > MAX_MEMBERSHIP_NODES);
    if too_many_configs || too_many_voters || membership.nodes().count() > MAX_MEMBERSHIP_NODES {
        return Err(InvalidInput::Option {
            name: "membership",
            reason: "at most 2 configurations and 64 nodes",
        });
    }
    if membership
        .nodes()
        .any(|(_, node)| !is_valid_address(&node.address))
    {
        return Err(InvalidInput::Option {
            name: "node address",
            reason: "at most 255 bytes without control characters",
        });
    }
    Ok(())
}

fn is_valid_address(address: &str) -> bool {
    address.len() <= MAX_ADDRESS_BYTES && first_control_character(address).is_none()
}

/// Appends the envelope of `payload` (which passed [`validate_payload`]).
pub fn encode_payload(payload: &EntryPayload<CpwalRaftConfig>, out: &mut Vec<u8>) {
    out.push(ENVELOPE_VERSION);
    match payload {
        EntryPayload::Blank => out.push(KIND_BLANK),
        EntryPayload::Normal(entry) => {
            out.push(KIND_NORMAL);
            encode_entry(entry, out);
        }
        EntryPayload::Membership(membership) => {
            out.push(KIND_MEMBERSHIP);
            encode_membership(membership, out);
        }
    }
}

/// Appends the encoding of `membership` (which passed
/// [`validate_membership`]).
pub fn encode_membership(membership: &CpwalMembership, out: &mut Vec<u8>) {
    let configs = membership.get_joint_config();
    out.push(configs.len() as u8);
    for config in configs {
        out.extend_from_slice(&(config.len() as u16).to_le_bytes());
        for node_id in config {
            out.extend_from_slice(&node_id.to_le_bytes());
        }
    }
    let nodes: Vec<_> = membership.nodes().collect();
    out.extend_from_slice(&(nodes.len() as u16).to_le_bytes());
    for (node_id, node) in nodes {
        out.extend_from_slice(&node_id.to_le_bytes());
        let identity = node.identity.as_ref().map_or("", |i| i.as_str());
        out.push(identity.len() as u8);
        out.extend_from_slice(identity.as_bytes());
        out.push(node.address.len() as u8);
        out.extend_from_slice(node.address.as_bytes());
    }
}

/// Decodes an envelope that must fill `bytes` exactly.
pub fn decode_payload(bytes: &[u8]) -> Result<EntryPayload<CpwalRaftConfig>, DecodeError> {
    let mut reader = Reader { bytes };
    let version = reader.u8()?;
    if version != ENVELOPE_VERSION {
        return Err(DecodeError::UnknownVersion(version));
    }
    let payload = match reader.u8()? {
        KIND_BLANK => EntryPayload::Blank,
        KIND_NORMAL => return decode_entry(reader.bytes).map(EntryPayload::Normal),
        KIND_MEMBERSHIP => EntryPayload::Membership(reader.membership()?),
        kind => return Err(DecodeError::UnknownTag(kind)),
    };
    reader.finish()?;
    Ok(payload)
}

/// Decodes a membership that must fill `bytes` exactly.
pub fn decode_membership(bytes: &[u8]) -> Result<CpwalMembership, DecodeError> {
    let mut reader = Reader { bytes };
    let membership = reader.membership()?;
    reader.finish()?;
    Ok(membership)
}

/// A cursor that refuses to read past its input.
pub(crate) struct Reader<'a> {
    pub(crate) bytes: &'a [u8],
}

impl<'a> Reader<'a> {
    pub(crate) fn take(&mut self, count: usize) -> Result<&'a [u8], DecodeError> {
        if self.bytes.len() < count {
            return Err(DecodeError::Truncated);
        }
        let (head, rest) = self.bytes.split_at(count);
        self.bytes = rest;
        Ok(head)
    }

    pub(crate) fn u8(&mut self) -> Result<u8, DecodeError> {
        Ok(self.take(1)?[0])
    }

    pub(crate) fn u16(&mut self) -> Result<u16, DecodeError> {
        Ok(u16::from_le_bytes(
            self.take(2)?.try_into().expect("took 2"),
        ))
    }

    pub(crate) fn u32(&mut self) -> Result<u32, DecodeError> {
        Ok(u32::from_le_bytes(
            self.take(4)?.try_into().expect("took 4"),
        ))
    }

    pub(crate) fn u64(&mut self) -> Result<u64, DecodeError> {
        Ok(u64::from_le_bytes(
            self.take(8)?.try_into().expect("took 8"),
        ))
    }

    pub(crate) fn finish(&self) -> Result<(), DecodeError> {
        match self.bytes.len() {
            0 => Ok(()),
            n => Err(DecodeError::TrailingBytes(n)),
        }
    }

    fn count(&mut self, field: &'static str, limit: usize) -> Result<usize, DecodeError> {
        let count = self.u16()? as usize;
        if count > limit {
            return Err(DecodeError::Malformed(field));
        }
        Ok(count)
    }

    pub(crate) fn membership(&mut self) -> Result<CpwalMembership, DecodeError> {
        let config_count = self.u8()? as usize;
        if config_count == 0 || config_count > MAX_JOINT_CONFIGS {
            return Err(DecodeError::Malformed("membership configuration count"));
        }
        let mut configs = Vec::with_capacity(config_count);
        for _ in 0..config_count {
            let voters = self.count("membership voter count", MAX_MEMBERSHIP_NODES)?;
            let mut config = BTreeSet::new();
            for _ in 0..voters {
                config.insert(self.u64()?);
            }
            configs.push(config);
        }
        let node_count = self.count("membership node count", MAX_MEMBERSHIP_NODES)?;
        let mut nodes = BTreeMap::new();
        for _ in 0..node_count {
            let (node_id, node) = self.node()?;
            nodes.insert(node_id, node);
        }
        let all_voters_known = configs.iter().flatten().all(|id| nodes.contains_key(id));
        if nodes.len() != node_count || !all_voters_known {
            return Err(DecodeError::Malformed("membership node list"));
        }
        Ok(CpwalMembership::new(configs, nodes))
    }

    fn node(&mut self) -> Result<(NodeId, ClusterNode), DecodeError> {
        let node_id = self.u64()?;
        let identity_bytes = self.u8()? as usize;
        let identity = match identity_bytes {
            0 => None,
            n => Some(decode_identity(self.take(n)?)?),
        };
        let address_bytes = self.u8()? as usize;
        let address =
            std::str::from_utf8(self.take(address_bytes)?).map_err(|_| DecodeError::NotUtf8)?;
        if !is_valid_address(address) {
            return Err(DecodeError::Malformed("node address"));
        }
        let node = ClusterNode {
            identity,
            address: address.to_owned(),
        };
        Ok((node_id, node))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::codec::longest_zero_run;
    use crate::consensus::{ControlPlaneEntry, MembershipChange};
    use crate::identity::ClusterVoterIdentity;

    fn id(text: &str) -> ClusterVoterIdentity {
        ClusterVoterIdentity::from_certificate_subject(text).unwrap()
    }

    fn joint_membership() -> CpwalMembership {
        let nodes: BTreeMap<NodeId, ClusterNode> = [
            (0, ClusterNode::default()),
            (256, ClusterNode::new(id("CN=b"), "127.0.0.1:7002")),
            (u64::MAX, ClusterNode::new(id("CN=c"), "")),
            (512, ClusterNode::default()),
        ]
        .into_iter()
        .collect();
        let configs = vec![[0, 256].into(), [256, u64::MAX].into()];
        CpwalMembership::new(configs, nodes)
    }

    #[test]
    fn decode_payload_round_trips_every_kind() {
        // Goal: each payload kind survives the envelope unchanged, within
        // the documented zero-run bound. Method: encode, check, decode.
        let payloads = [
            EntryPayload::<CpwalRaftConfig>::Blank,
            EntryPayload::Normal(ControlPlaneEntry::MembershipChange(
                MembershipChange::Admit(id("CN=a")),
            )),
            EntryPayload::Membership(joint_membership()),
        ];
        for payload in payloads {
            validate_payload(&payload).unwrap();
            let mut bytes = Vec::new();
            encode_payload(&payload, &mut bytes);
            assert!(
                longest_zero_run(&bytes) <= MAX_ENVELOPE_ZERO_RUN_BYTES,
                "{bytes:?}"
            );
            assert_eq!(decode_payload(&bytes).unwrap(), payload);
            for cut in 0..bytes.len() {
                assert!(decode_payload(&bytes[..cut]).is_err());
            }
        }
    }

    #[test]
    fn encode_payload_bounds_hold_at_their_extremes() {
        // Goal: `MAX_ENVELOPE_BYTES` and `MAX_ENVELOPE_ZERO_RUN_BYTES` are
        // reached, not just upper bounds on a guess. Method: encode the
        // largest membership the envelope accepts (two configurations of 64
        // voters, 64 nodes with 255-byte identities and addresses), and the
        // membership built for the longest zero run (node count 2, node 0
        // with empty identity and address, then node 2^56); check both
        // round-trip and measure them.
        let wide = |n: u64| {
            let prefix = format!("CN={n},O=");
            let subject = format!("{prefix}{}", "x".repeat(MAX_IDENTITY_BYTES - prefix.len()));
            let address = format!("{n:0>width$}", width = MAX_ADDRESS_BYTES);
            ClusterNode::new(id(&subject), address)
        };
        let nodes: BTreeMap<NodeId, ClusterNode> = (1..=64).map(|n| (n, wide(n))).collect();
        let configs: Vec<BTreeSet<NodeId>> = vec![(1..=64).collect(), (1..=64).collect()];
        let largest = EntryPayload::Membership(CpwalMembership::new(configs, nodes));
        let zeros: BTreeMap<NodeId, ClusterNode> = [
            (0, ClusterNode::default()),
            (1 << 56, ClusterNode::default()),
        ]
        .into();
        let zeros = CpwalMembership::new(vec![[0].into()], zeros);
        let zeros = EntryPayload::Membership(zeros);
        let mut bytes = Vec::new();
        for (payload, length, zero_run) in [
            (largest, Some(MAX_ENVELOPE_BYTES), None),
            (zeros, None, Some(MAX_ENVELOPE_ZERO_RUN_BYTES)),
        ] {
            validate_payload(&payload).unwrap();
            bytes.clear();
            encode_payload(&payload, &mut bytes);
            assert_eq!(decode_payload(&bytes).unwrap(), payload);
            assert!(length.is_none_or(|l| bytes.len() == l), "{}", bytes.len());
            let run = longest_zero_run(&bytes);
            assert!(zero_run.is_none_or(|z| run == z), "{run}");
        }
    }

    #[test]
    fn decode_payload_rejects_bad_envelopes() {
        // Goal: every field read from disk is re-checked. Method: corrupt
        // the version, kind, counts and trailing bytes in turn.
        assert_eq!(
            decode_payload(&[2, KIND_BLANK]),
            Err(DecodeError::UnknownVersion(2))
        );
        assert_eq!(decode_payload(&[1, 9]), Err(DecodeError::UnknownTag(9)));
        assert_eq!(
            decode_payload(&[1, KIND_BLANK, 0]),
            Err(DecodeError::TrailingBytes(1))
        );
        assert_eq!(
            decode_payload(&[1, KIND_MEMBERSHIP, 3]),
            Err(DecodeError::Malformed("membership configuration count"))
        );
        assert_eq!(
            decode_payload(&[1, KIND_MEMBERSHIP, 1, 65, 0]),
            Err(DecodeError::Malformed("membership voter count"))
        );
        // One voter, id 5, but an empty node list.
        let mut bytes = vec![1, KIND_MEMBERSHIP, 1, 1, 0];
        bytes.extend_from_slice(&5u64.to_le_bytes());
        bytes.extend_from_slice(&[0, 0]);
        assert_eq!(
            decode_payload(&bytes),
            Err(DecodeError::Malformed("membership node list"))
        );
    }
}
