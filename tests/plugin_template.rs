//! The SDK's template plugin loads, its manifest is read, and calls round-trip.

use homeward::guest_fs::{DirTree, GuestTree};
use homeward::plugin::capability::FileAccess;
use homeward::plugin::instance::ChangeKind;
use homeward::plugin::{PluginKind, PluginSettings, Runtime, RuntimeOptions};
use homeward_tests::{guest_tree, step_context, template_wasm};
use std::sync::Arc;

#[test]
fn template_manifest_is_read_from_its_custom_section() {
    let runtime = Runtime::new(RuntimeOptions::default()).unwrap();
    let plugin = runtime
        .load(template_wasm(), "template", PluginSettings::default())
        .unwrap();
    let m = plugin.manifest();
    assert_eq!(m.id, "template");
    assert_eq!(m.version, semver::Version::new(0, 1, 0));
    assert_eq!(m.api, semver::Version::new(0, 1, 2));
    assert_eq!(m.kind, PluginKind::GuestStep);
    assert!(m.capabilities.network.is_empty());
    assert_eq!(m.capabilities.files, FileAccess::None);
    let exports = &plugin.meta().exports;
    assert!(
        exports
            .iter()
            .any(|e| e == "homeward:plugin/post-step@0.1.2"),
        "{exports:?}"
    );
}

#[test]
fn calls_round_trip() {
    let runtime = Runtime::new(RuntimeOptions::default()).unwrap();
    let plugin = runtime
        .load(template_wasm(), "template", PluginSettings::default())
        .unwrap();
    let mut instance = plugin.instantiate().unwrap();
    instance.ping().unwrap();
    assert_eq!(instance.ping_payload(&[]).unwrap(), 0);
    let big = vec![7u8; 1 << 20];
    assert_eq!(instance.ping_payload(&big).unwrap(), 1 << 20);
    assert!(
        instance.last_call().peak_memory_bytes >= 1 << 20,
        "the payload was copied into guest memory"
    );
}

#[test]
fn template_plans_then_finds_nothing_left_to_do() {
    let runtime = Runtime::new(RuntimeOptions::default()).unwrap();
    let plugin = runtime
        .load(template_wasm(), "template", PluginSettings::default())
        .unwrap();
    let mut instance = plugin.instantiate().unwrap();
    let dir = guest_tree();
    let tree = Arc::new(DirTree::new(dir.path()).unwrap());

    let plan = instance
        .plan_guest_step(tree.clone(), &step_context("web01"))
        .unwrap();
    assert_eq!(plan.changes.len(), 1, "{plan:?}");
    let change = &plan.changes[0];
    assert_eq!(change.path, "/etc/motd");
    assert_eq!(change.kind, ChangeKind::ReplaceFile);
    assert_eq!(
        String::from_utf8(change.content.clone()).unwrap(),
        "Authorized use only.\nThis machine was failed back by Homeward.\n"
    );
    // Planning never writes.
    assert_eq!(
        tree.read_file("/etc/motd").unwrap(),
        b"Authorized use only.\n"
    );

    let planned = homeward::guest_fs::PlannedChange {
        path: change.path.clone(),
        kind: homeward::guest_fs::ChangeKind::ReplaceFile,
        content: change.content.clone(),
        mode: change.mode,
    };
    tree.apply(&planned).unwrap();
    let again = instance
        .plan_guest_step(tree.clone(), &step_context("web01"))
        .unwrap();
    assert!(
        again.changes.is_empty(),
        "second plan must be empty: {again:?}"
    );
}

#[test]
fn operator_config_reaches_the_plugin() {
    let runtime = Runtime::new(RuntimeOptions::default()).unwrap();
    let mut settings = PluginSettings::default();
    settings
        .config
        .insert("message".to_string(), "Welcome home.".to_string());
    let plugin = runtime.load(template_wasm(), "template", settings).unwrap();
    let mut instance = plugin.instantiate().unwrap();
    let dir = guest_tree();
    std::fs::remove_file(dir.path().join("etc/motd")).unwrap();
    let tree = Arc::new(DirTree::new(dir.path()).unwrap());
    let plan = instance
        .plan_guest_step(tree, &step_context("web01"))
        .unwrap();
    assert_eq!(plan.changes[0].kind, ChangeKind::CreateFile);
    assert_eq!(plan.changes[0].content, b"Welcome home.\n");
}

#[test]
fn compile_cache_is_used_on_the_second_load() {
    let cache = tempfile::tempdir().unwrap();
    let options = RuntimeOptions {
        cache_dir: Some(cache.path().to_path_buf()),
        ..RuntimeOptions::default()
    };
    let runtime = Runtime::new(options.clone()).unwrap();
    let first = runtime
        .load(template_wasm(), "template", PluginSettings::default())
        .unwrap();
    assert_eq!(
        first.meta().compiled_from,
        homeward::plugin::cache::CompileSource::Compiled
    );
    let second = Runtime::new(options.clone()).unwrap();
    let again = second
        .load(template_wasm(), "template", PluginSettings::default())
        .unwrap();
    assert_eq!(
        again.meta().compiled_from,
        homeward::plugin::cache::CompileSource::Cache
    );
    again.instantiate().unwrap().ping().unwrap();

    // A damaged cache entry is recompiled, not trusted.
    for entry in std::fs::read_dir(cache.path()).unwrap() {
        std::fs::write(entry.unwrap().path(), b"garbage").unwrap();
    }
    let third = Runtime::new(options).unwrap();
    let reloaded = third
        .load(template_wasm(), "template", PluginSettings::default())
        .unwrap();
    assert_eq!(
        reloaded.meta().compiled_from,
        homeward::plugin::cache::CompileSource::Compiled
    );
    reloaded.instantiate().unwrap().ping().unwrap();
}

#[test]
fn a_log_recorder_keeps_the_plugins_log_lines() {
    let runtime = Runtime::new(RuntimeOptions::default()).unwrap();
    let plugin = runtime
        .load(template_wasm(), "template", PluginSettings::default())
        .unwrap();
    let mut instance = plugin.instantiate().unwrap();
    let recorder = Arc::new(homeward::plugin::LogRecorder::default());
    instance.record_logs(recorder.clone());
    let dir = guest_tree();
    let tree = Arc::new(DirTree::new(dir.path()).unwrap());
    instance
        .plan_guest_step(tree, &step_context("web01"))
        .unwrap();
    assert_eq!(recorder.lines(), ["info planning motd for web01"]);
}
