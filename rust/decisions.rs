//! Decisions awaiting feedback, in a ring of `max_pending` slots.
//!
//! Decision ids count up from 0, and decision `id` lives in slot `id % max_pending`. A decision
//! therefore stays redeemable until `max_pending` newer decisions have been issued; then its slot
//! is reused and it has expired. This bounds memory for decisions that never get feedback with no
//! timers and no scans, makes every operation O(1), and lets `feedback` tell "already used" from
//! "expired" exactly: a decision within the window whose slot is empty was used.
//!
//! The ring keeps a cursor on `next_id % max_pending` and finds the slot of a decision inside
//! the window from its distance to `next_id`, so no operation on the decision path divides (a
//! 64-bit division costs as much as the rest of `issue`).

use crate::error::{DecisionProblem, Error, Result};

/// The largest ring: 10 million decisions, 320 MB. The ring is allocated as decisions are
/// issued, but a restored snapshot allocates it up to `min(next_id, max_pending)` at once, so the
/// bound also keeps a hostile snapshot from asking for unbounded memory.
pub const MAX_PENDING: usize = 10_000_000;

/// The most decisions one router issues: more than any router reaches (2^63 at a billion a
/// second takes 292 years), and far enough from `u64::MAX` that ids never overflow. The router
/// refuses to select past it, and snapshots beyond it are refused.
pub const MAX_NEXT_ID: u64 = 1 << 63;

/// A decision as the router recorded it (24 bytes plus the generation, which fits in the padding
/// of a 32-byte ring slot).
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Pending {
    pub id: u64,
    /// The slot of the decision's context...
    pub context: u32,
    /// ...and that slot's generation then: if the context has been evicted since, the slot's
    /// generation has moved on (see `Contexts`).
    pub generation: u32,
    pub arm: u32,
    pub probability: f64,
}

/// The id of a slot that holds no redeemable decision (ids stay below [`MAX_NEXT_ID`]): a
/// sentinel rather than a flag keeps a slot at 32 bytes.
const DEAD: u64 = u64::MAX;

#[derive(Clone, Copy, Debug)]
struct Slot {
    pending: Pending,
}

impl Slot {
    fn live(&self) -> bool {
        self.pending.id != DEAD
    }
}

/// What a dead slot held is unobservable, so it does not take part in equality.
impl PartialEq for Slot {
    fn eq(&self, other: &Self) -> bool {
        self.live() == other.live() && (!self.live() || self.pending == other.pending)
    }
}

#[derive(Clone, Debug, PartialEq)]
pub struct Ledger {
    slots: Vec<Slot>,
    capacity: usize,
    next_id: u64,
    /// `next_id % capacity`: the slot the next decision takes.
    cursor: usize,
    live: usize,
}

impl Ledger {
    pub fn new(capacity: usize) -> Result<Self> {
        if !(1..=MAX_PENDING).contains(&capacity) {
            return Err(Error::parameter(
                "max_pending",
                capacity,
                format!("in [1, {MAX_PENDING}]"),
            ));
        }
        Ok(Ledger {
            slots: Vec::new(),
            capacity,
            next_id: 0,
            cursor: 0,
            live: 0,
        })
    }

    fn slot_of(&self, id: u64) -> usize {
        // The remainder is below `capacity`, a usize, so the cast cannot truncate.
        (id % self.capacity as u64) as usize
    }

    /// The slot of decision `id` if it lies in the live window (the last `capacity` ids issued),
    /// which is `id % capacity`, found from the cursor without dividing.
    fn window_slot(&self, id: u64) -> Option<usize> {
        let back = self.next_id.checked_sub(id).filter(|&back| back >= 1)?;
        // 1 <= back <= capacity, so it fits a usize.
        let back = usize::try_from(back).ok().filter(|&back| back <= self.capacity)?;
        Some(if back <= self.cursor {
            self.cursor - back
        } else {
            self.cursor + self.capacity - back
        })
    }

