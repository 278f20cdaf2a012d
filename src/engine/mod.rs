//! The engine: detected capabilities plus a routing table that names, for each job, the backend
//! that serves it and why.
//!
//! # Routing rules
//!
//! - Each job has its backends in preference order, fastest first ([`Backend::for_job`]).
//! - `auto` takes the first backend that is *present* (its probe succeeded and the CPU has the
//!   instructions it needs), *eligible for auto* (e.g. an OpenCL device that is itself a CPU, such
//!   as PoCL, is never picked automatically: the native CPU backend beats it) and not forbidden.
//!   Every faster backend passed over is a *downgrade*: logged at `info` with its reason and listed
//!   in [`Route::passed_over`].
//! - A forced backend ([`EngineBuilder::force`]) is used as is or the build fails with
//!   [`Error::BackendUnavailable`] naming the reason; it never silently falls back.
//! - A forbidden backend ([`EngineBuilder::forbid`]) is never routed to; forbidding the last
//!   backend of a job is [`Error::NoBackend`]. Nor do the jobs' run-time refinements below use
//!   it: with `cpu` forbidden, a GPU verify route sends every batch to the device, as a forced
//!   one does; the CPU then verifies a batch only as the fallback from a device fault (warned and
//!   counted in `sigverify::stats().device_fallbacks`), since a fault is never a verdict.
//!
//! Jobs refine the route at run time (verification crosses over from CPU to GPU above a
//! calibrated batch size, and stays on the CPU while the GPU is being prepared, unless `cpu` is
//! forbidden; transfer picks by block size and peer). Those refinements live with the
//! job and are reported by it, not by [`Report`]: transfer by `Engine::transport()?.report()`
//! (its thresholds and why), the verification crossover in the `info` log and in its cache file
//! (`crate::sigverify::gpu::route`).

mod backend;

pub use backend::{Backend, Job};

use crate::detect::{self, Capabilities, DetectOptions};
use crate::error::Error;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::fmt;
use std::sync::Arc;

/// A backend the router passed over, and why.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PassedOver {
    /// The backend.
    pub backend: Backend,
    /// Why it does not serve the job.
    pub reason: String,
}

/// How one job is served.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Route {
    /// The job.
    pub job: Job,
    /// The backend serving it.
    pub backend: Backend,
    /// Why this backend: "forced", "auto: fastest backend" (nothing faster was passed over), or
    /// "auto: fastest backend present and allowed" (a faster one was absent, forbidden or not
    /// eligible: see [`Route::passed_over`]).
    pub reason: String,
    /// Every backend of the job that was not chosen because it is absent, forbidden or not
    /// eligible for automatic routing, with its reason, fastest first: those faster than
    /// [`Route::backend`] are the downgrades. Empty for a forced route.
    pub passed_over: Vec<PassedOver>,
}

/// How the caller wants a job routed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Selection {
    /// The fastest present backend.
    #[default]
    Auto,
    /// Exactly this backend, or an error.
    Force(Backend),
}

/// Builds an [`Engine`]: detection (or given capabilities) plus per-job overrides.
#[derive(Debug, Clone, Default)]
pub struct EngineBuilder {
    caps: Option<Capabilities>,
    detect: DetectOptions,
    selections: BTreeMap<Job, Selection>,
    forbidden: Vec<Backend>,
    /// The backend [`EngineBuilder::force`] last pinned each job to (a `select` forgets it).
    forced: BTreeMap<Job, Backend>,
    /// A second, different backend forced for a job (first, second): an error at
    /// [`EngineBuilder::build`], unless a `select` for the job replaced both.
    twice_forced: BTreeMap<Job, (Backend, Backend)>,
}

impl EngineBuilder {
    /// Use these capabilities instead of probing (tests, or a cached detection).
    pub fn capabilities(mut self, caps: Capabilities) -> Self {
        self.caps = Some(caps);
        self
    }

    /// Options for detection when no capabilities are given.
    pub fn detect_options(mut self, opts: DetectOptions) -> Self {
        self.detect = opts;
        self
    }

    /// Serve `backend`'s job with exactly `backend`; [`EngineBuilder::build`] fails if it is absent.
    pub fn force(mut self, backend: Backend) -> Self {
        let job = backend.job();
        if let Some(earlier) = self.forced.insert(job, backend) {
            if earlier != backend {
                self.twice_forced.entry(job).or_insert((earlier, backend));
            }
        }
        self.selections.insert(job, Selection::Force(backend));
        self
    }

