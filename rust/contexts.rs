//! The table of per-context learners: string keys, a learner created on first selection.
//!
//! Learners sit in a `Vec` and the map holds indices, so pending decisions refer to their context
//! by a 4-byte index instead of a copy of its name. Contexts are never removed, so an index stays
//! valid for the router's life.

use std::collections::HashMap;

use crate::learner::Learner;

#[derive(Clone, Debug, Default, PartialEq)]
pub struct Contexts {
    index: HashMap<Box<str>, u32>,
    learners: Vec<Learner>,
}

impl Contexts {
    #[must_use]
    pub fn index_of(&self, name: &str) -> Option<u32> {
        self.index.get(name).copied()
    }

    /// The index of `name`, inserting `fresh()` first if the context is new.
    /// `None` only if the table already holds `u32::MAX` contexts.
    pub fn get_or_insert(&mut self, name: &str, fresh: impl FnOnce() -> Learner) -> Option<u32> {
        if let Some(&index) = self.index.get(name) {
            return Some(index);
        }
        let index = u32::try_from(self.learners.len()).ok()?;
        self.learners.push(fresh());
        self.index.insert(name.into(), index);
        Some(index)
    }

    #[must_use]
    pub fn learner(&self, index: u32) -> Option<&Learner> {
        self.learners.get(index as usize)
    }

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
        let mut names = vec![""; self.learners.len()];
        for (name, &index) in &self.index {
            names[index as usize] = name;
        }
        names
    }

    /// `(name, learner)` pairs in creation order.
    pub fn iter(&self) -> impl Iterator<Item = (&str, &Learner)> {
        self.names().into_iter().zip(&self.learners)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::learner::State;

    fn fresh() -> Learner {
        Learner::new(State::LearningAutomaton {
            probabilities: vec![0.5, 0.5],
        })
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
    }
}
