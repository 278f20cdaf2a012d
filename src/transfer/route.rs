//! Choosing the transport: the engine's route for [`Job::Transfer`] first, block size below it.
//!
//! - The engine routes the job ([`crate::Engine::route`]): a forced backend is used for every
//!   block; `auto` takes the fastest present stream backend (io_uring, sendfile, splice, mmap,
//!   copy, in that order; DPDK is never picked automatically, and it is a datagram path served by
//!   [`super::datagram`] rather than by a stream [`Transport`]).
//! - Under `auto`, blocks whose wire size is below [`TransferPolicy::small_block_max`] go by
//!   `copy`: for a few KiB the set-up of a zero-copy path (a pipe, a ring submission, a
//!   completion notification) costs more than the copy it saves. The default comes from
//!   `parthenon bench transfer` on the reference machine (docs/benchmarks.md, "Transfer"); it is
//!   configurable, and `PARTHENON_TRANSFER_SMALL_MAX` (bytes, a whole number) overrides it; a
//!   value that is not one is ignored with a warning.
//! - Under `auto` with io-uring routed, blocks to a peer on a loopback address go by `sendfile`:
//!   the kernel copies zero-copy (`SEND_ZC`) data looped to a local socket, so io_uring sends
//!   there with a plain copying `SEND`, and `parthenon bench transfer` measured `sendfile` as
//!   fast as that at 64 MiB with 0.4–0.6× `copy`'s sender CPU at 1 MiB, where io_uring's `SEND`
//!   used 1.1× (docs/benchmarks.md, Transfer, session 8).
//! - Under `auto`, a routed backend whose transport cannot be set up although detection found it
//!   (io_uring's first ring refused after the probe: `ENOMEM` once the user's rings fill
//!   `RLIMIT_MEMLOCK`, whose charge for the probe's own ring outlives it for a short while) is
//!   passed over like an absent one, with its reason, for the next backend present; a forced
//!   backend fails with that reason instead.
//! - Receives read the header before the size is known, so they always use the routed backend.
//! - [`TransferRouter::report`] says which backend serves which sizes and why, including every
//!   backend passed over (e.g. "io_uring_setup: EPERM") and the io_uring backend's own
//!   downgrades (e.g. registered buffers refused under `RLIMIT_MEMLOCK`).

use super::{transport_for, BlockStore, Error, Expect, SealedBlock, SendReport, Transport};
use crate::engine::{Backend, Engine, Job, PassedOver, Route};
use serde::Serialize;
use std::fmt;
use std::net::TcpStream;

/// Size thresholds for automatic routing.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct TransferPolicy {
    /// Under `auto`, blocks with a wire size (header + body) below this many bytes go by `copy`.
    pub small_block_max: u64,
}

const LOOPBACK_REASON: &str = "loopback peer: the kernel copies io_uring SEND_ZC data looped to a local socket, \
     so sendfile (no user-space copy, one syscall) serves it";

/// Default of [`TransferPolicy::small_block_max`], calibrated with `parthenon bench transfer`.
pub const DEFAULT_SMALL_BLOCK_MAX: u64 = 16 << 10;

impl Default for TransferPolicy {
    fn default() -> Self {
        TransferPolicy { small_block_max: DEFAULT_SMALL_BLOCK_MAX }
    }
}

/// Environment variable that overrides [`TransferPolicy::small_block_max`], in bytes.
pub const SMALL_MAX_ENV: &str = "PARTHENON_TRANSFER_SMALL_MAX";

impl TransferPolicy {
    /// The defaults, with [`SMALL_MAX_ENV`] (bytes) applied when set; a value that is not a
    /// whole number of bytes is ignored with a warning naming it.
    pub fn from_env() -> Self {
        let mut p = TransferPolicy::default();
        match small_max_override(std::env::var(SMALL_MAX_ENV).ok().as_deref()) {
            Ok(Some(n)) => p.small_block_max = n,
            Ok(None) => {}
            Err(warning) => tracing::warn!("{warning}"),
        }
        p
    }
}

