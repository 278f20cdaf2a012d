/* secp256k1_group.h: the group y^2 = x^3 + 7 over GF(p) in Jacobian coordinates
 * (X:Y:Z) = (X/Z^2, Y/Z^3); Z == 0 is the point at infinity.
 *
 * Addition handles every special case explicitly (either input at infinity, P == Q, P == -Q),
 * so the double-scalar multiplication is exact for adversarial inputs such as P = G or
 * e*P == s*G. The group has prime order and no point of order 2, so doubling never meets Y == 0
 * except at infinity.
 */
#ifndef PARTHENON_SECP256K1_GROUP_H
#define PARTHENON_SECP256K1_GROUP_H
#include "secp256k1_field.h"
#include "secp256k1_scalar.h"

typedef struct { fe_secp X, Y, Z; } gej_secp;

DEVICE_FN void gej_set_infinity(gej_secp *r) {
  fs_set_u64(&r->X, 1);
  fs_set_u64(&r->Y, 1);
  fs_set_u64(&r->Z, 0);
}
DEVICE_FN int gej_is_infinity(const gej_secp *a) { return fs_is_zero(&a->Z); }

DEVICE_FN void gej_generator(gej_secp *g) {
  g->X.v[3] = 0x79BE667EF9DCBBACULL; g->X.v[2] = 0x55A06295CE870B07ULL;
  g->X.v[1] = 0x029BFCDB2DCE28D9ULL; g->X.v[0] = 0x59F2815B16F81798ULL;
  g->Y.v[3] = 0x483ADA7726A3C465ULL; g->Y.v[2] = 0x5DA4FBFC0E1108A8ULL;
  g->Y.v[1] = 0xFD17B448A6855419ULL; g->Y.v[0] = 0x9C47D08FFB10D4B8ULL;
  fs_set_u64(&g->Z, 1);
}

/* dbl-2009-l (a = 0). */
DEVICE_FN void gej_double(gej_secp *r, const gej_secp *p) {
  if (gej_is_infinity(p)) { *r = *p; return; }
  fe_secp a, b, c, d, e, f, t, z3;
  fs_sq(&a, &p->X);
  fs_sq(&b, &p->Y);
  fs_sq(&c, &b);
  fs_add(&t, &p->X, &b);
  fs_sq(&t, &t);
  fs_sub(&t, &t, &a);
  fs_sub(&t, &t, &c);
  fs_add(&d, &t, &t);          /* D = 2((X+B)^2 - A - C) */
  fs_add(&e, &a, &a);
  fs_add(&e, &e, &a);          /* E = 3A */
  fs_sq(&f, &e);               /* F = E^2 */
  fs_mul(&z3, &p->Y, &p->Z);
  fs_add(&z3, &z3, &z3);       /* Z3 = 2YZ */
  fs_sub(&t, &f, &d);
  fs_sub(&r->X, &t, &d);       /* X3 = F - 2D */
  fs_sub(&t, &d, &r->X);
  fs_mul(&t, &e, &t);
  fs_add(&c, &c, &c);
  fs_add(&c, &c, &c);
  fs_add(&c, &c, &c);          /* 8C */
  fs_sub(&r->Y, &t, &c);       /* Y3 = E(D - X3) - 8C */
  r->Z = z3;
}

/* r = p + q, every case handled (add-1998-cmo-2 for the general case). */
DEVICE_FN void gej_add(gej_secp *r, const gej_secp *p, const gej_secp *q) {
  if (gej_is_infinity(p)) { *r = *q; return; }
  if (gej_is_infinity(q)) { *r = *p; return; }
  fe_secp z1z1, z2z2, u1, u2, s1, s2, h, rr, hh, hhh, v, t;
  fs_sq(&z1z1, &p->Z);
  fs_sq(&z2z2, &q->Z);
  fs_mul(&u1, &p->X, &z2z2);
  fs_mul(&u2, &q->X, &z1z1);
  fs_mul(&s1, &p->Y, &q->Z);
  fs_mul(&s1, &s1, &z2z2);
  fs_mul(&s2, &q->Y, &p->Z);
  fs_mul(&s2, &s2, &z1z1);
  fs_sub(&h, &u2, &u1);
  fs_sub(&rr, &s2, &s1);
  if (fs_is_zero(&h)) {
    if (fs_is_zero(&rr)) { gej_double(r, p); return; }
    gej_set_infinity(r);
    return;
  }
  fs_sq(&hh, &h);
  fs_mul(&hhh, &hh, &h);
  fs_mul(&v, &u1, &hh);
  fe_secp x3, y3, z3;
  fs_sq(&x3, &rr);
  fs_sub(&x3, &x3, &hhh);
  fs_sub(&x3, &x3, &v);
  fs_sub(&x3, &x3, &v);        /* X3 = R^2 - H^3 - 2 U1 H^2 */
  fs_sub(&t, &v, &x3);
  fs_mul(&y3, &rr, &t);
  fs_mul(&t, &s1, &hhh);
  fs_sub(&y3, &y3, &t);        /* Y3 = R (U1 H^2 - X3) - S1 H^3 */
  fs_mul(&z3, &p->Z, &q->Z);
  fs_mul(&z3, &z3, &h);        /* Z3 = Z1 Z2 H */
  r->X = x3; r->Y = y3; r->Z = z3;
}

