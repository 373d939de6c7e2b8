//! Compiles the echo baseline's `proto/echo.proto` with protox (pure Rust:
//! no system `protoc`), as `proto/build.rs` does for the wire contract.

fn main() -> Result<(), Box<dyn std::error::Error>> {
    println!("cargo:rerun-if-changed=proto");
    let descriptors = protox::compile(["echo.proto"], ["proto"])?;
    tonic_prost_build::configure()
        .build_server(true)
        .build_client(true)
        .compile_fds(descriptors)?;
    Ok(())
}
