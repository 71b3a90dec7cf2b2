//! Shared helpers of the integration tests in `tests/*.rs`: where the fixture
//! plugins are, a loopback HTTP server, guest trees, and byte surgery on
//! components.

pub mod azurite;
pub mod child;
pub mod conformance;
pub mod control;
pub mod disk_layout;
pub mod fake_arm;
pub mod fixture_tree;
pub mod fs_ext4;
pub mod fs_images;
pub mod fs_reiserfs;
pub mod fs_xfs;
pub mod guest_disks;
pub mod guest_net;
pub mod guest_nm;
pub mod images;
pub mod vsphere_sim;

use std::io::{BufRead, BufReader, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::thread::JoinHandle;

/// The `sandbox-probe` fixture plugin (`tests/fixtures/sandbox-probe`), built by `build.rs`.
pub fn sandbox_probe_path() -> PathBuf {
    PathBuf::from(env!("HOMEWARD_FIXTURE_SANDBOX_PROBE"))
}

/// The `disk-probe` fixture plugin (`tests/fixtures/disk-probe`), built by `build.rs`.
pub fn disk_probe_path() -> PathBuf {
    PathBuf::from(env!("HOMEWARD_FIXTURE_DISK_PROBE"))
}

/// The `broken-step` fixture plugin (`tests/fixtures/broken-step`), built by `build.rs`.
pub fn broken_step_path() -> PathBuf {
    PathBuf::from(env!("HOMEWARD_FIXTURE_BROKEN_STEP"))
}

/// A compile cache shared by every test of one test binary, so a plugin
/// compiles once per binary however many tests load it.
pub fn shared_cache_dir() -> &'static Path {
    static DIR: std::sync::OnceLock<tempfile::TempDir> = std::sync::OnceLock::new();
    DIR.get_or_init(|| tempfile::tempdir().expect("temp dir"))
        .path()
}

/// The API error (`PluginError::Failed`) a plugin call returned; panics on
/// success or on a stopped call.
pub fn api_failure<T: std::fmt::Debug>(
    result: Result<T, homeward::plugin::PluginError>,
) -> homeward::plugin::Failure {
    match result {
        Err(homeward::plugin::PluginError::Failed { failure, .. }) => failure,
        other => panic!("expected an API error, got {other:?}"),
    }
}

/// The template plugin's bytes, as embedded in the host.
pub fn template_wasm() -> &'static [u8] {
    homeward::embedded::TEMPLATE.wasm
}

/// Replaces `from` with `to` (same length) inside the component's manifest
/// section, e.g. to make a plugin claim another API version. The section is
/// opaque to WebAssembly validation, so the result is still a valid component.
pub fn patch_manifest(wasm: &[u8], from: &str, to: &str) -> Vec<u8> {
    assert_eq!(from.len(), to.len(), "patches must keep the length");
    let at = find(wasm, b"homeward-manifest").expect("template has a manifest section");
    let offset = at + find(&wasm[at..], from.as_bytes()).expect("text to patch is in the manifest");
    let mut out = wasm.to_vec();
    out[offset..offset + to.len()].copy_from_slice(to.as_bytes());
    out
}

fn find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    haystack.windows(needle.len()).position(|w| w == needle)
}

/// A made-up plugin-set path for parsing text that never touches the disk.
pub fn config_source() -> PathBuf {
    PathBuf::from("/etc/homeward/homeward.toml")
}

/// (line, severity, key) triples, the essence of a diagnostics list.
pub fn diagnostic_summary(
    diagnostics: &[homeward::config::Diagnostic],
) -> Vec<(usize, homeward::config::Severity, &str)> {
    diagnostics
        .iter()
        .map(|d| (d.line, d.severity, d.key.as_str()))
        .collect()
}

/// The context a guest step gets for VM `vm_name`, with no NICs recorded.
pub fn step_context(vm_name: &str) -> homeward::plugin::instance::StepContext {
    homeward::plugin::instance::StepContext {
        vm_name: vm_name.to_string(),
        recorded_nics: Vec::new(),
        mac_map: Vec::new(),
    }
}

