//! TLS trust for a plugin's outgoing HTTPS (`grants.tls`): the web PKI roots
//! by default, or the operator's CA file or pinned thumbprint for one granted
//! `host:port`. A real plugin (the `sandbox-probe` fixture) fetches from a
//! local HTTPS server with certificates made here; refusals must name the
//! endpoint and the fix, show the thumbprint the server presented, and never
//! let the request out.

use homeward::config::{
    self, Grants, HostPort, Thumbprint, ThumbprintAlgorithm, TlsGrant, TlsTrust,
};
use homeward::plugin::capability::{RequestedCapabilities, grant};
use homeward::plugin::instance::StepPlan;
use homeward::plugin::{
    Limits, LoadedPlugin, PluginError, PluginSettings, Runtime, RuntimeOptions,
};
use homeward_tests::{HttpServer, plan_on_guest_tree, sandbox_probe_path};
use rcgen::{
    BasicConstraints, CertificateParams, DnType, ExtendedKeyUsagePurpose, IsCa, Issuer, KeyPair,
    KeyUsagePurpose,
};
use rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer};
use sha2::{Digest, Sha256};
use std::io::{BufRead, BufReader, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, OnceLock};
use std::thread::JoinHandle;
use std::time::Duration;

/// One runtime with a compile cache for the file: each probe loads in
/// microseconds after the first compile.
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

fn probe_fetching(url: &str, grants: Grants) -> LoadedPlugin {
    let settings = PluginSettings {
        grants,
        config: [("action", "fetch"), ("url", url)]
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect(),
        limits: Limits {
            memory_bytes: 64 << 20,
            call_timeout: Duration::from_secs(10),
            fuel: None,
        },
        ..PluginSettings::default()
    };
    runtime()
        .load_file(&sandbox_probe_path(), settings)
        .unwrap()
}

fn fetch(url: &str, grants: Grants) -> Result<StepPlan, PluginError> {
    plan_on_guest_tree(&probe_fetching(url, grants))
}

/// The plugin's error, as the operator reads it.
fn refusal(result: Result<StepPlan, PluginError>) -> String {
    match result {
        Ok(plan) => panic!("expected a refusal, the plugin fetched {:?}", plan.notes),
        Err(e) => e.to_string(),
    }
}

fn grants(endpoint: &str, trust: Option<TlsTrust>) -> Grants {
    let endpoint: HostPort = endpoint.parse().unwrap();
    Grants {
        network: vec![endpoint.clone()],
        tls: trust
            .into_iter()
            .map(|trust| TlsGrant {
                endpoint: endpoint.clone(),
                trust,
            })
            .collect(),
        ..Grants::default()
    }
}

/// `sha256:AB:CD:…` computed here, independently of the host's code.
fn sha256_thumbprint(der: &[u8]) -> String {
    let hex: Vec<String> = Sha256::digest(der)
        .iter()
        .map(|b| format!("{b:02X}"))
        .collect();
    format!("sha256:{}", hex.join(":"))
}

