//! A growable vector whose copies share storage in chunks, copied on write.
//!
//! [`Chunked::share`] hands out a copy for a reference count per chunk of `CHUNK` elements
//! (about 500 for a million contexts), not a copy of every element, so a snapshot can copy the
//! router's contexts under its lock in microseconds and encode them after releasing it. The
//! first write to a chunk that a copy still shares clones that chunk alone (at most `CHUNK`
//! elements, tens of microseconds); a chunk no copy holds any longer is taken back as it is.
//!
//! A chunk is a plain vector until it is shared, and becomes one again on its first write: the
//! hot path (a feedback writes a learner and up to four list links) then writes in place, with
//! neither the atomic read-modify-write that `Arc::make_mut` costs on every call nor the
//! indirection through the `Arc`.

use std::sync::Arc;

/// Elements per chunk: large enough that copying the chunk list is negligible, small enough that
/// copying one chunk on write is a short pause for the call that triggers it.
const CHUNK: usize = 1024;

#[derive(Clone, Debug)]
enum Chunk<T> {
    /// Held by this vector alone.
    Owned(Vec<T>),
    /// Shared with copies made by [`Chunked::share`] (some may be gone).
    Shared(Arc<Vec<T>>),
}

impl<T> Chunk<T> {
    fn items(&self) -> &[T] {
        match self {
            Chunk::Owned(items) => items,
            Chunk::Shared(items) => items,
        }
    }
}

impl<T: Clone> Chunk<T> {
    /// The chunk's items to write, copied first if a copy still shares them.
    fn items_mut(&mut self) -> &mut Vec<T> {
        if let Chunk::Shared(shared) = self {
            let items = std::mem::take(Arc::make_mut(shared));
            *self = Chunk::Owned(items);
        }
        match self {
            Chunk::Owned(items) => items,
            Chunk::Shared(shared) => Arc::make_mut(shared),
        }
    }
}

/// `Clone` copies the chunks this vector owns; [`Chunked::share`] is the cheap copy.
#[derive(Clone, Debug)]
pub struct Chunked<T> {
    chunks: Vec<Chunk<T>>,
    len: usize,
}

impl<T> Default for Chunked<T> {
    fn default() -> Self {
        Chunked {
            chunks: Vec::new(),
            len: 0,
        }
    }
}

impl<T: PartialEq> PartialEq for Chunked<T> {
    fn eq(&self, other: &Self) -> bool {
        self.len == other.len && self.iter().eq(other.iter())
    }
}

impl<T> Chunked<T> {
    #[must_use]
    pub fn len(&self) -> usize {
        self.len
    }

    #[must_use]
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    #[must_use]
    pub fn get(&self, index: usize) -> Option<&T> {
        self.chunks.get(index / CHUNK)?.items().get(index % CHUNK)
    }

    pub fn iter(&self) -> impl Iterator<Item = &T> {
        self.chunks.iter().flat_map(|chunk| chunk.items().iter())
    }

    /// A copy that shares every chunk with this vector, for a reference count per chunk (and, for
    /// a chunk written since the last share, the allocation of its count).
    pub fn share(&mut self) -> Chunked<T> {
        let chunks = self
            .chunks
            .iter_mut()
            .map(|chunk| {
                let shared = match chunk {
                    Chunk::Shared(items) => items.clone(),
                    Chunk::Owned(items) => Arc::new(std::mem::take(items)),
                };
                *chunk = Chunk::Shared(shared.clone());
                Chunk::Shared(shared)
            })
            .collect();
        Chunked { chunks, len: self.len }
    }
}

impl<T: Clone> Chunked<T> {
    /// Element `index`, after copying its chunk if a copy still shares it.
    pub fn get_mut(&mut self, index: usize) -> Option<&mut T> {
        self.chunks.get_mut(index / CHUNK)?.items_mut().get_mut(index % CHUNK)
    }

    pub fn push(&mut self, value: T) {
        match self.chunks.last_mut() {
            Some(last) if last.items().len() < CHUNK => last.items_mut().push(value),
            _ => {
                let mut chunk = Vec::with_capacity(CHUNK);
                chunk.push(value);
                self.chunks.push(Chunk::Owned(chunk));
            }
        }
        self.len += 1;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn behaves_like_a_vec_and_clones_keep_their_moment() {
        let mut items = Chunked::default();
        let mut plain = Vec::new();
        for i in 0..(3 * CHUNK + 5) {
            items.push(i);
            plain.push(i);
        }
        let copy = items.share();
        for i in (0..plain.len()).step_by(7) {
            if let Some(x) = items.get_mut(i) {
                *x += 1;
            }
            plain[i] += 1;
        }
        items.push(0);
        plain.push(0);
        assert_eq!(items.iter().copied().collect::<Vec<_>>(), plain);
        assert_eq!(items.len(), plain.len());
        assert_eq!(items.get(plain.len()), None);
        assert!(copy.iter().copied().eq(0..(3 * CHUNK + 5)));
        assert_ne!(copy, items);
        assert!(Chunked::<u8>::default().is_empty());
    }

    #[test]
    fn an_unshared_chunk_is_written_in_place() {
        let mut items = Chunked::default();
        items.push(1);
        let before = items.chunks[0].items().as_ptr();
        if let Some(x) = items.get_mut(0) {
            *x = 2;
        }
        assert_eq!(items.chunks[0].items().as_ptr(), before);
        let copy = items.share();
        if let Some(x) = items.get_mut(0) {
            *x = 3;
        }
        assert_ne!(items.chunks[0].items().as_ptr(), copy.chunks[0].items().as_ptr());
        assert_eq!((copy.get(0), items.get(0)), (Some(&2), Some(&3)));
    }

    #[test]
    fn a_chunk_no_copy_holds_is_taken_back_without_a_copy() {
        let mut items = Chunked::default();
        items.push(1);
        let before = items.chunks[0].items().as_ptr();
        drop(items.share());
        assert!(matches!(items.chunks[0], Chunk::Shared(_)));
        if let Some(x) = items.get_mut(0) {
            *x = 2;
        }
        assert!(matches!(items.chunks[0], Chunk::Owned(_)));
        assert_eq!(items.chunks[0].items().as_ptr(), before);
        let mut clone = items.clone();
        if let Some(x) = clone.get_mut(0) {
            *x = 3;
        }
        assert_eq!((items.get(0), clone.get(0)), (Some(&2), Some(&3)));
    }
}
