//! The generated gRPC code of `proto/control.proto`, and its file descriptor
//! set for the reflection service.
#![allow(missing_docs, clippy::all, clippy::pedantic)]

tonic::include_proto!("homeward.control.v1");

/// The encoded `FileDescriptorSet` of `control.proto` (with its comments),
/// written by `build.rs`.
pub const FILE_DESCRIPTOR_SET: &[u8] =
    include_bytes!(concat!(env!("OUT_DIR"), "/control_descriptor.bin"));