/// The [`TransferPolicy::small_block_max`] that [`SMALL_MAX_ENV`] set to `value` asks for: `None`
/// when it is unset or blank; an error (the warning to log, naming the variable, the value and
/// what it takes) when it is not a whole number of bytes.
fn small_max_override(value: Option<&str>) -> Result<Option<u64>, String> {
    match value {
        None => Ok(None),
        Some(v) if v.trim().is_empty() => Ok(None),
        Some(v) => v.trim().parse().map(Some).map_err(|_| {
            format!(
                "{SMALL_MAX_ENV}={v:?} ignored: expected a block size in bytes, a whole number \
                 (default {DEFAULT_SMALL_BLOCK_MAX})"
            )
        }),
    }
}

/// What [`TransferRouter::report`] says.
#[derive(Debug, Clone, Serialize)]
pub struct TransferReport {
    /// The engine's route for the transfer job (backend, reason, backends passed over).
    pub route: Route,
    /// The thresholds in force.
    pub policy: TransferPolicy,
    /// Whether size refinement applies (only under `auto`).
    pub size_refinement: bool,
    /// One line per size class: which backend and why.
    pub size_classes: Vec<String>,
    /// How received blocks go into the store (receives always use the routed backend).
    pub receive: String,
    /// The routed backend's own notes (e.g. io_uring features it could not use, and why).
    pub backend_notes: Vec<String>,
}

impl fmt::Display for TransferReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(f, "transfer -> {} ({})", self.route.backend, self.route.reason)?;
        for p in &self.route.passed_over {
            writeln!(f, "  not {:<9} {}", p.backend.name(), p.reason)?;
        }
        for s in &self.size_classes {
            writeln!(f, "  {s}")?;
        }
        writeln!(f, "  receive: {}", self.receive)?;
        for n in &self.backend_notes {
            writeln!(f, "  note: {n}")?;
        }
        Ok(())
    }
}

/// A [`Transport`] that picks, per block, between the routed backend and `copy` for small
/// blocks. See the module docs.
#[derive(Debug)]
pub struct TransferRouter {
    route: Route,
    policy: TransferPolicy,
    primary: Box<dyn Transport>,
    small: Option<Box<dyn Transport>>,
    /// Under `auto` with io-uring routed: sendfile for peers on a loopback address.
    loopback: Option<Box<dyn Transport>>,
    notes: Vec<String>,
}

impl TransferRouter {
    /// The backend that sends a block of `wire_len` bytes, and why.
    pub fn choose(&self, wire_len: u64) -> (&dyn Transport, String) {
        match &self.small {
            Some(s) if wire_len < self.policy.small_block_max => (
                s.as_ref(),
                format!(
                    "{wire_len} B < small_block_max {} B: copy beats zero-copy set-up",
                    self.policy.small_block_max
                ),
            ),
            _ => (self.primary.as_ref(), format!("routed backend ({})", self.route.reason)),
        }
    }

    /// The backend that sends a block of `wire_len` bytes to `peer`, and why (adds the
    /// loopback refinement to [`TransferRouter::choose`]).
    pub fn choose_for(&self, peer: &TcpStream, wire_len: u64) -> (&dyn Transport, String) {
        let (t, why) = self.choose(wire_len);
        if let Some(lb) = &self.loopback {
            if t.backend() == self.route.backend
                && peer.peer_addr().map(|a| a.ip().to_canonical().is_loopback()).unwrap_or(false)
            {
                return (lb.as_ref(), LOOPBACK_REASON.to_string());
            }
        }
        (t, why)
    }

    /// The routed (primary) backend.
    pub fn primary(&self) -> &dyn Transport {
        self.primary.as_ref()
    }

