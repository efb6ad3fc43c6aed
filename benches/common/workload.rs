//! The control-plane workload every bench drives cpwal with: what a control
//! plane sends, not a replay of the same entries.
//!
//! Entry `n` of the sequence (`n` counts from 0 across calls and threads):
//! * every 64th (`n % 64 == 17`) is a membership change: the k-th of them
//!   admits or removes (seven admits, then seven removes, and so on) one of a
//!   pool of seven candidate nodes;
//! * every 256th (`n % 256 == 41`) records the leader of term `n + 1`;
//! * every other one moves a range to a new owner at epoch `n + 1`. The
//!   range is `n + block` scrambled over [`RANGES`], `block` being
//!   `n / RANGES` (a bijection on each block of [`RANGES`] consecutive `n`,
//!   so a block visits each range at most once and in no simple order, and
//!   the slots the other kinds take move on each block, so every range is
//!   visited), and the owner is `(block + range) % 5` of five nodes: each
//!   transition is newer than the range's current epoch and changes its
//!   owner, so the catalog applies it (nothing is fenced).
//!
//! Entries are built per call from the caller's own data (its range table
//! and node identities), as a control plane builds them from its requests:
//! each entry copies its range name and owner into the owned shapes the API
//! takes. Byte-oriented peers get [`Workload::serialize`]: the same fields
//! in the same number of bytes as cpwal's encoding of the entry.
//!
//! Ownership transitions encode to [`TRANSITION_PAYLOAD_BYTES`]; membership
//! changes and leader records are shorter, as they are in a real log. The
//! sizes repeat with a period of [`SIZE_PERIOD`] entries.
//!
//! This file is shared with the peers bench (`benches/peers`), which
//! includes it by path, so both drive the same workload.
#![allow(dead_code)] // Each bench uses a different subset.

use cpwal::{
    ClusterVoterIdentity, ControlPlaneEntry, ControlPlaneTerm, MembershipChange,
    OwnershipTransition,
};

/// How many distinct ranges the transitions move.
pub const RANGES: u64 = 4096;

/// The encoded size of an ownership transition in [`Workload::new`].
pub const TRANSITION_PAYLOAD_BYTES: usize = 128;

/// The sizes of entries repeat with this period.
pub const SIZE_PERIOD: u64 = 256;

/// What the fenced fraction of a realistic run must stay below: the
/// workload is built so that nothing is fenced, and only the reordering of
/// concurrent callers can fence an entry (two transitions of one range,
/// 4096 entries apart, racing each other).
pub const FENCED_FRACTION_LIMIT: f64 = 0.001;

const OWNERS: usize = 5;
const CANDIDATES: usize = 7;
/// Odd, so multiplying by it permutes each block of `RANGES` values.
const SCRAMBLE: u64 = 0x9e37_79b9;

/// What entry `n` is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// Range `range` moves to owner `owner` at epoch `epoch`.
    Transition {
        range: usize,
        owner: usize,
        epoch: u64,
    },
    /// Candidate `node` is admitted (`true`) or removed.
    Membership { node: usize, admit: bool },
    /// `leader` (an owner) leads `term`.
    Leader { term: u64, leader: usize },
}

/// The caller's data: its range table and the identities of its nodes.
pub struct Workload {
    range_names: Vec<String>,
    owners: Vec<ClusterVoterIdentity>,
    candidates: Vec<ClusterVoterIdentity>,
    /// The framed record size of entry `n`, at `n % SIZE_PERIOD`.
    record_sizes: Vec<usize>,
}

impl Default for Workload {
    fn default() -> Self {
        Self::new()
    }
}

impl Workload {
    /// The workload with transitions of [`TRANSITION_PAYLOAD_BYTES`].
    pub fn new() -> Self {
        Self::with_transition_bytes(TRANSITION_PAYLOAD_BYTES)
    }

    /// The workload with transitions that encode to `transition_bytes`
    /// (from 80 to cpwal's entry limit).
    pub fn with_transition_bytes(transition_bytes: usize) -> Self {
        let identity =
            |text: String| ClusterVoterIdentity::from_certificate_subject(&text).unwrap();
        let owners = (0..OWNERS)
            .map(|i| identity(format!("CN=node-{i}.cp.example")))
            .collect();
        let candidates = (0..CANDIDATES)
            .map(|i| identity(format!("CN=cand-{i}.cp.example")))
            .collect();
        let mut workload = Self {
            range_names: Vec::new(),
            owners,
            candidates,
            record_sizes: Vec::new(),
        };
        // A transition's fixed overhead: version, tag, two lengths, owner,
        // epoch; the range name fills the rest.
        let name_bytes = transition_bytes - (2 + 2 + 1 + workload.owners[0].as_str().len() + 8);
        workload.range_names = (0..RANGES).map(|r| range_name(r, name_bytes)).collect();
        workload.record_sizes = (0..SIZE_PERIOD)
            .map(|n| {
                let payload = cpwal::codec::encoded_entry(&workload.entry(n)).len();
                cpwal::format::record_bytes(payload as u64) as usize
            })
            .collect();
        for n in 0..2 * SIZE_PERIOD {
            let mut bytes = Vec::new();
            workload.serialize(n, &mut bytes);
            assert_eq!(
                bytes.len(),
                cpwal::codec::encoded_entry(&workload.entry(n)).len()
            );
        }
        workload
    }

    /// The length of every range name, in bytes.
    pub fn range_name_bytes(&self) -> usize {
        self.range_names[0].len()
    }

