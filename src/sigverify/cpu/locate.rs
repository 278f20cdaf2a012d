//! Finding the invalid items of a batch whose batch equation fails.
//!
//! Every verdict `false` comes from single verification. Every verdict `true` comes from single
//! verification, or from a batch equation that *passed* over a set containing the item, with
//! coefficients independent of how that set was chosen (fresh random ones for Ed25519, a hash of
//! every input for BIP-340). Batch equations are sound (a set containing an invalid item passes
//! with probability ≤ 2^-127, or only after ~2^128 hash evaluations; see the scheme modules) and
//! complete (a set of valid items always passes), so the verdicts equal single verification's.
//!
//! # The group search ([`search`])
//!
//! Check the whole set; if it passes, every item is valid. If it fails, cut it into groups of
//! [`GROUP`] items and check each group; every item of a failing group is decided by single
//! verification. Items arrive prepared (points decoded, challenges hashed), so a group check costs
//! only its multiscalar multiplication. The groups are handed to the checker together, and so
//! are the items left for single verification, so that a backend that checks several at once
//! (lanes, threads) can.
//!
//! Why groups rather than bisection: with `b` invalid items among `n`, halving re-checks about
//! `n` items per level for the first `log2 b` levels (a 1 %-invalid batch of 1024 pays ~4 full
//! multiscalar multiplications), while groups pay one pass over `n` items plus `GROUP` single
//! verifications per invalid item.
//!
//! # The confirmed search ([`locate_confirmed`])
//!
//! For checkers that also offer *plain sums* ([`Confirming`]): the batch equation of a set with
//! every coefficient 1, which is cheaper (no random multiples) but not sound alone, since errors
//! of invalid items can cancel within a set. After the whole batch's equation `Σ z_i D_i` fails
//! (random `z_i`, `D_i` the item's error, zero after the cofactor iff it is valid):
//!
//! 1. the plain sum of each group of [`SUM_GROUP`] items is checked, and the items of failing
//!    groups are decided by single verification, giving a set `V` of items to call invalid;
//! 2. **confirmation**: the failed equation minus the terms of `V`, i.e. `Σ_{i∉V} z_i D_i` with
//!    the *same* `z_i`, must vanish (after the cofactor, on edwards25519). `V` was found by
//!    deterministic computations that never saw the `z_i`, so this is a batch equation over the
//!    items called valid with coefficients independent of that set, and it is sound: if one of
//!    them is invalid (its error cancelled in a plain sum), it fails except with probability
//!    ≤ 2^-127 for Ed25519's random `z_i`; BIP-340's `z_i` are a hash of every input, which an
//!    adversary would have to grind (~2^128 evaluations) to make it pass, as for the batch
//!    equation itself.
//!    Every item of `V` failed single verification, so those verdicts are exact;
//! 3. if the confirmation fails, the plain sums were fooled (a signer can make errors cancel on
//!    purpose) and the group search decides every item again, from its groups down.
//!
//! The confirmation costs one small multiscalar multiplication over `V`. A batch with invalid
//! items made to cancel costs the plain sums on top of the search: at worst about one extra
//! all-valid batch, never a wrong verdict.

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

/// A checker that can also search a failed batch by plain sums (see the module docs).
pub(super) trait Confirming: Checker {
    /// What a failed batch equation leaves for [`Confirming::confirm`]: its random coefficients
    /// and its sum.
    type Failed;
    /// The batch equation over `items` with fresh random coefficients: `None` if it holds.
    fn batch_or_failure(&self, items: &[Self::Item]) -> Option<Self::Failed>;
    /// For each set, whether its plain sum (every coefficient 1) vanishes: true for every set of
    /// valid items, and also for sets whose invalid items cancel.
    fn plain_sums(&self, sets: &[&[Self::Item]]) -> Vec<bool>;
    /// Whether `failed`'s equation over `items`, without the terms of the items `invalid`
    /// (indices into `items`), holds.
    fn confirm(&self, failed: &Self::Failed, items: &[Self::Item], invalid: &[usize]) -> bool;
}

/// Items per group once a batch has failed. Also the largest set that [`locate_confirmed`]
/// hands straight to [`search`], without plain sums or confirmation: such a set is one group,
/// checked by one batch equation, and its items are decided singly only if that fails (a
/// set of one item goes straight to single verification).
pub(super) const GROUP: usize = 16;

/// Items per plain sum in [`locate_confirmed`]: the per-lane plain sums cost about `72m + 270`
/// additions per eight groups of `m` items, the single checks of a failing group `44m`, so at
/// 1 % invalid `m ≈ 8` minimises `(n/8m)(72m + 270) + (n/100)·44m`.
pub(super) const SUM_GROUP: usize = 8;

/// One verdict per item, in order, by the group search alone (the first check, then
/// [`search`]): what the confirmed search falls back to, kept whole for the tests.
#[cfg(test)]
pub(super) fn locate<C: Checker>(checker: &C, items: &[C::Item]) -> Vec<bool> {
    if items.len() > GROUP && checker.check_batch(items) {
        return vec![true; items.len()];
    }
    search(checker, items)
}

