//! What RHEL and SUSE `ifcfg-<dev>` files have in common: one file per
//! device, `KEY=value` lines, a device name and (maybe) a MAC. The flavours
//! (`ifcfg_rhel.rs`, `ifcfg_suse.rs`) differ in where the files live, which
//! keys name the device and the MAC, and what they write.

use crate::nic::Nics;
use homeward_sdk::guest::{GuestRead, NetSystem, ShellVars};

/// One ifcfg file, read.
pub struct Ifcfg {
    /// Its guest path.
    pub path: String,
    /// Its lines.
    pub vars: ShellVars,
    /// The device it configures.
    pub device: Option<String>,
    /// The MAC it names.
    pub mac: Option<String>,
}

/// Every ifcfg file of `system`; `identify` says which device and MAC a file
/// names, given its variables and the device its file name gives.
pub fn read_all(
    guest: &dyn GuestRead,
    system: NetSystem,
    identify: impl Fn(&ShellVars, Option<String>) -> (Option<String>, Option<String>),
) -> Vec<Ifcfg> {
    system
        .files(guest)
        .into_iter()
        .filter_map(|path| {
            let vars = ShellVars::parse(&guest.read_text(&path)?);
            let suffix = path.rsplit_once("/ifcfg-").map(|(_, s)| s.to_string());
            let (device, mac) = identify(&vars, suffix);
            Some(Ifcfg {
                path,
                vars,
                device,
                mac,
            })
        })
        .collect()
}

/// MAC → device name pairs the files state.
pub fn names(files: Vec<Ifcfg>) -> Vec<(String, String)> {
    files
        .into_iter()
        .filter_map(|f| Some((f.mac?, f.device?)))
        .collect()
}

/// Which NICs (by index) have a file.
pub fn covered(files: &[Ifcfg], nics: &Nics) -> Vec<usize> {
    files
        .iter()
        .filter_map(|f| nics.owner(f.mac.as_deref(), f.device.as_deref()))
        .collect()
}
