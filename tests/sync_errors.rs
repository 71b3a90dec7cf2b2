//! Every bad input to a sync gets its own error, which says what is wrong and how to fix it, before anything is written: a target smaller than its source, a missing or unreadable source, a declared format the content contradicts, formats Homeward does not serve, a peer speaking another protocol version, a delta sync without a target, a target outside the master target's roots, and a bad block size.

use homeward::disk::ImageFormat;
use homeward::sync::proto::master_target_client::MasterTargetClient;
use homeward::sync::proto::master_target_server::{MasterTarget, MasterTargetServer};
use homeward::sync::proto::{
    BlockMessage, DigestChunk, FinishReply, FinishRequest, Mode, OpenReply, OpenRequest,
    SessionRef, TransferEvent,
};
use homeward::sync::source::{self, RetryPolicy, SyncSpec};
use homeward::sync::target::{CheckpointPolicy, MasterTargetService, TargetConfig};
use homeward::sync::transport::{self, Security};
use homeward::sync::{PROTOCOL_VERSION, SyncError};
use homeward_tests::images::{
    MIB, file_names, qemu_img_ok, random_image, s, sync_fails, write_random,
};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio_stream::Stream;
use tokio_stream::wrappers::TcpListenerStream;

const SIZE: u64 = 4 * MIB;

/// Asserts that `text` contains each of `parts`.
#[track_caller]
fn assert_says(text: &str, parts: &[&str]) {
    for part in parts {
        assert!(text.contains(part), "expected `{part}` in:\n{text}");
    }
}

/// A directory with a 4 MiB random raw source; returns it and the source.
fn with_source() -> (tempfile::TempDir, PathBuf) {
    let dir = tempfile::tempdir().unwrap();
    let src = random_image(dir.path(), "source", ImageFormat::Raw, SIZE, 1);
    (dir, src)
}

/// Asserts that a failed sync left `dir` holding exactly `names`: no target,
/// no VMDK extent, no checkpoint.
#[track_caller]
fn assert_nothing_written(dir: &Path, names: &[&str]) {
    assert_eq!(file_names(dir), names, "a failed sync left files behind");
}

#[test]
fn a_target_smaller_than_the_source_is_refused_and_left_unchanged() {
    let (dir, src) = with_source();
    let dst = dir.path().join("small.raw");
    write_random(&dst, SIZE / 2, 2);
    let before = std::fs::read(&dst).unwrap();
    for mode in [&[][..], &["--delta"][..]] {
        let mut args = vec!["--from", s(&src), "--to", s(&dst)];
        args.extend_from_slice(mode);
        let error = sync_fails(&args);
        assert_says(
            &error,
            &[
                s(&dst),
                &format!("holds {} bytes", SIZE / 2),
                &format!("smaller than the source's {SIZE}"),
                "grow it or choose another target",
            ],
        );
        assert!(
            std::fs::read(&dst).unwrap() == before,
            "the refused target was changed ({mode:?})"
        );
        assert_nothing_written(dir.path(), &["small.raw", "source.raw"]);
    }
}

#[test]
fn a_missing_source_is_named() {
    let dir = tempfile::tempdir().unwrap();
    let src = dir.path().join("gone.raw");
    let dst = dir.path().join("target.raw");
    let error = sync_fails(&["--from", s(&src), "--to", s(&dst)]);
    assert_says(&error, &[s(&src), "does not exist", "check the path"]);
    assert_nothing_written(dir.path(), &[]);
}

/// Tests run as root, for whom `chmod 000` does not stop reading; a directory
/// given as the source is a real unreadable case (and a common slip: the VM's
/// folder instead of its disk).
#[test]
fn a_directory_given_as_the_source_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let src = dir.path().join("vm-folder");
    std::fs::create_dir(&src).unwrap();
    let dst = dir.path().join("target.raw");
    let error = sync_fails(&["--from", s(&src), "--to", s(&dst)]);
    assert_says(
        &error,
        &[
            &format!("cannot read disk image {}", src.display()),
            "directory",
            "check that it is a regular file or block device",
        ],
    );
    assert_nothing_written(dir.path(), &["vm-folder"]);
}

