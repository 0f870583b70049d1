//! Generated types for Vigil's gRPC API (`vigil.v1`): messages, clients and servers.
//! Nothing else lives here; conversion to domain types happens at the edges that use them.

#![allow(clippy::all, clippy::pedantic, missing_docs)]

/// `vigil.v1`: ingest, alerts, rules and patients services.
pub mod v1 {
    tonic::include_proto!("vigil.v1");
}

/// Encoded `FileDescriptorSet` of every `vigil.v1` file, for gRPC server reflection.
pub const FILE_DESCRIPTOR_SET: &[u8] =
    include_bytes!(concat!(env!("OUT_DIR"), "/vigil_descriptor.bin"));
