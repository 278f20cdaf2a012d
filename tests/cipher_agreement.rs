//! Every cipher backend present against ring, byte for byte: every message length 0..=2048
//! (AES-256 and AES-128) with random AAD of random length, a sweep of long lengths through the
//! parallel path (including lengths around the 2 MiB threshold and segment boundaries), and
//! tampering of tag, ciphertext, AAD and nonce.
//!
//! `PARTHENON_CIPHER_MAX_LEN` (default 2048) raises the exhaustive length bound.

use parthenon::cipher::{backends_present, Aes128Gcm, Aes256Gcm, Backend, Error, Message, PARALLEL_MIN};
use ring::aead::{Aad, LessSafeKey, Nonce, UnboundKey, AES_128_GCM, AES_256_GCM};

/// SplitMix64: deterministic test data without a dependency.
struct Rng(u64);
impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }
    fn fill(&mut self, b: &mut [u8]) {
        for c in b.chunks_mut(8) {
            let v = self.next().to_le_bytes();
            c.copy_from_slice(&v[..c.len()]);
        }
    }
    fn bytes(&mut self, n: usize) -> Vec<u8> {
        let mut v = vec![0; n];
        self.fill(&mut v);
        v
    }
}

fn ring_seal(alg: &'static ring::aead::Algorithm, key: &[u8], nonce: [u8; 12], aad: &[u8], buf: &mut [u8]) -> [u8; 16] {
    let k = LessSafeKey::new(UnboundKey::new(alg, key).unwrap());
    let tag = k.seal_in_place_separate_tag(Nonce::assume_unique_for_key(nonce), Aad::from(aad), buf).unwrap();
    tag.as_ref().try_into().unwrap()
}

fn max_len() -> usize {
    std::env::var("PARTHENON_CIPHER_MAX_LEN").ok().and_then(|v| v.parse().ok()).unwrap_or(2048)
}

#[test]
fn every_length_matches_ring_aes256() {
    let mut rng = Rng(1);
    for backend in backends_present() {
        let key: [u8; 32] = rng.bytes(32).try_into().unwrap();
        let c = Aes256Gcm::with_backend(&key, backend).unwrap();
        assert_eq!(c.backend(), backend);
        for len in 0..=max_len() {
            let nonce: [u8; 12] = rng.bytes(12).try_into().unwrap();
            let aad_len = (rng.next() % 80) as usize;
            let aad = rng.bytes(aad_len);
            let msg = rng.bytes(len);
            let mut want = msg.clone();
            let want_tag = ring_seal(&AES_256_GCM, &key, nonce, &aad, &mut want);
            let mut got = msg.clone();
            let tag = c.seal_in_place_detached(&nonce, &aad, &mut got).unwrap();
            assert_eq!(got, want, "{backend} len {len} aad {aad_len}: ciphertext");
            assert_eq!(tag, want_tag, "{backend} len {len} aad {aad_len}: tag");
            c.open_in_place_detached(&nonce, &aad, &mut got, &tag).unwrap();
            assert_eq!(got, msg, "{backend} len {len}: round trip");
        }
    }
}

#[test]
fn every_length_matches_ring_aes128() {
    let mut rng = Rng(2);
    for backend in backends_present() {
        let key: [u8; 16] = rng.bytes(16).try_into().unwrap();
        let c = Aes128Gcm::with_backend(&key, backend).unwrap();
        for len in 0..=max_len() {
            let nonce: [u8; 12] = rng.bytes(12).try_into().unwrap();
            let aad_len = (rng.next() % 300) as usize;
            let aad = rng.bytes(aad_len);
            let msg = rng.bytes(len);
            let mut want = msg.clone();
            let want_tag = ring_seal(&AES_128_GCM, &key, nonce, &aad, &mut want);
            let mut got = msg.clone();
            let tag = c.seal_in_place_detached(&nonce, &aad, &mut got).unwrap();
            assert_eq!((got, tag), (want, want_tag), "{backend} len {len}");
        }
    }
}