    /// Which backend serves which sizes, and why.
    pub fn report(&self) -> TransferReport {
        let mut size_classes = Vec::new();
        // The sizes the routed backend serves: all, or those from `small_block_max` on.
        let routed = if self.small.is_some() {
            size_classes.push(format!(
                "wire size < {} B -> copy (setting up zero-copy costs more than copying this little)",
                self.policy.small_block_max
            ));
            size_classes.push(format!("wire size >= {} B -> {}", self.policy.small_block_max, self.route.backend));
            format!("wire size >= {} B", self.policy.small_block_max)
        } else {
            size_classes.push(format!("all sizes -> {} ({})", self.route.backend, self.route.reason));
            "all sizes".to_string()
        };
        // The loopback rule refines whatever the routed backend serves (`choose_for`), with or
        // without the small-block class.
        if self.loopback.is_some() {
            size_classes.push(format!("{routed} to a loopback peer -> sendfile ({LOOPBACK_REASON})"));
        }
        TransferReport {
            route: self.route.clone(),
            policy: self.policy,
            size_refinement: self.small.is_some() || self.loopback.is_some(),
            size_classes,
            receive: format!("{} ({})", self.route.backend, self.primary.receive_method()),
            backend_notes: self.notes.clone(),
        }
    }
}

impl Transport for TransferRouter {
    fn receive_method(&self) -> &'static str {
        self.primary.receive_method()
    }

    fn backend(&self) -> Backend {
        self.route.backend
    }

    fn send_block(&self, peer: &TcpStream, block: &SealedBlock) -> Result<SendReport, Error> {
        self.choose_for(peer, block.wire_len()).0.send_block(peer, block)
    }

    fn send_bytes(&self, peer: &TcpStream, id: super::BlockId, body: &[u8]) -> Result<SendReport, Error> {
        self.choose_for(peer, body.len() as u64 + super::HEADER_LEN as u64).0.send_bytes(peer, id, body)
    }

    fn recv_block(&self, peer: &TcpStream, store: &BlockStore, expect: &Expect) -> Result<SealedBlock, Error> {
        self.primary.recv_block(peer, store, expect)
    }

    fn recv_to_vec(&self, peer: &TcpStream, expect: &Expect) -> Result<(super::BlockHeader, Vec<u8>), Error> {
        self.primary.recv_to_vec(peer, expect)
    }
}

impl Engine {
    /// The transfer transport for this engine's route, with the policy from the environment
    /// ([`TransferPolicy::from_env`]).
    pub fn transport(&self) -> Result<TransferRouter, Error> {
        self.transport_with(TransferPolicy::from_env())
    }

    /// The transfer transport for this engine's route with explicit thresholds.
    pub fn transport_with(&self, policy: TransferPolicy) -> Result<TransferRouter, Error> {
        let mut route = self.route(Job::Transfer).clone();
        let forced = route.reason == "forced";
        let primary = match transport_for(route.backend) {
            Ok(t) => t,
            Err(e) if !forced => downgrade(&mut route, e)?,
            Err(e) => return Err(e),
        };
        let notes = backend_notes(self, route.backend);
        for n in &notes {
            tracing::info!(backend = %route.backend, note = %n, "transfer downgrade");
        }
        let small = if !forced && route.backend != Backend::Copy && !self.is_forbidden(Backend::Copy) {
            Some(transport_for(Backend::Copy)?)
        } else {
            None
        };
        let loopback = if !forced
            && route.backend == Backend::IoUring
            && !self.is_forbidden(Backend::Sendfile)
            && Backend::Sendfile.presence(self.capabilities()).is_ok()
        {
            Some(transport_for(Backend::Sendfile)?)
        } else {
            None
        };
        Ok(TransferRouter { route, policy, primary, small, loopback, notes })
    }
}

