/* prelude.h: the few CUDA spellings kernels/cuda/verify.cu uses, for a host C++ compiler.
 *
 * With this included first, g++ compiles the CUDA entry and the shared headers as the C++14 NVRTC
 * compiles them: `__device__`/`__global__`/`__constant__` vanish, the thread indices are
 * globals that harness.cpp sets before each emulated thread, and `__umul64hi` is the high half
 * of a 128-bit product, as on the device. Used by tests/gpu_cuda_on_host.rs. */
#ifndef PARTHENON_CUDA_HOST_PRELUDE_H
#define PARTHENON_CUDA_HOST_PRELUDE_H
#define __device__
#define __global__
#define __constant__
struct parthenon_dim3 {
  unsigned x, y, z;
};
static parthenon_dim3 blockIdx, blockDim, threadIdx;
static inline unsigned long long __umul64hi(unsigned long long a, unsigned long long b) {
  return (unsigned long long)(((unsigned __int128)a * b) >> 64);
}
#endif
