//! An ordered set that keeps its smallest element at hand. The schedulers' timer sets (TTL
//! deadlines, idle sandboxes by last use) are asked for their first element on every poll but
//! change it far less often; a `BTreeSet` answers by walking from its root to its leftmost
//! leaf, a cache miss per level when a thousand simulated schedulers take turns.

use std::collections::btree_set::{self, BTreeSet};

/// A [`BTreeSet`] with its first element cached.
#[derive(Clone, Debug)]
pub struct FirstSet<T> {
    set: BTreeSet<T>,
    first: Option<T>,
}

impl<T> Default for FirstSet<T> {
    fn default() -> Self {
        FirstSet {
            set: BTreeSet::new(),
            first: None,
        }
    }
}

impl<T: Ord + Copy> FirstSet<T> {
    /// An empty set.
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds `x`; false if it was there.
    pub fn insert(&mut self, x: T) -> bool {
        if self.first.is_none_or(|f| x < f) {
            self.first = Some(x);
        }
        self.set.insert(x)
    }

    /// Removes `x`; false if it was not there.
    pub fn remove(&mut self, x: &T) -> bool {
        let had = self.set.remove(x);
        if had && self.first.as_ref() == Some(x) {
            self.first = self.set.first().copied();
        }
        had
    }

    /// The smallest element.
    pub fn first(&self) -> Option<&T> {
        self.first.as_ref()
    }

    /// Removes and returns the smallest element.
    pub fn pop_first(&mut self) -> Option<T> {
        let x = self.set.pop_first();
        self.first = self.set.first().copied();
        x
    }

    /// Whether `x` is in the set.
    pub fn contains(&self, x: &T) -> bool {
        self.set.contains(x)
    }

    /// The elements in order.
    pub fn iter(&self) -> btree_set::Iter<'_, T> {
        self.set.iter()
    }

    /// Number of elements.
    pub fn len(&self) -> usize {
        self.set.len()
    }

    /// Whether the set is empty.
    pub fn is_empty(&self) -> bool {
        self.set.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn first_follows_every_change() {
        let mut f: FirstSet<(u32, u32)> = FirstSet::new();
        let mut b: BTreeSet<(u32, u32)> = BTreeSet::new();
        assert!(f.is_empty() && f.first().is_none() && f.pop_first().is_none());
        let mut x = 99u64;
        for _ in 0..5000 {
            x = x
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            let v = (((x >> 33) % 40) as u32, ((x >> 50) % 3) as u32);
            match (x >> 20) % 4 {
                0 | 1 => assert_eq!(f.insert(v), b.insert(v)),
                2 => assert_eq!(f.remove(&v), b.remove(&v)),
                _ => assert_eq!(f.pop_first(), b.pop_first()),
            }
            assert_eq!(f.first(), b.first());
            assert_eq!(f.len(), b.len());
            assert_eq!(f.is_empty(), b.is_empty());
            assert_eq!(f.contains(&v), b.contains(&v));
            assert!(f.iter().eq(b.iter()));
        }
    }
}
