//! The application layer: every operation once, whatever transport asks for it.

pub mod ingest;