    /// Owner `i` (of five).
    pub fn owner(&self, i: usize) -> &ClusterVoterIdentity {
        &self.owners[i % OWNERS]
    }

    /// What entry `n` is.
    pub fn kind(&self, n: u64) -> Kind {
        if n % 64 == 17 {
            let k = n / 64;
            return Kind::Membership {
                node: (k % CANDIDATES as u64) as usize,
                admit: (k / CANDIDATES as u64).is_multiple_of(2),
            };
        }
        if n % SIZE_PERIOD == 41 {
            let leader = ((n / SIZE_PERIOD) % OWNERS as u64) as usize;
            return Kind::Leader {
                term: n + 1,
                leader,
            };
        }
        let block = n / RANGES;
        let range = ((n + block).wrapping_mul(SCRAMBLE) % RANGES) as usize;
        let owner = ((block + range as u64) % OWNERS as u64) as usize;
        Kind::Transition {
            range,
            owner,
            epoch: n + 1,
        }
    }

    /// Entry `n`, built from the caller's data.
    pub fn entry(&self, n: u64) -> ControlPlaneEntry {
        match self.kind(n) {
            Kind::Transition {
                range,
                owner,
                epoch,
            } => ControlPlaneEntry::OwnershipTransition(OwnershipTransition {
                range: self.range_names[range].clone(),
                new_owner: self.owners[owner].clone(),
                ownership_epoch: epoch,
            }),
            Kind::Membership { node, admit } => {
                let node = self.candidates[node].clone();
                ControlPlaneEntry::MembershipChange(if admit {
                    MembershipChange::Admit(node)
                } else {
                    MembershipChange::Remove(node)
                })
            }
            Kind::Leader { term, leader } => ControlPlaneEntry::LeaderConfiguration {
                term: ControlPlaneTerm(term),
                leader: self.owners[leader].clone(),
            },
        }
    }

    /// Fills `out` with entries `first..first + count`.
    pub fn fill(&self, first: u64, count: usize, out: &mut Vec<ControlPlaneEntry>) {
        out.clear();
        out.extend((first..first + count as u64).map(|n| self.entry(n)));
    }

    /// Appends the fields of entry `n` to `out` for a byte-oriented log, as
    /// its caller would serialize them: kind, lengths, text, numbers — as
    /// many bytes as cpwal's encoding of the entry.
    pub fn serialize(&self, n: u64, out: &mut Vec<u8>) {
        let text = |out: &mut Vec<u8>, text: &str| {
            out.push(text.len() as u8);
            out.extend_from_slice(text.as_bytes());
        };
        out.push(1);
        match self.kind(n) {
            Kind::Transition {
                range,
                owner,
                epoch,
            } => {
                let name = &self.range_names[range];
                out.push(3);
                out.extend_from_slice(&(name.len() as u16).to_le_bytes());
                out.extend_from_slice(name.as_bytes());
                text(out, self.owners[owner].as_str());
                out.extend_from_slice(&epoch.to_le_bytes());
            }
            Kind::Membership { node, admit } => {
                out.push(if admit { 1 } else { 2 });
                text(out, self.candidates[node].as_str());
            }
            Kind::Leader { term, leader } => {
                out.push(4);
                out.extend_from_slice(&term.to_le_bytes());
                text(out, self.owners[leader].as_str());
            }
        }
    }

    /// The bytes cpwal writes for entries `first..first + count` (framed
    /// records): what a raw baseline writes for the same call.
    pub fn record_bytes(&self, first: u64, count: usize) -> usize {
        (first..first + count as u64)
            .map(|n| self.record_sizes[(n % SIZE_PERIOD) as usize])
            .sum()
    }

    /// The largest [`Workload::record_bytes`] of `count` consecutive entries.
    pub fn max_record_bytes(&self, count: usize) -> usize {
        (0..SIZE_PERIOD)
            .map(|first| self.record_bytes(first, count))
            .max()
            .unwrap()
    }
}

/// A range name as a control plane names key ranges (tenant, table, the
/// span's bounds), padded to exactly `bytes`; distinct for every `range`
/// below 2^48.
pub fn range_name(range: u64, bytes: usize) -> String {
    let tenant = range % 61;
    let table = ["orders", "line_items", "accounts", "sessions"][(range % 4) as usize];
    let low = range.wrapping_mul(0x0001_0000_0000_0001);
    let high = low.wrapping_add(0xffff_ffff);
    let mut name = format!("tenant-{tenant:03}/{table}/[{low:016x},{high:016x})");
    assert!(name.len() <= bytes, "range names fit {bytes} bytes");
    name.extend(std::iter::repeat_n('~', bytes - name.len()));
    name
}

/// Checks the fraction of `entries` appended entries that the catalog
/// refused (`refused`, its refusal count) and prints it on a `FENCED`
/// line; panics (failing the bench) above [`FENCED_FRACTION_LIMIT`], which
/// would mean the bench measures a replay instead of the workload.
pub fn report_fenced(label: &str, refused: u64, entries: u64) {
    let fraction = refused as f64 / entries.max(1) as f64;
    assert!(
        fraction < FENCED_FRACTION_LIMIT,
        "{label}: {:.2}% of {entries} entries were fenced; the workload must transfer ownership",
        fraction * 100.0
    );
    println!(
        "FENCED {label} | {refused} of {entries} entries fenced = {:.4}%",
        fraction * 100.0
    );
}
