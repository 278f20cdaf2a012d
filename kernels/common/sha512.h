/* sha512.h: SHA-512 (FIPS 180-4), streaming, one thread per message. Bytes can be fed from
 * private memory or from global memory (the batch's flat message buffer). */
#ifndef PARTHENON_SHA512_H
#define PARTHENON_SHA512_H
#include "portable.h"

CONST_ARRAY u64 SHA512_K[80] = {
  0x428a2f98d728ae22ULL, 0x7137449123ef65cdULL, 0xb5c0fbcfec4d3b2fULL, 0xe9b5dba58189dbbcULL, 0x3956c25bf348b538ULL,
  0x59f111f1b605d019ULL, 0x923f82a4af194f9bULL, 0xab1c5ed5da6d8118ULL, 0xd807aa98a3030242ULL, 0x12835b0145706fbeULL,
  0x243185be4ee4b28cULL, 0x550c7dc3d5ffb4e2ULL, 0x72be5d74f27b896fULL, 0x80deb1fe3b1696b1ULL, 0x9bdc06a725c71235ULL,
  0xc19bf174cf692694ULL, 0xe49b69c19ef14ad2ULL, 0xefbe4786384f25e3ULL, 0x0fc19dc68b8cd5b5ULL, 0x240ca1cc77ac9c65ULL,
  0x2de92c6f592b0275ULL, 0x4a7484aa6ea6e483ULL, 0x5cb0a9dcbd41fbd4ULL, 0x76f988da831153b5ULL, 0x983e5152ee66dfabULL,
  0xa831c66d2db43210ULL, 0xb00327c898fb213fULL, 0xbf597fc7beef0ee4ULL, 0xc6e00bf33da88fc2ULL, 0xd5a79147930aa725ULL,
  0x06ca6351e003826fULL, 0x142929670a0e6e70ULL, 0x27b70a8546d22ffcULL, 0x2e1b21385c26c926ULL, 0x4d2c6dfc5ac42aedULL,
  0x53380d139d95b3dfULL, 0x650a73548baf63deULL, 0x766a0abb3c77b2a8ULL, 0x81c2c92e47edaee6ULL, 0x92722c851482353bULL,
  0xa2bfe8a14cf10364ULL, 0xa81a664bbc423001ULL, 0xc24b8b70d0f89791ULL, 0xc76c51a30654be30ULL, 0xd192e819d6ef5218ULL,
  0xd69906245565a910ULL, 0xf40e35855771202aULL, 0x106aa07032bbd1b8ULL, 0x19a4c116b8d2d0c8ULL, 0x1e376c085141ab53ULL,
  0x2748774cdf8eeb99ULL, 0x34b0bcb5e19b48a8ULL, 0x391c0cb3c5c95a63ULL, 0x4ed8aa4ae3418acbULL, 0x5b9cca4f7763e373ULL,
  0x682e6ff3d6b2b8a3ULL, 0x748f82ee5defb2fcULL, 0x78a5636f43172f60ULL, 0x84c87814a1f0ab72ULL, 0x8cc702081a6439ecULL,
  0x90befffa23631e28ULL, 0xa4506cebde82bde9ULL, 0xbef9a3f7b2c67915ULL, 0xc67178f2e372532bULL, 0xca273eceea26619cULL,
  0xd186b8c721c0c207ULL, 0xeada7dd6cde0eb1eULL, 0xf57d4f7fee6ed178ULL, 0x06f067aa72176fbaULL, 0x0a637dc5a2c898a6ULL,
  0x113f9804bef90daeULL, 0x1b710b35131c471bULL, 0x28db77f523047d84ULL, 0x32caab7b40c72493ULL, 0x3c9ebe0a15c9bebcULL,
  0x431d67c49c100d4cULL, 0x4cc5d4becb3e42b6ULL, 0x597f299cfc657e2aULL, 0x5fcb6fab3ad6faecULL, 0x6c44198c4a475817ULL};

typedef struct {
  u64 h[8];
  u64 w[16];   /* the block being filled, big-endian words */
  u32 fill;    /* bytes in the current block */
  u64 total;   /* bytes fed so far */
} sha512_ctx;

DEVICE_FN u64 rotr64(u64 x, int n) { return (x >> n) | (x << (64 - n)); }

