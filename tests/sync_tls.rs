//! The two roles over mutual TLS, as separate processes: a client asks a process server (TLS) to sync one of its disks to a master target (TLS, same certificate authority), and the target ends identical to the source. Peers without a certificate from that authority get nothing, and plaintext is refused anywhere but loopback.

use homeward::disk::ImageFormat;
use homeward::sync::proto::process_server_client::ProcessServerClient;
use homeward::sync::proto::{Mode, SyncRequest, SyncSummary, sync_event};
use homeward::sync::source::{self, RetryPolicy, SyncSpec};
use homeward::sync::transport::{Security, TlsFiles};
use homeward::sync::{DEFAULT_BLOCK_SIZE, SyncError};
use homeward_tests::child::{HomewardChild, spawn_until};
use homeward_tests::images::{MIB, assert_identical, change_blocks, random_image, s};
use rcgen::{
    BasicConstraints, CertificateParams, DnType, ExtendedKeyUsagePurpose, IsCa, Issuer, KeyPair,
    KeyUsagePurpose,
};
use std::path::{Path, PathBuf};
use std::time::Duration;
use tonic::transport::{Certificate, Channel, ClientTlsConfig, Endpoint, Identity};

#[test]
#[ignore = "entry point of child processes, run by the other tests"]
fn child_entry() {
    homeward_tests::child::entry();
}

const SIZE: u64 = 16 * MIB;

/// A certificate authority that writes PEM files into a directory.
struct Authority {
    issuer: Issuer<'static, KeyPair>,
    ca_pem: PathBuf,
    dir: PathBuf,
}

impl Authority {
    /// A new CA called `name`; its certificate goes to `dir/name-ca.pem`.
    fn new(dir: &Path, name: &str) -> Authority {
        let mut params = CertificateParams::new(Vec::<String>::new()).unwrap();
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        params
            .distinguished_name
            .push(DnType::CommonName, format!("{name} test CA"));
        params.key_usages = vec![
            KeyUsagePurpose::KeyCertSign,
            KeyUsagePurpose::CrlSign,
            KeyUsagePurpose::DigitalSignature,
        ];
        let key = KeyPair::generate().unwrap();
        let cert = params.self_signed(&key).unwrap();
        let ca_pem = dir.join(format!("{name}-ca.pem"));
        std::fs::write(&ca_pem, cert.pem()).unwrap();
        Authority {
            issuer: Issuer::new(params, key),
            ca_pem,
            dir: dir.to_path_buf(),
        }
    }

    /// Issues a certificate for `name`, valid as a server for 127.0.0.1 and
    /// localhost and as a client (each role is both: a process server listens
    /// and connects), trusting this CA's peers.
    fn issue(&self, name: &str) -> TlsFiles {
        let mut params =
            CertificateParams::new(vec!["127.0.0.1".to_string(), "localhost".to_string()]).unwrap();
        params.distinguished_name.push(DnType::CommonName, name);
        params.extended_key_usages = vec![
            ExtendedKeyUsagePurpose::ServerAuth,
            ExtendedKeyUsagePurpose::ClientAuth,
        ];
        let key = KeyPair::generate().unwrap();
        let cert = params.signed_by(&key, &self.issuer).unwrap();
        let files = TlsFiles {
            cert: self.dir.join(format!("{name}.pem")),
            key: self.dir.join(format!("{name}.key")),
            ca: self.ca_pem.clone(),
        };
        std::fs::write(&files.cert, cert.pem()).unwrap();
        std::fs::write(&files.key, key.serialize_pem()).unwrap();
        files
    }
}

/// `--tls-cert C --tls-key K --tls-ca A`.
fn tls_args(files: &TlsFiles) -> Vec<String> {
    vec![
        "--tls-cert".to_string(),
        s(&files.cert).to_string(),
        "--tls-key".to_string(),
        s(&files.key).to_string(),
        "--tls-ca".to_string(),
        s(&files.ca).to_string(),
    ]
}

/// Starts `homeward serve --role ROLE` on an ephemeral loopback port with
/// `args`; returns it and its `https://127.0.0.1:PORT` URL.
fn serve(role: &str, args: &[String]) -> (HomewardChild, String) {
    let mut all = vec!["serve", "--role", role, "--listen", "127.0.0.1:0"];
    all.extend(args.iter().map(String::as_str));
    let (child, line) = spawn_until(&all, "listening on");
    let addr = line.rsplit(' ').next().expect("address").to_string();
    (child, format!("https://{addr}"))
}

