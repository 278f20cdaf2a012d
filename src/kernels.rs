//! GPU kernel sources, embedded at build time.
//!
//! build.rs turns every `.h`, `.cl` and `.cu` file under `kernels/` into an entry of [`SOURCES`]
//! with `include_str!`, so a binary never reads a kernel file at run time. [`assemble`] resolves
//! `#include "name"` lines against the same table, giving one self-contained source string to hand
//! to NVRTC or `clCreateProgramWithSource`: the arithmetic lives once in portable headers and the
//! CUDA and OpenCL entry files stay thin.

include!(concat!(env!("OUT_DIR"), "/kernels.rs"));

/// The contents of the embedded kernel file at `path` (relative to `kernels/`).
pub fn source(path: &str) -> Option<&'static str> {
    SOURCES.iter().find(|(p, _)| *p == path).map(|(_, s)| *s)
}

/// Why a kernel could not be assembled.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AssembleError {
    /// A file (the entry, or one it includes) is not embedded.
    #[error("kernel source `{0}` is not embedded (is it under kernels/?)")]
    Missing(String),
}

/// `entry` with every `#include "x"` replaced by the embedded file `x` (resolved relative to the
/// including file's folder, then to `kernels/`), each file included at most once. System includes
/// (`#include <...>`) are left alone.
pub fn assemble(entry: &str) -> Result<String, AssembleError> {
    let mut out = String::new();
    let mut seen = Vec::new();
    inline(entry, &mut out, &mut seen)?;
    Ok(out)
}

fn inline(path: &str, out: &mut String, seen: &mut Vec<String>) -> Result<(), AssembleError> {
    if seen.iter().any(|s| s == path) {
        return Ok(());
    }
    seen.push(path.to_string());
    let text = source(path).ok_or_else(|| AssembleError::Missing(path.to_string()))?;
    let dir = path.rsplit_once('/').map(|(d, _)| d).unwrap_or("");
    out.push_str(&format!("// ---- {path} ----\n"));
    for line in text.lines() {
        let t = line.trim_start();
        if let Some(rest) = t.strip_prefix("#include \"") {
            if let Some(name) = rest.split('"').next() {
                let rel = if dir.is_empty() { name.to_string() } else { format!("{dir}/{name}") };
                let target = if source(&rel).is_some() { rel } else { name.to_string() };
                inline(&target, out, seen)?;
                continue;
            }
        }
        out.push_str(line);
        out.push('\n');
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn missing_entry_is_an_error() {
        assert_eq!(assemble("no/such.cl"), Err(AssembleError::Missing("no/such.cl".into())));
    }

    #[test]
    fn every_embedded_entry_assembles() {
        for (path, _) in SOURCES {
            if path.ends_with(".cl") || path.ends_with(".cu") {
                let s = assemble(path).unwrap();
                assert!(!s.contains("#include \""), "{path} left an include unresolved");
            }
        }
    }
}
