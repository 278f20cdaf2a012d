//! `parthenon bench <job>`: measurements that put every backend of a job side by side in one run.
//! One subcommand per job, each in its own module; each prints a table, or JSON with `--json`.

use super::Failure;

#[derive(Debug, clap::Args)]
pub struct Args {
    #[command(subcommand)]
    what: Bench,
}

#[derive(Debug, clap::Subcommand)]
enum Bench {
    /// AES-256-GCM seal and open throughput (GB/s) per backend and message size.
    Cipher(super::bench_cipher::Args),
    /// Batch signature verification: CPU, OpenCL, CUDA or auto, kernel-only and end-to-end rates.
    Verify(super::bench_verify::Args),
    /// Block transfer between two processes on loopback: GB/s and sender CPU-seconds per GB for
    /// each backend, `copy` always included.
    Transfer(super::bench_transfer::Args),
}

pub fn run(args: Args) -> Result<(), Failure> {
    match args.what {
        Bench::Cipher(a) => super::bench_cipher::run(a),
        Bench::Verify(a) => super::bench_verify::run(a),
        Bench::Transfer(a) => super::bench_transfer::run(a),
    }
}
