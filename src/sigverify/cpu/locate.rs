//! Finding the invalid items of a batch whose batch equation fails.
//!
//! Every verdict `true` comes from a batch equation that *passed* over a set containing the item,
//! or from the item's single verification; every `false` comes from single verification. Batch
//! equations are sound (a set containing an invalid item passes with probability ≤ 2^-127, see
//! the scheme modules) and complete (a set of valid items always passes), so the verdicts equal
//! single verification's.
//!
//! Search: check the whole set; if it passes, every item is valid. If it fails, cut it into
//! groups of [`GROUP`] items and check each group; every item of a failing group is decided by
//! single verification. Items arrive prepared (points decoded, challenges hashed), so a group check
//! costs only its multiscalar multiplication. The groups are handed to the checker together, and
//! so are the items left for single verification, so that a backend that checks several at once
//! (lanes, threads) can.
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
    /// The batch equation over each set, in order (for backends that check several at once).
    fn check_batches(&self, sets: &[&[Self::Item]]) -> Vec<bool> {
        sets.iter().map(|s| self.check_batch(s)).collect()
    }
    /// Single verification of each item, in order (for backends that verify several at once).
    fn check_each(&self, items: &[&Self::Item]) -> Vec<bool> {
        items.iter().map(|it| self.check_one(it)).collect()
    }
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
    // Groups checked together; items of failing groups decided together by single verification.
    let groups: Vec<&[C::Item]> = items.chunks(GROUP).collect();
    let multi: Vec<&[C::Item]> = groups.iter().copied().filter(|g| g.len() > 1).collect();
    let mut passed = checker.check_batches(&multi).into_iter();
    let mut singles = Vec::new();
    for (g, group) in groups.iter().enumerate() {
        if group.len() > 1 && passed.next().unwrap_or(false) {
            out[g * GROUP..g * GROUP + group.len()].fill(true);
        } else {
            singles.extend(g * GROUP..g * GROUP + group.len());
        }
    }
    let refs: Vec<&C::Item> = singles.iter().map(|&i| &items[i]).collect();
    for (&i, ok) in singles.iter().zip(checker.check_each(&refs)) {
        out[i] = ok;
    }
    out
}

/// Verdicts for decoded items (`None`: invalid by encoding, verdict `false`), the decoded ones
/// found through [`locate`].
pub(super) fn verdicts<C: Checker>(checker: &C, decoded: Vec<Option<C::Item>>) -> Vec<bool> {
    let mut out = vec![false; decoded.len()];
    let slots: Vec<usize> = decoded.iter().enumerate().filter(|(_, d)| d.is_some()).map(|(slot, _)| slot).collect();
    // `filter_map` (unlike `flatten`) collects in place, reusing `decoded`'s memory: a fresh
    // buffer of hundreds of KiB is page-faulted in on every call, which on two threads costs
    // more than the copy.
    #[allow(clippy::filter_map_identity)]
    let items: Vec<C::Item> = decoded.into_iter().filter_map(|d| d).collect();
    for (slot, ok) in slots.into_iter().zip(locate(checker, &items)) {
        out[slot] = ok;
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
