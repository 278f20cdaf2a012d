//! Prometheus metrics of a validator (`metrics = "ADDR:PORT"` in `node.toml`).
//!
//! `GET /metrics` on that address answers with the OpenMetrics text exposition (prometheus-client)
//! of the counters the node already keeps, read at scrape time: nothing is sampled or cached, so a
//! scrape sees exactly what the status frame would say at that moment. Any other path is 404; a
//! request that is not HTTP, or larger than 8 KiB before its blank line, closes the connection.
//! At most [`MAX_METRICS_CONNECTIONS`] are served at once (more are closed at once), each within
//! [`METRICS_TIMEOUT`]; a failed `accept` is retried after 100 ms, not at once.
//!
//! | metric | type | meaning |
//! | --- | --- | --- |
//! | `parthenon_height` | gauge | final blocks stored |
//! | `parthenon_view` | gauge | consensus view at the current height |
//! | `parthenon_mempool_transactions` | gauge | transactions waiting for a block |
//! | `parthenon_consensus_messages` | counter | consensus messages accepted |
//! | `parthenon_dropped_frames{reason}` | counter | frames dropped: `malformed`, `unidentified` (consensus or `Tip` without a completed handshake), `bad_signature`, `refused_unverified` (over a shape bound, out of view range, below our height, or a `Decided` without a quorum certificate: not verified), `queue_full` |
//! | `parthenon_refused_hellos` | counter | `Hello` handshakes refused (unknown or own index, bad or missing proof, timeout, repeated `Hello`), each closing its connection |
//! | `parthenon_connections_closed{reason}` | counter | inbound connections closed by the node: `no_slot` (refused at once: every connection slot of its kind taken), `idle` (no first frame within the handshake timeout, or a client that has not subscribed silent past the client idle timeout), `write_timeout` (a client that did not take a frame within 10 s), `lagging` (a subscriber whose queue of commit notices was full: 4096 frames or 16 MiB not yet written), `validator_limit` (right after its handshake: 8 connections of that validator open), `stalled_frame` (a frame's body not complete within its deadline: 5 s plus its length at 1 MiB/s) |
//! | `parthenon_evidence` | counter | equivocations seen |
//! | `parthenon_view_changes` | counter | view changes this validator started |
//! | `parthenon_sync_blocks{direction}` | counter | final blocks `fetched` from / `served` to peers through transfer |
//! | `parthenon_sync_bytes{direction}` | counter | their wire bytes |
//! | `parthenon_sync_errors{direction}` | counter | block connections that failed |
//! | `parthenon_sync_serving{caller}` | gauge | block connections being served now: `anonymous` (at most 32 share their slots) and `validator` (one slot each) |
//! | `parthenon_sync_serves_refused` | counter | anonymous block connections refused for want of a free slot |
//! | `parthenon_sigverify_items` | counter | signatures verified through `Engine::verify` (process) |
//! | `parthenon_sigverify_batches` | counter | `Engine::verify` calls (process) |
//! | `parthenon_sigverify_device_fallbacks` | counter | device batches redone on the CPU (process) |

use crate::node::service::NetCounters;
use crate::node::sync::BlockServer;
use prometheus_client::collector::Collector;
use prometheus_client::encoding::{DescriptorEncoder, EncodeMetric};
use prometheus_client::metrics::counter::ConstCounter;
use prometheus_client::metrics::gauge::ConstGauge;
use prometheus_client::metrics::MetricType;
use prometheus_client::registry::Registry;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

/// Values only the consensus task knows, published after every step.
#[derive(Debug, Default)]
pub struct NodeGauges {
    /// Current view.
    pub view: AtomicU64,
    /// Mempool size.
    pub mempool: AtomicU64,
    /// Equivocation evidence seen.
    pub evidence: AtomicU64,
    /// View changes started.
    pub view_changes: AtomicU64,
}

/// Reads every counter at scrape time.
#[derive(Debug)]
pub struct NodeCollector {
    /// Network counters.
    pub net: Arc<NetCounters>,
    /// Block server (final height, sync counters).
    pub server: Arc<BlockServer>,
    /// Consensus-task values.
    pub gauges: Arc<NodeGauges>,
}

