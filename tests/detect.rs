//! The `detect` command end to end: the JSON schema round-trips, refusals surface as
//! `Unavailable` with their errno, overrides route or fail as documented, and installed backends
//! (PoCL under CI) are found.

mod common;

use parthenon::detect::Probe;
#[cfg(any(feature = "io-uring", feature = "opencl"))]
use parthenon::Backend;
use parthenon::{Job, Report};
#[cfg(feature = "io-uring")]
use std::os::unix::process::CommandExt;
use std::process::{Command, Output};

fn parthenon() -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_parthenon"));
    c.env_remove("RUST_LOG");
    c
}

fn report(mut cmd: Command) -> Report {
    let out = cmd.output().expect("run parthenon");
    assert!(out.status.success(), "parthenon failed: {}", String::from_utf8_lossy(&out.stderr));
    serde_json::from_slice(&out.stdout).expect("detect --json prints a Report")
}

fn detect_json() -> Command {
    let mut c = parthenon();
    c.args(["detect", "--json", "--no-dpdk"]);
    c
}

#[test]
fn json_round_trips() {
    let out = detect_json().output().unwrap();
    let r: Report = serde_json::from_slice(&out.stdout).unwrap();
    let again = serde_json::to_vec(&r).unwrap();
    let back: Report = serde_json::from_slice(&again).unwrap();
    assert_eq!(r, back);
    assert_eq!(r.capabilities.schema, parthenon::detect::SCHEMA);
    assert_eq!(r.routes.len(), 3);
}

#[cfg(feature = "io-uring")]
#[test]
fn io_uring_refused_by_seccomp_is_unavailable_with_errno() {
    let mut cmd = detect_json();
    // SAFETY: the closure runs in the forked child before exec and only calls prctl.
    unsafe { cmd.pre_exec(common::seccomp::deny_io_uring_setup) };
    let r = report(cmd);
    match &r.capabilities.io_uring {
        Probe::Unavailable { reason, errno } => {
            assert_eq!(*errno, Some(libc::EPERM), "{reason}");
            assert!(reason.contains("io_uring_setup") && reason.contains("EPERM"), "{reason}");
        }
        Probe::Available(_) => panic!("io_uring must be unavailable under the seccomp filter"),
    }
    let t = r.routes.iter().find(|r| r.job == Job::Transfer).unwrap();
    assert_ne!(t.backend, Backend::IoUring);
    let why = t.passed_over.iter().find(|p| p.backend == Backend::IoUring).expect("io-uring listed as passed over");
    assert!(why.reason.contains("EPERM"), "{}", why.reason);
}

#[test]
#[cfg(feature = "io-uring")]
fn low_memlock_disables_registered_buffers_with_reason() {
    let mut cmd = detect_json();
    // SAFETY: the closure runs in the forked child before exec and only calls setrlimit.
    unsafe { cmd.pre_exec(|| common::seccomp::limit_memlock(64 << 10)) };
    let r = report(cmd);
    if let Probe::Available(info) = &r.capabilities.io_uring {
        assert_eq!(info.memlock_limit_bytes, Some(64 << 10));
        match &info.registered_buffers {
            Probe::Unavailable { reason, .. } => assert_eq!(reason, "RLIMIT_MEMLOCK 64 KiB < 8 MiB needed"),
            Probe::Available(_) => panic!("registered buffers must be refused at 64 KiB"),
        }
    } else {
        eprintln!("io_uring unavailable on this machine; memlock check not applicable");
    }
}

#[test]
fn forcing_an_absent_backend_fails_with_its_reason() {
    // With the DPDK probe skipped, `dpdk` is absent on every machine.
    let out: Output = parthenon().args(["detect", "--no-dpdk", "--force", "dpdk"]).output().unwrap();
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("`dpdk`") && err.contains("DPDK probe skipped by configuration"), "{err}");

    // CUDA, where absent, fails with the probe's own reason.
    let r = report(detect_json());
    if let Err(reason) = r.capabilities.cuda.check() {
        let out = parthenon().args(["detect", "--no-dpdk", "--force", "cuda"]).output().unwrap();
        assert_eq!(out.status.code(), Some(2));
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(err.contains("`cuda`") && err.contains(reason), "error must carry {reason:?}: {err}");
    }
}

#[test]
fn forbidding_moves_the_route() {
    let base = report(detect_json());
    let first = base.routes.iter().find(|r| r.job == Job::Cipher).unwrap().backend;
    let mut cmd = detect_json();
    cmd.args(["--forbid", first.name()]);
    let moved = report(cmd);
    let now = moved.routes.iter().find(|r| r.job == Job::Cipher).unwrap();
    assert_ne!(now.backend, first);
    assert!(now.passed_over.iter().any(|p| p.backend == first && p.reason.contains("forbidden")));
}

#[test]
fn unknown_backend_is_a_usage_error() {
    let out = parthenon().args(["detect", "--no-dpdk", "--force", "warp-drive"]).output().unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("unknown backend `warp-drive`"));
}

