//! AES-NI + PCLMULQDQ on 128-bit registers: 8 blocks in flight per iteration (AES latency is
//! about 4 cycles at 2 per cycle), one GHASH reduction per 8 blocks.

super::hw_kernel!(AesNiKernel, core::arch::x86_64::__m128i, 8, "aes,pclmulqdq,ssse3,sse4.1", Backend::AesNi);
