//! The table of per-context learners: string keys, a learner created on first use, and a bound
//! on how many are kept.
//!
//! Learners sit in slots of a `Vec` and the map holds slot indices, so pending decisions refer to
//! their context by a 4-byte index (plus the slot's generation) instead of a copy of its name.
//!
//! Each name is stored once, in `names`; the hash table holds only indices into it (4 bytes a
//! slot), hashed by name with foldhash, which is several times faster than std's SipHash on short
//! names and seeded at random per table. Iteration never follows the table, so its order (and the
//! seed) can never show in snapshots or decisions. Because names are kept by index, `feedback`
//! checks a decision's context by comparing one name, without hashing.
//!
//! Names, learners and links sit in [`Chunked`] vectors so that [`Contexts::share`] copies the
//! table in microseconds (a reference count per 1024 contexts): a snapshot takes that copy under
//! the router's lock and encodes it after releasing the lock.
//!
//! # Bounded
//!
//! Every live slot is on one of two intrusive lists:
//! - **learned**: contexts that have learned at least once, ordered by their last learning event;
//!   past `max` of them, the least recently learned is evicted (its learning is lost, and
//!   counted in `evicted`).
//! - **unlearned**: contexts created by a selection that never learned, first in, first out; past
//!   `max` of them, the oldest is dropped. Its learner still equals the prior, so dropping it
//!   loses nothing (counted in `dropped`).
//!
//! Selections never reorder either list and can only drop unlearned contexts, so which contexts
//! hold learned state is a function of the ordered learning events alone: replicas that apply
//! the same events in the same order hold the same learned contexts, whatever they selected.
//!
//! A freed slot is reused with its generation incremented, so a decision recorded against the old
//! occupant can tell (see `Router::feedback`). A generation wraps after 2^32 reuses; a decision
//! lives for at most `max_pending` (at most 10^7) later decisions and each reuse within that
//! window takes a decision (a selection creating a context or a feedback re-creating one), so a
//! wrapped generation can never be mistaken for a live one.

use std::fmt;
use std::hash::BuildHasher;

use hashbrown::{DefaultHashBuilder, HashTable};

use crate::chunked::Chunked;
use crate::learner::Learner;

/// "No slot": the end of a list, and the context of a decision whose context was evicted before
/// a snapshot recorded it.
pub const NONE: u32 = u32::MAX;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Membership {
    Learned,
    Unlearned,
    Free,
}

/// A slot's place on its list.
#[derive(Clone, Copy, Debug, PartialEq)]
struct Link {
    older: u32,
    newer: u32,
    generation: u32,
    on: Membership,
}

/// One intrusive list over the slots, oldest to newest.
#[derive(Clone, Copy, Debug, PartialEq)]
struct List {
    oldest: u32,
    newest: u32,
    len: u32,
}

impl Default for List {
    fn default() -> Self {
        List {
            oldest: NONE,
            newest: NONE,
            len: 0,
        }
    }
}

/// How many contexts a table holds and has let go.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Counts {
    /// Contexts that have learned, at most `max`.
    pub learned: u32,
    /// Contexts created by a selection that have not learned yet, at most `max`.
    pub unlearned: u32,
    /// Learned contexts evicted (least recently learned first): learning lost.
    pub evicted: u64,
    /// Unlearned contexts dropped (oldest first): nothing lost, their learner was the prior.
    pub dropped: u64,
}

#[derive(Clone, Default)]
pub struct Contexts {
    /// Context names by slot ("" in a free slot).
    names: Chunked<Box<str>>,
    learners: Chunked<Learner>,
    links: Chunked<Link>,
    /// Indices into `names`, hashed by name with `hasher`.
    table: HashTable<u32>,
    hasher: DefaultHashBuilder,
    learned: List,
    unlearned: List,
    /// Free slots, reused last-freed first.
    free: Vec<u32>,
    /// The most contexts on each list; `None`: unbounded.
    max: Option<u32>,
    evicted: u64,
    dropped: u64,
    /// Counts every change (a context added, removed, moved, or its learner written), so that
    /// a copy changed apart (see [`Contexts::fork`]) can tell whether this table changed since.
    edits: u64,
}

/// The contexts, their order and their counts make a table; slots, the hash table and its seed
/// are how it is stored, so they take no part in equality.
impl PartialEq for Contexts {
    fn eq(&self, other: &Self) -> bool {
        self.max == other.max && self.counts() == other.counts() && self.iter().eq(other.iter())
    }
}

