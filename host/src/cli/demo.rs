//! `homeward demo`: the main job on embedded defaults — a whole failback
//! cycle on the lab adapters ([`crate::demo`]).
//!
//! It builds a lab in a temporary directory (a vSphere-like site with
//! VMDK-flat disks, an Azure-like cloud with VHD-fixed disks, a state store),
//! protects `web01` (a real ext4 Rocky Linux root with a static IP under
//! NetworkManager, plus a data disk) to the cloud, fails it over there (the
//! cloud changes the guest as Azure does), writes new data in the cloud,
//! reprotects and fails back (the guest post-steps restore NetworkManager
//! and the static IP), then commits and reprotects to the cloud. Each step
//! is printed with its time and the bytes it moved, and the end checks that
//! the on-premises disks hold what the cloud held at the chosen point.

use crate::demo::{self, DemoLab, Stage};
use crate::lab::guest;
use crate::workflow::fingerprint;
use anyhow::Context;
use std::io::Write;
use std::process::ExitCode;
use std::time::Instant;

pub fn run(out: &mut dyn Write) -> anyhow::Result<ExitCode> {
    let started = Instant::now();
    let scratch = tempfile::tempdir().context("creating a scratch directory")?;
    writeln!(out, "building the lab in {}", scratch.path().display())?;
    let lab = DemoLab::create(scratch.path())?;
    writeln!(
        out,
        "lab ready in {:.2} s: site (lab-hypervisor), cloud (lab-cloud), master target mt-01, process server ps-01, groups {} + {}_Failback, plan {}",
        started.elapsed().as_secs_f64(),
        demo::GROUP,
        demo::GROUP,
        demo::PLAN
    )?;
    let runtime = tokio::runtime::Runtime::new().context("starting the async runtime")?;
    let _guard = runtime.enter();
    lab.orchestrator.start()?;

    let mut ok = true;
    let mut moved = 0;
    for (n, stage) in Stage::ALL.into_iter().enumerate() {
        let t = Instant::now();
        writeln!(out, "\n[{}/{}] {}", n + 1, Stage::ALL.len(), stage.title())?;
        let jobs = runtime.block_on(lab.run_stage(stage))?;
        moved += demo::print_jobs(out, &jobs)?;
        if stage == Stage::WriteInCloud {
            writeln!(
                out,
                "  wrote {} in the guest and 4 MiB on the data disk (after the cloud removed NetworkManager and set DHCP)",
                guest::APP_DATA
            )?;
        }
        writeln!(out, "  stage took {:.2} s", t.elapsed().as_secs_f64())?;
        if !demo::all_succeeded(&jobs) {
            ok = false;
            writeln!(out, "  FAILED: the cycle stops here")?;
            break;
        }
    }
    runtime.block_on(lab.orchestrator.shutdown());

    if ok {
        ok = check(&lab, out)?;
    }
    writeln!(
        out,
        "\n{} in {:.2} s, {:.1} MiB moved over the data path",
        if ok { "demo passed" } else { "demo FAILED" },
        started.elapsed().as_secs_f64(),
        moved as f64 / f64::from(1u32 << 20)
    )?;
    Ok(if ok {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    })
}

/// The end state: the cloud's data is on premises, the guest has its
/// NetworkManager profile back, and both sides' data disks are equal.
fn check(lab: &DemoLab, out: &mut dyn Write) -> anyhow::Result<bool> {
    writeln!(out, "\nchecks")?;
    let disks = lab.onprem_disks()?;
    let os = disks.first().context("web01 has no disk on premises")?;
    let data = lab.read_guest_file(os, guest::APP_DATA)?;
    let data_ok = data == demo::CLOUD_DATA;
    writeln!(
        out,
        "  {} on premises holds the data written in the cloud: {}",
        guest::APP_DATA,
        yes(data_ok)
    )?;
    let ifcfg = lab.read_guest_file(os, guest::IFCFG)?;
    let ifcfg = String::from_utf8_lossy(&ifcfg);
    let address = lab.guest.address.0.to_string();
    let static_ip =
        ifcfg.contains(&format!("IPADDR={address}")) && ifcfg.contains("NM_CONTROLLED=yes");
    writeln!(
        out,
        "  eth0 static again ({address}) and under NetworkManager ({}): {}",
        guest::IFCFG,
        yes(static_ip)
    )?;
    let onprem = fingerprint(disks.get(1).context("web01 has no data disk")?)?;
    let cloud = fingerprint(lab.cloud_disk(&format!("{}-data0", demo::VM)))?;
    let equal = onprem == cloud;
    writeln!(
        out,
        "  data disk equal on both sides (BLAKE3 {}…): {}",
        &onprem[..16],
        yes(equal)
    )?;
    Ok(data_ok && static_ip && equal)
}

fn yes(ok: bool) -> &'static str {
    if ok { "yes" } else { "NO" }
}
