//! Tests of the multiscalar multiplication (`super`).

use super::super::decode::decode_many;
use super::*;
use curve25519_dalek::traits::VartimeMultiscalarMul;
use curve25519_dalek::{EdwardsPoint, Scalar};
use rand::RngExt;

/// `Σ d_i · 2^(c·i)` of signed `c`-bit digits, each checked to be at most `2^(c-1)` in size.
fn recompose(d: &[i16], c: usize) -> Scalar {
    let mut acc = Scalar::ZERO;
    for &x in d.iter().rev() {
        assert!(i32::from(x).abs() <= 1 << (c - 1));
        acc *= Scalar::from(1u64 << c);
        let m = Scalar::from(u64::from(x.unsigned_abs()));
        acc += if x < 0 { -m } else { m };
    }
    acc
}

fn scalar_below(bits: u32, rng: &mut impl rand::Rng) -> Scalar {
    let mut b: [u8; 32] = rng.random();
    for (i, x) in b.iter_mut().enumerate() {
        let lo = 8 * i as u32;
        if lo >= bits {
            *x = 0;
        } else if bits - lo < 8 {
            *x &= (1u8 << (bits - lo)) - 1;
        }
    }
    Scalar::from_bytes_mod_order(b)
}

fn case(cpu: IfmaToken, n: usize, torsion: bool) {
    let mut rng = rand::rng();
    let mut points: Vec<EdwardsPoint> =
        (0..n).map(|_| EdwardsPoint::mul_base(&Scalar::from(rng.random::<u64>()))).collect();
    if torsion {
        for (i, p) in points.iter_mut().enumerate() {
            *p += curve25519_dalek::constants::EIGHT_TORSION[i % 8];
        }
    }
    let bits: Vec<u32> = (0..n).map(|i| if i % 2 == 0 { 127 } else { 253 }).collect();
    let scalars: Vec<Scalar> = bits.iter().map(|&b| scalar_below(b, &mut rng)).collect();
    let encs: Vec<[u8; 32]> = points.iter().map(|p| p.compress().to_bytes()).collect();
    let decoded: Vec<Point> = decode_many(cpu, &encs).into_iter().map(|p| p.expect("a curve point")).collect();
    let terms: Vec<Term> =
        decoded.iter().zip(&scalars).zip(&bits).map(|((p, k), _)| Term { point: p, scalar: k.to_bytes() }).collect();
    let want = EdwardsPoint::vartime_multiscalar_mul(&scalars, &points);
    assert_eq!(sum_compressed(cpu, &terms), want.compress().to_bytes(), "n = {n}");
    assert_eq!(cofactor_sum_is_identity(cpu, &terms), want.mul_by_cofactor() == EdwardsPoint::default());
    // The sum of two multiplications: over the terms, and over their negations split in two
    // (each with its own window width). It vanishes (torsion included: every point appears
    // with opposite scalars) until one scalar changes.
    let negated: Vec<Scalar> = scalars.iter().map(|k| -k).collect();
    let mut neg_terms: Vec<Term> =
        decoded.iter().zip(&negated).map(|(p, k)| Term { point: p, scalar: k.to_bytes() }).collect();
    let whole = window_sums(cpu, &terms);
    let (lo, hi) = neg_terms.split_at(n / 3);
    let (_, total) = cofactor_identity_with_total(cpu, &whole);
    assert!(cofactor_total_is_identity(cpu, &total, &[&window_sums(cpu, lo), &window_sums(cpu, hi)]), "n = {n}");
    if n > 0 {
        neg_terms[n - 1].scalar = (negated[n - 1] + Scalar::ONE).to_bytes();
        let (lo, hi) = neg_terms.split_at(n / 3);
        assert!(!cofactor_total_is_identity(cpu, &total, &[&window_sums(cpu, lo), &window_sums(cpu, hi)]), "n = {n}");
    }
    // Dividing the window groups among threads computes the same sums.
    let one = window_sums(cpu, &terms);
    for threads in [2, 3, 5] {
        let split = window_sums_threads(cpu, &terms, threads);
        assert!(split.c == one.c && split.sums == one.sums, "n = {n}, threads = {threads}");
    }
}

#[test]
fn agrees_with_dalek() {
    let Some(cpu) = crate::sigverify::cpu::ifma_or_skip("curve25519::msm agrees_with_dalek") else {
        return;
    };
    for n in [0usize, 1, 2, 3, 7, 8, 9, 33, 100, 600] {
        case(cpu, n, false);
        case(cpu, n, true);
    }
}

