//! Whether to compress a block, and with what: a quick entropy test, then LZ4 only if it pays.
//!
//! The test estimates the Shannon entropy (bits per byte) of up to 16 KiB sampled in 64 evenly
//! spaced 256-byte runs across the block. Below [`ENTROPY_THRESHOLD`] bits/byte the block is
//! compressed with LZ4 (fast enough not to become the bottleneck of a link), and the result is
//! kept only if it saves at least 10 %. Blocks under [`MIN_COMPRESS`] bytes are never
//! compressed. Already-compressed or encrypted data (≈ 8 bits/byte) skips compression after
//! reading 16 KiB.

use super::frame::Codec;
use std::borrow::Cow;

/// Entropy (bits/byte) under which compression is tried.
pub const ENTROPY_THRESHOLD: f64 = 7.0;
/// Smallest block considered for compression.
pub const MIN_COMPRESS: usize = 4096;

/// Whether to compress.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Compression {
    /// Decide per block (entropy test).
    #[default]
    Auto,
    /// Never.
    Off,
    /// Always LZ4 when it saves space.
    Lz4,
}

/// Estimated entropy of `data` in bits per byte, from a sample (see the module docs).
pub fn sampled_entropy(data: &[u8]) -> f64 {
    if data.is_empty() {
        return 0.0;
    }
    let mut hist = [0u32; 256];
    let mut n = 0u32;
    const RUNS: usize = 64;
    const RUN: usize = 256;
    if data.len() <= RUNS * RUN {
        for &b in data {
            hist[b as usize] += 1;
        }
        n = data.len() as u32;
    } else {
        let stride = (data.len() - RUN) / (RUNS - 1);
        for r in 0..RUNS {
            for &b in &data[r * stride..r * stride + RUN] {
                hist[b as usize] += 1;
            }
            n += RUN as u32;
        }
    }
    let n = f64::from(n);
    hist.iter()
        .filter(|&&c| c > 0)
        .map(|&c| {
            let p = f64::from(c) / n;
            -p * p.log2()
        })
        .sum()
}

/// Encodes `body` for the wire under `policy`: the payload and its codec.
pub fn encode(body: &[u8], policy: Compression) -> (Cow<'_, [u8]>, Codec) {
    let try_it = match policy {
        Compression::Off => false,
        Compression::Lz4 => body.len() >= MIN_COMPRESS,
        Compression::Auto => body.len() >= MIN_COMPRESS && sampled_entropy(body) < ENTROPY_THRESHOLD,
    };
    if try_it {
        let c = lz4_flex::block::compress(body);
        if c.len() * 10 <= body.len() * 9 {
            return (Cow::Owned(c), Codec::Lz4);
        }
    }
    (Cow::Borrowed(body), Codec::None)
}

/// Decodes a payload into exactly `raw_len` bytes, or says why it cannot (also when there is no
/// memory for them: the room is reserved fallibly, `raw_len` being a peer's number).
pub fn decode(payload: Vec<u8>, codec: Codec, raw_len: usize) -> Result<Vec<u8>, String> {
    if codec == Codec::None {
        if payload.len() != raw_len {
            return Err(format!("payload {} bytes, header says {raw_len}", payload.len()));
        }
        return Ok(payload);
    }
    let mut out = Vec::new();
    out.try_reserve_exact(raw_len).map_err(|e| format!("no memory for {raw_len} decoded bytes: {e}"))?;
    decode_into(&payload, codec, raw_len, &mut out)?;
    Ok(out)
}

/// Decodes a payload into `out`, which then holds exactly `raw_len` bytes, or says why it
/// cannot. `out`'s contents are replaced; the caller reserves its room (fallibly, for a length
/// a peer sent): only what `out` lacks of `raw_len` is allocated here.
pub fn decode_into(payload: &[u8], codec: Codec, raw_len: usize, out: &mut Vec<u8>) -> Result<(), String> {
    out.clear();
    match codec {
        Codec::None => {
            if payload.len() != raw_len {
                return Err(format!("payload {} bytes, header says {raw_len}", payload.len()));
            }
            out.extend_from_slice(payload);
        }
        Codec::Lz4 => {
            out.resize(raw_len, 0);
            let n = lz4_flex::block::decompress_into(payload, out).map_err(|e| format!("lz4: {e}"))?;
            if n != raw_len {
                return Err(format!("lz4 decoded {n} bytes, header says {raw_len}"));
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn entropy_separates_text_from_noise() {
        let text = b"the quick brown fox jumps over the lazy dog ".repeat(2000);
        assert!(sampled_entropy(&text) < 5.0);
        let mut x = 88172645463325252u64;
        let noise: Vec<u8> = (0..100_000)
            .map(|_| {
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                x as u8
            })
            .collect();
        assert!(sampled_entropy(&noise) > 7.5);
        assert_eq!(encode(&text, Compression::Auto).1, Codec::Lz4);
        assert_eq!(encode(&noise, Compression::Auto).1, Codec::None);
        let (p, c) = encode(&text, Compression::Auto);
        assert_eq!(decode(p.into_owned(), c, text.len()).unwrap(), text);
    }

    /// A decoded length no memory can hold (a peer's number) is an error, not an abort.
    #[test]
    fn an_impossible_decoded_length_is_an_error() {
        let (p, c) = encode(&[7u8; 10_000], Compression::Lz4);
        assert_eq!(c, Codec::Lz4);
        let e = decode(p.into_owned(), c, 1 << 56).unwrap_err();
        assert!(e.contains("no memory"), "{e}");
    }
}
