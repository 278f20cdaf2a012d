//! Differential fuzzing of signature verification: for any input, parthenon's single and batch
//! verdicts equal the reference's (ed25519-zebra for Zip215, ed25519-dalek `verify_strict` for
//! Strict, libsecp256k1 for BIP-340).
//!
//! Input layout: `mode ‖ 32 bytes ‖ 64 bytes ‖ message`. `mode` bit 0 picks the scheme
//! (Ed25519 / BIP-340), bit 1 the Ed25519 rules (Zip215 / Strict). With bit 2 set, the 32 bytes
//! are a secret key that signs the message (so the fuzzer reaches valid signatures) and the 64
//! bytes are XORed into the signature and (first 32) the public key when bit 3 is set; otherwise
//! they are the public key and signature verbatim.
//!
//! Run: `cargo +nightly fuzz run verify_differential` from the crate root.
#![no_main]

use ed25519_dalek::Signer;
use libfuzzer_sys::fuzz_target;
use parthenon::sigverify::{cpu, Batch, Rules, Scheme};

fuzz_target!(|data: &[u8]| {
    if data.len() < 97 {
        return;
    }
    let mode = data[0];
    let a: [u8; 32] = data[1..33].try_into().unwrap();
    let b: [u8; 64] = data[33..97].try_into().unwrap();
    let msg = &data[97..];
    let scheme = if mode & 1 == 0 { Scheme::Ed25519 } else { Scheme::Bip340 };
    let rules = if mode & 2 == 0 { Rules::Zip215 } else { Rules::Strict };
    let (mut pk, mut sig) = (a, b);
    if mode & 4 != 0 {
        match scheme {
            Scheme::Ed25519 => {
                let sk = ed25519_dalek::SigningKey::from_bytes(&a);
                pk = sk.verifying_key().to_bytes();
                sig = sk.sign(msg).to_bytes();
            }
            Scheme::Bip340 => {
                let Ok(kp) = secp256k1::Keypair::from_secret_bytes(a) else { return };
                pk = kp.x_only_public_key().0.to_byte_array();
                sig = kp.sign_schnorr_no_aux_rand(msg).to_byte_array();
            }
        }
        if mode & 8 != 0 {
            for (s, x) in sig.iter_mut().zip(b) {
                *s ^= x;
            }
            for (p, x) in pk.iter_mut().zip(&b[..32]) {
                *p ^= x;
            }
        }
    }
    let want = match (scheme, rules) {
        (Scheme::Ed25519, Rules::Zip215) => ed25519_zebra::VerificationKey::try_from(pk)
            .is_ok_and(|vk| vk.verify(&ed25519_zebra::Signature::from_bytes(&sig), msg).is_ok()),
        (Scheme::Ed25519, Rules::Strict) => ed25519_dalek::VerifyingKey::from_bytes(&pk)
            .is_ok_and(|vk| vk.verify_strict(msg, &ed25519_dalek::Signature::from_bytes(&sig)).is_ok()),
        (Scheme::Bip340, _) => secp256k1::XOnlyPublicKey::from_byte_array(pk).is_ok_and(|pk| {
            secp256k1::schnorr::verify(&secp256k1::schnorr::Signature::from_byte_array(sig), msg, &pk).is_ok()
        }),
    };
    assert_eq!(cpu::verify_one(scheme, rules, &pk, msg, &sig), want, "single");
    // The item inside a batch, repeated so the batch equation (not only the leaf check) decides.
    let mut batch = Batch::new();
    for _ in 0..9 {
        batch.push(scheme, &pk, msg, &sig).unwrap();
    }
    let v = cpu::verify_batch(&batch, rules, 1);
    assert!(v.iter().all(|x| x == want), "batch");
});
