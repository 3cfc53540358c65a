//! The models one selection may choose from: all of them, or a subset given as a mask.
//!
//! Learners draw from their own distribution restricted to the subset and renormalized over it,
//! which is what fallbacks (skip the model that just failed) and budgets (skip what no longer
//! fits) need. The mask is borrowed, so a selection over all models allocates nothing.

/// `None` allows every model; `Some(mask)` allows the models whose entry is `true`.
#[derive(Clone, Copy, Debug)]
pub struct Subset<'a>(pub Option<&'a [bool]>);

impl Subset<'_> {
    pub const ALL: Subset<'static> = Subset(None);

    #[must_use]
    pub fn contains(self, arm: usize) -> bool {
        self.0.is_none_or(|mask| mask.get(arm).copied().unwrap_or(false))
    }

    /// How many of `n` models are allowed.
    #[must_use]
    pub fn count(self, n: usize) -> usize {
        self.0
            .map_or(n, |mask| mask.iter().take(n).filter(|&&allowed| allowed).count())
    }

    /// The `k`-th allowed model (0-based) among the first `n`.
    #[must_use]
    pub fn nth(self, n: usize, k: usize) -> Option<usize> {
        (0..n).filter(|&arm| self.contains(arm)).nth(k)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn all_and_masked() {
        assert!(Subset::ALL.contains(3));
        assert_eq!(Subset::ALL.count(4), 4);
        let mask = [true, false, true, false];
        let s = Subset(Some(&mask));
        assert!(s.contains(0) && !s.contains(1) && !s.contains(9));
        assert_eq!(s.count(4), 2);
        assert_eq!(s.nth(4, 1), Some(2));
        assert_eq!(s.nth(4, 2), None);
    }
}