/// Plans `plugin` (a guest step) on a fresh [`guest_tree`], in a fresh instance.
pub fn plan_on_guest_tree(
    plugin: &homeward::plugin::LoadedPlugin,
) -> Result<homeward::plugin::instance::StepPlan, homeward::plugin::PluginError> {
    let dir = guest_tree();
    let tree =
        std::sync::Arc::new(homeward::guest_fs::DirTree::new(dir.path()).expect("guest tree"));
    plugin
        .instantiate()?
        .plan_guest_step(tree, &step_context("probe"))
}

/// Writes a small guest root (os-release, hostname, motd) into a new temp dir.
pub fn guest_tree() -> tempfile::TempDir {
    let dir = tempfile::tempdir().expect("temp dir");
    let etc = dir.path().join("etc");
    std::fs::create_dir_all(&etc).expect("mkdir etc");
    std::fs::write(etc.join("os-release"), "ID=rhel\nVERSION_ID=\"8.9\"\n").expect("write");
    std::fs::write(etc.join("hostname"), "web01\n").expect("write");
    std::fs::write(etc.join("motd"), "Authorized use only.\n").expect("write");
    dir
}

/// A minimal HTTP/1.1 server on 127.0.0.1 with an ephemeral port that answers
/// every request with `200 hello from <port>` and counts them. Stops on drop.
pub struct HttpServer {
    addr: SocketAddr,
    hits: Arc<AtomicUsize>,
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

impl HttpServer {
    /// Starts the server.
    pub fn start() -> HttpServer {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind loopback");
        let addr = listener.local_addr().expect("local addr");
        let hits = Arc::new(AtomicUsize::new(0));
        let stop = Arc::new(AtomicBool::new(false));
        let (h, s) = (hits.clone(), stop.clone());
        let thread = std::thread::spawn(move || {
            for stream in listener.incoming() {
                if s.load(Ordering::SeqCst) {
                    break;
                }
                if let Ok(stream) = stream {
                    h.fetch_add(1, Ordering::SeqCst);
                    let _ = answer(stream, addr.port());
                }
            }
        });
        HttpServer {
            addr,
            hits,
            stop,
            thread: Some(thread),
        }
    }

    /// `127.0.0.1:port`.
    pub fn authority(&self) -> String {
        self.addr.to_string()
    }

    /// `http://127.0.0.1:port/`.
    pub fn url(&self) -> String {
        format!("http://{}/", self.addr)
    }

    /// How many connections it has served.
    pub fn hits(&self) -> usize {
        self.hits.load(Ordering::SeqCst)
    }
}

fn answer(stream: TcpStream, port: u16) -> std::io::Result<()> {
    let mut reader = BufReader::new(stream.try_clone()?);
    let mut line = String::new();
    while reader.read_line(&mut line)? > 2 {
        line.clear();
    }
    let body = format!("hello from {port}");
    let mut stream = stream;
    write!(
        stream,
        "HTTP/1.1 200 OK\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}",
        body.len()
    )?;
    stream.flush()
}

impl Drop for HttpServer {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        // Wake the accept loop so it sees the flag.
        let _ = TcpStream::connect(self.addr);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// Runs the `homeward` command line in-process; returns whether it succeeded and its output.
pub fn homeward(args: &[&str]) -> (bool, String) {
    let (code, text) = homeward_exit(args);
    (code == std::process::ExitCode::SUCCESS, text)
}

/// Runs the `homeward` command line in-process; returns its exit code (an
/// error that reaches `main` exits as `main` would: 1, or the code a client
/// command's error carries) and its output.
pub fn homeward_exit(args: &[&str]) -> (std::process::ExitCode, String) {
    let mut out = Vec::new();
    let argv = std::iter::once("homeward").chain(args.iter().copied());
    let result = homeward::cli::run(argv, &mut out);
    let mut text = String::from_utf8_lossy(&out).into_owned();
    let code = match result {
        Ok(code) => code,
        Err(e) => {
            text.push_str(&format!("error: {e:#}\n"));
            homeward::cli::exit_code(&e)
        }
    };
    (code, text)
}

/// Writes `text` to `dir/name` and returns the path.
pub fn write_file(dir: &Path, name: &str, text: &str) -> PathBuf {
    let path = dir.join(name);
    std::fs::write(&path, text).expect("write file");
    path
}
