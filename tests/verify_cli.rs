//! End-to-end tests of `parthenon verify`: verdict lines in input order across chunk
//! boundaries, both Ed25519 rule sets, BIP-340, and exit code 2 naming the line of a malformed
//! input (with the verdicts of the lines before it printed and none for it).

mod common;

use common::TempDir;
use curve25519_dalek::constants::EIGHT_TORSION;
use curve25519_dalek::edwards::EdwardsPoint;
use curve25519_dalek::scalar::Scalar;
use ed25519_dalek::{Signer, SigningKey};
use sha2::{Digest, Sha512};
use std::path::PathBuf;
use std::process::{Command, Output};

/// A file holding `contents` in a fresh directory, removed with it when the returned `TempDir`
/// drops (a failing test too).
fn temp_file(name: &str, contents: &str) -> (TempDir, PathBuf) {
    let dir = TempDir::new("verify-cli");
    let path = dir.path().join(format!("{name}.jsonl"));
    std::fs::write(&path, contents).unwrap();
    (dir, path)
}

fn run(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_parthenon")).arg("verify").args(args).output().unwrap()
}

fn ed_line(seed: u8, msg: &[u8], corrupt: bool) -> String {
    let sk = SigningKey::from_bytes(&[seed; 32]);
    let mut sig = sk.sign(msg).to_bytes();
    if corrupt {
        sig[5] ^= 4;
    }
    format!(
        r#"{{"scheme":"ed25519","pubkey":"{}","msg":"{}","sig":"{}","note":"ignored"}}"#,
        hex::encode(sk.verifying_key().as_bytes()),
        hex::encode(msg),
        hex::encode(sig)
    )
}

fn schnorr_line(seed: u8, msg: &[u8], corrupt: bool) -> String {
    let mut sk = [0u8; 32];
    sk[0] = seed;
    sk[31] = 1;
    let kp = secp256k1::Keypair::from_secret_bytes(sk).unwrap();
    let mut sig = kp.sign_schnorr_no_aux_rand(msg).to_byte_array();
    if corrupt {
        sig[40] ^= 1;
    }
    format!(
        r#"{{"scheme":"schnorr","pubkey":"{}","msg":"{}","sig":"{}"}}"#,
        hex::encode(kp.x_only_public_key().0.to_byte_array()),
        hex::encode(msg),
        hex::encode(sig)
    )
}

/// A signature whose `R` is a small-order point and `s = k·a`: valid under ZIP-215 (the
/// cofactor kills `R`), invalid under Strict (small-order `R`).
fn zip215_only_line() -> String {
    let a = Scalar::from(12345u64);
    let pk = EdwardsPoint::mul_base(&a).compress().to_bytes();
    let r = EIGHT_TORSION[1].compress().to_bytes();
    let msg = b"zip215 only";
    let wide: [u8; 64] = Sha512::new().chain_update(r).chain_update(pk).chain_update(msg).finalize().into();
    let s = Scalar::from_bytes_mod_order_wide(&wide) * a;
    let mut sig = r.to_vec();
    sig.extend_from_slice(s.as_bytes());
    format!(
        r#"{{"scheme":"ed25519","pubkey":"{}","msg":"{}","sig":"{}"}}"#,
        hex::encode(pk),
        hex::encode(msg),
        hex::encode(sig)
    )
}

fn verdicts(out: &Output) -> Vec<(usize, bool)> {
    String::from_utf8(out.stdout.clone())
        .unwrap()
        .lines()
        .map(|l| {
            let v: serde_json::Value = serde_json::from_str(l).unwrap();
            assert_eq!(v.as_object().unwrap().len(), 2, "{l}");
            (v["index"].as_u64().unwrap() as usize, v["valid"].as_bool().unwrap())
        })
        .collect()
}

#[test]
fn verdicts_in_order_across_chunks_both_schemes() {
    // More than one 4096-line chunk, schemes interleaved, every 7th item corrupted.
    let n = 4096 + 1000;
    let mut lines = Vec::new();
    let mut want = Vec::new();
    for i in 0..n {
        let bad = i % 7 == 3;
        let msg = (i as u32).to_le_bytes();
        lines.push(if i % 2 == 0 { ed_line(i as u8, &msg, bad) } else { schnorr_line(i as u8, &msg[..i % 5], bad) });
        want.push((i, !bad));
    }
    let (_dir, path) = temp_file("order", &(lines.join("\n") + "\n"));
    let out = run(&["--input", path.to_str().unwrap(), "--backend", "cpu"]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    assert_eq!(verdicts(&out), want);
}

#[test]
fn rules_flag_selects_ed25519_rule_set() {
    let text = format!("{}\n{}\n", zip215_only_line(), ed_line(9, b"both", false));
    let (_dir, path) = temp_file("rules", &text);
    let p = path.to_str().unwrap();
    let zip = run(&["--input", p]);
    assert!(zip.status.success());
    assert_eq!(verdicts(&zip), vec![(0, true), (1, true)]);
    let strict = run(&["--input", p, "--rules", "strict"]);
    assert!(strict.status.success());
    assert_eq!(verdicts(&strict), vec![(0, false), (1, true)]);
    let bad = run(&["--input", p, "--rules", "lenient"]);
    assert_eq!(bad.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&bad.stderr).contains("unknown rules `lenient`"));
}