impl fmt::Debug for Contexts {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Contexts")
            .field("contexts", &self.iter().collect::<Vec<_>>())
            .field("max", &self.max)
            .field("counts", &self.counts())
            .finish_non_exhaustive()
    }
}

impl Contexts {
    /// An empty table keeping at most `max` learned and `max` unlearned contexts (`None`:
    /// unbounded). `max` must be at least 1 (the router validates it).
    #[must_use]
    pub fn new(max: Option<u32>) -> Self {
        Contexts {
            max,
            ..Contexts::default()
        }
    }

    #[must_use]
    pub fn max(&self) -> Option<u32> {
        self.max
    }

    #[must_use]
    pub fn index_of(&self, name: &str) -> Option<u32> {
        let hash = self.hasher.hash_one(name);
        let names = &self.names;
        self.table
            .find(hash, |&i| names.get(i as usize).is_some_and(|n| **n == *name))
            .copied()
    }

    /// The slot of `name`, inserting `fresh()` as a new unlearned context if it is absent (which
    /// may drop the oldest unlearned context, never a learned one).
    /// `None` only if the table already holds `u32::MAX` slots.
    pub fn get_or_insert(&mut self, name: &str, fresh: impl FnOnce() -> Learner) -> Option<u32> {
        if let Some(index) = self.index_of(name) {
            return Some(index);
        }
        if self.max.is_some_and(|max| self.unlearned.len >= max) {
            self.remove(self.unlearned.oldest);
            self.dropped += 1;
        }
        self.insert(name, fresh(), Membership::Unlearned)
    }

    /// The slot of `name` for a learning event: like [`Contexts::get_or_insert`], but a new
    /// context is never created on the unlearned list, so a learning event cannot drop one.
    /// Call [`Contexts::learned_at`] once it has learned.
    pub fn get_or_insert_for_learning(&mut self, name: &str, fresh: impl FnOnce() -> Learner) -> Option<u32> {
        if let Some(index) = self.index_of(name) {
            return Some(index);
        }
        // On the learned list at once, as the newest; `learned_at` then evicts if need be.
        self.insert(name, fresh(), Membership::Learned)
    }

    /// Record that context `index` just learned: it becomes the most recently learned, and the
    /// least recently learned context is evicted if that makes too many.
    pub fn learned_at(&mut self, index: u32) {
        let Some(&link) = self.links.get(index as usize) else {
            return;
        };
        self.edits += 1;
        match link.on {
            Membership::Learned if self.learned.newest == index => {}
            Membership::Learned | Membership::Unlearned => {
                self.unlink(index);
                self.append(index, Membership::Learned);
            }
            Membership::Free => return,
        }
        if self.max.is_some_and(|max| self.learned.len > max) {
            self.remove(self.learned.oldest);
            self.evicted += 1;
        }
    }

    /// Make context `index` start afresh: its learner becomes `fresh` and, if it had learned, it
    /// moves to the unlearned list as the newest (dropping the oldest there if need be).
    pub fn unlearn(&mut self, index: u32, fresh: Learner) {
        self.edits += 1;
        if let Some(learner) = self.learners.get_mut(index as usize) {
            *learner = fresh;
        }
        if self.links.get(index as usize).map(|link| link.on) != Some(Membership::Learned) {
            return;
        }
        self.unlink(index);
        if self.max.is_some_and(|max| self.unlearned.len >= max) {
            self.remove(self.unlearned.oldest);
            self.dropped += 1;
        }
        self.append(index, Membership::Unlearned);
    }

    /// The generation of slot `index` while it holds a context.
    #[must_use]
    pub fn generation(&self, index: u32) -> Option<u32> {
        generation(&self.links, index)
    }

    /// The name of the context in slot `index`.
    #[must_use]
    pub fn name(&self, index: u32) -> Option<&str> {
        self.generation(index)?;
        self.names.get(index as usize).map(|n| &**n)
    }

    #[must_use]
    pub fn learner(&self, index: u32) -> Option<&Learner> {
        self.learners.get(index as usize)
    }

    /// The learner of context `index` (its chunk copied first if a [`Shared`] copy holds it).
    pub fn learner_mut(&mut self, index: u32) -> Option<&mut Learner> {
        self.edits += 1;
        self.learners.get_mut(index as usize)
    }

