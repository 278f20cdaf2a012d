//! Wycheproof `aes_gcm_test.json` against every cipher backend present, AES-128 and AES-256.
//!
//! Groups with 96-bit nonces are run (the API takes 12-byte nonces, as ring and `aes-gcm`'s
//! default types do); groups with other nonce sizes and AES-192 are counted as not applicable.
//! Valid cases must seal to the expected ciphertext and tag and open back; invalid cases must
//! fail to open and leave the ciphertext in the buffer.

use parthenon::cipher::{backends_present, Aes128Gcm, Aes256Gcm, Backend, Error};

mod common;

use common::vectors::vectors_dir;

fn hex(s: &str) -> Vec<u8> {
    (0..s.len()).step_by(2).map(|i| u8::from_str_radix(&s[i..i + 2], 16).unwrap()).collect()
}

enum Cipher {
    K128(Aes128Gcm),
    K256(Aes256Gcm),
}

impl Cipher {
    fn seal(&self, n: &[u8; 12], aad: &[u8], buf: &mut [u8]) -> Result<[u8; 16], Error> {
        match self {
            Cipher::K128(c) => c.seal_in_place_detached(n, aad, buf),
            Cipher::K256(c) => c.seal_in_place_detached(n, aad, buf),
        }
    }
    fn open(&self, n: &[u8; 12], aad: &[u8], buf: &mut [u8], tag: &[u8; 16]) -> Result<(), Error> {
        match self {
            Cipher::K128(c) => c.open_in_place_detached(n, aad, buf, tag),
            Cipher::K256(c) => c.open_in_place_detached(n, aad, buf, tag),
        }
    }
}

fn run_backend(doc: &serde_json::Value, backend: Backend) -> (usize, usize) {
    let (mut run, mut skipped) = (0, 0);
    for group in doc["testGroups"].as_array().unwrap() {
        let key_size = group["keySize"].as_u64().unwrap();
        let iv_size = group["ivSize"].as_u64().unwrap();
        let tests = group["tests"].as_array().unwrap();
        if iv_size != 96 || !(key_size == 128 || key_size == 256) || group["tagSize"].as_u64() != Some(128) {
            skipped += tests.len();
            continue;
        }
        for t in tests {
            let id = t["tcId"].as_u64().unwrap();
            let key = hex(t["key"].as_str().unwrap());
            let nonce: [u8; 12] = hex(t["iv"].as_str().unwrap()).try_into().unwrap();
            let aad = hex(t["aad"].as_str().unwrap());
            let msg = hex(t["msg"].as_str().unwrap());
            let ct = hex(t["ct"].as_str().unwrap());
            let tag_bytes = hex(t["tag"].as_str().unwrap());
            let result = t["result"].as_str().unwrap();
            let cipher = if key_size == 256 {
                Cipher::K256(Aes256Gcm::with_backend(&<[u8; 32]>::try_from(&key[..]).unwrap(), backend).unwrap())
            } else {
                Cipher::K128(Aes128Gcm::with_backend(&<[u8; 16]>::try_from(&key[..]).unwrap(), backend).unwrap())
            };
            let tag: [u8; 16] = tag_bytes.as_slice().try_into().unwrap();
            match result {
                "valid" => {
                    let mut buf = msg.clone();
                    let got = cipher.seal(&nonce, &aad, &mut buf).unwrap();
                    assert_eq!(buf, ct, "{backend} tc {id}: ciphertext");
                    assert_eq!(got, tag, "{backend} tc {id}: tag");
                    cipher.open(&nonce, &aad, &mut buf, &tag).unwrap_or_else(|e| panic!("{backend} tc {id}: {e}"));
                    assert_eq!(buf, msg, "{backend} tc {id}: plaintext");
                }
                "invalid" => {
                    let mut buf = ct.clone();
                    let r = cipher.open(&nonce, &aad, &mut buf, &tag);
                    assert_eq!(r, Err(Error::Authentication), "{backend} tc {id} must be rejected");
                    assert_eq!(buf, ct, "{backend} tc {id}: buffer must hold the ciphertext after a failed open");
                }
                other => panic!("tc {id}: unexpected result {other}"),
            }
            run += 1;
        }
    }
    (run, skipped)
}

#[test]
fn wycheproof_aes_gcm_every_backend() {
    let Some(dir) = vectors_dir() else { return };
    let text = std::fs::read_to_string(dir.join("wycheproof/aes_gcm_test.json")).unwrap();
    let doc: serde_json::Value = serde_json::from_str(&text).unwrap();
    let present = backends_present();
    assert!(present.contains(&Backend::Portable));
    for backend in present {
        let (run, skipped) = run_backend(&doc, backend);
        println!("{backend}: {run} Wycheproof cases passed, {skipped} not applicable (AES-192 or non-96-bit nonce)");
        // Every AES-128/256 case with a 96-bit nonce and a 128-bit tag, and nothing dropped.
        assert_eq!(run, 133, "{backend}: cases run");
        assert_eq!(Some((run + skipped) as u64), doc["numberOfTests"].as_u64(), "{backend}: cases read");
    }
}
