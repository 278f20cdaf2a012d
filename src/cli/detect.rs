//! `parthenon detect [--json]`: what the machine has and how each job is routed.
//!
//! `--json` prints the [`parthenon::Report`]: `{"capabilities": <Capabilities>, "routes": [..]}`,
//! schema documented in `docs/detect.md`.

use super::{Failure, RoutingArgs};
use parthenon::detect::{human_bytes, Probe};

#[derive(Debug, clap::Args)]
pub struct Args {
    /// Print JSON (stable schema, see docs/detect.md) instead of a table.
    #[arg(long)]
    json: bool,
    #[command(flatten)]
    routing: RoutingArgs,
}

pub fn run(args: Args) -> Result<(), Failure> {
    let engine = args.routing.builder()?.build()?;
    let report = engine.report();
    if args.json {
        let s = serde_json::to_string_pretty(&report).map_err(|e| Failure::Runtime(e.to_string()))?;
        outln!("{s}")?;
        return Ok(());
    }
    let c = &report.capabilities;
    outln!(
        "CPU       {} ({}), {} usable core(s)",
        c.cpu.model.as_deref().unwrap_or("unknown model"),
        c.cpu.arch,
        c.cpu.cores_usable
    )?;
    outln!("          {}", c.cpu.features.names().join(" "))?;
    line("CUDA", &c.cuda, |i| {
        i.devices
            .iter()
            .map(|d| {
                format!(
                    "#{} {} sm_{}{} {} SMs {}",
                    d.ordinal,
                    d.name,
                    d.compute_capability.0,
                    d.compute_capability.1,
                    d.sm_count,
                    human_bytes(d.memory_bytes)
                )
            })
            .collect::<Vec<_>>()
            .join("; ")
            + &format!(" (driver {}, NVRTC {}.{})", i.driver_version, i.nvrtc_version.0, i.nvrtc_version.1)
    })?;
    line("OpenCL", &c.opencl, |i| {
        i.platforms
            .iter()
            .flat_map(|p| {
                p.devices.iter().map(move |d| {
                    format!(
                        "{}: {} [{}] {} CUs {}",
                        p.name,
                        d.name,
                        d.kind,
                        d.compute_units,
                        human_bytes(d.global_memory_bytes)
                    )
                })
            })
            .collect::<Vec<_>>()
            .join("; ")
    })?;
    line("io_uring", &c.io_uring, |i| {
        let o = i.opcodes;
        let ops: Vec<&str> = [
            ("SEND_ZC", o.send_zc),
            ("SPLICE", o.splice),
            ("SENDMSG", o.sendmsg),
            ("READ_FIXED", o.read_fixed),
            ("WRITE_FIXED", o.write_fixed),
            ("PROVIDE_BUFFERS", o.provide_buffers),
        ]
        .iter()
        .filter(|(_, on)| *on)
        .map(|(n, _)| *n)
        .collect();
        let memlock = i.memlock_limit_bytes.map(human_bytes).unwrap_or_else(|| "unlimited".into());
        let reg = match &i.registered_buffers {
            Probe::Available(r) => format!("registered buffers {} ok", human_bytes(r.bytes)),
            Probe::Unavailable { reason, .. } => format!("no registered buffers: {reason}"),
        };
        format!("{}; RLIMIT_MEMLOCK {memlock}; {reg}", ops.join(" "))
    })?;
    line("sendfile", &c.sendfile, |_| "works".into())?;
    line("splice", &c.splice, |_| "works".into())?;
    line("DPDK", &c.dpdk, |i| {
        let ports: Vec<String> = i
            .ports
            .iter()
            .map(|p| format!("port {} {} ({}) {} mtu {}", p.id, p.name, p.driver, p.mac, p.mtu))
            .collect();
        format!("{} [EAL: {}]", ports.join("; "), i.eal_args.join(" "))
    })?;
    outln!("          (probed in {:.1} ms)", c.probe_micros as f64 / 1000.0)?;
    outln!()?;
    out!("{report}")?;
    Ok(())
}

fn line<T>(name: &str, p: &Probe<T>, show: impl Fn(&T) -> String) -> Result<(), Failure> {
    match p {
        Probe::Available(t) => outln!("{name:<9} yes  {}", show(t)),
        Probe::Unavailable { reason, .. } => outln!("{name:<9} no   {reason}"),
    }
}
