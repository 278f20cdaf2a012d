//! Seeded deterministic simulator (filled in next).
