//! `parthenon node --config node.toml`: one validator (see `parthenon::node::config` for the file).

use super::{Failure, RoutingArgs};
use parthenon::node::service::NodeError;
use std::path::PathBuf;

/// Arguments of `parthenon node`.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// The validator's configuration file.
    #[arg(long)]
    config: PathBuf,
    #[command(flatten)]
    routing: RoutingArgs,
}

pub fn run(a: Args) -> Result<(), Failure> {
    let cfg = parthenon::node::config::NodeConfig::load(&a.config).map_err(|e| Failure::Input(e.to_string()))?;
    // Every value checked before detection (which starts devices, a ring, maybe DPDK's EAL);
    // `service::run` checks them again, for library callers.
    cfg.check().map_err(|e| Failure::Input(format!("{}: {e}", a.config.display())))?;
    let engine = a.routing.builder()?.build()?;
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .map_err(|e| Failure::Runtime(format!("tokio runtime: {e}")))?;
    let r = rt.block_on(async {
        // SIGINT and SIGTERM end the node. Nothing is lost by stopping at any await point: a
        // decision and the safety state are durable before anything that follows them is sent.
        let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
            .map_err(|e| Failure::Runtime(format!("cannot handle SIGTERM: {e}")))?;
        tokio::select! {
            r = parthenon::node::service::run(cfg, engine) => r.map_err(|e| match e {
                // A field of the file with a bad value: bad input, named with the file.
                NodeError::Config(e) => Failure::Input(format!("{}: {e}", a.config.display())),
                e => Failure::Runtime(e.to_string()),
            }),
            r = tokio::signal::ctrl_c() => r.map_err(|e| Failure::Runtime(format!("cannot handle SIGINT: {e}"))),
            _ = term.recv() => Ok(()),
        }
    });
    // Blocking work still running (a block served to a peer that reads slowly, a catch-up
    // fetch whose deadline was kept by a task now cancelled) is not waited for: dropping the
    // runtime would wait for it without a limit, and the signal handlers installed above would
    // swallow a second Ctrl-C.
    rt.shutdown_timeout(std::time::Duration::from_secs(2));
    r
}
