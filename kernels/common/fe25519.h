/* fe25519.h: arithmetic in GF(2^255 - 19), five 51-bit limbs in u64.
 *
 * Invariant: every function returns limbs < 2^52 ("loosely reduced"), and accepts such limbs.
 * Products are accumulated in 128 bits as (lo, hi) pairs through MULHI64, so the code needs only
 * 64-bit integer multiplies. fe25519_tobytes gives the unique canonical encoding (value < p);
 * fe25519_frombytes ignores bit 255 and accepts values >= p (as curve25519-dalek does), which is
 * what permissive (ZIP-215) point decoding needs.
 */
#ifndef PARTHENON_FE25519_H
#define PARTHENON_FE25519_H
#include "portable.h"

#define FE_MASK51 ((u64)0x7ffffffffffffULL)

typedef struct { u64 v[5]; } fe25519;
typedef struct { u64 lo, hi; } u128acc;

DEVICE_FN void acc_mac(u128acc *a, u64 x, u64 y) {
  u64 lo = x * y;
  u64 hi = MULHI64(x, y);
  a->lo += lo;
  a->hi += hi + (a->lo < lo ? 1 : 0);
}

DEVICE_FN u64 acc_shr51(u128acc a) { return (a.lo >> 51) | (a.hi << 13); }

DEVICE_FN void fe25519_set(fe25519 *r, u64 a0, u64 a1, u64 a2, u64 a3, u64 a4) {
  r->v[0] = a0; r->v[1] = a1; r->v[2] = a2; r->v[3] = a3; r->v[4] = a4;
}
DEVICE_FN void fe25519_zero(fe25519 *r) { fe25519_set(r, 0, 0, 0, 0, 0); }
DEVICE_FN void fe25519_one(fe25519 *r) { fe25519_set(r, 1, 0, 0, 0, 0); }

/* Carry limbs so each is < 2^51 + small; the top carry wraps around times 19. */
DEVICE_FN void fe25519_carry(fe25519 *r) {
  u64 c;
  c = r->v[0] >> 51; r->v[0] &= FE_MASK51; r->v[1] += c;
  c = r->v[1] >> 51; r->v[1] &= FE_MASK51; r->v[2] += c;
  c = r->v[2] >> 51; r->v[2] &= FE_MASK51; r->v[3] += c;
  c = r->v[3] >> 51; r->v[3] &= FE_MASK51; r->v[4] += c;
  c = r->v[4] >> 51; r->v[4] &= FE_MASK51; r->v[0] += c * 19;
}

DEVICE_FN void fe25519_add(fe25519 *r, const fe25519 *a, const fe25519 *b) {
  for (int i = 0; i < 5; i++) r->v[i] = a->v[i] + b->v[i];
  fe25519_carry(r);
}

/* a - b computed as a + 16p - b (16p limb-wise exceeds any loosely reduced b). */
DEVICE_FN void fe25519_sub(fe25519 *r, const fe25519 *a, const fe25519 *b) {
  r->v[0] = (a->v[0] + (u64)36028797018963664ULL) - b->v[0];
  r->v[1] = (a->v[1] + (u64)36028797018963952ULL) - b->v[1];
  r->v[2] = (a->v[2] + (u64)36028797018963952ULL) - b->v[2];
  r->v[3] = (a->v[3] + (u64)36028797018963952ULL) - b->v[3];
  r->v[4] = (a->v[4] + (u64)36028797018963952ULL) - b->v[4];
  fe25519_carry(r);
}

DEVICE_FN void fe25519_neg(fe25519 *r, const fe25519 *a) {
  fe25519 z;
  fe25519_zero(&z);
  fe25519_sub(r, &z, a);
}

