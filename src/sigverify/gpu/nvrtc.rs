//! NVRTC, CUDA's run-time compiler, behind a small safe wrapper (feature `cuda`).
//!
//! [`compile`] turns the assembled kernel source into either a CUBIN (machine code for exactly one
//! architecture, `sm_XY`) or PTX (the virtual instruction set, `compute_XY`, which the driver
//! compiles when the module is loaded). On failure it returns NVRTC's own log, so a kernel that
//! does not build on some toolkit says why.
//!
//! The CUDA backend asks for a CUBIN first, and for PTX only when that fails:
//!
//! - PTX carries the ISA version of the NVRTC that wrote it, and a driver older than that NVRTC
//!   refuses it (`CUDA_ERROR_UNSUPPORTED_PTX_VERSION`). A machine whose toolkit is newer than its
//!   driver, common on shared GPU hosts, could compile the kernels and not load them. A CUBIN is
//!   loaded as is: the same toolkit major release runs on any driver of that release.
//! - A CUBIN needs no JIT pass at start-up.
//! - An NVRTC older than the device may know its virtual architecture but not emit its machine
//!   code; PTX is the way out there.
//!
//! NVRTC's front end recurses deeply: compiling these kernels overflows a 4 MiB stack (measured
//! with NVRTC 12.9; 8 MiB was enough), and Rust's test and tokio threads have 2 MiB. [`compile`]
//! therefore runs NVRTC on a thread of its own ([`super::on_compiler_stack`]), whatever thread
//! asks.
//!
//! NVRTC 13 (CUDA 13.0, driver 580) keeps the options used here (`--gpu-architecture=sm_XY` or
//! `compute_XY`, `--std=c++14`, `--maxrregcount`); it dropped only architectures before Turing.
//! Should an NVRTC refuse the dialect option all the same (`NVRTC_ERROR_INVALID_OPTION`), [`compile`]
//! compiles once more without it (the kernels are C-like and build under any dialect) and says so
//! in the log. cudarc (built against CUDA 12.8) loads `libnvrtc.so`, `libnvrtc.so.12`, `.so.11`, ...
//! but not `libnvrtc.so.13`: a CUDA 13 installation is found through a `libnvrtc.so` link
//! (`scripts/device_run.sh` makes one).
//!
//! cudarc's safe `compile_ptx` makes PTX only, and panics when the log cannot be read; this
//! wrapper uses cudarc's thin `result`/`sys` layers and never panics.

use cudarc::nvrtc::{result, sys};
use std::ffi::{c_char, CString};

/// NVRTC's `(major, minor)` version; the caller has checked that `libnvrtc` loads.
pub fn version() -> Result<(i32, i32), String> {
    let (mut major, mut minor) = (0, 0);
    // SAFETY: both out-pointers are valid for the call.
    unsafe { sys::nvrtcVersion(&mut major, &mut minor) }.result().map_err(|e| format!("nvrtcVersion: {e:?}"))?;
    Ok((major, minor))
}

/// What NVRTC emits.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Output {
    /// Machine code for `sm_{major}{minor}`.
    Cubin,
    /// PTX for `compute_{major}{minor}`, finished by the driver's JIT when loaded.
    Ptx,
}

impl Output {
    /// The `--gpu-architecture` option for a device of compute capability `(major, minor)`.
    pub fn arch_option(self, (major, minor): (i32, i32)) -> String {
        match self {
            Output::Cubin => format!("--gpu-architecture=sm_{major}{minor}"),
            Output::Ptx => format!("--gpu-architecture=compute_{major}{minor}"),
        }
    }
}

impl std::fmt::Display for Output {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Output::Cubin => "CUBIN",
            Output::Ptx => "PTX",
        })
    }
}

/// A live NVRTC program; destroyed when dropped. The strings it was created from stay alive with
/// it (NVRTC may keep pointers to them).
struct Program {
    prog: sys::nvrtcProgram,
    _source: CString,
    _name: CString,
}

impl Drop for Program {
    fn drop(&mut self) {
        // SAFETY: `prog` was returned by nvrtcCreateProgram and is destroyed exactly once, here.
        let _ = unsafe { result::destroy_program(self.prog) };
    }
}

impl Program {
    /// NVRTC's compile log, or a note saying why it could not be read.
    fn log(&self) -> String {
        // SAFETY: `self.prog` is live until `self` drops.
        match unsafe { result::get_program_log(self.prog) } {
            Ok(raw) => String::from_utf8_lossy(&until_nul(&raw)).trim().to_string(),
            Err(e) => format!("(no log: nvrtcGetProgramLog: {e:?})"),
        }
    }