DEVICE_FN void gej_neg(gej_secp *r, const gej_secp *p) {
  r->X = p->X;
  fs_neg(&r->Y, &p->Y);
  r->Z = p->Z;
}

/* BIP-340 lift_x: the point with x coordinate x (< p) and even y; 0 when x^3 + 7 is not a
 * square. */
DEVICE_FN int gej_lift_x(gej_secp *r, const fe_secp *x) {
  fe_secp c, y, seven;
  fs_sq(&c, x);
  fs_mul(&c, &c, x);
  fs_set_u64(&seven, 7);
  fs_add(&c, &c, &seven);
  if (!fs_sqrt(&y, &c)) return 0;
  if (fs_is_odd(&y)) fs_neg(&y, &y);
  r->X = *x;
  r->Y = y;
  fs_set_u64(&r->Z, 1);
  return 1;
}

/* Signed radix-16 digits (see recode_signed16 in ge25519.h) of a little-endian 4-limb scalar. */
DEVICE_FN void ss_recode_signed16(int d[65], const u64 a[4]) {
  for (int w = 0; w < 64; w++) d[w] = ss_nibble(a, w);
  d[64] = 0;
  for (int i = 0; i < 64; i++) {
    int carry = (d[i] + 8) >> 4;
    d[i] -= carry << 4;
    d[i + 1] += carry;
  }
}

/* [lambda](X, Y, Z) = (beta X, Y, Z). */
DEVICE_FN void gej_mul_lambda(gej_secp *r, const gej_secp *a) {
  fe_secp beta;
  beta.v[3] = 0x7AE96A2B657C0710ULL; beta.v[2] = 0x6E64479EAC3434E9ULL;
  beta.v[1] = 0x9CF0497512F58995ULL; beta.v[0] = 0xC1396C28719501EEULL;
  fs_mul(&r->X, &a->X, &beta);
  r->Y = a->Y;
  r->Z = a->Z;
}

/* t += sign * [lambda?] tab[|digit| - 1], where sign flips when `neg` is set. */
DEVICE_FN void gej_add_glv(gej_secp *t, const gej_secp *tab, int digit, int neg, int lambda) {
  if (digit == 0) return;
  if (neg) digit = -digit;
  gej_secp e = tab[(digit > 0 ? digit : -digit) - 1];
  if (lambda) gej_mul_lambda(&e, &e);
  if (digit < 0) gej_neg(&e, &e);
  gej_add(t, t, &e);
}

/* [a]P (variable time): the scalar split with GLV into halves below 2^128, then Straus over
 * (P, lambda P) with signed radix-16 windows: 32 rounds of 4 doublings instead of 64. The lambda
 * table is P's with X multiplied by beta. The fixed-base half of a verification, [b]G, comes from
 * the device table (base_tables.h) and is added afterwards. */
DEVICE_FN void gej_scalarmult_vartime(gej_secp *r, const u64 a[4], const gej_secp *P) {
  gej_secp tp[8], t;
  u64 a1[4], a2[4];
  int na1, na2;
  int da1[65], da2[65];
  ss_split_lambda(a1, &na1, a2, &na2, a);
  ss_recode_signed16(da1, a1);
  ss_recode_signed16(da2, a2);
  tp[0] = *P;
  for (int i = 1; i < 8; i++) gej_add(&tp[i], &tp[i - 1], &tp[0]);
  gej_set_infinity(&t);
  for (int w = 64; w >= 0; w--) {
    if (!gej_is_infinity(&t)) {
      gej_double(&t, &t);
      gej_double(&t, &t);
      gej_double(&t, &t);
      gej_double(&t, &t);
    }
    gej_add_glv(&t, tp, da1[w], na1, 0);
    gej_add_glv(&t, tp, da2[w], na2, 1);
  }
  *r = t;
}

#endif