    /// Record a new decision and return its id. Expires the decision `capacity` ids older.
    pub fn issue(&mut self, context: u32, generation: u32, arm: u32, probability: f64) -> u64 {
        let id = self.next_id;
        let slot = Slot {
            pending: Pending {
                id,
                context,
                generation,
                arm,
                probability,
            },
        };
        if let Some(old) = self.slots.get_mut(self.cursor) {
            if old.live() {
                self.live -= 1;
            }
            *old = slot;
        } else {
            self.slots.push(slot);
        }
        self.live += 1;
        self.next_id += 1;
        self.cursor += 1;
        if self.cursor == self.capacity {
            self.cursor = 0;
        }
        id
    }

    /// The record of a redeemable decision, without consuming it.
    pub fn get(&self, id: u64) -> Result<Pending> {
        self.find(id).map(|(_, pending)| pending)
    }

    /// The slot and record of a redeemable decision, without consuming it; the slot is for
    /// [`Ledger::consume_slot`].
    pub fn find(&self, id: u64) -> Result<(usize, Pending)> {
        let problem = if id >= self.next_id {
            DecisionProblem::NeverIssued
        } else if self.next_id - id > self.capacity as u64 {
            DecisionProblem::Expired {
                max_pending: self.capacity,
            }
        } else {
            match self
                .window_slot(id)
                .and_then(|index| Some((index, self.slots.get(index)?)))
            {
                Some((index, slot)) if slot.live() && slot.pending.id == id => return Ok((index, slot.pending)),
                _ => DecisionProblem::AlreadyUsed,
            }
        };
        Err(Error::Decision { id, problem })
    }

    /// Mark a decision as used. Call after `get` succeeded and the feedback was accepted.
    pub fn consume(&mut self, id: u64) {
        if let Some(index) = self.window_slot(id) {
            self.consume_slot(index, id);
        }
    }

    /// [`Ledger::consume`] for the slot that [`Ledger::find`] returned with decision `id`.
    pub fn consume_slot(&mut self, index: usize, id: u64) {
        if let Some(slot) = self.slots.get_mut(index)
            && slot.live()
            && slot.pending.id == id
        {
            slot.pending.id = DEAD;
            self.live -= 1;
        }
    }

    #[must_use]
    pub fn capacity(&self) -> usize {
        self.capacity
    }

    #[must_use]
    pub fn next_id(&self) -> u64 {
        self.next_id
    }

    /// How many decisions are still redeemable.
    #[must_use]
    pub fn live(&self) -> usize {
        self.live
    }

    /// The redeemable decisions, oldest first.
    #[must_use]
    pub fn pending(&self) -> Vec<Pending> {
        let mut out: Vec<Pending> = self.slots.iter().filter(|s| s.live()).map(|s| s.pending).collect();
        out.sort_by_key(|p| p.id);
        out
    }