    /// Set how `job` is routed, replacing whatever an earlier `select` or [`EngineBuilder::force`]
    /// set for it (the last call wins). Only two different [`EngineBuilder::force`] calls for one
    /// job in a row are a conflict ([`Error::ForcedTwice`]): they come from two places that each
    /// believe they pin the job, where `select` states the whole choice.
    pub fn select(mut self, job: Job, selection: Selection) -> Self {
        self.forced.remove(&job);
        self.twice_forced.remove(&job);
        self.selections.insert(job, selection);
        self
    }

    /// Never route to `backend`.
    pub fn forbid(mut self, backend: Backend) -> Self {
        if !self.forbidden.contains(&backend) {
            self.forbidden.push(backend);
        }
        self
    }

    /// Detects (unless capabilities were given) and routes every job.
    pub fn build(self) -> Result<Engine, Error> {
        if let Some((&job, &(first, second))) = self.twice_forced.iter().next() {
            return Err(Error::ForcedTwice { job, first, second });
        }
        let caps = match self.caps {
            Some(c) => c,
            None => detect::detect_with(&self.detect),
        };
        let mut routes = BTreeMap::new();
        for job in Job::ALL {
            let sel = self.selections.get(&job).copied().unwrap_or_default();
            let route = route(&caps, job, sel, &self.forbidden)?;
            for p in &route.passed_over {
                if p.backend < route.backend {
                    tracing::info!(job = %job, backend = %p.backend, reason = %p.reason, chosen = %route.backend, "downgrade");
                }
            }
            tracing::debug!(job = %job, backend = %route.backend, reason = %route.reason, "route");
            routes.insert(job, route);
        }
        Ok(Engine { inner: Arc::new(Inner { caps, routes, forbidden: self.forbidden }) })
    }
}

/// Computes the route of one job. Pure: the same inputs give the same route.
pub fn route(caps: &Capabilities, job: Job, sel: Selection, forbidden: &[Backend]) -> Result<Route, Error> {
    match sel {
        Selection::Force(b) => {
            if b.job() != job {
                return Err(Error::WrongJob { backend: b, job, serves: b.job() });
            }
            if forbidden.contains(&b) {
                return Err(Error::ConflictingOverride { backend: b });
            }
            b.presence(caps).map_err(|reason| Error::BackendUnavailable { job, backend: b, reason })?;
            Ok(Route { job, backend: b, reason: "forced".into(), passed_over: Vec::new() })
        }
        Selection::Auto => {
            let mut passed_over = Vec::new();
            let mut chosen = None;
            for b in Backend::for_job(job) {
                let why_not = if forbidden.contains(&b) {
                    Some("forbidden by configuration".to_string())
                } else {
                    b.presence(caps).and_then(|()| b.auto_eligibility(caps)).err()
                };
                match (why_not, chosen) {
                    (None, None) => chosen = Some(b),
                    (Some(reason), _) => passed_over.push(PassedOver { backend: b, reason }),
                    (None, Some(_)) => {}
                }
            }
            let backend = chosen.ok_or_else(|| Error::NoBackend {
                job,
                reasons: passed_over
                    .iter()
                    .map(|p| format!("{}: {}", p.backend, p.reason))
                    .collect::<Vec<_>>()
                    .join("; "),
            })?;
            let reason = if passed_over.iter().any(|p| p.backend < backend) {
                "auto: fastest backend present and allowed".to_string()
            } else {
                "auto: fastest backend".to_string()
            };
            Ok(Route { job, backend, reason, passed_over })
        }
    }
}

/// What [`Engine::report`] returns: capabilities and the route of each job.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Report {
    /// What detection found.
    pub capabilities: Capabilities,
    /// One route per job, in [`Job::ALL`] order.
    pub routes: Vec<Route>,
}

impl fmt::Display for Report {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for r in &self.routes {
            writeln!(f, "{:<9} -> {:<12} ({})", r.job.name(), r.backend.name(), r.reason)?;
            for p in &r.passed_over {
                writeln!(f, "{:<9}    not {:<12} {}", "", p.backend.name(), p.reason)?;
            }
        }
        Ok(())
    }
}

#[derive(Debug)]
struct Inner {
    caps: Capabilities,
    routes: BTreeMap<Job, Route>,
    forbidden: Vec<Backend>,
}

/// The engine: capabilities and routes. Cheap to clone (shared inside).
#[derive(Debug, Clone)]
pub struct Engine {
    inner: Arc<Inner>,
}