#[test]
fn a_closed_stdout_is_a_runtime_error_not_a_panic() {
    // A pipe whose reading end is closed before the child writes: its first write gets EPIPE
    // (SIGPIPE is ignored in Rust programs), as with `parthenon detect | true`.
    let (reader, writer) = std::io::pipe().expect("pipe");
    drop(reader);
    for args in [&["detect", "--no-dpdk"][..], &["detect", "--json", "--no-dpdk"][..]] {
        let out = parthenon().args(args).stdout(writer.try_clone().expect("dup")).output().unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(1), "{args:?}: {stderr}");
        assert!(stderr.contains("writing to stdout") && !stderr.contains("panicked"), "{args:?}: {stderr}");
    }
}

#[test]
fn cuda_is_found_or_says_why() {
    let r = report(detect_json());
    match &r.capabilities.cuda {
        Probe::Available(info) => {
            assert!(!info.devices.is_empty());
            assert!(info.devices.iter().all(|d| d.sm_count > 0 && d.memory_bytes > 0));
        }
        Probe::Unavailable { reason, .. } => {
            if cfg!(feature = "cuda") {
                // One of the probe's own reasons (src/detect/cuda.rs): the feature reached it.
                assert_ne!(reason, "built without feature `cuda`", "the `cuda` feature did not reach the probe");
                let probe_reasons = [
                    "libcuda.so.1 not found",
                    "cuInit failed",
                    "cuDriverGetVersion failed",
                    "cuDeviceGet",
                    "cuDeviceTotalMem",
                    "CUDA driver loaded but reports no devices",
                    "cannot create a CUDA context",
                    "nvrtcVersion failed",
                    "the CUDA libraries failed inside cudarc",
                ];
                assert!(
                    probe_reasons.iter().any(|r| reason.starts_with(r))
                        || reason.contains(" CUDA device(s) found, but libnvrtc not found"),
                    "not a reason the CUDA probe gives: {reason}"
                );
            } else {
                assert_eq!(reason, "built without feature `cuda`");
            }
        }
    }
}

/// With PoCL installed (CI installs pocl-opencl-icd), detection must list its device.
#[test]
#[cfg(feature = "opencl")]
fn pocl_device_is_listed_when_installed() {
    let installed = std::path::Path::new("/etc/OpenCL/vendors/pocl.icd").exists();
    if !installed {
        assert!(std::env::var("CI").as_deref() != Ok("true"), "CI must install pocl-opencl-icd");
        eprintln!("PoCL not installed; skipping");
        return;
    }
    let r = report(detect_json());
    let info = r.capabilities.opencl.check().expect("OpenCL available with PoCL installed");
    let pocl = info.platforms.iter().find(|p| p.name.contains("Portable Computing Language")).expect("PoCL platform");
    assert!(!pocl.devices.is_empty());
    assert!(pocl.devices.iter().all(|d| d.kind == "cpu" && d.compute_units > 0));
    // auto never routes verification to a CPU OpenCL device; forcing it works.
    let v = r.routes.iter().find(|r| r.job == Job::Verify).unwrap();
    if !r.capabilities.cuda.is_available() {
        assert_eq!(v.backend, Backend::Cpu);
    }
    let mut cmd = detect_json();
    cmd.args(["--force", "opencl"]);
    let forced = report(cmd);
    assert_eq!(forced.routes.iter().find(|r| r.job == Job::Verify).unwrap().backend, Backend::Opencl);
}

/// With `dpdk`, the EAL starts on the default arguments and finds the ring port.
#[test]
#[cfg(feature = "dpdk")]
fn dpdk_eal_starts_with_ring_port() {
    let r = report({
        let mut c = parthenon();
        c.args(["detect", "--json"]);
        c
    });
    let info = r.capabilities.dpdk.check().expect("EAL starts with the default arguments");
    assert!(info.ports.iter().any(|p| p.name == "net_ring0"), "{info:?}");
}