#[test]
fn long_aad_matches_ring() {
    let mut rng = Rng(3);
    for backend in backends_present() {
        let key: [u8; 32] = rng.bytes(32).try_into().unwrap();
        let c = Aes256Gcm::with_backend(&key, backend).unwrap();
        for aad_len in [255, 256, 257, 511, 512, 1000, 4096, 4097] {
            let nonce = [7u8; 12];
            let aad = rng.bytes(aad_len);
            let msg = rng.bytes(333);
            let mut want = msg.clone();
            let want_tag = ring_seal(&AES_256_GCM, &key, nonce, &aad, &mut want);
            let mut got = msg.clone();
            let tag = c.seal_in_place_detached(&nonce, &aad, &mut got).unwrap();
            assert_eq!((got, tag), (want, want_tag), "{backend} aad {aad_len}");
        }
    }
}

#[test]
fn parallel_large_buffers_match_ring() {
    let mut rng = Rng(4);
    let lens = [
        PARALLEL_MIN - 1,
        PARALLEL_MIN,
        PARALLEL_MIN + 1,
        PARALLEL_MIN + 4095,
        3 * PARALLEL_MIN + 17,
        (5 << 20) + 4096,
    ];
    for backend in backends_present() {
        if backend == Backend::Portable {
            continue; // covered below at one length: slow in debug builds
        }
        let key: [u8; 32] = rng.bytes(32).try_into().unwrap();
        for threads in [2, 3, 4] {
            let c = Aes256Gcm::with_backend(&key, backend).unwrap().with_threads(threads);
            for len in lens {
                let nonce: [u8; 12] = rng.bytes(12).try_into().unwrap();
                let aad = rng.bytes(37);
                let msg = rng.bytes(len);
                let mut want = msg.clone();
                let want_tag = ring_seal(&AES_256_GCM, &key, nonce, &aad, &mut want);
                let mut got = msg.clone();
                let tag = c.seal_in_place_detached(&nonce, &aad, &mut got).unwrap();
                assert!(got == want, "{backend} x{threads} len {len}: ciphertext differs");
                assert_eq!(tag, want_tag, "{backend} x{threads} len {len}: tag");
                c.open_in_place_detached(&nonce, &aad, &mut got, &tag).unwrap();
                assert!(got == msg, "{backend} x{threads} len {len}: round trip");
                // A tampered large buffer is restored to the ciphertext.
                let mut bad = want.clone();
                bad[len / 2] ^= 1;
                let copy = bad.clone();
                assert_eq!(c.open_in_place_detached(&nonce, &aad, &mut bad, &tag), Err(Error::Authentication));
                assert!(bad == copy, "{backend} x{threads} len {len}: not restored");
            }
        }
    }
    // The portable backend's parallel path, at one length (slow in debug builds).
    let key = [9u8; 32];
    let c = Aes256Gcm::with_backend(&key, Backend::Portable).unwrap().with_threads(2);
    assert_eq!(parthenon::cipher::threads_for(PARALLEL_MIN + 100, 2), 2, "the length below is split");
    let msg = rng.bytes(PARALLEL_MIN + 100);
    let mut want = msg.clone();
    let want_tag = ring_seal(&AES_256_GCM, &key, [1; 12], b"ad", &mut want);
    let mut got = msg;
    let tag = c.seal_in_place_detached(&[1; 12], b"ad", &mut got).unwrap();
    assert!(got == want && tag == want_tag, "portable parallel");
    // AES-128's parallel path, on every backend, at the split threshold and past it.
    for backend in backends_present() {
        let key: [u8; 16] = rng.bytes(16).try_into().unwrap();
        let c = Aes128Gcm::with_backend(&key, backend).unwrap().with_threads(2);
        for len in [PARALLEL_MIN, PARALLEL_MIN + 17] {
            let msg = rng.bytes(len);
            let mut want = msg.clone();
            let want_tag = ring_seal(&AES_128_GCM, &key, [2; 12], b"ad", &mut want);
            let mut got = msg.clone();
            let tag = c.seal_in_place_detached(&[2; 12], b"ad", &mut got).unwrap();
            assert!(got == want && tag == want_tag, "{backend} AES-128 x2 len {len}");
            c.open_in_place_detached(&[2; 12], b"ad", &mut got, &tag).unwrap();
            assert!(got == msg, "{backend} AES-128 x2 len {len}: round trip");
        }
    }
}

