/* secp256k1_field.h: arithmetic modulo p = 2^256 - 2^32 - 977, four 64-bit limbs, little-endian.
 *
 * Invariant: every value is fully reduced (< p) on entry and on exit, so equality is limb
 * equality and parity is the low bit. Products are 512-bit schoolbook (MULHI64 for the high
 * halves) folded with 2^256 = 2^32 + 977 (mod p).
 */
#ifndef PARTHENON_SECP256K1_FIELD_H
#define PARTHENON_SECP256K1_FIELD_H
#include "portable.h"

#define SECP_P0 ((u64)0xFFFFFFFEFFFFFC2FULL)
#define SECP_PX ((u64)0xFFFFFFFFFFFFFFFFULL)
#define SECP_C ((u64)0x1000003D1ULL) /* 2^256 mod p */

typedef struct { u64 v[4]; } fe_secp;

DEVICE_FN void fs_set_u64(fe_secp *r, u64 a) { r->v[0] = a; r->v[1] = 0; r->v[2] = 0; r->v[3] = 0; }
DEVICE_FN int fs_is_zero(const fe_secp *a) { return (a->v[0] | a->v[1] | a->v[2] | a->v[3]) == 0; }
DEVICE_FN int fs_eq(const fe_secp *a, const fe_secp *b) {
  return a->v[0] == b->v[0] && a->v[1] == b->v[1] && a->v[2] == b->v[2] && a->v[3] == b->v[3];
}
DEVICE_FN int fs_is_odd(const fe_secp *a) { return (int)(a->v[0] & 1); }

/* a >= p, for any 256-bit a. */
DEVICE_FN int fs_ge_p(const fe_secp *a) {
  return a->v[3] == SECP_PX && a->v[2] == SECP_PX && a->v[1] == SECP_PX && a->v[0] >= SECP_P0;
}

/* a + c where c < 2^64, returning the carry out of 256 bits. */
DEVICE_FN u64 fs_add_small(fe_secp *a, u64 c) {
  for (int i = 0; i < 4; i++) {
    a->v[i] += c;
    c = a->v[i] < c ? 1 : 0;
  }
  return c;
}

/* Big-endian 32 bytes -> limbs (no reduction); returns 1 when the value is < p. */
DEVICE_FN int fs_from_be_bytes(fe_secp *r, const u8 b[32]) {
  for (int i = 0; i < 4; i++) {
    u64 x = 0;
    for (int j = 0; j < 8; j++) x = (x << 8) | (u64)b[8 * (3 - i) + j];
    r->v[i] = x;
  }
  return !fs_ge_p(r);
}

DEVICE_FN void fs_add(fe_secp *r, const fe_secp *a, const fe_secp *b) {
  u64 carry = 0;
  for (int i = 0; i < 4; i++) {
    u64 t = a->v[i] + b->v[i];
    u64 c1 = t < a->v[i] ? 1 : 0;
    u64 t2 = t + carry;
    u64 c2 = t2 < t ? 1 : 0;
    r->v[i] = t2;
    carry = c1 | c2;
  }
  /* a + b < 2p: subtract p once when the sum overflowed 2^256 or is >= p. */
  if (carry || fs_ge_p(r)) fs_add_small(r, SECP_C);
}

DEVICE_FN void fs_sub(fe_secp *r, const fe_secp *a, const fe_secp *b) {
  u64 borrow = 0;
  for (int i = 0; i < 4; i++) {
    u64 t = a->v[i] - b->v[i];
    u64 b1 = a->v[i] < b->v[i] ? 1 : 0;
    u64 t2 = t - borrow;
    u64 b2 = t < borrow ? 1 : 0;
    r->v[i] = t2;
    borrow = b1 | b2;
  }
  /* Wrapped below zero: the limbs hold a - b + 2^256; adding p means subtracting 2^256 - p. */
  if (borrow) {
    u64 bw = 0;
    u64 t = r->v[0] - SECP_C;
    bw = r->v[0] < SECP_C ? 1 : 0;
    r->v[0] = t;
    for (int i = 1; i < 4; i++) {
      u64 t2 = r->v[i] - bw;
      bw = r->v[i] < bw ? 1 : 0;
      r->v[i] = t2;
    }
  }
}

