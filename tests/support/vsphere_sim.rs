//! govmomi's vSphere simulator (vcsim) as a test endpoint for the hypervisor
//! adapters: a vCenter ([`Model::Vpx`]) or a standalone ESXi host
//! ([`Model::Esx`]) on `127.0.0.1`, plain HTTP, one admin and one read-only
//! account, stopped when the [`VsphereSim`] is dropped.
//!
//! The driver is the Go program in `tests/vsphere-sim/main.go` (what it adds
//! to the simulator is documented there). It is built once per source
//! version into `<target dir>/vsphere-sim/<hash>/sim` from Debian's govmomi
//! sources (`golang-go`, `golang-github-vmware-govmomi-dev`), fully offline.

use homeward::config::{HostPort, Secret};
use homeward::plugin::PluginSettings;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, Command, Stdio};
use std::sync::mpsc;
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant};

/// Where Debian's `golang-github-vmware-govmomi-dev` puts the Go sources.
const GOPATH: &str = "/usr/share/gocode";
const SIMULATOR_SOURCES: &str = "/usr/share/gocode/src/github.com/vmware/govmomi/simulator";
const INSTALL_HINT: &str = "the vSphere simulator needs Go and govmomi's sources: \
     apt-get install golang-go golang-github-vmware-govmomi-dev (scripts/test lists both in APT_PACKAGES)";
/// How long the simulator may take to print its ready line (model creation
/// writes a few VM directories; a loaded CI box is slow).
const READY_TIMEOUT: Duration = Duration::from_secs(60);
/// How long a stop waits for a clean exit (which removes the datastore
/// directories) before killing.
const STOP_GRACE: Duration = Duration::from_secs(5);

/// Which inventory the simulator serves.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Model {
    /// A vCenter: datacenter `DC0`, cluster `DC0_C0` with hosts, a standalone
    /// host `DC0_H0`, datastore `LocalDS_0`, four powered-on VMs.
    Vpx,
    /// A standalone ESXi host: `ha-datacenter`, datastore `LocalDS_0`, two VMs.
    Esx,
}

impl Model {
    fn flag(self) -> &'static str {
        match self {
            Model::Vpx => "vpx",
            Model::Esx => "esx",
        }
    }
}

/// One of the two accounts the simulator accepts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Account {
    /// Holds the `Admin` role on the root folder.
    Admin,
    /// Holds only the `ReadOnly` role (System.Anonymous, System.View,
    /// System.Read); the mutating methods the driver lists are refused with
    /// `NoPermission`.
    ReadOnly,
}

/// A running simulator. Dropping it stops it.
pub struct VsphereSim {
    model: Model,
    child: Option<Child>,
    stdin: Option<ChildStdin>,
    ready: serde_json::Value,
    url: String,
    port: u16,
    admin: (String, String),
    readonly: (String, String),
    stderr: Arc<Mutex<String>>,
    // Holds the datastores' backing directories; removed after the child.
    data_dir: Option<tempfile::TempDir>,
}

