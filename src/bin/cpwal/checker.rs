//! The crash-test checker: a model of what the child acknowledged, and the
//! G1–G5 checks of a recovered directory against it.
//!
//! The model's `log_terms` and `state` are the *baseline*: what recovery
//! found last time plus everything acknowledged since. After a SIGKILL the
//! recovered directory must equal the baseline, except that the one call in
//! flight (announced by an intent line) may have taken effect, in part for a
//! batch. That is stricter than G3 (which only protects acknowledged data)
//! and still exact, because a SIGKILL keeps the page cache.

use std::collections::BTreeMap;

use cpwal::{ControlPlaneIndex, DurableControlPlane};

use crate::workload::{expected_entry, Message, StateOperation, NODE_SUBJECT};

/// A call announced but not yet acknowledged.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Pending {
    Append { start: u64, count: u64, term: u64 },
    State(StateOperation, u64, Option<String>),
}

/// Term and vote.
type VoteState = (u64, Option<String>);

/// A vote in words: the candidate, or "none".
fn vote_text(vote: &Option<String>) -> &str {
    vote.as_deref().unwrap_or("none")
}

/// The call in flight when the child was killed, in words.
fn pending_text(pending: &Option<Pending>) -> String {
    match pending {
        None => "nothing in flight".to_owned(),
        Some(Pending::Append { start, count, term }) => {
            format!("in flight: {count} entries of term {term} from index {start}")
        }
        Some(Pending::State(operation, term, candidate)) => format!(
            "in flight: {} to term {term}, vote {}",
            operation.word(),
            vote_text(candidate)
        ),
    }
}

/// What the child acknowledged, and the counters for the summary.
#[derive(Debug, Default)]
pub struct Model {
    seed: u64,
    /// Term of each entry the directory must hold, from index 0.
    log_terms: Vec<u64>,
    /// One past the last acknowledged entry.
    acknowledged_end: u64,
    /// The term and vote the directory must hold.
    state: VoteState,
    pending: Option<Pending>,
    /// Every vote seen (acknowledged or recovered), by term: two different
    /// candidates in one term is a violation.
    votes_by_term: BTreeMap<u64, String>,
    /// Violations found so far, one line each.
    pub violations: Vec<String>,
    /// Entries acknowledged.
    pub acknowledged_entries: u64,
    /// Hard-state changes acknowledged.
    pub acknowledged_states: u64,
    /// Entry reads that matched, over all cycles.
    pub entries_checked: u64,
    /// Acknowledged votes and terms checked against a recovered directory.
    pub states_checked: u64,
    /// Latencies of acknowledged appends and state changes, in nanoseconds.
    pub append_latencies_ns: Vec<u64>,
    /// See `append_latencies_ns`.
    pub state_latencies_ns: Vec<u64>,
}

impl Model {
    /// A model for run `seed` on a directory that does not exist yet. The
    /// first open bootstraps term 1 with the node's own vote, which is
    /// exactly an election in flight.
    pub fn new(seed: u64) -> Self {
        Self {
            seed,
            pending: Some(Pending::State(StateOperation::Election, 1, None)),
            ..Self::default()
        }
    }

    /// One past the last acknowledged entry.
    pub fn acknowledged_end(&self) -> u64 {
        self.acknowledged_end
    }

    fn violation(&mut self, what: String) {
        self.violations.push(what);
    }

    /// Records a vote for `candidate` in `term`; a different one already
    /// recorded for that term is a violation.
    fn note_vote(&mut self, term: u64, vote: &Option<String>, source: &str) {
        let Some(candidate) = vote else { return };
        match self.votes_by_term.get(&term) {
            Some(earlier) if earlier != candidate => self.violation(format!(
                "two candidates in term {term}: {earlier} and {candidate} ({source})"
            )),
            _ => {
                self.votes_by_term.insert(term, candidate.clone());
            }
        }
    }

