//! Conformance of signature verification against public vectors, with every verdict compared to
//! the rule's reference implementation: ed25519-zebra (Zip215), ed25519-dalek `verify_strict`
//! (Strict) and libsecp256k1 `schnorrsig_verify` (BIP-340). Each vector set is run through single
//! verification and the batch path with 1, 2 and 3 threads allowed; a set of at most 64 items
//! runs on one thread whatever is allowed (`cpu::threads_used`), so each set is also run
//! embedded among 256 valid signatures with 2 threads, which the batch then uses. Every batch
//! runs on both batch paths where the CPU has AVX-512 IFMA: `cpu::verify_batch` (IFMA) and
//! `cpu::verify_batch_portable` (dalek/k256, what CPUs without IFMA run); and
//! [`no_ifma_environment_forces_the_portable_path`] checks `PARTHENON_NO_IFMA=1` in a child
//! process.

use ed25519_dalek::Signer;
use parthenon::sigverify::{cpu, Batch, Rules, Scheme, Verdicts};

mod common;

use common::vectors::vectors_dir as vectors;

fn zebra(pk: &[u8], msg: &[u8], sig: &[u8]) -> bool {
    let Ok(vk) = ed25519_zebra::VerificationKey::try_from(pk) else { return false };
    let Ok(sig) = <[u8; 64]>::try_from(sig) else { return false };
    vk.verify(&ed25519_zebra::Signature::from_bytes(&sig), msg).is_ok()
}

fn dalek_strict(pk: &[u8], msg: &[u8], sig: &[u8]) -> bool {
    let Ok(pk) = <[u8; 32]>::try_from(pk) else { return false };
    let Ok(vk) = ed25519_dalek::VerifyingKey::from_bytes(&pk) else { return false };
    let Ok(sig) = ed25519_dalek::Signature::from_slice(sig) else { return false };
    vk.verify_strict(msg, &sig).is_ok()
}

fn libsecp(pk: &[u8], msg: &[u8], sig: &[u8]) -> bool {
    let Ok(pk) = <[u8; 32]>::try_from(pk) else { return false };
    let Ok(pk) = secp256k1::XOnlyPublicKey::from_byte_array(pk) else { return false };
    let Ok(sig) = <[u8; 64]>::try_from(sig) else { return false };
    let sig = secp256k1::schnorr::Signature::from_byte_array(sig);
    secp256k1::schnorr::verify(&sig, msg, &pk).is_ok()
}

/// One case: inputs and the reference verdict.
struct Case {
    name: String,
    pk: Vec<u8>,
    msg: Vec<u8>,
    sig: Vec<u8>,
}

/// A batch path: `cpu::verify_batch` or `cpu::verify_batch_portable`.
type Path = fn(&Batch, Rules, usize) -> Verdicts;