DEVICE_FN void sha512_init(sha512_ctx *c) {
  c->h[0] = 0x6a09e667f3bcc908ULL; c->h[1] = 0xbb67ae8584caa73bULL;
  c->h[2] = 0x3c6ef372fe94f82bULL; c->h[3] = 0xa54ff53a5f1d36f1ULL;
  c->h[4] = 0x510e527fade682d1ULL; c->h[5] = 0x9b05688c2b3e6c1fULL;
  c->h[6] = 0x1f83d9abfb41bd6bULL; c->h[7] = 0x5be0cd19137e2179ULL;
  for (int i = 0; i < 16; i++) c->w[i] = 0;
  c->fill = 0;
  c->total = 0;
}

DEVICE_FN void sha512_block(sha512_ctx *c) {
  u64 w[16];
  for (int i = 0; i < 16; i++) w[i] = c->w[i];
  u64 a = c->h[0], b = c->h[1], cc = c->h[2], d = c->h[3], e = c->h[4], f = c->h[5], g = c->h[6], h = c->h[7];
  for (int i = 0; i < 80; i++) {
    u64 wi;
    if (i < 16) {
      wi = w[i];
    } else {
      u64 w15 = w[(i + 1) & 15], w2 = w[(i + 14) & 15];
      u64 s0 = rotr64(w15, 1) ^ rotr64(w15, 8) ^ (w15 >> 7);
      u64 s1 = rotr64(w2, 19) ^ rotr64(w2, 61) ^ (w2 >> 6);
      wi = w[i & 15] + s0 + w[(i + 9) & 15] + s1;
      w[i & 15] = wi;
    }
    u64 S1 = rotr64(e, 14) ^ rotr64(e, 18) ^ rotr64(e, 41);
    u64 ch = (e & f) ^ (~e & g);
    u64 t1 = h + S1 + ch + SHA512_K[i] + wi;
    u64 S0 = rotr64(a, 28) ^ rotr64(a, 34) ^ rotr64(a, 39);
    u64 maj = (a & b) ^ (a & cc) ^ (b & cc);
    u64 t2 = S0 + maj;
    h = g; g = f; f = e; e = d + t1; d = cc; cc = b; b = a; a = t1 + t2;
  }
  c->h[0] += a; c->h[1] += b; c->h[2] += cc; c->h[3] += d;
  c->h[4] += e; c->h[5] += f; c->h[6] += g; c->h[7] += h;
  for (int i = 0; i < 16; i++) c->w[i] = 0;
  c->fill = 0;
}

DEVICE_FN void sha512_byte(sha512_ctx *c, u8 x) {
  c->w[c->fill >> 3] |= ((u64)x) << (56 - 8 * (c->fill & 7));
  c->fill++;
  c->total++;
  if (c->fill == 128) sha512_block(c);
}

DEVICE_FN void sha512_update(sha512_ctx *c, const u8 *p, u32 n) {
  for (u32 i = 0; i < n; i++) sha512_byte(c, p[i]);
}

DEVICE_FN void sha512_update_global(sha512_ctx *c, GLOBAL const u8 *p, u64 n) {
  u64 i = 0;
  /* Whole big-endian words while the block is word-aligned. */
  while (i < n && (c->fill & 7) != 0) { sha512_byte(c, p[i]); i++; }
  while (i + 8 <= n) {
    u64 x = 0;
    for (int j = 0; j < 8; j++) x = (x << 8) | (u64)p[i + j];
    c->w[c->fill >> 3] = x;
    c->fill += 8;
    c->total += 8;
    i += 8;
    if (c->fill == 128) sha512_block(c);
  }
  while (i < n) { sha512_byte(c, p[i]); i++; }
}

DEVICE_FN void sha512_final(sha512_ctx *c, u8 out[64]) {
  u64 bits = c->total * 8;
  sha512_byte(c, 0x80);
  while (c->fill != 112) sha512_byte(c, 0);
  /* 128-bit length: the high 64 bits are zero for any message this code can see. */
  c->w[14] = 0;
  c->w[15] = bits;
  sha512_block(c);
  for (int i = 0; i < 8; i++)
    for (int j = 0; j < 8; j++) out[8 * i + j] = (u8)(c->h[i] >> (56 - 8 * j));
}

#endif