    /// Applies one line from the child.
    pub fn apply(&mut self, message: Message) {
        match message {
            Message::Opened { log_end, .. } => {
                let known = self.log_terms.len() as u64;
                if log_end != known {
                    self.violation(format!(
                        "the child's recovery found log end {log_end}, the parent's found {known}"
                    ));
                }
            }
            Message::IntentAppend { start, count, term } => {
                self.pending = Some(Pending::Append { start, count, term })
            }
            Message::IntentState {
                operation,
                term,
                candidate,
            } => self.pending = Some(Pending::State(operation, term, candidate)),
            Message::AckAppend {
                start,
                count,
                term,
                latency_ns,
            } => self.acknowledge_append(start, count, term, latency_ns),
            Message::AckState {
                term,
                vote,
                latency_ns,
            } => self.acknowledge_state(term, vote, latency_ns),
        }
    }

    fn acknowledge_append(&mut self, start: u64, count: u64, term: u64, latency_ns: u64) {
        self.pending = None;
        if start != self.log_terms.len() as u64 {
            let known = self.log_terms.len();
            self.violation(format!(
                "child appended at index {start} but the recovered log ended at {known}"
            ));
            self.log_terms.truncate(start as usize);
        }
        self.log_terms
            .extend(std::iter::repeat_n(term, count as usize));
        self.acknowledged_end = start + count;
        self.acknowledged_entries += count;
        self.append_latencies_ns.push(latency_ns);
    }

    fn acknowledge_state(&mut self, term: u64, vote: Option<String>, latency_ns: u64) {
        self.pending = None;
        let (old_term, old_vote) = self.state.clone();
        if term < old_term || (term == old_term && old_vote.is_some() && vote != old_vote) {
            self.violation(format!(
                "child reported term {term} vote {} after term {old_term} vote {}",
                vote_text(&vote),
                vote_text(&old_vote)
            ));
        }
        self.note_vote(term, &vote, "acknowledged");
        self.state = (term, vote);
        self.acknowledged_states += 1;
        self.state_latencies_ns.push(latency_ns);
    }

    /// The states recovery may legitimately show: the baseline, or what the
    /// call in flight would have made durable.
    fn allowed_states(&self) -> Vec<VoteState> {
        let mut allowed = vec![self.state.clone()];
        if let Some(Pending::State(operation, term, candidate)) = &self.pending {
            match operation {
                StateOperation::Election => {
                    allowed.push((*term, Some(NODE_SUBJECT.to_owned())));
                }
                StateOperation::Observe => allowed.push((*term, None)),
                StateOperation::Vote => {
                    allowed.push((*term, candidate.clone()));
                    if *term > self.state.0 {
                        allowed.push((*term, None));
                    }
                }
            }
        }
        allowed
    }

    /// Checks a directory reopened after a kill (G1–G5), then makes what it
    /// holds the new baseline. Returns the number of violations it added.
    pub fn check_recovered(&mut self, node: &DurableControlPlane) -> usize {
        let before = self.violations.len();
        self.check_hard_state(node);
        let recovered_terms = self.check_log(node);
        self.check_commit(node, recovered_terms.len() as u64);
        self.log_terms = recovered_terms;
        self.pending = None;
        self.violations.len() - before
    }

    /// G1: term and vote at least the last acknowledged; one vote per term.
    fn check_hard_state(&mut self, node: &DurableControlPlane) {
        let vote = node.durable_vote();
        let recovered = (vote.term.0, vote.voted_for.map(|v| v.as_str().to_owned()));
        if !self.allowed_states().contains(&recovered) {
            let (term, vote) = &self.state;
            self.violation(format!(
                "recovered term {} vote {}, but the child acknowledged term {term} vote {} ({})",
                recovered.0,
                vote_text(&recovered.1),
                vote_text(vote),
                pending_text(&self.pending)
            ));
        }
        self.note_vote(recovered.0, &recovered.1, "recovered");
        self.states_checked += 1;
        self.state = recovered;
    }

