/* OpenCL entry: thin wrappers over kernels/common/verify.h (one work-item per signature). */
#include "common/verify.h"

__kernel void sig_challenge(ulong n, __global const uchar *schemes, __global const uchar *pubkeys,
                            __global const uchar *sigs, __global const uchar *msgs, __global const ulong *offsets,
                            __global uchar *challenges) {
  ulong i = THREAD_ID;
  if (i < n) challenge_one(i, schemes, pubkeys, sigs, msgs, offsets, challenges);
}

__kernel void sig_verify(ulong n, uint rules, __global const uchar *schemes, __global const uchar *pubkeys,
                         __global const uchar *sigs, __global const uchar *challenges, __global uchar *verdicts) {
  ulong i = THREAD_ID;
  if (i < n) verify_item(i, rules, schemes, pubkeys, sigs, challenges, verdicts);
}