    #[must_use]
    pub fn get(&self, name: &str) -> Option<&Learner> {
        self.index_of(name).and_then(|i| self.learner(i))
    }

    /// How many contexts the table holds.
    #[must_use]
    pub fn len(&self) -> usize {
        self.learned.len as usize + self.unlearned.len as usize
    }

    #[must_use]
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    #[must_use]
    pub fn counts(&self) -> Counts {
        Counts {
            learned: self.learned.len,
            unlearned: self.unlearned.len,
            evicted: self.evicted,
            dropped: self.dropped,
        }
    }

    /// Context names: learned ones least recently learned first, then unlearned ones oldest
    /// first (see [`Contexts::iter`]).
    #[must_use]
    pub fn names(&self) -> Vec<&str> {
        self.iter().map(|(name, _, _)| name).collect()
    }

    /// `(name, learner, learned)` for every context: learned ones least recently learned first,
    /// then unlearned ones oldest first, the order in which they would be let go.
    pub fn iter(&self) -> impl Iterator<Item = (&str, &Learner, bool)> {
        walk(&self.links, self.learned.oldest)
            .chain(walk(&self.links, self.unlearned.oldest))
            .filter_map(|index| {
                let link = self.links.get(index as usize)?;
                Some((
                    &**self.names.get(index as usize)?,
                    self.learners.get(index as usize)?,
                    link.on == Membership::Learned,
                ))
            })
    }

    /// A copy of every context, for a reference count per chunk (see [`Chunked::share`]).
    #[must_use]
    pub fn share(&mut self) -> Shared {
        Shared {
            names: self.names.share(),
            learners: self.learners.share(),
            links: self.links.share(),
            learned: self.learned.oldest,
            unlearned: self.unlearned.oldest,
            max: self.max,
            counts: self.counts(),
        }
    }

    /// A copy of this table to change apart from it (a checkpoint installed without the
    /// router's lock, see `Router::fork_contexts`), for a reference count per chunk: no learner
    /// or name is copied until one is written, here or there. [`Fork::into_contexts`] then
    /// rebuilds its hash table without the lock.
    #[must_use]
    pub fn fork(&mut self) -> Fork {
        Fork {
            names: self.names.share(),
            learners: self.learners.share(),
            links: self.links.share(),
            hasher: self.hasher.clone(),
            learned: self.learned,
            unlearned: self.unlearned,
            free: self.free.clone(),
            max: self.max,
            evicted: self.evicted,
            dropped: self.dropped,
            edits: self.edits,
        }
    }

    /// How many changes the table has had (see [`Contexts::fork`]).
    #[must_use]
    pub fn edits(&self) -> u64 {
        self.edits
    }

    /// Rebuild a table from a snapshot: contexts in [`Contexts::iter`] order, each on the list its
    /// learner says (learned once it has any feedback). Context `i` takes slot `i`. Refused if a
    /// name repeats or a list holds more than `max`.
    pub fn restore(max: Option<u32>, contexts: impl IntoIterator<Item = (String, Learner)>) -> Result<Self, String> {
        let mut table = Contexts::new(max);
        for (name, learner) in contexts {
            if table.index_of(&name).is_some() {
                return Err(format!("context {name:?} appears twice"));
            }
            let on = if learner.feedbacks.iter().any(|&n| n > 0) {
                Membership::Learned
            } else {
                Membership::Unlearned
            };
            table.insert(&name, learner, on).ok_or("more than 2^32 contexts")?;
        }
        if let Some(max) = max
            && (table.learned.len > max || table.unlearned.len > max)
        {
            return Err(format!(
                "{} learned and {} unlearned contexts, more than max_contexts ({max}) allows",
                table.learned.len, table.unlearned.len
            ));
        }
        Ok(table)
    }

    /// Set the counts of contexts let go, as a snapshot recorded them.
    pub fn set_let_go(&mut self, evicted: u64, dropped: u64) {
        self.edits += 1;
        self.evicted = evicted;
        self.dropped = dropped;
    }