DEVICE_FN void fs_neg(fe_secp *r, const fe_secp *a) {
  fe_secp z;
  fs_set_u64(&z, 0);
  fs_sub(r, &z, a);
}

/* 192-bit column accumulator (c0, c1, c2). */
#define FS_MULADD(x, y)                        \
  do {                                         \
    u64 lo_ = (x) * (y);                       \
    u64 hi_ = MULHI64((x), (y));               \
    c0 += lo_;                                 \
    hi_ += (c0 < lo_) ? 1 : 0;                 \
    c1 += hi_;                                 \
    c2 += (c1 < hi_) ? 1 : 0;                  \
  } while (0)
#define FS_EXTRACT(out) \
  do {                  \
    (out) = c0;         \
    c0 = c1;            \
    c1 = c2;            \
    c2 = 0;             \
  } while (0)

DEVICE_FN void fs_mul(fe_secp *r, const fe_secp *a, const fe_secp *b) {
  u64 t[8];
  u64 c0 = 0, c1 = 0, c2 = 0;
  FS_MULADD(a->v[0], b->v[0]); FS_EXTRACT(t[0]);
  FS_MULADD(a->v[0], b->v[1]); FS_MULADD(a->v[1], b->v[0]); FS_EXTRACT(t[1]);
  FS_MULADD(a->v[0], b->v[2]); FS_MULADD(a->v[1], b->v[1]); FS_MULADD(a->v[2], b->v[0]); FS_EXTRACT(t[2]);
  FS_MULADD(a->v[0], b->v[3]); FS_MULADD(a->v[1], b->v[2]); FS_MULADD(a->v[2], b->v[1]); FS_MULADD(a->v[3], b->v[0]);
  FS_EXTRACT(t[3]);
  FS_MULADD(a->v[1], b->v[3]); FS_MULADD(a->v[2], b->v[2]); FS_MULADD(a->v[3], b->v[1]); FS_EXTRACT(t[4]);
  FS_MULADD(a->v[2], b->v[3]); FS_MULADD(a->v[3], b->v[2]); FS_EXTRACT(t[5]);
  FS_MULADD(a->v[3], b->v[3]); FS_EXTRACT(t[6]);
  t[7] = c0;
  /* Fold: t = H * 2^256 + L == L + H * C (mod p), with C = 2^32 + 977 < 2^33. */
  u64 r0, r1, r2, r3;
  c0 = t[0]; c1 = 0; c2 = 0;
  FS_MULADD(t[4], SECP_C); FS_EXTRACT(r0);
  c0 += t[1]; c1 += (c0 < t[1]) ? 1 : 0;
  FS_MULADD(t[5], SECP_C); FS_EXTRACT(r1);
  c0 += t[2]; c1 += (c0 < t[2]) ? 1 : 0;
  FS_MULADD(t[6], SECP_C); FS_EXTRACT(r2);
  c0 += t[3]; c1 += (c0 < t[3]) ? 1 : 0;
  FS_MULADD(t[7], SECP_C); FS_EXTRACT(r3);
  /* Now c0 (< 2^34) is the overflow above 2^256: fold it once more. */
  u64 top = c0;
  fe_secp x;
  x.v[0] = r0; x.v[1] = r1; x.v[2] = r2; x.v[3] = r3;
  u64 lo = top * SECP_C;
  u64 hi = MULHI64(top, SECP_C);
  u64 carry = 0;
  x.v[0] += lo;
  carry = x.v[0] < lo ? 1 : 0;
  x.v[1] += hi;
  u64 c_a = x.v[1] < hi ? 1 : 0;
  x.v[1] += carry;
  u64 c_b = x.v[1] < carry ? 1 : 0;
  carry = c_a | c_b;
  x.v[2] += carry;
  carry = x.v[2] < carry ? 1 : 0;
  x.v[3] += carry;
  carry = x.v[3] < carry ? 1 : 0;
  if (carry) fs_add_small(&x, SECP_C); /* the wrapped value is tiny, so this cannot carry again */
  if (fs_ge_p(&x)) fs_add_small(&x, SECP_C);
  *r = x;
}

