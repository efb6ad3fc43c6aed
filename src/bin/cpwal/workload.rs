//! What the crash-test child does and what the parent expects of it: the
//! node and peer identities, the seeded random source, the deterministic
//! entry for each `(seed, index, term)`, and the line protocol on the pipe.
//!
//! Entries are a pure function of `(seed, index, term)`, so the parent can
//! recompute every byte the child could have written and tell a surviving
//! in-flight entry from an invented one.

use cpwal::{
    ClusterVoterIdentity, ControlPlaneEntry, ControlPlaneTerm, MembershipChange, Options,
    OwnershipTransition,
};

/// The identity the crash-test node opens its directory as.
pub const NODE_SUBJECT: &str = "CN=crash-test-node";
/// Other candidates that ask the node for its vote.
pub const PEER_SUBJECTS: [&str; 3] = ["CN=peer-1", "CN=peer-2", "CN=peer-3"];

/// Small segments, so a run of a few seconds rolls over many times.
pub fn crash_test_options() -> Options {
    Options::default().with_segment_size_bytes(64 * 1024)
}

/// A subject known to be a valid identity (the constants above).
pub fn identity(subject: &str) -> ClusterVoterIdentity {
    ClusterVoterIdentity::from_certificate_subject(subject)
        .expect("the crash-test subjects are valid identities")
}

/// SplitMix64: a tiny seeded generator, plenty for choosing operations and
/// kill moments reproducibly.
#[derive(Debug, Clone)]
pub struct Rng(u64);

impl Rng {
    /// A generator for `seed`, mixed with a `stream` number (e.g. the cycle).
    pub fn new(seed: u64, stream: u64) -> Self {
        let mut rng = Self(seed ^ stream.wrapping_mul(0x9E37_79B9_7F4A_7C15));
        rng.next_u64();
        rng
    }

    /// The next 64 random bits.
    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// A number in `[0, bound)`; `bound` must be positive.
    pub fn below(&mut self, bound: u64) -> u64 {
        self.next_u64() % bound
    }
}

/// The entry the child writes at `index` in `term` for run `seed`.
pub fn expected_entry(seed: u64, index: u64, term: u64) -> ControlPlaneEntry {
    let mut rng = Rng::new(seed, index);
    let owner = identity(PEER_SUBJECTS[rng.below(PEER_SUBJECTS.len() as u64) as usize]);
    match rng.below(8) {
        0 => ControlPlaneEntry::LeaderConfiguration {
            term: ControlPlaneTerm(term),
            leader: identity(NODE_SUBJECT),
        },
        1 => ControlPlaneEntry::MembershipChange(MembershipChange::Admit(owner)),
        2 => ControlPlaneEntry::MembershipChange(MembershipChange::Remove(owner)),
        // One in four ranges is long, so big batches span several pages
        // and a kill can land inside their write.
        kind => ControlPlaneEntry::OwnershipTransition(OwnershipTransition {
            range: format!(
                "range-{seed:x}-{index}-{}{}",
                rng.below(1 << 20),
                if kind == 3 {
                    "~".repeat(900)
                } else {
                    String::new()
                }
            ),
            new_owner: owner,
            ownership_epoch: index + 1,
        }),
    }
}

/// The hard-state operations the child performs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StateOperation {
    /// `start_election`: the next term, voting for itself.
    Election,
    /// `observe_term`: a higher term, no vote.
    Observe,
    /// `grant_vote` for a peer.
    Vote,
}

impl StateOperation {
    /// The call's name.
    pub fn word(self) -> &'static str {
        match self {
            Self::Election => "election",
            Self::Observe => "observe",
            Self::Vote => "vote",
        }
    }

    fn parse(word: &str) -> Option<Self> {
        match word {
            "election" => Some(Self::Election),
            "observe" => Some(Self::Observe),
            "vote" => Some(Self::Vote),
            _ => None,
        }
    }
}