    /// Put a new context in a free slot (or a new one) as the newest of list `on`.
    fn insert(&mut self, name: &str, learner: Learner, on: Membership) -> Option<u32> {
        self.edits += 1;
        let index = match self.free.pop() {
            Some(index) => {
                *self.names.get_mut(index as usize)? = name.into();
                *self.learners.get_mut(index as usize)? = learner;
                index
            }
            None => {
                let index = u32::try_from(self.names.len()).ok().filter(|&i| i != NONE)?;
                self.names.push(name.into());
                self.learners.push(learner);
                self.links.push(Link {
                    older: NONE,
                    newer: NONE,
                    generation: 0,
                    on: Membership::Free,
                });
                index
            }
        };
        let hash = self.hasher.hash_one(name);
        let (names, hasher) = (&self.names, &self.hasher);
        self.table.insert_unique(hash, index, |&i| {
            hasher.hash_one(names.get(i as usize).map_or("", |n| &**n))
        });
        self.append(index, on);
        Some(index)
    }

    /// Free slot `index`: out of the hash table and its list, its generation moved on.
    fn remove(&mut self, index: u32) {
        self.edits += 1;
        let Some(name) = self.names.get(index as usize) else {
            return;
        };
        let hash = self.hasher.hash_one(&**name);
        if let Ok(entry) = self.table.find_entry(hash, |&i| i == index) {
            entry.remove();
        }
        self.unlink(index);
        if let Some(link) = self.links.get_mut(index as usize) {
            link.on = Membership::Free;
            link.generation = link.generation.wrapping_add(1);
        }
        if let Some(name) = self.names.get_mut(index as usize) {
            *name = Box::from("");
        }
        self.free.push(index);
    }

    fn list_mut(&mut self, on: Membership) -> Option<&mut List> {
        match on {
            Membership::Learned => Some(&mut self.learned),
            Membership::Unlearned => Some(&mut self.unlearned),
            Membership::Free => None,
        }
    }

    /// Take slot `index` off its list (it stays marked as on it).
    fn unlink(&mut self, index: u32) {
        let Some(&link) = self.links.get(index as usize) else {
            return;
        };
        if let Some(older) = self.links.get_mut(link.older as usize) {
            older.newer = link.newer;
        }
        if let Some(newer) = self.links.get_mut(link.newer as usize) {
            newer.older = link.older;
        }
        if let Some(list) = self.list_mut(link.on) {
            if list.oldest == index {
                list.oldest = link.newer;
            }
            if list.newest == index {
                list.newest = link.older;
            }
            list.len -= 1;
        }
    }

    /// Put slot `index` at the newest end of list `on`.
    fn append(&mut self, index: u32, on: Membership) {
        let Some(list) = self.list_mut(on) else {
            return;
        };
        let older = list.newest;
        list.newest = index;
        if list.oldest == NONE {
            list.oldest = index;
        }
        list.len += 1;
        if let Some(previous) = self.links.get_mut(older as usize) {
            previous.newer = index;
        }
        if let Some(link) = self.links.get_mut(index as usize) {
            *link = Link {
                older,
                newer: NONE,
                generation: link.generation,
                on,
            };
        }
    }
}

/// The generation of slot `index` while it holds a context.
fn generation(links: &Chunked<Link>, index: u32) -> Option<u32> {
    links
        .get(index as usize)
        .filter(|link| link.on != Membership::Free)
        .map(|link| link.generation)
}

/// The slots of one list, oldest first.
fn walk(links: &Chunked<Link>, oldest: u32) -> impl Iterator<Item = u32> + '_ {
    std::iter::successors((oldest != NONE).then_some(oldest), move |&index| {
        links
            .get(index as usize)
            .map(|link| link.newer)
            .filter(|&next| next != NONE)
    })
}

/// A table without its hash table, sharing storage with the table it was forked from (see
/// [`Contexts::fork`]).
pub struct Fork {
    names: Chunked<Box<str>>,
    learners: Chunked<Learner>,
    links: Chunked<Link>,
    hasher: DefaultHashBuilder,
    learned: List,
    unlearned: List,
    free: Vec<u32>,
    max: Option<u32>,
    evicted: u64,
    dropped: u64,
    edits: u64,
}

