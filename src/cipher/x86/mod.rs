//! The x86-64 hardware backends: AES-NI + PCLMULQDQ on 128-bit registers, and VAES + VPCLMULQDQ
//! on 256-bit (AVX2) and 512-bit (AVX-512) registers. One algorithm ([`gcm`]) over one vector
//! trait ([`lanes::Lanes`]); each backend file instantiates it with its register width, the
//! number of registers in flight and the `target_feature` set that the run-time check
//! ([`missing`]) proves present before a kernel is built.

pub(crate) mod aesni;
pub(crate) mod gcm;
pub(crate) mod keys;
pub(crate) mod lanes;
pub(crate) mod vaes256;
pub(crate) mod vaes512;

/// The CPU features in `list` (comma-separated `target_feature` names) that this CPU lacks.
pub(crate) fn missing(list: &str) -> Vec<&str> {
    list.split(',').filter(|f| !has(f)).collect()
}

fn has(f: &str) -> bool {
    use std::arch::is_x86_feature_detected as d;
    match f {
        "aes" => d!("aes"),
        "pclmulqdq" => d!("pclmulqdq"),
        "ssse3" => d!("ssse3"),
        "sse4.1" => d!("sse4.1"),
        "avx" => d!("avx"),
        "avx2" => d!("avx2"),
        "vaes" => d!("vaes"),
        "vpclmulqdq" => d!("vpclmulqdq"),
        "avx512f" => d!("avx512f"),
        "avx512bw" => d!("avx512bw"),
        "avx512vl" => d!("avx512vl"),
        _ => false,
    }
}

/// Defines a backend: `$name<NR>` (the kernel) with its `target_feature` entry points.
macro_rules! hw_kernel {
    ($name:ident, $v:ty, $nv:expr, $feat:literal, $backend:expr) => {
        use super::gcm;
        use super::keys::{self, KeySchedule};
        use crate::cipher::kernel::{AesKey, Block, Kernel};
        use crate::engine::Backend;

        /// The `target_feature` set of this backend.
        pub(crate) const FEATURES: &str = $feat;

        /// A key expanded for this backend. `NR` = 10 (AES-128) or 14 (AES-256).
        pub(crate) struct $name<const NR: usize> {
            ks: KeySchedule,
        }

        impl<const NR: usize> $name<NR> {
            /// Expands `key`; `NR` must be its round count ([`AesKey::rounds`]), or every
            /// method computes a cipher other than AES (a mistake, checked in debug builds).
            ///
            /// # Safety
            /// The CPU must support every feature in [`FEATURES`] (check with
            /// [`super::missing`]): every method executes those instructions.
            pub(crate) unsafe fn new(key: AesKey<'_>) -> Self {
                debug_assert_eq!(NR, key.rounds(), "round count of the kernel type and of the key");
                // SAFETY: the caller guarantees the features, a superset of `expand`'s.
                Self { ks: unsafe { keys::expand(key) } }
            }
        }

        #[target_feature(enable = $feat)]
        #[inline(never)]
        unsafe fn chunk_tf<const NR: usize, const GHASH: bool>(
            c: &gcm::Ctx<$v>,
            pw: &[$v; $nv],
            ctr: &mut $v,
            inc: $v,
            io: *mut u8,
            prev: *const u8,
            acc: &mut core::arch::x86_64::__m128i,
        ) {
            // SAFETY: this function enables the features; the caller (`gcm::crypt`) guarantees
            // the pointers.
            unsafe { gcm::chunk::<$v, { $nv }, NR, GHASH>(c, pw, ctr, inc, io, prev, acc) }
        }

        #[target_feature(enable = $feat)]
        unsafe fn crypt_tf<const NR: usize, const OPEN: bool>(
            ks: &KeySchedule,
            nonce: &[u8; 12],
            ctr: u32,
            acc: &mut Block,
            buf: &mut [u8],
            lens: Option<&Block>,
        ) {
            // SAFETY: this function enables the features the generic code needs.
            unsafe {
                let c = gcm::ctx::<$v>(ks);
                let a = gcm::acc_in(acc, ks);
                let a = gcm::crypt::<$v, { $nv }, NR, OPEN>(
                    &c,
                    ks,
                    nonce,
                    ctr,
                    a,
                    buf,
                    lens,
                    chunk_tf::<NR, false>,
                    chunk_tf::<NR, true>,
                );
                gcm::acc_out(a, acc, ks);
            }
        }

        #[target_feature(enable = $feat)]
        unsafe fn ghash_tf(ks: &KeySchedule, acc: &mut Block, data: &[u8]) {
            // SAFETY: this function enables the features the generic code needs.
            unsafe {
                let c = gcm::ctx::<$v>(ks);
                let a = gcm::acc_in(acc, ks);
                let a = gcm::ghash::<$v, { $nv }>(&c, ks, a, data);
                gcm::acc_out(a, acc, ks);
            }
        }

        #[target_feature(enable = $feat)]
        unsafe fn mul_h_pow_tf(ks: &KeySchedule, acc: &mut Block, m: u64) {
            // SAFETY: this function enables the features the generic code needs.
            unsafe {
                let a = gcm::acc_in(acc, ks);
                let a = gcm::mul_h_pow(ks, a, m);
                gcm::acc_out(a, acc, ks);
            }
        }

        #[target_feature(enable = $feat)]
        unsafe fn encrypt_block_tf<const NR: usize>(ks: &KeySchedule, block: &mut Block) {
            // SAFETY: this function enables the features the generic code needs.
            unsafe { gcm::encrypt_block::<NR>(ks, block) }
        }

        // SAFETY (all unsafe calls below): a `$name` exists only through `new`, whose caller
        // proved the CPU features.
        impl<const NR: usize> Kernel for $name<NR> {
            fn backend(&self) -> Backend {
                $backend
            }
            fn encrypt_block(&self, block: &mut Block) {
                // SAFETY: see the impl comment.
                unsafe { encrypt_block_tf::<NR>(&self.ks, block) }
            }
            fn ghash(&self, acc: &mut Block, data: &[u8]) {
                // SAFETY: see the impl comment.
                unsafe { ghash_tf(&self.ks, acc, data) }
            }
            fn crypt(
                &self,
                open: bool,
                nonce: &[u8; 12],
                ctr: u32,
                acc: &mut Block,
                buf: &mut [u8],
                lens: Option<&Block>,
            ) {
                if open {
                    // SAFETY: see the impl comment.
                    unsafe { crypt_tf::<NR, true>(&self.ks, nonce, ctr, acc, buf, lens) }
                } else {
                    // SAFETY: see the impl comment.
                    unsafe { crypt_tf::<NR, false>(&self.ks, nonce, ctr, acc, buf, lens) }
                }
            }
            fn mul_h_pow(&self, acc: &mut Block, m: u64) {
                // SAFETY: see the impl comment.
                unsafe { mul_h_pow_tf(&self.ks, acc, m) }
            }
        }
    };
}
pub(crate) use hw_kernel;
