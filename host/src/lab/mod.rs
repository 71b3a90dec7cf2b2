//! The lab: a hypervisor site and a cloud kept as plain directories, served by
//! the embedded `lab-hypervisor` and `lab-cloud` adapter plugins.
//!
//! `homeward demo` runs a whole failback in a lab, and the conformance suite
//! (`homeward plugin test`) uses one as the target of the hypervisor and cloud
//! suites when no real endpoint is given. This module writes and inspects lab
//! directories from the host side; the plugins read and change them through
//! the directory the operator grants (`/lab` inside the sandbox). `guest`
//! is the demo's guest disk and what the cloud changes in it.

pub mod cloud;
pub mod guest;
pub mod hypervisor;
