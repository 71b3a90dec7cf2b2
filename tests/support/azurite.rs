//! Azurite, Microsoft's Azure Storage emulator, as the Blob endpoint of the
//! page-blob tests: `azurite-blob` on `127.0.0.1` with an ephemeral port,
//! in-memory storage, the well-known development account, stopped when the
//! [`Azurite`] is dropped (or by [`Azurite::stop`]).
//!
//! The npm package is pinned in `tests/azurite/package.json` and its lock
//! file; `scripts/test` installs it, and [`Azurite::start`] runs
//! `npm ci` itself when `node_modules` is missing (offline when npm's cache
//! has the packages).

use homeward::disk::page_blob::{self, BlobOptions, PageBlob};
use homeward::plugin::adapter::{BlobCredential, BlobEndpoint};
use std::io::Read;
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant};

/// Azurite's development account.
pub const ACCOUNT: &str = "devstoreaccount1";
/// Its well-known key (published in Azurite's README; not a secret).
pub const KEY: &str =
    "Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsuFq2UVErCz4I6tq/K1SZFPTOtr/KBHBeksoGMGw==";

const INSTALL_HINT: &str = "Azurite needs Node.js and npm: apt-get install nodejs npm \
     (scripts/test installs tests/azurite with `npm ci`)";
/// How long Azurite may take to listen.
const READY_TIMEOUT: Duration = Duration::from_secs(30);

/// A running Azurite blob service. Dropping it stops it.
pub struct Azurite {
    child: Option<Child>,
    port: u16,
    stderr: Arc<Mutex<String>>,
    // Azurite's working directory: with in-memory persistence it should
    // write nothing, but if a version does, not into the repository.
    _workdir: tempfile::TempDir,
}

impl Azurite {
    /// Installs the package if needed and starts Azurite; returns once it
    /// answers HTTP. Retries on another port if the chosen one was taken
    /// between choosing and binding.
    pub fn start() -> Azurite {
        let bin = azurite_bin();
        let mut last_error = String::new();
        for _ in 0..5 {
            let port = free_port();
            let workdir = tempfile::tempdir().expect("temp dir for Azurite");
            let mut child = Command::new(&bin)
                .args(["--blobHost", "127.0.0.1", "--blobPort"])
                .arg(port.to_string())
                .args([
                    "--inMemoryPersistence",
                    "--skipApiVersionCheck",
                    "--silent",
                    "--disableTelemetry",
                ])
                .current_dir(workdir.path())
                .stdin(Stdio::null())
                .stdout(Stdio::null())
                .stderr(Stdio::piped())
                .spawn()
                .unwrap_or_else(|e| panic!("cannot start {}: {e}; {INSTALL_HINT}", bin.display()));
            let stderr = Arc::new(Mutex::new(String::new()));
            let pipe = child.stderr.take().expect("piped stderr");
            let sink = stderr.clone();
            std::thread::spawn(move || {
                let mut pipe = pipe;
                let mut buf = [0u8; 4096];
                while let Ok(n) = pipe.read(&mut buf) {
                    if n == 0 {
                        break;
                    }
                    if let Ok(mut s) = sink.lock() {
                        s.push_str(&String::from_utf8_lossy(&buf[..n]));
                    }
                }
            });
            let started = Instant::now();
            loop {
                if let Ok(Some(status)) = child.try_wait() {
                    last_error = format!(
                        "Azurite exited with {status} on port {port}: {}",
                        stderr.lock().map(|s| s.clone()).unwrap_or_default()
                    );
                    // Only a port taken in the meantime is worth another try.
                    if last_error.contains("EADDRINUSE") {
                        break;
                    }
                    panic!("{last_error}");
                }
                if answers_http(port) {
                    return Azurite {
                        child: Some(child),
                        port,
                        stderr,
                        _workdir: workdir,
                    };
                }
                if started.elapsed() > READY_TIMEOUT {
                    let _ = child.kill();
                    let _ = child.wait();
                    panic!(
                        "Azurite did not answer on port {port} within {READY_TIMEOUT:?}; stderr:\n{}",
                        stderr.lock().map(|s| s.clone()).unwrap_or_default()
                    );
                }
                std::thread::sleep(Duration::from_millis(50));
            }
        }
        panic!("Azurite did not start: {last_error}");
    }

    /// The port it listens on.
    pub fn port(&self) -> u16 {
        self.port
    }

    /// `http://127.0.0.1:PORT/devstoreaccount1`, the account's blob service.
    pub fn service_url(&self) -> String {
        format!("http://127.0.0.1:{}/{ACCOUNT}", self.port)
    }

