//! Compiles `vigil/v1/*.proto` with protox (pure Rust, no system `protoc`) and generates
//! prost messages plus tonic clients and servers, and the server's `Ingest` service a second
//! time over `RawBatch`; also writes the descriptor set for reflection.

use std::path::PathBuf;

use prost::Message;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let files = [
        "vigil/v1/common.proto",
        "vigil/v1/ingest.proto",
        "vigil/v1/alerts.proto",
        "vigil/v1/rules.proto",
        "vigil/v1/patients.proto",
        "vigil/v1/devices.proto",
    ];
    for file in files {
        println!("cargo:rerun-if-changed={file}");
    }
    let fds = protox::compile(files, ["."])?;
    let out_dir = PathBuf::from(std::env::var("OUT_DIR")?);
    std::fs::write(out_dir.join("vigil_descriptor.bin"), fds.encode_to_vec())?;
    tonic_prost_build::configure()
        .build_client(true)
        .build_server(true)
        .compile_fds(fds)?;
    // The server's `Ingest` service once more, decoding `ReadingBatch` as `RawBatch`
    // (one text buffer per batch instead of a `String` per field); every other type is
    // the one generated above, so only the service code is written here.
    let raw_dir = out_dir.join("raw_ingest");
    std::fs::create_dir_all(&raw_dir)?;
    tonic_prost_build::configure()
        .build_client(false)
        .build_server(true)
        .out_dir(&raw_dir)
        .extern_path(".vigil.v1.ReadingBatch", "crate::raw_batch::RawBatch")
        .extern_path(".vigil.v1", "crate::v1")
        .compile_fds(protox::compile(["vigil/v1/ingest.proto"], ["."])?)?;
    Ok(())
}
