//! The portable backend: RustCrypto `aes` (block cipher) and `ghash` (universal hash), for CPUs
//! without AES-NI. Both crates are constant-time in their software paths (bitsliced AES,
//! multiplication without secret-dependent branches or table lookups); where the CPU has AES-NI
//! or CLMUL they use them, so on such a CPU this backend exercises their accelerated paths.
//!
//! The whole-message path streams one [`GHash`]. The primitives used by the parallel path
//! continue an accumulator by `acc · H^m ⊕ GHASH(data)`, with multiplication done by a one-block
//! GHASH keyed with the multiplier.

use super::kernel::{finish, lengths, AesKey, Block, Kernel};
use crate::engine::Backend;
use aes::cipher::consts::U16;
use aes::cipher::{Array, BlockCipherEncrypt, BlockSizeUser, KeyInit};
use ghash::universal_hash::UniversalHash;
use ghash::GHash;

/// Keystream blocks computed per call into the block cipher (lets `aes` pipeline).
const BATCH: usize = 8;

/// A portable kernel for `key` (16 or 32 bytes).
pub(crate) fn new(key: AesKey<'_>) -> Box<dyn Kernel> {
    match key {
        AesKey::K256(k) => Box::new(Portable::from_cipher(aes::Aes256::new(&Array::from(*k)))),
        AesKey::K128(k) => Box::new(Portable::from_cipher(aes::Aes128::new(&Array::from(*k)))),
    }
}

struct Portable<A> {
    aes: A,
    h: Block,
}

impl<A: BlockCipherEncrypt + BlockSizeUser<BlockSize = U16>> Portable<A> {
    fn from_cipher(aes: A) -> Self {
        let mut h = Array::default();
        aes.encrypt_block(&mut h);
        Portable { aes, h: h.into() }
    }

    fn fresh_ghash(&self) -> GHash {
        GHash::new(&Array::from(self.h))
    }

    fn ctr(&self, nonce: &[u8; 12], ctr: u32, buf: &mut [u8], mut absorb: impl FnMut(&[u8], bool)) {
        let mut blocks = [Array::<u8, U16>::default(); BATCH];
        let mut c = ctr;
        for chunk in buf.chunks_mut(16 * BATCH) {
            for b in blocks.iter_mut() {
                b[..12].copy_from_slice(nonce);
                b[12..].copy_from_slice(&c.to_be_bytes());
                c = c.wrapping_add(1);
            }
            let n = chunk.len().div_ceil(16);
            c = c.wrapping_sub((BATCH - n) as u32);
            self.aes.encrypt_blocks(&mut blocks[..n]);
            absorb(chunk, true);
            for (x, k) in chunk.iter_mut().zip(blocks.iter().flat_map(|b| b.iter())) {
                *x ^= k;
            }
            absorb(chunk, false);
        }
    }
}

fn mul(a: &Block, b: &Block) -> Block {
    let mut g = GHash::new(&Array::from(*b));
    g.update_padded(a);
    g.finalize().into()
}

fn xor(a: &mut Block, b: &Block) {
    for (x, y) in a.iter_mut().zip(b) {
        *x ^= y;
    }
}

impl<A: BlockCipherEncrypt + BlockSizeUser<BlockSize = U16> + Send + Sync> Kernel for Portable<A> {
    fn backend(&self) -> Backend {
        Backend::Portable
    }

    fn encrypt_block(&self, block: &mut Block) {
        let mut b = Array::from(*block);
        self.aes.encrypt_block(&mut b);
        *block = b.into();
    }

    fn ghash(&self, acc: &mut Block, data: &[u8]) {
        self.mul_h_pow(acc, data.len().div_ceil(16) as u64);
        let mut g = self.fresh_ghash();
        g.update_padded(data);
        xor(acc, &g.finalize().into());
    }

    fn crypt(&self, open: bool, nonce: &[u8; 12], ctr: u32, acc: &mut Block, buf: &mut [u8], lens: Option<&Block>) {
        let blocks = buf.len().div_ceil(16) as u64 + u64::from(lens.is_some());
        self.mul_h_pow(acc, blocks);
        let mut g = self.fresh_ghash();
        // Absorb whole blocks as they pass; a partial block only ends the message.
        self.ctr(nonce, ctr, buf, |chunk, before_xor| {
            if before_xor == open {
                g.update_padded(chunk);
            }
        });
        if let Some(l) = lens {
            g.update_padded(l);
        }
        xor(acc, &g.finalize().into());
    }

    fn mul_h_pow(&self, acc: &mut Block, mut m: u64) {
        let mut base = self.h;
        while m > 0 {
            if m & 1 == 1 {
                *acc = mul(acc, &base);
            }
            m >>= 1;
            if m > 0 {
                base = mul(&base, &base);
            }
        }
    }

    fn seal_message(&self, nonce: &[u8; 12], aad: &[u8], buf: &mut [u8]) -> Block {
        let mut g = self.fresh_ghash();
        g.update_padded(aad);
        self.ctr(nonce, 2, buf, |chunk, before| {
            if !before {
                g.update_padded(chunk);
            }
        });
        g.update_padded(&lengths(aad.len(), buf.len()));
        finish(self, nonce, g.finalize().into())
    }

    fn open_message(&self, nonce: &[u8; 12], aad: &[u8], buf: &mut [u8]) -> Block {
        let mut g = self.fresh_ghash();
        g.update_padded(aad);
        self.ctr(nonce, 2, buf, |chunk, before| {
            if before {
                g.update_padded(chunk);
            }
        });
        g.update_padded(&lengths(aad.len(), buf.len()));
        finish(self, nonce, g.finalize().into())
    }
}
