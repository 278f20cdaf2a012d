//! Differential fuzzing of AES-GCM seal/open: every parthenon backend present against ring.
//!
//! Input layout: byte 0 selects the key size (bit 0: AES-128/AES-256) and the AAD length (bits
//! 1..7: 0..=127 bytes, fewer if the input is shorter); the bytes after it are the key, nonce,
//! AAD and message. Inputs stay far below the 2 MiB at which a buffer is split across threads;
//! the parallel paths and `seal_many`/`open_many` are checked against ring by
//! `tests/cipher_agreement.rs`. For every backend:
//! the ciphertext and tag must equal ring's; ring must open ours; ours must open ring's; a
//! flipped bit in the tag, ciphertext, AAD or nonce must be rejected by both, leaving our buffer
//! holding the ciphertext.

#![no_main]

use libfuzzer_sys::fuzz_target;
use parthenon::cipher::{backends_present, Aes128Gcm, Aes256Gcm, Error};
use ring::aead::{Aad, LessSafeKey, Nonce, UnboundKey, AES_128_GCM, AES_256_GCM};

enum Ours {
    K128(Aes128Gcm),
    K256(Aes256Gcm),
}

impl Ours {
    fn seal(&self, n: &[u8; 12], aad: &[u8], buf: &mut [u8]) -> [u8; 16] {
        match self {
            Ours::K128(c) => c.seal_in_place_detached(n, aad, buf),
            Ours::K256(c) => c.seal_in_place_detached(n, aad, buf),
        }
        .expect("lengths are far below GCM's limits")
    }
    fn open(&self, n: &[u8; 12], aad: &[u8], buf: &mut [u8], tag: &[u8; 16]) -> Result<(), Error> {
        match self {
            Ours::K128(c) => c.open_in_place_detached(n, aad, buf, tag),
            Ours::K256(c) => c.open_in_place_detached(n, aad, buf, tag),
        }
    }
}

fn ring_open(key: &LessSafeKey, n: [u8; 12], aad: &[u8], ct: &[u8], tag: [u8; 16]) -> Option<Vec<u8>> {
    let mut buf = ct.to_vec();
    let t = ring::aead::Tag::from(tag);
    key.open_in_place_separate_tag(Nonce::assume_unique_for_key(n), Aad::from(aad), t, &mut buf, 0..).ok()?;
    Some(buf)
}

fuzz_target!(|data: &[u8]| {
    if data.len() < 1 + 32 + 12 {
        return;
    }
    let aes256 = data[0] & 1 == 1;
    let key_len = if aes256 { 32 } else { 16 };
    let key = &data[1..1 + key_len];
    let nonce: [u8; 12] = data[1 + key_len..13 + key_len].try_into().unwrap();
    let rest = &data[13 + key_len..];
    let aad_len = usize::from(data[0] >> 1).min(rest.len());
    let (aad, msg) = rest.split_at(aad_len);

    let alg = if aes256 { &AES_256_GCM } else { &AES_128_GCM };
    let ring_key = LessSafeKey::new(UnboundKey::new(alg, key).unwrap());
    let mut want = msg.to_vec();
    let want_tag: [u8; 16] = ring_key
        .seal_in_place_separate_tag(Nonce::assume_unique_for_key(nonce), Aad::from(aad), &mut want)
        .unwrap()
        .as_ref()
        .try_into()
        .unwrap();

    for backend in backends_present() {
        let ours = if aes256 {
            Ours::K256(Aes256Gcm::with_backend(&<[u8; 32]>::try_from(key).unwrap(), backend).unwrap())
        } else {
            Ours::K128(Aes128Gcm::with_backend(&<[u8; 16]>::try_from(key).unwrap(), backend).unwrap())
        };
        let mut ct = msg.to_vec();
        let tag = ours.seal(&nonce, aad, &mut ct);
        assert_eq!(ct, want, "{backend}: ciphertext differs from ring");
        assert_eq!(tag, want_tag, "{backend}: tag differs from ring");
        assert_eq!(ring_open(&ring_key, nonce, aad, &ct, tag).as_deref(), Some(msg), "{backend}: ring rejects ours");
        let mut buf = want.clone();
        ours.open(&nonce, aad, &mut buf, &want_tag).expect("ours rejects ring's");
        assert_eq!(buf, msg, "{backend}: open differs");

        // Tampering, at a position chosen by the input.
        let pos = usize::from(data[1]);
        let mut bad_tag = tag;
        bad_tag[pos % 16] ^= 1 << (data[2] % 8);
        let mut buf = ct.clone();
        assert_eq!(ours.open(&nonce, aad, &mut buf, &bad_tag), Err(Error::Authentication), "{backend}: tag");
        assert_eq!(buf, ct, "{backend}: buffer after failed open");
        assert!(ring_open(&ring_key, nonce, aad, &ct, bad_tag).is_none());
        if !ct.is_empty() {
            let mut bad = ct.clone();
            bad[pos % ct.len()] ^= 0x01;
            let copy = bad.clone();
            assert_eq!(ours.open(&nonce, aad, &mut bad, &tag), Err(Error::Authentication), "{backend}: ciphertext");
            assert_eq!(bad, copy, "{backend}: buffer after failed open");
        }
        if !aad.is_empty() {
            let mut a = aad.to_vec();
            a[pos % aad.len()] ^= 0x80;
            let mut buf = ct.clone();
            assert_eq!(ours.open(&nonce, &a, &mut buf, &tag), Err(Error::Authentication), "{backend}: aad");
        }
        let mut n = nonce;
        n[pos % 12] ^= 0x02;
        let mut buf = ct.clone();
        assert_eq!(ours.open(&n, aad, &mut buf, &tag), Err(Error::Authentication), "{backend}: nonce");
    }
});