/// Waits (up to 5 s) for the server thread to record a refused handshake:
/// the client gives up before the server has read its alert.
fn wait_for_refused_handshake(server: &HttpsServer) {
    for _ in 0..500 {
        if server.handshakes_failed() >= 1 {
            return;
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    panic!("the server never saw the handshake fail");
}

fn pin(text: &str) -> TlsTrust {
    TlsTrust::Thumbprint(text.parse().unwrap())
}

#[test]
fn default_trust_refuses_a_self_signed_endpoint_and_names_the_fix() {
    let server = HttpsServer::start(Identity::self_signed());
    let message = refusal(fetch(&server.url(), grants(&server.authority(), None)));
    assert!(
        message.contains(&format!("TLS to {} refused", server.authority())),
        "{message}"
    );
    assert!(
        message.contains("not trusted by the public CA roots"),
        "{message}"
    );
    assert!(message.contains("grants.tls"), "{message}");
    assert!(message.contains("ca = PEM file"), "{message}");
    assert!(message.contains("thumbprint = sha256:"), "{message}");
    wait_for_refused_handshake(&server);
    assert_eq!(
        server.requests(),
        0,
        "no request may follow a refused certificate"
    );
}

#[test]
fn a_ca_named_in_the_plugin_set_is_trusted_for_its_endpoint() {
    let dir = tempfile::tempdir().unwrap();
    let authority = Authority::new("vcenter");
    std::fs::create_dir(dir.path().join("certs")).unwrap();
    std::fs::write(dir.path().join("certs/vc-ca.pem"), authority.pem()).unwrap();
    let server = HttpsServer::start(authority.issue());

    // Through the plugin-set file, as an operator writes it: the CA path is
    // relative to the file.
    let text = format!(
        "[plugins.sandbox-probe]\n\
         path = \"probe.wasm\"\n\
         [plugins.sandbox-probe.grants]\n\
         network = [\"{0}\"]\n\
         tls = {{ \"{0}\" = {{ ca = \"certs/vc-ca.pem\" }} }}\n",
        server.authority()
    );
    let parsed = config::parse(&text, &dir.path().join("homeward.toml"));
    assert!(parsed.diagnostics.is_empty(), "{:?}", parsed.diagnostics);
    let set = parsed.set.unwrap();
    let granted = set.plugins[0].grants.clone();
    assert_eq!(
        granted.tls[0].trust,
        TlsTrust::Ca(dir.path().join("certs/vc-ca.pem"))
    );

    let plan = fetch(&server.url(), granted.clone()).unwrap();
    assert_eq!(plan.notes, ["status 200", "hello over TLS"]);
    // The certificate names localhost too; the name the plugin used is checked.
    let port = server.authority().rsplit(':').next().unwrap().to_string();
    let plan = fetch(&format!("https://localhost:{port}/"), granted.clone()).unwrap();
    assert_eq!(plan.notes[0], "status 200");
    assert_eq!(server.requests(), 2);

    // Another CA's certificate is refused, with the file and what was seen.
    let stranger = HttpsServer::start(Authority::new("stranger").issue());
    let grants = grants(
        &stranger.authority(),
        Some(TlsTrust::Ca(dir.path().join("certs/vc-ca.pem"))),
    );
    let message = refusal(fetch(&stranger.url(), grants));
    assert!(
        message.contains(&format!("TLS to {} refused", stranger.authority())),
        "{message}"
    );
    assert!(message.contains("vc-ca.pem"), "{message}");
    assert!(message.contains("UnknownIssuer"), "{message}");
    assert!(message.contains(&stranger.thumbprint()), "{message}");
    wait_for_refused_handshake(&stranger);
    assert_eq!(stranger.requests(), 0);
}

#[test]
fn a_pinned_thumbprint_is_trusted_in_every_spelling() {
    let server = HttpsServer::start(Identity::self_signed());
    let canonical = server.thumbprint();
    let bare = canonical
        .trim_start_matches("sha256:")
        .replace(':', "")
        .to_lowercase();
    let sha1 = Thumbprint::of(ThumbprintAlgorithm::Sha1, &server.der).to_string();
    for spelling in [canonical.clone(), bare, sha1] {
        let plan = fetch(
            &server.url(),
            grants(&server.authority(), Some(pin(&spelling))),
        )
        .unwrap_or_else(|e| panic!("pin {spelling}: {e}"));
        assert_eq!(
            plan.notes,
            ["status 200", "hello over TLS"],
            "pin {spelling}"
        );
    }
    assert_eq!(server.requests(), 3);
}

#[test]
fn a_wrong_thumbprint_is_refused_and_shows_the_servers_own() {
    let server = HttpsServer::start(Identity::self_signed());
    let other = Identity::self_signed();
    let wrong = sha256_thumbprint(&other.der);
    let message = refusal(fetch(
        &server.url(),
        grants(&server.authority(), Some(pin(&wrong))),
    ));
    assert!(
        message.contains(&format!("TLS to {} refused", server.authority())),
        "{message}"
    );
    assert!(
        message.contains(&server.thumbprint()),
        "shows the server's: {message}"
    );
    assert!(message.contains(&wrong), "shows the pin: {message}");
    wait_for_refused_handshake(&server);
    assert_eq!(
        server.requests(),
        0,
        "a refused certificate never gets the request"
    );

    // A SHA-1 pin that does not match shows both of the server's thumbprints.
    let wrong_sha1 = Thumbprint::of(ThumbprintAlgorithm::Sha1, &other.der).to_string();
    let message = refusal(fetch(
        &server.url(),
        grants(&server.authority(), Some(pin(&wrong_sha1))),
    ));
    let server_sha1 = Thumbprint::of(ThumbprintAlgorithm::Sha1, &server.der).to_string();
    assert!(message.contains(&server_sha1), "{message}");
    assert!(message.contains(&server.thumbprint()), "{message}");
    assert_eq!(server.requests(), 0);
}

#[test]
fn plain_http_is_unchanged_except_to_an_endpoint_with_a_tls_setting() {
    let plain = HttpServer::start();
    let plan = fetch(&plain.url(), grants(&plain.authority(), None)).unwrap();
    assert_eq!(plan.notes[0], "status 200");

    let pinned = HttpServer::start();
    let any_pin = sha256_thumbprint(b"not a certificate");
    let message = refusal(fetch(
        &pinned.url(),
        grants(&pinned.authority(), Some(pin(&any_pin))),
    ));
    assert!(
        message.contains(&format!("plain HTTP to {} refused", pinned.authority())),
        "{message}"
    );
    assert!(message.contains("only https"), "{message}");
    assert_eq!(pinned.hits(), 0, "a refused request never leaves the host");
}

#[test]
fn an_unreadable_ca_file_fails_the_request_clearly() {
    let server = HttpsServer::start(Identity::self_signed());
    let missing = PathBuf::from("/nonexistent/homeward-ca.pem");
    let message = refusal(fetch(
        &server.url(),
        grants(&server.authority(), Some(TlsTrust::Ca(missing))),
    ));
    assert!(message.contains("cannot read CA file"), "{message}");
    assert!(
        message.contains("/nonexistent/homeward-ca.pem"),
        "{message}"
    );
    assert_eq!(
        server.handshakes_failed() + server.requests(),
        0,
        "never connected"
    );
}

#[test]
fn tls_settings_follow_their_endpoint_through_the_granter() {
    let requested = RequestedCapabilities {
        network: vec!["vc.lab:443".parse().unwrap()],
        ..RequestedCapabilities::default()
    };
    let trust = pin(&sha256_thumbprint(b"x"));
    let mut granted = grants("vc.lab:443", Some(trust.clone()));
    granted.network.push("esx.lab:443".parse().unwrap());
    granted.tls.push(TlsGrant {
        endpoint: "esx.lab:443".parse().unwrap(),
        trust,
    });
    let (effective, _) = grant(&requested, &granted);
    let endpoints: Vec<String> = effective
        .tls
        .iter()
        .map(|t| t.endpoint.to_string())
        .collect();
    assert_eq!(endpoints, ["vc.lab:443"]);
}

#[test]
fn thumbprints_parse_in_vcenter_and_govc_spellings() {
    let der = b"certificate bytes";
    let canonical = sha256_thumbprint(der);
    let parsed: Thumbprint = canonical.parse().unwrap();
    assert_eq!(parsed.to_string(), canonical);
    assert_eq!(parsed.algorithm(), ThumbprintAlgorithm::Sha256);
    assert!(parsed.matches(der));
    assert!(!parsed.matches(b"other bytes"));
    let bare = canonical.trim_start_matches("sha256:").replace(':', "");
    assert_eq!(bare.to_lowercase().parse::<Thumbprint>().unwrap(), parsed);
    assert_eq!(bare.parse::<Thumbprint>().unwrap(), parsed);

    // SHA-1 (FIPS 180 test vector), as govc prints it.
    let abc = Thumbprint::of(ThumbprintAlgorithm::Sha1, b"abc");
    assert_eq!(
        abc.to_string(),
        "sha1:A9:99:3E:36:47:06:81:6A:BA:3E:25:71:78:50:C2:6C:9C:D0:D8:9D"
    );
    assert_eq!(
        "A9:99:3E:36:47:06:81:6A:BA:3E:25:71:78:50:C2:6C:9C:D0:D8:9D"
            .parse::<Thumbprint>()
            .unwrap(),
        abc
    );

    for (bad, says) in [
        (
            "sha256:AB:CD",
            "a sha256 thumbprint has 64 hex digits, found 4",
        ),
        ("sha1:AB", "a sha1 thumbprint has 40 hex digits, found 2"),
        (
            "ABCD",
            "expected 64 hex digits (SHA-256) or 40 (SHA-1), found 4",
        ),
        ("md5:AB", "expected hex digits"),
        (&format!("{}ZZ", &bare[2..]), "found `z`"),
    ] {
        let e = bad.parse::<Thumbprint>().unwrap_err().to_string();
        assert!(e.contains(says), "{bad}: {e}");
    }
}

#[test]
fn every_tls_mistake_in_the_plugin_set_has_a_diagnostic_with_its_line() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("probe.wasm"), b"").unwrap();
    std::fs::write(dir.path().join("not-a-ca.pem"), b"just some text\n").unwrap();
    let good_pin = sha256_thumbprint(b"cert");
    let text = format!(
        r#"[plugins.probe]
path = "probe.wasm"
[plugins.probe.grants]
network = ["vc.lab:443", "esx.lab:443", "old.lab:443", "missing.lab:443", "empty.lab:443", "both.lab:443", "LOCALHOST:8443"]
[plugins.probe.grants.tls]
"vc.lab:443" = {{ thumbprint = "{good_pin}" }}
"esx.lab:443" = {{ thumbprint = "sha256:AB:CD" }}
"old.lab:443" = {{ thumbprint = "A9:99:3E:36:47:06:81:6A:BA:3E:25:71:78:50:C2:6C:9C:D0:D8:9D" }}
"missing.lab:443" = {{ ca = "nowhere/ca.pem" }}
"empty.lab:443" = {{ ca = "not-a-ca.pem" }}
"both.lab:443" = {{ ca = "x.pem", thumbprint = "{good_pin}" }}
"typo.lab:443" = {{ thumbprint = "{good_pin}" }}
"vc.lab:8443:1" = {{ ca = "x.pem" }}
"localhost:8443" = {{ cert = "x.pem" }}
"#
    );
    let path = dir.path().join("homeward.toml");
    let parsed = config::parse(&text, &path);
    let found: Vec<(usize, String)> = parsed
        .diagnostics
        .iter()
        .map(|d| (d.line, d.to_string()))
        .collect();
    let expect = |line: usize, says: &str| {
        assert!(
            found.iter().any(|(l, d)| *l == line && d.contains(says)),
            "no diagnostic on line {line} saying {says:?}: {found:#?}"
        );
    };
    expect(7, "a sha256 thumbprint has 64 hex digits, found 4");
    expect(8, "warning");
    expect(8, "prefer the SHA-256 thumbprint");
    expect(11, "use either `ca` or `thumbprint`, not both");
    expect(12, "TLS setting for typo.lab:443, which is not granted");
    assert!(
        parsed
            .diagnostics
            .iter()
            .any(|d| d.line == 13 && d.is_error()),
        "a bad host:port key: {found:#?}"
    );
    expect(14, "unknown key `cert`");
    assert!(
        !found.iter().any(|(l, _)| *l == 6),
        "the good pin is fine: {found:#?}"
    );
    assert!(parsed.has_errors());
    assert!(parsed.set.is_none());

    // The file checks run on a valid set: CA files must hold certificates.
    let valid = text
        .lines()
        .filter(|l| {
            ![
                "\"esx.lab",
                "\"both.lab",
                "\"typo.lab",
                "\"vc.lab:8443",
                "\"localhost",
            ]
            .iter()
            .any(|bad| l.starts_with(bad))
        })
        .collect::<Vec<_>>()
        .join("\n");
    let parsed = config::parse(&valid, &path);
    let set = parsed.set.expect("the remaining entries are valid");
    let files: Vec<String> = config::check_files(&set, &valid)
        .iter()
        .map(ToString::to_string)
        .collect();
    assert_eq!(files.len(), 2, "{files:#?}");
    assert!(files[0].starts_with("homeward.toml:8:"), "{files:#?}");
    assert!(
        files[0].contains("grants.tls.\"missing.lab:443\".ca"),
        "{files:#?}"
    );
    assert!(files[0].contains("cannot read CA file"), "{files:#?}");
    assert!(files[1].starts_with("homeward.toml:9:"), "{files:#?}");
    assert!(files[1].contains("holds no certificate"), "{files:#?}");
}