/// Directories and certificates of one test: `sources/` (the process
/// server's root), `targets/` (the master target's), `pki/`.
struct Site {
    _dir: tempfile::TempDir,
    sources: PathBuf,
    targets: PathBuf,
    ca: Authority,
    rogue: Authority,
}

fn site() -> Site {
    let dir = tempfile::tempdir().unwrap();
    let [sources, targets, pki] = ["sources", "targets", "pki"].map(|d| dir.path().join(d));
    for d in [&sources, &targets, &pki] {
        std::fs::create_dir(d).unwrap();
    }
    let ca = Authority::new(&pki, "site");
    let rogue = Authority::new(&pki, "rogue");
    Site {
        _dir: dir,
        sources,
        targets,
        ca,
        rogue,
    }
}

/// A master target (TLS, certificate `files`) writing under `site.targets`.
fn master_target(site: &Site, files: &TlsFiles) -> (HomewardChild, String) {
    let mut args = vec!["--target-root".to_string(), s(&site.targets).to_string()];
    args.extend(tls_args(files));
    serve("master-target", &args)
}

/// A process server (TLS, certificate `files`) reading under `site.sources`.
fn process_server(site: &Site, files: &TlsFiles) -> (HomewardChild, String) {
    let mut args = vec!["--source-root".to_string(), s(&site.sources).to_string()];
    args.extend(tls_args(files));
    serve("process-server", &args)
}

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Runtime::new().unwrap()
}

/// A TLS channel to `url` trusting `ca` and presenting `identity`, if any.
async fn channel(url: &str, ca: &Path, identity: Option<&TlsFiles>) -> Result<Channel, String> {
    let mut tls =
        ClientTlsConfig::new().ca_certificate(Certificate::from_pem(std::fs::read(ca).unwrap()));
    if let Some(files) = identity {
        tls = tls.identity(Identity::from_pem(
            std::fs::read(&files.cert).unwrap(),
            std::fs::read(&files.key).unwrap(),
        ));
    }
    Endpoint::from_shared(url.to_string())
        .unwrap()
        .connect_timeout(Duration::from_secs(10))
        .tls_config(tls)
        .map_err(|e| format!("TLS configuration: {e:?}"))?
        .connect()
        .await
        .map_err(|e| format!("connect: {e:?}"))
}

/// A sync request for `source` to `target` at `master_target`.
fn request(source: &Path, master_target: &str, target: &Path, mode: Mode) -> SyncRequest {
    SyncRequest {
        source_path: s(source).to_string(),
        master_target: master_target.to_string(),
        target_path: s(target).to_string(),
        target_format: "vhd".to_string(),
        mode: mode as i32,
        compress: true,
        ..Default::default()
    }
}

/// Asks the process server behind `channel` for `request` and follows its
/// events until `Done`; returns the summary and how many progress events came.
async fn sync_via(channel: Channel, request: SyncRequest) -> Result<(SyncSummary, usize), String> {
    let mut client = ProcessServerClient::new(channel);
    let mut events = client
        .sync(request)
        .await
        .map_err(|s| format!("{:?}: {}", s.code(), s.message()))?
        .into_inner();
    let mut progress = 0;
    loop {
        let event = events
            .message()
            .await
            .map_err(|s| format!("{:?}: {}", s.code(), s.message()))?
            .ok_or("the event stream ended without Done")?;
        match event.event {
            Some(sync_event::Event::Progress(_)) => progress += 1,
            Some(sync_event::Event::Done(summary)) => return Ok((summary, progress)),
            None => {}
        }
    }
}