/// One verdict per item, in order: plain sums confirmed with the failed batch equation, the
/// group search as fallback (module docs). Every batch verification path uses this.
pub(super) fn locate_confirmed<C: Confirming>(checker: &C, items: &[C::Item]) -> Vec<bool> {
    if items.len() <= GROUP {
        return search(checker, items);
    }
    let Some(failed) = checker.batch_or_failure(items) else {
        return vec![true; items.len()];
    };
    let sets: Vec<&[C::Item]> = items.chunks(SUM_GROUP).collect();
    let mut singles = Vec::new();
    for (g, vanishes) in checker.plain_sums(&sets).into_iter().enumerate() {
        if !vanishes {
            singles.extend(g * SUM_GROUP..(g * SUM_GROUP + SUM_GROUP).min(items.len()));
        }
    }
    let refs: Vec<&C::Item> = singles.iter().map(|&i| &items[i]).collect();
    let mut out = vec![true; items.len()];
    let mut invalid = Vec::new();
    for (&i, ok) in singles.iter().zip(checker.check_each(&refs)) {
        out[i] = ok;
        if !ok {
            invalid.push(i);
        }
    }
    if checker.confirm(&failed, items, &invalid) {
        return out;
    }
    search(checker, items)
}

/// The group search without its first check: groups, then single verification.
fn search<C: Checker>(checker: &C, items: &[C::Item]) -> Vec<bool> {
    let mut out = vec![false; items.len()];
    if items.is_empty() {
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
/// found by `find` ([`locate_confirmed`]).
pub(super) fn verdicts<I>(decoded: Vec<Option<I>>, find: impl FnOnce(&[I]) -> Vec<bool>) -> Vec<bool> {
    let mut out = vec![false; decoded.len()];
    let slots: Vec<usize> = decoded.iter().enumerate().filter(|(_, d)| d.is_some()).map(|(slot, _)| slot).collect();
    // `filter_map` (unlike `flatten`) collects in place, reusing `decoded`'s memory: a fresh
    // buffer of hundreds of KiB is page-faulted in on every call, which on two threads costs
    // more than the copy.
    #[allow(clippy::filter_map_identity)]
    let items: Vec<I> = decoded.into_iter().filter_map(|d| d).collect();
    for (slot, ok) in slots.into_iter().zip(find(&items)) {
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

    /// Items are errors (valid iff 0); batch equations are sums with coefficients drawn at
    /// random from 1..2^20, plain sums have coefficient 1, so errors can be made to cancel.
    struct Errors {
        fallbacks: AtomicUsize,
    }

    fn random_sum(items: &[i64]) -> (Vec<i128>, i128) {
        let z: Vec<i128> = items.iter().map(|_| rand::random_range(1..1i128 << 20)).collect();
        let sum = items.iter().zip(&z).map(|(d, z)| i128::from(*d) * z).sum();
        (z, sum)
    }

    impl Checker for Errors {
        type Item = i64;
        fn check_batch(&self, items: &[i64]) -> bool {
            random_sum(items).1 == 0
        }
        fn check_one(&self, item: &i64) -> bool {
            *item == 0
        }
        fn check_batches(&self, sets: &[&[i64]]) -> Vec<bool> {
            self.fallbacks.fetch_add(1, Ordering::Relaxed);
            sets.iter().map(|s| self.check_batch(s)).collect()
        }
    }

    impl Confirming for Errors {
        type Failed = (Vec<i128>, i128);
        fn batch_or_failure(&self, items: &[i64]) -> Option<Self::Failed> {
            Some(random_sum(items)).filter(|(_, sum)| *sum != 0)
        }
        fn plain_sums(&self, sets: &[&[i64]]) -> Vec<bool> {
            sets.iter().map(|s| s.iter().sum::<i64>() == 0).collect()
        }
        fn confirm(&self, (z, sum): &Self::Failed, items: &[i64], invalid: &[usize]) -> bool {
            sum - invalid.iter().map(|&i| i128::from(items[i]) * z[i]).sum::<i128>() == 0
        }
    }

    #[test]
    fn confirmed_search_finds_every_invalid_item_and_falls_back_when_fooled() {
        for n in [0usize, 1, 16, 17, 100, 1024] {
            for case in 0..4 {
                let mut items = vec![0i64; n];
                let mut fooled = false;
                match case {
                    1 => (0..n).step_by(97).for_each(|i| items[i] = 3),
                    // Two errors that cancel in one plain sum, and an ordinary invalid item.
                    2 if n >= 2 * SUM_GROUP => {
                        items[SUM_GROUP] = 5;
                        items[SUM_GROUP + 3] = -5;
                        items[n - 1] = 1;
                        fooled = n > GROUP;
                    }
                    // Every item invalid.
                    3 => items.iter_mut().for_each(|d| *d = -1),
                    _ => {}
                }
                let c = Errors { fallbacks: AtomicUsize::new(0) };
                let want: Vec<bool> = items.iter().map(|d| *d == 0).collect();
                assert_eq!(locate_confirmed(&c, &items), want, "n={n} case={case}");
                // The group search runs only when fooled (or for sets of at most GROUP items).
                let searched = c.fallbacks.load(Ordering::Relaxed) > 0;
                if n > GROUP {
                    assert_eq!(searched, fooled, "n={n} case={case}");
                }
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
