//! **A fake** Azure Resource Manager and Microsoft identity platform token
//! endpoint on `127.0.0.1`, for testing the Azure adapter's compute calls.
//! No real ARM can run here; this is not one. It is a small HTTP/1.1 server
//! (std TCP, one thread per connection, `Connection: close`) that follows
//! the request and response shapes of the published API versions it names,
//! and refuses any other version:
//!
//! - OAuth2 v2.0 token endpoint, client-credentials grant:
//!   `POST /<tenant>/oauth2/v2.0/token` (form body with `grant_type`,
//!   `client_id`, `client_secret`, `scope`) → `{"token_type":"Bearer",
//!   "expires_in":3599,"access_token":…}`; a wrong secret → 401
//!   `invalid_client` (AADSTS7000215), an unknown client → 400
//!   `unauthorized_client` (AADSTS700016), another scope → 400 `invalid_scope`.
//! - `Microsoft.Resources` 2021-04-01: GET a resource group.
//! - `Microsoft.Compute` **2023-03-01**: virtual machines — GET (with
//!   `$expand=instanceView`), GET `/instanceView`, PUT (create, attaching
//!   managed disks or `vhd.uri` page blobs with `createOption: Attach`),
//!   DELETE, POST `powerOff` / `deallocate` / `start`.
//! - `Microsoft.Network` **2023-05-01**: network interfaces (GET, PUT with a
//!   static or dynamic private IP in a subnet, DELETE), virtual networks and
//!   subnets (GET).
//! - Long-running operations: changes answer 201/202 with
//!   `Azure-AsyncOperation` (polled: `{"status":"InProgress"|"Succeeded"}`)
//!   and, for POST and DELETE, `Location` (202 until done). Each operation
//!   reports `InProgress` for [`FakeArm::set_polls`] polls (default 1), and
//!   every answer says `Retry-After: 0` to keep tests fast
//!   ([`FakeArm::set_poll_wait`] changes it). A change takes
//!   effect when its operation succeeds (a VM reads `PowerState/stopping`
//!   or `deallocating` meanwhile).
//! - Errors as ARM sends them, `{"error":{"code","message"}}`: 404
//!   `ResourceNotFound` / `ResourceGroupNotFound` / `SubscriptionNotFound`,
//!   401 `InvalidAuthenticationToken`, 403 `AuthorizationFailed` naming the
//!   action (for the Reader principal), 400 `InvalidApiVersionParameter`,
//!   `PrivateIPAddressNotInSubnet`, `PrivateIPAddressInUse`,
//!   409 `Conflict` for a disk attached to another VM.
//!
//! Simplifications, so no one mistakes it for ARM: one subscription, one
//! resource group, one location; a NIC gets its MAC when created (Azure
//! assigns it when a VM using it starts); names compare case-insensitively
//! everywhere; no ETags, tags, zones or extensions.
//!
//! Tests inject faults on the next ARM requests (the token endpoint is never
//! faulted): [`FakeArm::throttle_next`] (429 with `Retry-After: 1`),
//! [`FakeArm::fail_next`] (any status, e.g. 503 or 404). Every request is
//! recorded ([`FakeArm::requests`]) with its headers and body, so tests can
//! check the bearer token, the api-version and what was sent.

use homeward::config::{HostPort, Secret};
use homeward::plugin::PluginSettings;
use serde_json::{Value, json};
use std::collections::{BTreeMap, VecDeque};
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{Ipv4Addr, SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::thread::JoinHandle;
use std::time::Duration;

/// The fake's one subscription.
pub const SUBSCRIPTION: &str = "5f1a7c3e-0000-4000-8000-00000000a2e0";
/// The fake's one resource group.
pub const RESOURCE_GROUP: &str = "homeward-rg";
/// Its location.
pub const LOCATION: &str = "westeurope";
/// The tenant of the token endpoint.
pub const TENANT: &str = "7e57e57e-0000-4000-8000-000000000001";
/// A principal with the Contributor role on the resource group.
pub const CONTRIBUTOR: &str = "0c0a7b1b-0000-4000-8000-00000000c001";
/// Its client secret.
pub const CONTRIBUTOR_SECRET: &str = "fake-contributor-secret-Q9x~f00";
/// A principal with the Reader role.
pub const READER: &str = "0c0a7b1b-0000-4000-8000-00000000ead0";
/// Its client secret.
pub const READER_SECRET: &str = "fake-reader-secret-Z2k~b4r";
/// The scope tokens must be asked for.
pub const ARM_SCOPE: &str = "https://management.azure.com/.default";
/// API versions the fake serves, per provider.
pub const COMPUTE_API: &str = "2023-03-01";
/// `Microsoft.Network` API version.
pub const NETWORK_API: &str = "2023-05-01";
/// `Microsoft.Resources` API version.
pub const RESOURCES_API: &str = "2021-04-01";

/// One request as the fake received it.
#[derive(Debug, Clone)]
pub struct Recorded {
    /// `GET`, `PUT`...
    pub method: String,
    /// Path without query.
    pub path: String,
    /// Decoded query parameters.
    pub query: Vec<(String, String)>,
    /// Headers, lower-case names.
    pub headers: Vec<(String, String)>,
    /// Body as text.
    pub body: String,
    /// The status the fake answered.
    pub status: u16,
}

impl Recorded {
    /// A header's value.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
    }

    /// A query parameter's value.
    pub fn param(&self, name: &str) -> Option<&str> {
        self.query
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
    }

    /// The body as JSON (`Null` when it is not).
    pub fn json(&self) -> Value {
        serde_json::from_str(&self.body).unwrap_or(Value::Null)
    }
}

/// A seeded VM.
#[derive(Debug, Clone)]
pub struct SeededVm {
    /// ARM id.
    pub id: String,
    /// Name.
    pub name: String,
    /// Its managed disk ids, OS disk first.
    pub disk_ids: Vec<String>,
    /// Its NIC's id.
    pub nic_id: String,
    /// Its NIC's MAC, lower case with colons.
    pub mac: String,
    /// Its private IP.
    pub private_ip: String,
    /// The subnet id.
    pub subnet_id: String,
}

#[derive(Debug, Clone)]
struct Vm {
    name: String,
    vm_id: String,
    size: String,
    /// `running`, `stopped`, `deallocated`, `stopping`...
    power: String,
    provisioning: String,
    /// Storage-profile disk entries as sent (managed id or vhd uri), with size.
    os_disk: Value,
    data_disks: Vec<Value>,
    nics: Vec<(String, bool)>, // (NIC name, deleteOption Delete)
}