    /// G3/G5: every acknowledged entry present and identical, in order;
    /// nothing beyond the baseline but the batch in flight. Returns the
    /// recovered log's terms.
    fn check_log(&mut self, node: &DurableControlPlane) -> Vec<u64> {
        let end = node.last_index().map_or(0, |i| i.0 + 1);
        if node.first_index().0 != 0 {
            self.violation(format!(
                "log starts at {} but nothing was ever compacted",
                node.first_index().0
            ));
        }
        if end < self.acknowledged_end {
            self.violation(format!(
                "acknowledged entries {end}..{} are missing after recovery",
                self.acknowledged_end
            ));
        }
        if end < self.log_terms.len() as u64 {
            self.violation(format!(
                "entries {end}..{} found by an earlier recovery vanished",
                self.log_terms.len()
            ));
        }
        let mut recovered = Vec::with_capacity(end as usize);
        for index in 0..end {
            let Some(term) = self.expected_term(index) else {
                self.violation(format!("entry {index} was invented: it was never written"));
                break;
            };
            match node.read(ControlPlaneIndex(index)) {
                Ok(read)
                    if read.term.0 == term
                        && read.entry == expected_entry(self.seed, index, term) =>
                {
                    self.entries_checked += 1;
                }
                Ok(read) => self.violation(format!(
                    "entry {index} differs: term {} (expected {term}), {}",
                    read.term.0,
                    crate::render::entry_json(&read)
                )),
                Err(error) => self.violation(format!("entry {index} unreadable: {error}")),
            }
            recovered.push(term);
        }
        recovered
    }

    /// The term entry `index` must have, if it may exist at all.
    fn expected_term(&self, index: u64) -> Option<u64> {
        if let Some(&term) = self.log_terms.get(index as usize) {
            return Some(term);
        }
        match self.pending {
            Some(Pending::Append { start, count, term })
                if (start..start + count).contains(&index) =>
            {
                Some(term)
            }
            _ => None,
        }
    }

    /// G3: commit never below an acknowledged entry nor past the log.
    fn check_commit(&mut self, node: &DurableControlPlane, log_end: u64) {
        let commit_end = node.commit_index().map_or(0, |i| i.0 + 1);
        if commit_end < self.acknowledged_end {
            self.violation(format!(
                "commit index regressed: {commit_end} entries committed, {} acknowledged",
                self.acknowledged_end
            ));
        }
        if commit_end > log_end {
            self.violation(format!(
                "commit index {commit_end} is beyond the log end {log_end}"
            ));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ack_state(model: &mut Model, term: u64, vote: &str) {
        model.apply(Message::AckState {
            term,
            vote: Some(vote.to_owned()),
            latency_ns: 1,
        });
    }

    #[test]
    fn apply_two_candidates_in_one_term_is_a_violation() {
        // Goal: "never two candidates in one term" is enforced over the whole
        // run. Method: acknowledge votes for two candidates in term 5, the
        // second after a recovery left the model in term 6.
        let mut model = Model::new(1);
        ack_state(&mut model, 5, "CN=peer-1");
        ack_state(&mut model, 6, "CN=peer-1");
        assert!(model.violations.is_empty());
        model.state = (4, None);
        ack_state(&mut model, 5, "CN=peer-2");
        assert_eq!(model.violations.len(), 1, "{:?}", model.violations);
        assert!(model.violations[0].contains("two candidates in term 5"));
    }

    #[test]
    fn apply_term_regression_is_a_violation() {
        // Goal: a state that goes back in term is reported.
        let mut model = Model::new(1);
        ack_state(&mut model, 5, "CN=peer-1");
        ack_state(&mut model, 4, "CN=peer-2");
        assert_eq!(model.violations.len(), 1, "{:?}", model.violations);
    }

    #[test]
    fn allowed_states_after_an_acked_vote_exclude_a_cleared_vote() {
        // Goal: a vote request in the current term may not clear an
        // acknowledged vote. Method: pending vote intent in the same term.
        let mut model = Model::new(1);
        ack_state(&mut model, 5, "CN=peer-1");
        model.apply(Message::IntentState {
            operation: StateOperation::Vote,
            term: 5,
            candidate: Some("CN=peer-2".to_owned()),
        });
        let allowed = model.allowed_states();
        assert!(!allowed.contains(&(5, None)));
        assert!(allowed.contains(&(5, Some("CN=peer-1".to_owned()))));
    }
}
