//! VAES + VPCLMULQDQ on 512-bit registers (AVX-512): 4 registers = 16 blocks in flight per
//! iteration, one GHASH reduction per 16 blocks, three-way XORs as `VPTERNLOGD`.

super::hw_kernel!(
    Vaes512Kernel,
    core::arch::x86_64::__m512i,
    4,
    "aes,pclmulqdq,ssse3,sse4.1,avx,avx2,vaes,vpclmulqdq,avx512f,avx512bw,avx512vl",
    Backend::VaesAvx512
);