#[test]
fn a_process_server_syncs_to_a_master_target_over_mutual_tls() {
    let site = site();
    let (_mt, mt_url) = master_target(&site, &site.ca.issue("master-target"));
    let (_ps, ps_url) = process_server(&site, &site.ca.issue("process-server"));
    let operator = site.ca.issue("operator");
    let src = random_image(&site.sources, "disk", ImageFormat::Raw, SIZE, 1);
    let dst = site.targets.join("disk.vhd");

    runtime().block_on(async {
        let connect = || channel(&ps_url, &site.ca.ca_pem, Some(&operator));
        let (full, _) = sync_via(
            connect().await.unwrap(),
            request(&src, &mt_url, &dst, Mode::Full),
        )
        .await
        .expect("full sync over TLS");
        let totals = full.totals.expect("totals");
        assert_eq!(totals.bytes_total, SIZE);
        assert_eq!(totals.blocks_sent, SIZE / DEFAULT_BLOCK_SIZE as u64);
        assert_eq!(full.root.len(), 32, "a whole-disk digest");
        assert_identical(&src, ImageFormat::Raw, &dst, ImageFormat::VhdFixed);

        change_blocks(&src, ImageFormat::Raw, MIB, &[2, 9], 7);
        let (delta, _) = sync_via(
            connect().await.unwrap(),
            request(&src, &mt_url, &dst, Mode::Delta),
        )
        .await
        .expect("delta sync over TLS");
        let totals = delta.totals.expect("totals");
        assert_eq!(totals.blocks_sent, 2, "{totals:?}");
        assert_ne!(delta.root, full.root, "the disk changed");
        assert_identical(&src, ImageFormat::Raw, &dst, ImageFormat::VhdFixed);

        // The process server reads only under its --source-root.
        let outside = request(Path::new("/etc/hostname"), &mt_url, &dst, Mode::Delta);
        let error = sync_via(connect().await.unwrap(), outside)
            .await
            .expect_err("a source outside the roots must be refused");
        assert!(
            error.starts_with("PermissionDenied")
                && error.contains("is not under this process server's source roots")
                && error.contains("--source-root"),
            "{error}"
        );
    });
}

/// Asks the process server at `ps_url` for a sync as a client presenting
/// `identity`; expects it to fail before anything is written, and the same
/// request from a client of the site's CA to succeed.
fn assert_client_refused(site: &Site, ps_url: &str, mt_url: &str, identity: Option<&TlsFiles>) {
    let src = random_image(&site.sources, "disk", ImageFormat::Raw, MIB, 1);
    let dst = site.targets.join("disk.vhd");
    let ask = |identity: Option<&TlsFiles>| {
        runtime().block_on(async {
            let channel = channel(ps_url, &site.ca.ca_pem, identity).await?;
            sync_via(channel, request(&src, mt_url, &dst, Mode::Full)).await
        })
    };
    let error = ask(identity).expect_err("a client the process server cannot verify got a sync");
    eprintln!("refused as expected: {error}");
    assert!(!dst.exists(), "a target was created: {error}");

    ask(Some(&site.ca.issue("operator"))).expect("a client of the site's CA gets its sync");
    assert_identical(&src, ImageFormat::Raw, &dst, ImageFormat::VhdFixed);
}

#[test]
fn a_client_without_a_certificate_cannot_ask_for_a_sync() {
    let site = site();
    let (_mt, mt_url) = master_target(&site, &site.ca.issue("master-target"));
    let (_ps, ps_url) = process_server(&site, &site.ca.issue("process-server"));
    assert_client_refused(&site, &ps_url, &mt_url, None);
}

#[test]
fn a_client_with_a_certificate_from_another_ca_cannot_ask_for_a_sync() {
    let site = site();
    let (_mt, mt_url) = master_target(&site, &site.ca.issue("master-target"));
    let (_ps, ps_url) = process_server(&site, &site.ca.issue("process-server"));
    let intruder = site.rogue.issue("intruder");
    assert_client_refused(&site, &ps_url, &mt_url, Some(&intruder));
}

/// Syncs to the master target at `url` with the process server's own code,
/// as a peer with `files`, giving up at the first failure.
fn sync_as(files: TlsFiles, url: &str, src: &Path, dst: &Path) -> Result<(), SyncError> {
    let spec = SyncSpec {
        source: src.to_path_buf().into(),
        source_format: None,
        target: dst.to_path_buf().into(),
        target_format: None,
        mode: Mode::Full,
        block_size: DEFAULT_BLOCK_SIZE,
        compress: true,
        in_use: None,
    };
    let retry = RetryPolicy {
        reconnect_for: Duration::ZERO,
    };
    runtime().block_on(async {
        let (progress, _watch) = tokio::sync::watch::channel(Default::default());
        source::run(url, &Security::Tls(files), &spec, &[], retry, progress)
            .await
            .map(|_| ())
    })
}

