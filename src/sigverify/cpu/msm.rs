//! Variable-time multiscalar multiplication on secp256k1 for batch verification: Pippenger's
//! bucket method with signed digits over affine inputs (mixed additions), falling back to k256's
//! interleaved wNAF (`lincomb_vartime`) for few points. Variable time is fine here: every input
//! of verification is public.
//!
//! On several threads ([`multiscalar_mul_threads`]) the *windows* are divided, not the points:
//! each thread runs the bucket method over every point for a contiguous range of windows, and the
//! partial sums are combined with `c` doublings per window between them. Splitting the points
//! instead would give each thread a smaller multiscalar multiplication, which costs more per
//! point (narrower windows); splitting the windows keeps the single-thread cost per point. Ranges
//! are balanced by the number of non-zero digits (plus the bucket sums) in each window, because
//! the short (128-bit) coefficients leave the upper windows half empty.

use k256::elliptic_curve::ops::LinearCombination;
use k256::{AffinePoint, ProjectivePoint, Scalar};

/// Below this many points, k256's interleaved wNAF is faster than buckets.
const PIPPENGER_MIN: usize = 48;

/// `Σ [k_i] P_i`.
pub(crate) fn multiscalar_mul(terms: &[(AffinePoint, Scalar)]) -> ProjectivePoint {
    if terms.len() < PIPPENGER_MIN {
        let pairs: Vec<(ProjectivePoint, Scalar)> =
            terms.iter().map(|(p, k)| (ProjectivePoint::from(*p), *k)).collect();
        return ProjectivePoint::lincomb_vartime(pairs.as_slice());
    }
    pippenger(terms)
}

/// Window width in bits for `n` points, minimising the cost model: each window costs one mixed
/// addition per point with a non-zero digit (about 3/4 of the points: in batch verification
/// half the scalars are 128-bit) plus 2^c additions to sum the 2^(c-1) buckets.
fn window_bits(n: usize) -> usize {
    let cost = |c: usize| (256 / c + 1) * (3 * n / 4 + (1usize << c));
    (4..=14).min_by_key(|&c| cost(c)).unwrap_or(8)
}

/// Little-endian 64-bit limbs of a scalar.
fn limbs(k: &Scalar) -> [u64; 4] {
    let be = k.to_bytes();
    let mut out = [0u64; 4];
    for (i, limb) in out.iter_mut().enumerate() {
        let mut w = [0u8; 8];
        w.copy_from_slice(&be[32 - 8 * (i + 1)..32 - 8 * i]);
        *limb = u64::from_be_bytes(w);
    }
    out
}

/// Signed radix-2^c digits of `k` (in `[-2^(c-1), 2^(c-1)]`), least significant first.
fn signed_digits(k: &[u64; 4], c: usize, windows: usize, out: &mut Vec<i32>) {
    let mask = (1u64 << c) - 1;
    let half = 1i64 << (c - 1);
    let mut carry = 0i64;
    for w in 0..windows {
        let bit = w * c;
        let limb = bit / 64;
        let shift = bit % 64;
        let mut v = if limb < 4 { k[limb] >> shift } else { 0 };
        if shift + c > 64 && limb + 1 < 4 {
            v |= k[limb + 1] << (64 - shift);
        }
        let d = (v & mask) as i64 + carry;
        if d >= half {
            out.push((d - (1i64 << c)) as i32);
            carry = 1;
        } else {
            out.push(d as i32);
            carry = 0;
        }
    }
}

/// Below this many points a multiscalar multiplication stays on one thread.
const PARALLEL_MIN: usize = 256;

/// `Σ [k_i] P_i` with up to `threads` threads (see the module docs).
pub(crate) fn multiscalar_mul_threads(terms: &[(AffinePoint, Scalar)], threads: usize) -> ProjectivePoint {
    if threads < 2 || terms.len() < PARALLEL_MIN {
        return multiscalar_mul(terms);
    }
    let plan = Plan::new_threads(terms, threads);
    // Work per window: its non-zero digits plus the bucket sums.
    let work: Vec<usize> = (0..plan.windows)
        .map(|w| (0..terms.len()).filter(|&j| plan.digits[j * plan.windows + w] != 0).count() + (1 << plan.c))
        .collect();
    let total: usize = work.iter().sum();
    let mut bounds = vec![0];
    let mut acc = 0;
    for (w, x) in work.iter().enumerate() {
        acc += x;
        if acc * threads >= total * bounds.len() && bounds.len() < threads && w + 1 < plan.windows {
            bounds.push(w + 1);
        }
    }
    bounds.push(plan.windows);
    let ranges: Vec<(usize, usize)> = bounds.windows(2).map(|r| (r[0], r[1])).collect();
    let parts = super::on_threads(ranges, threads, |(lo, hi)| plan.windows_sum(terms, lo, hi));
    // Σ parts[k] · 2^(c · bounds[k]), highest range first.
    let mut acc = ProjectivePoint::IDENTITY;
    for (k, part) in parts.iter().enumerate().rev() {
        acc += part;
        if k > 0 {
            for _ in 0..plan.c * (bounds[k] - bounds[k - 1]) {
                acc = acc.double();
            }
        }
    }
    acc
}

/// Signed digits of every scalar and the negated points, shared by the window ranges.
struct Plan {
    c: usize,
    windows: usize,
    digits: Vec<i32>,
    neg: Vec<AffinePoint>,
}

