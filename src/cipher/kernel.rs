//! The contract every backend implements, and the choice of backend.
//!
//! A kernel holds one expanded key. Its primitives are the pieces of GCM that the sequential path
//! ([`Kernel::seal_message`]) and the parallel path ([`super::parallel`]) assemble:
//!
//! - `crypt(open, nonce, ctr, acc, buf, lens)`: XOR `buf` with the keystream of counter blocks
//!   `nonce || ctr`, `nonce || ctr + 1`, … (32-bit big-endian counter, wrapping as GCM's
//!   `inc32`), and absorb the *ciphertext* (the input when opening, the output when sealing),
//!   last partial block zero-padded, into the GHASH accumulator `acc`, then the block `lens`.
//! - `ghash(acc, data)`: absorb `data`, zero-padded.
//! - `mul_h_pow(acc, m)`: `acc · H^m`, which shifts a partial GHASH past `m` later blocks.
//!
//! Accumulators are in GCM byte order: absorbing block `b` is `acc = (acc ^ b) · H`.

use super::Error;
use crate::engine::Backend;

/// One 16-byte block.
pub(crate) type Block = [u8; 16];

/// Largest message GCM allows with a 96-bit nonce: 2^32 - 2 blocks (`2^39 - 256` bits).
pub(crate) const P_MAX: u64 = (1 << 36) - 32;
/// Largest associated data GCM allows: `2^64 - 1` bits, rounded down to bytes.
pub(crate) const A_MAX: u64 = (1 << 61) - 1;

/// An AES key of either size.
#[derive(Clone, Copy)]
pub(crate) enum AesKey<'a> {
    /// AES-128.
    K128(&'a [u8; 16]),
    /// AES-256.
    K256(&'a [u8; 32]),
}

impl AesKey<'_> {
    /// The key bytes (16 or 32).
    pub(crate) fn bytes(&self) -> &[u8] {
        match self {
            AesKey::K128(k) => &k[..],
            AesKey::K256(k) => &k[..],
        }
    }

    /// AES rounds for this key size: 10 (AES-128) or 14 (AES-256).
    pub(crate) fn rounds(&self) -> usize {
        match self {
            AesKey::K128(_) => 10,
            AesKey::K256(_) => 14,
        }
    }
}

/// One backend with one key.
pub(crate) trait Kernel: Send + Sync {
    /// Which backend this is.
    fn backend(&self) -> Backend;
    /// AES encryption of one block.
    fn encrypt_block(&self, block: &mut Block);
    /// Absorbs `data` (last partial block zero-padded) into `acc`.
    fn ghash(&self, acc: &mut Block, data: &[u8]);
    /// CTR over `buf` from counter `ctr`, absorbing the ciphertext and then `lens` into `acc`.
    fn crypt(&self, open: bool, nonce: &[u8; 12], ctr: u32, acc: &mut Block, buf: &mut [u8], lens: Option<&Block>);
    /// `acc · H^m`.
    fn mul_h_pow(&self, acc: &mut Block, m: u64);

    /// The whole seal of one message; returns the tag.
    fn seal_message(&self, nonce: &[u8; 12], aad: &[u8], buf: &mut [u8]) -> Block {
        let mut acc = [0u8; 16];
        if !aad.is_empty() {
            self.ghash(&mut acc, aad);
        }
        self.crypt(false, nonce, 2, &mut acc, buf, Some(&lengths(aad.len(), buf.len())));
        finish(self, nonce, acc)
    }

    /// The whole open of one message: the tag it should carry. The caller compares.
    fn open_message(&self, nonce: &[u8; 12], aad: &[u8], buf: &mut [u8]) -> Block {
        let mut acc = [0u8; 16];
        if !aad.is_empty() {
            self.ghash(&mut acc, aad);
        }
        self.crypt(true, nonce, 2, &mut acc, buf, Some(&lengths(aad.len(), buf.len())));
        finish(self, nonce, acc)
    }
}

