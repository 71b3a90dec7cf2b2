//! The generated gRPC code of `proto/replication.proto`.
#![allow(missing_docs, clippy::all, clippy::pedantic)]

tonic::include_proto!("homeward.replication.v1");