#[derive(Debug, Clone)]
struct Nic {
    name: String,
    mac: String,
    subnet_id: String,
    ip: Ipv4Addr,
    allocation: String,
    provisioning: String,
}

#[derive(Debug, Clone)]
struct Vnet {
    name: String,
    prefixes: Vec<String>,
    subnets: Vec<(String, String)>,
}

#[derive(Debug, Clone)]
enum Effect {
    Power { vm: String, to: String },
    VmCreated { vm: String },
    VmDeleted { vm: String },
    NicCreated { nic: String },
    NicDeleted { nic: String },
}

#[derive(Debug, Clone)]
struct Operation {
    provider: String,
    polls_left: u32,
    effect: Option<Effect>,
    done: bool,
}

#[derive(Debug, Clone)]
struct Fault {
    status: u16,
    code: String,
    retry_after: Option<u64>,
}

#[derive(Default)]
struct State {
    vms: BTreeMap<String, Vm>,
    nics: BTreeMap<String, Nic>,
    vnets: BTreeMap<String, Vnet>,
    /// Managed disks: name → size in GiB.
    disks: BTreeMap<String, u64>,
    operations: BTreeMap<String, Operation>,
    faults: VecDeque<Fault>,
    /// Issued token → client id.
    tokens: BTreeMap<String, String>,
    requests: Vec<Recorded>,
    polls: u32,
    /// `Retry-After` (seconds) of accepted changes and in-progress polls.
    poll_wait: u64,
    counter: u64,
}

/// The running fake. Stops on drop.
pub struct FakeArm {
    addr: SocketAddr,
    state: Arc<Mutex<State>>,
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

fn lock(state: &Mutex<State>) -> MutexGuard<'_, State> {
    state.lock().unwrap_or_else(|e| e.into_inner())
}

impl FakeArm {
    /// Starts the fake with nothing in its resource group.
    pub fn start() -> FakeArm {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind loopback");
        let addr = listener.local_addr().expect("local addr");
        let state = Arc::new(Mutex::new(State {
            polls: 1,
            ..State::default()
        }));
        let stop = Arc::new(AtomicBool::new(false));
        let (st, sp) = (state.clone(), stop.clone());
        let thread = std::thread::spawn(move || {
            for stream in listener.incoming() {
                if sp.load(Ordering::SeqCst) {
                    break;
                }
                if let Ok(stream) = stream {
                    let st = st.clone();
                    std::thread::spawn(move || {
                        let _ = serve(stream, addr, &st);
                    });
                }
            }
        });
        FakeArm {
            addr,
            state,
            stop,
            thread: Some(thread),
        }
    }

    /// `http://127.0.0.1:PORT` (the ARM endpoint).
    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// `127.0.0.1:PORT`.
    pub fn host_port(&self) -> String {
        self.addr.to_string()
    }

    /// The token endpoint URL.
    pub fn token_endpoint(&self) -> String {
        format!("{}/{TENANT}/oauth2/v2.0/token", self.url())
    }

