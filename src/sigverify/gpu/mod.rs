//! GPU batch verification: Ed25519 and BIP-340 on CUDA and OpenCL from one kernel source.
//!
//! # What is computed
//!
//! The kernels under `kernels/` (portable C headers, thin CUDA and OpenCL entries) compute, one
//! thread per signature, exactly the verdicts of the CPU backend:
//!
//! - Ed25519 under [`EdRules::Zip215`] (ed25519-zebra) or [`EdRules::Strict`] (ed25519-dalek
//!   `verify_strict`), adversarial encodings included (non-canonical `y`, `x = 0` with the sign
//!   bit set, small-order and mixed-order points, `S >= L`);
//! - BIP-340 (libsecp256k1 `schnorrsig_verify`), messages of any length.
//!
//! Two passes per batch: a hashing kernel (SHA-512 for Ed25519, the tagged SHA-256 for BIP-340)
//! writes one 32-byte challenge per item, then the curve kernel writes one verdict byte per item.
//!
//! # Layout
//!
//! A [`SoaBatch`] is the batch's structure of arrays copied as is: scheme codes, public keys,
//! signatures, the messages concatenated, and `len + 1` offsets. [`SoaBatch::check`] validates it
//! before anything reaches a device; an inconsistent layout is a [`GpuError::Layout`] naming the
//! item, never a verdict.
//!
//! # Kernel design
//!
//! One thread per signature; the host groups a mixed batch's items by scheme before they reach
//! a device ([`grouped_by_scheme`]), so a warp runs one scheme's code; the hashing pass is its own kernel; the double-scalar multiplications
//! `[S]B - [k]A` and `[s]G - [e]P` use Straus with signed radix-16 windows for the variable point
//! (tables of 1..8 times `A` or `P`, built per thread); on secp256k1 `e` is first split with the
//! GLV endomorphism into halves below 2^128, halving the doublings. Ed25519 uses five 51-bit limbs with
//! complete extended-coordinate formulas; secp256k1 uses four 64-bit limbs, Jacobian coordinates
//! with every special case of the addition handled, and libsecp256k1's addition chains for
//! inversion and square roots. The fixed-base halves `[S]B` and `[s]G` come from tables in device
//! memory ([`base_tables`]: `[j·256^w]` multiples written once per device), at most 33 additions
//! and no doublings, added after the variable half's Straus loop. Both hosts stage batches through
//! pinned memory on two streams or queues, chunks alternating, so copies overlap compute.
//!
//! # Faults
//!
//! Every device failure (no driver, build failure, allocation failure, lost device) is a
//! [`GpuError`]; callers fall back to the CPU for that batch. A `GpuError` never stands for a
//! verdict.

pub mod base_tables;
#[cfg(feature = "cuda")]
pub mod cuda;
#[cfg(feature = "cuda")]
pub mod kernel_cache;
#[cfg(feature = "cuda")]
pub mod nvrtc;
#[cfg(feature = "opencl")]
pub mod opencl;
pub mod route;
pub mod synthetic;

/// Scheme code of an Ed25519 item in [`SoaBatch::schemes`] (`SCHEME_ED25519` in the kernels).
pub const SCHEME_ED25519: u8 = 0;
/// Scheme code of a BIP-340 item in [`SoaBatch::schemes`] (`SCHEME_BIP340` in the kernels).
pub const SCHEME_BIP340: u8 = 1;

/// Which Ed25519 rule the kernel applies (BIP-340 has one rule).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum EdRules {
    /// ZIP-215 (ed25519-zebra): permissive decoding, cofactored equation.
    Zip215,
    /// ed25519-dalek `verify_strict`: no small-order A or R, cofactorless, R compared as bytes.
    Strict,
}

impl EdRules {
    /// The code passed to the kernel (`RULES_*` in `kernels/common/portable.h`).
    pub fn code(self) -> u32 {
        match self {
            EdRules::Zip215 => 0,
            EdRules::Strict => 1,
        }
    }
}

/// Why a device produced no verdicts. Never a verdict: the caller verifies on the CPU instead.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum GpuError {
    /// No usable device or driver.
    #[error("no device: {0}")]
    NoDevice(String),
    /// The embedded kernel source did not assemble or the driver's compiler rejected it.
    #[error("kernel build failed: {0}")]
    Build(String),
    /// A device call (allocation, copy, launch, synchronisation) failed.
    #[error("device call `{call}` failed: {reason}")]
    Call {
        /// The API call.
        call: &'static str,
        /// The driver's error.
        reason: String,
    },
    /// The batch layout is inconsistent (caught on the host before any launch).
    #[error("batch layout: item {item}: {reason}")]
    Layout {
        /// The first offending item.
        item: usize,
        /// What is wrong with it.
        reason: String,
    },
}

