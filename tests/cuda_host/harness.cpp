/* harness.cpp: runs the CUDA kernels (kernels/cuda/verify.cu) on the host, one emulated thread at
 * a time, in the order a launch would (blocks, then threads), for tests/gpu_cuda_on_host.rs.
 *
 *   harness INPUT OUTPUT
 *
 * INPUT (little-endian): u64 n, u32 rules, n scheme bytes, n 32-byte public keys, n 64-byte
 * signatures, n + 1 u64 message offsets, then the messages. OUTPUT: n verdict bytes.
 *
 * The host does what src/sigverify/gpu/cuda.rs does on a device: query the table layout, build
 * the fixed-base tables with the base_tables kernel, then launch sig_challenge and sig_verify over
 * 128-thread blocks. Exit status 0 on success, 2 on bad usage or input, 3 on a layout mismatch. */
#include "prelude.h"
#include "cuda/verify.cu"

#include <cstdio>
#include <vector>

template <typename Kernel> static void launch(unsigned grid, unsigned block, Kernel kernel) {
  blockDim = {block, 1, 1};
  for (unsigned b = 0; b < grid; b++) {
    blockIdx = {b, 0, 0};
    for (unsigned t = 0; t < block; t++) {
      threadIdx = {t, 0, 0};
      kernel();
    }
  }
}

template <typename T> static bool read_into(FILE *f, std::vector<T> &v) {
  return v.empty() || fread(v.data(), sizeof(T), v.size(), f) == v.size();
}

int main(int argc, char **argv) {
  if (argc != 3) {
    fprintf(stderr, "usage: harness INPUT OUTPUT\n");
    return 2;
  }
  FILE *in = fopen(argv[1], "rb");
  if (!in) {
    perror(argv[1]);
    return 2;
  }
  u64 n = 0;
  u32 rules = 0;
  if (fread(&n, 8, 1, in) != 1 || fread(&rules, 4, 1, in) != 1 || n > (1ull << 32)) {
    fprintf(stderr, "%s: bad header\n", argv[1]);
    return 2;
  }
  std::vector<u8> schemes(n), pubkeys(32 * n), sigs(64 * n);
  std::vector<u64> offsets(n + 1);
  if (!read_into(in, schemes) || !read_into(in, pubkeys) || !read_into(in, sigs) || !read_into(in, offsets) ||
      offsets[n] < offsets[0]) {
    fprintf(stderr, "%s: truncated arrays\n", argv[1]);
    return 2;
  }
  std::vector<u8> msgs(offsets[n] - offsets[0] + 1); /* +1: data() is never null */
  msgs.pop_back();
  if (!read_into(in, msgs)) {
    fprintf(stderr, "%s: truncated messages\n", argv[1]);
    return 2;
  }
  fclose(in);

  u64 layout[4] = {0, 0, 0, 0};
  launch(1, 1, [&] { base_table_layout(layout); });
  if (layout[0] != sizeof(ge25519_cached) || layout[1] != sizeof(gej_secp) || layout[2] != BASE_WINDOWS ||
      layout[3] != BASE_ENTRIES) {
    fprintf(stderr, "table layout mismatch\n");
    return 3;
  }
  std::vector<ge25519_cached> btab(BASE_WINDOWS * BASE_ENTRIES);
  std::vector<gej_secp> gtab(BASE_WINDOWS * BASE_ENTRIES);
  launch(1, BASE_TABLE_THREADS, [&] { base_tables(btab.data(), gtab.data()); });

  std::vector<u8> challenges(32 * n), verdicts(n, 0xff);
  const unsigned block = 128;
  const unsigned grid = (unsigned)((n + block - 1) / block);
  launch(grid, block, [&] {
    sig_challenge(n, schemes.data(), pubkeys.data(), sigs.data(), msgs.data(), offsets.data(), challenges.data());
  });
  launch(grid, block, [&] {
    sig_verify(n, rules, schemes.data(), pubkeys.data(), sigs.data(), challenges.data(), verdicts.data(), btab.data(),
               gtab.data());
  });

  FILE *out = fopen(argv[2], "wb");
  if (!out || (n && fwrite(verdicts.data(), 1, n, out) != n) || fclose(out) != 0) {
    perror(argv[2]);
    return 2;
  }
  return 0;
}