    /// Stops listening; later connections are refused.
    pub fn stop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        let _ = TcpStream::connect(self.addr);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }

    /// How many polls each operation reports `InProgress` before it succeeds.
    pub fn set_polls(&self, polls: u32) {
        lock(&self.state).polls = polls;
    }

    /// The `Retry-After` (seconds) that accepted changes and in-progress
    /// polls carry (default 0).
    pub fn set_poll_wait(&self, seconds: u64) {
        lock(&self.state).poll_wait = seconds;
    }

    /// The next `n` ARM requests answer 429 `TooManyRequests` with `Retry-After: 1`.
    pub fn throttle_next(&self, n: usize) {
        self.fail_next(n, 429, "TooManyRequests", Some(1));
    }

    /// The next `n` ARM requests answer `status` with error `code` (and
    /// `Retry-After` when given).
    pub fn fail_next(&self, n: usize, status: u16, code: &str, retry_after: Option<u64>) {
        let mut s = lock(&self.state);
        for _ in 0..n {
            s.faults.push_back(Fault {
                status,
                code: code.to_string(),
                retry_after,
            });
        }
    }

    /// Every request so far.
    pub fn requests(&self) -> Vec<Recorded> {
        lock(&self.state).requests.clone()
    }

    /// Forgets the recorded requests.
    pub fn clear_requests(&self) {
        lock(&self.state).requests.clear();
    }

    /// A virtual network with subnets `(name, prefix)`; its id.
    pub fn add_vnet(&self, name: &str, prefixes: &[&str], subnets: &[(&str, &str)]) -> String {
        lock(&self.state).vnets.insert(
            name.to_lowercase(),
            Vnet {
                name: name.to_string(),
                prefixes: prefixes.iter().map(|p| p.to_string()).collect(),
                subnets: subnets
                    .iter()
                    .map(|(n, p)| (n.to_string(), p.to_string()))
                    .collect(),
            },
        );
        vnet_id(name)
    }

    /// A managed disk of `size_gb` GiB; its id.
    pub fn add_disk(&self, name: &str, size_gb: u64) -> String {
        lock(&self.state).disks.insert(name.to_lowercase(), size_gb);
        disk_id(name)
    }

    /// A running VM with managed disks of the given sizes (OS first) and one
    /// NIC with a static `ip` in `vnet/subnet`.
    pub fn add_vm(
        &self,
        name: &str,
        disk_gb: &[u64],
        vnet: &str,
        subnet: &str,
        ip: &str,
    ) -> SeededVm {
        let mut disk_ids = Vec::new();
        let mut entries = Vec::new();
        for (i, gb) in disk_gb.iter().enumerate() {
            let disk = if i == 0 {
                format!("{name}-os")
            } else {
                format!("{name}-data{}", i - 1)
            };
            let id = self.add_disk(&disk, *gb);
            let mut entry = json!({
                "name": disk, "createOption": "Attach", "caching": "ReadWrite",
                "managedDisk": {"id": id, "storageAccountType": "Premium_LRS"},
                "deleteOption": "Detach", "diskSizeGB": gb,
            });
            if i > 0 {
                entry["lun"] = json!(i - 1);
            }
            entries.push(entry);
            disk_ids.push(id);
        }
        let mut s = lock(&self.state);
        let nic_name = format!("{name}-nic0");
        let n = next(&mut s);
        let nic = Nic {
            name: nic_name.clone(),
            mac: mac(n),
            subnet_id: subnet_id(vnet, subnet),
            ip: ip.parse().expect("an IPv4 address"),
            allocation: "Static".to_string(),
            provisioning: "Succeeded".to_string(),
        };
        let seeded = SeededVm {
            id: vm_id(name),
            name: name.to_string(),
            disk_ids,
            nic_id: nic_id(&nic_name),
            mac: nic.mac.to_lowercase().replace('-', ":"),
            private_ip: ip.to_string(),
            subnet_id: nic.subnet_id.clone(),
        };
        s.nics.insert(nic_name.to_lowercase(), nic);
        let mut entries = entries.into_iter();
        let mut os_disk = entries.next().unwrap_or(Value::Null);
        os_disk["osType"] = json!("Linux");
        let vm = Vm {
            name: name.to_string(),
            vm_id: uuid(n),
            size: "Standard_D2s_v5".to_string(),
            power: "running".to_string(),
            provisioning: "Succeeded".to_string(),
            os_disk,
            data_disks: entries.collect(),
            nics: vec![(nic_name, true)],
        };
        s.vms.insert(name.to_lowercase(), vm);
        seeded
    }

    /// A VM's power code (`running`, `deallocated`...), `None` if it does not exist.
    pub fn power(&self, name: &str) -> Option<String> {
        lock(&self.state)
            .vms
            .get(&name.to_lowercase())
            .map(|v| v.power.clone())
    }

    /// Whether a NIC exists.
    pub fn has_nic(&self, name: &str) -> bool {
        lock(&self.state).nics.contains_key(&name.to_lowercase())
    }

    /// Settings for the Azure adapter against this fake as `client_id`
    /// with `secret` (no storage).
    pub fn plugin_settings(&self, client_id: &str, secret: &str) -> PluginSettings {
        let mut settings = PluginSettings::default();
        settings.grants.network = vec![HostPort::from_authority("127.0.0.1", self.addr.port())];
        for (k, v) in [
            ("subscription-id", SUBSCRIPTION.to_string()),
            ("resource-group", RESOURCE_GROUP.to_string()),
            ("arm-endpoint", self.url()),
            ("token-endpoint", self.token_endpoint()),
            ("tenant-id", TENANT.to_string()),
            ("client-id", client_id.to_string()),
            ("timeout-ms", "15000".to_string()),
        ] {
            settings.config.insert(k.to_string(), v);
        }
        settings
            .secrets
            .insert("client-secret".to_string(), Secret::new(secret));
        settings
    }

    /// Writes `dir/homeward.toml` with one entry `[plugins.<id>]` at `wasm`,
    /// set up like [`plugin_settings`](Self::plugin_settings) as the
    /// Contributor but without `arm-endpoint` (the `--target` URL is the ARM
    /// endpoint), plus `extra` config lines (`key = "value"`) and `grants`
    /// (host:port); the secret is in `dir/client-secret`, never in the TOML.
    pub fn write_plugin_set(
        &self,
        dir: &Path,
        id: &str,
        wasm: &Path,
        extra: &[(&str, &str)],
        grants: &[String],
    ) -> PathBuf {
        let secret_file = dir.join("client-secret");
        std::fs::write(&secret_file, CONTRIBUTOR_SECRET).expect("write secret file");
        let mut network = vec![format!("{:?}", self.host_port())];
        network.extend(grants.iter().map(|g| format!("{g:?}")));
        let mut config = format!(
            "subscription-id = {:?}\nresource-group = {:?}\ntoken-endpoint = {:?}\ntenant-id = {:?}\nclient-id = {:?}\ntimeout-ms = \"15000\"\n",
            SUBSCRIPTION,
            RESOURCE_GROUP,
            self.token_endpoint(),
            TENANT,
            CONTRIBUTOR
        );
        let mut secrets = format!(
            "client-secret = {{ file = {:?} }}\n",
            secret_file.display().to_string()
        );
        for (k, v) in extra {
            if let Some(secret) = k.strip_prefix("secret:") {
                let file = dir.join(secret);
                std::fs::write(&file, v).expect("write secret file");
                secrets.push_str(&format!(
                    "{secret} = {{ file = {:?} }}\n",
                    file.display().to_string()
                ));
            } else {
                config.push_str(&format!("{k} = {v:?}\n"));
            }
        }
        let text = format!(
            "[plugins.{id}]\npath = {:?}\n\n[plugins.{id}.grants]\nnetwork = [{}]\n\n[plugins.{id}.config]\n{config}\n[plugins.{id}.secrets]\n{secrets}",
            wasm.display().to_string(),
            network.join(", ")
        );
        let path = dir.join("homeward.toml");
        std::fs::write(&path, text).expect("write plugin set");
        path
    }
}

impl Drop for FakeArm {
    fn drop(&mut self) {
        self.stop();
    }
}

// --- ids --------------------------------------------------------------------

fn group_path() -> String {
    format!("/subscriptions/{SUBSCRIPTION}/resourceGroups/{RESOURCE_GROUP}")
}

/// The id of VM `name`.
pub fn vm_id(name: &str) -> String {
    format!(
        "{}/providers/Microsoft.Compute/virtualMachines/{name}",
        group_path()
    )
}

/// The id of managed disk `name`.
pub fn disk_id(name: &str) -> String {
    format!("{}/providers/Microsoft.Compute/disks/{name}", group_path())
}

/// The id of NIC `name`.
pub fn nic_id(name: &str) -> String {
    format!(
        "{}/providers/Microsoft.Network/networkInterfaces/{name}",
        group_path()
    )
}

/// The id of virtual network `name`.
pub fn vnet_id(name: &str) -> String {
    format!(
        "{}/providers/Microsoft.Network/virtualNetworks/{name}",
        group_path()
    )
}

/// The id of subnet `subnet` of `vnet`.
pub fn subnet_id(vnet: &str, subnet: &str) -> String {
    format!("{}/subnets/{subnet}", vnet_id(vnet))
}

fn next(s: &mut State) -> u64 {
    s.counter += 1;
    s.counter
}

fn mac(n: u64) -> String {
    format!(
        "00-0D-3A-{:02X}-{:02X}-{:02X}",
        (n >> 16) & 0xff,
        (n >> 8) & 0xff,
        n & 0xff
    )
}

fn uuid(n: u64) -> String {
    format!("fa4e0000-0000-4000-8000-{n:012x}")
}

// --- HTTP -------------------------------------------------------------------

struct Answer {
    status: u16,
    headers: Vec<(String, String)>,
    body: String,
}

