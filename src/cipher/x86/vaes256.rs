//! VAES + VPCLMULQDQ on 256-bit registers (AVX2, 16 registers): 8 registers = 16 blocks in
//! flight per iteration, one GHASH reduction per 16 blocks. (4 registers measured at 0.6x ring
//! on Zen 5: the AES chains were latency-bound; 8 registers spill a little but reach 1.0x.)

super::hw_kernel!(
    Vaes256Kernel,
    core::arch::x86_64::__m256i,
    8,
    "aes,pclmulqdq,ssse3,sse4.1,avx,avx2,vaes,vpclmulqdq",
    Backend::VaesAvx2
);
