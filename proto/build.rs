//! Compiles `vigil/v1/*.proto` with protox (pure Rust, no system `protoc`) and generates
//! prost messages plus tonic clients and servers; also writes the descriptor set for reflection.

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
    Ok(())
}
