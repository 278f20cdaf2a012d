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
    let engine = a.routing.builder()?.build()?;
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .map_err(|e| Failure::Runtime(format!("tokio runtime: {e}")))?;
    rt.block_on(async {
        tokio::select! {
            r = parthenon::node::service::run(cfg, engine) => r.map_err(|e| match e {
                // A field of the file with a bad value: bad input, named with the file.
                NodeError::Config(e) => Failure::Input(format!("{}: {e}", a.config.display())),
                e => Failure::Runtime(e.to_string()),
            }),
            _ = tokio::signal::ctrl_c() => Ok(()),
        }
    })
}
