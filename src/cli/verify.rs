//! `parthenon verify --input FILE.jsonl [--rules zip215|strict] [--backend auto|cpu|cuda|opencl]`:
//! verifies one signature per input line and prints one verdict line per input, in order.
//!
//! Input: JSON Lines, one object per line, `{"scheme":"ed25519"|"schnorr","pubkey":HEX,
//! "msg":HEX,"sig":HEX}` (other fields ignored; `-` reads stdin; blank lines are skipped and get
//! no index). Output: `{"index":N,"valid":true|false}` per item, `N` counting items from 0.
//!
//! Streaming: items are read in chunks of at most [`CHUNK`] lines and at most [`CHUNK_MESSAGE_BYTES`]
//! of messages (a chunk ends at the line that reaches either), each chunk verified as one batch
//! through [`parthenon::Engine::verify_with`] and printed before the next is read, so memory is
//! bounded by one chunk (and a line by [`MAX_LINE`]) whatever the file size.
//!
//! Errors: a malformed line (not UTF-8, longer than [`MAX_LINE`], invalid JSON, missing field,
//! bad hex, wrong length, unknown scheme) stops the run with `line L: reason` and exit code 2;
//! the items before it are verified and printed, the malformed line gets no verdict. An unusable `--backend` and an input file that
//! cannot be opened are exit 2; read and write failures afterwards are exit 1.

use super::Failure;
use parthenon::detect::DetectOptions;
use parthenon::sigverify::{Batch, Rules, Scheme};
use parthenon::{Backend, Engine, Job};
use serde::Deserialize;
use std::io::{BufRead, BufReader, BufWriter, Write};
use std::path::PathBuf;

/// Items per batch handed to the engine.
pub const CHUNK: usize = 4096;
/// The longest input line read, newline included: room for a message of 8 MiB, hex-encoded
/// (16 MiB), with its key, signature and the JSON around them.
pub const MAX_LINE: usize = (16 << 20) + 4096;
/// Message bytes (decoded) after which a chunk is verified even if it has fewer than [`CHUNK`]
/// items: 4096 lines of 8 MiB messages would otherwise hold 32 GiB at once.
pub const CHUNK_MESSAGE_BYTES: usize = 64 << 20;

#[derive(Debug, clap::Args)]
pub struct Args {
    /// JSON Lines file of signatures (`-` for stdin).
    #[arg(long, value_name = "FILE")]
    input: PathBuf,
    /// Ed25519 rule set: `zip215` (ZIP-215, cofactored; default) or `strict` (dalek
    /// verify_strict). BIP-340 has one rule.
    #[arg(long, default_value = "zip215")]
    rules: String,
    /// Verification backend: `auto` (fastest present) or a backend name (`cpu`, `cuda`,
    /// `opencl`); an explicit backend that cannot run here is an error.
    #[arg(long, default_value = "auto")]
    backend: String,
}

#[derive(Deserialize)]
struct Line {
    scheme: String,
    pubkey: String,
    msg: String,
    sig: String,
}

pub fn run(args: Args) -> Result<(), Failure> {
    let rules: Rules = args.rules.parse().map_err(|e: parthenon::sigverify::Error| Failure::Input(e.to_string()))?;
    let mut builder = Engine::builder().detect_options(DetectOptions { skip_dpdk: true, ..Default::default() });
    if args.backend != "auto" {
        let backend: Backend = args.backend.parse()?;
        if backend.job() != Job::Verify {
            return Err(Failure::Input(format!(
                "backend `{backend}` serves {}, not verify; use auto, cpu, cuda or opencl",
                backend.job()
            )));
        }
        builder = builder.force(backend);
    }
    let engine = builder.build()?;
    // A GPU route's device is prepared while the first chunk is read; batches go to the CPU
    // until it is ready (`Engine::verify_with`).
    engine.warm_up_verify(rules);
    let mut reader: Box<dyn BufRead> = if args.input.as_os_str() == "-" {
        Box::new(BufReader::new(std::io::stdin().lock()))
    } else {
        let f = std::fs::File::open(&args.input)
            .map_err(|e| Failure::Input(format!("cannot open {}: {e}", args.input.display())))?;
        Box::new(BufReader::with_capacity(1 << 20, f))
    };
    let mut out = BufWriter::new(std::io::stdout().lock());
    let mut batch = Batch::with_capacity(CHUNK, CHUNK * 64);
    let mut next_index = 0usize;
    let io_err = |e: std::io::Error| Failure::Runtime(format!("writing verdicts: {e}"));
    let flush = |batch: &mut Batch, next_index: &mut usize, out: &mut BufWriter<_>| -> Result<(), Failure> {
        if batch.is_empty() {
            return Ok(());
        }
        let verdicts = engine.verify_with(batch, rules);
        for v in verdicts.iter() {
            writeln!(out, "{{\"index\":{},\"valid\":{}}}", *next_index, v).map_err(io_err)?;
            *next_index += 1;
        }
        out.flush().map_err(io_err)?;
        batch.clear();
        Ok(())
    };
    let mut raw = Vec::new();
    let mut lineno = 0usize;
    loop {
        raw.clear();
        let n = std::io::Read::take(&mut reader, MAX_LINE as u64 + 1)
            .read_until(b'\n', &mut raw)
            .map_err(|e| Failure::Runtime(format!("reading {}: line {}: {e}", args.input.display(), lineno + 1)))?;
        if n == 0 {
            break;
        }
        lineno += 1;
        let line = if raw.len() > MAX_LINE {
            Err(format!("longer than {MAX_LINE} bytes"))
        } else {
            std::str::from_utf8(&raw).map_err(|e| format!("not UTF-8: {e}"))
        };
        // Blank lines are skipped.
        let parsed = line.and_then(|line| match line.trim() {
            "" => Ok(()),
            line => parse_into(line, &mut batch),
        });
        if let Err(reason) = parsed {
            flush(&mut batch, &mut next_index, &mut out)?;
            return Err(Failure::Input(format!("{}: line {lineno}: {reason}", args.input.display())));
        }
        if batch.len() == CHUNK || batch.messages().len() >= CHUNK_MESSAGE_BYTES {
            flush(&mut batch, &mut next_index, &mut out)?;
        }
    }
    flush(&mut batch, &mut next_index, &mut out)
}

/// Parses one input line and appends it to `batch`, or says what is wrong with it.
fn parse_into(line: &str, batch: &mut Batch) -> Result<(), String> {
    let l: Line = serde_json::from_str(line).map_err(|e| format!("invalid JSON: {e}"))?;
    let scheme: Scheme = l.scheme.parse().map_err(|e: parthenon::sigverify::Error| e.to_string())?;
    let pubkey = hex::decode(&l.pubkey).map_err(|e| format!("pubkey: invalid hex: {e}"))?;
    let msg = hex::decode(&l.msg).map_err(|e| format!("msg: invalid hex: {e}"))?;
    let sig = hex::decode(&l.sig).map_err(|e| format!("sig: invalid hex: {e}"))?;
    batch.push(scheme, &pubkey, &msg, &sig).map_err(|e| match e {
        parthenon::sigverify::Error::WrongLength { scheme, field, got, want, .. } => {
            format!("{field} is {got} bytes, {scheme} needs {want}")
        }
        other => other.to_string(),
    })?;
    Ok(())
}
