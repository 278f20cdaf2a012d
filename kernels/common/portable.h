/* portable.h: the few things OpenCL C and CUDA C++ (NVRTC) spell differently.
 *
 * Every arithmetic header under kernels/common/ is written against these macros only, so the same
 * text compiles as OpenCL C 1.2/3.0 (PoCL, GPU drivers) and as CUDA C++ under NVRTC.
 *   GLOBAL        pointer qualifier for device (global) memory
 *   CONST_ARRAY   declaration qualifier for a program-scope constant table
 *   DEVICE_FN     a device function (inlined)
 *   KERNEL        a kernel entry point
 *   MULHI64(a,b)  the high 64 bits of the 128-bit product a*b
 *   THREAD_ID     this thread's global index (1-D launches)
 */
#ifndef PARTHENON_PORTABLE_H
#define PARTHENON_PORTABLE_H

#ifdef __OPENCL_VERSION__
typedef ulong u64;
typedef long i64;
typedef uint u32;
typedef uchar u8;
#define GLOBAL __global
#define CONST_ARRAY __constant
#define DEVICE_FN static inline
#define KERNEL __kernel
#define MULHI64(a, b) mul_hi((ulong)(a), (ulong)(b))
#define THREAD_ID ((u64)get_global_id(0))
#else /* CUDA C++ through NVRTC */
typedef unsigned long long u64;
typedef long long i64;
typedef unsigned int u32;
typedef unsigned char u8;
#define GLOBAL
#define CONST_ARRAY __constant__
#define DEVICE_FN static __device__ inline
#define KERNEL extern "C" __global__
#define MULHI64(a, b) __umul64hi((a), (b))
#define THREAD_ID ((u64)blockIdx.x * (u64)blockDim.x + (u64)threadIdx.x)
#endif

/* Scheme and rule codes shared with the host (src/sigverify/gpu/mod.rs). */
#define SCHEME_ED25519 0u
#define SCHEME_BIP340 1u
#define RULES_ZIP215 0u
#define RULES_STRICT 1u

#endif