// ---- a local HTTPS endpoint ----

/// A certificate and its key, as a server presents them.
struct Identity {
    der: CertificateDer<'static>,
    key: KeyPair,
}

impl Identity {
    /// What an ESXi host or a fresh vCenter has: self-signed, for 127.0.0.1.
    fn self_signed() -> Identity {
        let rcgen::CertifiedKey { cert, signing_key } =
            rcgen::generate_simple_self_signed(vec!["127.0.0.1".into(), "localhost".into()])
                .unwrap();
        Identity {
            der: cert.der().clone(),
            key: signing_key,
        }
    }
}

/// An internal certificate authority (vCenter's VMCA, say).
struct Authority {
    issuer: Issuer<'static, KeyPair>,
    pem: String,
}

impl Authority {
    fn new(name: &str) -> Authority {
        let mut params = CertificateParams::new(Vec::<String>::new()).unwrap();
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        params
            .distinguished_name
            .push(DnType::CommonName, format!("{name} test CA"));
        params.key_usages = vec![
            KeyUsagePurpose::KeyCertSign,
            KeyUsagePurpose::DigitalSignature,
        ];
        let key = KeyPair::generate().unwrap();
        let pem = params.self_signed(&key).unwrap().pem();
        Authority {
            issuer: Issuer::new(params, key),
            pem,
        }
    }

