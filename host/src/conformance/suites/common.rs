//! Cases every plugin gets, whatever its kind: it starts inside its limits
//! and answers the two probes every world exports. They are smoke cases: a
//! freshly scaffolded plugin passes them.

use crate::conformance::case::ensure;
use crate::conformance::{Case, CaseContext, CaseEnd, expect_ok};

/// The cases of this suite.
pub fn cases() -> Vec<Case> {
    vec![
        Case {
            name: "plugin/instantiates",
            summary: "a fresh instance starts inside the plugin's memory cap and deadline",
            smoke: true,
            requires: &[],
            run: instantiates,
        },
        Case {
            name: "plugin/ping",
            summary: "`ping` returns at once",
            smoke: true,
            requires: &[],
            run: ping,
        },
        Case {
            name: "plugin/ping-payload",
            summary: "`ping-payload` returns the exact length of empty, small and 1 MiB payloads",
            smoke: true,
            requires: &[],
            run: ping_payload,
        },
        Case {
            name: "plugin/instances-are-independent",
            summary: "two instances of one plugin answer independently of each other",
            smoke: true,
            requires: &[],
            run: instances_are_independent,
        },
    ]
}

fn instantiates(ctx: &mut CaseContext<'_>) -> Result<(), CaseEnd> {
    let instance = ctx.instance()?;
    ensure!(
        !instance.is_retired(),
        "a fresh instance is already retired"
    );
    Ok(())
}

fn ping(ctx: &mut CaseContext<'_>) -> Result<(), CaseEnd> {
    let mut instance = ctx.instance()?;
    expect_ok("ping", instance.ping())
}

fn ping_payload(ctx: &mut CaseContext<'_>) -> Result<(), CaseEnd> {
    let mut instance = ctx.instance()?;
    for size in [0usize, 17, 1 << 20] {
        let payload: Vec<u8> = (0..size).map(|i| (i % 251) as u8).collect();
        let length = expect_ok(
            &format!("ping-payload of {size} bytes"),
            instance.ping_payload(&payload),
        )?;
        ensure!(
            length == size as u64,
            "ping-payload of {size} bytes returned {length}"
        );
    }
    Ok(())
}

fn instances_are_independent(ctx: &mut CaseContext<'_>) -> Result<(), CaseEnd> {
    let mut first = ctx.instance()?;
    let mut second = ctx.instance()?;
    expect_ok("ping on the first instance", first.ping())?;
    drop(first);
    expect_ok(
        "ping on a second instance after the first was dropped",
        second.ping(),
    )
}