impl VsphereSim {
    /// Builds the driver if needed and starts a simulator of `model`; returns
    /// once it listens. Panics (naming the packages to install) if Go or the
    /// govmomi sources are missing.
    pub fn start(model: Model) -> VsphereSim {
        let binary = sim_binary();
        let data_dir = tempfile::tempdir().expect("temp dir for the simulator's datastores");
        let token = unique_token();
        let admin = (
            "administrator@vsphere.local".to_string(),
            format!("Adm1n-{token}"),
        );
        let readonly = (
            "reader@vsphere.local".to_string(),
            format!("R3ader-{token}"),
        );

        // Credentials go through the environment, not argv (visible in `ps`).
        let mut child = Command::new(binary)
            .args(["-model", model.flag(), "-dir"])
            .arg(data_dir.path())
            .env("VSPHERE_SIM_ADMIN", format!("{}:{}", admin.0, admin.1))
            .env(
                "VSPHERE_SIM_READONLY",
                format!("{}:{}", readonly.0, readonly.1),
            )
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start {}: {e}", binary.display()));

        let stderr = Arc::new(Mutex::new(String::new()));
        let stderr_pipe = child.stderr.take().expect("piped stderr");
        let sink = stderr.clone();
        std::thread::spawn(move || collect(stderr_pipe, &sink));

        let stdout = child.stdout.take().expect("piped stdout");
        let (tx, rx) = mpsc::channel();
        std::thread::spawn(move || {
            let mut lines = BufReader::new(stdout).lines();
            let _ = tx.send(lines.next());
            // Keep draining so the child never blocks on a full pipe.
            for _ in lines {}
        });
        let line = match rx.recv_timeout(READY_TIMEOUT) {
            Ok(Some(Ok(line))) => line,
            outcome => {
                let _ = child.kill();
                let _ = child.wait();
                panic!(
                    "the vSphere simulator ({model:?}) did not print its ready line ({outcome:?}); stderr:\n{}",
                    stderr.lock().map(|s| s.clone()).unwrap_or_default()
                );
            }
        };
        let ready: serde_json::Value = serde_json::from_str(&line)
            .unwrap_or_else(|e| panic!("simulator ready line is not JSON ({e}): {line}"));
        let url = ready["url"]
            .as_str()
            .expect("ready line has a url")
            .to_string();
        let port = url
            .strip_prefix("http://127.0.0.1:")
            .and_then(|rest| rest.split('/').next())
            .and_then(|p| p.parse().ok())
            .unwrap_or_else(|| panic!("simulator URL is not http://127.0.0.1:PORT/…: {url}"));

        VsphereSim {
            model,
            stdin: child.stdin.take(),
            child: Some(child),
            ready,
            url,
            port,
            admin,
            readonly,
            stderr,
            data_dir: Some(data_dir),
        }
    }

    /// Which inventory it serves.
    pub fn model(&self) -> Model {
        self.model
    }

    /// The SOAP endpoint, `http://127.0.0.1:PORT/sdk`.
    pub fn url(&self) -> &str {
        &self.url
    }

    /// `127.0.0.1:PORT`, as a network grant names it.
    pub fn host_port(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }

    /// The network grant that lets a plugin reach the simulator.
    pub fn network_grant(&self) -> HostPort {
        HostPort::from_authority("127.0.0.1", self.port)
    }

    /// (user, password) of the admin account.
    pub fn admin(&self) -> (&str, &str) {
        (&self.admin.0, &self.admin.1)
    }

    /// (user, password) of the read-only account.
    pub fn readonly(&self) -> (&str, &str) {
        (&self.readonly.0, &self.readonly.1)
    }

    /// (user, password) of `account`.
    pub fn credentials(&self, account: Account) -> (&str, &str) {
        match account {
            Account::Admin => self.admin(),
            Account::ReadOnly => self.readonly(),
        }
    }

    /// The directory backing datastore `name` (e.g. `LocalDS_0`); VM `X`'s
    /// files are in `X/` under it (`X.vmx`, `disk1.vmdk`, `disk1-flat.vmdk`).
    pub fn datastore_dir(&self, name: &str) -> PathBuf {
        let dir = self.ready["datastores"][name]
            .as_str()
            .unwrap_or_else(|| panic!("the simulator has no datastore {name}: {}", self.ready));
        PathBuf::from(dir)
    }

    /// Names of the datastores.
    pub fn datastores(&self) -> Vec<String> {
        self.ready["datastores"]
            .as_object()
            .map(|m| m.keys().cloned().collect())
            .unwrap_or_default()
    }

    /// Names of the VMs in the inventory at start.
    pub fn vms(&self) -> Vec<String> {
        self.names("vms")
    }

    /// Names of the hosts at start.
    pub fn hosts(&self) -> Vec<String> {
        self.names("hosts")
    }

