//! A growable vector whose copies share storage in chunks, copied on write.
//!
//! Cloning one costs a reference count per chunk of `CHUNK` elements (about 500 for a million
//! contexts), not a copy of every element, so a snapshot can copy the router's contexts under its
//! lock in microseconds and encode them after releasing it. The first write to a chunk that a
//! copy still shares clones that chunk alone (at most `CHUNK` elements, tens of microseconds).

use std::sync::Arc;

/// Elements per chunk: large enough that copying the chunk list is negligible, small enough that
/// copying one chunk on write is a short pause for the call that triggers it.
const CHUNK: usize = 1024;

#[derive(Clone, Debug)]
pub struct Chunked<T> {
    chunks: Vec<Arc<Vec<T>>>,
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
        self.chunks.get(index / CHUNK)?.get(index % CHUNK)
    }

    pub fn iter(&self) -> impl Iterator<Item = &T> {
        self.chunks.iter().flat_map(|chunk| chunk.iter())
    }
}

impl<T: Clone> Chunked<T> {
    /// Element `index`, after copying its chunk if a clone still shares it.
    pub fn get_mut(&mut self, index: usize) -> Option<&mut T> {
        Arc::make_mut(self.chunks.get_mut(index / CHUNK)?).get_mut(index % CHUNK)
    }

    pub fn push(&mut self, value: T) {
        match self.chunks.last_mut() {
            Some(last) if last.len() < CHUNK => Arc::make_mut(last).push(value),
            _ => {
                let mut chunk = Vec::with_capacity(CHUNK);
                chunk.push(value);
                self.chunks.push(Arc::new(chunk));
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
        let copy = items.clone();
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
        let before = items.chunks[0].as_ptr();
        if let Some(x) = items.get_mut(0) {
            *x = 2;
        }
        assert_eq!(items.chunks[0].as_ptr(), before);
        let copy = items.clone();
        if let Some(x) = items.get_mut(0) {
            *x = 3;
        }
        assert_ne!(items.chunks[0].as_ptr(), copy.chunks[0].as_ptr());
        assert_eq!((copy.get(0), items.get(0)), (Some(&2), Some(&3)));
    }
}
