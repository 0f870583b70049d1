//! Benchmarks for Vigil live in `benches/`; this crate holds shared fixtures later.