#[test]
fn malformed_line_stops_with_its_line_number() {
    let good = ed_line(1, b"ok", false);
    let cases = [
        ("json", "{not json".to_string(), "invalid JSON"),
        ("hex", r#"{"scheme":"ed25519","pubkey":"zz","msg":"","sig":"00"}"#.to_string(), "pubkey: invalid hex"),
        (
            "length",
            format!(r#"{{"scheme":"ed25519","pubkey":"{}","msg":"","sig":"{}"}}"#, "11".repeat(31), "22".repeat(64)),
            "pubkey is 31 bytes, ed25519 needs 32",
        ),
        (
            "scheme",
            format!(r#"{{"scheme":"rsa","pubkey":"{}","msg":"","sig":"{}"}}"#, "11".repeat(32), "22".repeat(64)),
            "unknown scheme `rsa`",
        ),
        ("field", r#"{"scheme":"ed25519","pubkey":"00"}"#.to_string(), "missing field"),
    ];
    for (name, bad, reason) in cases {
        let text = format!("{good}\n{good}\n{bad}\n{good}\n");
        let (_dir, path) = temp_file(name, &text);
        let out = run(&["--input", path.to_str().unwrap()]);
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{name}: {stderr}");
        assert!(stderr.contains("line 3:") && stderr.contains(reason), "{name}: {stderr}");
        assert_eq!(verdicts(&out), vec![(0, true), (1, true)], "{name}");
    }
}

#[test]
fn unusable_backend_is_an_input_error() {
    let (_dir, path) = temp_file("backend", &(ed_line(2, b"x", false) + "\n"));
    let p = path.to_str().unwrap();
    let out = run(&["--input", p, "--backend", "aes-ni"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("not verify"));
    let out = run(&["--input", p, "--backend", "warp"]);
    assert_eq!(out.status.code(), Some(2));
    let missing = run(&["--input", "/nonexistent/file.jsonl"]);
    assert_eq!(missing.status.code(), Some(2));
}

#[test]
fn a_line_that_is_not_utf8_is_malformed_input() {
    let good = ed_line(1, b"ok", false);
    let (_dir, path) = temp_file("utf8", "");
    let mut bytes = format!("{good}\n").into_bytes();
    bytes.extend_from_slice(b"{\"scheme\":\"ed25519\xff\"}\n");
    bytes.extend_from_slice(format!("{good}\n").as_bytes());
    std::fs::write(&path, bytes).unwrap();
    let out = run(&["--input", path.to_str().unwrap()]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    assert!(stderr.contains("line 2:") && stderr.contains("not UTF-8"), "{stderr}");
    assert_eq!(verdicts(&out), vec![(0, true)]);
}

/// A line carrying an 8 MiB message (16 MiB of hex plus key, signature and JSON) is read and
/// verified; a line longer than the limit stops the run with its line number, after the
/// verdicts of the lines before it.
#[test]
fn an_eight_mib_message_fits_a_line_and_a_longer_line_is_refused() {
    let big = vec![0x5au8; 8 << 20];
    let good = ed_line(3, b"ok", false);
    let (_dir, path) = temp_file("long-lines", "");
    let mut text = format!("{}\n{good}\n", ed_line(2, &big, false));
    // Valid JSON whose ignored field pushes it past 16 MiB + 4 KiB.
    text.push_str(&format!(r#"{{"scheme":"ed25519","pad":"{}"}}"#, "0".repeat((16 << 20) + 4096)));
    text.push_str(&format!("\n{good}\n"));
    std::fs::write(&path, text).unwrap();
    let out = run(&["--input", path.to_str().unwrap()]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    assert!(stderr.contains("line 3:") && stderr.contains("longer than"), "{stderr}");
    assert_eq!(verdicts(&out), vec![(0, true), (1, true)]);
}
