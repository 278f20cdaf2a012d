//! Finding the invalid items of a batch whose batch equation fails.
//!
//! Every verdict `true` comes from a batch equation that *passed* over a set containing the item,
//! or from the item's single verification; every `false` comes from single verification. Batch
//! equations are sound (a set containing an invalid item passes with probability ≤ 2^-128, see
//! the scheme modules) and complete (a set of valid items always passes), so the verdicts equal
//! single verification's.
//!
//! Search: check the whole set; if it fails, split it in halves and recurse. When the left half
//! passes, the right half is known to contain an invalid item, so its own check is skipped and
//! it is split at once (this only saves work: a skipped check never produces a verdict). Sets of
//! at most [`LEAF`] items are decided item by item. Items arrive prepared (points decoded,
//! challenges hashed), so a re-check costs only the multiscalar multiplication.

/// A batch equation over prepared items, with the matching single check.
pub(super) trait Checker: Sync {
    /// A decoded item.
    type Item: Sync;
    /// Whether the batch equation holds over `items` (true for every set of valid items).
    fn check_batch(&self, items: &[Self::Item]) -> bool;
    /// The item's single verification.
    fn check_one(&self, item: &Self::Item) -> bool;
}

/// Sets this small are verified item by item rather than bisected.
pub(super) const LEAF: usize = 4;

/// One verdict per item, in order.
pub(super) fn locate<C: Checker>(checker: &C, items: &[C::Item]) -> Vec<bool> {
    let mut out = vec![false; items.len()];
    resolve(checker, items, &mut out, false);
    out
}

fn resolve<C: Checker>(checker: &C, items: &[C::Item], out: &mut [bool], known_bad: bool) {
    if items.is_empty() {
        return;
    }
    if items.len() <= LEAF {
        for (o, it) in out.iter_mut().zip(items) {
            *o = checker.check_one(it);
        }
        return;
    }
    if !known_bad && checker.check_batch(items) {
        out.fill(true);
        return;
    }
    let mid = items.len() / 2;
    let (left, right) = items.split_at(mid);
    let (out_left, out_right) = out.split_at_mut(mid);
    resolve(checker, left, out_left, false);
    let left_all_valid = out_left.iter().all(|v| *v);
    // The whole set failed; if the left half is all valid, the right half holds the invalid item.
    resolve(checker, right, out_right, left_all_valid);
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
