//! Command-line front end: argument parsing, logging set-up and dispatch to one module per
//! subcommand. Exit codes: 0 success, 1 runtime failure, 2 bad input or usage.

/// `println!` that returns [`Failure::Runtime`] instead of panicking when stdout is closed
/// (`parthenon detect | head -1`) or fails.
macro_rules! outln {
    () => {
        $crate::cli::emit(format_args!("\n"))
    };
    ($($arg:tt)*) => {
        $crate::cli::emit(format_args!("{}\n", format_args!($($arg)*)))
    };
}

/// `print!` with the same failure as [`outln!`].
macro_rules! out {
    ($($arg:tt)*) => {
        $crate::cli::emit(format_args!($($arg)*))
    };
}

mod bench;
mod bench_cipher;
mod bench_transfer;
mod bench_verify;
mod detect;
#[cfg(feature = "node")]
mod node;
#[cfg(feature = "node")]
mod testnet;
mod verify;

use clap::{Parser, Subcommand};
use std::process::ExitCode;

/// parthenon: hardware-routed AES-256-GCM, batch signature verification and block transfer.
#[derive(Debug, Parser)]
#[command(name = "parthenon", version, about, long_about = None)]
pub struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Show the hardware found and which backend serves each job, and why.
    Detect(detect::Args),
    /// Verify Ed25519 / BIP-340 signatures from a JSON Lines file; one verdict line per input.
    Verify(verify::Args),
    /// Measure a job's backends side by side on this machine (`bench cipher|verify|transfer`).
    Bench(bench::Args),
    /// Run one consensus validator (`--config node.toml`).
    #[cfg(feature = "node")]
    Node(node::Args),
    /// Start a local network of validator processes, drive signed transfers, report.
    #[cfg(feature = "node")]
    Testnet(testnet::Args),
}

/// A failure that decides the exit code.
#[derive(Debug)]
pub enum Failure {
    /// Bad input or usage: exit 2.
    Input(String),
    /// Anything else: exit 1.
    Runtime(String),
}

impl From<parthenon::Error> for Failure {
    fn from(e: parthenon::Error) -> Self {
        Failure::Input(e.to_string())
    }
}

pub fn main() -> ExitCode {
    let cli = Cli::parse();
    init_logging();
    let result = match cli.command {
        Command::Detect(a) => detect::run(a),
        Command::Verify(a) => verify::run(a),
        Command::Bench(a) => bench::run(a),
        #[cfg(feature = "node")]
        Command::Node(a) => node::run(a),
        #[cfg(feature = "node")]
        Command::Testnet(a) => testnet::run(a),
    };
    #[cfg(feature = "dpdk")]
    if let Some(eal) = parthenon::dpdk::Eal::get() {
        // SAFETY: the subcommand has returned: every link, frame and thread it made for DPDK
        // has been dropped or joined, and nothing after this line touches DPDK.
        unsafe { eal.cleanup() };
    }
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(Failure::Input(m)) => {
            eprintln!("parthenon: error: {m}");
            ExitCode::from(2)
        }
        Err(Failure::Runtime(m)) => {
            eprintln!("parthenon: error: {m}");
            ExitCode::from(1)
        }
    }
}

/// Writes to stdout; an error (a closed pipe, a full disk) is a runtime failure that says so.
/// Rust ignores `SIGPIPE`, so without this a closed stdout would panic in `println!`; the
/// signal stays ignored because the transfer backends write to sockets with `sendfile`/`splice`.
pub fn emit(args: std::fmt::Arguments<'_>) -> Result<(), Failure> {
    use std::io::Write;
    std::io::stdout().lock().write_fmt(args).map_err(|e| Failure::Runtime(format!("writing to stdout: {e}")))
}

/// `tracing` to stderr, filtered by `RUST_LOG` (default `warn`).
fn init_logging() {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("warn"));
    let _ = tracing_subscriber::fmt().with_env_filter(filter).with_writer(std::io::stderr).try_init();
}

/// Routing overrides shared by every subcommand that builds an engine.
#[derive(Debug, Clone, Default, clap::Args)]
pub struct RoutingArgs {
    /// Serve a job with exactly this backend, e.g. `--force cuda` (repeatable). Fails with the
    /// reason if the backend is absent.
    #[arg(long = "force", value_name = "BACKEND")]
    pub force: Vec<String>,
    /// Never use this backend, e.g. `--forbid io-uring` (repeatable).
    #[arg(long = "forbid", value_name = "BACKEND")]
    pub forbid: Vec<String>,
    /// Do not start DPDK's EAL while detecting.
    #[arg(long)]
    pub no_dpdk: bool,
}

impl RoutingArgs {
    /// An engine builder with these overrides applied.
    pub fn builder(&self) -> Result<parthenon::EngineBuilder, Failure> {
        let mut b = parthenon::Engine::builder()
            .detect_options(parthenon::detect::DetectOptions { skip_dpdk: self.no_dpdk, ..Default::default() });
        for f in &self.force {
            b = b.force(f.parse()?);
        }
        for f in &self.forbid {
            b = b.forbid(f.parse()?);
        }
        Ok(b)
    }
}
