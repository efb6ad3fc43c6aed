//! The crash-test child: opens the directory, then appends, votes, observes
//! terms and starts elections forever, reporting on stdout each call it is
//! about to make and each call that returned `Ok`, until the parent kills it.

use std::io::Write;
use std::path::Path;
use std::time::Instant;

use cpwal::{ControlPlaneIndex, ControlPlaneTerm, DurableControlPlane, VoteRequest};

use crate::failure::CliError;
use crate::workload::{
    crash_test_options, expected_entry, identity, Message, Rng, StateOperation, NODE_SUBJECT,
    PEER_SUBJECTS,
};

/// Runs the child until it is killed. Returns only on an error.
pub fn run(directory: &Path, seed: u64, cycle: u64) -> Result<(), CliError> {
    let mut node =
        DurableControlPlane::open(directory, identity(NODE_SUBJECT), crash_test_options())
            .map_err(|e| CliError::engine("crash-test child could not open the directory", e))?;
    let mut out = std::io::stdout().lock();
    let vote = node.durable_vote();
    let log_end = node.last_index().map_or(0, |i| i.0 + 1);
    report(
        &mut out,
        &Message::Opened {
            term: vote.term.0,
            vote: vote.voted_for.map(|v| v.as_str().to_owned()),
            log_end,
        },
    )?;
    let mut rng = Rng::new(seed, cycle.wrapping_add(1) << 32);
    loop {
        let roll = rng.below(100);
        if roll < 8 && node.is_leader() {
            append_batch(&mut node, &mut out, seed, 16 + rng.below(48))?;
        } else if roll < 75 && node.is_leader() {
            append_batch(&mut node, &mut out, seed, 1 + rng.below(4))?;
        } else if roll < 88 {
            let target = node.current_term().0 + 1;
            change_state(&mut node, &mut out, StateOperation::Election, target, None)?;
        } else if roll < 95 {
            let term = node.current_term().0 + rng.below(2);
            let candidate = PEER_SUBJECTS[rng.below(PEER_SUBJECTS.len() as u64) as usize];
            let op = StateOperation::Vote;
            change_state(&mut node, &mut out, op, term, Some(candidate))?;
        } else {
            let target = node.current_term().0 + 1;
            change_state(&mut node, &mut out, StateOperation::Observe, target, None)?;
        }
    }
}

/// Appends `count` deterministic entries, announcing them first.
fn append_batch(
    node: &mut DurableControlPlane,
    out: &mut impl Write,
    seed: u64,
    count: u64,
) -> Result<(), CliError> {
    let start = node.last_index().map_or(0, |i| i.0 + 1);
    let term = node.current_term().0;
    let entries: Vec<_> = (start..start + count)
        .map(|index| expected_entry(seed, index, term))
        .collect();
    report(out, &Message::IntentAppend { start, count, term })?;
    let began = Instant::now();
    let appended = node
        .try_append_batch(&entries)
        .map_err(|e| CliError::engine("crash-test child append failed", e))?;
    let latency_ns = began.elapsed().as_nanos() as u64;
    if appended.first_index.0 != start {
        return Err(CliError::MisplacedBatch {
            expected: start,
            found: appended.first_index.0,
        });
    }
    report(
        out,
        &Message::AckAppend {
            start,
            count,
            term,
            latency_ns,
        },
    )
}

/// Performs one hard-state operation, announcing it first and reporting the
/// durable state it returned with.
fn change_state(
    node: &mut DurableControlPlane,
    out: &mut impl Write,
    operation: StateOperation,
    term: u64,
    candidate: Option<&str>,
) -> Result<(), CliError> {
    report(
        out,
        &Message::IntentState {
            operation,
            term,
            candidate: candidate.map(str::to_owned),
        },
    )?;
    let began = Instant::now();
    let outcome = match operation {
        StateOperation::Election => node.start_election().map(drop),
        StateOperation::Observe => node.observe_term(ControlPlaneTerm(term)).map(drop),
        StateOperation::Vote => {
            let request = VoteRequest {
                term: ControlPlaneTerm(term),
                candidate: identity(candidate.unwrap_or(PEER_SUBJECTS[0])),
                last_log_index: node.last_index().map(|i| ControlPlaneIndex(i.0 + 1)),
                last_log_term: ControlPlaneTerm(term),
            };
            node.grant_vote(&request).map(drop)
        }
    };
    outcome.map_err(|e| CliError::engine("crash-test child state change failed", e))?;
    let latency_ns = began.elapsed().as_nanos() as u64;
    let vote = node.durable_vote();
    report(
        out,
        &Message::AckState {
            term: vote.term.0,
            vote: vote.voted_for.map(|v| v.as_str().to_owned()),
            latency_ns,
        },
    )
}

/// Writes one line and flushes it, so the parent sees it even if the next
/// instruction is never executed.
fn report(out: &mut impl Write, message: &Message) -> Result<(), CliError> {
    writeln!(out, "{message}")
        .and_then(|()| out.flush())
        .map_err(|e| CliError::io("crash-test child: write to the pipe", e))
}
