//! The sandbox: a plugin gets only what its manifest asks for *and* the
//! operator grants, and a misbehaving plugin is stopped with an error that names
//! it and the limit, while other plugins keep answering.

use homeward::config::{DirGrant, Grants};
use homeward::guest_fs::DirTree;
use homeward::plugin::instance::StepPlan;
use homeward::plugin::{
    Failure, Limits, LoadedPlugin, PluginError, PluginSettings, Runtime, RuntimeOptions,
};
use homeward_tests::{
    HttpServer, guest_tree, plan_on_guest_tree, sandbox_probe_path, step_context, template_wasm,
};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, OnceLock};
use std::time::Duration;

/// One runtime for the whole file, with a compile cache, so each probe
/// configuration loads in microseconds after the first compile.
fn runtime() -> &'static Runtime {
    static RUNTIME: OnceLock<(Runtime, tempfile::TempDir)> = OnceLock::new();
    &RUNTIME
        .get_or_init(|| {
            let cache = tempfile::tempdir().unwrap();
            let runtime = Runtime::new(RuntimeOptions {
                cache_dir: Some(cache.path().to_path_buf()),
                ..RuntimeOptions::default()
            })
            .unwrap();
            (runtime, cache)
        })
        .0
}

const MEMORY_LIMIT: u64 = 64 << 20;
const DEADLINE: Duration = Duration::from_millis(300);

fn probe(config: &[(&str, &str)], grants: Grants) -> LoadedPlugin {
    let settings = PluginSettings {
        grants,
        config: config
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect(),
        limits: Limits {
            memory_bytes: MEMORY_LIMIT,
            call_timeout: DEADLINE,
            fuel: None,
        },
        ..PluginSettings::default()
    };
    runtime()
        .load_file(&sandbox_probe_path(), settings)
        .unwrap()
}

fn denied_message(result: Result<StepPlan, PluginError>) -> String {
    match result {
        Err(PluginError::Failed {
            failure: Failure::PermissionDenied { message, .. },
            ..
        }) => message,
        other => panic!("expected permission-denied, got {other:?}"),
    }
}

#[test]
fn files_are_reachable_only_inside_granted_directories() {
    let data = tempfile::tempdir().unwrap();
    std::fs::write(data.path().join("inside.txt"), "granted bytes").unwrap();
    let grants = Grants {
        dirs: vec![DirGrant {
            host: data.path().to_path_buf(),
            guest: "/data".to_string(),
            write: false,
        }],
        ..Grants::default()
    };

    let inside = plan_on_guest_tree(&probe(
        &[("action", "read-file"), ("path", "/data/inside.txt")],
        grants.clone(),
    ))
    .unwrap();
    assert_eq!(inside.notes, ["read 13 bytes", "granted bytes"]);

    for path in [
        "/etc/passwd",
        "/data/../etc/passwd",
        "/data/../../../../etc/passwd",
    ] {
        let message = denied_message(plan_on_guest_tree(&probe(
            &[("action", "read-file"), ("path", path)],
            grants.clone(),
        )));
        assert!(message.starts_with(&format!("open {path}:")), "{message}");
    }
}

#[test]
fn outgoing_http_reaches_only_granted_destinations() {
    let granted = HttpServer::start();
    let other = HttpServer::start();
    let grants = Grants {
        network: vec![granted.authority().parse().unwrap()],
        ..Grants::default()
    };

    let ok = plan_on_guest_tree(&probe(
        &[("action", "fetch"), ("url", &granted.url())],
        grants.clone(),
    ))
    .unwrap();
    assert_eq!(ok.notes[0], "status 200");
    assert_eq!(
        ok.notes[1],
        format!(
            "hello from {}",
            granted.authority().rsplit(':').next().unwrap()
        )
    );

    // `localhost` is the same destination as 127.0.0.1 once normalised.
    let port = granted.authority().rsplit(':').next().unwrap().to_string();
    let via_name = plan_on_guest_tree(&probe(
        &[
            ("action", "fetch"),
            ("url", &format!("http://localhost:{port}/")),
        ],
        grants.clone(),
    ))
    .unwrap();
    assert_eq!(via_name.notes[0], "status 200");

    let message = denied_message(plan_on_guest_tree(&probe(
        &[("action", "fetch"), ("url", &other.url())],
        grants.clone(),
    )));
    assert!(
        message.contains(&format!("denied HTTP to {}", other.authority())),
        "{message}"
    );
    assert_eq!(
        other.hits(),
        0,
        "a denied request must never leave the host"
    );
}

#[test]
fn no_sockets_and_no_environment() {
    let server = HttpServer::start();
    let grants = Grants {
        network: vec![server.authority().parse().unwrap()],
        ..Grants::default()
    };
    // Even a destination granted for HTTP cannot be reached with a raw socket.
    let message = denied_message(plan_on_guest_tree(&probe(
        &[("action", "connect"), ("address", &server.authority())],
        grants,
    )));
    assert!(message.starts_with("connect "), "{message}");
    assert_eq!(server.hits(), 0);

    // SAFETY-free check that the host has an environment the plugin must not see.
    assert!(std::env::var_os("PATH").is_some());
    let env = plan_on_guest_tree(&probe(&[("action", "env")], Grants::default())).unwrap();
    assert!(env.notes.is_empty(), "the plugin saw {:?}", env.notes);
}

