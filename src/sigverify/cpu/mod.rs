//! The CPU backend: single verification (the reference function every backend must match) and
//! batch verification across the cores the process may use.
//!
//! [`verify_batch`] groups the items by scheme. On a CPU with AVX-512 IFMA (see below), Ed25519
//! items under either rule go through [`ed25519`] as one slice that divides its own work among
//! the threads: Zip215 by the batch equation on our eight-lane arithmetic (decoding by items, the
//! multiscalar multiplication by window groups), Strict item by item, eight per vector, split by
//! items. Otherwise they are cut into contiguous chunks of equal size, at most one per thread
//! and one per started [`MIN_CHUNK`] items (65 items on two threads: 33 and 32), each run through [`ed25519`]'s dalek path (the batch equation under Zip215, item
//! by item under Strict) on a scoped thread. BIP-340 items go through [`schnorr`] as one slice
//! that divides its own work among the threads (decoding by items, the multiscalar
//! multiplication by windows); only its `lift_x` decoding uses IFMA where present. Verdicts are
//! scattered back into item order. A verdict does not depend on how the batch was cut, on the
//! thread count or on the arithmetic: each equals [`verify_one`] of its item (up to the
//! soundness error of the batch equation, argued in each scheme's module: ≤ 2^-127 for
//! Ed25519's random coefficients; for BIP-340's coefficients, hashed from the batch, about
//! 2^128 hash evaluations to grind one that hides an invalid item).
//! Every scheme uses at most [`threads_used`] threads for its items.
//!
//! # AVX-512 IFMA and the portable path
//!
//! Our own eight-lane arithmetic (`curve25519`, and `lift_x` for secp256k1) needs AVX-512F, DQ
//! and IFMA. The only way to reach it is through an `IfmaToken`, a zero-sized value that only
//! CPU feature detection constructs; every safe entry point of that arithmetic takes one, so
//! the `unsafe` calls into `#[target_feature]` code inside rest on a type, not on a convention.
//!
//! Setting the environment variable [`NO_IFMA_ENV`] (`PARTHENON_NO_IFMA`) to anything but empty
//! or `0` makes [`verify_batch`] take the portable path (curve25519-dalek and k256) that CPUs
//! without IFMA run, on any CPU. It is read once per process, at the first verification;
//! [`uses_ifma`] says which path this process takes. (curve25519-dalek picks its own internal
//! backend by CPUID; the variable does not change that.) Tests compare both paths in one run
//! through [`verify_batch_portable`].

#[cfg(target_arch = "x86_64")]
mod curve25519;
pub mod ed25519;
mod lift;
mod locate;
mod msm;
pub mod schnorr;
mod words;

use super::{Batch, Rules, Scheme, Verdicts};
use std::ffi::OsStr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Mutex, OnceLock};

/// Items per thread: a batch uses at most one thread per started `MIN_CHUNK` items (so at most
/// 64 items use one), since below that a thread's start-up and the loss of batch efficiency cost
/// more than the parallelism gains.
pub const MIN_CHUNK: usize = 64;

/// The threads [`verify_batch`] uses for one scheme's `items` items when allowed `threads`: at
/// most one per [`MIN_CHUNK`] items, at least one.
pub fn threads_used(items: usize, threads: usize) -> usize {
    threads.clamp(1, items.div_ceil(MIN_CHUNK).max(1))
}

/// The environment variable that forces the portable path (module docs): any value but empty
/// or `0` turns the AVX-512 IFMA arithmetic off for this process.
pub const NO_IFMA_ENV: &str = "PARTHENON_NO_IFMA";

/// Whether a value of [`NO_IFMA_ENV`] turns IFMA off.
fn disables_ifma(value: Option<&OsStr>) -> bool {
    value.is_some_and(|v| !v.is_empty() && v != "0")
}

/// [`NO_IFMA_ENV`] as read at the first call of this process.
fn ifma_disabled_by_env() -> bool {
    static DISABLED: OnceLock<bool> = OnceLock::new();
    *DISABLED.get_or_init(|| disables_ifma(std::env::var_os(NO_IFMA_ENV).as_deref()))
}

pub(crate) use token::IfmaToken;

/// The token lives in a module of its own: its field is private to this module, so no other code
/// in the crate (the IFMA arithmetic included) can make one without CPUID saying yes.
mod token {
    use super::ifma_disabled_by_env;

    /// Proof that this CPU has AVX-512F, AVX-512DQ and AVX-512 IFMA, which everything compiled
    /// with `#[target_feature(enable = "avx512f,avx512ifma,avx512dq")]` here needs. Zero-sized;
    /// only [`IfmaToken::hardware`] (CPUID) constructs it, and the safe entry points of our
    /// eight-lane arithmetic take one, so holding one is what makes their `unsafe` calls sound.
    #[derive(Clone, Copy, Debug)]
    #[cfg_attr(not(target_arch = "x86_64"), allow(dead_code))]
    pub(crate) struct IfmaToken(());