fn answer(status: u16, body: Value) -> Answer {
    Answer {
        status,
        headers: Vec::new(),
        body: if body.is_null() {
            String::new()
        } else {
            body.to_string()
        },
    }
}

fn arm_error(status: u16, code: &str, message: &str) -> Answer {
    answer(status, json!({"error": {"code": code, "message": message}}))
}

fn reason(status: u16) -> &'static str {
    match status {
        200 => "OK",
        201 => "Created",
        202 => "Accepted",
        204 => "No Content",
        400 => "Bad Request",
        401 => "Unauthorized",
        403 => "Forbidden",
        404 => "Not Found",
        409 => "Conflict",
        429 => "Too Many Requests",
        500 => "Internal Server Error",
        503 => "Service Unavailable",
        _ => "Status",
    }
}

fn decode(text: &str) -> String {
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let hex = bytes
            .get(i + 1..i + 3)
            .and_then(|h| std::str::from_utf8(h).ok())
            .and_then(|h| u8::from_str_radix(h, 16).ok());
        match (bytes[i], hex) {
            (b'+', _) => out.push(b' '),
            (b'%', Some(b)) => {
                out.push(b);
                i += 2;
            }
            (b, _) => out.push(b),
        }
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

fn parse_form(text: &str) -> Vec<(String, String)> {
    text.split('&')
        .filter(|p| !p.is_empty())
        .map(|p| {
            let (k, v) = p.split_once('=').unwrap_or((p, ""));
            (decode(k), decode(v))
        })
        .collect()
}

fn serve(stream: TcpStream, addr: SocketAddr, state: &Mutex<State>) -> std::io::Result<()> {
    stream.set_read_timeout(Some(Duration::from_secs(10)))?;
    let mut reader = BufReader::new(stream.try_clone()?);
    let mut line = String::new();
    reader.read_line(&mut line)?;
    let mut parts = line.split_whitespace();
    let method = parts.next().unwrap_or("").to_string();
    let target = parts.next().unwrap_or("/").to_string();
    let mut headers = Vec::new();
    loop {
        let mut h = String::new();
        if reader.read_line(&mut h)? == 0 || h.trim().is_empty() {
            break;
        }
        if let Some((n, v)) = h.split_once(':') {
            headers.push((n.trim().to_lowercase(), v.trim().to_string()));
        }
    }
    let get = |name: &str| {
        headers
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.clone())
    };
    let mut body = Vec::new();
    if let Some(len) = get("content-length").and_then(|v| v.parse::<usize>().ok()) {
        body.resize(len, 0);
        reader.read_exact(&mut body)?;
    } else if get("transfer-encoding").is_some_and(|v| v.eq_ignore_ascii_case("chunked")) {
        loop {
            let mut size = String::new();
            reader.read_line(&mut size)?;
            let n = usize::from_str_radix(size.trim().split(';').next().unwrap_or("0"), 16)
                .unwrap_or(0);
            if n == 0 {
                let mut end = String::new();
                reader.read_line(&mut end)?;
                break;
            }
            let mut chunk = vec![0; n];
            reader.read_exact(&mut chunk)?;
            body.extend_from_slice(&chunk);
            let mut crlf = String::new();
            reader.read_line(&mut crlf)?;
        }
    }
    let (path, query_text) = target.split_once('?').unwrap_or((&target, ""));
    let mut recorded = Recorded {
        method,
        path: decode(path),
        query: parse_form(query_text),
        headers,
        body: String::from_utf8_lossy(&body).into_owned(),
        status: 0,
    };
    let base = format!("http://{addr}");
    let mut reply = {
        let mut s = lock(state);
        route(&mut s, &recorded, &base)
    };
    reply
        .headers
        .push(("x-ms-request-id".into(), "fake-arm".into()));
    recorded.status = reply.status;
    lock(state).requests.push(recorded);
    let mut out = stream;
    let mut head = format!("HTTP/1.1 {} {}\r\n", reply.status, reason(reply.status));
    if !reply.body.is_empty() {
        head.push_str("content-type: application/json; charset=utf-8\r\n");
    }
    for (n, v) in &reply.headers {
        head.push_str(&format!("{n}: {v}\r\n"));
    }
    head.push_str(&format!(
        "content-length: {}\r\nconnection: close\r\n\r\n",
        reply.body.len()
    ));
    out.write_all(head.as_bytes())?;
    out.write_all(reply.body.as_bytes())?;
    out.flush()
}

// --- routing ----------------------------------------------------------------