    /// The URL of container `container`.
    pub fn container_url(&self, container: &str) -> String {
        format!("{}/{container}", self.service_url())
    }

    /// The URL of blob `blob` in `container` (no query).
    pub fn blob_url(&self, container: &str, blob: &str) -> String {
        format!("{}/{container}/{blob}", self.service_url())
    }

    /// The account's Shared Key credential.
    pub fn shared_key() -> BlobCredential {
        BlobCredential::SharedKey((ACCOUNT.to_string(), KEY.to_string()))
    }

    /// An account SAS (blob service; service, container and object level;
    /// read, write, delete, list, add, create) made from the account key.
    pub fn sas_token() -> String {
        page_blob::account_sas(ACCOUNT, KEY, "rwdlac", "sco", "2099-01-01T00:00:00Z")
            .expect("account SAS from the well-known key")
    }

    /// The blob `container/blob` reached with `credential`.
    pub fn endpoint(
        &self,
        container: &str,
        blob: &str,
        credential: BlobCredential,
    ) -> BlobEndpoint {
        BlobEndpoint {
            url: self.blob_url(container, blob),
            credential,
        }
    }

    /// Creates container `name` with the account key.
    pub fn create_container(&self, name: &str) {
        page_blob::create_container(
            &self.container_url(name),
            &Self::shared_key(),
            &BlobOptions::default(),
        )
        .unwrap_or_else(|e| panic!("create container {name}: {e}"));
    }

    /// Creates an empty page blob of `size` bytes (no footer) in `container`
    /// (which must exist) with the account key; returns it open for writing.
    pub fn create_page_blob(&self, container: &str, blob: &str, size: u64) -> PageBlob {
        page_blob::create_empty(
            &self.endpoint(container, blob, Self::shared_key()),
            size,
            &BlobOptions::default(),
        )
        .unwrap_or_else(|e| panic!("create page blob {container}/{blob}: {e}"))
    }

    /// Creates a page blob holding an empty fixed VHD of `capacity` bytes;
    /// returns the disk open for writing.
    pub fn create_disk(&self, container: &str, blob: &str, capacity: u64) -> PageBlob {
        page_blob::create(
            &self.endpoint(container, blob, Self::shared_key()),
            capacity,
            &BlobOptions::default(),
        )
        .unwrap_or_else(|e| panic!("create disk {container}/{blob}: {e}"))
    }

    /// What Azurite wrote to stderr so far.
    pub fn stderr(&self) -> String {
        self.stderr.lock().map(|s| s.clone()).unwrap_or_default()
    }

    /// Stops Azurite (kill; storage is in memory) and waits until its port
    /// refuses connections.
    pub fn stop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
        let started = Instant::now();
        while TcpStream::connect(("127.0.0.1", self.port)).is_ok()
            && started.elapsed() < Duration::from_secs(10)
        {
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

impl Drop for Azurite {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

/// `tests/azurite`, where the pinned package is.
pub fn package_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/azurite")
}

/// `azurite-blob` from the pinned package, installed with `npm ci` once if
/// missing.
fn azurite_bin() -> PathBuf {
    static INSTALLED: OnceLock<PathBuf> = OnceLock::new();
    INSTALLED
        .get_or_init(|| {
            let dir = package_dir();
            let bin = dir.join("node_modules/.bin/azurite-blob");
            if !bin.exists() {
                let status = Command::new("npm")
                    .args([
                        "ci",
                        "--no-audit",
                        "--no-fund",
                        "--prefer-offline",
                        "--prefix",
                    ])
                    .arg(&dir)
                    .status()
                    .unwrap_or_else(|e| panic!("cannot run npm ({e}); {INSTALL_HINT}"));
                assert!(
                    status.success(),
                    "npm ci in {} failed; {INSTALL_HINT}",
                    dir.display()
                );
            }
            assert!(bin.exists(), "{} is missing after npm ci", bin.display());
            bin
        })
        .clone()
}

/// A port nothing listens on right now.
fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("an ephemeral loopback port")
}

/// Whether something on `port` answers an HTTP request with a status line.
fn answers_http(port: u16) -> bool {
    use std::io::Write;
    let Ok(mut s) = TcpStream::connect_timeout(
        &std::net::SocketAddr::from(([127, 0, 0, 1], port)),
        Duration::from_millis(200),
    ) else {
        return false;
    };
    let _ = s.set_read_timeout(Some(Duration::from_secs(2)));
    if s.write_all(
        b"GET /devstoreaccount1?comp=list HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n",
    )
    .is_err()
    {
        return false;
    }
    let mut head = [0u8; 8];
    s.read_exact(&mut head).is_ok() && head.starts_with(b"HTTP/1.")
}
