//! cloud-init, when the guest has it: on premises its datasource changes, it
//! sees a new instance, and it would write its DHCP fallback over the
//! restored configuration at the next boot. Its documented switch,
//! `network: {config: disabled}`, stops that and nothing else.

use homeward_sdk::guest::{GuestRead, PlanBuilder};

const CFG: &str = "/etc/cloud/cloud.cfg";
const DIR: &str = "/etc/cloud/cloud.cfg.d";
const PATH: &str = "/etc/cloud/cloud.cfg.d/99-disable-network-config.cfg";

/// Disables cloud-init's network configuration when cloud-init is installed.
pub fn plan(guest: &dyn GuestRead, plan: &mut PlanBuilder) {
    if !guest.exists(CFG) {
        return;
    }
    plan.note("cloud-init: present; its network configuration is disabled");
    plan.create_dir(guest, DIR, 0o755, "cloud-init's drop-in directory");
    let text = format!(
        "{}\n# cloud-init must not replace it with DHCP on premises.\nnetwork: {{config: disabled}}\n",
        crate::files::HEADER
    );
    // An existing switch with the same meaning is left as the operator wrote it.
    if guest.read_text(PATH).is_some_and(|t| {
        t.lines()
            .any(|l| l.replace(' ', "") == "network:{config:disabled}")
    }) {
        return;
    }
    plan.write(
        guest,
        PATH,
        text,
        0o644,
        "keep cloud-init from writing DHCP over the restored configuration",
    );
}
