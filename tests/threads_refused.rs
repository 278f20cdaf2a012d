//! With no thread to be had (a process at its thread limit: `pthread_create` fails with
//! `EAGAIN`), the multi-threaded paths still give the right answer on the threads they have:
//! a large seal and open split across "four" threads, `seal_many`/`open_many`, a failed open
//! (which must leave the ciphertext), and a CPU verification batch asked to use four threads.
//! Nothing panics and nothing hangs.
//!
//! The parent test re-executes this binary to run only `child_threads_refused` with
//! `PARTHENON_THREADS_CHILD` set, in a fresh process whose kept helper threads were never
//! started; the child installs a seccomp filter that refuses new threads on the test's own
//! thread (the threads it would start inherit it) before any parthenon call.

mod common;

use common::seccomp;
use parthenon::cipher::{Aes256Gcm, Backend, Error, Message};
use parthenon::sigverify::{cpu, Batch, Rules, Scheme};
use ring::aead::{Aad, LessSafeKey, Nonce, UnboundKey, AES_256_GCM};
use std::process::Command;

const CHILD_ENV: &str = "PARTHENON_THREADS_CHILD";

#[test]
fn multi_threaded_paths_work_when_no_thread_can_be_started() {
    let exe = std::env::current_exe().unwrap();
    // Killed after `common::CHILD_LIMIT`: a path that waits for a thread it could not start
    // fails the test instead of hanging it.
    let out = common::output_within(
        Command::new(exe)
            .args(["child_threads_refused", "--exact", "--nocapture", "--test-threads=1"])
            .env(CHILD_ENV, "1"),
    )
    .unwrap();
    let text = format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    assert!(out.status.success(), "child failed:\n{text}");
    assert!(text.contains("CHILD-OK"), "child did not run its checks:\n{text}");
}

fn ring_seal(key: &[u8; 32], nonce: [u8; 12], aad: &[u8], buf: &mut [u8]) -> [u8; 16] {
    let k = LessSafeKey::new(UnboundKey::new(&AES_256_GCM, key).unwrap());
    let tag = k.seal_in_place_separate_tag(Nonce::assume_unique_for_key(nonce), Aad::from(aad), buf).unwrap();
    tag.as_ref().try_into().unwrap()
}

#[test]
fn child_threads_refused() {
    if std::env::var_os(CHILD_ENV).is_none() {
        return;
    }
    seccomp::deny_new_threads().expect("install the seccomp filter");
    assert!(std::thread::Builder::new().spawn(|| ()).is_err(), "the filter must refuse new threads");

    let key = [0x24u8; 32];
    let nonce = [9u8; 12];
    let aad = b"header";
    let plain: Vec<u8> = (0..(5 << 20) + 17).map(|i| (i * 7 + 3) as u8).collect();
    let mut want = plain.clone();
    let want_tag = ring_seal(&key, nonce, aad, &mut want);
    for backend in parthenon::cipher::backends_present() {
        let c = Aes256Gcm::with_backend(&key, backend).unwrap().with_threads(4);
        let mut buf = plain.clone();
        let tag = c.seal_in_place_detached(&nonce, aad, &mut buf).unwrap();
        assert!(buf == want && tag == want_tag, "{backend}: seal differs from ring");
        c.open_in_place_detached(&nonce, aad, &mut buf, &tag).unwrap();
        assert!(buf == plain, "{backend}: open did not restore the plaintext");

        // A failed open leaves the ciphertext, not unauthenticated plaintext.
        let mut buf = want.clone();
        let mut bad = want_tag;
        bad[0] ^= 1;
        assert!(matches!(c.open_in_place_detached(&nonce, aad, &mut buf, &bad), Err(Error::Authentication)));
        assert!(buf == want, "{backend}: a failed open changed the buffer");

        // Many messages across "four" threads.
        let mut bufs: Vec<Vec<u8>> = (0..9).map(|i| plain[..1000 * i + 5].to_vec()).collect();
        let mut batch: Vec<Message<'_>> = bufs
            .iter_mut()
            .enumerate()
            .map(|(i, b)| Message { nonce: [i as u8; 12], aad, buf: b, tag: [0; 16] })
            .collect();
        c.seal_many(&mut batch).unwrap();
        for (i, m) in batch.iter().enumerate() {
            let mut w = plain[..1000 * i + 5].to_vec();
            let t = ring_seal(&key, [i as u8; 12], aad, &mut w);
            assert!(m.buf[..] == w[..] && m.tag == t, "{backend}: seal_many message {i} differs from ring");
        }
        assert!(c.open_many(&mut batch).iter().all(Result::is_ok), "{backend}: open_many");
        println!("{backend}: seal, open, failed open, seal_many and open_many agree with ring");
    }
    assert!(parthenon::cipher::backends_present().contains(&Backend::Portable));

    // Verification asked to use four threads: one verdict per item, the same as on one thread.
    let mut batch = Batch::new();
    for i in 0..300u32 {
        let mut seed = [1u8; 32];
        seed[..4].copy_from_slice(&i.to_le_bytes());
        let sk = ed25519_dalek::SigningKey::from_bytes(&seed);
        let msg = i.to_le_bytes();
        let mut sig = ed25519_dalek::Signer::sign(&sk, &msg).to_bytes();
        if i % 7 == 0 {
            sig[3] ^= 1;
        }
        batch.push(Scheme::Ed25519, sk.verifying_key().as_bytes(), &msg, &sig).unwrap();
    }
    let four = cpu::verify_batch(&batch, Rules::Zip215, 4);
    let one = cpu::verify_batch(&batch, Rules::Zip215, 1);
    assert_eq!(four.as_bytes(), one.as_bytes());
    assert_eq!(four.iter().filter(|v| !v).count(), 300usize.div_ceil(7));
    println!("verification on four requested threads agrees with one thread");
    println!("CHILD-OK");
}