/// The batch paths: `cpu::verify_batch`, and where that uses IFMA also the portable one.
fn paths() -> Vec<(&'static str, Path)> {
    let mut out: Vec<(&'static str, Path)> =
        vec![(if cpu::uses_ifma() { "ifma" } else { "portable" }, cpu::verify_batch)];
    if cpu::uses_ifma() {
        out.push(("portable", cpu::verify_batch_portable));
    }
    out
}

/// `n` valid signatures of `scheme` (deterministic keys and messages): (pk, msg, sig).
fn valid_items(scheme: Scheme, n: usize) -> Vec<([u8; 32], Vec<u8>, [u8; 64])> {
    (0..n)
        .map(|i| {
            let mut secret = [0x42u8; 32];
            secret[..8].copy_from_slice(&(i as u64).to_le_bytes());
            let msg = format!("valid filler {i}").into_bytes();
            match scheme {
                Scheme::Ed25519 => {
                    let sk = ed25519_dalek::SigningKey::from_bytes(&secret);
                    (sk.verifying_key().to_bytes(), msg.clone(), sk.sign(&msg).to_bytes())
                }
                Scheme::Bip340 => {
                    let kp = secp256k1::Keypair::from_secret_bytes(secret).unwrap();
                    let sig = kp.sign_schnorr_no_aux_rand(&msg).to_byte_array();
                    (kp.x_only_public_key().0.to_byte_array(), msg, sig)
                }
            }
        })
        .collect()
}

/// Valid signatures each vector set is embedded among.
const FILLER: usize = 256;

/// Runs `cases` through every CPU path and checks each verdict equals `reference`'s. Returns the
/// verdicts. Items of the wrong length must be refused by `Batch::push` and rejected by the
/// reference.
fn check_all(scheme: Scheme, rules: Rules, cases: &[Case], reference: fn(&[u8], &[u8], &[u8]) -> bool) -> Vec<bool> {
    let mut batch = Batch::new();
    let mut positions = Vec::new();
    let mut verdicts = Vec::new();
    for c in cases {
        let want = reference(&c.pk, &c.msg, &c.sig);
        verdicts.push(want);
        match batch.push(scheme, &c.pk, &c.msg, &c.sig) {
            Ok(i) => {
                positions.push(Some(i));
                let single = cpu::verify_one(
                    scheme,
                    rules,
                    &c.pk.as_slice().try_into().unwrap(),
                    &c.msg,
                    &c.sig.as_slice().try_into().unwrap(),
                );
                assert_eq!(single, want, "{scheme} {rules} single: {}", c.name);
            }
            Err(e) => {
                assert!(!want, "{}: refused by push ({e}) but the reference accepts it", c.name);
                positions.push(None);
            }
        }
    }
    // The cases interleaved with valid signatures: FILLER + cases items, so 2 threads are used.
    let filler = valid_items(scheme, FILLER);
    let mut embedded = Batch::new();
    let mut embedded_want = Vec::new();
    let mut embedded_names = Vec::new();
    for j in 0..FILLER.max(cases.len()) {
        if let Some((pk, msg, sig)) = filler.get(j) {
            embedded.push(scheme, pk, msg, sig).unwrap();
            embedded_want.push(true);
            embedded_names.push(format!("valid filler {j}"));
        }
        if let (Some(c), Some(Some(_)), Some(want)) = (cases.get(j), positions.get(j), verdicts.get(j)) {
            embedded.push(scheme, &c.pk, &c.msg, &c.sig).unwrap();
            embedded_want.push(*want);
            embedded_names.push(c.name.clone());
        }
    }
    assert!(cpu::threads_used(embedded.len(), 2) == 2);
    for (path_name, path) in paths() {
        for threads in [1, 2, 3] {
            let v = path(&batch, rules, threads);
            assert_eq!(v.len(), batch.len());
            for (c, (pos, want)) in cases.iter().zip(positions.iter().zip(&verdicts)) {
                if let Some(i) = pos {
                    assert_eq!(
                        v.get(*i),
                        Some(*want),
                        "{scheme} {rules} {path_name} batch threads={threads}: {}",
                        c.name
                    );
                }
            }
        }
        let v = path(&embedded, rules, 2);
        for (i, (want, name)) in embedded_want.iter().zip(&embedded_names).enumerate() {
            assert_eq!(
                v.get(i),
                Some(*want),
                "{scheme} {rules} {path_name} embedded among valid items, 2 threads: {name}"
            );
        }
    }
    verdicts
}

fn unhex(s: &str) -> Vec<u8> {
    hex::decode(s).unwrap_or_else(|e| panic!("bad hex {s:?}: {e}"))
}

fn wycheproof_cases(dir: &std::path::Path) -> Vec<(Case, bool)> {
    let text = std::fs::read_to_string(dir.join("wycheproof/ed25519_test.json")).unwrap();
    let json: serde_json::Value = serde_json::from_str(&text).unwrap();
    let mut out = Vec::new();
    for g in json["testGroups"].as_array().unwrap() {
        let pk = unhex(g["publicKey"]["pk"].as_str().unwrap());
        for t in g["tests"].as_array().unwrap() {
            let case = Case {
                name: format!("wycheproof tcId {} ({})", t["tcId"], t["comment"].as_str().unwrap_or("")),
                pk: pk.clone(),
                msg: unhex(t["msg"].as_str().unwrap()),
                sig: unhex(t["sig"].as_str().unwrap()),
            };
            let valid = t["result"].as_str() == Some("valid");
            out.push((case, valid));
        }
    }
    out
}

#[test]
fn wycheproof_ed25519_both_rules() {
    let Some(dir) = vectors() else { return };
    let cases = wycheproof_cases(&dir);
    assert_eq!(cases.len(), 151);
    let (cases, expected): (Vec<Case>, Vec<bool>) = cases.into_iter().unzip();
    let zip = check_all(Scheme::Ed25519, Rules::Zip215, &cases, zebra);
    let strict = check_all(Scheme::Ed25519, Rules::Strict, &cases, dalek_strict);
    // Wycheproof's own labels: every "valid" vector is accepted under both rules, and Strict
    // rejects every "invalid" one. Zip215 may accept an "invalid" vector only by its documented
    // leniency (non-canonical R encodings): exactly tcId 151, as docs/rules.md says.
    let mut zip215_only = Vec::new();
    for (i, c) in cases.iter().enumerate() {
        if expected[i] {
            assert!(zip[i] && strict[i], "{} is valid but rejected", c.name);
        } else {
            assert!(!strict[i], "{} is invalid but Strict accepts it", c.name);
            if zip[i] {
                zip215_only.push(c.name.clone());
            }
        }
    }
    assert!(
        zip215_only.len() == 1 && zip215_only[0].starts_with("wycheproof tcId 151 "),
        "Wycheproof invalid vectors accepted by Zip215: {zip215_only:?}, docs/rules.md names tcId 151 only"
    );
}

/// The 12 cases of "Taming the many EdDSAs" (ed25519-speccheck), in file order.
fn speccheck_cases(dir: &std::path::Path) -> Vec<Case> {
    let text = std::fs::read_to_string(dir.join("ed25519-speccheck/cases.json")).unwrap();
    let json: serde_json::Value = serde_json::from_str(&text).unwrap();
    json.as_array()
        .unwrap()
        .iter()
        .enumerate()
        .map(|(i, c)| Case {
            name: format!("speccheck case {i}"),
            pk: unhex(c["pub_key"].as_str().unwrap()),
            msg: unhex(c["message"].as_str().unwrap()),
            sig: unhex(c["signature"].as_str().unwrap()),
        })
        .collect()
}

#[test]
fn speccheck_accept_sets_equal_references() {
    let Some(dir) = vectors() else { return };
    let cases = speccheck_cases(&dir);
    assert_eq!(cases.len(), 12);
    let accepted = |v: Vec<bool>| v.iter().enumerate().filter(|(_, ok)| **ok).map(|(i, _)| i).collect::<Vec<_>>();
    let zip = accepted(check_all(Scheme::Ed25519, Rules::Zip215, &cases, zebra));
    let strict = accepted(check_all(Scheme::Ed25519, Rules::Strict, &cases, dalek_strict));
    // Pinned here and in docs/rules.md, so a change in a reference shows up as a test failure.
    assert_eq!(zip, ZIP215_ACCEPTS, "Zip215 accept set");
    assert_eq!(strict, STRICT_ACCEPTS, "Strict accept set");
}

/// Speccheck cases ed25519-zebra 5 accepts.
const ZIP215_ACCEPTS: &[usize] = &[0, 1, 2, 3, 4, 5, 9, 10, 11];
/// Speccheck cases ed25519-dalek 3 `verify_strict` accepts.
const STRICT_ACCEPTS: &[usize] = &[3];

/// The BIP's test vectors with their labels (`TRUE`: valid).
fn bip340_cases(dir: &std::path::Path) -> (Vec<Case>, Vec<bool>) {
    let text = std::fs::read_to_string(dir.join("bip340/test-vectors.csv")).unwrap();
    let mut cases = Vec::new();
    let mut expected = Vec::new();
    for line in text.lines().skip(1) {
        let f: Vec<&str> = line.split(',').collect();
        cases.push(Case {
            name: format!("bip340 vector {}", f[0]),
            pk: unhex(f[2]),
            msg: unhex(f[4]),
            sig: unhex(f[5]),
        });
        expected.push(f[6] == "TRUE");
    }
    (cases, expected)
}

#[test]
fn bip340_vectors_0_to_18() {
    let Some(dir) = vectors() else { return };
    let (cases, expected) = bip340_cases(&dir);
    assert_eq!(cases.len(), 19);
    let got = check_all(Scheme::Bip340, Rules::Zip215, &cases, libsecp);
    assert_eq!(got, expected, "libsecp256k1 disagrees with the BIP's labels");
    // Rules are irrelevant to BIP-340.
    check_all(Scheme::Bip340, Rules::Strict, &cases, libsecp);
}

/// `PARTHENON_NO_IFMA=1` makes `cpu::verify_batch` take the portable path. The variable is read
/// once per process, so on a CPU with IFMA this test runs itself again in a child process with
/// the variable set, where it checks `cpu::uses_ifma()` is false and runs the BIP-340 and
/// Wycheproof vectors (through `check_all`, whose `verify_batch` is then the portable path).
#[test]
fn no_ifma_environment_forces_the_portable_path() {
    const MARKER: &str = "portable path forced by PARTHENON_NO_IFMA";
    if std::env::var_os(cpu::NO_IFMA_ENV).is_some_and(|v| v == "1") {
        assert!(!cpu::uses_ifma(), "{} is set but verify_batch still uses IFMA", cpu::NO_IFMA_ENV);
        if let Some(dir) = vectors() {
            let cases: Vec<Case> = wycheproof_cases(&dir).into_iter().map(|(c, _)| c).collect();
            check_all(Scheme::Ed25519, Rules::Zip215, &cases, zebra);
            check_all(Scheme::Ed25519, Rules::Strict, &cases, dalek_strict);
            let (cases, expected) = bip340_cases(&dir);
            assert_eq!(check_all(Scheme::Bip340, Rules::Zip215, &cases, libsecp), expected);
        }
        println!("{MARKER}");
        return;
    }
    if !cpu::uses_ifma() {
        println!("skip: this process already runs the portable path (no AVX-512 IFMA, or {} set)", cpu::NO_IFMA_ENV);
        return;
    }
    let out = std::process::Command::new(std::env::current_exe().unwrap())
        .args(["--exact", "no_ifma_environment_forces_the_portable_path", "--nocapture", "--test-threads=1"])
        .env(cpu::NO_IFMA_ENV, "1")
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "child failed: {stdout}\n{}", String::from_utf8_lossy(&out.stderr));
    assert!(stdout.contains(MARKER), "the child did not run the test: {stdout}");
}
