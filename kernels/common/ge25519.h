/* ge25519.h: the edwards25519 group, -x^2 + y^2 = 1 + d x^2 y^2 over GF(2^255 - 19).
 *
 * Points are extended coordinates (X:Y:Z:T) with x = X/Z, y = Y/Z, xy = T/Z. The addition
 * (add-2008-hwcd-3) and doubling (dbl-2008-hwcd) formulas are complete for a = -1 and non-square
 * d, so they are correct for every input, small-order and mixed-order points included; this is
 * what lets the cofactored and cofactorless checks agree with curve25519-dalek on adversarial
 * points. Decoding follows dalek's CompressedEdwardsY::decompress exactly: y is taken from bits
 * 0..254 with values >= p accepted, x = the nonnegative sqrt((y^2 - 1)/(d y^2 + 1)), negated when
 * bit 255 is set (even when x = 0).
 */
#ifndef PARTHENON_GE25519_H
#define PARTHENON_GE25519_H
#include "fe25519.h"

typedef struct { fe25519 X, Y, Z, T; } ge25519;
/* A table entry: (Y+X, Y-X, 2Z, 2dT), which saves work in every addition. */
typedef struct { fe25519 YplusX, YminusX, Z2, T2d; } ge25519_cached;

DEVICE_FN void fe25519_d(fe25519 *r) {
  fe25519_set(r, 929955233495203ULL, 466365720129213ULL, 1662059464998953ULL, 2033849074728123ULL,
              1442794654840575ULL);
}
DEVICE_FN void fe25519_d2(fe25519 *r) {
  fe25519_set(r, 1859910466990425ULL, 932731440258426ULL, 1072319116312658ULL, 1815898335770999ULL,
              633789495995903ULL);
}

DEVICE_FN void ge25519_identity(ge25519 *p) {
  fe25519_zero(&p->X);
  fe25519_one(&p->Y);
  fe25519_one(&p->Z);
  fe25519_zero(&p->T);
}

DEVICE_FN void ge25519_basepoint(ge25519 *p) {
  fe25519_set(&p->X, 1738742601995546ULL, 1146398526822698ULL, 2070867633025821ULL, 562264141797630ULL,
              587772402128613ULL);
  fe25519_set(&p->Y, 1801439850948184ULL, 1351079888211148ULL, 450359962737049ULL, 900719925474099ULL,
              1801439850948198ULL);
  fe25519_one(&p->Z);
  fe25519_set(&p->T, 1841354044333475ULL, 16398895984059ULL, 755974180946558ULL, 900171276175154ULL,
              1821297809914039ULL);
}

DEVICE_FN void ge25519_to_cached(ge25519_cached *c, const ge25519 *p) {
  fe25519 d2;
  fe25519_d2(&d2);
  fe25519_add(&c->YplusX, &p->Y, &p->X);
  fe25519_sub(&c->YminusX, &p->Y, &p->X);
  fe25519_add(&c->Z2, &p->Z, &p->Z);
  fe25519_mul(&c->T2d, &p->T, &d2);
}

/* r = p + q (complete). */
DEVICE_FN void ge25519_add_cached(ge25519 *r, const ge25519 *p, const ge25519_cached *q) {
  fe25519 a, b, c, d, e, f, g, h;
  fe25519_sub(&a, &p->Y, &p->X);
  fe25519_mul(&a, &a, &q->YminusX);
  fe25519_add(&b, &p->Y, &p->X);
  fe25519_mul(&b, &b, &q->YplusX);
  fe25519_mul(&c, &p->T, &q->T2d);
  fe25519_mul(&d, &p->Z, &q->Z2);
  fe25519_sub(&e, &b, &a);
  fe25519_sub(&f, &d, &c);
  fe25519_add(&g, &d, &c);
  fe25519_add(&h, &b, &a);
  fe25519_mul(&r->X, &e, &f);
  fe25519_mul(&r->Y, &g, &h);
  fe25519_mul(&r->T, &e, &h);
  fe25519_mul(&r->Z, &f, &g);
}

/* r = p - q (complete): adding -q swaps Y+X and Y-X and negates T. */
DEVICE_FN void ge25519_sub_cached(ge25519 *r, const ge25519 *p, const ge25519_cached *q) {
  ge25519_cached n;
  n.YplusX = q->YminusX;
  n.YminusX = q->YplusX;
  n.Z2 = q->Z2;
  fe25519_neg(&n.T2d, &q->T2d);
  ge25519_add_cached(r, p, &n);
}