    fn cubin(&self) -> Result<Vec<u8>, String> {
        let mut size = 0usize;
        // SAFETY: `self.prog` is live and compiled; `size` is a valid out-pointer for the call.
        unsafe { sys::nvrtcGetCUBINSize(self.prog, &mut size) }
            .result()
            .map_err(|e| format!("nvrtcGetCUBINSize: {e:?}"))?;
        let mut image = vec![0u8; size];
        // SAFETY: `image` holds the `size` bytes NVRTC just reported for this program's CUBIN.
        unsafe { sys::nvrtcGetCUBIN(self.prog, image.as_mut_ptr().cast::<c_char>()) }
            .result()
            .map_err(|e| format!("nvrtcGetCUBIN: {e:?}"))?;
        if size == 0 {
            return Err("NVRTC returned an empty CUBIN".into());
        }
        Ok(image)
    }

    fn ptx(&self) -> Result<Vec<u8>, String> {
        // SAFETY: `self.prog` is live and compiled.
        let raw = unsafe { result::get_ptx(self.prog) }.map_err(|e| format!("nvrtcGetPTX: {e:?}"))?;
        Ok(until_nul(&raw))
    }
}

/// The bytes of a C string NVRTC returned, up to its terminating NUL.
fn until_nul(raw: &[c_char]) -> Vec<u8> {
    raw.iter().take_while(|&&c| c != 0).map(|&c| c as u8).collect()
}

/// What [`compile`] made.
#[derive(Debug, Clone)]
pub struct Compiled {
    /// CUBIN bytes, or PTX text without its terminating NUL.
    pub image: Vec<u8>,
    /// NVRTC's log (warnings; with `--ptxas-options=-v`, registers and spills per kernel).
    pub log: String,
}

/// Compiles `source` (a `.cu` translation unit called `name`) for a device of compute capability
/// `capability`, emitting `output`. `options` are further NVRTC options (`--std=c++14`, ...).
/// NVRTC needs no device and no driver: only `libnvrtc` (checked by the caller).
///
/// An error names the step that failed and, for a compile error, carries NVRTC's log. Runs on a
/// thread with a large stack ([`super::on_compiler_stack`]); a panic there is an error too.
pub fn compile(
    source: &str,
    name: &str,
    capability: (i32, i32),
    output: Output,
    options: &[&str],
) -> Result<Compiled, String> {
    let source_c = CString::new(source).map_err(|_| format!("{name}: the kernel source contains a NUL byte"))?;
    let name_c = CString::new(name).map_err(|_| format!("{name:?}: the program name contains a NUL byte"))?;
    let mut all = vec![output.arch_option(capability)];
    all.extend(options.iter().map(|o| o.to_string()));
    if all.iter().any(|o| o.contains('\0')) {
        return Err("an NVRTC option contains a NUL byte".into());
    }
    super::on_compiler_stack(move || {
        let attempt = |options: &[String]| -> Result<Program, (Option<sys::nvrtcResult>, String)> {
            let prog = result::create_program(&source_c, Some(&name_c))
                .map_err(|e| (None, format!("nvrtcCreateProgram: {e:?}")))?;
            let program = Program { prog, _source: source_c.clone(), _name: name_c.clone() };
            // SAFETY: `program.prog` is live until `program` drops; no option contains a NUL
            // byte (checked above; cudarc's wrapper would panic on one).
            match unsafe { result::compile_program(program.prog, options) } {
                Ok(()) => Ok(program),
                Err(e) => {
                    Err((Some(e.0), format!("nvrtcCompileProgram [{}]: {e:?}\n{}", options.join(" "), program.log())))
                }
            }
        };
        let mut note = String::new();
        let program = match attempt(&all) {
            Ok(p) => p,
            // An NVRTC that no longer knows the language dialect option (the kernels are plain
            // C-like CUDA and build under any dialect): once more with NVRTC's default dialect.
            Err((Some(sys::nvrtcResult::NVRTC_ERROR_INVALID_OPTION), first)) if all.iter().any(|o| is_dialect(o)) => {
                let fewer: Vec<String> = all.iter().filter(|o| !is_dialect(o)).cloned().collect();
                let p =
                    attempt(&fewer).map_err(|(_, second)| format!("{first}\nwithout the dialect option: {second}"))?;
                note =
                    format!("NVRTC rejected an option of [{}]; compiled with [{}]\n", all.join(" "), fewer.join(" "));
                p
            }
            Err((_, e)) => return Err(e),
        };
        let image = match output {
            Output::Cubin => program.cubin()?,
            Output::Ptx => program.ptx()?,
        };
        Ok(Compiled { image, log: format!("{note}{}", program.log()) })
    })?
}

/// Whether `option` selects the C++ dialect (`--std=c++14`, `-std=c++17`).
fn is_dialect(option: &str) -> bool {
    option.starts_with("--std=") || option.starts_with("-std=")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dialect_options_are_recognised() {
        assert!(is_dialect("--std=c++14") && is_dialect("-std=c++17"));
        assert!(!is_dialect("--gpu-architecture=sm_90") && !is_dialect("--maxrregcount=168"));
    }

    #[test]
    fn arch_options_name_machine_code_or_virtual_architecture() {
        assert_eq!(Output::Cubin.arch_option((9, 0)), "--gpu-architecture=sm_90");
        assert_eq!(Output::Ptx.arch_option((8, 9)), "--gpu-architecture=compute_89");
    }
}