    fn names(&self, key: &str) -> Vec<String> {
        self.ready[key]
            .as_array()
            .map(|a| {
                a.iter()
                    .filter_map(|v| v.as_str().map(str::to_string))
                    .collect()
            })
            .unwrap_or_default()
    }

    /// The whole ready line the driver printed (url, model, api_type,
    /// api_version, datastores, vms, hosts, datacenters, instanceUuid).
    pub fn ready_info(&self) -> &serde_json::Value {
        &self.ready
    }

    /// What the simulator wrote on stderr so far (for failure messages).
    pub fn stderr(&self) -> String {
        self.stderr.lock().map(|s| s.clone()).unwrap_or_default()
    }

    /// Stops the simulator and waits for it to exit; afterwards its port is
    /// closed. Closing stdin asks for a clean exit; it is killed if it lingers.
    pub fn stop(&mut self) {
        drop(self.stdin.take());
        if let Some(mut child) = self.child.take() {
            let deadline = Instant::now() + STOP_GRACE;
            loop {
                match child.try_wait() {
                    Ok(Some(_)) => break,
                    Ok(None) if Instant::now() < deadline => {
                        std::thread::sleep(Duration::from_millis(20))
                    }
                    _ => {
                        let _ = child.kill();
                        let _ = child.wait();
                        break;
                    }
                }
            }
        }
    }

    /// Settings for an adapter plugin pointed at the simulator as `account`:
    /// config `url` and `user`, secret `password`, and the network grant.
    pub fn plugin_settings(&self, account: Account) -> PluginSettings {
        let (user, password) = self.credentials(account);
        let mut settings = PluginSettings::default();
        settings.grants.network = vec![self.network_grant()];
        settings.config.insert("url".to_string(), self.url.clone());
        settings.config.insert("user".to_string(), user.to_string());
        settings
            .secrets
            .insert("password".to_string(), Secret::new(password));
        settings
    }

    /// Writes a plugin-set file `dir/homeward.toml` with one entry,
    /// `[plugins.<plugin_id>]` at `wasm`, configured like
    /// [`plugin_settings`](Self::plugin_settings); the password is referenced
    /// from `dir/<plugin_id>.password`, never written into the TOML. For
    /// `homeward --config FILE plugin test WASM --target URL`.
    pub fn write_plugin_set(
        &self,
        dir: &Path,
        plugin_id: &str,
        wasm: &Path,
        account: Account,
    ) -> PathBuf {
        let (user, password) = self.credentials(account);
        let secret_file = dir.join(format!("{plugin_id}.password"));
        write_private(&secret_file, password);
        let text = format!(
            "[plugins.{id}]\n\
             path = {path}\n\
             \n\
             [plugins.{id}.grants]\n\
             network = [{grant}]\n\
             \n\
             [plugins.{id}.config]\n\
             url = {url}\n\
             user = {user}\n\
             \n\
             [plugins.{id}.secrets]\n\
             password = {{ file = {secret} }}\n",
            id = toml_key(plugin_id),
            path = toml_string(&wasm.to_string_lossy()),
            grant = toml_string(&self.host_port()),
            url = toml_string(&self.url),
            user = toml_string(user),
            secret = toml_string(&secret_file.to_string_lossy()),
        );
        let path = dir.join("homeward.toml");
        std::fs::write(&path, text).expect("write plugin-set file");
        path
    }
}

impl Drop for VsphereSim {
    fn drop(&mut self) {
        self.stop();
        // The child is gone, so its directories can go too.
        drop(self.data_dir.take());
    }
}

/// The driver binary, built at most once per test binary (and once per
/// source version across binaries).
fn sim_binary() -> &'static Path {
    static BINARY: OnceLock<PathBuf> = OnceLock::new();
    BINARY.get_or_init(build_sim)
}

