//! VAES + VPCLMULQDQ on 512-bit registers (AVX-512): 8 registers = 32 blocks in flight per
//! iteration (VAES latency x throughput needs 8 independent registers), one GHASH reduction per
//! 32 blocks, three-way XORs as `VPTERNLOGD`.

super::hw_kernel!(
    Vaes512Kernel,
    core::arch::x86_64::__m512i,
    8,
    "aes,pclmulqdq,ssse3,sse4.1,avx,avx2,vaes,vpclmulqdq,avx512f,avx512bw,avx512vl",
    Backend::VaesAvx512
);
