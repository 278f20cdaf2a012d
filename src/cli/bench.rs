//! `parthenon bench <job>`: measured throughput of the engine's jobs on this machine.

use super::Failure;
use clap::Subcommand;

#[derive(Debug, clap::Args)]
pub struct Args {
    #[command(subcommand)]
    what: Bench,
}

#[derive(Debug, Subcommand)]
pub enum Bench {
    /// Batch signature verification: CPU, OpenCL, CUDA or auto, kernel-only and end-to-end rates.
    Verify(super::bench_verify::Args),
}

pub fn run(args: Args) -> Result<(), Failure> {
    match args.what {
        Bench::Verify(a) => super::bench_verify::run(a),
    }
}
