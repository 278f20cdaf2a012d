//! The CUDA kernels build with NVRTC, the compiler the CUDA backend runs at start-up: machine code
//! (CUBIN) for Hopper (`sm_90`, H100/H200), the backend's first choice there, and PTX, its
//! fallback, for Hopper and Ampere (`compute_80`). One CUBIN only: ptxas takes about half a minute
//! per architecture on these kernels. NVRTC needs no GPU and no driver, only `libnvrtc`, so this runs on
//! machines without a GPU: `.ci/run` installs NVIDIA's `nvidia-cuda-nvrtc-cu12` wheel for it. A
//! kernel source that NVRTC rejects, or compiles with a warning, fails here, not in the first
//! minutes of a GPU session.
//!
//! Skipped (with a message) when `libnvrtc` cannot be loaded, unless `PARTHENON_REQUIRE_NVRTC=1`
//! (set by `.ci/run` once it has installed NVRTC).
#![cfg(feature = "cuda")]

use parthenon::sigverify::gpu::cuda::compile_kernels;
use parthenon::sigverify::gpu::nvrtc::Output;
use parthenon::sigverify::gpu::GpuError;

/// The kernels the host launches, by name.
const ENTRIES: [&str; 4] = ["sig_challenge", "sig_verify", "base_table_layout", "base_tables"];

fn contains(haystack: &[u8], needle: &str) -> bool {
    haystack.windows(needle.len()).any(|w| w == needle.as_bytes())
}

#[test]
fn kernels_build_as_cubin_and_ptx_for_hopper_and_ampere() {
    for (capability, output) in [((9, 0), Output::Cubin), ((9, 0), Output::Ptx), ((8, 0), Output::Ptx)] {
        let t0 = std::time::Instant::now();
        let compiled = match compile_kernels(capability, output, &["--ptxas-options=-v"]) {
            Ok(c) => c,
            Err(GpuError::NoDevice(why)) if std::env::var("PARTHENON_REQUIRE_NVRTC").as_deref() != Ok("1") => {
                println!("skip: {why}");
                return;
            }
            Err(e) => panic!("{output} for {capability:?}: {e}"),
        };
        let image = &compiled.image;
        match output {
            Output::Cubin => assert!(image.starts_with(b"\x7fELF"), "a CUBIN is an ELF image"),
            Output::Ptx => {
                let target = format!(".target sm_{}{}", capability.0, capability.1);
                assert!(contains(image, &target), "PTX lacks `{target}`");
            }
        }
        for entry in ENTRIES {
            assert!(contains(image, entry), "{output} for {capability:?} lacks kernel `{entry}`");
        }
        println!("{output} for {capability:?}: {} bytes in {:.1} s", image.len(), t0.elapsed().as_secs_f64());
        println!("{}", compiled.log);
        assert!(!compiled.log.contains("warning"), "NVRTC warned on the kernels");
    }
}
