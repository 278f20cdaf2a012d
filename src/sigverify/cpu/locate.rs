//! Finding the invalid items of a batch whose batch equation fails.
//!
//! Every verdict `true` comes from a batch equation that *passed* over a set containing the item,
//! or from the item's single verification; every `false` comes from single verification. Batch
//! equations are sound (a set containing an invalid item passes with probability ≤ 2^-128, see
//! the scheme modules) and complete (a set of valid items always passes), so the verdicts equal
//! single verification's.
//!
//! Search: check the whole set; if it passes, every item is valid. If it fails, cut it into
//! groups of [`GROUP`] items and check each group; every item of a failing group is decided by
//! single verification. Items arrive prepared (points decoded, challenges hashed), so a group check
//! costs only its multiscalar multiplication.
//!
//! Why groups rather than bisection: with `b` invalid items among `n`, halving re-checks about
//! `n` items per level for the first `log2 b` levels (a 1 %-invalid batch of 1024 pays ~4 full
//! multiscalar multiplications), while groups pay one pass over `n` items plus `GROUP` single
//! verifications per invalid item: about `c(16) + 16·S/100` extra per item at 1 % invalid, where
//! `c(16)` is the per-item cost of a 16-item check and `S` that of a single verification.

/// A batch equation over prepared items, with the matching single check.
pub(super) trait Checker: Sync {
    /// A decoded item.
    type Item: Sync;
    /// Whether the batch equation holds over `items` (true for every set of valid items).
    fn check_batch(&self, items: &[Self::Item]) -> bool;
    /// The item's single verification.
    fn check_one(&self, item: &Self::Item) -> bool;
}

/// Items per group once a batch has failed; also the largest set decided item by item.
pub(super) const GROUP: usize = 16;

/// One verdict per item, in order.
pub(super) fn locate<C: Checker>(checker: &C, items: &[C::Item]) -> Vec<bool> {
    let mut out = vec![false; items.len()];
    if items.is_empty() {
        return out;
    }
    if items.len() > GROUP && checker.check_batch(items) {
        out.fill(true);
        return out;
    }
    for (group, verdicts) in items.chunks(GROUP).zip(out.chunks_mut(GROUP)) {
        if group.len() > 1 && checker.check_batch(group) {
            verdicts.fill(true);
            continue;
        }
        for (v, it) in verdicts.iter_mut().zip(group) {
            *v = checker.check_one(it);
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicUsize, Ordering};

    /// Items are booleans; the batch equation is their conjunction.
    struct Flags {
        batch_calls: AtomicUsize,
    }

    impl Checker for Flags {
        type Item = bool;
        fn check_batch(&self, items: &[bool]) -> bool {
            self.batch_calls.fetch_add(1, Ordering::Relaxed);
            items.iter().all(|b| *b)
        }
        fn check_one(&self, item: &bool) -> bool {
            *item
        }
    }

    #[test]
    fn finds_every_invalid_item() {
        for n in [0usize, 1, 3, 4, 5, 17, 64, 1000] {
            for bad in [vec![], vec![0], vec![n.saturating_sub(1)], vec![1, 2, 3], (0..n).step_by(7).collect()] {
                let items: Vec<bool> = (0..n).map(|i| !bad.contains(&i)).collect();
                let c = Flags { batch_calls: AtomicUsize::new(0) };
                assert_eq!(locate(&c, &items), items, "n={n} bad={bad:?}");
            }
        }
    }

    #[test]
    fn all_valid_costs_one_check() {
        let c = Flags { batch_calls: AtomicUsize::new(0) };
        assert!(locate(&c, &vec![true; 1024]).iter().all(|v| *v));
        assert_eq!(c.batch_calls.load(Ordering::Relaxed), 1);
    }
}