fn counter(e: &mut DescriptorEncoder, name: &str, help: &str, v: u64) -> Result<(), std::fmt::Error> {
    let c = ConstCounter::new(v);
    c.encode(e.encode_descriptor(name, help, None, c.metric_type())?)
}

fn gauge(e: &mut DescriptorEncoder, name: &str, help: &str, v: u64) -> Result<(), std::fmt::Error> {
    let g = ConstGauge::new(i64::try_from(v).unwrap_or(i64::MAX));
    g.encode(e.encode_descriptor(name, help, None, g.metric_type())?)
}

/// One counter family with a single label `key` taking each of `values`.
fn labelled(e: &mut DescriptorEncoder, name: &str, help: &str, key: &str, values: &[(&str, u64)]) -> Fmt {
    family(e, name, help, key, values, MetricType::Counter)
}

/// One gauge family with a single label `key` taking each of `values`.
fn labelled_gauge(e: &mut DescriptorEncoder, name: &str, help: &str, key: &str, values: &[(&str, u64)]) -> Fmt {
    family(e, name, help, key, values, MetricType::Gauge)
}

fn family(
    e: &mut DescriptorEncoder,
    name: &str,
    help: &str,
    key: &str,
    values: &[(&str, u64)],
    kind: MetricType,
) -> Fmt {
    let mut family = e.encode_descriptor(name, help, None, kind)?;
    for (label, v) in values {
        let labels = [(key.to_string(), label.to_string())];
        let encoder = family.encode_family(&labels)?;
        match kind {
            MetricType::Gauge => ConstGauge::new(i64::try_from(*v).unwrap_or(i64::MAX)).encode(encoder)?,
            _ => ConstCounter::new(*v).encode(encoder)?,
        }
    }
    Ok(())
}

type Fmt = Result<(), std::fmt::Error>;

impl Collector for NodeCollector {
    fn encode(&self, mut e: DescriptorEncoder) -> Result<(), std::fmt::Error> {
        let load = |a: &AtomicU64| a.load(Ordering::Relaxed);
        let (net, sync) = (&*self.net, &self.server.counters);
        gauge(&mut e, "parthenon_height", "Final blocks stored", self.server.final_height.load(Ordering::Acquire))?;
        gauge(&mut e, "parthenon_view", "Consensus view at the current height", load(&self.gauges.view))?;
        gauge(
            &mut e,
            "parthenon_mempool_transactions",
            "Transactions waiting for a block",
            load(&self.gauges.mempool),
        )?;
        counter(&mut e, "parthenon_consensus_messages", "Consensus messages accepted", load(&net.messages_in))?;
        labelled(
            &mut e,
            "parthenon_dropped_frames",
            "Frames dropped, by reason",
            "reason",
            &[
                ("malformed", load(&net.malformed_frames)),
                ("unidentified", load(&net.unidentified)),
                ("bad_signature", load(&net.bad_signatures)),
                ("refused_unverified", load(&net.refused_unverified)),
                ("queue_full", load(&net.send_dropped)),
            ],
        )?;
        counter(&mut e, "parthenon_refused_hellos", "Hello handshakes refused", load(&net.refused_hellos))?;
        labelled(
            &mut e,
            "parthenon_connections_closed",
            "Inbound connections closed by the node",
            "reason",
            &[
                ("no_slot", load(&net.refused_connections)),
                ("idle", load(&net.idle_closed)),
                ("write_timeout", load(&net.write_timeouts)),
                ("lagging", load(&net.lagging_subscribers)),
                ("validator_limit", load(&net.validator_limit)),
                ("stalled_frame", load(&net.stalled_frames)),
            ],
        )?;
        counter(&mut e, "parthenon_evidence", "Equivocations seen", load(&self.gauges.evidence))?;
        counter(&mut e, "parthenon_view_changes", "View changes started", load(&self.gauges.view_changes))?;
        let both = |f: &AtomicU64, s: &AtomicU64| [("fetched", load(f)), ("served", load(s))];
        labelled(
            &mut e,
            "parthenon_sync_blocks",
            "Final blocks moved through transfer",
            "direction",
            &both(&sync.blocks_fetched, &sync.blocks_served),
        )?;
        labelled(
            &mut e,
            "parthenon_sync_bytes",
            "Wire bytes of those blocks",
            "direction",
            &both(&sync.bytes_fetched, &sync.bytes_served),
        )?;
        labelled(
            &mut e,
            "parthenon_sync_errors",
            "Block connections that failed",
            "direction",
            &both(&sync.fetch_errors, &sync.serve_errors),
        )?;
        labelled_gauge(
            &mut e,
            "parthenon_sync_serving",
            "Block connections being served now",
            "caller",
            &[("anonymous", load(&sync.serving)), ("validator", self.server.validators_serving() as u64)],
        )?;
        counter(
            &mut e,
            "parthenon_sync_serves_refused",
            "Anonymous block connections refused for want of a free slot",
            load(&sync.serves_refused),
        )?;
        let s = crate::sigverify::stats();
        counter(&mut e, "parthenon_sigverify_items", "Signatures verified through Engine::verify", s.items)?;
        counter(&mut e, "parthenon_sigverify_batches", "Engine::verify calls", s.batches)?;
        counter(
            &mut e,
            "parthenon_sigverify_device_fallbacks",
            "Device batches redone on the CPU",
            s.device_fallbacks,
        )?;
        Ok(())
    }
}