#[test]
fn the_master_target_and_a_process_server_of_different_cas_cannot_sync() {
    let site = site();
    let (_mt, mt_url) = master_target(&site, &site.ca.issue("master-target"));
    let src = random_image(&site.sources, "disk", ImageFormat::Raw, MIB, 1);
    let dst = site.targets.join("disk.raw");

    // A process server with a certificate the master target does not trust.
    let mut intruder = site.rogue.issue("intruder");
    intruder.ca = site.ca.ca_pem.clone();
    let error = sync_as(intruder, &mt_url, &src, &dst).expect_err("an untrusted client");
    eprintln!("refused as expected: {error}");
    assert!(matches!(error, SyncError::Unreachable { .. }), "{error:?}");
    assert!(!dst.exists(), "a target was created: {error}");

    // A process server that does not trust the master target's certificate.
    let mut wary = site.ca.issue("wary-process-server");
    wary.ca = site.rogue.ca_pem.clone();
    let error = sync_as(wary, &mt_url, &src, &dst).expect_err("an untrusted server");
    eprintln!("refused as expected: {error}");
    // Known at once, not retried: a certificate problem is not an outage.
    assert!(matches!(error, SyncError::Tls { .. }), "{error:?}");
    assert!(!error.is_transient());
    let message = error.to_string();
    assert!(
        message.contains("UnknownIssuer") && message.contains("--tls-ca"),
        "{message}"
    );
    assert!(!dst.exists(), "a target was created: {error}");

    // The same master target accepts a process server of its own CA.
    sync_as(site.ca.issue("process-server"), &mt_url, &src, &dst).expect("a trusted peer");
    assert_identical(&src, ImageFormat::Raw, &dst, ImageFormat::Raw);
}

#[test]
fn plaintext_is_refused_off_loopback() {
    let dir = tempfile::tempdir().unwrap();
    let root = s(dir.path()).to_string();
    // In-process, with a time limit: if the refusal is missing, `serve` runs.
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let _ = tx.send(homeward_tests::homeward(&[
            "serve",
            "--role",
            "master-target",
            "--listen",
            "0.0.0.0:0",
            "--target-root",
            &root,
            "--plaintext-loopback",
        ]));
    });
    let (ok, output) = rx
        .recv_timeout(Duration::from_secs(20))
        .expect("`serve --plaintext-loopback --listen 0.0.0.0:0` did not refuse to start");
    assert!(!ok, "{output}");
    assert!(
        output.contains("plaintext is allowed only on loopback, not on 0.0.0.0:")
            && output.contains("configure TLS (--tls-cert, --tls-key, --tls-ca)"),
        "{output}"
    );

    // The process server side: no plaintext to a remote master target, and no
    // plaintext URL when TLS is configured.
    let src = dir.path().join("disk.raw");
    homeward_tests::images::write_random(&src, MIB, 1);
    let spec = SyncSpec {
        source: src.clone().into(),
        source_format: None,
        target: std::path::PathBuf::from("/var/lib/homeward/disk.raw").into(),
        target_format: None,
        mode: Mode::Full,
        block_size: DEFAULT_BLOCK_SIZE,
        compress: true,
        in_use: None,
    };
    let attempt = |url: &str, security: Security| {
        runtime().block_on(async {
            let (progress, _watch) = tokio::sync::watch::channel(Default::default());
            let retry = RetryPolicy {
                reconnect_for: Duration::ZERO,
            };
            source::run(url, &security, &spec, &[], retry, progress).await
        })
    };
    let error = attempt("http://192.0.2.7:9443", Security::PlaintextLoopback)
        .expect_err("plaintext to a remote master target");
    assert!(
        error
            .to_string()
            .contains("plaintext is allowed only to loopback, not to http://192.0.2.7:9443: use https:// with TLS"),
        "{error}"
    );
    let files = TlsFiles {
        cert: dir.path().join("unused.pem"),
        key: dir.path().join("unused.key"),
        ca: dir.path().join("unused-ca.pem"),
    };
    let error = attempt("http://127.0.0.1:9443", Security::Tls(files))
        .expect_err("a plaintext URL with TLS configured");
    assert!(
        error
            .to_string()
            .contains("http://127.0.0.1:9443 is plaintext but TLS is configured: use https://"),
        "{error}"
    );
}
