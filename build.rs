//! Build script: embeds every file under `kernels/` (a generated table of `include_str!`s, so a
//! binary never reads a kernel file at run time) and, with feature `dpdk`, generates DPDK
//! bindings with bindgen against `pkg-config libdpdk` and compiles the C shims with cc.

use std::path::{Path, PathBuf};

fn main() {
    let out = PathBuf::from(std::env::var("OUT_DIR").expect("cargo sets OUT_DIR"));
    let root = PathBuf::from(std::env::var("CARGO_MANIFEST_DIR").expect("cargo sets CARGO_MANIFEST_DIR"));
    embed_kernels(&root.join("kernels"), &out.join("kernels.rs"));
    println!("cargo:rerun-if-changed=build.rs");
    #[cfg(feature = "dpdk")]
    dpdk::build(&root, &out);
}

/// Writes `kernels.rs`: `pub static SOURCES: &[(&str, &str)]`, (path relative to `kernels/`,
/// contents) for every `.h`, `.cl` and `.cu` file, sorted by path.
fn embed_kernels(dir: &Path, dest: &Path) {
    println!("cargo:rerun-if-changed={}", dir.display());
    let mut files = Vec::new();
    collect(dir, dir, &mut files);
    files.sort();
    let mut src = String::from(
        "/// Every kernel source file, by path relative to `kernels/`.\npub static SOURCES: &[(&str, &str)] = &[\n",
    );
    for rel in &files {
        let abs = dir.join(rel);
        println!("cargo:rerun-if-changed={}", abs.display());
        src.push_str(&format!("    ({rel:?}, include_str!({:?})),\n", abs.display().to_string()));
    }
    src.push_str("];\n");
    std::fs::write(dest, src).expect("write kernels.rs");
}

fn collect(base: &Path, dir: &Path, out: &mut Vec<String>) {
    let Ok(entries) = std::fs::read_dir(dir) else { return };
    for e in entries.flatten() {
        let p = e.path();
        if p.is_dir() {
            println!("cargo:rerun-if-changed={}", p.display());
            collect(base, &p, out);
        } else if matches!(p.extension().and_then(|x| x.to_str()), Some("h" | "cl" | "cu")) {
            let rel = p.strip_prefix(base).expect("under base").to_string_lossy().replace('\\', "/");
            out.push(rel);
        }
    }
}

#[cfg(feature = "dpdk")]
mod dpdk {
    use std::path::Path;

    pub fn build(root: &Path, out: &Path) {
        let ffi = root.join("ffi/dpdk");
        println!("cargo:rerun-if-changed={}", ffi.display());
        let lib = pkg_config::Config::new()
            .atleast_version("21.11")
            .probe("libdpdk")
            .unwrap_or_else(|e| panic!("feature `dpdk` needs libdpdk-dev and pkg-config: {e}"));
        let mut clang_args: Vec<String> = lib.include_paths.iter().map(|p| format!("-I{}", p.display())).collect();
        clang_args.push(format!("-I{}", ffi.display()));
        clang_args.push("-include".into());
        clang_args.push("rte_config.h".into());
        clang_args.push("-march=corei7".into());
        let static_fns = out.join("dpdk_static_fns");
        let bindings = bindgen::Builder::default()
            .header(ffi.join("wrapper.h").display().to_string())
            .clang_args(&clang_args)
            .allowlist_function("rte_.*|parthenon_.*")
            .allowlist_type("rte_.*")
            .allowlist_var("RTE_.*")
            .derive_default(true)
            .derive_debug(false)
            .blocklist_function("rte_flow_.*")
            .blocklist_type("rte_flow_.*")
            .layout_tests(false)
            .generate_comments(false)
            .wrap_static_fns(true)
            .wrap_static_fns_path(&static_fns)
            // A rerun-if-changed for every header read (the DPDK headers included), so an
            // upgraded libdpdk-dev regenerates the bindings and recompiles the shim.
            .parse_callbacks(Box::new(bindgen::CargoCallbacks::new()))
            .generate()
            .unwrap_or_else(|e| panic!("bindgen over ffi/dpdk/wrapper.h failed: {e}"));
        bindings.write_to_file(out.join("dpdk_bindings.rs")).expect("write DPDK bindings");

        let mut cc = cc::Build::new();
        cc.file(ffi.join("shim.c"))
            .file(static_fns.with_extension("c"))
            .include(&ffi)
            .include(root)
            .flag("-include")
            .flag("rte_config.h")
            .flag("-march=corei7")
            .flag_if_supported("-Wno-unused-parameter")
            .flag_if_supported("-Wno-deprecated-declarations")
            .flag_if_supported("-Wno-duplicate-decl-specifier");
        for p in &lib.include_paths {
            cc.include(p);
        }
        cc.compile("parthenon_dpdk_shim");
        // The shim references DPDK symbols; link DPDK after it.
        for l in &lib.libs {
            println!("cargo:rustc-link-lib={l}");
        }
    }
}
