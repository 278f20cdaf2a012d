//! Where the public conformance vectors are: `$PARTHENON_VECTORS`, else `../shared/vectors` beside
//! the crate. Absent outside CI, the caller skips (one line says so); absent under `CI=true`, the
//! test fails.

use std::path::PathBuf;

/// The vectors folder, or `None` (skip) when it is absent outside CI.
pub fn vectors_dir() -> Option<PathBuf> {
    let dir = std::env::var_os("PARTHENON_VECTORS")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../shared/vectors"));
    if dir.is_dir() {
        return Some(dir);
    }
    if std::env::var("CI").as_deref() == Ok("true") {
        panic!("conformance vectors missing at {} (CI=true)", dir.display());
    }
    // On stderr, unbuffered: the test harness captures `println!`, so a passing test would
    // hide the skip.
    use std::io::Write;
    let _ = std::io::stderr().write_all(
        format!("skip: conformance vectors not found at {} (set PARTHENON_VECTORS)\n", dir.display()).as_bytes(),
    );
    None
}