/// The GCM length block: bit lengths of AAD and message, big-endian.
pub(crate) fn lengths(aad: usize, msg: usize) -> Block {
    let mut b = [0u8; 16];
    b[..8].copy_from_slice(&((aad as u64) * 8).to_be_bytes());
    b[8..].copy_from_slice(&((msg as u64) * 8).to_be_bytes());
    b
}

/// Tag = GHASH ^ E(K, nonce || 1).
pub(crate) fn finish<K: Kernel + ?Sized>(k: &K, nonce: &[u8; 12], acc: Block) -> Block {
    let mut j0 = [0u8; 16];
    j0[..12].copy_from_slice(nonce);
    j0[15] = 1;
    k.encrypt_block(&mut j0);
    let mut tag = acc;
    for (t, e) in tag.iter_mut().zip(j0) {
        *t ^= e;
    }
    tag
}

/// Constant-time equality of two tags.
pub(crate) fn tags_equal(a: &Block, b: &Block) -> bool {
    let diff = a.iter().zip(b).fold(0u8, |d, (x, y)| d | (x ^ y));
    core::hint::black_box(diff) == 0
}

/// The cipher backends, fastest first (the engine's order for [`crate::Job::Cipher`]).
pub(crate) const ORDER: [Backend; 4] = [Backend::VaesAvx512, Backend::VaesAvx2, Backend::AesNi, Backend::Portable];

/// The features the x86 kernel of `backend` is compiled for (see [`super::kernel_features`]).
pub(crate) fn features(backend: Backend) -> Option<&'static str> {
    #[cfg(target_arch = "x86_64")]
    {
        use super::x86;
        match backend {
            Backend::VaesAvx512 => Some(x86::vaes512::FEATURES),
            Backend::VaesAvx2 => Some(x86::vaes256::FEATURES),
            Backend::AesNi => Some(x86::aesni::FEATURES),
            _ => None,
        }
    }
    #[cfg(not(target_arch = "x86_64"))]
    {
        let _ = backend;
        None
    }
}

/// `Ok` when `backend` can run on this CPU, else why not.
pub(crate) fn check(backend: Backend) -> Result<(), Error> {
    let unavailable = |reason: String| Err(Error::BackendUnavailable { backend, reason });
    #[cfg(target_arch = "x86_64")]
    {
        let feats = match (backend, features(backend)) {
            (_, Some(feats)) => feats,
            (Backend::Portable, None) => return Ok(()),
            (other, None) => return Err(Error::NotACipherBackend { backend: other }),
        };
        let missing = super::x86::missing(feats);
        if missing.is_empty() {
            Ok(())
        } else {
            unavailable(format!("CPU lacks {}", missing.join(", ")))
        }
    }
    #[cfg(not(target_arch = "x86_64"))]
    match backend {
        Backend::Portable => Ok(()),
        Backend::VaesAvx512 | Backend::VaesAvx2 | Backend::AesNi => {
            unavailable(format!("not an x86-64 CPU ({})", std::env::consts::ARCH))
        }
        other => Err(Error::NotACipherBackend { backend: other }),
    }
}

/// The fastest backend this CPU runs.
pub(crate) fn fastest() -> Backend {
    ORDER.into_iter().find(|b| check(*b).is_ok()).unwrap_or(Backend::Portable)
}