/// The exposition text of `registry`.
pub fn render(registry: &Registry) -> String {
    let mut out = String::new();
    if prometheus_client::encoding::text::encode(&mut out, registry).is_err() {
        out.clear();
    }
    out
}

/// Most metrics connections served at once (module docs).
pub const MAX_METRICS_CONNECTIONS: usize = 16;

/// Longest a metrics connection is served, request and answer together (module docs).
pub const METRICS_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(10);

/// Serves `GET /metrics` on `listener` until the process ends.
pub async fn serve(listener: TcpListener, registry: Arc<Registry>) {
    let slots = Arc::new(tokio::sync::Semaphore::new(MAX_METRICS_CONNECTIONS));
    loop {
        let (stream, remote) = match listener.accept().await {
            Ok(a) => a,
            Err(e) => {
                tracing::warn!(error = %e, "metrics accept failed; accepting again in 100 ms");
                tokio::time::sleep(std::time::Duration::from_millis(100)).await;
                continue;
            }
        };
        let Ok(slot) = slots.clone().try_acquire_owned() else {
            tracing::debug!(%remote, "metrics connection refused: {MAX_METRICS_CONNECTIONS} being served");
            continue;
        };
        let registry = registry.clone();
        tokio::spawn(async move {
            let _slot = slot;
            match tokio::time::timeout(METRICS_TIMEOUT, answer(stream, &registry)).await {
                Ok(Ok(())) => {}
                Ok(Err(e)) => tracing::debug!(%remote, error = %e, "metrics connection"),
                Err(_) => tracing::debug!(%remote, "metrics connection timed out"),
            }
        });
    }
}

async fn answer(mut s: TcpStream, registry: &Registry) -> std::io::Result<()> {
    let mut req = Vec::with_capacity(512);
    let mut buf = [0u8; 1024];
    while !req.windows(4).any(|w| w == b"\r\n\r\n") {
        let n = s.read(&mut buf).await?;
        if n == 0 || req.len() + n > 8192 {
            return Ok(());
        }
        req.extend_from_slice(&buf[..n]);
    }
    let line = req.split(|b| *b == b'\r').next().unwrap_or_default();
    let (status, ctype, body) = if line.starts_with(b"GET /metrics ") || line == b"GET /metrics" {
        ("200 OK", "application/openmetrics-text; version=1.0.0; charset=utf-8", render(registry))
    } else {
        ("404 Not Found", "text/plain; charset=utf-8", "only /metrics is served\n".to_string())
    };
    let head = format!(
        "HTTP/1.1 {status}\r\nContent-Type: {ctype}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
        body.len()
    );
    s.write_all(head.as_bytes()).await?;
    s.write_all(body.as_bytes()).await?;
    s.shutdown().await
}
