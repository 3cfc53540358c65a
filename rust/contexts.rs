//! The table of per-context learners: string keys, a learner created on first selection.
//!
//! Learners sit in a `Vec` and the map holds indices, so pending decisions refer to their context
//! by a 4-byte index instead of a copy of its name. Contexts are never removed, so an index stays
//! valid for the router's life.
//!
//! Each name is stored once, in `names`; the hash table holds only indices into it (4 bytes a
//! slot), hashed by name with foldhash, which is several times faster than std's SipHash on short
//! names and seeded at random per table. Iteration never follows the table, so its order (and the
//! seed) can never show in snapshots or decisions. Because names are kept by index, `feedback`
//! checks a decision's context by comparing one name, without hashing.
//!
//! Names and learners sit in [`Chunked`] vectors so that [`Contexts::share`] copies the table in
//! microseconds (a reference count per 1024 contexts): a snapshot takes that copy under the
//! router's lock and encodes it after releasing the lock.

use std::fmt;
use std::hash::BuildHasher;

use hashbrown::{DefaultHashBuilder, HashTable};

use crate::chunked::Chunked;
use crate::learner::Learner;

#[derive(Clone, Default)]
pub struct Contexts {
    /// Context names in index (creation) order.
    names: Chunked<Box<str>>,
    learners: Chunked<Learner>,
    /// Indices into `names`, hashed by name with `hasher`.
    table: HashTable<u32>,
    hasher: DefaultHashBuilder,
}

/// The table and its hasher are derived from `names`, so they take no part in equality.
impl PartialEq for Contexts {
    fn eq(&self, other: &Self) -> bool {
        self.names == other.names && self.learners == other.learners
    }
}

impl fmt::Debug for Contexts {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Contexts")
            .field("names", &self.names)
            .field("learners", &self.learners)
            .finish_non_exhaustive()
    }
}

impl Contexts {
    #[must_use]
    pub fn index_of(&self, name: &str) -> Option<u32> {
        let hash = self.hasher.hash_one(name);
        let names = &self.names;
        self.table
            .find(hash, |&i| names.get(i as usize).is_some_and(|n| **n == *name))
            .copied()
    }

    /// The index of `name`, inserting `fresh()` first if the context is new.
    /// `None` only if the table already holds `u32::MAX` contexts.
    pub fn get_or_insert(&mut self, name: &str, fresh: impl FnOnce() -> Learner) -> Option<u32> {
        let hash = self.hasher.hash_one(name);
        let Contexts {
            names,
            learners,
            table,
            hasher,
        } = self;
        if let Some(&index) = table.find(hash, |&i| names.get(i as usize).is_some_and(|n| **n == *name)) {
            return Some(index);
        }
        let index = u32::try_from(learners.len()).ok()?;
        learners.push(fresh());
        names.push(name.into());
        table.insert_unique(hash, index, |&i| {
            hasher.hash_one(names.get(i as usize).map_or("", |n| &**n))
        });
        Some(index)
    }

    /// The name of context `index`.
    #[must_use]
    pub fn name(&self, index: u32) -> Option<&str> {
        self.names.get(index as usize).map(|n| &**n)
    }

    #[must_use]
    pub fn learner(&self, index: u32) -> Option<&Learner> {
        self.learners.get(index as usize)
    }

    /// The learner of context `index` (its chunk copied first if a [`Shared`] copy holds it).
    pub fn learner_mut(&mut self, index: u32) -> Option<&mut Learner> {
        self.learners.get_mut(index as usize)
    }

    #[must_use]
    pub fn get(&self, name: &str) -> Option<&Learner> {
        self.index_of(name).and_then(|i| self.learner(i))
    }

    #[must_use]
    pub fn len(&self) -> usize {
        self.learners.len()
    }

    #[must_use]
    pub fn is_empty(&self) -> bool {
        self.learners.is_empty()
    }

    /// Context names in index order (creation order).
    #[must_use]
    pub fn names(&self) -> Vec<&str> {
        self.names.iter().map(|n| &**n).collect()
    }

    /// `(name, learner)` pairs in creation order.
    pub fn iter(&self) -> impl Iterator<Item = (&str, &Learner)> {
        self.names.iter().map(|n| &**n).zip(self.learners.iter())
    }

    /// A copy of every context, in creation order, for a reference count per chunk.
    #[must_use]
    pub fn share(&self) -> Shared {
        Shared {
            names: self.names.clone(),
            learners: self.learners.clone(),
        }
    }
}

/// Every context of a table at one moment, sharing names and learners with it (see
/// [`Contexts::share`]); `Send`, so it can be encoded on another thread or without a lock.
pub struct Shared {
    names: Chunked<Box<str>>,
    learners: Chunked<Learner>,
}

impl Shared {
    /// `(name, learner)` pairs in creation order.
    pub fn iter(&self) -> impl Iterator<Item = (&str, &Learner)> {
        self.names.iter().map(|n| &**n).zip(self.learners.iter())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::learner::State;
    use crate::learners::automaton::AutomatonState;

    fn fresh() -> Learner {
        Learner::new(State::LearningAutomaton(AutomatonState {
            probabilities: vec![0.5, 0.5],
        }))
    }

    #[test]
    fn created_on_first_use_in_order() {
        let mut table = Contexts::default();
        assert_eq!(table.get_or_insert("b", fresh), Some(0));
        assert_eq!(table.get_or_insert("a", fresh), Some(1));
        assert_eq!(table.get_or_insert("b", || unreachable!()), Some(0));
        assert_eq!(table.names(), vec!["b", "a"]);
        assert!(table.get("c").is_none());
        assert_eq!(table.len(), 2);
        assert_eq!(
            (table.name(0), table.name(1), table.name(2)),
            (Some("b"), Some("a"), None)
        );
        assert_eq!((table.index_of("a"), table.index_of("")), (Some(1), None));
    }

    #[test]
    fn many_names_stay_distinct_and_equality_ignores_the_hasher() {
        let mut table = Contexts::default();
        let mut other = Contexts::default();
        for i in 0..10_000u32 {
            assert_eq!(table.get_or_insert(&format!("tenant-{i}"), fresh), Some(i));
            other.get_or_insert(&format!("tenant-{i}"), fresh);
        }
        for i in (0..10_000u32).rev() {
            assert_eq!(table.index_of(&format!("tenant-{i}")), Some(i));
        }
        assert_eq!(table.get_or_insert("", fresh), Some(10_000));
        assert_eq!(table.index_of(""), Some(10_000));
        other.get_or_insert("", fresh);
        // Two tables with different random seeds but the same contexts are equal.
        assert_eq!(table, other.clone());
    }

    #[test]
    fn a_shared_copy_keeps_its_moment_while_the_table_learns() {
        let mut table = Contexts::default();
        table.get_or_insert("a", fresh);
        let shared = table.share();
        if let Some(learner) = table.learner_mut(0) {
            learner.feedbacks[1] = 5;
        }
        table.get_or_insert("b", fresh);
        let then: Vec<_> = shared
            .iter()
            .map(|(n, l)| (n.to_owned(), l.feedbacks.clone()))
            .collect();
        assert_eq!(then, vec![("a".to_owned(), vec![0, 0])]);
        assert_eq!(table.learner(0).map(|l| l.feedbacks.clone()), Some(vec![0, 5]));
    }
}