#[test]
fn a_vmdk_descriptor_without_its_extent_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let src = random_image(dir.path(), "disk", ImageFormat::VmdkFlat, SIZE, 3);
    let extent = dir.path().join("disk-flat.vmdk");
    assert!(extent.exists(), "qemu-img names the extent disk-flat.vmdk");
    std::fs::remove_file(&extent).unwrap();
    let dst = dir.path().join("target.raw");
    let error = sync_fails(&["--from", s(&src), "--to", s(&dst)]);
    assert_says(
        &error,
        &[
            s(&src),
            &format!("names extent {}, which does not exist", extent.display()),
            "copy them into the same directory",
        ],
    );
    assert_nothing_written(dir.path(), &["disk.vmdk"]);
}

#[test]
fn a_source_declared_in_another_format_is_refused() {
    let (dir, src) = with_source();
    let dst = dir.path().join("target.vhd");
    let error = sync_fails(&["--from", s(&src), "--from-format", "vhd", "--to", s(&dst)]);
    assert_says(
        &error,
        &[
            &format!(
                "{} was declared VHD fixed but its content is raw",
                src.display()
            ),
            "declare `raw`",
            "qemu-img convert -f raw -O vpc -o subformat=fixed,force_size=on",
        ],
    );
    assert_nothing_written(dir.path(), &["source.raw"]);
}

#[test]
fn an_existing_target_declared_in_another_format_is_refused_and_left_unchanged() {
    let (dir, src) = with_source();
    let dst = dir.path().join("target.raw");
    write_random(&dst, SIZE, 4);
    let before = std::fs::read(&dst).unwrap();
    let error = sync_fails(&["--from", s(&src), "--to", s(&dst), "--to-format", "vmdk"]);
    assert_says(
        &error,
        &[
            "the master target refused",
            &format!(
                "{} was declared VMDK monolithicFlat but its content is raw",
                dst.display()
            ),
            "give the small descriptor file, not its -flat extent",
            "declare `raw`",
        ],
    );
    assert!(std::fs::read(&dst).unwrap() == before, "the target changed");
    assert_nothing_written(dir.path(), &["source.raw", "target.raw"]);
}

/// Makes `dir/name` with `qemu-img create ARGS`, an empty image of `SIZE`.
fn qemu_create(dir: &Path, name: &str, args: &[&str]) -> PathBuf {
    let path = dir.join(name);
    let size = SIZE.to_string();
    let mut all = vec!["create", "-q"];
    all.extend_from_slice(args);
    all.extend([s(&path), size.as_str()]);
    qemu_img_ok(&all);
    path
}

#[test]
fn unsupported_source_formats_are_named_with_their_conversion() {
    let dir = tempfile::tempdir().unwrap();
    let cases = [
        ("disk.qcow2", &["-f", "qcow2"][..], "a qcow2 image", "qcow2"),
        (
            "sparse.vmdk",
            &["-f", "vmdk"][..],
            "a VMDK sparse (monolithicSparse or streamOptimized) image",
            "vmdk",
        ),
        (
            "dynamic.vhd",
            &["-f", "vpc"][..],
            "a VHD dynamic image",
            "vpc",
        ),
    ];
    for (name, create, what, qemu_name) in cases {
        let src = qemu_create(dir.path(), name, create);
        let dst = dir.path().join(format!("{name}.raw"));
        let error = sync_fails(&["--from", s(&src), "--to", s(&dst)]);
        assert_says(
            &error,
            &[
                &format!("{} is {what}, which Homeward does not read", src.display()),
                &format!("qemu-img convert -f {qemu_name} -O raw {}", src.display()),
                "subformat=monolithicFlat",
                "subformat=fixed,force_size=on",
            ],
        );
        assert!(!dst.exists(), "{name}: a target was created");
    }
}

#[test]
fn an_unsupported_existing_target_is_refused_and_left_unchanged() {
    let (dir, src) = with_source();
    let dst = qemu_create(dir.path(), "target.qcow2", &["-f", "qcow2"]);
    let before = std::fs::read(&dst).unwrap();
    let error = sync_fails(&["--from", s(&src), "--to", s(&dst)]);
    assert_says(
        &error,
        &[
            "the master target refused",
            &format!("{} is a qcow2 image", dst.display()),
            "qemu-img convert -f qcow2",
        ],
    );
    assert!(std::fs::read(&dst).unwrap() == before, "the target changed");
    assert_nothing_written(dir.path(), &["source.raw", "target.qcow2"]);
}