    impl IfmaToken {
        /// The token iff this CPU has the three features (std caches CPUID), whatever
        /// [`NO_IFMA_ENV`](super::NO_IFMA_ENV) says: for the arithmetic's own tests.
        pub(crate) fn hardware() -> Option<IfmaToken> {
            #[cfg(target_arch = "x86_64")]
            if std::arch::is_x86_feature_detected!("avx512f")
                && std::arch::is_x86_feature_detected!("avx512ifma")
                && std::arch::is_x86_feature_detected!("avx512dq")
            {
                return Some(IfmaToken(()));
            }
            None
        }

        /// The token for routing: [`IfmaToken::hardware`] unless
        /// [`NO_IFMA_ENV`](super::NO_IFMA_ENV) turns IFMA off.
        pub(crate) fn enabled() -> Option<IfmaToken> {
            if ifma_disabled_by_env() {
                return None;
            }
            IfmaToken::hardware()
        }
    }
}

/// Whether [`verify_batch`] runs on our AVX-512 IFMA arithmetic in this process: the CPU has
/// it and [`NO_IFMA_ENV`] does not turn it off.
pub fn uses_ifma() -> bool {
    IfmaToken::enabled().is_some()
}

/// The token of a test of the IFMA arithmetic, or `None` (the test then passes without running)
/// with a skip line on stderr that the test harness does not capture, so CI logs show it.
#[cfg(test)]
pub(crate) fn ifma_or_skip(test: &str) -> Option<IfmaToken> {
    let token = IfmaToken::hardware();
    if token.is_none() {
        use std::io::Write;
        let line = format!("skip: {test}: this CPU lacks AVX-512F/DQ/IFMA; the test passes without running\n");
        let _ = std::io::stderr().write_all(line.as_bytes());
    }
    token
}

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
    verify_batch_on(batch, rules, threads, IfmaToken::enabled())
}

/// [`verify_batch`] on the portable path (curve25519-dalek and k256) whatever the CPU: what
/// CPUs without AVX-512 IFMA, or processes with [`NO_IFMA_ENV`] set, run. For tests and fuzzing
/// that compare both paths in one process; not part of the supported API.
#[doc(hidden)]
pub fn verify_batch_portable(batch: &Batch, rules: Rules, threads: usize) -> Verdicts {
    verify_batch_on(batch, rules, threads, None)
}

/// [`verify_batch`] on our IFMA arithmetic where `ifma` is given, on the portable path otherwise.
fn verify_batch_on(batch: &Batch, rules: Rules, threads: usize, ifma: Option<IfmaToken>) -> Verdicts {
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
        scatter(bip, schnorr::verify_indices(batch, bip, threads, ifma));
    }
    let mut chunks: Vec<&[usize]> = Vec::new();
    #[cfg(target_arch = "x86_64")]
    if let (false, Some(token)) = (ed.is_empty(), ifma) {
        // On CPUs with IFMA: one slice that uses the threads inside, like BIP-340.
        let v = match rules {
            Rules::Zip215 => ed25519::verify_zip215_ifma(token, batch, ed, threads),
            Rules::Strict => ed25519::verify_strict_ifma(token, batch, ed, threads),
        };
        if let Some(v) = v {
            scatter(ed, v);
            return Verdicts::from_bytes(verdicts);
        }
    }
    if !ed.is_empty() {
        let parts = threads_used(ed.len(), threads);
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
                // Fewer threads when the system refuses one: the queue still empties.
                if !crate::pool::spawn_scoped(scope, work) {
                    break;
                }
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn no_ifma_values() {
        assert!(!disables_ifma(None));
        assert!(!disables_ifma(Some(OsStr::new(""))));
        assert!(!disables_ifma(Some(OsStr::new("0"))));
        for v in ["1", "true", "yes"] {
            assert!(disables_ifma(Some(OsStr::new(v))), "{v}");
        }
    }

    #[test]
    fn tokens_follow_the_cpu_and_the_override() {
        #[cfg(target_arch = "x86_64")]
        let has = std::arch::is_x86_feature_detected!("avx512f")
            && std::arch::is_x86_feature_detected!("avx512ifma")
            && std::arch::is_x86_feature_detected!("avx512dq");
        #[cfg(not(target_arch = "x86_64"))]
        let has = false;
        assert_eq!(IfmaToken::hardware().is_some(), has);
        assert_eq!(uses_ifma(), has && !disables_ifma(std::env::var_os(NO_IFMA_ENV).as_deref()));
    }

    #[test]
    fn threads_used_is_one_per_min_chunk() {
        assert_eq!(threads_used(0, 8), 1);
        assert_eq!(threads_used(10, 0), 1);
        assert_eq!(threads_used(64, 8), 1);
        assert_eq!(threads_used(65, 8), 2);
        assert_eq!(threads_used(200, 2), 2);
        assert_eq!(threads_used(100_000, 3), 3);
    }
}