    fn pem(&self) -> &str {
        &self.pem
    }

    /// A server certificate for 127.0.0.1 and localhost.
    fn issue(&self) -> Identity {
        let mut params =
            CertificateParams::new(vec!["127.0.0.1".to_string(), "localhost".to_string()]).unwrap();
        params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
        let key = KeyPair::generate().unwrap();
        let cert = params.signed_by(&key, &self.issuer).unwrap();
        Identity {
            der: cert.der().clone(),
            key,
        }
    }
}

/// An HTTPS server on 127.0.0.1 answering every request with
/// `hello over TLS`, counting failed handshakes and served requests.
struct HttpsServer {
    addr: SocketAddr,
    der: CertificateDer<'static>,
    failed: Arc<AtomicUsize>,
    served: Arc<AtomicUsize>,
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

impl HttpsServer {
    fn start(identity: Identity) -> HttpsServer {
        let key = PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(identity.key.serialize_der()));
        let config = rustls::ServerConfig::builder_with_provider(Arc::new(
            rustls::crypto::ring::default_provider(),
        ))
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_no_client_auth()
        .with_single_cert(vec![identity.der.clone()], key)
        .unwrap();
        let config = Arc::new(config);
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        let failed = Arc::new(AtomicUsize::new(0));
        let served = Arc::new(AtomicUsize::new(0));
        let stop = Arc::new(AtomicBool::new(false));
        let (f, s, st) = (failed.clone(), served.clone(), stop.clone());
        let thread = std::thread::spawn(move || {
            for stream in listener.incoming() {
                if st.load(Ordering::SeqCst) {
                    break;
                }
                let Ok(stream) = stream else { continue };
                if !matches!(serve(stream, config.clone(), &s), Ok(true)) {
                    f.fetch_add(1, Ordering::SeqCst);
                }
            }
        });
        HttpsServer {
            addr,
            der: identity.der,
            failed,
            served,
            stop,
            thread: Some(thread),
        }
    }