/* r = 2p. */
DEVICE_FN void ge25519_double(ge25519 *r, const ge25519 *p) {
  fe25519 a, b, c, e, f, g, h;
  fe25519_sq(&a, &p->X);
  fe25519_sq(&b, &p->Y);
  fe25519_sq(&c, &p->Z);
  fe25519_add(&c, &c, &c);
  fe25519_add(&h, &a, &b);
  fe25519_add(&e, &p->X, &p->Y);
  fe25519_sq(&e, &e);
  fe25519_sub(&e, &h, &e);
  fe25519_sub(&g, &a, &b);
  fe25519_add(&f, &c, &g);
  fe25519_mul(&r->X, &e, &f);
  fe25519_mul(&r->Y, &g, &h);
  fe25519_mul(&r->T, &e, &h);
  fe25519_mul(&r->Z, &f, &g);
}

DEVICE_FN void ge25519_neg(ge25519 *r, const ge25519 *p) {
  fe25519_neg(&r->X, &p->X);
  r->Y = p->Y;
  r->Z = p->Z;
  fe25519_neg(&r->T, &p->T);
}

/* X == 0 and Y == Z. */
DEVICE_FN int ge25519_is_identity(const ge25519 *p) {
  return fe25519_iszero(&p->X) && fe25519_eq(&p->Y, &p->Z);
}

/* [8]p == identity (dalek's is_small_order). */
DEVICE_FN int ge25519_is_small_order(const ge25519 *p) {
  ge25519 t;
  ge25519_double(&t, p);
  ge25519_double(&t, &t);
  ge25519_double(&t, &t);
  return ge25519_is_identity(&t);
}

/* dalek's CompressedEdwardsY::decompress; returns 0 when y gives no point. */
DEVICE_FN int ge25519_decompress(ge25519 *p, const u8 s[32]) {
  fe25519 u, v, d, one, x;
  fe25519_frombytes(&p->Y, s);
  fe25519_one(&one);
  fe25519_one(&p->Z);
  fe25519_d(&d);
  fe25519_sq(&u, &p->Y);
  fe25519_mul(&v, &u, &d);
  fe25519_sub(&u, &u, &one);   /* y^2 - 1 */
  fe25519_add(&v, &v, &one);   /* d y^2 + 1 */
  if (!fe25519_sqrt_ratio_i(&x, &u, &v)) return 0;
  if (s[31] >> 7) fe25519_neg(&x, &x);
  p->X = x;
  fe25519_mul(&p->T, &p->X, &p->Y);
  return 1;
}

/* Canonical encoding: y (reduced) with the low bit of x in bit 255. */
DEVICE_FN void ge25519_compress(u8 s[32], const ge25519 *p) {
  fe25519 zi, x, y;
  fe25519_invert(&zi, &p->Z);
  fe25519_mul(&x, &p->X, &zi);
  fe25519_mul(&y, &p->Y, &zi);
  fe25519_tobytes(s, &y);
  s[31] ^= (u8)(fe25519_isneg(&x) << 7);
}

/* Signed radix-16 digits of a little-endian 256-bit value: v = sum d[i] 16^i with
 * d[i] in [-8, 8), and d[64] in {0, 1} carrying out of the top nibble. */
DEVICE_FN void recode_signed16(int d[65], const u8 v[32]) {
  for (int i = 0; i < 32; i++) {
    d[2 * i] = v[i] & 15;
    d[2 * i + 1] = (v[i] >> 4) & 15;
  }
  d[64] = 0;
  for (int i = 0; i < 64; i++) {
    int carry = (d[i] + 8) >> 4;
    d[i] -= carry << 4;
    d[i + 1] += carry;
  }
}

/* [a]P for a little-endian 256-bit a: Straus with signed 4-bit windows, a table of 1..8 times P;
 * a negative digit subtracts. Variable time: every input is public. The fixed-base half of a
 * verification, [b]B, comes from the device table (base_tables.h) and is added afterwards. */
DEVICE_FN void ge25519_scalarmult_vartime(ge25519 *r, const u8 a[32], const ge25519 *P) {
  ge25519_cached tp[8];
  int da[65];
  ge25519 t, acc;
  recode_signed16(da, a);
  ge25519_to_cached(&tp[0], P);
  acc = *P;
  for (int i = 1; i < 8; i++) {
    ge25519_add_cached(&acc, &acc, &tp[0]);
    ge25519_to_cached(&tp[i], &acc);
  }
  ge25519_identity(&t);
  int started = 0;
  for (int i = 64; i >= 0; i--) {
    if (started) {
      ge25519_double(&t, &t);
      ge25519_double(&t, &t);
      ge25519_double(&t, &t);
      ge25519_double(&t, &t);
    }
    int x = da[i];
    if (x > 0) ge25519_add_cached(&t, &t, &tp[x - 1]);
    if (x < 0) ge25519_sub_cached(&t, &t, &tp[-x - 1]);
    if (x != 0) started = 1;
  }
  *r = t;
}

#endif
