//! [`OutcomeBoard`]: where a sole voter's [`SharedControlPlane`] hands each
//! waiting caller what applying its entries did.
//!
//! A shared append's entries are applied by the sync's leader (most often
//! another caller) while the disk writes them, or by whoever records the
//! sync that made them durable, under the engine lock, while their writer
//! waits without it. Each outcome is posted here when the entry is
//! committed, never before; the writer collects its own once its wait
//! returns.
//!
//! # Protocol
//! 1. Under the engine lock, right after writing its entries (before
//!    anything can apply them), a writer [expects](OutcomeBoard::expect)
//!    their indexes: one pending slot each.
//! 2. Whoever commits an applied entry [posts](Poster::post) its outcome
//!    (an entry applied ahead of its sync waits in
//!    [`super::applied_ahead`] until then); an index nobody expects is not
//!    kept.
//! 3. The writer holds a [`Claim`] on its indexes. Once its wait says they
//!    are durable it [collects](Claim::collect) them. The posting happens in
//!    the same critical section that makes the entries durable, so if some
//!    are still pending, taking the engine lock once waits for that
//!    section to end; pending after that means the apply failed (the node
//!    is stopped) or, were the engine's order broken, was never reported.
//! 4. A claim dropped without collecting (its wait failed, or its thread
//!    unwound) gives its slots up, so the board never keeps what nobody
//!    will read: it holds only the slots of writers still waiting.
//!
//! Lock order: the engine lock, then the board's; never the reverse.
//!
//! [`SharedControlPlane`]: super::SharedControlPlane

use std::collections::VecDeque;
use std::ops::Range;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

use crate::catalog::ApplyOutcome;

/// The outcomes of the entries shared writers are waiting for.
///
/// Invariant: `slots` is sorted by index, each index once, and holds only
/// indexes of live [`Claim`]s (plus given-up slots behind a live one,
/// dropped as soon as nothing live is before them). Capacity is kept, so a
/// steady stream of appends allocates nothing here.
#[derive(Debug, Default)]
pub(super) struct OutcomeBoard {
    slots: Mutex<VecDeque<Slot>>,
}

#[derive(Debug)]
struct Slot {
    index: u64,
    state: SlotState,
}

#[derive(Debug)]
enum SlotState {
    /// Written, not applied yet.
    Pending,
    /// Applied; waiting for its writer.
    Posted(ApplyOutcome),
    /// Collected or given up.
    Gone,
}

impl OutcomeBoard {
    fn lock(&self) -> MutexGuard<'_, VecDeque<Slot>> {
        // Every update below leaves the slots sorted and complete; a panic
        // elsewhere while the lock was held cannot break that.
        self.slots.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// One pending slot for each of `indexes`, just written (under the
    /// engine lock, so in index order), and the writer's claim on them.
    pub(super) fn expect(self: &Arc<Self>, indexes: Range<u64>) -> Claim {
        let mut slots = self.lock();
        debug_assert!(
            slots.back().is_none_or(|last| last.index < indexes.start),
            "indexes are expected in order"
        );
        let pending = indexes.clone().map(|index| Slot {
            index,
            state: SlotState::Pending,
        });
        slots.extend(pending);
        Claim {
            board: Arc::clone(self),
            indexes,
        }
    }

    /// The board held for posting outcomes, in index order, through one
    /// lock (an apply loop posts a batch's worth at once).
    pub(super) fn poster(&self) -> Poster<'_> {
        Poster {
            slots: self.lock(),
            next: 0,
        }
    }
}

/// The board, locked by whoever applies entries.
pub(super) struct Poster<'a> {
    slots: MutexGuard<'a, VecDeque<Slot>>,
    /// Where the next index is most likely to be: just after the last one
    /// posted (entries are applied in index order).
    next: usize,
}

impl Poster<'_> {
    /// Records what applying the entry at `index` did, if a writer waits
    /// for it.
    pub(super) fn post(&mut self, index: u64, outcome: ApplyOutcome) {
        let slots = &mut *self.slots;
        let at = match slots.get(self.next) {
            Some(slot) if slot.index == index => self.next,
            _ => slots.partition_point(|slot| slot.index < index),
        };
        if let Some(slot) = slots.get_mut(at).filter(|slot| slot.index == index) {
            if matches!(slot.state, SlotState::Pending) {
                slot.state = SlotState::Posted(outcome);
            }
            self.next = at + 1;
        }
    }
}

