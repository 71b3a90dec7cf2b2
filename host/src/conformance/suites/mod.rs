//! The cases, one module per plugin kind, plus the cases every plugin gets.
//!
//! Case names are `<suite>/<check>` and are stable: CI systems and vendors key
//! on them. A new case gets a new name; a case whose meaning changes gets a
//! new name too.

pub mod adapters;
pub mod cloud;
pub mod common;
pub mod filesystem;
pub mod fs_images;
pub mod guest_fixtures;
pub mod guest_step;
pub mod hypervisor;

use super::Case;
use crate::plugin::PluginKind;

/// Every case that applies to a plugin of `kind`, in run order.
pub fn cases(kind: PluginKind) -> Vec<Case> {
    let mut cases = common::cases();
    cases.extend(match kind {
        PluginKind::HypervisorAdapter => hypervisor::cases(),
        PluginKind::CloudAdapter => cloud::cases(),
        PluginKind::FilesystemHandler => filesystem::cases(),
        PluginKind::GuestStep => guest_step::cases(),
    });
    cases
}
