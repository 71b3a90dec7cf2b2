//! `/etc/udev/rules.d/70-persistent-net.rules`: the MAC → name pinning of
//! older guests (CentOS 6/7, SLES 11/12, Debian before 9).
//!
//! It tells which device name a MAC gets, and it must follow a MAC change:
//! with a rule still naming the old MAC `eth0`, the new NIC comes up as
//! `eth1` and no configuration applies to it.

use crate::nic::{Nics, valid_device};
use homeward_sdk::guest::{GuestRead, PlanBuilder, normalize_mac};

/// Where the rules live.
pub const RULES: &str = "/etc/udev/rules.d/70-persistent-net.rules";

const ADDRESS_KEY: &str = "ATTR{address}==";
const NAME_KEY: &str = "NAME=";

/// One rule line: the MAC it matches and the name it gives.
struct Rule {
    mac: String,
    name: String,
}

fn parse_rule(line: &str) -> Option<Rule> {
    let line = line.trim();
    if line.starts_with('#') || !line.contains("SUBSYSTEM==\"net\"") {
        return None;
    }
    let mut mac = None;
    let mut name = None;
    for part in line.split(',').map(str::trim) {
        if let Some(v) = part.strip_prefix(ADDRESS_KEY) {
            mac = normalize_mac(v.trim_matches('"'));
        } else if let Some(v) = part.strip_prefix(NAME_KEY) {
            // `NAME==` is a match, not an assignment.
            if !v.starts_with('=') {
                name = Some(v.trim_matches('"').to_string());
            }
        }
    }
    Some(Rule {
        mac: mac?,
        name: name.filter(|n| valid_device(n))?,
    })
}

/// MAC → device name pairs the rules pin.
pub fn names(guest: &dyn GuestRead) -> Vec<(String, String)> {
    guest
        .read_text(RULES)
        .map(|text| {
            text.lines()
                .filter_map(parse_rule)
                .map(|r| (r.mac, r.name))
                .collect()
        })
        .unwrap_or_default()
}

/// Makes each recorded NIC's rule match its current MAC: the rule with its
/// old MAC, or (when no rule has either of its MACs) the rule that gives its
/// device name to a foreign MAC (the cloud NIC's). Other lines stay.
pub fn plan(guest: &dyn GuestRead, nics: &Nics, plan: &mut PlanBuilder) {
    let Some(text) = guest.read_text(RULES) else {
        return;
    };
    let rules: Vec<Option<Rule>> = text.lines().map(parse_rule).collect();
    let mut lines: Vec<String> = text.lines().map(str::to_string).collect();
    for nic in &nics.all {
        let has_own = rules.iter().flatten().any(|r| nic.has_mac(&r.mac));
        for (line, rule) in lines.iter_mut().zip(&rules) {
            let Some(rule) = rule else { continue };
            let ours = if has_own {
                nic.has_mac(&rule.mac)
            } else {
                nics.is_foreign(&rule.mac) && nic.device.as_deref() == Some(rule.name.as_str())
            };
            if ours && rule.mac != nic.mac {
                *line = replace_mac(line, &nic.mac);
                plan.note(format!(
                    "udev: {} is now pinned to {} (was {})",
                    rule.name, nic.mac, rule.mac
                ));
            }
        }
    }
    let mut out = lines.join("\n");
    if text.ends_with('\n') {
        out.push('\n');
    }
    let mode = crate::files::mode_of(guest, RULES, 0o644);
    plan.write(
        guest,
        RULES,
        out,
        mode,
        "pin the device name to the NIC's MAC after failback",
    );
}

/// The rule line with its `ATTR{address}==".."` value replaced by `mac`
/// (lower case: udev compares the sysfs spelling, which is lower case).
fn replace_mac(line: &str, mac: &str) -> String {
    let Some(start) = line.find(ADDRESS_KEY) else {
        return line.to_string();
    };
    let value_start = start + ADDRESS_KEY.len();
    let rest = line.get(value_start..).unwrap_or_default();
    let value_len = rest.find(',').unwrap_or(rest.len());
    let head = line.get(..value_start).unwrap_or_default();
    let tail = rest.get(value_len..).unwrap_or_default();
    format!("{head}\"{mac}\"{tail}")
}
