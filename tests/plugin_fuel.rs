//! Fuel: a deterministic instruction budget per call, for conformance runs.
//! Costs are the same on every run, and a call that spends its budget is
//! stopped with an error naming the plugin and the budget.

use homeward::config::Grants;
use homeward::guest_fs::DirTree;
use homeward::plugin::{Limits, PluginError, PluginSettings, Runtime, RuntimeOptions};
use homeward_tests::{
    guest_tree, plan_on_guest_tree, sandbox_probe_path, step_context, template_wasm,
};
use std::sync::Arc;
use std::time::Duration;

fn metered() -> Runtime {
    Runtime::new(RuntimeOptions {
        fuel: true,
        ..RuntimeOptions::default()
    })
    .unwrap()
}

#[test]
fn fuel_costs_are_deterministic() {
    let runtime = metered();
    assert!(runtime.meters_fuel());
    let plugin = runtime
        .load(template_wasm(), "template", PluginSettings::default())
        .unwrap();
    let cost = |payload: &[u8]| {
        let mut instance = plugin.instantiate().unwrap();
        instance.ping_payload(payload).unwrap();
        instance.last_call().fuel_consumed.unwrap()
    };
    let small = cost(b"abc");
    assert_eq!(small, cost(b"xyz"), "same work, same fuel");
    assert!(small > 0);

    let dir = guest_tree();
    let tree = Arc::new(DirTree::new(dir.path()).unwrap());
    let context = step_context("web01");
    let plan_cost = || {
        let mut instance = plugin.instantiate().unwrap();
        instance.plan_guest_step(tree.clone(), &context).unwrap();
        instance.last_call().fuel_consumed.unwrap()
    };
    let first = plan_cost();
    assert_eq!(first, plan_cost());
    assert!(first > small, "planning does more work than a ping");

    // An unmetered runtime reports no fuel.
    let plain = Runtime::new(RuntimeOptions::default()).unwrap();
    let mut instance = plain
        .load(template_wasm(), "template", PluginSettings::default())
        .unwrap()
        .instantiate()
        .unwrap();
    instance.ping().unwrap();
    assert_eq!(instance.last_call().fuel_consumed, None);
}

#[test]
fn a_call_that_spends_its_budget_is_stopped() {
    let runtime = metered();
    let settings = PluginSettings {
        config: [("action".to_string(), "spin".to_string())].into(),
        limits: Limits {
            fuel: Some(5_000_000),
            call_timeout: Duration::from_secs(60),
            ..Limits::default()
        },
        grants: Grants::default(),
        ..PluginSettings::default()
    };
    let plugin = runtime.load_file(&sandbox_probe_path(), settings).unwrap();
    let err = plan_on_guest_tree(&plugin).unwrap_err();
    match &err {
        PluginError::OutOfFuel { plugin, fuel, .. } => {
            assert_eq!(plugin, "sandbox-probe");
            assert_eq!(*fuel, 5_000_000);
        }
        other => panic!("expected out-of-fuel, got {other:?}"),
    }
    assert!(err.to_string().contains("5000000"), "{err}");
}