/// Under `auto`: the routed backend's transport failed to set up with `e`; passes it over (in
/// `route.passed_over`, with its reason) for the next backend present that the route did not
/// pass over already, and returns that one's transport. `e` when none sets up.
fn downgrade(route: &mut Route, e: Error) -> Result<Box<dyn Transport>, Error> {
    let mut failed = route.backend;
    let mut reason = match e {
        Error::Unavailable { reason, .. } => reason,
        other => other.to_string(),
    };
    let candidates: Vec<Backend> = Backend::for_job(Job::Transfer)
        .filter(|b| *b > route.backend && !route.passed_over.iter().any(|p| p.backend == *b))
        .collect();
    for b in candidates {
        tracing::info!(backend = %failed, reason = %reason, next = %b, "transfer downgrade: transport refused");
        let at = route.passed_over.iter().position(|p| p.backend > failed).unwrap_or(route.passed_over.len());
        route.passed_over.insert(at, PassedOver { backend: failed, reason: reason.clone() });
        match transport_for(b) {
            Ok(t) => {
                route.backend = b;
                route.reason = "auto: fastest backend present and allowed".into();
                return Ok(t);
            }
            Err(e) => {
                failed = b;
                reason = e.to_string();
            }
        }
    }
    Err(Error::Unavailable { backend: failed, reason })
}

/// What the routed backend cannot use here, from detection.
fn backend_notes(engine: &Engine, backend: Backend) -> Vec<String> {
    let mut notes = Vec::new();
    if backend == Backend::IoUring {
        if let Some(info) = engine.capabilities().io_uring.available() {
            if let Err(r) = info.registered_buffers.check() {
                notes.push(match crate::detect::memlock_charged().filter(|_| info.opcodes.send_zc) {
                    Some(c) => format!(
                        "io-uring without registered buffers ({r}): plain SEND from the block mapping instead \
                         (SEND_ZC from it would be charged to {c}, and refused with ENOMEM past it)"
                    ),
                    None => {
                        format!("io-uring without registered buffers ({r}): SEND_ZC from the block mapping instead")
                    }
                });
            }
            if !info.opcodes.send_zc {
                notes.push("io-uring: kernel lacks SEND_ZC: plain SEND from the block mapping".into());
            }
        }
    }
    notes
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_small_block_override_takes_whole_numbers_of_bytes_only() {
        assert_eq!(small_max_override(None), Ok(None));
        assert_eq!(small_max_override(Some(" ")), Ok(None));
        assert_eq!(small_max_override(Some("0")), Ok(Some(0)));
        assert_eq!(small_max_override(Some(" 65536\n")), Ok(Some(65536)));
        for bad in ["64KiB", "-1", "16k", "lots", "1 2"] {
            let warning = small_max_override(Some(bad)).expect_err(bad);
            assert!(warning.starts_with(&format!("PARTHENON_TRANSFER_SMALL_MAX={bad:?} ignored")), "{warning}");
            assert!(warning.contains("in bytes, a whole number"), "{warning}");
        }
    }

    /// A routed backend whose transport fails to set up is passed over with its reason, in
    /// speed order, for the next backend the route had not passed over.
    #[test]
    fn a_transport_that_fails_to_set_up_is_passed_over_for_the_next() {
        let mut route = Route {
            job: Job::Transfer,
            backend: Backend::IoUring,
            reason: "auto: fastest backend".into(),
            passed_over: vec![
                PassedOver { backend: Backend::Dpdk, reason: "not built".into() },
                PassedOver { backend: Backend::Sendfile, reason: "forbidden by configuration".into() },
            ],
        };
        let refused = Error::Unavailable { backend: Backend::IoUring, reason: "io_uring_setup: ENOMEM".into() };
        let t = downgrade(&mut route, refused).unwrap();
        assert_eq!(t.backend(), Backend::Splice);
        assert_eq!(route.backend, Backend::Splice);
        assert_eq!(route.reason, "auto: fastest backend present and allowed");
        let passed: Vec<(Backend, &str)> = route.passed_over.iter().map(|p| (p.backend, p.reason.as_str())).collect();
        assert_eq!(
            passed,
            [
                (Backend::Dpdk, "not built"),
                (Backend::IoUring, "io_uring_setup: ENOMEM"),
                (Backend::Sendfile, "forbidden by configuration")
            ]
        );
    }
}