fn build_sim() -> PathBuf {
    let source = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/vsphere-sim/main.go");
    let code =
        std::fs::read(&source).unwrap_or_else(|e| panic!("cannot read {}: {e}", source.display()));
    let go_version = Command::new("go")
        .arg("version")
        .output()
        .ok()
        .filter(|o| o.status.success())
        .unwrap_or_else(|| panic!("`go` is not on PATH; {INSTALL_HINT}"));
    if !Path::new(SIMULATOR_SOURCES).is_dir() {
        panic!("{SIMULATOR_SOURCES} is missing; {INSTALL_HINT}");
    }

    let mut key = code;
    key.extend_from_slice(&go_version.stdout);
    let dir = target_dir()
        .join("vsphere-sim")
        .join(format!("{:016x}", fnv1a(&key)));
    let binary = dir.join("sim");
    if binary.is_file() {
        return binary;
    }
    std::fs::create_dir_all(&dir)
        .unwrap_or_else(|e| panic!("cannot create {}: {e}", dir.display()));

    // Build under a private name, then rename: test binaries building at the
    // same time each produce a whole file and the last rename wins.
    let partial = dir.join(format!("sim.partial-{}", std::process::id()));
    let mut go = Command::new("go");
    go.arg("build")
        .arg("-o")
        .arg(&partial)
        .arg(&source)
        .env("GO111MODULE", "off")
        .env("GOPATH", GOPATH)
        .env("CGO_ENABLED", "0")
        .env_remove("GOFLAGS");
    if std::env::var_os("HOME").is_none() && std::env::var_os("GOCACHE").is_none() {
        go.env(
            "GOCACHE",
            dir.parent().expect("has parent").join("go-cache"),
        );
    }
    let out = go
        .output()
        .unwrap_or_else(|e| panic!("cannot run `go build`: {e}; {INSTALL_HINT}"));
    if !out.status.success() {
        let _ = std::fs::remove_file(&partial);
        panic!(
            "`go build {}` failed; {INSTALL_HINT}\n{}",
            source.display(),
            String::from_utf8_lossy(&out.stderr)
        );
    }
    std::fs::rename(&partial, &binary)
        .unwrap_or_else(|e| panic!("cannot move the simulator to {}: {e}", binary.display()));
    binary
}

/// Cargo's target directory: the ancestor of this test binary that holds
/// `CACHEDIR.TAG`.
fn target_dir() -> PathBuf {
    let exe = std::env::current_exe().expect("path of the test binary");
    exe.ancestors()
        .find(|dir| dir.join("CACHEDIR.TAG").exists())
        .map(Path::to_path_buf)
        .unwrap_or_else(|| std::env::temp_dir().join("homeward-test-target"))
}

/// FNV-1a 64: a hash that stays the same across Rust versions (unlike
/// `DefaultHasher`), so the cache key of the binary is stable.
fn fnv1a(bytes: &[u8]) -> u64 {
    bytes.iter().fold(0xcbf2_9ce4_8422_2325, |h, &b| {
        (h ^ u64::from(b)).wrapping_mul(0x0000_0100_0000_01b3)
    })
}

/// Differs between simulators, so a password seen in one test's output can
/// be searched for without matching another's.
fn unique_token() -> String {
    static COUNTER: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);
    let n = COUNTER.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.subsec_nanos())
        .unwrap_or(0);
    format!("{:x}{:x}{n}", std::process::id(), nanos)
}

fn collect(mut pipe: impl Read, sink: &Mutex<String>) {
    let mut buf = [0u8; 4096];
    while let Ok(n) = pipe.read(&mut buf) {
        if n == 0 {
            break;
        }
        if let Ok(mut s) = sink.lock() {
            s.push_str(&String::from_utf8_lossy(&buf[..n]));
        }
    }
}

fn write_private(path: &Path, text: &str) {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(path)
        .unwrap_or_else(|e| panic!("cannot write {}: {e}", path.display()));
    file.write_all(text.as_bytes()).expect("write secret file");
}