impl Plan {
    fn new(terms: &[(AffinePoint, Scalar)]) -> Plan {
        Plan::new_threads(terms, 1)
    }

    /// The plan for `terms`, its digits computed on up to `threads` threads.
    fn new_threads(terms: &[(AffinePoint, Scalar)], threads: usize) -> Plan {
        let c = window_bits(terms.len());
        // 256-bit scalars plus a final carry.
        let windows = 256 / c + 1;
        let size = terms.len().div_ceil(threads.max(1)).max(1);
        let part = |t: &[(AffinePoint, Scalar)]| {
            let mut digits = Vec::with_capacity(t.len() * windows);
            for (_, k) in t {
                signed_digits(&limbs(k), c, windows, &mut digits);
            }
            let neg: Vec<AffinePoint> = t.iter().map(|(p, _)| -*p).collect();
            (digits, neg)
        };
        let parts = super::on_threads(terms.chunks(size).collect(), threads, part);
        let mut plan = Plan { c, windows, digits: Vec::new(), neg: Vec::new() };
        for (d, n) in parts {
            plan.digits.extend(d);
            plan.neg.extend(n);
        }
        plan
    }

    /// `Σ_{w in lo..hi} 2^(c (w − lo)) · S_w`, where `S_w` is the sum of the points weighted by
    /// their digits in window `w`.
    fn windows_sum(&self, terms: &[(AffinePoint, Scalar)], lo: usize, hi: usize) -> ProjectivePoint {
        let (c, windows, digits, neg) = (self.c, self.windows, &self.digits, &self.neg);
        let mut buckets = vec![ProjectivePoint::IDENTITY; 1 << (c - 1)];
        let mut acc = ProjectivePoint::IDENTITY;
        for w in (lo..hi).rev() {
            for _ in 0..c {
                acc = acc.double();
            }
            buckets.fill(ProjectivePoint::IDENTITY);
            let mut any = false;
            for (j, (p, _)) in terms.iter().enumerate() {
                let d = digits[j * windows + w];
                if d > 0 {
                    buckets[(d - 1) as usize] += p;
                    any = true;
                } else if d < 0 {
                    buckets[(-d - 1) as usize] += &neg[j];
                    any = true;
                }
            }
            if !any {
                continue;
            }
            // Σ (b+1)·bucket[b] by running sums, highest bucket first.
            let mut running = ProjectivePoint::IDENTITY;
            let mut total = ProjectivePoint::IDENTITY;
            for b in buckets.iter().rev() {
                running += b;
                total += running;
            }
            acc += total;
        }
        acc
    }
}

fn pippenger(terms: &[(AffinePoint, Scalar)]) -> ProjectivePoint {
    let plan = Plan::new(terms);
    plan.windows_sum(terms, 0, plan.windows)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn naive(terms: &[(AffinePoint, Scalar)]) -> ProjectivePoint {
        terms.iter().fold(ProjectivePoint::IDENTITY, |acc, (p, k)| acc + ProjectivePoint::from(*p) * k)
    }

    fn sample(n: usize, seed: u64) -> Vec<(AffinePoint, Scalar)> {
        let mut x = seed;
        let mut next = move || {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x
        };
        (0..n)
            .map(|i| {
                let p = ProjectivePoint::mul_by_generator_vartime(&Scalar::from(next())).to_affine();
                let k = match i % 4 {
                    0 => Scalar::from(u128::from(next()) << 64 | u128::from(next())),
                    1 => -Scalar::from(next()),
                    2 => Scalar::ZERO,
                    _ => Scalar::from(next()) * Scalar::from(next()) * Scalar::from(next()) * Scalar::from(next()),
                };
                (p, k)
            })
            .collect()
    }

    #[test]
    fn digits_recompose() {
        for c in 4..=14 {
            let k = limbs(&(-Scalar::from(12345u64)));
            let windows = 256 / c + 1;
            let mut d = Vec::new();
            signed_digits(&k, c, windows, &mut d);
            let mut acc = Scalar::ZERO;
            for (w, &di) in d.iter().enumerate().rev() {
                let _ = w;
                acc *= Scalar::from(1u64 << c);
                acc += if di < 0 { -Scalar::from((-di) as u64) } else { Scalar::from(di as u64) };
            }
            assert_eq!(acc, -Scalar::from(12345u64), "c={c}");
        }
    }

    #[test]
    fn window_follows_cost_model() {
        assert_eq!(window_bits(128), 5);
        assert_eq!(window_bits(2048), 8);
        assert_eq!(window_bits(32768), 12);
    }

    #[test]
    fn matches_naive_sum() {
        for n in [0, 1, 5, 47, 48, 100, 300] {
            let t = sample(n, 0x9e37_79b9_7f4a_7c15 ^ n as u64);
            assert_eq!(multiscalar_mul(&t), naive(&t), "n={n}");
            assert_eq!(pippenger(&t), naive(&t), "pippenger n={n}");
        }
    }

    #[test]
    fn window_ranges_on_threads_match_one_thread() {
        for n in [255, 256, 700, 2049] {
            let t = sample(n, 0x2545_f491_4f6c_dd1d ^ n as u64);
            let one = multiscalar_mul(&t);
            for threads in [2, 3, 4, 16] {
                assert_eq!(multiscalar_mul_threads(&t, threads), one, "n={n} threads={threads}");
            }
        }
    }
}
