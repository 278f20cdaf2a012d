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

/// `Ok` when `backend` can run on this CPU, else why not.
pub(crate) fn check(backend: Backend) -> Result<(), Error> {
    let unavailable = |reason: String| Err(Error::BackendUnavailable { backend, reason });
    #[cfg(target_arch = "x86_64")]
    {
        use super::x86;
        let feats = match backend {
            Backend::VaesAvx512 => x86::vaes512::FEATURES,
            Backend::VaesAvx2 => x86::vaes256::FEATURES,
            Backend::AesNi => x86::aesni::FEATURES,
            Backend::Portable => return Ok(()),
            other => return Err(Error::NotACipherBackend { backend: other }),
        };
        let missing = x86::missing(feats);
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
    let key = aes_key.bytes();
    Ok(match backend {
        #[cfg(target_arch = "x86_64")]
        Backend::VaesAvx512 => {
            use super::x86::vaes512::Vaes512Kernel as K;
            // SAFETY: `check` proved every feature in `FEATURES`.
            unsafe {
                if aes256 {
                    Box::new(K::<14>::new(key))
                } else {
                    Box::new(K::<10>::new(key))
                }
            }
        }
        #[cfg(target_arch = "x86_64")]
        Backend::VaesAvx2 => {
            use super::x86::vaes256::Vaes256Kernel as K;
            // SAFETY: `check` proved every feature in `FEATURES`.
            unsafe {
                if aes256 {
                    Box::new(K::<14>::new(key))
                } else {
                    Box::new(K::<10>::new(key))
                }
            }
        }
        #[cfg(target_arch = "x86_64")]
        Backend::AesNi => {
            use super::x86::aesni::AesNiKernel as K;
            // SAFETY: `check` proved every feature in `FEATURES`.
            unsafe {
                if aes256 {
                    Box::new(K::<14>::new(key))
                } else {
                    Box::new(K::<10>::new(key))
                }
            }
        }
        Backend::Portable => super::portable::new(aes_key),
        other => return Err(Error::NotACipherBackend { backend: other }),
    })
}