fn route(s: &mut State, r: &Recorded, base: &str) -> Answer {
    if r.path.ends_with("/oauth2/v2.0/token") {
        return token(s, r);
    }
    if let Some(fault) = s.faults.pop_front() {
        let mut a = arm_error(
            fault.status,
            &fault.code,
            "fault injected by the fake ARM server",
        );
        if let Some(after) = fault.retry_after {
            a.headers.push(("retry-after".into(), after.to_string()));
        }
        return a;
    }
    let client = match r
        .header("authorization")
        .and_then(|a| a.strip_prefix("Bearer "))
    {
        None => {
            return arm_error(
                401,
                "AuthenticationFailed",
                "Authentication failed. The 'Authorization' header is missing.",
            );
        }
        Some(t) => match s.tokens.get(t) {
            Some(client) => client.clone(),
            None => {
                return arm_error(
                    401,
                    "InvalidAuthenticationToken",
                    "The access token is invalid.",
                );
            }
        },
    };
    let segs: Vec<&str> = r.path.trim_matches('/').split('/').collect();
    let lower: Vec<String> = segs.iter().map(|p| p.to_lowercase()).collect();
    let l: Vec<&str> = lower.iter().map(String::as_str).collect();
    match l.as_slice() {
        [
            "subscriptions",
            sub,
            "providers",
            provider,
            "locations",
            _,
            "operations",
            op,
        ] => {
            if *sub != SUBSCRIPTION {
                return arm_error(
                    404,
                    "SubscriptionNotFound",
                    &format!("The subscription '{sub}' could not be found."),
                );
            }
            let provider = provider.to_string();
            let op = op.to_string();
            operation(s, r, &provider, &op)
        }
        ["subscriptions", sub, "resourcegroups", rg] => {
            if let Some(a) = check_api(r, RESOURCES_API) {
                return a;
            }
            if *sub != SUBSCRIPTION {
                return arm_error(
                    404,
                    "SubscriptionNotFound",
                    &format!("The subscription '{sub}' could not be found."),
                );
            }
            if *rg != RESOURCE_GROUP.to_lowercase() {
                return arm_error(
                    404,
                    "ResourceGroupNotFound",
                    &format!("Resource group '{}' could not be found.", segs[3]),
                );
            }
            answer(
                200,
                json!({"id": group_path(), "name": RESOURCE_GROUP, "type": "Microsoft.Resources/resourceGroups", "location": LOCATION, "properties": {"provisioningState": "Succeeded"}}),
            )
        }
        [
            "subscriptions",
            sub,
            "resourcegroups",
            rg,
            "providers",
            ns,
            kind,
            rest @ ..,
        ] => {
            if *sub != SUBSCRIPTION {
                return arm_error(
                    404,
                    "SubscriptionNotFound",
                    &format!("The subscription '{}' could not be found.", segs[1]),
                );
            }
            if *rg != RESOURCE_GROUP.to_lowercase() {
                return arm_error(
                    404,
                    "ResourceGroupNotFound",
                    &format!("Resource group '{}' could not be found.", segs[3]),
                );
            }
            let names: Vec<&str> = segs[7..].to_vec();
            let _ = rest;
            match (*ns, *kind) {
                ("microsoft.compute", "virtualmachines") => {
                    if let Some(a) = check_api(r, COMPUTE_API) {
                        return a;
                    }
                    compute(s, r, &client, &names, base)
                }
                ("microsoft.network", "networkinterfaces") => {
                    if let Some(a) = check_api(r, NETWORK_API) {
                        return a;
                    }
                    nics(s, r, &client, &names, base)
                }
                ("microsoft.network", "virtualnetworks") => {
                    if let Some(a) = check_api(r, NETWORK_API) {
                        return a;
                    }
                    vnets(s, r, &names)
                }
                _ => arm_error(
                    400,
                    "InvalidResourceType",
                    &format!(
                        "The resource type '{}' could not be found in the namespace '{}' for api version '{}'.",
                        segs[6],
                        segs[5],
                        r.param("api-version").unwrap_or("")
                    ),
                ),
            }
        }
        _ => arm_error(
            404,
            "NotFound",
            &format!("No route for {} {}", r.method, r.path),
        ),
    }
}

fn check_api(r: &Recorded, want: &str) -> Option<Answer> {
    match r.param("api-version") {
        Some(v) if v == want => None,
        Some(v) => Some(arm_error(
            400,
            "InvalidApiVersionParameter",
            &format!(
                "The api-version '{v}' is invalid. The fake ARM server serves only '{want}' here."
            ),
        )),
        None => Some(arm_error(
            400,
            "MissingApiVersionParameter",
            "The api-version query parameter (?api-version=) is required for all requests.",
        )),
    }
}

fn token(s: &mut State, r: &Recorded) -> Answer {
    let form = parse_form(&r.body);
    let field = |k: &str| {
        form.iter()
            .find(|(n, _)| n == k)
            .map(|(_, v)| v.as_str())
            .unwrap_or("")
    };
    let aad = |status: u16, error: &str, code: u32, description: &str| {
        answer(
            status,
            json!({
                "error": error,
                "error_description": format!("AADSTS{code}: {description}\r\nTrace ID: 00000000-0000-0000-0000-000000000000\r\nCorrelation ID: 00000000-0000-0000-0000-000000000000\r\nTimestamp: 2024-01-01 00:00:00Z"),
                "error_codes": [code],
            }),
        )
    };
    if r.method != "POST" || field("grant_type") != "client_credentials" {
        return aad(
            400,
            "unsupported_grant_type",
            70003,
            "The app requested an unsupported grant type.",
        );
    }
    if field("scope") != ARM_SCOPE {
        return aad(
            400,
            "invalid_scope",
            1002012,
            "The provided value for scope is not valid.",
        );
    }
    let client = field("client_id");
    let secret = match client {
        CONTRIBUTOR => CONTRIBUTOR_SECRET,
        READER => READER_SECRET,
        _ => {
            return aad(
                400,
                "unauthorized_client",
                700016,
                &format!(
                    "Application with identifier '{client}' was not found in the directory '{TENANT}'."
                ),
            );
        }
    };
    if field("client_secret") != secret {
        return aad(
            401,
            "invalid_client",
            7000215,
            "Invalid client secret provided. Ensure the secret being sent in the request is the client secret value, not the client secret ID, for a secret added to app.",
        );
    }
    let n = next(s);
    let token = format!("fake-token-{n}-{}", client.len());
    s.tokens.insert(token.clone(), client.to_string());
    answer(
        200,
        json!({"token_type": "Bearer", "expires_in": 3599, "ext_expires_in": 3599, "access_token": token}),
    )
}

/// 403 for the Reader doing `action`.
fn authorize(client: &str, action: &str, scope: &str) -> Option<Answer> {
    if client == READER {
        return Some(arm_error(
            403,
            "AuthorizationFailed",
            &format!(
                "The client '{client}' with object id '{client}' does not have authorization to perform action '{action}' over scope '{scope}' or the scope is invalid. If access was recently granted, please refresh your credentials."
            ),
        ));
    }
    None
}

/// Starts an operation; the accepted answer with its headers.
fn accept(
    s: &mut State,
    status: u16,
    provider: &str,
    effect: Effect,
    body: Value,
    base: &str,
    with_location: bool,
) -> Answer {
    let n = next(s);
    let op = format!("{:08x}-0000-4000-8000-{n:012x}", n);
    let polls = s.polls;
    s.operations.insert(
        op.clone(),
        Operation {
            provider: provider.to_string(),
            polls_left: polls,
            effect: Some(effect),
            done: false,
        },
    );
    if polls == 0 {
        finish(s, &op);
    }
    let api = if provider == "Microsoft.Compute" {
        COMPUTE_API
    } else {
        NETWORK_API
    };
    let url = format!(
        "{base}/subscriptions/{SUBSCRIPTION}/providers/{provider}/locations/{LOCATION}/operations/{op}"
    );
    let mut a = answer(status, body);
    a.headers.push((
        "azure-asyncoperation".into(),
        format!("{url}?api-version={api}"),
    ));
    if with_location {
        a.headers.push((
            "location".into(),
            format!("{url}?monitor=true&api-version={api}"),
        ));
    }
    a.headers
        .push(("retry-after".into(), s.poll_wait.to_string()));
    a
}