#[test]
fn the_split_starts_at_parallel_min() {
    use parthenon::cipher::threads_for;
    assert_eq!(threads_for(PARALLEL_MIN - 1, 8), 1);
    assert_eq!(threads_for(PARALLEL_MIN, 8), 2);
    assert_eq!(threads_for(PARALLEL_MIN, 1), 1);
    assert_eq!(threads_for(64 << 20, 8), 8);
    assert_eq!(threads_for(5 << 20, 8), 5);
}

#[test]
fn parallel_concurrent_callers_match_ring() {
    // Several callers at once: one uses the kept helper threads, the others fall back to threads
    // started for the call; every result must still be ring's.
    let backend = backends_present()[0];
    let key = [3u8; 32];
    let c = Aes256Gcm::with_backend(&key, backend).unwrap().with_threads(2);
    std::thread::scope(|s| {
        for t in 0..3u8 {
            let c = &c;
            s.spawn(move || {
                let mut rng = Rng(40 + t as u64);
                for round in 0..3 {
                    let len = 2 * PARALLEL_MIN + 4096 * round + t as usize;
                    let nonce = [t; 12];
                    let msg = rng.bytes(len);
                    let mut want = msg.clone();
                    let want_tag = ring_seal(&AES_256_GCM, &key, nonce, b"aad", &mut want);
                    let mut got = msg;
                    let tag = c.seal_in_place_detached(&nonce, b"aad", &mut got).unwrap();
                    assert!(got == want && tag == want_tag, "{backend} caller {t} len {len}");
                }
            });
        }
    });
}

#[test]
fn tampering_is_rejected_and_buffer_holds_ciphertext() {
    let mut rng = Rng(5);
    for backend in backends_present() {
        let key: [u8; 32] = rng.bytes(32).try_into().unwrap();
        let c = Aes256Gcm::with_backend(&key, backend).unwrap();
        for len in [0usize, 1, 15, 16, 17, 64, 255, 256, 257, 1420, 4096] {
            let nonce: [u8; 12] = rng.bytes(12).try_into().unwrap();
            let aad = rng.bytes(20);
            let msg = rng.bytes(len);
            let mut ct = msg.clone();
            let tag = c.seal_in_place_detached(&nonce, &aad, &mut ct).unwrap();
            let check = |n: &[u8; 12], a: &[u8], b: &[u8], t: &[u8; 16], what: &str| {
                let mut buf = b.to_vec();
                assert_eq!(
                    c.open_in_place_detached(n, a, &mut buf, t),
                    Err(Error::Authentication),
                    "{backend} {len}: {what}"
                );
                assert_eq!(buf, b, "{backend} {len}: {what}: buffer must hold the ciphertext");
            };
            for bit in [0, 7, 64, 127] {
                let mut t = tag;
                t[bit / 8] ^= 1 << (bit % 8);
                check(&nonce, &aad, &ct, &t, "tag");
            }
            if len > 0 {
                for pos in [0, len / 2, len - 1] {
                    let mut b = ct.clone();
                    b[pos] ^= 0x80;
                    check(&nonce, &aad, &b, &tag, "ciphertext");
                }
                check(&nonce, &aad, &ct[..len - 1], &tag, "truncated ciphertext");
            }
            let mut a = aad.clone();
            a[3] ^= 4;
            check(&nonce, &a, &ct, &tag, "aad");
            check(&nonce, &aad[..19], &ct, &tag, "short aad");
            let mut n = nonce;
            n[11] ^= 1;
            check(&n, &aad, &ct, &tag, "nonce");
        }
    }
}