/// A writer's hold on the slots of its indexes; gives them up when dropped.
#[derive(Debug)]
pub(super) struct Claim {
    board: Arc<OutcomeBoard>,
    indexes: Range<u64>,
}

impl Claim {
    /// Hands `collect` every outcome of the claim, in index order, and
    /// returns `true`, if all are posted; otherwise takes none and returns
    /// `false` (some entry is not applied yet).
    pub(super) fn collect(&self, mut collect: impl FnMut(ApplyOutcome)) -> bool {
        let mut slots = self.board.lock();
        let first = slots.partition_point(|slot| slot.index < self.indexes.start);
        let mine = first..first + (self.indexes.end - self.indexes.start) as usize;
        let all_posted = mine.end <= slots.len()
            && slots
                .range(mine.clone())
                .all(|slot| matches!(slot.state, SlotState::Posted(_)));
        if !all_posted {
            return false;
        }
        for slot in slots.range_mut(mine) {
            if let SlotState::Posted(outcome) = std::mem::replace(&mut slot.state, SlotState::Gone)
            {
                collect(outcome);
            }
        }
        true
    }
}

impl Drop for Claim {
    fn drop(&mut self) {
        let mut slots = self.board.lock();
        let first = slots.partition_point(|slot| slot.index < self.indexes.start);
        let mine = slots.range_mut(first..);
        for slot in mine.take_while(|slot| slot.index < self.indexes.end) {
            slot.state = SlotState::Gone;
        }
        let done = slots
            .iter()
            .take_while(|slot| matches!(slot.state, SlotState::Gone))
            .count();
        slots.drain(..done);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn outcome(n: u64) -> ApplyOutcome {
        ApplyOutcome::OwnershipFenced { current_epoch: n }
    }

    fn collected(claim: &Claim) -> Option<Vec<ApplyOutcome>> {
        let mut outcomes = Vec::new();
        claim.collect(|o| outcomes.push(o)).then_some(outcomes)
    }

    #[test]
    fn a_claim_collects_only_when_every_entry_was_posted() {
        // Goal: a writer gets all its outcomes in order or none, and only
        // its own. Method: two claims over adjacent ranges; post in index
        // order with an index nobody expects in between; collect before
        // and after the last post.
        let board = Arc::new(OutcomeBoard::default());
        let first = board.expect(0..2);
        let second = board.expect(2..5);
        board.poster().post(0, outcome(0));
        assert_eq!(collected(&first), None, "index 1 is not posted");
        board.poster().post(1, outcome(1));
        board.poster().post(2, outcome(2));
        board.poster().post(3, outcome(3));
        board.poster().post(9, outcome(9));
        assert_eq!(collected(&first), Some(vec![outcome(0), outcome(1)]));
        assert_eq!(collected(&second), None, "index 4 is not posted");
        board.poster().post(4, outcome(4));
        assert_eq!(
            collected(&second),
            Some(vec![outcome(2), outcome(3), outcome(4)])
        );
        drop((first, second));
        assert!(board.lock().is_empty());
    }

    #[test]
    fn a_dropped_claim_gives_its_slots_up() {
        // Goal: a writer that never collects (its wait failed) leaves
        // nothing behind once the writers before it are done, and does
        // not hold up the others. Method: three claims; drop the middle
        // one uncollected and the first collected; the board then holds
        // only the last one's slots.
        let board = Arc::new(OutcomeBoard::default());
        let first = board.expect(0..1);
        let abandoned = board.expect(1..3);
        let last = board.expect(3..4);
        for index in 0..4 {
            board.poster().post(index, outcome(index));
        }
        drop(abandoned);
        assert_eq!(collected(&first), Some(vec![outcome(0)]));
        drop(first);
        let held: Vec<u64> = board.lock().iter().map(|slot| slot.index).collect();
        assert_eq!(held, [3], "only the waiting writer's slot is kept");
        assert_eq!(collected(&last), Some(vec![outcome(3)]));
        drop(last);
        assert!(board.lock().is_empty());
    }
}