#[test]
fn a_delta_sync_to_a_missing_target_says_to_run_a_full_sync() {
    let (dir, src) = with_source();
    let dst = dir.path().join("never-synced.raw");
    let error = sync_fails(&["--from", s(&src), "--to", s(&dst), "--delta"]);
    assert_says(
        &error,
        &[
            &format!("delta sync needs an existing target, and {}", dst.display()),
            "does not exist",
            "run a full sync",
        ],
    );
    assert_nothing_written(dir.path(), &["source.raw"]);
}

#[test]
fn block_sizes_that_are_not_powers_of_two_in_range_are_refused() {
    let (dir, src) = with_source();
    let dst = dir.path().join("target.raw");
    for (given, bytes) in [("3000", "3000"), ("2K", "2048"), ("32M", "33554432")] {
        let error = sync_fails(&["--from", s(&src), "--to", s(&dst), "--block-size", given]);
        assert_says(
            &error,
            &[
                &format!("block size {bytes} "),
                "must be a power of two",
                "--block-size) must be a power of two from 4096",
            ],
        );
        assert_nothing_written(dir.path(), &["source.raw"]);
    }
}

/// Serves `service` on an ephemeral loopback port; returns its `http://` URL.
async fn serve<S>(service: S) -> String
where
    S: MasterTarget,
{
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr: SocketAddr = listener.local_addr().unwrap();
    let server = transport::server(addr, &Security::PlaintextLoopback)
        .unwrap()
        .add_service(MasterTargetServer::new(service))
        .serve_with_incoming(TcpListenerStream::new(listener));
    tokio::spawn(server);
    format!("http://{addr}")
}

/// A real master target writing under `roots`.
async fn master_target(roots: &[&Path]) -> String {
    serve(MasterTargetService::new(TargetConfig {
        roots: roots.iter().map(|r| r.to_path_buf()).collect(),
        checkpoint: CheckpointPolicy::default(),
    }))
    .await
}

/// Syncs `src` to `target` at the master target `url` with the real process
/// server code, giving up at the first transport error.
async fn sync_to(url: &str, src: &Path, target: &Path, mode: Mode) -> Result<(), SyncError> {
    let spec = SyncSpec {
        source: src.to_path_buf().into(),
        source_format: None,
        target: target.to_path_buf().into(),
        target_format: None,
        mode,
        block_size: MIB as usize,
        compress: true,
        in_use: None,
    };
    let (progress, _watch) = tokio::sync::watch::channel(Default::default());
    let retry = RetryPolicy {
        reconnect_for: Duration::ZERO,
    };
    source::run(
        url,
        &Security::PlaintextLoopback,
        &spec,
        &[],
        retry,
        progress,
    )
    .await
    .map(|_| ())
}

#[tokio::test]
async fn a_process_server_speaking_another_protocol_version_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let url = master_target(&[dir.path()]).await;
    let mut client = MasterTargetClient::connect(url).await.unwrap();
    let target = dir.path().join("target.raw");
    let status = client
        .open(OpenRequest {
            protocol_version: 99,
            target_path: target.display().to_string(),
            capacity: SIZE,
            block_size: MIB as u32,
            mode: Mode::Full as i32,
            source_id: "a future process server".to_string(),
            ..Default::default()
        })
        .await
        .expect_err("a master target must refuse protocol 99");
    assert_eq!(status.code(), tonic::Code::FailedPrecondition, "{status:?}");
    assert_says(
        status.message(),
        &[
            "the process server speaks replication protocol 99",
            &format!("this master target speaks {PROTOCOL_VERSION}"),
            "upgrade the older side",
        ],
    );
    assert_nothing_written(dir.path(), &[]);
}

/// A master target from the future: answers `Open` with protocol 99 and
/// records every call it gets.
#[derive(Default)]
struct FutureMasterTarget {
    calls: Arc<Mutex<Vec<&'static str>>>,
}

impl FutureMasterTarget {
    fn called(&self, rpc: &'static str) {
        self.calls.lock().unwrap().push(rpc);
    }
}

type Boxed<T> = Pin<Box<dyn Stream<Item = Result<T, tonic::Status>> + Send>>;

#[tonic::async_trait]
impl MasterTarget for FutureMasterTarget {
    async fn open(
        &self,
        _: tonic::Request<OpenRequest>,
    ) -> Result<tonic::Response<OpenReply>, tonic::Status> {
        self.called("open");
        Ok(tonic::Response::new(OpenReply {
            protocol_version: 99,
            session_id: "s1".to_string(),
            created: true,
            ..Default::default()
        }))
    }