/// A TOML basic string. JSON's escapes (`\"`, `\\`, `\n`, `\u00XX`) are all
/// valid TOML.
fn toml_string(s: &str) -> String {
    serde_json::to_string(s).expect("a string serialises")
}

/// A bare TOML key if it can be one, else a quoted one.
fn toml_key(s: &str) -> String {
    if !s.is_empty()
        && s.chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
    {
        s.to_string()
    } else {
        toml_string(s)
    }
}

/// An answer of the SOAP endpoint.
pub struct SoapAnswer {
    /// HTTP status.
    pub status: u16,
    /// The `vmware_soap_session` value the answer set, if any.
    pub cookie: Option<String>,
    /// The SOAP document.
    pub body: String,
}

impl SoapAnswer {
    /// Text of the first element with this local name.
    pub fn text(&self, name: &str) -> Option<String> {
        let doc = roxmltree::Document::parse(&self.body).expect("answer is XML");
        doc.descendants()
            .find(|n| n.tag_name().name() == name)
            .and_then(|n| n.text())
            .map(str::to_string)
    }

    /// Texts of every element with this local name.
    pub fn texts(&self, name: &str) -> Vec<String> {
        let doc = roxmltree::Document::parse(&self.body).expect("answer is XML");
        doc.descendants()
            .filter(|n| n.tag_name().name() == name)
            .filter_map(|n| n.text().map(str::to_string))
            .collect()
    }

    /// The `xsi:type` of the fault detail, e.g. `InvalidLogin`.
    pub fn fault_type(&self) -> Option<String> {
        let doc = roxmltree::Document::parse(&self.body).expect("answer is XML");
        let detail = doc
            .descendants()
            .find(|n| n.tag_name().name() == "detail")?;
        let fault = detail.children().find(|n| n.is_element())?;
        fault
            .attribute(("http://www.w3.org/2001/XMLSchema-instance", "type"))
            .map(str::to_string)
    }
}

impl VsphereSim {
    /// POSTs one SOAP body (`<Call xmlns="urn:vim25">…`) as `session` (a
    /// `vmware_soap_session` value) over a fresh HTTP/1.0 connection.
    pub fn soap(&self, session: Option<&str>, call: &str) -> SoapAnswer {
        let sim = self;
        let cookie = session;
        let envelope = format!(
            r#"<?xml version="1.0" encoding="UTF-8"?><soapenv:Envelope xmlns:soapenv="http://schemas.xmlsoap.org/soap/envelope/"><soapenv:Body>{call}</soapenv:Body></soapenv:Envelope>"#
        );
        let mut stream = TcpStream::connect(sim.host_port()).expect("connect to the simulator");
        stream
            .set_read_timeout(Some(Duration::from_secs(20)))
            .unwrap();
        let cookie_header = cookie
            .map(|c| format!("Cookie: vmware_soap_session={c}\r\n"))
            .unwrap_or_default();
        write!(
        stream,
        "POST /sdk HTTP/1.0\r\nHost: {}\r\nContent-Type: text/xml; charset=utf-8\r\nSOAPAction: \"urn:vim25/6.5\"\r\n{cookie_header}Content-Length: {}\r\n\r\n{envelope}",
        sim.host_port(),
        envelope.len()
    )
    .unwrap();
        let mut raw = String::new();
        stream.read_to_string(&mut raw).expect("read the answer");
        let (head, body) = raw.split_once("\r\n\r\n").expect("HTTP head and body");
        let status = head
            .split_whitespace()
            .nth(1)
            .and_then(|s| s.parse().ok())
            .expect("status code");
        let cookie = head
            .lines()
            .filter_map(|l| l.split_once(':'))
            .filter(|(k, _)| k.eq_ignore_ascii_case("set-cookie"))
            .find_map(|(_, v)| v.trim().strip_prefix("vmware_soap_session="))
            .map(|v| v.split(';').next().unwrap_or_default().to_string());
        SoapAnswer {
            status,
            cookie,
            body: body.to_string(),
        }
    }
}