impl Fork {
    /// The table, equal to the one forked: its hash table rebuilt from the live slots' names.
    #[must_use]
    pub fn into_contexts(self) -> Contexts {
        let mut table = HashTable::with_capacity(self.names.len().saturating_sub(self.free.len()));
        let hasher = &self.hasher;
        for (index, (name, link)) in (0u32..).zip(self.names.iter().zip(self.links.iter())) {
            if link.on != Membership::Free {
                table.insert_unique(hasher.hash_one(&**name), index, |&i| {
                    hasher.hash_one(self.names.get(i as usize).map_or("", |n| &**n))
                });
            }
        }
        Contexts {
            names: self.names,
            learners: self.learners,
            links: self.links,
            table,
            hasher: self.hasher,
            learned: self.learned,
            unlearned: self.unlearned,
            free: self.free,
            max: self.max,
            evicted: self.evicted,
            dropped: self.dropped,
            edits: self.edits,
        }
    }
}

/// Every context of a table at one moment, sharing storage with it (see [`Contexts::share`]);
/// `Send`, so it can be encoded on another thread or without a lock.
pub struct Shared {
    names: Chunked<Box<str>>,
    learners: Chunked<Learner>,
    links: Chunked<Link>,
    learned: u32,
    unlearned: u32,
    max: Option<u32>,
    counts: Counts,
}

impl Shared {
    /// `(name, learner)` of the contexts that learned something, least recently learned first
    /// (the order of [`Router::learned`](crate::router::Router::learned)).
    pub fn learned(&self) -> impl Iterator<Item = (&str, &Learner)> {
        walk(&self.links, self.learned)
            .filter_map(|index| Some((&**self.names.get(index as usize)?, self.learners.get(index as usize)?)))
    }

    /// `(slot, name, learner)` in [`Contexts::iter`] order.
    pub fn iter(&self) -> impl Iterator<Item = (u32, &str, &Learner)> {
        walk(&self.links, self.learned)
            .chain(walk(&self.links, self.unlearned))
            .filter_map(|index| {
                Some((
                    index,
                    &**self.names.get(index as usize)?,
                    self.learners.get(index as usize)?,
                ))
            })
    }

    /// How many slots the table had (an upper bound on every slot index).
    #[must_use]
    pub fn slots(&self) -> usize {
        self.names.len()
    }

    /// The generation of slot `index` while it held a context.
    #[must_use]
    pub fn generation(&self, index: u32) -> Option<u32> {
        generation(&self.links, index)
    }

    #[must_use]
    pub fn max(&self) -> Option<u32> {
        self.max
    }

