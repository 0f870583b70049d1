//! Generated types for Vigil's gRPC API (`vigil.v1`): messages, clients and servers, and
//! `RawBatch`, the server's allocation-light decoding of `ReadingBatch`. Conversion to
//! domain types happens at the edges that use them.

#![allow(clippy::all, clippy::pedantic, missing_docs)]

/// `vigil.v1`: ingest, alerts, rules and patients services.
pub mod v1 {
    tonic::include_proto!("vigil.v1");
}

/// The server side of `vigil.v1.Ingest` over [`raw_batch::RawBatch`]: same service, same
/// wire format, fewer allocations per reading. Clients use [`v1::ingest_client`].
pub mod raw_ingest {
    include!(concat!(env!("OUT_DIR"), "/raw_ingest/vigil.v1.rs"));
}

pub mod raw_batch;

/// Encoded `FileDescriptorSet` of every `vigil.v1` file, for gRPC server reflection.
pub const FILE_DESCRIPTOR_SET: &[u8] =
    include_bytes!(concat!(env!("OUT_DIR"), "/vigil_descriptor.bin"));