/// The documented schema (`docs/detect.md`, `parthenon.capabilities/1`), checked on the JSON text
/// itself rather than through the crate's own serde types: renaming a field, changing the
/// `status` tag or a value's type breaks this test even though a serde round trip would pass.
#[test]
fn json_matches_the_documented_schema() {
    use serde_json::Value;
    let out = detect_json().output().unwrap();
    assert!(out.status.success());
    let v: Value = serde_json::from_slice(&out.stdout).unwrap();

    fn keys(v: &Value, what: &str, want: &[&str]) {
        let obj = v.as_object().unwrap_or_else(|| panic!("{what} is not an object: {v}"));
        let mut got: Vec<&str> = obj.keys().map(String::as_str).collect();
        got.sort_unstable();
        let mut want = want.to_vec();
        want.sort_unstable();
        assert_eq!(got, want, "{what}: keys");
    }
    fn is<'a>(v: &'a Value, what: &str, ok: impl Fn(&Value) -> bool) -> &'a Value {
        assert!(ok(v), "{what}: unexpected type or value: {v}");
        v
    }
    let int = |v: &Value| v.is_u64() || v.is_i64();
    let string = |v: &Value| v.is_string();
    let boolean = |v: &Value| v.is_boolean();
    // Probe<T>: "available" with T's fields, or "unavailable" with a reason and maybe an errno.
    let probe = |v: &Value, what: &str, fields: &[&str], check: &dyn Fn(&Value)| match v["status"].as_str() {
        Some("available") => {
            let mut want = vec!["status"];
            want.extend_from_slice(fields);
            keys(v, what, &want);
            check(v);
        }
        Some("unavailable") => {
            is(&v["reason"], what, string);
            if v.get("errno").is_some() {
                keys(v, what, &["status", "reason", "errno"]);
                is(&v["errno"], what, int);
            } else {
                keys(v, what, &["status", "reason"]);
            }
        }
        other => panic!("{what}: status {other:?}"),
    };

    keys(&v, "report", &["capabilities", "routes"]);
    let c = &v["capabilities"];
    keys(
        c,
        "capabilities",
        &["schema", "cpu", "cuda", "opencl", "io_uring", "sendfile", "splice", "dpdk", "probe_micros"],
    );
    assert_eq!(c["schema"], "parthenon.capabilities/1");
    is(&c["probe_micros"], "probe_micros", int);
    keys(&c["cpu"], "cpu", &["arch", "model", "cores_usable", "features"]);
    is(&c["cpu"]["arch"], "cpu.arch", string);
    is(&c["cpu"]["model"], "cpu.model", |v| v.is_string() || v.is_null());
    is(&c["cpu"]["cores_usable"], "cpu.cores_usable", int);
    let feats = [
        "aes",
        "pclmulqdq",
        "ssse3",
        "sse4_1",
        "avx",
        "vaes",
        "vpclmulqdq",
        "avx2",
        "avx512f",
        "avx512vl",
        "avx512bw",
        "avx512ifma",
        "sha",
        "bmi2",
        "adx",
    ];
    keys(&c["cpu"]["features"], "cpu.features", &feats);
    for f in feats {
        is(&c["cpu"]["features"][f], f, boolean);
    }
    probe(&c["cuda"], "cuda", &["driver_version", "nvrtc_version", "devices"], &|v| {
        is(&v["driver_version"], "cuda.driver_version", int);
        for d in v["devices"].as_array().unwrap() {
            keys(d, "cuda device", &["ordinal", "name", "compute_capability", "sm_count", "memory_bytes"]);
        }
    });
    probe(&c["opencl"], "opencl", &["platforms"], &|v| {
        for p in v["platforms"].as_array().unwrap() {
            keys(p, "opencl platform", &["index", "name", "vendor", "version", "devices"]);
            for d in p["devices"].as_array().unwrap() {
                keys(d, "opencl device", &["index", "name", "kind", "compute_units", "global_memory_bytes", "version"]);
                is(&d["kind"], "opencl kind", |k| {
                    ["gpu", "cpu", "accelerator", "other"].contains(&k.as_str().unwrap_or(""))
                });
            }
        }
    });
    probe(&c["io_uring"], "io_uring", &["opcodes", "memlock_limit_bytes", "registered_buffers"], &|v| {
        let ops = ["send_zc", "splice", "sendmsg", "read_fixed", "write_fixed", "provide_buffers"];
        keys(&v["opcodes"], "io_uring.opcodes", &ops);
        for o in ops {
            is(&v["opcodes"][o], o, boolean);
        }
        is(&v["memlock_limit_bytes"], "memlock_limit_bytes", |m| m.is_u64() || m.is_null());
        probe(&v["registered_buffers"], "registered_buffers", &["bytes"], &|r| {
            is(&r["bytes"], "registered_buffers.bytes", int);
        });
    });
    for name in ["sendfile", "splice"] {
        probe(&c[name], name, &["probe_bytes"], &|v| {
            is(&v["probe_bytes"], "probe_bytes", int);
        });
    }
    // `--no-dpdk`: unavailable, with its reason.
    probe(&c["dpdk"], "dpdk", &["eal_args", "ports"], &|_| {});

    let routes = v["routes"].as_array().unwrap();
    let jobs: Vec<&str> = routes.iter().map(|r| r["job"].as_str().unwrap()).collect();
    assert_eq!(jobs, ["cipher", "verify", "transfer"]);
    let backends = [
        "vaes-avx512",
        "vaes-avx2",
        "aes-ni",
        "portable",
        "cuda",
        "opencl",
        "cpu",
        "dpdk",
        "io-uring",
        "sendfile",
        "splice",
        "mmap",
        "copy",
    ];
    for r in routes {
        keys(r, "route", &["job", "backend", "reason", "passed_over"]);
        is(&r["backend"], "route.backend", |b| backends.contains(&b.as_str().unwrap_or("")));
        is(&r["reason"], "route.reason", string);
        for p in r["passed_over"].as_array().unwrap() {
            keys(p, "passed_over", &["backend", "reason"]);
            is(&p["backend"], "passed_over.backend", |b| backends.contains(&b.as_str().unwrap_or("")));
        }
    }
}