#[test]
fn many_messages_match_single_calls() {
    let mut rng = Rng(6);
    for backend in backends_present() {
        let key: [u8; 32] = rng.bytes(32).try_into().unwrap();
        let c = Aes256Gcm::with_backend(&key, backend).unwrap().with_threads(3);
        let msgs: Vec<Vec<u8>> = (0..37).map(|i| rng.bytes(i * 53 % 3000)).collect();
        let aads: Vec<Vec<u8>> = (0..37).map(|i| rng.bytes(i % 13)).collect();
        let mut bufs = msgs.clone();
        let mut batch: Vec<Message<'_>> = bufs
            .iter_mut()
            .zip(&aads)
            .enumerate()
            .map(|(i, (b, a))| Message { nonce: [i as u8; 12], aad: a, buf: b, tag: [0; 16] })
            .collect();
        c.seal_many(&mut batch).unwrap();
        let tags: Vec<[u8; 16]> = batch.iter().map(|m| m.tag).collect();
        drop(batch);
        for (i, (m, a)) in msgs.iter().zip(&aads).enumerate() {
            let mut want = m.clone();
            let t = ring_seal(&AES_256_GCM, &key, [i as u8; 12], a, &mut want);
            assert_eq!((&bufs[i], tags[i]), (&want, t), "{backend} message {i}");
        }
        let mut wrong_tags = tags.clone();
        wrong_tags[5][0] ^= 1;
        let mut batch: Vec<Message<'_>> = bufs
            .iter_mut()
            .zip(&aads)
            .enumerate()
            .map(|(i, (b, a))| Message { nonce: [i as u8; 12], aad: a, buf: b, tag: wrong_tags[i] })
            .collect();
        let verdicts = c.open_many(&mut batch);
        drop(batch);
        for (i, v) in verdicts.iter().enumerate() {
            if i == 5 {
                assert_eq!(v, &Err(Error::Authentication));
                // The message that failed still holds its ciphertext, not plaintext.
                let mut ciphertext = msgs[5].clone();
                ring_seal(&AES_256_GCM, &key, [5; 12], &aads[5], &mut ciphertext);
                assert_eq!(bufs[5], ciphertext, "{backend}: failed message not restored");
            } else {
                assert_eq!(v, &Ok(()), "{backend} message {i}");
                assert_eq!(bufs[i], msgs[i]);
            }
        }
    }
}

#[test]
fn aead_traits_interoperate_with_aes_gcm() {
    use aead::{Aead, AeadInOut, KeyInit};
    let mut rng = Rng(7);
    let key_bytes = rng.bytes(32);
    let theirs = aes_gcm::Aes256Gcm::new_from_slice(&key_bytes).unwrap();
    let ours = <parthenon::cipher::Aes256Gcm as KeyInit>::new_from_slice(&key_bytes).unwrap();
    let nonce = aead::Nonce::<aes_gcm::Aes256Gcm>::from([3u8; 12]);
    let msg = rng.bytes(1000);
    let a = theirs.encrypt(&nonce, msg.as_slice()).unwrap();
    let b = ours.encrypt(&nonce, msg.as_slice()).unwrap();
    assert_eq!(a, b);
    assert_eq!(ours.decrypt(&nonce, a.as_slice()).unwrap(), msg);
    let mut buf = msg.clone();
    let tag = ours.encrypt_inout_detached(&nonce, b"x", buf.as_mut_slice().into()).unwrap();
    let mut buf2 = msg.clone();
    let tag2 = theirs.encrypt_inout_detached(&nonce, b"x", buf2.as_mut_slice().into()).unwrap();
    assert_eq!((buf, tag.as_slice()), (buf2, tag2.as_slice()));
    let mut bad = a.clone();
    bad[0] ^= 1;
    assert!(ours.decrypt(&nonce, bad.as_slice()).is_err());
}

