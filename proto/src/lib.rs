//! The `kith.v1` wire contract.
//!
//! Generated from `proto/kith/v1/kith.proto` at build time. Nothing else lives
//! here: the domain types and their validation are in `kith-core`, and the
//! conversions between the two are there too, so that the hub's and agent's
//! logic never depends on the shape of the wire.

#![allow(clippy::all, clippy::pedantic)]

/// Package `kith.v1`.
pub mod v1 {
    tonic::include_proto!("kith.v1");

    /// The encoded file descriptor set, for gRPC server reflection.
    pub const FILE_DESCRIPTOR_SET: &[u8] =
        include_bytes!(concat!(env!("OUT_DIR"), "/kith_descriptor.bin"));
}