impl GpuError {
    /// A [`GpuError::Call`] of `call` failing for `reason`.
    pub fn call(call: &'static str, reason: impl std::fmt::Display) -> Self {
        GpuError::Call { call, reason: reason.to_string() }
    }
}

/// A batch as structure of arrays, the layout the kernels read.
#[derive(Debug, Clone, Copy)]
pub struct SoaBatch<'a> {
    /// One scheme code per item ([`SCHEME_ED25519`] or [`SCHEME_BIP340`]).
    pub schemes: &'a [u8],
    /// One 32-byte public key per item (Ed25519 encoding, or BIP-340 x-only).
    pub pubkeys: &'a [[u8; 32]],
    /// One 64-byte signature per item.
    pub signatures: &'a [[u8; 64]],
    /// Every message, concatenated.
    pub messages: &'a [u8],
    /// `len + 1` offsets: message `i` is `messages[offsets[i] - offsets[0] .. offsets[i + 1] - offsets[0]]`.
    pub offsets: &'a [u64],
}

impl<'a> SoaBatch<'a> {
    /// Number of items.
    pub fn len(&self) -> usize {
        self.schemes.len()
    }

    /// Whether there are no items.
    pub fn is_empty(&self) -> bool {
        self.schemes.is_empty()
    }

    /// Checks that the arrays agree: equal lengths, `len + 1` non-decreasing offsets spanning
    /// exactly `messages`, known scheme codes.
    pub fn check(&self) -> Result<(), GpuError> {
        let n = self.len();
        let bad = |item: usize, reason: String| Err(GpuError::Layout { item, reason });
        if self.pubkeys.len() != n || self.signatures.len() != n {
            return bad(
                0,
                format!("{n} schemes, {} public keys, {} signatures", self.pubkeys.len(), self.signatures.len()),
            );
        }
        if self.offsets.len() != n + 1 {
            return bad(0, format!("{} offsets for {n} items (need {})", self.offsets.len(), n + 1));
        }
        for i in 0..n {
            if self.offsets[i + 1] < self.offsets[i] {
                return bad(i, "message offsets decrease".into());
            }
            if self.schemes[i] > SCHEME_BIP340 {
                return bad(i, format!("unknown scheme code {}", self.schemes[i]));
            }
        }
        let span = self.offsets[n] - self.offsets[0];
        if span != self.messages.len() as u64 {
            return bad(
                n.saturating_sub(1),
                format!("offsets span {span} bytes, messages hold {}", self.messages.len()),
            );
        }
        Ok(())
    }

    /// Items `range` as a batch of their own (offsets keep their absolute values; the kernels
    /// subtract the first).
    pub fn slice(&self, range: std::ops::Range<usize>) -> SoaBatch<'a> {
        let lo = (self.offsets[range.start] - self.offsets[0]) as usize;
        let hi = (self.offsets[range.end] - self.offsets[0]) as usize;
        SoaBatch {
            schemes: &self.schemes[range.clone()],
            pubkeys: &self.pubkeys[range.clone()],
            signatures: &self.signatures[range.clone()],
            messages: &self.messages[lo..hi],
            offsets: &self.offsets[range.start..range.end + 1],
        }
    }
}