/// Scalars of every bit length up to 256 (bit 255 set: the top window of widths 4 and 8
/// starts at bit 256), against dalek with the scalars reduced mod ℓ (the points have prime
/// order), for every window width the cost model picks from 1 to 600 terms.
#[test]
fn full_width_scalars_agree_with_dalek() {
    let Some(cpu) = crate::sigverify::cpu::ifma_or_skip("curve25519::msm full_width_scalars") else {
        return;
    };
    let mut rng = rand::rng();
    let mut widths = std::collections::BTreeSet::new();
    for n in [1usize, 2, 5, 40, 150, 600] {
        let points: Vec<EdwardsPoint> =
            (0..n).map(|_| EdwardsPoint::mul_base(&Scalar::from(rng.random::<u64>()))).collect();
        let encs: Vec<[u8; 32]> = points.iter().map(|p| p.compress().to_bytes()).collect();
        let decoded: Vec<Point> = decode_many(cpu, &encs).into_iter().map(|p| p.expect("a curve point")).collect();
        let raw: Vec<[u8; 32]> = (0..n)
            .map(|i| match i % 3 {
                0 => [0xff; 32],
                1 => {
                    let mut k: [u8; 32] = rng.random();
                    k[31] |= 0x80;
                    k
                }
                _ => rng.random(),
            })
            .collect();
        let terms: Vec<Term> = decoded.iter().zip(&raw).map(|(p, k)| Term { point: p, scalar: *k }).collect();
        let bits: Vec<u32> = raw.iter().map(bit_length).collect();
        widths.insert(window_bits(&bits));
        let reduced: Vec<Scalar> = raw.iter().map(|k| Scalar::from_bytes_mod_order(*k)).collect();
        let want = EdwardsPoint::vartime_multiscalar_mul(&reduced, &points);
        assert_eq!(sum_compressed(cpu, &terms), want.compress().to_bytes(), "n = {n}");
    }
    assert!(widths.len() > 1, "window widths {widths:?}");
}

#[test]
fn sets_checked_together_agree_with_each_alone() {
    let Some(cpu) = crate::sigverify::cpu::ifma_or_skip("curve25519::msm sets_checked_together") else {
        return;
    };
    let mut rng = rand::rng();
    let torsion = curve25519_dalek::constants::EIGHT_TORSION;
    let mut owned = Vec::new();
    for i in 0..19usize {
        // P·k + P·(−k) + T (a torsion point, killed by the cofactor) + Q·m: the identity
        // after the cofactor iff m = 0.
        let p = EdwardsPoint::mul_base(&Scalar::from(rng.random::<u64>()));
        let q = EdwardsPoint::mul_base(&Scalar::from(rng.random::<u64>()));
        let k = scalar_below(253, &mut rng);
        let m = if i % 3 == 0 { Scalar::from(rng.random::<u64>() | 1) } else { Scalar::ZERO };
        let pts = [p, p, torsion[i % 8], q];
        let scalars = [k, -k, Scalar::ONE, m];
        let encs: Vec<[u8; 32]> = pts.iter().map(|p| p.compress().to_bytes()).collect();
        let decoded: Vec<Point> = decode_many(cpu, &encs).into_iter().map(|p| p.expect("a curve point")).collect();
        // Set 7 has a different shape (fewer terms, so another window width may be chosen).
        let n = if i == 7 { 3 } else { 4 };
        owned.push((decoded, scalars, n));
    }
    let mut sets = Vec::new();
    let mut want = Vec::new();
    for (decoded, scalars, n) in &owned {
        let terms: Vec<Term> = (0..*n).map(|j| Term { point: &decoded[j], scalar: scalars[j].to_bytes() }).collect();
        want.push(cofactor_sum_is_identity(cpu, &terms));
        sets.push(window_sums(cpu, &terms));
    }
    assert_eq!(cofactor_identity_each(cpu, &sets), want);
    assert!(want.iter().any(|v| *v) && want.iter().any(|v| !*v));
}

#[test]
fn digits_recompose_to_the_scalar() {
    let mut rng = rand::rng();
    // Any 256-bit value (bit 255 set included), reduced mod ℓ for the comparison.
    for c in 4..=8 {
        for k in [[0xffu8; 32], [0x80; 32], {
            let mut k = [0u8; 32];
            k[31] = 0x80;
            k
        }] {
            let mut d = vec![0i16; 72];
            signed_digits(&k, 256, c, &mut d);
            assert_eq!(recompose(&d, c), Scalar::from_bytes_mod_order(k), "c = {c}, 256-bit {k:02x?}");
        }
    }
    for c in 4..=8 {
        for bits in [1u32, 8, 127, 128, 252, 253] {
            for _ in 0..50 {
                let k = scalar_below(bits, &mut rng);
                let mut d = vec![0i16; 64];
                signed_digits(&k.to_bytes(), bits, c, &mut d);
                assert_eq!(recompose(&d, c), k, "c = {c}, bits = {bits}");
            }
        }
    }
}
