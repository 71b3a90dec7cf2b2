//! vSphere privileges: which ones each operation needs, and which ones
//! Homeward needs in all.
//!
//! The list lives once, with the vSphere adapters (`homeward-vsphere`), so
//! the lab refuses and reports exactly what a vCenter account would lack.

pub use homeward_vsphere::privileges::*;
