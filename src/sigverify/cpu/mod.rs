//! The CPU backend: single verification (the reference function every backend must match) and
//! batch verification across the cores the process may use.
//!
//! [`verify_batch`] groups the items by scheme. Ed25519 items under Zip215 on a CPU with AVX-512
//! IFMA go through [`ed25519`] as one slice that divides its own work among the threads
//! (decoding by items, the multiscalar multiplication by window groups); otherwise they are cut
//! into contiguous chunks (one per thread, at least [`MIN_CHUNK`] items each), each run through
//! [`ed25519`]'s batch path (batch under Zip215, item by item under Strict, with the reasons) on
//! a scoped thread. BIP-340
//! items go through [`schnorr`] as one slice that divides its own work among the threads
//! (decoding by items, the multiscalar multiplication by windows). Verdicts are scattered back
//! into item order. A chunk's verdicts do
//! not depend on how the batch was cut: each equals [`verify_one`] of its item (up to the
//! ≤ 2^-127 soundness error of a random linear combination, argued in each scheme's module).

#[cfg(target_arch = "x86_64")]
mod curve25519;
pub mod ed25519;
mod lift;
mod locate;
mod msm;
pub mod schnorr;
mod words;

use super::{Batch, Rules, Scheme, Verdicts};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Mutex;

/// Smallest chunk handed to a thread: below this, the thread's start-up and the loss of batch
/// efficiency cost more than the parallelism gains.
pub const MIN_CHUNK: usize = 64;

/// `f` of every input, in input order, on the calling thread and up to `threads − 1` of the
/// helper threads kept between calls ([`crate::pool`]; each thread claims the next input until
/// none is left; starting threads per call costs ~50 µs each here, a tenth of a two-core Ed25519
/// batch of 1024). A panic in `f` is a bug and is re-raised on the calling thread.
pub(super) fn on_threads<I: Send, R: Send>(inputs: Vec<I>, threads: usize, f: impl Fn(I) -> R + Sync) -> Vec<R> {
    if inputs.len() <= 1 || threads <= 1 {
        return inputs.into_iter().map(f).collect();
    }
    let n = inputs.len();
    let slots: Vec<Mutex<(Option<I>, Option<R>)>> = inputs.into_iter().map(|i| Mutex::new((Some(i), None))).collect();
    let next = AtomicUsize::new(0);
    let job = || {
        while let Some(slot) = slots.get(next.fetch_add(1, Ordering::Relaxed)) {
            // A poisoned lock means `f` panicked on another thread; `pool::run` re-raises it.
            let input = slot.lock().map(|mut s| s.0.take()).unwrap_or(None);
            if let Some(input) = input {
                let r = f(input);
                if let Ok(mut s) = slot.lock() {
                    s.1 = Some(r);
                }
            }
        }
    };
    crate::pool::run(n.min(threads) - 1, &job);
    slots
        .into_iter()
        .map(|s| s.into_inner().unwrap_or_else(|p| p.into_inner()).1.expect("pool::run returns after every input ran"))
        .collect()
}

/// `f` over `items` cut into at most `threads` parts of whole multiples of `unit` items, one
/// part per thread ([`on_threads`]), the results concatenated in order.
pub(super) fn on_parts<'s, I: Sync, R: Send>(
    items: &'s [I],
    threads: usize,
    unit: usize,
    f: impl Fn(&'s [I]) -> Vec<R> + Sync,
) -> Vec<R> {
    let parts = threads.min(items.len().div_ceil(unit)).max(1);
    let size = items.len().div_ceil(parts).div_ceil(unit).max(1) * unit;
    on_threads(items.chunks(size).collect(), threads, f).into_iter().flatten().collect()
}

/// Verifies one item: the reference single verification under `rules` (`rules` is ignored for
/// BIP-340).
pub fn verify_one(scheme: Scheme, rules: Rules, pubkey: &[u8; 32], msg: &[u8], sig: &[u8; 64]) -> bool {
    match scheme {
        Scheme::Ed25519 => ed25519::verify_one(rules, pubkey, msg, sig),
        Scheme::Bip340 => schnorr::verify_one(pubkey, msg, sig),
    }
}

/// Verifies every item of `batch` under `rules` with up to `threads` threads (0 counts as 1).
pub fn verify_batch(batch: &Batch, rules: Rules, threads: usize) -> Verdicts {
    let threads = threads.max(1);
    let mut groups: [(Scheme, Vec<usize>); 2] = [(Scheme::Ed25519, Vec::new()), (Scheme::Bip340, Vec::new())];
    for (i, s) in batch.schemes().iter().enumerate() {
        match s {
            Scheme::Ed25519 => groups[0].1.push(i),
            Scheme::Bip340 => groups[1].1.push(i),
        }
    }
    let mut verdicts = vec![0u8; batch.len()];
    let mut scatter = |idx: &[usize], v: Vec<bool>| {
        for (&i, ok) in idx.iter().zip(v) {
            verdicts[i] = u8::from(ok);
        }
    };
    // BIP-340 runs as one slice that uses the threads inside (see `schnorr::verify_indices`).
    let [(_, ed), (_, bip)] = &groups;
    if !bip.is_empty() {
        scatter(bip, schnorr::verify_indices(batch, bip, threads));
    }
    let mut chunks: Vec<&[usize]> = Vec::new();
    #[cfg(target_arch = "x86_64")]
    if !ed.is_empty() {
        // On CPUs with IFMA: one slice that uses the threads inside, like BIP-340.
        let v = match rules {
            Rules::Zip215 => ed25519::verify_zip215_ifma(batch, ed, threads),
            Rules::Strict => ed25519::verify_strict_ifma(batch, ed, threads),
        };
        if let Some(v) = v {
            scatter(ed, v);
            return Verdicts::from_bytes(verdicts);
        }
    }
    if !ed.is_empty() {
        let parts = threads.min(ed.len().div_ceil(MIN_CHUNK)).max(1);
        let size = ed.len().div_ceil(parts);
        chunks.extend(ed.chunks(size));
    }
    let run = |idx: &[usize]| -> Vec<bool> { ed25519::verify_indices(batch, idx, rules) };
    if threads == 1 || chunks.len() <= 1 {
        for c in &chunks {
            scatter(c, run(c));
        }
    } else {
        let next = AtomicUsize::new(0);
        let done: Mutex<Vec<(usize, Vec<bool>)>> = Mutex::new(Vec::with_capacity(chunks.len()));
        let work = || loop {
            let j = next.fetch_add(1, Ordering::Relaxed);
            let Some(c) = chunks.get(j) else { break };
            let v = run(c);
            // A poisoned lock means another worker panicked; the scope re-raises that panic.
            if let Ok(mut d) = done.lock() {
                d.push((j, v));
            }
        };
        std::thread::scope(|scope| {
            for _ in 1..threads.min(chunks.len()) {
                scope.spawn(work);
            }
            work();
        });
        let done = done.into_inner().unwrap_or_else(|p| p.into_inner());
        for (j, v) in done {
            scatter(chunks[j], v);
        }
    }
    Verdicts::from_bytes(verdicts)
}