#[test]
fn absent_or_wrong_backends_are_errors() {
    let key = [0u8; 32];
    let err = Aes256Gcm::with_backend(&key, Backend::Cuda).unwrap_err();
    assert!(matches!(err, Error::NotACipherBackend { backend: Backend::Cuda }), "{err}");
    for b in [Backend::VaesAvx512, Backend::VaesAvx2, Backend::AesNi] {
        match Aes256Gcm::with_backend(&key, b) {
            Ok(c) => assert_eq!(c.backend(), b),
            Err(Error::BackendUnavailable { reason, .. }) => assert!(reason.contains("CPU lacks"), "{reason}"),
            Err(e) => panic!("{e}"),
        }
    }
    assert_eq!(Aes256Gcm::new(&key).backend(), backends_present()[0]);
}

#[test]
fn engine_cipher_follows_the_route() {
    use parthenon::{Engine, Job};
    let engine = Engine::builder().forbid(Backend::VaesAvx512).build().unwrap();
    let c = engine.cipher(&[3u8; 32]).unwrap();
    assert_eq!(c.backend(), engine.backend(Job::Cipher));
    assert_ne!(c.backend(), Backend::VaesAvx512);
    let engine = Engine::builder().force(Backend::Portable).build().unwrap();
    let c = engine.cipher(&[3u8; 32]).unwrap();
    assert_eq!(c.backend(), Backend::Portable);
    assert_eq!(c.threads(), engine.capabilities().cpu.cores_usable);
    let mut buf = vec![5u8; 100];
    let tag = c.seal_in_place_detached(&[0; 12], b"", &mut buf).unwrap();
    let mut want = vec![5u8; 100];
    assert_eq!(ring_seal(&AES_256_GCM, &[3u8; 32], [0; 12], b"", &mut want), tag);
    assert_eq!(buf, want);
}

/// A message one byte longer than GCM allows under one nonce (2^36 - 32 bytes: the 32-bit block
/// counter would wrap into the tag's counter block) is refused before any byte changes, sealing
/// and opening, on every backend. The buffer is a 64 GiB anonymous mapping reserved without
/// backing memory: only the page touched below is ever allocated.
#[test]
fn a_message_past_the_gcm_limit_is_refused_untouched() {
    let len = parthenon::cipher::MAX_MESSAGE_BYTES as usize + 1;
    // SAFETY: a fresh private anonymous mapping; no existing memory is affected.
    let p = unsafe {
        libc::mmap(
            std::ptr::null_mut(),
            len,
            libc::PROT_READ | libc::PROT_WRITE,
            libc::MAP_PRIVATE | libc::MAP_ANONYMOUS | libc::MAP_NORESERVE,
            -1,
            0,
        )
    };
    if p == libc::MAP_FAILED {
        eprintln!("skip: cannot reserve {len} bytes of address space: {}", std::io::Error::last_os_error());
        return;
    }
    // SAFETY: `p` maps `len` readable and writable bytes, unmapped only below, after the last use.
    let buf = unsafe { std::slice::from_raw_parts_mut(p.cast::<u8>(), len) };
    buf[len - 1] = 0x5a;
    let key = [7u8; 32];
    for backend in backends_present() {
        let c = Aes256Gcm::with_backend(&key, backend).unwrap();
        let e = c.seal_in_place_detached(&[1; 12], b"", buf).unwrap_err();
        assert!(matches!(e, Error::MessageTooLong { len: l, .. } if l == len as u64), "{backend}: {e}");
        let e = c.open_in_place_detached(&[1; 12], b"", buf, &[0; 16]).unwrap_err();
        assert!(matches!(e, Error::MessageTooLong { .. }), "{backend}: {e}");
        assert_eq!((buf[0], buf[len - 1]), (0, 0x5a), "{backend}: the buffer changed");
    }
    // SAFETY: `p`/`len` are the mapping made above; `buf` is not used after this.
    unsafe { libc::munmap(p, len) };
}