/// A device that verifies [`SoaBatch`]es: one verdict byte per item, 1 valid, 0 invalid.
pub trait GpuVerifier: Send + Sync {
    /// A one-line description of the device ("OpenCL: NVIDIA H100 ..."), how its kernels were
    /// obtained included (compiled now, or loaded from a cache).
    fn describe(&self) -> String;
    /// What the device's speed depends on, and nothing else: the device (name, architecture or
    /// driver) and the kernels (a digest of their source and build options), not how they were
    /// loaded. The crossover cache is keyed by it, so every process on the machine finds the
    /// crossover the first one calibrated. Defaults to [`GpuVerifier::describe`].
    fn identity(&self) -> String {
        self.describe()
    }
    /// Items per chunk of [`GpuVerifier::verify_soa`]: a batch is cut into chunks of at most this
    /// many items, alternating over the device's streams or queues.
    fn chunk_items(&self) -> usize;
    /// Verifies every item in chunks of at most `chunk_items` items; `Err` means no verdicts at
    /// all. Also returns the kernel-only seconds: how long at least one of the batch's kernels
    /// was running on the device ([`busy_seconds`] of the kernels' device-timed intervals), so
    /// kernels that overlap on two streams count once. Small chunks are for tests and tuning (a
    /// lane drained and staged again); callers use [`GpuVerifier::verify_soa`].
    fn verify_chunked(
        &self,
        batch: &SoaBatch<'_>,
        rules: EdRules,
        chunk_items: usize,
    ) -> Result<(Vec<u8>, f64), GpuError>;
    /// Verifies every item; `Err` means no verdicts at all.
    fn verify_soa(&self, batch: &SoaBatch<'_>, rules: EdRules) -> Result<Vec<u8>, GpuError> {
        self.verify_chunked(batch, rules, self.chunk_items()).map(|(v, _)| v)
    }
    /// Like [`GpuVerifier::verify_soa`], and the kernel-only seconds, for benchmarks.
    fn verify_soa_timed(&self, batch: &SoaBatch<'_>, rules: EdRules) -> Result<(Vec<u8>, f64), GpuError> {
        self.verify_chunked(batch, rules, self.chunk_items())
    }
}

/// A digest of a kernel source and its build options (32 hex digits), for
/// [`GpuVerifier::identity`].
pub fn kernel_digest(source: &str, options: &str) -> String {
    let mut h = blake3::Hasher::new();
    h.update(&(source.len() as u64).to_le_bytes());
    h.update(source.as_bytes());
    h.update(options.as_bytes());
    h.finalize().to_hex()[..32].to_string()
}

/// Runs `verify` over `batch` with its items grouped by scheme, and returns the verdicts in the
/// batch's own order (with the kernel seconds `verify` reported).
///
/// The kernels run one thread per item and branch on the item's scheme, so a warp (32 threads)
/// holding both Ed25519 and BIP-340 items executes both code paths one after the other, at
/// about half speed. A batch whose schemes change more than once (interleaved) is therefore
/// copied, stably partitioned (Ed25519 items first, then BIP-340, each in batch order, message
/// offsets rebuilt), verified, and its verdicts scattered back to their items. A batch that is
/// already grouped (one scheme, or one change) is verified as is. The copy costs a memcpy of the
/// batch, far below the verification's cost.
pub fn grouped_by_scheme(
    batch: &SoaBatch<'_>,
    verify: impl FnOnce(&SoaBatch<'_>) -> Result<(Vec<u8>, f64), GpuError>,
) -> Result<(Vec<u8>, f64), GpuError> {
    if batch.schemes.windows(2).filter(|w| w[0] != w[1]).count() <= 1 {
        return verify(batch);
    }
    // The layout is checked before it is used to cut messages.
    batch.check()?;
    let n = batch.len();
    let order: Vec<usize> = (0..n)
        .filter(|&i| batch.schemes[i] == SCHEME_ED25519)
        .chain((0..n).filter(|&i| batch.schemes[i] != SCHEME_ED25519))
        .collect();
    let base = batch.offsets[0];
    let mut grouped = OwnedSoa::with_capacity(n, batch.messages.len());
    for &i in &order {
        let m = &batch.messages[(batch.offsets[i] - base) as usize..(batch.offsets[i + 1] - base) as usize];
        grouped.push(batch.schemes[i], &batch.pubkeys[i], m, &batch.signatures[i]);
    }
    let (verdicts, secs) = verify(&grouped.view())?;
    if verdicts.len() != n {
        return Err(GpuError::call("sig_verify", format!("{} verdicts for {n} items", verdicts.len())));
    }
    let mut out = vec![0u8; n];
    for (k, &i) in order.iter().enumerate() {
        out[i] = verdicts[k];
    }
    Ok((out, secs))
}

/// Stack of the thread a kernel compiler runs on ([`on_compiler_stack`]).
pub const COMPILER_STACK: usize = 64 << 20;

/// Runs `f` on a thread of its own with a [`COMPILER_STACK`]-byte stack and returns its result;
/// a panic inside is an error. Kernel compilers (NVRTC, an OpenCL driver's `clBuildProgram`) run
/// in the calling process and recurse deeply: NVRTC 12.9 overflowed a 4 MiB stack on these
/// kernels (8 MiB was enough), and Rust's test and tokio threads have 2 MiB. 64 MiB is address
/// space; only the pages the compiler touches are backed.
pub fn on_compiler_stack<T: Send>(f: impl FnOnce() -> T + Send) -> Result<T, String> {
    std::thread::scope(|scope| {
        let worker = std::thread::Builder::new()
            .name("kernel-compiler".into())
            .stack_size(COMPILER_STACK)
            .spawn_scoped(scope, f)
            .map_err(|e| format!("cannot start the kernel compiler's thread: {e}"))?;
        worker.join().map_err(|_| "the kernel compiler panicked".to_string())
    })
}

/// The length of the union of `intervals` (start, end), in their unit: the time during which at
/// least one of them was running. Kernels on two streams or queues may overlap; the sum of their
/// durations would count the overlap twice and understate the kernel-only rate.
pub fn busy_seconds(mut intervals: Vec<(f64, f64)>) -> f64 {
    intervals.retain(|(s, e)| e > s);
    intervals.sort_by(|a, b| a.0.total_cmp(&b.0));
    let mut total = 0.0;
    let mut current: Option<(f64, f64)> = None;
    for (s, e) in intervals {
        current = match current {
            Some((cs, ce)) if s <= ce => Some((cs, ce.max(e))),
            Some((cs, ce)) => {
                total += ce - cs;
                Some((s, e))
            }
            None => Some((s, e)),
        };
    }
    total + current.map_or(0.0, |(s, e)| e - s)
}

/// An owned [`SoaBatch`] (tests, calibration, benchmarks).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct OwnedSoa {
    /// Scheme codes.
    pub schemes: Vec<u8>,
    /// Public keys.
    pub pubkeys: Vec<[u8; 32]>,
    /// Signatures.
    pub signatures: Vec<[u8; 64]>,
    /// Messages, concatenated.
    pub messages: Vec<u8>,
    /// `len + 1` offsets into `messages`.
    pub offsets: Vec<u64>,
}