/// One line on the pipe from child to parent. An `Intent*` line is written
/// before the call; an `Ack*` line only after the call returned `Ok`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Message {
    /// The child opened the directory and found this state.
    Opened {
        /// Current term.
        term: u64,
        /// Current vote.
        vote: Option<String>,
        /// One past the last index.
        log_end: u64,
    },
    /// About to append `count` entries at `start` in `term`.
    IntentAppend {
        /// First index.
        start: u64,
        /// Number of entries.
        count: u64,
        /// Their term.
        term: u64,
    },
    /// The append returned `Ok` after `latency_ns`.
    AckAppend {
        /// First index.
        start: u64,
        /// Number of entries.
        count: u64,
        /// Their term.
        term: u64,
        /// How long the call took.
        latency_ns: u64,
    },
    /// About to change the hard state with `operation` toward `term`, for
    /// `candidate` when voting.
    IntentState {
        /// The operation.
        operation: StateOperation,
        /// The term it targets.
        term: u64,
        /// The candidate it may vote for.
        candidate: Option<String>,
    },
    /// The operation returned `Ok`; this is the durable state it reported.
    AckState {
        /// Term after the call.
        term: u64,
        /// Vote after the call.
        vote: Option<String>,
        /// How long the call took.
        latency_ns: u64,
    },
}

fn vote_word(vote: &Option<String>) -> &str {
    vote.as_deref().unwrap_or("-")
}

fn parse_vote(word: &str) -> Option<String> {
    (word != "-").then(|| word.to_owned())
}

impl std::fmt::Display for Message {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Opened {
                term,
                vote,
                log_end,
            } => write!(f, "opened {term} {} {log_end}", vote_word(vote)),
            Self::IntentAppend { start, count, term } => {
                write!(f, "intent-append {start} {count} {term}")
            }
            Self::AckAppend {
                start,
                count,
                term,
                latency_ns,
            } => write!(f, "ack-append {start} {count} {term} {latency_ns}"),
            Self::IntentState {
                operation,
                term,
                candidate,
            } => write!(
                f,
                "intent-state {} {term} {}",
                operation.word(),
                vote_word(candidate)
            ),
            Self::AckState {
                term,
                vote,
                latency_ns,
            } => write!(f, "ack-state {term} {} {latency_ns}", vote_word(vote)),
        }
    }
}

impl Message {
    /// Parses a line written by [`Message`]'s `Display`; `None` if it is not
    /// one (a line cut short by the kill is never parsed: it has no newline).
    pub fn parse(line: &str) -> Option<Self> {
        let words: Vec<&str> = line.split(' ').collect();
        let number = |i: usize| words.get(i)?.parse::<u64>().ok();
        let message = match *words.first()? {
            "opened" => Self::Opened {
                term: number(1)?,
                vote: parse_vote(words.get(2)?),
                log_end: number(3)?,
            },
            "intent-append" => Self::IntentAppend {
                start: number(1)?,
                count: number(2)?,
                term: number(3)?,
            },
            "ack-append" => Self::AckAppend {
                start: number(1)?,
                count: number(2)?,
                term: number(3)?,
                latency_ns: number(4)?,
            },
            "intent-state" => Self::IntentState {
                operation: StateOperation::parse(words.get(1)?)?,
                term: number(2)?,
                candidate: parse_vote(words.get(3)?),
            },
            "ack-state" => Self::AckState {
                term: number(1)?,
                vote: parse_vote(words.get(2)?),
                latency_ns: number(3)?,
            },
            _ => return None,
        };
        Some(message)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn message_parse_round_trips_every_kind() {
        // Goal: the parent reads back exactly what the child wrote.
        // Method: print and parse one message of each kind.
        let messages = [
            Message::Opened {
                term: 3,
                vote: Some("CN=peer-1".to_owned()),
                log_end: 9,
            },
            Message::IntentAppend {
                start: 9,
                count: 2,
                term: 3,
            },
            Message::AckAppend {
                start: 9,
                count: 2,
                term: 3,
                latency_ns: 1234,
            },
            Message::IntentState {
                operation: StateOperation::Vote,
                term: 4,
                candidate: Some("CN=peer-2".to_owned()),
            },
            Message::AckState {
                term: 4,
                vote: None,
                latency_ns: 99,
            },
        ];
        for message in messages {
            assert_eq!(Message::parse(&message.to_string()), Some(message));
        }
    }

    #[test]
    fn message_parse_refuses_a_line_cut_short() {
        // Goal: a line the kill cut in half is never taken as an ack.
        assert_eq!(Message::parse("ack-append 9 2"), None);
        assert_eq!(Message::parse("ack-state"), None);
    }

    #[test]
    fn expected_entry_is_deterministic_and_valid() {
        // Goal: the parent recomputes the child's entries exactly, and the
        // engine accepts them. Method: compute twice, validate.
        for index in 0..200 {
            let entry = expected_entry(7, index, 3);
            assert_eq!(entry, expected_entry(7, index, 3));
            assert!(cpwal::codec::validate_entry(&entry).is_ok());
        }
    }
}