fn finish(s: &mut State, op: &str) {
    let Some(effect) = s.operations.get_mut(op).and_then(|o| {
        o.done = true;
        o.effect.take()
    }) else {
        return;
    };
    match effect {
        Effect::Power { vm, to } => {
            if let Some(v) = s.vms.get_mut(&vm) {
                v.power = to;
            }
        }
        Effect::VmCreated { vm } => {
            if let Some(v) = s.vms.get_mut(&vm) {
                v.provisioning = "Succeeded".into();
                v.power = "running".into();
            }
        }
        Effect::VmDeleted { vm } => {
            if let Some(v) = s.vms.remove(&vm) {
                for (nic, delete) in v.nics {
                    if delete {
                        s.nics.remove(&nic.to_lowercase());
                    }
                }
            }
        }
        Effect::NicCreated { nic } => {
            if let Some(n) = s.nics.get_mut(&nic) {
                n.provisioning = "Succeeded".into();
            }
        }
        Effect::NicDeleted { nic } => {
            s.nics.remove(&nic);
        }
    }
}

fn operation(s: &mut State, r: &Recorded, provider: &str, op: &str) -> Answer {
    let Some(o) = s.operations.get(op).cloned() else {
        return arm_error(
            404,
            "OperationNotFound",
            &format!("The operation '{op}' was not found."),
        );
    };
    if !o.provider.eq_ignore_ascii_case(provider) {
        return arm_error(
            404,
            "OperationNotFound",
            &format!("The operation '{op}' was not found."),
        );
    }
    let api = if provider == "microsoft.compute" {
        COMPUTE_API
    } else {
        NETWORK_API
    };
    if let Some(a) = check_api(r, api) {
        return a;
    }
    if !o.done {
        // `polls` answers say InProgress; the poll after them sees it done.
        if o.polls_left == 0 {
            finish(s, op);
        } else if let Some(op) = s.operations.get_mut(op) {
            op.polls_left -= 1;
        }
    }
    let done = s.operations.get(op).is_some_and(|o| o.done);
    let monitor = r.param("monitor") == Some("true");
    let mut a = match (monitor, done) {
        (true, true) => answer(200, Value::Null),
        (true, false) => answer(202, Value::Null),
        (false, true) => answer(
            200,
            json!({"name": op, "status": "Succeeded", "startTime": "2024-01-01T00:00:00Z", "endTime": "2024-01-01T00:00:01Z"}),
        ),
        (false, false) => answer(
            200,
            json!({"name": op, "status": "InProgress", "startTime": "2024-01-01T00:00:00Z"}),
        ),
    };
    a.headers
        .push(("retry-after".into(), s.poll_wait.to_string()));
    a
}

fn vm_json(vm: &Vm, instance_view: bool) -> Value {
    let mut body = json!({
        "id": vm_id(&vm.name),
        "name": vm.name,
        "type": "Microsoft.Compute/virtualMachines",
        "location": LOCATION,
        "properties": {
            "vmId": vm.vm_id,
            "hardwareProfile": {"vmSize": vm.size},
            "storageProfile": {"osDisk": vm.os_disk, "dataDisks": vm.data_disks},
            "networkProfile": {"networkInterfaces": vm.nics.iter().enumerate().map(|(i, (n, delete))| json!({
                "id": nic_id(n),
                "properties": {"primary": i == 0, "deleteOption": if *delete { "Delete" } else { "Detach" }},
            })).collect::<Vec<_>>()},
            "provisioningState": vm.provisioning,
            "timeCreated": "2024-01-01T00:00:00.0000000+00:00",
        },
    });
    if instance_view {
        body["properties"]["instanceView"] = instance_view_json(vm);
    }
    body
}

fn instance_view_json(vm: &Vm) -> Value {
    let display = match vm.power.as_str() {
        "running" => "VM running",
        "stopped" => "VM stopped",
        "deallocated" => "VM deallocated",
        "stopping" => "VM stopping",
        "deallocating" => "VM deallocating",
        "starting" => "VM starting",
        _ => "VM state unknown",
    };
    json!({"statuses": [
        {"code": format!("ProvisioningState/{}", vm.provisioning.to_lowercase()), "level": "Info", "displayStatus": format!("Provisioning {}", vm.provisioning.to_lowercase())},
        {"code": format!("PowerState/{}", vm.power), "level": "Info", "displayStatus": display},
    ]})
}

fn not_found(kind: &str, name: &str) -> Answer {
    arm_error(
        404,
        "ResourceNotFound",
        &format!(
            "The Resource '{kind}/{name}' under resource group '{RESOURCE_GROUP}' was not found. For more details please go to https://aka.ms/ARMResourceNotFoundFix"
        ),
    )
}

fn compute(s: &mut State, r: &Recorded, client: &str, names: &[&str], base: &str) -> Answer {
    const KIND: &str = "Microsoft.Compute/virtualMachines";
    let Some(name) = names.first() else {
        return arm_error(400, "InvalidRequestUri", "A VM name is required.");
    };
    let key = name.to_lowercase();
    let scope = vm_id(name);
    let action = names.get(1).map(|a| a.to_lowercase());
    match (r.method.as_str(), action.as_deref()) {
        ("GET", None) => match s.vms.get(&key) {
            Some(vm) => answer(200, vm_json(vm, r.param("$expand") == Some("instanceView"))),
            None => not_found(KIND, name),
        },
        ("GET", Some("instanceview")) => match s.vms.get(&key) {
            Some(vm) => answer(200, instance_view_json(vm)),
            None => not_found(KIND, name),
        },
        ("POST", Some(act @ ("poweroff" | "deallocate" | "start"))) => {
            let (action_name, during, to) = match act {
                "poweroff" => ("powerOff", "stopping", "stopped"),
                "deallocate" => ("deallocate", "deallocating", "deallocated"),
                _ => ("start", "starting", "running"),
            };
            if let Some(a) = authorize(client, &format!("{KIND}/{action_name}/action"), &scope) {
                return a;
            }
            let Some(vm) = s.vms.get_mut(&key) else {
                return not_found(KIND, name);
            };
            if act == "poweroff" && vm.power == "deallocated" {
                // Azure leaves a deallocated VM deallocated.
                return accept(
                    s,
                    202,
                    "Microsoft.Compute",
                    Effect::Power {
                        vm: key.clone(),
                        to: "deallocated".into(),
                    },
                    Value::Null,
                    base,
                    true,
                );
            }
            vm.power = during.to_string();
            accept(
                s,
                202,
                "Microsoft.Compute",
                Effect::Power {
                    vm: key,
                    to: to.into(),
                },
                Value::Null,
                base,
                true,
            )
        }
        ("DELETE", None) => {
            if let Some(a) = authorize(client, &format!("{KIND}/delete"), &scope) {
                return a;
            }
            let Some(vm) = s.vms.get_mut(&key) else {
                return answer(204, Value::Null);
            };
            vm.provisioning = "Deleting".into();
            accept(
                s,
                202,
                "Microsoft.Compute",
                Effect::VmDeleted { vm: key },
                Value::Null,
                base,
                true,
            )
        }
        ("PUT", None) => {
            if let Some(a) = authorize(client, &format!("{KIND}/write"), &scope) {
                return a;
            }
            create_vm(s, r, name, base)
        }
        _ => arm_error(
            405,
            "MethodNotAllowed",
            &format!("{} is not supported on {}", r.method, r.path),
        ),
    }
}