impl Engine {
    /// A builder with automatic routing for every job.
    pub fn builder() -> EngineBuilder {
        EngineBuilder::default()
    }

    /// Detects and routes everything automatically.
    pub fn new() -> Result<Engine, Error> {
        Engine::builder().build()
    }

    /// What detection found.
    pub fn capabilities(&self) -> &Capabilities {
        &self.inner.caps
    }

    /// How `job` is served.
    pub fn route(&self, job: Job) -> &Route {
        // Every job is routed in `build`, so the map is total.
        &self.inner.routes[&job]
    }

    /// The backend serving `job`.
    pub fn backend(&self, job: Job) -> Backend {
        self.route(job).backend
    }

    /// Whether `backend` was forbidden by the builder.
    pub fn is_forbidden(&self, backend: Backend) -> bool {
        self.inner.forbidden.contains(&backend)
    }

    /// Which backend serves each job and why, with the capabilities behind it.
    pub fn report(&self) -> Report {
        Report {
            capabilities: self.inner.caps.clone(),
            routes: Job::ALL.iter().map(|j| self.route(*j).clone()).collect(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::detect::{CpuFeatures, CpuInfo, Probe};

    pub(crate) fn bare_caps(features: CpuFeatures) -> Capabilities {
        Capabilities {
            schema: detect::SCHEMA.into(),
            cpu: CpuInfo { arch: "x86_64".into(), model: None, cores_usable: 2, features },
            cuda: Probe::unavailable("built without feature `cuda`"),
            opencl: Probe::unavailable("built without feature `opencl`"),
            io_uring: Probe::refused("io_uring_setup", libc::EPERM),
            sendfile: Probe::Available(detect::SpliceInfo { probe_bytes: 1 }),
            splice: Probe::Available(detect::SpliceInfo { probe_bytes: 1 }),
            dpdk: Probe::unavailable("built without feature `dpdk`"),
            probe_micros: 0,
        }
    }

    fn full_cpu() -> CpuFeatures {
        CpuFeatures {
            aes: true,
            pclmulqdq: true,
            ssse3: true,
            sse4_1: true,
            avx: true,
            vaes: true,
            vpclmulqdq: true,
            avx2: true,
            avx512f: true,
            avx512vl: true,
            avx512bw: true,
            avx512ifma: true,
            sha: true,
            bmi2: true,
            adx: true,
        }
    }

    #[test]
    fn auto_takes_fastest_present() {
        let e = Engine::builder().capabilities(bare_caps(full_cpu())).build().unwrap();
        assert_eq!(e.backend(Job::Cipher), Backend::VaesAvx512);
        assert_eq!(e.backend(Job::Verify), Backend::Cpu);
        assert_eq!(e.backend(Job::Transfer), Backend::Sendfile);
        let t = e.route(Job::Transfer);
        let io = t.passed_over.iter().find(|p| p.backend == Backend::IoUring).unwrap();
        assert!(io.reason.contains("EPERM"), "{}", io.reason);
    }

    #[test]
    fn forbidding_moves_the_route() {
        let caps = bare_caps(full_cpu());
        let e = Engine::builder().capabilities(caps.clone()).forbid(Backend::VaesAvx512).build().unwrap();
        assert_eq!(e.backend(Job::Cipher), Backend::VaesAvx2);
        let e =
            Engine::builder().capabilities(caps).forbid(Backend::VaesAvx512).forbid(Backend::VaesAvx2).build().unwrap();
        assert_eq!(e.backend(Job::Cipher), Backend::AesNi);
        assert!(e.route(Job::Cipher).passed_over.iter().all(|p| p.reason.contains("forbidden")));
    }

    #[test]
    fn forcing_absent_backend_names_reason() {
        let err = Engine::builder().capabilities(bare_caps(full_cpu())).force(Backend::Cuda).build().unwrap_err();
        let msg = err.to_string();
        assert!(msg.contains("cuda") && msg.contains("built without feature `cuda`"), "{msg}");

        let no_aes = CpuFeatures { aes: false, ..CpuFeatures::default() };
        let err = Engine::builder().capabilities(bare_caps(no_aes)).force(Backend::AesNi).build().unwrap_err();
        assert!(err.to_string().contains("CPU lacks aes, pclmulqdq, ssse3, sse4.1"), "{err}");
    }

    /// Every feature a cipher kernel is compiled for is one `presence` asks for: with any one
    /// of them missing, the backend is absent and the reason names the feature.
    #[test]
    #[cfg(target_arch = "x86_64")]
    fn cipher_presence_asks_for_every_feature_of_the_kernel() {
        let full = full_cpu();
        for backend in [Backend::VaesAvx512, Backend::VaesAvx2, Backend::AesNi] {
            assert_eq!(backend.presence(&bare_caps(full)), Ok(()), "{backend}");
            let list = crate::cipher::kernel_features(backend).expect("x86-64");
            for name in list.split(',') {
                let mut f = full;
                let field = match name {
                    "aes" => &mut f.aes,
                    "pclmulqdq" => &mut f.pclmulqdq,
                    "ssse3" => &mut f.ssse3,
                    "sse4.1" => &mut f.sse4_1,
                    "avx" => &mut f.avx,
                    "avx2" => &mut f.avx2,
                    "vaes" => &mut f.vaes,
                    "vpclmulqdq" => &mut f.vpclmulqdq,
                    "avx512f" => &mut f.avx512f,
                    "avx512vl" => &mut f.avx512vl,
                    "avx512bw" => &mut f.avx512bw,
                    other => panic!("{backend} needs `{other}`, which CpuFeatures does not report"),
                };
                *field = false;
                let err = backend.presence(&bare_caps(f)).unwrap_err();
                assert!(err.contains(name), "{backend} without {name}: {err}");
            }
        }
    }

    #[test]
    fn portable_serves_cpus_without_aes() {
        let e = Engine::builder().capabilities(bare_caps(CpuFeatures::default())).build().unwrap();
        assert_eq!(e.backend(Job::Cipher), Backend::Portable);
    }

    #[test]
    fn forbidding_everything_is_an_error() {
        let mut b = Engine::builder().capabilities(bare_caps(CpuFeatures::default()));
        for be in Backend::for_job(Job::Verify) {
            b = b.forbid(be);
        }
        assert!(matches!(b.build(), Err(Error::NoBackend { job: Job::Verify, .. })));
    }

    #[test]
    fn force_and_forbid_conflict() {
        let r = Engine::builder().capabilities(bare_caps(full_cpu())).force(Backend::Cpu).forbid(Backend::Cpu).build();
        assert!(matches!(r, Err(Error::ConflictingOverride { backend: Backend::Cpu })));
        let two =
            Engine::builder().capabilities(bare_caps(full_cpu())).force(Backend::Copy).force(Backend::Mmap).build();
        assert!(
            matches!(two, Err(Error::ForcedTwice { job: Job::Transfer, first: Backend::Copy, second: Backend::Mmap })),
            "{two:?}"
        );
        let same =
            Engine::builder().capabilities(bare_caps(full_cpu())).force(Backend::Copy).force(Backend::Copy).build();
        assert!(same.is_ok(), "the same backend forced twice is one choice");
        // `select` states the whole choice for its job: it replaces earlier forces, conflicting
        // ones included, and a force after it is the first force again.
        let caps = || bare_caps(full_cpu());
        let replaced = Engine::builder()
            .capabilities(caps())
            .force(Backend::Copy)
            .force(Backend::Mmap)
            .select(Job::Transfer, Selection::Force(Backend::Copy))
            .build()
            .expect("select replaces both forces");
        assert_eq!(replaced.backend(Job::Transfer), Backend::Copy);
        let after = Engine::builder()
            .capabilities(caps())
            .select(Job::Transfer, Selection::Force(Backend::Copy))
            .force(Backend::Mmap)
            .build()
            .expect("the force after a select is the last call");
        assert_eq!(after.backend(Job::Transfer), Backend::Mmap);
    }

    #[test]
    fn names_round_trip() {
        for b in Backend::ALL {
            assert_eq!(b.name().parse::<Backend>().unwrap(), b);
            let j = serde_json::to_string(&b).unwrap();
            assert_eq!(j, format!("\"{}\"", b.name()));
        }
        for j in Job::ALL {
            assert_eq!(j.name().parse::<Job>().unwrap(), j);
        }
        assert!("warp-drive".parse::<Backend>().is_err());
        // Case and `_` for `-` do not matter; an error names what was given, as given.
        assert_eq!("AES_NI".parse::<Backend>().unwrap(), Backend::AesNi);
        assert_eq!("Cipher".parse::<Job>().unwrap(), Job::Cipher);
        let e = "AES_NI2".parse::<Backend>().unwrap_err();
        assert!(matches!(&e, Error::UnknownBackend { name } if name == "AES_NI2"), "{e}");
    }
}