    type TargetDigestsStream = Boxed<DigestChunk>;

    async fn target_digests(
        &self,
        _: tonic::Request<SessionRef>,
    ) -> Result<tonic::Response<Self::TargetDigestsStream>, tonic::Status> {
        self.called("target_digests");
        Err(tonic::Status::unimplemented("protocol 99"))
    }

    type TransferStream = Boxed<TransferEvent>;

    async fn transfer(
        &self,
        _: tonic::Request<tonic::Streaming<BlockMessage>>,
    ) -> Result<tonic::Response<Self::TransferStream>, tonic::Status> {
        self.called("transfer");
        Err(tonic::Status::unimplemented("protocol 99"))
    }

    async fn finish(
        &self,
        _: tonic::Request<FinishRequest>,
    ) -> Result<tonic::Response<FinishReply>, tonic::Status> {
        self.called("finish");
        Err(tonic::Status::unimplemented("protocol 99"))
    }
}

#[tokio::test]
async fn a_master_target_speaking_another_protocol_version_is_refused() {
    let (dir, src) = with_source();
    let future = FutureMasterTarget::default();
    let calls = future.calls.clone();
    let url = serve(future).await;
    let error = sync_to(&url, &src, &dir.path().join("target.raw"), Mode::Full)
        .await
        .expect_err("the process server must refuse protocol 99");
    assert!(matches!(error, SyncError::Refused(_)), "{error:?}");
    assert_says(
        &error.to_string(),
        &[
            "the master target speaks replication protocol 99",
            &format!("this process server speaks {PROTOCOL_VERSION}"),
            "upgrade the older side",
        ],
    );
    assert_eq!(
        *calls.lock().unwrap(),
        ["open"],
        "nothing but Open may reach a peer of another version"
    );
}

#[tokio::test]
async fn a_target_outside_the_master_targets_roots_is_refused() {
    let (dir, src) = with_source();
    let allowed = dir.path().join("allowed");
    let other = dir.path().join("other");
    std::fs::create_dir(&allowed).unwrap();
    std::fs::create_dir(&other).unwrap();
    std::os::unix::fs::symlink(&other, allowed.join("link")).unwrap();
    let url = master_target(&[&allowed]).await;

    let outside = [
        other.join("target.raw"),
        allowed.join("../other/target.raw"),
        allowed.join("link/target.raw"),
        PathBuf::from("/etc/target.raw"),
    ];
    for target in outside {
        for mode in [Mode::Full, Mode::Delta] {
            let error = sync_to(&url, &src, &target, mode)
                .await
                .expect_err("a target outside the roots must be refused");
            assert!(matches!(error, SyncError::Refused(_)), "{error:?}");
            assert_says(
                &error.to_string(),
                &[
                    &target.display().to_string(),
                    "is outside this master target's target roots",
                    "add its directory to --target-root",
                ],
            );
        }
    }
    assert_nothing_written(&other, &[]);
    assert_nothing_written(&allowed, &["link"]);
    assert!(!Path::new("/etc/target.raw").exists());

    // The same master target accepts a target inside its root.
    sync_to(&url, &src, &allowed.join("target.raw"), Mode::Full)
        .await
        .expect("a target under the root is accepted");
}

#[tokio::test]
async fn a_symlinked_target_file_cannot_lead_outside_the_roots() {
    let (dir, src) = with_source();
    let allowed = dir.path().join("allowed");
    let other = dir.path().join("other");
    std::fs::create_dir(&allowed).unwrap();
    std::fs::create_dir(&other).unwrap();
    let victim = other.join("victim.raw");
    write_random(&victim, SIZE, 9);
    let before = std::fs::read(&victim).unwrap();
    let link = allowed.join("target.raw");
    std::os::unix::fs::symlink(&victim, &link).unwrap();
    let url = master_target(&[&allowed]).await;

    let result = sync_to(&url, &src, &link, Mode::Full).await;
    let written = std::fs::read(&victim).unwrap() != before;
    assert!(
        !written,
        "the master target wrote {} outside its root {} (sync result: {result:?})",
        victim.display(),
        allowed.display()
    );
    let error = result.expect_err("a target leading outside the roots must be refused");
    assert_says(
        &error.to_string(),
        &["is outside this master target's target roots"],
    );
}
