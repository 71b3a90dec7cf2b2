//! A control API server started in-process for the `control_*` tests: a
//! state directory with its store and token files, an orchestrator over the
//! lab site and lab cloud adapters, and the server on 127.0.0.1:0, stopped
//! when the value is dropped.

use homeward::control::auth;
use homeward::control::server::{self, ServerHandle};
use homeward::control::state::StateDir;
use homeward::jobs::SchedulerOptions;
use homeward::lab::cloud::{self as lab_cloud, LabCloud};
use homeward::lab::hypervisor::{self as lab_site, LabSite, LabVm};
use homeward::plugin::{PluginSettings, Runtime, RuntimeOptions};
use homeward::store::Role;
use homeward::workflow::{Env, Orchestrator};
use std::path::PathBuf;
use std::sync::Arc;

/// A running control API server (see the module docs).
pub struct TestServer {
    /// The server's state directory.
    pub state: StateDir,
    /// `http://127.0.0.1:PORT`.
    pub url: String,
    /// The orchestrator it serves.
    pub orchestrator: Orchestrator,
    /// The lab site (`onprem` once added), when the server has one.
    pub site: Option<LabSite>,
    handle: Option<ServerHandle>,
    runtime: tokio::runtime::Runtime,
    _dir: Option<tempfile::TempDir>,
}

impl TestServer {
    /// A server over a fresh lab site and cloud in a temporary directory;
    /// its plugin set holds the two lab adapters (ids `lab-hypervisor` and
    /// `lab-cloud`). No site, group or item is recorded yet.
    pub fn lab() -> TestServer {
        warm_compile_cache();
        let dir = tempfile::tempdir().expect("temp dir");
        let site = LabSite::create(&dir.path().join("site")).expect("lab site");
        let cloud = LabCloud::create(&dir.path().join("cloud")).expect("lab cloud");
        let runtime = Runtime::new(RuntimeOptions {
            cache_dir: Some(crate::shared_cache_dir().to_path_buf()),
            ..RuntimeOptions::default()
        })
        .expect("plugin runtime");
        let plugins = vec![
            runtime
                .load(
                    homeward::embedded::LAB_HYPERVISOR.wasm,
                    "embedded:lab-hypervisor",
                    site.settings(lab_site::ADMIN_USER, lab_site::ADMIN_PASSWORD),
                )
                .expect("lab hypervisor plugin"),
            runtime
                .load(
                    homeward::embedded::LAB_CLOUD.wasm,
                    "embedded:lab-cloud",
                    cloud.settings(
                        lab_cloud::CONTRIBUTOR,
                        homeward::config::Secret::new(lab_cloud::CONTRIBUTOR_SECRET),
                    ),
                )
                .expect("lab cloud plugin"),
        ];
        let env = Arc::new(Env::from_plugins(runtime, plugins));
        let state = StateDir::new(dir.path().join("state"));
        let (store, _tokens) = server::open_state(&state).expect("state directory");
        let orchestrator = Orchestrator::new(store, env, SchedulerOptions::default());
        let mut server = TestServer::serve(orchestrator, state);
        server.site = Some(site);
        server._dir = Some(dir);
        server
    }

    /// Serves `orchestrator`, whose store lives in `state` (token files are
    /// made there if missing), on 127.0.0.1:0; starts its scheduler.
    pub fn serve(orchestrator: Orchestrator, state: StateDir) -> TestServer {
        auth::ensure_token_files(orchestrator.store(), &state).expect("token files");
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .enable_all()
            .build()
            .expect("tokio runtime");
        let handle = runtime.block_on(async {
            orchestrator.start().expect("scheduler starts");
            server::spawn(orchestrator.clone(), "127.0.0.1:0".parse().unwrap())
                .await
                .expect("control API starts")
        });
        TestServer {
            state,
            url: handle.url(),
            orchestrator,
            site: None,
            handle: Some(handle),
            runtime,
            _dir: None,
        }
    }

    /// Adds a powered-on VM with disks of these sizes to the lab site; returns its id.
    pub fn add_vm(&self, name: &str, disks: &[u64]) -> String {
        let site = self.site.as_ref().expect("a lab server");
        let mut vm = LabVm::new(name, disks);
        vm.power = lab_site::format::Power::PoweredOn;
        site.add_vm(&vm).expect("add VM").id
    }

    /// The token file of a role.
    pub fn token_file(&self, role: Role) -> PathBuf {
        self.state.token_path(role)
    }

    /// The token of a role.
    pub fn token(&self, role: Role) -> String {
        std::fs::read_to_string(self.token_file(role))
            .expect("token file")
            .trim()
            .to_string()
    }

    /// Runs `future` on the server's runtime.
    pub fn block_on<F: std::future::Future>(&self, future: F) -> F::Output {
        self.runtime.block_on(future)
    }

    /// The CLI's connection options for this server with a role's token.
    pub fn cli_args(&self, role: Role) -> Vec<String> {
        vec![
            "--server".to_string(),
            self.url.clone(),
            "--token-file".to_string(),
            self.token_file(role).display().to_string(),
        ]
    }

    /// Stops the server and its scheduler (the store stays open while the
    /// orchestrator lives).
    pub fn stop(&mut self) {
        if let Some(handle) = self.handle.take() {
            let orchestrator = self.orchestrator.clone();
            self.runtime.block_on(async {
                handle.stop().await.expect("server stops");
                orchestrator.shutdown().await;
            });
        }
    }

    /// Stops the server and lets go of everything it held, the store (and
    /// its lock) included; returns the temporary directory, which lives on
    /// with the caller.
    pub fn close(mut self) -> Option<tempfile::TempDir> {
        self.stop();
        self._dir.take()
    }
}

/// Compiles the lab adapters into the shared cache once, while other tests
/// of the binary wait, instead of once per test in parallel.
fn warm_compile_cache() {
    static WARM: std::sync::OnceLock<()> = std::sync::OnceLock::new();
    WARM.get_or_init(|| {
        let runtime = Runtime::new(RuntimeOptions {
            cache_dir: Some(crate::shared_cache_dir().to_path_buf()),
            ..RuntimeOptions::default()
        })
        .expect("plugin runtime");
        for wasm in [
            homeward::embedded::LAB_HYPERVISOR.wasm,
            homeward::embedded::LAB_CLOUD.wasm,
        ] {
            runtime
                .load(wasm, "embedded", PluginSettings::default())
                .expect("lab plugin compiles");
        }
    });
}

impl Drop for TestServer {
    fn drop(&mut self) {
        self.stop();
    }
}