    #[must_use]
    pub fn counts(&self) -> Counts {
        self.counts
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::learner::{Policy, State};
    use crate::learners::automaton::AutomatonState;

    fn fresh() -> Learner {
        Learner::new(State::LearningAutomaton(AutomatonState {
            probabilities: vec![0.5, 0.5],
        }))
    }

    fn policy() -> Policy {
        Policy::LearningAutomaton(crate::learners::automaton::AutomatonConfig {
            learning_rate: 0.1,
            threshold: 0.99,
            lock: false,
        })
    }

    /// What a feedback does: find or create the context, learn, record the event.
    fn learn(table: &mut Contexts, name: &str) {
        let index = table.get_or_insert_for_learning(name, fresh).unwrap();
        let _ = table.learner_mut(index).unwrap().learn(&policy(), 0, 1.0, 1.0);
        table.learned_at(index);
    }

    fn learned(table: &Contexts) -> Vec<&str> {
        table.iter().filter(|(_, _, l)| *l).map(|(n, _, _)| n).collect()
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
            .map(|(_, n, l)| (n.to_owned(), l.feedbacks.clone()))
            .collect();
        assert_eq!(then, vec![("a".to_owned(), vec![0, 0])]);
        assert_eq!(table.learner(0).map(|l| l.feedbacks.clone()), Some(vec![0, 5]));
    }

    #[test]
    fn learned_contexts_are_evicted_least_recently_learned_first() {
        let mut table = Contexts::new(Some(3));
        for name in ["a", "b", "c"] {
            learn(&mut table, name);
        }
        learn(&mut table, "a"); // a is now the most recent: b goes first
        learn(&mut table, "d");
        assert_eq!(learned(&table), vec!["c", "a", "d"]);
        assert_eq!(table.counts().evicted, 1);
        assert!(table.get("b").is_none());
        learn(&mut table, "b"); // re-created from the prior, evicting c
        assert_eq!(learned(&table), vec!["a", "d", "b"]);
        assert_eq!(table.get("b").unwrap().feedbacks, vec![1, 0]);
        assert_eq!(
            table.counts(),
            Counts {
                learned: 3,
                unlearned: 0,
                evicted: 2,
                dropped: 0
            }
        );
    }

    #[test]
    fn a_fork_is_an_equal_table_that_changes_apart() {
        let mut table = Contexts::new(Some(3));
        for name in ["a", "b", "c", "d", "b"] {
            learn(&mut table, name);
        }
        table.get_or_insert("e", fresh).unwrap();
        let edits = table.edits();
        let mut fork = table.fork().into_contexts();
        assert_eq!(fork, table);
        assert_eq!(fork.edits(), edits);
        for name in ["b", "c", "d", "e"] {
            assert_eq!(fork.index_of(name), table.index_of(name), "{name}");
        }
        assert_eq!(fork.index_of("a"), None, "evicted");
        learn(&mut fork, "f");
        assert_eq!(learned(&fork), ["d", "b", "f"]);
        assert_eq!(learned(&table), ["c", "d", "b"], "the original is untouched");
        assert_eq!(table.edits(), edits);
        assert!(fork.edits() > edits);
        learn(&mut table, "g");
        assert!(table.edits() > edits);
        assert_eq!(fork.index_of("g"), None);
    }

    #[test]
    fn selections_drop_only_unlearned_contexts_and_never_reorder() {
        let mut table = Contexts::new(Some(2));
        learn(&mut table, "x");
        learn(&mut table, "y");
        for i in 0..100 {
            table.get_or_insert(&format!("visitor-{i}"), fresh);
            table.get_or_insert("x", || unreachable!()); // selecting x does not refresh it
        }
        assert_eq!(table.names(), vec!["x", "y", "visitor-98", "visitor-99"]);
        assert_eq!(table.counts().dropped, 98);
        assert_eq!(table.counts().evicted, 0);
        // A selected context that learns moves to the learned list, evicting by learning order.
        learn(&mut table, "visitor-98");
        assert_eq!(table.names(), vec!["y", "visitor-98", "visitor-99"]);
        assert_eq!(table.counts().evicted, 1);
        // Memory stays bounded: slots are reused.
        assert!(table.names.len() <= 5, "{} slots", table.names.len());
    }

    #[test]
    fn a_reused_slot_has_a_new_generation() {
        let mut table = Contexts::new(Some(1));
        let a = table.get_or_insert("a", fresh).unwrap();
        let generation = table.generation(a).unwrap();
        let b = table.get_or_insert("b", fresh).unwrap();
        assert_eq!(a, b, "the slot is reused");
        assert_ne!(table.generation(b), Some(generation));
        assert_eq!(table.name(b), Some("b"));
        assert_eq!(table.index_of("a"), None);
    }

    #[test]
    fn learned_state_depends_only_on_the_learning_events() {
        // Two tables see the same learning events, with different selections in between.
        let events = ["a", "b", "a", "c", "d", "b", "e", "a"];
        let mut quiet = Contexts::new(Some(3));
        let mut busy = Contexts::new(Some(3));
        for (i, name) in events.iter().enumerate() {
            learn(&mut quiet, name);
            for (j, seen) in events[..i].iter().enumerate() {
                busy.get_or_insert(&format!("s{j}"), fresh);
                busy.get_or_insert(seen, fresh);
            }
            learn(&mut busy, name);
        }
        assert_eq!(learned(&quiet), learned(&busy));
        assert_eq!(learned(&quiet), vec!["b", "e", "a"]);
        assert_eq!(quiet.counts().evicted, busy.counts().evicted);
        for name in learned(&quiet) {
            assert_eq!(quiet.get(name), busy.get(name));
        }
    }

    #[test]
    fn restore_keeps_order_and_refuses_what_could_not_be() {
        let mut table = Contexts::new(Some(3));
        for name in ["a", "b", "c", "a"] {
            learn(&mut table, name);
        }
        table.get_or_insert("s", fresh);
        let records: Vec<(String, Learner)> = table.iter().map(|(n, l, _)| (n.to_owned(), l.clone())).collect();
        let mut restored = Contexts::restore(Some(3), records.clone()).unwrap();
        restored.set_let_go(table.counts().evicted, table.counts().dropped);
        assert_eq!(restored, table);
        assert!(
            Contexts::restore(Some(2), records.clone())
                .unwrap_err()
                .contains("max_contexts")
        );
        let mut twice = records;
        twice.push(twice[0].clone());
        assert!(Contexts::restore(None, twice).unwrap_err().contains("twice"));
    }
}