    fn authority(&self) -> String {
        self.addr.to_string()
    }

    fn url(&self) -> String {
        format!("https://{}/", self.addr)
    }

    /// The SHA-256 thumbprint of its certificate, as vCenter shows it.
    fn thumbprint(&self) -> String {
        sha256_thumbprint(&self.der)
    }

    fn handshakes_failed(&self) -> usize {
        self.failed.load(Ordering::SeqCst)
    }

    fn requests(&self) -> usize {
        self.served.load(Ordering::SeqCst)
    }
}

/// Serves one connection; `Ok(true)` if a whole request came (counted in
/// `served` before the answer goes, so a client that has it sees the count).
fn serve(
    tcp: TcpStream,
    config: Arc<rustls::ServerConfig>,
    served: &AtomicUsize,
) -> std::io::Result<bool> {
    tcp.set_read_timeout(Some(Duration::from_secs(5)))?;
    let connection = rustls::ServerConnection::new(config).map_err(std::io::Error::other)?;
    let mut tls = rustls::StreamOwned::new(connection, tcp);
    let mut reader = BufReader::new(&mut tls);
    let mut line = String::new();
    let mut lines = 0;
    // The handshake happens on the first read; a refused certificate ends here.
    while reader.read_line(&mut line)? > 2 {
        lines += 1;
        line.clear();
    }
    if lines == 0 {
        return Ok(false);
    }
    served.fetch_add(1, Ordering::SeqCst);
    let body = "hello over TLS";
    write!(
        tls,
        "HTTP/1.1 200 OK\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}",
        body.len()
    )?;
    tls.flush()?;
    tls.conn.send_close_notify();
    tls.flush()?;
    Ok(true)
}

impl Drop for HttpsServer {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        // Wake the accept loop so it sees the flag.
        let _ = TcpStream::connect(self.addr);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}
