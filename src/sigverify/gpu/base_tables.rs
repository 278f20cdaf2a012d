//! The device's fixed-base tables of `B` (edwards25519) and `G` (secp256k1), as the host sees
//! them: sizes for allocation, and the check that the compiled kernels agree on them.
//!
//! The kernels (`kernels/common/base_tables.h`) keep `[j·256^w]B` and `[j·256^w]G` for
//! `j = 1..=128` and 33 windows `w`, written once per device by the `base_tables` kernel and then
//! only read by `sig_verify`, which adds a fixed-base multiple with at most 33 additions and no
//! doublings. The host allocates the two buffers from the constants here; before it does, it
//! runs `base_table_layout`, which reports the kernels' own entry sizes and shape, so a kernel
//! compiled with another layout is a [`GpuError::Build`], never an out-of-bounds table.

use super::GpuError;

/// Windows per table (signed radix-256 digits of a 256-bit scalar).
pub const WINDOWS: u64 = 33;
/// Entries per window.
pub const ENTRIES: u64 = 128;
/// Bytes of one `B` entry (`ge25519_cached`: four field elements of five 64-bit limbs).
pub const ED25519_ENTRY_BYTES: u64 = 160;
/// Bytes of one `G` entry (`gej_secp`: three field elements of four 64-bit limbs).
pub const SECP256K1_ENTRY_BYTES: u64 = 96;
/// Threads of the `base_tables` kernel (one per window of each curve).
pub const THREADS: usize = 2 * WINDOWS as usize;

/// The byte sizes of `B`'s and `G`'s tables, once `layout` (what `base_table_layout` wrote: entry
/// bytes of each table, windows, entries per window) matches the constants here.
pub fn sizes(layout: &[u64]) -> Result<(usize, usize), GpuError> {
    let want = [ED25519_ENTRY_BYTES, SECP256K1_ENTRY_BYTES, WINDOWS, ENTRIES];
    if layout != want {
        return Err(GpuError::Build(format!(
            "fixed-base table layout: kernels report {layout:?} (entry bytes of B and G, windows, entries), host expects {want:?}"
        )));
    }
    let entries = WINDOWS * ENTRIES;
    Ok(((entries * ED25519_ENTRY_BYTES) as usize, (entries * SECP256K1_ENTRY_BYTES) as usize))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_different_layout_is_a_build_error() {
        assert_eq!(sizes(&[160, 96, 33, 128]).ok(), Some((33 * 128 * 160, 33 * 128 * 96)));
        assert!(matches!(sizes(&[160, 96, 33, 64]), Err(GpuError::Build(_))));
        assert!(matches!(sizes(&[]), Err(GpuError::Build(_))));
    }
}