/// Pings the template plugin from another thread until dropped, counting answers.
struct Bystander {
    answers: Arc<AtomicUsize>,
    stop: Arc<AtomicBool>,
    thread: Option<std::thread::JoinHandle<Result<(), PluginError>>>,
}

impl Bystander {
    fn start() -> Bystander {
        let plugin = runtime()
            .load(template_wasm(), "template", PluginSettings::default())
            .unwrap();
        let answers = Arc::new(AtomicUsize::new(0));
        let stop = Arc::new(AtomicBool::new(false));
        let (a, s) = (answers.clone(), stop.clone());
        let thread = std::thread::spawn(move || {
            let mut instance = plugin.instantiate()?;
            while !s.load(Ordering::SeqCst) {
                instance.ping()?;
                a.fetch_add(1, Ordering::SeqCst);
                std::thread::sleep(Duration::from_millis(1));
            }
            Ok(())
        });
        // Let it answer once before the misbehaviour starts.
        while answers.load(Ordering::SeqCst) == 0 {
            std::thread::sleep(Duration::from_millis(1));
        }
        Bystander {
            answers,
            stop,
            thread: Some(thread),
        }
    }

    fn answers(&self) -> usize {
        self.answers.load(Ordering::SeqCst)
    }

    fn finish(mut self) {
        self.stop.store(true, Ordering::SeqCst);
        if let Some(t) = self.thread.take() {
            t.join().unwrap().unwrap();
        }
    }
}

#[test]
fn a_runaway_loop_is_stopped_at_the_deadline_while_others_keep_answering() {
    let bystander = Bystander::start();
    let before = bystander.answers();
    let plugin = probe(&[("action", "spin")], Grants::default());
    let mut instance = plugin.instantiate().unwrap();
    let dir = guest_tree();
    let tree = Arc::new(DirTree::new(dir.path()).unwrap());
    let context = step_context("probe");
    let err = instance
        .plan_guest_step(tree.clone(), &context)
        .unwrap_err();
    match &err {
        PluginError::Deadline {
            plugin,
            limit,
            call,
        } => {
            assert_eq!(plugin, "sandbox-probe");
            assert_eq!(*limit, DEADLINE);
            assert_eq!(*call, "post-step.plan");
        }
        other => panic!("expected a deadline error, got {other:?}"),
    }
    let message = err.to_string();
    assert!(
        message.contains("sandbox-probe") && message.contains("300 ms"),
        "{message}"
    );
    assert!(
        bystander.answers() > before,
        "the other plugin stopped answering"
    );
    // The stopped instance is retired; a fresh one works.
    assert!(matches!(instance.ping(), Err(PluginError::Retired { .. })));
    plugin.instantiate().unwrap().ping().unwrap();
    bystander.finish();
}

#[test]
fn a_memory_hog_is_stopped_at_its_cap_while_others_keep_answering() {
    let bystander = Bystander::start();
    let before = bystander.answers();
    let err = plan_on_guest_tree(&probe(&[("action", "alloc")], Grants::default())).unwrap_err();
    match &err {
        PluginError::MemoryLimit {
            plugin,
            limit_bytes,
            requested_bytes,
            ..
        } => {
            assert_eq!(plugin, "sandbox-probe");
            assert_eq!(*limit_bytes, MEMORY_LIMIT);
            assert!(*requested_bytes > MEMORY_LIMIT);
        }
        other => panic!("expected a memory-limit error, got {other:?}"),
    }
    let message = err.to_string();
    assert!(
        message.contains("sandbox-probe") && message.contains("limit of 64 MiB"),
        "{message}"
    );
    assert!(
        bystander.answers() > before,
        "the other plugin stopped answering"
    );
    bystander.finish();
}

#[test]
fn a_panic_is_a_trap_that_names_the_plugin() {
    let err = plan_on_guest_tree(&probe(&[("action", "panic")], Grants::default())).unwrap_err();
    match &err {
        PluginError::Trap { plugin, call, .. } => {
            assert_eq!(plugin, "sandbox-probe");
            assert_eq!(*call, "post-step.plan");
        }
        other => panic!("expected a trap, got {other:?}"),
    }
}

#[test]
fn grants_the_plugin_did_not_ask_for_have_no_effect() {
    let data = tempfile::tempdir().unwrap();
    let grants = Grants {
        network: vec!["127.0.0.1:443".parse().unwrap()],
        dirs: vec![DirGrant {
            host: data.path().to_path_buf(),
            guest: "/data".to_string(),
            write: true,
        }],
        disk_write: true,
        tls: Vec::new(),
    };
    let settings = PluginSettings {
        grants,
        ..PluginSettings::default()
    };
    let plugin = runtime()
        .load(template_wasm(), "template", settings)
        .unwrap();
    let meta = plugin.meta();
    assert!(meta.grants.network.is_empty());
    assert!(meta.grants.dirs.is_empty());
    assert!(!meta.grants.disk_write);
    assert_eq!(meta.unused_grants.len(), 3, "{:?}", meta.unused_grants);
}
