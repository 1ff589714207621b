//! Builds the cdp.v1 message types from the same .proto files the Python stubs come from.
fn main() -> Result<(), Box<dyn std::error::Error>> {
    let root = concat!(env!("CARGO_MANIFEST_DIR"), "/../../proto");
    let files = [
        "cdp/v1/event.proto",
        "cdp/v1/ingest.proto",
        "cdp/v1/profile.proto",
        "cdp/v1/admin.proto",
        "cdp/v1/audience.proto",
        "cdp/v1/destination.proto",
        "cdp/v1/governance.proto",
    ];
    let fds = protox::compile(files, [root])?;
    // Type names (prost::Name): request decoding names the malformed message by itself.
    prost_build::Config::new().enable_type_names().compile_fds(fds)?;
    println!("cargo:rerun-if-changed={root}");
    Ok(())
}