fn create_vm(s: &mut State, r: &Recorded, name: &str, base: &str) -> Answer {
    let key = name.to_lowercase();
    if s.vms.contains_key(&key) {
        return arm_error(
            409,
            "Conflict",
            "The fake ARM server does not update existing VMs.",
        );
    }
    let body = r.json();
    let props = &body["properties"];
    let size = props["hardwareProfile"]["vmSize"].as_str().unwrap_or("");
    if size.is_empty() || body["location"].as_str().unwrap_or("").is_empty() {
        return arm_error(
            400,
            "InvalidParameter",
            "Required parameter 'location' or 'hardwareProfile.vmSize' is missing (null).",
        );
    }
    let mut entries = vec![props["storageProfile"]["osDisk"].clone()];
    entries.extend(
        props["storageProfile"]["dataDisks"]
            .as_array()
            .cloned()
            .unwrap_or_default(),
    );
    let mut disks = Vec::new();
    for (i, entry) in entries.iter().enumerate() {
        if entry["createOption"].as_str() != Some("Attach") {
            return arm_error(
                400,
                "InvalidParameter",
                "The fake ARM server creates VMs from existing disks only (createOption: Attach).",
            );
        }
        if i == 0 && entry["osType"].as_str().is_none() {
            return arm_error(
                400,
                "InvalidParameter",
                "Required parameter 'osDisk.osType' is missing (null).",
            );
        }
        if i > 0 && entry["lun"].as_u64().is_none() {
            return arm_error(
                400,
                "InvalidParameter",
                "Required parameter 'dataDisk.lun' is missing (null).",
            );
        }
        let mut entry = entry.clone();
        if let Some(id) = entry["managedDisk"]["id"].as_str() {
            let disk = id.rsplit('/').next().unwrap_or("").to_lowercase();
            let Some(gb) = s.disks.get(&disk).copied() else {
                return arm_error(404, "NotFound", &format!("Disk {id} was not found."));
            };
            let owner = s.vms.values().find(|v| {
                std::iter::once(&v.os_disk)
                    .chain(v.data_disks.iter())
                    .any(|d| {
                        d["managedDisk"]["id"]
                            .as_str()
                            .is_some_and(|o| o.eq_ignore_ascii_case(id))
                    })
            });
            if let Some(owner) = owner {
                return arm_error(
                    409,
                    "Conflict",
                    &format!(
                        "Disk '{}' is already attached to VM '{}'.",
                        disk,
                        vm_id(&owner.name)
                    ),
                );
            }
            entry["diskSizeGB"] = json!(gb);
        } else if entry["vhd"]["uri"].as_str().is_none() {
            return arm_error(
                400,
                "InvalidParameter",
                "A disk needs managedDisk.id or vhd.uri.",
            );
        }
        disks.push(entry);
    }
    let mut nics = Vec::new();
    for nic in props["networkProfile"]["networkInterfaces"]
        .as_array()
        .cloned()
        .unwrap_or_default()
    {
        let id = nic["id"].as_str().unwrap_or("");
        let nic_name = id.rsplit('/').next().unwrap_or("").to_lowercase();
        let Some(found) = s.nics.get(&nic_name) else {
            return arm_error(
                400,
                "InvalidResourceReference",
                &format!(
                    "Resource {id} referenced by resource {} was not found.",
                    vm_id(name)
                ),
            );
        };
        nics.push((
            found.name.clone(),
            nic["properties"]["deleteOption"].as_str() == Some("Delete"),
        ));
    }
    if nics.is_empty() {
        return arm_error(
            400,
            "InvalidParameter",
            "A VM needs at least one network interface.",
        );
    }
    let n = next(s);
    let mut disks = disks.into_iter();
    let vm = Vm {
        name: name.to_string(),
        vm_id: uuid(n),
        size: size.to_string(),
        power: "starting".into(),
        provisioning: "Creating".into(),
        os_disk: disks.next().unwrap_or(Value::Null),
        data_disks: disks.collect(),
        nics,
    };
    let created = vm_json(&vm, false);
    s.vms.insert(key.clone(), vm);
    accept(
        s,
        201,
        "Microsoft.Compute",
        Effect::VmCreated { vm: key },
        created,
        base,
        false,
    )
}

fn nic_json(nic: &Nic) -> Value {
    json!({
        "id": nic_id(&nic.name),
        "name": nic.name,
        "type": "Microsoft.Network/networkInterfaces",
        "location": LOCATION,
        "properties": {
            "provisioningState": nic.provisioning,
            "macAddress": nic.mac,
            "primary": true,
            "ipConfigurations": [{
                "name": "ipconfig1",
                "id": format!("{}/ipConfigurations/ipconfig1", nic_id(&nic.name)),
                "properties": {
                    "privateIPAddress": nic.ip.to_string(),
                    "privateIPAllocationMethod": nic.allocation,
                    "privateIPAddressVersion": "IPv4",
                    "subnet": {"id": nic.subnet_id},
                    "primary": true,
                    "provisioningState": nic.provisioning,
                },
            }],
            "dnsSettings": {"dnsServers": [], "appliedDnsServers": []},
            "enableAcceleratedNetworking": false,
        },
    })
}

fn prefix_of(text: &str) -> Option<(u32, u32)> {
    let (a, l) = text.split_once('/')?;
    let a: Ipv4Addr = a.parse().ok()?;
    let l: u32 = l.parse().ok()?;
    let mask = if l == 0 { 0 } else { u32::MAX << (32 - l) };
    Some((u32::from(a) & mask, mask))
}

