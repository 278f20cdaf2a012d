//! VAES + VPCLMULQDQ on 256-bit registers (AVX2, 16 registers): 4 registers = 8 blocks in flight
//! per iteration, one GHASH reduction per 8 blocks.

super::hw_kernel!(
    Vaes256Kernel,
    core::arch::x86_64::__m256i,
    4,
    "aes,pclmulqdq,ssse3,sse4.1,avx,avx2,vaes,vpclmulqdq",
    Backend::VaesAvx2
);