    /// Rebuild a ledger from a snapshot's parts, checking that they could have come from one.
    pub fn from_parts(capacity: usize, next_id: u64, pending: &[Pending]) -> Result<Self> {
        let mut ledger = Ledger::new(capacity).map_err(|e| Error::snapshot(e.to_string()))?;
        ledger.next_id = next_id;
        ledger.cursor = ledger.slot_of(next_id);
        let window_start = next_id.saturating_sub(capacity as u64);
        // Slots are filled in id order up to min(next_id, capacity); unused ones hold dead records.
        let filled = usize::try_from(next_id.min(capacity as u64)).map_err(|_| Error::snapshot("next_id too large"))?;
        let dead = Slot {
            pending: Pending {
                id: DEAD,
                context: 0,
                generation: 0,
                arm: 0,
                probability: 0.0,
            },
        };
        ledger.slots = vec![dead; filled];
        for p in pending {
            if p.id >= next_id || p.id < window_start {
                return Err(Error::snapshot(format!(
                    "pending decision {} outside the live window",
                    p.id
                )));
            }
            if !(p.probability > 0.0 && p.probability <= 1.0) {
                return Err(Error::snapshot(format!(
                    "pending decision {} has probability {}",
                    p.id, p.probability
                )));
            }
            let index = ledger.slot_of(p.id);
            if ledger.slots[index].live() {
                return Err(Error::snapshot(format!("pending decision {} appears twice", p.id)));
            }
            ledger.slots[index] = Slot { pending: *p };
            ledger.live += 1;
        }
        Ok(ledger)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn problem(result: Result<Pending>) -> DecisionProblem {
        match result {
            Err(Error::Decision { problem, .. }) => problem,
            other => panic!("expected a decision error, got {other:?}"),
        }
    }

    #[test]
    fn a_slot_stays_32_bytes_with_the_generation() {
        assert_eq!(std::mem::size_of::<Slot>(), 32);
    }

    #[test]
    fn capacity_is_bounded() {
        assert!(Ledger::new(0).is_err());
        assert!(Ledger::new(MAX_PENDING).is_ok());
        assert!(Ledger::new(MAX_PENDING + 1).is_err());
        assert!(Ledger::from_parts(usize::MAX, u64::MAX, &[]).is_err());
    }

    #[test]
    fn issue_get_consume() {
        let mut ledger = Ledger::new(3).unwrap();
        let a = ledger.issue(0, 0, 1, 0.5);
        assert_eq!(ledger.get(a).unwrap().arm, 1);
        ledger.consume(a);
        assert_eq!(problem(ledger.get(a)), DecisionProblem::AlreadyUsed);
        assert_eq!(problem(ledger.get(99)), DecisionProblem::NeverIssued);
        assert_eq!(ledger.live(), 0);
    }

    #[test]
    fn old_decisions_expire_and_memory_stays_bounded() {
        let mut ledger = Ledger::new(3).unwrap();
        let ids: Vec<u64> = (0..10).map(|i| ledger.issue(0, 0, i, 0.5)).collect();
        assert_eq!(ledger.live(), 3);
        assert_eq!(ledger.slots.len(), 3);
        assert_eq!(problem(ledger.get(ids[6])), DecisionProblem::Expired { max_pending: 3 });
        for &id in &ids[7..] {
            assert!(ledger.get(id).is_ok());
        }
        assert_eq!(ledger.pending().iter().map(|p| p.id).collect::<Vec<_>>(), vec![7, 8, 9]);
    }

    #[test]
    fn window_slot_is_the_remainder_inside_the_window() {
        for capacity in 1..6usize {
            let mut ledger = Ledger::new(capacity).unwrap();
            for _ in 0..20 {
                ledger.issue(0, 0, 0, 0.5);
                let next = ledger.next_id();
                for id in 0..next + 3 {
                    let inside = id < next && next - id <= capacity as u64;
                    assert_eq!(ledger.window_slot(id), inside.then(|| ledger.slot_of(id)));
                }
                assert_eq!(ledger.cursor, ledger.slot_of(next));
                let rebuilt = Ledger::from_parts(capacity, next, &ledger.pending()).unwrap();
                assert_eq!(rebuilt, ledger);
                assert_eq!(rebuilt.cursor, ledger.cursor);
            }
        }
    }

    #[test]
    fn round_trip_through_parts() {
        let mut ledger = Ledger::new(4).unwrap();
        for i in 0..6 {
            ledger.issue(i, 0, 0, 0.25);
        }
        ledger.consume(3);
        let rebuilt = Ledger::from_parts(4, ledger.next_id(), &ledger.pending()).unwrap();
        assert_eq!(rebuilt.pending(), ledger.pending());
        assert_eq!(problem(rebuilt.get(3)), DecisionProblem::AlreadyUsed);
        assert!(
            Ledger::from_parts(
                4,
                6,
                &[Pending {
                    id: 1,
                    context: 0,
                    generation: 0,
                    arm: 0,
                    probability: 0.5
                }]
            )
            .is_err()
        );
        assert!(
            Ledger::from_parts(
                4,
                6,
                &[Pending {
                    id: 5,
                    context: 0,
                    generation: 0,
                    arm: 0,
                    probability: 0.0
                }]
            )
            .is_err()
        );
    }
}