DEVICE_FN void fs_sq(fe_secp *r, const fe_secp *a) { fs_mul(r, a, a); }

DEVICE_FN void fs_sqn(fe_secp *r, const fe_secp *a, int n) {
  fe_secp t = *a;
  for (int i = 0; i < n; i++) fs_sq(&t, &t);
  *r = t;
}

/* x^(2^223 - 1), x^(2^22 - 1) and x^3: the shared prefix of libsecp256k1's addition chains for
 * the inverse and the square root (255 squarings and 15 multiplications in all). */
DEVICE_FN void fs_pow_prefix(fe_secp *x223, fe_secp *x22, fe_secp *x2, const fe_secp *a) {
  fe_secp x3, x6, x9, x11, x44, x88, x176, x220, t;
  fs_sq(&t, a);
  fs_mul(x2, &t, a);            /* a^(2^2 - 1) */
  fs_sq(&t, x2);
  fs_mul(&x3, &t, a);           /* a^(2^3 - 1) */
  fs_sqn(&t, &x3, 3);
  fs_mul(&x6, &t, &x3);
  fs_sqn(&t, &x6, 3);
  fs_mul(&x9, &t, &x3);
  fs_sqn(&t, &x9, 2);
  fs_mul(&x11, &t, x2);
  fs_sqn(&t, &x11, 11);
  fs_mul(x22, &t, &x11);
  fs_sqn(&t, x22, 22);
  fs_mul(&x44, &t, x22);
  fs_sqn(&t, &x44, 44);
  fs_mul(&x88, &t, &x44);
  fs_sqn(&t, &x88, 88);
  fs_mul(&x176, &t, &x88);
  fs_sqn(&t, &x176, 44);
  fs_mul(&x220, &t, &x44);
  fs_sqn(&t, &x220, 3);
  fs_mul(x223, &t, &x3);        /* a^(2^223 - 1) */
}

/* a^(p-2) = a^(2^256 - 2^32 - 979); 0 maps to 0. */
DEVICE_FN void fs_inv(fe_secp *r, const fe_secp *a) {
  fe_secp x223, x22, x2, t;
  fs_pow_prefix(&x223, &x22, &x2, a);
  fs_sqn(&t, &x223, 23);
  fs_mul(&t, &t, &x22);         /* 2^246 - 2^22 - 1 */
  fs_sqn(&t, &t, 5);
  fs_mul(&t, &t, a);            /* 2^251 - 2^27 - 31 */
  fs_sqn(&t, &t, 3);
  fs_mul(&t, &t, &x2);          /* 2^254 - 2^30 - 245 */
  fs_sqn(&t, &t, 2);
  fs_mul(r, &t, a);             /* 2^256 - 2^32 - 979 */
}

/* A square root of a when one exists: returns 1 and r with r^2 == a, else 0. Since
 * p == 3 (mod 4), the candidate is a^((p+1)/4) = a^(2^254 - 2^30 - 244). */
DEVICE_FN int fs_sqrt(fe_secp *r, const fe_secp *a) {
  fe_secp x223, x22, x2, t, chk;
  fs_pow_prefix(&x223, &x22, &x2, a);
  fs_sqn(&t, &x223, 23);
  fs_mul(&t, &t, &x22);         /* 2^246 - 2^22 - 1 */
  fs_sqn(&t, &t, 6);
  fs_mul(&t, &t, &x2);          /* 2^252 - 2^28 - 61 */
  fs_sqn(&t, &t, 2);            /* 2^254 - 2^30 - 244 */
  fs_sq(&chk, &t);
  *r = t;
  return fs_eq(&chk, a);
}

#endif