DEVICE_FN void fe25519_mul(fe25519 *r, const fe25519 *f, const fe25519 *g) {
  u64 f0 = f->v[0], f1 = f->v[1], f2 = f->v[2], f3 = f->v[3], f4 = f->v[4];
  u64 g0 = g->v[0], g1 = g->v[1], g2 = g->v[2], g3 = g->v[3], g4 = g->v[4];
  u64 g1_19 = g1 * 19, g2_19 = g2 * 19, g3_19 = g3 * 19, g4_19 = g4 * 19;
  u128acc r0 = {0, 0}, r1 = {0, 0}, r2 = {0, 0}, r3 = {0, 0}, r4 = {0, 0};
  acc_mac(&r0, f0, g0); acc_mac(&r0, f1, g4_19); acc_mac(&r0, f2, g3_19); acc_mac(&r0, f3, g2_19); acc_mac(&r0, f4, g1_19);
  acc_mac(&r1, f0, g1); acc_mac(&r1, f1, g0); acc_mac(&r1, f2, g4_19); acc_mac(&r1, f3, g3_19); acc_mac(&r1, f4, g2_19);
  acc_mac(&r2, f0, g2); acc_mac(&r2, f1, g1); acc_mac(&r2, f2, g0); acc_mac(&r2, f3, g4_19); acc_mac(&r2, f4, g3_19);
  acc_mac(&r3, f0, g3); acc_mac(&r3, f1, g2); acc_mac(&r3, f2, g1); acc_mac(&r3, f3, g0); acc_mac(&r3, f4, g4_19);
  acc_mac(&r4, f0, g4); acc_mac(&r4, f1, g3); acc_mac(&r4, f2, g2); acc_mac(&r4, f3, g1); acc_mac(&r4, f4, g0);
  /* Limbs < 2^52 and 19 * 2^52 < 2^57: each column < 77 * 2^104 < 2^111, so carries < 2^60. */
  u64 c;
  u64 o0 = r0.lo & FE_MASK51; c = acc_shr51(r0);
  r1.lo += c; r1.hi += (r1.lo < c ? 1 : 0);
  u64 o1 = r1.lo & FE_MASK51; c = acc_shr51(r1);
  r2.lo += c; r2.hi += (r2.lo < c ? 1 : 0);
  u64 o2 = r2.lo & FE_MASK51; c = acc_shr51(r2);
  r3.lo += c; r3.hi += (r3.lo < c ? 1 : 0);
  u64 o3 = r3.lo & FE_MASK51; c = acc_shr51(r3);
  r4.lo += c; r4.hi += (r4.lo < c ? 1 : 0);
  u64 o4 = r4.lo & FE_MASK51; c = acc_shr51(r4);
  o0 += c * 19;
  c = o0 >> 51; o0 &= FE_MASK51; o1 += c;
  fe25519_set(r, o0, o1, o2, o3, o4);
}

DEVICE_FN void fe25519_sq(fe25519 *r, const fe25519 *f) { fe25519_mul(r, f, f); }

DEVICE_FN void fe25519_sqn(fe25519 *r, const fe25519 *f, int n) {
  fe25519 t = *f;
  for (int i = 0; i < n; i++) fe25519_sq(&t, &t);
  *r = t;
}

/* Canonical little-endian encoding (value fully reduced below p). */
DEVICE_FN void fe25519_tobytes(u8 out[32], const fe25519 *a) {
  fe25519 t = *a;
  fe25519_carry(&t);
  u64 q = (t.v[0] + 19) >> 51;
  q = (t.v[1] + q) >> 51;
  q = (t.v[2] + q) >> 51;
  q = (t.v[3] + q) >> 51;
  q = (t.v[4] + q) >> 51;
  t.v[0] += 19 * q;
  t.v[1] += t.v[0] >> 51; t.v[0] &= FE_MASK51;
  t.v[2] += t.v[1] >> 51; t.v[1] &= FE_MASK51;
  t.v[3] += t.v[2] >> 51; t.v[2] &= FE_MASK51;
  t.v[4] += t.v[3] >> 51; t.v[3] &= FE_MASK51;
  t.v[4] &= FE_MASK51;
  u64 w0 = t.v[0] | (t.v[1] << 51);
  u64 w1 = (t.v[1] >> 13) | (t.v[2] << 38);
  u64 w2 = (t.v[2] >> 26) | (t.v[3] << 25);
  u64 w3 = (t.v[3] >> 39) | (t.v[4] << 12);
  for (int i = 0; i < 8; i++) {
    out[i] = (u8)(w0 >> (8 * i));
    out[8 + i] = (u8)(w1 >> (8 * i));
    out[16 + i] = (u8)(w2 >> (8 * i));
    out[24 + i] = (u8)(w3 >> (8 * i));
  }
}

DEVICE_FN u64 load64_le(const u8 *b) {
  u64 r = 0;
  for (int i = 7; i >= 0; i--) r = (r << 8) | (u64)b[i];
  return r;
}

/* Bits 0..254 of the little-endian `b`; bit 255 is ignored; values >= p are accepted. */
DEVICE_FN void fe25519_frombytes(fe25519 *r, const u8 b[32]) {
  r->v[0] = load64_le(b) & FE_MASK51;
  r->v[1] = (load64_le(b + 6) >> 3) & FE_MASK51;
  r->v[2] = (load64_le(b + 12) >> 6) & FE_MASK51;
  r->v[3] = (load64_le(b + 19) >> 1) & FE_MASK51;
  r->v[4] = (load64_le(b + 24) >> 12) & FE_MASK51;
}

DEVICE_FN int fe25519_iszero(const fe25519 *a) {
  u8 s[32];
  fe25519_tobytes(s, a);
  u8 acc = 0;
  for (int i = 0; i < 32; i++) acc |= s[i];
  return acc == 0;
}

