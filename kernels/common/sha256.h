/* sha256.h: SHA-256 (FIPS 180-4), streaming, and BIP-340 tagged hashes
 * SHA256(SHA256(tag) || SHA256(tag) || data). */
#ifndef PARTHENON_SHA256_H
#define PARTHENON_SHA256_H
#include "portable.h"

CONST_ARRAY u32 SHA256_K[64] = {
  0x428a2f98u, 0x71374491u, 0xb5c0fbcfu, 0xe9b5dba5u, 0x3956c25bu, 0x59f111f1u, 0x923f82a4u, 0xab1c5ed5u,
  0xd807aa98u, 0x12835b01u, 0x243185beu, 0x550c7dc3u, 0x72be5d74u, 0x80deb1feu, 0x9bdc06a7u, 0xc19bf174u,
  0xe49b69c1u, 0xefbe4786u, 0x0fc19dc6u, 0x240ca1ccu, 0x2de92c6fu, 0x4a7484aau, 0x5cb0a9dcu, 0x76f988dau,
  0x983e5152u, 0xa831c66du, 0xb00327c8u, 0xbf597fc7u, 0xc6e00bf3u, 0xd5a79147u, 0x06ca6351u, 0x14292967u,
  0x27b70a85u, 0x2e1b2138u, 0x4d2c6dfcu, 0x53380d13u, 0x650a7354u, 0x766a0abbu, 0x81c2c92eu, 0x92722c85u,
  0xa2bfe8a1u, 0xa81a664bu, 0xc24b8b70u, 0xc76c51a3u, 0xd192e819u, 0xd6990624u, 0xf40e3585u, 0x106aa070u,
  0x19a4c116u, 0x1e376c08u, 0x2748774cu, 0x34b0bcb5u, 0x391c0cb3u, 0x4ed8aa4au, 0x5b9cca4fu, 0x682e6ff3u,
  0x748f82eeu, 0x78a5636fu, 0x84c87814u, 0x8cc70208u, 0x90befffau, 0xa4506cebu, 0xbef9a3f7u, 0xc67178f2u};

typedef struct {
  u32 h[8];
  u32 w[16];
  u32 fill;
  u64 total;
} sha256_ctx;

DEVICE_FN u32 rotr32(u32 x, int n) { return (x >> n) | (x << (32 - n)); }

DEVICE_FN void sha256_init(sha256_ctx *c) {
  c->h[0] = 0x6a09e667u; c->h[1] = 0xbb67ae85u; c->h[2] = 0x3c6ef372u; c->h[3] = 0xa54ff53au;
  c->h[4] = 0x510e527fu; c->h[5] = 0x9b05688cu; c->h[6] = 0x1f83d9abu; c->h[7] = 0x5be0cd19u;
  for (int i = 0; i < 16; i++) c->w[i] = 0;
  c->fill = 0;
  c->total = 0;
}

DEVICE_FN void sha256_block(sha256_ctx *c) {
  u32 w[16];
  for (int i = 0; i < 16; i++) w[i] = c->w[i];
  u32 a = c->h[0], b = c->h[1], cc = c->h[2], d = c->h[3], e = c->h[4], f = c->h[5], g = c->h[6], h = c->h[7];
  for (int i = 0; i < 64; i++) {
    u32 wi;
    if (i < 16) {
      wi = w[i];
    } else {
      u32 w15 = w[(i + 1) & 15], w2 = w[(i + 14) & 15];
      u32 s0 = rotr32(w15, 7) ^ rotr32(w15, 18) ^ (w15 >> 3);
      u32 s1 = rotr32(w2, 17) ^ rotr32(w2, 19) ^ (w2 >> 10);
      wi = w[i & 15] + s0 + w[(i + 9) & 15] + s1;
      w[i & 15] = wi;
    }
    u32 S1 = rotr32(e, 6) ^ rotr32(e, 11) ^ rotr32(e, 25);
    u32 ch = (e & f) ^ (~e & g);
    u32 t1 = h + S1 + ch + SHA256_K[i] + wi;
    u32 S0 = rotr32(a, 2) ^ rotr32(a, 13) ^ rotr32(a, 22);
    u32 maj = (a & b) ^ (a & cc) ^ (b & cc);
    u32 t2 = S0 + maj;
    h = g; g = f; f = e; e = d + t1; d = cc; cc = b; b = a; a = t1 + t2;
  }
  c->h[0] += a; c->h[1] += b; c->h[2] += cc; c->h[3] += d;
  c->h[4] += e; c->h[5] += f; c->h[6] += g; c->h[7] += h;
  for (int i = 0; i < 16; i++) c->w[i] = 0;
  c->fill = 0;
}

DEVICE_FN void sha256_byte(sha256_ctx *c, u8 x) {
  c->w[c->fill >> 2] |= ((u32)x) << (24 - 8 * (c->fill & 3));
  c->fill++;
  c->total++;
  if (c->fill == 64) sha256_block(c);
}

DEVICE_FN void sha256_update(sha256_ctx *c, const u8 *p, u32 n) {
  for (u32 i = 0; i < n; i++) sha256_byte(c, p[i]);
}

DEVICE_FN void sha256_update_global(sha256_ctx *c, GLOBAL const u8 *p, u64 n) {
  u64 i = 0;
  while (i < n && (c->fill & 3) != 0) { sha256_byte(c, p[i]); i++; }
  while (i + 4 <= n) {
    u32 x = ((u32)p[i] << 24) | ((u32)p[i + 1] << 16) | ((u32)p[i + 2] << 8) | (u32)p[i + 3];
    c->w[c->fill >> 2] = x;
    c->fill += 4;
    c->total += 4;
    i += 4;
    if (c->fill == 64) sha256_block(c);
  }
  while (i < n) { sha256_byte(c, p[i]); i++; }
}

DEVICE_FN void sha256_final(sha256_ctx *c, u8 out[32]) {
  u64 bits = c->total * 8;
  sha256_byte(c, 0x80);
  while (c->fill != 56) sha256_byte(c, 0);
  c->w[14] = (u32)(bits >> 32);
  c->w[15] = (u32)bits;
  sha256_block(c);
  for (int i = 0; i < 8; i++)
    for (int j = 0; j < 4; j++) out[4 * i + j] = (u8)(c->h[i] >> (24 - 8 * j));
}

/* A context that has absorbed SHA256(tag) || SHA256(tag) for the BIP-340 tag "BIP0340/challenge". */
DEVICE_FN void sha256_init_bip340_challenge(sha256_ctx *c) {
  const u8 tag[17] = {'B', 'I', 'P', '0', '3', '4', '0', '/', 'c', 'h', 'a', 'l', 'l', 'e', 'n', 'g', 'e'};
  u8 th[32];
  sha256_init(c);
  sha256_update(c, tag, 17);
  sha256_final(c, th);
  sha256_init(c);
  sha256_update(c, th, 32);
  sha256_update(c, th, 32);
}

#endif