/// A kernel of `backend` for `aes_key`, or why `backend` cannot run here.
pub(crate) fn build(backend: Backend, aes_key: AesKey<'_>) -> Result<Box<dyn Kernel>, Error> {
    check(backend)?;
    let aes256 = matches!(aes_key, AesKey::K256(_));
    // One x86 kernel type per backend, generic over the round count (14 for AES-256, 10 for AES-128).
    #[cfg(target_arch = "x86_64")]
    macro_rules! x86_kernel {
        ($kernel:ty) => {{
            type K<const R: usize> = $kernel;
            // SAFETY: `check` proved every feature in `FEATURES`.
            unsafe {
                if aes256 {
                    Box::new(K::<14>::new(aes_key)) as Box<dyn Kernel>
                } else {
                    Box::new(K::<10>::new(aes_key))
                }
            }
        }};
    }
    Ok(match backend {
        #[cfg(target_arch = "x86_64")]
        Backend::VaesAvx512 => x86_kernel!(super::x86::vaes512::Vaes512Kernel<R>),
        #[cfg(target_arch = "x86_64")]
        Backend::VaesAvx2 => x86_kernel!(super::x86::vaes256::Vaes256Kernel<R>),
        #[cfg(target_arch = "x86_64")]
        Backend::AesNi => x86_kernel!(super::x86::aesni::AesNiKernel<R>),
        Backend::Portable => super::portable::new(aes_key),
        other => return Err(Error::NotACipherBackend { backend: other }),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn kernels() -> Vec<Box<dyn Kernel>> {
        let key = [0x5au8; 32];
        ORDER.iter().filter(|b| check(**b).is_ok()).map(|b| build(*b, AesKey::K256(&key)).unwrap()).collect()
    }

    #[test]
    fn length_block_is_bit_lengths_big_endian() {
        let b = lengths(3, 0x1234);
        assert_eq!(&b[..8], &24u64.to_be_bytes());
        assert_eq!(&b[8..], &(0x1234u64 * 8).to_be_bytes());
    }

    #[test]
    fn tag_comparison() {
        let a = [1u8; 16];
        let mut b = a;
        assert!(tags_equal(&a, &b));
        b[15] ^= 0x80;
        assert!(!tags_equal(&a, &b));
    }

    #[test]
    fn non_cipher_backends_are_refused() {
        assert!(matches!(check(Backend::Cuda), Err(Error::NotACipherBackend { .. })));
        assert!(check(Backend::Portable).is_ok());
        assert!(build(Backend::Sendfile, AesKey::K128(&[0; 16])).is_err());
    }

    #[test]
    fn mul_h_pow_equals_hashing_zero_blocks() {
        for k in kernels() {
            for m in [0u64, 1, 2, 7, 31, 32, 33, 100, 1000] {
                let mut a = [0x33u8; 16];
                let mut b = a;
                k.mul_h_pow(&mut a, m);
                k.ghash(&mut b, &vec![0u8; 16 * m as usize]);
                assert_eq!(a, b, "{} m={m}", k.backend());
            }
        }
    }

    #[test]
    fn segments_recombine_to_the_whole() {
        // The identity the parallel path rests on: crypt(whole) = combine(crypt(segments)).
        let nonce = [9u8; 12];
        let data: Vec<u8> = (0..5000u32).map(|i| (i * 7 + 3) as u8).collect();
        for k in kernels() {
            let mut whole = data.clone();
            let mut acc_whole = [0u8; 16];
            k.crypt(false, &nonce, 2, &mut acc_whole, &mut whole, None);
            for cut in [16usize, 512, 4096] {
                let mut parts = data.clone();
                let (a, b) = parts.split_at_mut(cut);
                let (mut pa, mut pb) = ([0u8; 16], [0u8; 16]);
                k.crypt(false, &nonce, 2, &mut pa, a, None);
                k.crypt(false, &nonce, 2 + (cut / 16) as u32, &mut pb, b, None);
                k.mul_h_pow(&mut pa, b.len().div_ceil(16) as u64);
                for (x, y) in pa.iter_mut().zip(pb) {
                    *x ^= y;
                }
                assert_eq!(parts, whole, "{} cut {cut}", k.backend());
                assert_eq!(pa, acc_whole, "{} cut {cut}", k.backend());
            }
        }
    }

    #[test]
    fn counter_wraps_as_inc32() {
        // Counter 0xffff_ffff is followed by 0, not by a carry into the nonce.
        let nonce = [1u8; 12];
        for k in kernels() {
            let mut buf = vec![0u8; 64];
            let mut acc = [0u8; 16];
            k.crypt(false, &nonce, u32::MAX, &mut acc, &mut buf, None);
            for (i, ctr) in [u32::MAX, 0, 1, 2].into_iter().enumerate() {
                let mut block = [0u8; 16];
                block[..12].copy_from_slice(&nonce);
                block[12..].copy_from_slice(&ctr.to_be_bytes());
                k.encrypt_block(&mut block);
                assert_eq!(&buf[16 * i..16 * i + 16], &block, "{} block {i}", k.backend());
            }
        }
    }
}