DEVICE_FN int fe25519_eq(const fe25519 *a, const fe25519 *b) {
  fe25519 d;
  fe25519_sub(&d, a, b);
  return fe25519_iszero(&d);
}

/* Low bit of the canonical encoding ("negative" in RFC 8032 terms). */
DEVICE_FN int fe25519_isneg(const fe25519 *a) {
  u8 s[32];
  fe25519_tobytes(s, a);
  return s[0] & 1;
}

/* (z^(2^250 - 1), z^11): the shared prefix of inversion and the square-root exponent. */
DEVICE_FN void fe25519_pow22501(fe25519 *t250, fe25519 *z11, const fe25519 *z) {
  fe25519 t0, t1, t2, t3;
  fe25519_sq(&t0, z);           /* z^2 */
  fe25519_sqn(&t1, &t0, 2);     /* z^8 */
  fe25519_mul(&t1, z, &t1);     /* z^9 */
  fe25519_mul(&t0, &t0, &t1);   /* z^11 */
  *z11 = t0;
  fe25519_sq(&t2, &t0);         /* z^22 */
  fe25519_mul(&t1, &t1, &t2);   /* z^(2^5 - 1) */
  fe25519_sqn(&t2, &t1, 5);
  fe25519_mul(&t1, &t2, &t1);   /* z^(2^10 - 1) */
  fe25519_sqn(&t2, &t1, 10);
  fe25519_mul(&t2, &t2, &t1);   /* z^(2^20 - 1) */
  fe25519_sqn(&t3, &t2, 20);
  fe25519_mul(&t2, &t3, &t2);   /* z^(2^40 - 1) */
  fe25519_sqn(&t2, &t2, 10);
  fe25519_mul(&t1, &t2, &t1);   /* z^(2^50 - 1) */
  fe25519_sqn(&t2, &t1, 50);
  fe25519_mul(&t2, &t2, &t1);   /* z^(2^100 - 1) */
  fe25519_sqn(&t3, &t2, 100);
  fe25519_mul(&t2, &t3, &t2);   /* z^(2^200 - 1) */
  fe25519_sqn(&t2, &t2, 50);
  fe25519_mul(t250, &t2, &t1);  /* z^(2^250 - 1) */
}

/* z^(p-2) = z^(2^255 - 21); 0 maps to 0. */
DEVICE_FN void fe25519_invert(fe25519 *r, const fe25519 *z) {
  fe25519 t, z11;
  fe25519_pow22501(&t, &z11, z);
  fe25519_sqn(&t, &t, 5);
  fe25519_mul(r, &t, &z11);
}

/* z^((p-5)/8) = z^(2^252 - 3). */
DEVICE_FN void fe25519_pow_p58(fe25519 *r, const fe25519 *z) {
  fe25519 t, z11;
  fe25519_pow22501(&t, &z11, z);
  fe25519_sqn(&t, &t, 2);
  fe25519_mul(r, &t, z);
}

DEVICE_FN void fe25519_sqrt_m1(fe25519 *r) {
  fe25519_set(r, 1718705420411056ULL, 234908883556509ULL, 2233514472574048ULL, 2117202627021982ULL,
              765476049583133ULL);
}

/* curve25519-dalek's sqrt_ratio_i: returns 1 and the nonnegative sqrt(u/v) when u/v is a square
 * (including u == 0), else 0 and sqrt(i*u/v). */
DEVICE_FN int fe25519_sqrt_ratio_i(fe25519 *out, const fe25519 *u, const fe25519 *v) {
  fe25519 v3, v7, r, t, check, neg_u, neg_u_i, i;
  fe25519_sq(&v3, v);
  fe25519_mul(&v3, &v3, v);     /* v^3 */
  fe25519_sq(&v7, &v3);
  fe25519_mul(&v7, &v7, v);     /* v^7 */
  fe25519_mul(&t, u, &v7);
  fe25519_pow_p58(&t, &t);      /* (u v^7)^((p-5)/8) */
  fe25519_mul(&r, u, &v3);
  fe25519_mul(&r, &r, &t);
  fe25519_sq(&check, &r);
  fe25519_mul(&check, &check, v);
  fe25519_sqrt_m1(&i);
  fe25519_neg(&neg_u, u);
  fe25519_mul(&neg_u_i, &neg_u, &i);
  int correct = fe25519_eq(&check, u);
  int flipped = fe25519_eq(&check, &neg_u);
  int flipped_i = fe25519_eq(&check, &neg_u_i);
  if (flipped || flipped_i) fe25519_mul(&r, &r, &i);
  if (fe25519_isneg(&r)) fe25519_neg(&r, &r);
  *out = r;
  return correct || flipped;
}

#endif