fn nics(s: &mut State, r: &Recorded, client: &str, names: &[&str], base: &str) -> Answer {
    const KIND: &str = "Microsoft.Network/networkInterfaces";
    let Some(name) = names.first() else {
        return arm_error(400, "InvalidRequestUri", "A NIC name is required.");
    };
    let key = name.to_lowercase();
    let scope = nic_id(name);
    match r.method.as_str() {
        "GET" => match s.nics.get(&key) {
            Some(nic) => answer(200, nic_json(nic)),
            None => not_found(KIND, name),
        },
        "DELETE" => {
            if let Some(a) = authorize(client, &format!("{KIND}/delete"), &scope) {
                return a;
            }
            if !s.nics.contains_key(&key) {
                return answer(204, Value::Null);
            }
            if let Some(vm) = s
                .vms
                .values()
                .find(|v| v.nics.iter().any(|(n, _)| n.to_lowercase() == key))
            {
                return arm_error(
                    400,
                    "NicInUse",
                    &format!(
                        "Network Interface {scope} is used by existing resource {}. In order to delete the network interface, it must be dissociated from the resource.",
                        vm_id(&vm.name)
                    ),
                );
            }
            accept(
                s,
                202,
                "Microsoft.Network",
                Effect::NicDeleted { nic: key },
                Value::Null,
                base,
                true,
            )
        }
        "PUT" => {
            if let Some(a) = authorize(client, &format!("{KIND}/write"), &scope) {
                return a;
            }
            let body = r.json();
            let config = &body["properties"]["ipConfigurations"][0]["properties"];
            let subnet = config["subnet"]["id"].as_str().unwrap_or("").to_string();
            let parts: Vec<&str> = subnet.trim_matches('/').split('/').collect();
            let (vnet, sub) = match parts.as_slice() {
                [.., "virtualNetworks", v, "subnets", sn] => (v.to_string(), sn.to_string()),
                _ => {
                    return arm_error(
                        400,
                        "InvalidResourceReference",
                        &format!("Subnet '{subnet}' is not a subnet id."),
                    );
                }
            };
            let Some(prefix) = s
                .vnets
                .get(&vnet.to_lowercase())
                .and_then(|v| v.subnets.iter().find(|(n, _)| n.eq_ignore_ascii_case(&sub)))
                .map(|(_, p)| p.clone())
            else {
                return arm_error(
                    400,
                    "InvalidResourceReference",
                    &format!("Resource {subnet} referenced by resource {scope} was not found."),
                );
            };
            let Some((network, mask)) = prefix_of(&prefix) else {
                return arm_error(500, "InternalServerError", "bad seeded prefix");
            };
            let used: Vec<Ipv4Addr> = s
                .nics
                .values()
                .filter(|n| n.subnet_id.eq_ignore_ascii_case(&subnet))
                .map(|n| n.ip)
                .collect();
            let static_ip = config["privateIPAllocationMethod"].as_str() == Some("Static");
            let ip = if static_ip {
                let Some(ip) = config["privateIPAddress"]
                    .as_str()
                    .and_then(|i| i.parse::<Ipv4Addr>().ok())
                else {
                    return arm_error(
                        400,
                        "InvalidParameter",
                        "A static allocation needs privateIPAddress.",
                    );
                };
                if u32::from(ip) & mask != network {
                    return arm_error(
                        400,
                        "PrivateIPAddressNotInSubnet",
                        &format!(
                            "IP configuration {scope}/ipConfigurations/ipconfig1 is referencing a private IP address {ip} that is not in the address prefix {prefix} of subnet {sub}."
                        ),
                    );
                }
                if used.contains(&ip) {
                    return arm_error(
                        400,
                        "PrivateIPAddressInUse",
                        &format!(
                            "IP configuration {scope}/ipConfigurations/ipconfig1 is using the private IP address {ip} which is already allocated to resource in subnet {sub}."
                        ),
                    );
                }
                ip
            } else {
                let Some(ip) = (4..(!mask))
                    .map(|h| Ipv4Addr::from(network + h))
                    .find(|ip| !used.contains(ip))
                else {
                    return arm_error(400, "SubnetIsFull", "The subnet has no free address.");
                };
                ip
            };
            let n = next(s);
            let nic = Nic {
                name: name.to_string(),
                mac: mac(n),
                subnet_id: subnet.clone(),
                ip,
                allocation: if static_ip { "Static" } else { "Dynamic" }.into(),
                provisioning: "Updating".into(),
            };
            let created = nic_json(&nic);
            s.nics.insert(key.clone(), nic);
            accept(
                s,
                201,
                "Microsoft.Network",
                Effect::NicCreated { nic: key },
                created,
                base,
                false,
            )
        }
        _ => arm_error(
            405,
            "MethodNotAllowed",
            &format!("{} is not supported on {}", r.method, r.path),
        ),
    }
}

fn vnets(s: &mut State, r: &Recorded, names: &[&str]) -> Answer {
    if r.method != "GET" {
        return arm_error(
            405,
            "MethodNotAllowed",
            "The fake ARM server only reads virtual networks.",
        );
    }
    let Some(name) = names.first() else {
        return arm_error(
            400,
            "InvalidRequestUri",
            "A virtual network name is required.",
        );
    };
    let Some(vnet) = s.vnets.get(&name.to_lowercase()) else {
        return not_found("Microsoft.Network/virtualNetworks", name);
    };
    let subnet_json = |(n, p): &(String, String)| {
        json!({
            "id": subnet_id(&vnet.name, n), "name": n, "type": "Microsoft.Network/virtualNetworks/subnets",
            "properties": {"addressPrefix": p, "provisioningState": "Succeeded"},
        })
    };
    match names {
        [_] => answer(
            200,
            json!({
                "id": vnet_id(&vnet.name), "name": vnet.name, "type": "Microsoft.Network/virtualNetworks", "location": LOCATION,
                "properties": {"addressSpace": {"addressPrefixes": vnet.prefixes}, "subnets": vnet.subnets.iter().map(subnet_json).collect::<Vec<_>>(), "provisioningState": "Succeeded"},
            }),
        ),
        [_, kind, sub] if kind.eq_ignore_ascii_case("subnets") => match vnet
            .subnets
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(sub))
        {
            Some(found) => answer(200, subnet_json(found)),
            None => arm_error(
                404,
                "NotFound",
                &format!("Resource {} not found.", subnet_id(&vnet.name, sub)),
            ),
        },
        _ => arm_error(
            400,
            "InvalidResourceType",
            "Unknown child of a virtual network.",
        ),
    }
}
