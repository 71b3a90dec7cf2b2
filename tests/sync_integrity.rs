//! No unverified byte is written: a bit flipped on the wire is caught by the
//! master target's digest check, the block is rejected and sent again, and the
//! target ends identical to the source.
//!
//! The flip is made by a real man in the middle: a TCP proxy between the two
//! roles that parses HTTP/2 frames and inverts one bit in the middle of a large
//! DATA frame (block bytes) going to the master target.

use homeward::sync::Mode;
use homeward::sync::proto::master_target_server::MasterTargetServer;
use homeward::sync::source::{self, RetryPolicy, SyncSpec};
use homeward::sync::target::{CheckpointPolicy, MasterTargetService, TargetConfig};
use homeward::sync::transport::{self, MAX_MESSAGE, Security};
use homeward_tests::images::write_random;
use std::net::SocketAddr;
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

const PREFACE: &[u8] = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n";
const DATA_FRAME: u8 = 0;

/// Starts an in-process master target writing under `root`.
async fn master_target(root: &Path) -> SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let service = MasterTargetService::new(TargetConfig {
        roots: vec![root.to_path_buf()],
        checkpoint: CheckpointPolicy::default(),
    });
    let server = transport::server(addr, &Security::PlaintextLoopback)
        .unwrap()
        .add_service(
            MasterTargetServer::new(service)
                .max_decoding_message_size(MAX_MESSAGE)
                .max_encoding_message_size(MAX_MESSAGE),
        )
        .serve_with_incoming(transport::incoming(listener));
    tokio::spawn(server);
    addr
}

/// A proxy to `upstream` that flips one bit in the `nth` DATA frame of at least
/// 8 KiB sent towards it. Returns its address and the count of flips made.
async fn flipping_proxy(upstream: SocketAddr, nth: usize) -> (SocketAddr, Arc<AtomicUsize>) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let flips = Arc::new(AtomicUsize::new(0));
    let counter = flips.clone();
    tokio::spawn(async move {
        while let Ok((client, _)) = listener.accept().await {
            let server = TcpStream::connect(upstream).await.unwrap();
            let (mut client_read, mut client_write) = client.into_split();
            let (mut server_read, mut server_write) = server.into_split();
            tokio::spawn(async move {
                let _ = tokio::io::copy(&mut server_read, &mut client_write).await;
            });
            let counter = counter.clone();
            tokio::spawn(async move {
                let _ = relay_flipping(&mut client_read, &mut server_write, nth, &counter).await;
            });
        }
    });
    (addr, flips)
}

async fn relay_flipping(
    from: &mut (impl AsyncReadExt + Unpin),
    to: &mut (impl AsyncWriteExt + Unpin),
    nth: usize,
    flips: &AtomicUsize,
) -> std::io::Result<()> {
    let mut preface = [0u8; 24];
    from.read_exact(&mut preface).await?;
    assert_eq!(&preface[..], PREFACE, "not an HTTP/2 client");
    to.write_all(&preface).await?;
    let mut large_data_frames = 0;
    loop {
        let mut header = [0u8; 9];
        from.read_exact(&mut header).await?;
        let len = u32::from_be_bytes([0, header[0], header[1], header[2]]) as usize;
        let mut payload = vec![0u8; len];
        from.read_exact(&mut payload).await?;
        if header[3] == DATA_FRAME && len >= 8192 {
            large_data_frames += 1;
            if large_data_frames == nth {
                payload[len / 2] ^= 0x10;
                flips.fetch_add(1, Ordering::SeqCst);
            }
        }
        to.write_all(&header).await?;
        to.write_all(&payload).await?;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_bit_flipped_in_transit_is_rejected_and_resent() {
    let dir = tempfile::tempdir().unwrap();
    let source_path = dir.path().join("source.img");
    let target_path = dir.path().join("target.img");
    write_random(&source_path, 16 << 20, 7);

    let upstream = master_target(dir.path()).await;
    let (proxy, flips) = flipping_proxy(upstream, 8).await;
    let spec = SyncSpec {
        source: source_path.clone().into(),
        source_format: None,
        target: target_path.clone().into(),
        target_format: None,
        mode: Mode::Full,
        block_size: 1 << 20,
        compress: false,
        in_use: None,
    };
    let (progress, _watch) = tokio::sync::watch::channel(Default::default());
    let outcome = source::run(
        &format!("http://{proxy}"),
        &Security::PlaintextLoopback,
        &spec,
        &[],
        RetryPolicy::default(),
        progress,
    )
    .await
    .expect("the sync completes despite the corruption");

    assert_eq!(
        flips.load(Ordering::SeqCst),
        1,
        "the proxy flipped exactly one bit"
    );
    assert_eq!(
        outcome.totals.blocks_rejected, 1,
        "the corrupt block was caught"
    );
    assert_eq!(outcome.totals.blocks_sent, 17, "16 blocks plus one resend");
    assert_eq!(
        outcome.attempts, 1,
        "caught within the session, no reconnect"
    );
    assert!(
        std::fs::read(&source_path).unwrap() == std::fs::read(&target_path).unwrap(),
        "the target differs from the source"
    );
}