impl OwnedSoa {
    /// Empty, with room for `items` items and `message_bytes` message bytes.
    pub fn with_capacity(items: usize, message_bytes: usize) -> Self {
        let mut offsets = Vec::with_capacity(items + 1);
        offsets.push(0);
        OwnedSoa {
            schemes: Vec::with_capacity(items),
            pubkeys: Vec::with_capacity(items),
            signatures: Vec::with_capacity(items),
            messages: Vec::with_capacity(message_bytes),
            offsets,
        }
    }

    /// Appends one item.
    pub fn push(&mut self, scheme: u8, pubkey: &[u8; 32], message: &[u8], signature: &[u8; 64]) {
        if self.offsets.is_empty() {
            self.offsets.push(0);
        }
        self.schemes.push(scheme);
        self.pubkeys.push(*pubkey);
        self.signatures.push(*signature);
        self.messages.extend_from_slice(message);
        self.offsets.push(self.messages.len() as u64);
    }

    /// The borrowed view the devices take.
    pub fn view(&self) -> SoaBatch<'_> {
        SoaBatch {
            schemes: &self.schemes,
            pubkeys: &self.pubkeys,
            signatures: &self.signatures,
            messages: &self.messages,
            offsets: &self.offsets,
        }
    }
}

impl OwnedSoa {
    /// The same items as a [`crate::sigverify::Batch`].
    pub fn to_batch(&self) -> crate::sigverify::Batch {
        use crate::sigverify::{Batch, Scheme};
        let mut b = Batch::with_capacity(self.schemes.len(), self.messages.len());
        for i in 0..self.schemes.len() {
            let scheme = if self.schemes[i] == SCHEME_ED25519 { Scheme::Ed25519 } else { Scheme::Bip340 };
            let m = &self.messages
                [(self.offsets[i] - self.offsets[0]) as usize..(self.offsets[i + 1] - self.offsets[0]) as usize];
            // Key and signature lengths are fixed by the array types, so push cannot refuse.
            let _ = b.push(scheme, &self.pubkeys[i], m, &self.signatures[i]);
        }
        b
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn two_items() -> OwnedSoa {
        let mut s = OwnedSoa::with_capacity(2, 5);
        s.push(SCHEME_ED25519, &[1; 32], b"abc", &[2; 64]);
        s.push(SCHEME_BIP340, &[3; 32], b"de", &[4; 64]);
        s
    }

    #[test]
    fn busy_seconds_counts_overlapping_kernels_once() {
        assert_eq!(busy_seconds(vec![]), 0.0);
        // Two streams: [0, 4) and [2, 6) overlap, [8, 9) stands alone, [5, 5) is empty.
        assert_eq!(busy_seconds(vec![(8.0, 9.0), (2.0, 6.0), (0.0, 4.0), (5.0, 5.0)]), 7.0);
        // One interval inside another; touching intervals join.
        assert_eq!(busy_seconds(vec![(0.0, 10.0), (3.0, 4.0)]), 10.0);
        assert_eq!(busy_seconds(vec![(1.0, 2.0), (2.0, 3.0)]), 2.0);
    }

    #[test]
    fn a_consistent_layout_passes_and_slices_keep_absolute_offsets() {
        let s = two_items();
        s.view().check().unwrap();
        let tail = s.view().slice(1..2);
        assert_eq!(tail.messages, b"de");
        assert_eq!(tail.offsets, &[3, 5]);
        tail.check().unwrap();
    }

    #[test]
    fn inconsistent_layouts_name_the_item() {
        let s = two_items();
        let mut v = s.view();
        let bad_offsets = [0u64, 4, 3];
        v.offsets = &bad_offsets;
        assert!(matches!(v.check(), Err(GpuError::Layout { item: 1, .. })));
        let mut v = s.view();
        let bad_schemes = [0u8, 7];
        v.schemes = &bad_schemes;
        assert!(matches!(v.check(), Err(GpuError::Layout { item: 1, .. })));
        let mut v = s.view();
        v.messages = b"abcd";
        assert!(matches!(v.check(), Err(GpuError::Layout { .. })));
        let mut v = s.view();
        v.offsets = &v.offsets[..2];
        assert!(matches!(v.check(), Err(GpuError::Layout { item: 0, .. })));
    }

    #[test]
    fn interleaved_batches_are_verified_grouped_and_answered_in_order() {
        // Items alternate schemes; each item's "verdict" is its public key's first byte, so the
        // answer shows which item each verdict came from.
        let mut s = OwnedSoa::with_capacity(7, 64);
        for i in 0..7u8 {
            let scheme = if i % 2 == 0 { SCHEME_ED25519 } else { SCHEME_BIP340 };
            s.push(scheme, &[i; 32], &vec![i; i as usize], &[i; 64]);
        }
        let mut seen = Vec::new();
        let (out, _) = grouped_by_scheme(&s.view(), |g| {
            g.check()?;
            seen = g.schemes.to_vec();
            for i in 0..g.len() {
                let m = &g.messages[(g.offsets[i] - g.offsets[0]) as usize..(g.offsets[i + 1] - g.offsets[0]) as usize];
                assert_eq!(m, vec![g.pubkeys[i][0]; g.pubkeys[i][0] as usize], "message follows its item");
            }
            Ok((g.pubkeys.iter().map(|p| p[0]).collect(), 0.0))
        })
        .unwrap();
        assert_eq!(seen, [0, 0, 0, 0, 1, 1, 1], "Ed25519 items first, then BIP-340");
        assert_eq!(out, [0, 1, 2, 3, 4, 5, 6], "verdicts back in the batch's order");
        // An already grouped batch (one change of scheme) is passed as is.
        let one = two_items();
        let (out, _) = grouped_by_scheme(&one.view(), |g| {
            assert_eq!(g.offsets, one.offsets.as_slice());
            Ok((vec![7, 8], 0.0))
        })
        .unwrap();
        assert_eq!(out, [7, 8]);
        // A verifier answering with the wrong count is an error, not a verdict.
        assert!(grouped_by_scheme(&s.view(), |_| Ok((vec![1], 0.0))).is_err());
    }

    #[test]
    fn owned_soa_round_trips_through_a_batch() {
        let s = two_items();
        let b = s.to_batch();
        assert_eq!(b.len(), 2);
        assert_eq!(b.message(1), b"de");
        assert_eq!(b.pubkeys()[0], [1; 32]);
    }

    #[test]
    fn synthetic_batches_are_valid_under_the_cpu_backend() {
        for mix in [synthetic::Mix::Ed25519, synthetic::Mix::Bip340, synthetic::Mix::Mixed] {
            let b = synthetic::valid_batch(mix, 6, 3).to_batch();
            for rules in [crate::sigverify::Rules::Zip215, crate::sigverify::Rules::Strict] {
                assert!(crate::sigverify::cpu::verify_batch(&b, rules, 1).all_valid(), "{mix:?} {rules:?}");
            }
        }
    }
}
