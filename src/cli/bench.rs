//! `parthenon bench <what>`: measurements that put every backend of a job side by side in one run.

use super::Failure;

#[derive(Debug, clap::Args)]
pub struct Args {
    #[command(subcommand)]
    what: Bench,
}

#[derive(Debug, clap::Subcommand)]
enum Bench {
    /// Block transfer between two processes on loopback: GB/s and sender CPU-seconds per GB for
    /// each backend, `copy` always included.
    Transfer(super::bench_transfer::Args),
}

pub fn run(args: Args) -> Result<(), Failure> {
    match args.what {
        Bench::Transfer(a) => super::bench_transfer::run(a),
    }
}
