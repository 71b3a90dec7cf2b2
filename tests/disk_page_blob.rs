//! The host's page-blob block device against Azurite (started per test on
//! 127.0.0.1): a qemu-made fixed VHD uploaded and read back equal, exact page
//! ranges, changed blocks between snapshots by the compare method, SAS and
//! Shared Key, refused credentials without the secret in the error, a
//! stopped endpoint as "unavailable" within the deadline. Throttling and a
//! silent endpoint use small fake servers (named as fakes below), since
//! Azurite neither throttles nor hangs.

use homeward::disk::page_blob::{self, BlobError, BlobOptions, DiffMethod};
use homeward::disk::{BlockDevice, VhdFixed};
use homeward::plugin::adapter::{BlobCredential, BlobEndpoint};
use homeward_tests::azurite::{self, Azurite};
use homeward_tests::images::{KIB, MIB, Xorshift, write_sparse};
use std::io::{BufRead, BufReader, Write};
use std::net::{TcpListener, TcpStream};
use std::ops::Range;
use std::process::Command;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

fn qemu_img(args: &[&str]) {
    let out = Command::new("qemu-img")
        .args(args)
        .output()
        .expect("qemu-img (apt-get install qemu-utils)");
    assert!(
        out.status.success(),
        "qemu-img {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

fn pseudo_random(len: usize, seed: u64) -> Vec<u8> {
    let mut buf = vec![0u8; len];
    Xorshift::new(seed).fill(&mut buf);
    buf
}

fn io_blob_error(e: &std::io::Error) -> &BlobError {
    e.get_ref()
        .and_then(|inner| inner.downcast_ref::<BlobError>())
        .unwrap_or_else(|| panic!("not a BlobError: {e}"))
}

/// A qemu-made VHD uploaded byte for byte (its written regions and its
/// footer, through the device) reads back through the page-blob device as a
/// disk equal to the original, and Get Page Ranges reports exactly the
/// regions written.
#[test]
fn uploaded_vhd_reads_back_equal_and_page_ranges_are_exact() {
    let dir = tempfile::tempdir().unwrap();
    let raw = dir.path().join("disk.raw");
    let vhd = dir.path().join("disk.vhd");
    let capacity = 8 * MIB;
    // Regions of data: 4 KiB-aligned, one of odd sectors, one over 4 MiB
    // (several Put Page calls), one at the very end.
    let regions: Vec<Range<u64>> = vec![
        0..64 * KIB,
        MIB + 512..MIB + 512 + 5 * 512,
        2 * MIB..(6 * MIB + 128 * KIB),
        capacity - 4 * KIB..capacity,
    ];
    write_sparse(&raw, capacity, &regions, 6);
    qemu_img(
        &[
            "convert",
            "-f",
            "raw",
            "-O",
            "vpc",
            "-o",
            "subformat=fixed,force_size=on",
        ]
        .iter()
        .copied()
        .chain([raw.to_str().unwrap(), vhd.to_str().unwrap()])
        .collect::<Vec<_>>(),
    );
    let vhd_bytes = std::fs::read(&vhd).unwrap();
    assert_eq!(
        vhd_bytes.len() as u64,
        capacity + 512,
        "qemu-img made a fixed VHD"
    );

    let az = Azurite::start();
    az.create_container("disks");
    let upload = az.create_page_blob("disks", "vm1-os.vhd", capacity + 512);
    assert!(!upload.has_vhd_footer());
    assert_eq!(upload.capacity(), capacity + 512);
    for r in regions.iter().chain([&(capacity..capacity + 512)]) {
        upload
            .write_at(&vhd_bytes[r.start as usize..r.end as usize], r.start)
            .unwrap();
    }

    let disk = page_blob::open(
        &az.endpoint("disks", "vm1-os.vhd", Azurite::shared_key()),
        false,
    )
    .unwrap();
    assert!(disk.has_vhd_footer(), "qemu's footer is recognised");
    assert_eq!(disk.capacity(), capacity);
    assert_eq!(disk.blob_size(), capacity + 512);
    assert_eq!(
        disk.page_ranges().unwrap(),
        regions,
        "exactly the written regions"
    );
    assert_eq!(disk.allocated_ranges().unwrap(), Some(regions.clone()));
    assert!(disk.describe().contains("/disks/vm1-os.vhd"));

    // Download as the data path would: only allocated ranges, 1 MiB at a time.
    let copy = dir.path().join("copy.vhd");
    let target = VhdFixed::create(&copy, capacity).unwrap();
    let mut buf = vec![0u8; MIB as usize];
    for r in disk.allocated_ranges().unwrap().unwrap() {
        let mut at = r.start;
        while at < r.end {
            let n = (r.end - at).min(MIB) as usize;
            disk.read_at(&mut buf[..n], at).unwrap();
            target.write_at(&buf[..n], at).unwrap();
            at += n as u64;
        }
    }
    target.flush().unwrap();
    drop(target);
    qemu_img(&[
        "compare",
        "-s",
        "-f",
        "vpc",
        "-F",
        "vpc",
        vhd.to_str().unwrap(),
        copy.to_str().unwrap(),
    ]);

    // A read across the end and a write to a read-only device are refused.
    let mut tail = [0u8; 1024];
    assert!(disk.read_at(&mut tail, capacity - 512).is_err());
    let denied = disk.write_at(&[1u8; 512], 0).unwrap_err();
    assert_eq!(denied.kind(), std::io::ErrorKind::PermissionDenied);
}

/// Two snapshots with known changes between them: the compare method finds
/// exactly the changed blocks (not a block rewritten with the same bytes,
/// but a block cleared to zeros, a new block and a changed byte), and says
/// in the log that it ran. The service diff runs too, but on Azurite its
/// answer is known wrong, so only its shape is checked.
#[test]
fn snapshots_yield_exactly_the_changed_blocks_by_compare() {
    let az = Azurite::start();
    az.create_container("disks");
    let block = 64 * KIB;
    let disk = az.create_disk("disks", "vm1-data.vhd", 2 * MIB);
    assert!(disk.has_vhd_footer());
    let blk = |i: u64| i * block;
    let same = pseudo_random(block as usize, 2);
    disk.write_at(&pseudo_random(block as usize, 1), blk(1))
        .unwrap();
    disk.write_at(&same, blk(2)).unwrap();
    disk.write_at(&pseudo_random(block as usize, 3), blk(3))
        .unwrap();
    disk.write_at(&pseudo_random(3 * block as usize, 9), blk(10))
        .unwrap();
    let first = disk.create_snapshot().unwrap();

    // Changes: block 1 cleared to zeros, block 2 rewritten identically,
    // one byte of block 3, block 7 new, 100 bytes across the 11/12 boundary
    // (an unaligned write).
    disk.write_at(&vec![0u8; block as usize], blk(1)).unwrap();
    disk.write_at(&same, blk(2)).unwrap();
    disk.write_at(&[0xAB], blk(3) + 777).unwrap();
    disk.write_at(&pseudo_random(block as usize, 7), blk(7))
        .unwrap();
    disk.write_at(&[0x5A; 100], blk(12) - 50).unwrap();
    let second = disk.create_snapshot().unwrap();
    assert_ne!(first, second);

    let base = disk.at_snapshot(&first).unwrap();
    let target = disk.at_snapshot(&second).unwrap();
    assert!(!base.writable() && base.write_at(&[0u8; 512], 0).is_err());
    let expected = vec![
        blk(1)..blk(2),
        blk(3)..blk(4),
        blk(7)..blk(8),
        blk(11)..blk(13),
    ];

    let logs = LogCapture::default();
    let by_compare = tracing::subscriber::with_default(logs.subscriber(), || {
        page_blob::changed_ranges(&base, &target, block, DiffMethod::Compare).unwrap()
    });
    assert_eq!(by_compare, expected);
    let log = logs.text();
    assert!(
        log.contains("method=\"compare\"") || log.contains("method=compare"),
        "{log}"
    );
    assert!(!log.contains(azurite::KEY));
    assert_eq!(
        page_blob::changed_ranges_by_compare(&base, &target, block).unwrap(),
        expected
    );
    // The snapshots keep their own contents: the cleared block reads zeros
    // only in the second one.
    let mut a = vec![0u8; 512];
    base.read_at(&mut a, blk(1)).unwrap();
    assert_ne!(a, vec![0u8; 512]);
    target.read_at(&mut a, blk(1)).unwrap();
    assert_eq!(a, vec![0u8; 512]);
    assert!(
        !target
            .page_ranges()
            .unwrap()
            .iter()
            .any(|r| r.contains(&blk(1)))
    );

    // The service diff runs and is logged; Azurite's answer is not trusted.
    let logs = LogCapture::default();
    let by_service = tracing::subscriber::with_default(logs.subscriber(), || {
        page_blob::changed_ranges(&base, &target, block, DiffMethod::Service).unwrap()
    });
    assert!(by_service.windows(2).all(|w| w[0].end < w[1].start));
    assert!(
        by_service
            .iter()
            .all(|r| r.start % block == 0 && r.end <= target.capacity())
    );
    assert!(logs.text().contains("service-diff"), "{}", logs.text());
}

/// A SAS token (as the credential, and embedded in the URL) and the Shared
/// Key both read and write the same blob.
#[test]
fn sas_and_shared_key_both_work() {
    let az = Azurite::start();
    az.create_container("disks");
    let disk = az.create_disk("disks", "d.vhd", MIB);
    let data = pseudo_random(8 * 512, 4);
    disk.write_at(&data, 4096).unwrap();

    let sas = Azurite::sas_token();
    let with_sas = page_blob::open(
        &az.endpoint("disks", "d.vhd", BlobCredential::SasToken(sas.clone())),
        true,
    )
    .unwrap();
    let mut back = vec![0u8; data.len()];
    with_sas.read_at(&mut back, 4096).unwrap();
    assert_eq!(back, data);
    with_sas.write_at(&[7u8; 512], 0).unwrap();

    let embedded = page_blob::open(
        &BlobEndpoint {
            url: format!("{}?{sas}", az.blob_url("disks", "d.vhd")),
            credential: BlobCredential::None,
        },
        false,
    )
    .unwrap();
    assert!(
        !embedded.describe().contains("sig="),
        "{}",
        embedded.describe()
    );
    let mut first = [0u8; 512];
    embedded.read_at(&mut first, 0).unwrap();
    assert_eq!(first, [7u8; 512]);
    assert_eq!(
        embedded.page_ranges().unwrap(),
        vec![0..512, 4096..4096 + 8 * 512]
    );

    // A snapshot named in the URL is a read-only device of that snapshot.
    let snap = disk.create_snapshot().unwrap();
    disk.write_at(&[9u8; 512], 0).unwrap();
    let at_snap = page_blob::open(
        &BlobEndpoint {
            url: format!("{}?snapshot={snap}", az.blob_url("disks", "d.vhd")),
            credential: Azurite::shared_key(),
        },
        false,
    )
    .unwrap();
    at_snap.read_at(&mut first, 0).unwrap();
    assert_eq!(first, [7u8; 512]);
    assert!(
        page_blob::open(
            &BlobEndpoint {
                url: format!("{}?snapshot={snap}", az.blob_url("disks", "d.vhd")),
                credential: Azurite::shared_key(),
            },
            true,
        )
        .is_err()
    );
}

/// A wrong key or a forged SAS is "permission denied", and neither the key,
/// the real key nor the signature appears in the error. A missing blob is
/// "not found"; creating over an existing blob is refused.
#[test]
fn wrong_credentials_are_denied_without_the_secret() {
    let az = Azurite::start();
    az.create_container("disks");
    az.create_disk("disks", "d.vhd", MIB);

    let wrong_key = "d3Jvbmcta2V5LXdyb25nLWtleS13cm9uZy1rZXktd3Jvbmcta2V5IQ==";
    let err = page_blob::open(
        &az.endpoint(
            "disks",
            "d.vhd",
            BlobCredential::SharedKey((azurite::ACCOUNT.into(), wrong_key.into())),
        ),
        false,
    )
    .unwrap_err();
    assert!(matches!(err, BlobError::PermissionDenied { .. }), "{err:?}");
    for text in [err.to_string(), format!("{err:?}")] {
        assert!(
            text.contains("permission denied") || text.contains("PermissionDenied"),
            "{text}"
        );
        assert!(
            !text.contains(wrong_key) && !text.contains(azurite::KEY),
            "{text}"
        );
    }
    assert_eq!(
        std::io::Error::from(err).kind(),
        std::io::ErrorKind::PermissionDenied
    );

    let sas = Azurite::sas_token();
    let sig = sas
        .split('&')
        .find_map(|p| p.strip_prefix("sig="))
        .unwrap()
        .to_string();
    let forged = sas.replace(&sig, "AAAA%2BforgedSignatureAAAAAAAAAAAAAAAAAAAAAAA%3D");
    let err = page_blob::open(
        &az.endpoint("disks", "d.vhd", BlobCredential::SasToken(forged.clone())),
        false,
    )
    .unwrap_err();
    assert!(matches!(err, BlobError::PermissionDenied { .. }), "{err:?}");
    let text = format!("{err} {err:?}");
    assert!(
        !text.contains("forgedSignature") && !text.contains(&sig),
        "{text}"
    );

    let err = page_blob::open(
        &az.endpoint("disks", "nope.vhd", Azurite::shared_key()),
        false,
    )
    .unwrap_err();
    assert!(matches!(err, BlobError::NotFound { .. }), "{err:?}");
    assert!(err.to_string().contains("/disks/nope.vhd"), "{err}");

    let err = page_blob::create(
        &az.endpoint("disks", "d.vhd", Azurite::shared_key()),
        MIB,
        &BlobOptions::default(),
    )
    .unwrap_err();
    assert!(matches!(err, BlobError::Conflict { .. }), "{err:?}");
}

/// A stopped Azurite: opening and reading fail as "unavailable", naming the
/// endpoint, well within the deadline.
#[test]
fn stopped_azurite_is_unavailable_within_the_deadline() {
    let mut az = Azurite::start();
    az.create_container("disks");
    az.create_disk("disks", "d.vhd", MIB);
    let options = BlobOptions {
        deadline: Duration::from_secs(5),
        ..BlobOptions::default()
    };
    let endpoint = az.endpoint("disks", "d.vhd", Azurite::shared_key());
    let disk = page_blob::open_with(&endpoint, false, &options).unwrap();
    az.stop();

    let started = Instant::now();
    let mut buf = [0u8; 512];
    let err = disk.read_at(&mut buf, 0).unwrap_err();
    assert!(
        started.elapsed() < options.deadline,
        "{:?}",
        started.elapsed()
    );
    assert_eq!(err.kind(), std::io::ErrorKind::NotConnected);
    assert!(
        matches!(io_blob_error(&err), BlobError::Unavailable { .. }),
        "{err}"
    );
    let text = err.to_string();
    assert!(text.contains("unavailable"), "{text}");
    assert!(
        text.contains(&format!(
            "127.0.0.1:{}/devstoreaccount1/disks/d.vhd",
            az.port()
        )),
        "{text}"
    );
    assert!(!text.contains(azurite::KEY));

    let started = Instant::now();
    let err = page_blob::open_with(&endpoint, false, &options).unwrap_err();
    assert!(started.elapsed() < options.deadline);
    assert!(matches!(err, BlobError::Unavailable { .. }), "{err}");
}

/// A fake endpoint that accepts connections and never answers: the call
/// ends at its deadline as "timed out", not later.
#[test]
fn a_silent_endpoint_times_out_at_the_deadline() {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    let held = Arc::new(Mutex::new(Vec::new()));
    let keep = held.clone();
    std::thread::spawn(move || {
        for s in listener.incoming().flatten() {
            keep.lock().unwrap().push(s);
        }
    });
    let options = BlobOptions {
        deadline: Duration::from_millis(800),
        ..BlobOptions::default()
    };
    let started = Instant::now();
    let err = page_blob::open_with(
        &BlobEndpoint {
            url: format!("http://127.0.0.1:{port}/acct/c/d.vhd"),
            credential: BlobCredential::SasToken("sv=x&sig=topsecret".into()),
        },
        false,
        &options,
    )
    .unwrap_err();
    let took = started.elapsed();
    assert!(matches!(err, BlobError::TimedOut { .. }), "{err:?}");
    assert!(
        took >= Duration::from_millis(700) && took < Duration::from_secs(3),
        "{took:?}"
    );
    assert!(!format!("{err} {err:?}").contains("topsecret"));
}

/// A fake Blob endpoint (not Azurite: it throttles on demand) answering each
/// request with the next scripted status, then as a 1 KiB raw page blob.
struct FakeThrottlingBlob {
    port: u16,
    requests: Arc<AtomicUsize>,
}

impl FakeThrottlingBlob {
    /// `script`: (status, Retry-After) for the first requests.
    fn start(script: Vec<(u16, Option<&'static str>)>) -> FakeThrottlingBlob {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        let requests = Arc::new(AtomicUsize::new(0));
        let count = requests.clone();
        std::thread::spawn(move || {
            for stream in listener.incoming().flatten() {
                let count = count.clone();
                let script = script.clone();
                std::thread::spawn(move || serve_fake(stream, &count, &script));
            }
        });
        FakeThrottlingBlob { port, requests }
    }

    fn endpoint(&self) -> BlobEndpoint {
        BlobEndpoint {
            url: format!("http://127.0.0.1:{}/acct/c/d.vhd", self.port),
            credential: BlobCredential::SharedKey(("acct".into(), azurite::KEY.into())),
        }
    }
}

fn serve_fake(stream: TcpStream, count: &AtomicUsize, script: &[(u16, Option<&str>)]) {
    let mut reader = BufReader::new(stream.try_clone().unwrap());
    let mut out = stream;
    loop {
        let mut request_line = String::new();
        if reader.read_line(&mut request_line).unwrap_or(0) == 0 {
            return;
        }
        let mut line = String::new();
        while reader.read_line(&mut line).unwrap_or(0) > 2 {
            line.clear();
        }
        let n = count.fetch_add(1, Ordering::SeqCst);
        let answer = match script.get(n) {
            Some((status, retry)) => format!(
                "HTTP/1.1 {status} Busy\r\n{}Content-Length: 0\r\n\r\n",
                retry
                    .map(|r| format!("Retry-After: {r}\r\n"))
                    .unwrap_or_default()
            ),
            None if request_line.starts_with("HEAD") => {
                "HTTP/1.1 200 OK\r\nContent-Length: 1024\r\nx-ms-blob-type: PageBlob\r\n\r\n".into()
            }
            None => {
                "HTTP/1.1 206 Partial Content\r\nContent-Length: 512\r\n\r\n".to_string()
                    + &"\0".repeat(512)
            }
        };
        if out.write_all(answer.as_bytes()).is_err() {
            return;
        }
    }
}

/// 429 and 503 are retried after Retry-After, which is honoured but capped,
/// and a service that stays busy ends as "throttled" after the attempts.
#[test]
fn throttling_is_retried_with_retry_after_and_a_cap() {
    // Retry-After: 1 is waited for.
    let fake = FakeThrottlingBlob::start(vec![(429, Some("1"))]);
    let started = Instant::now();
    let disk = page_blob::open_with(&fake.endpoint(), false, &BlobOptions::default()).unwrap();
    assert!(
        started.elapsed() >= Duration::from_secs(1),
        "{:?}",
        started.elapsed()
    );
    assert_eq!(disk.capacity(), 1024, "no footer: the whole blob");
    assert_eq!(
        fake.requests.load(Ordering::SeqCst),
        3,
        "429, HEAD, GET of the tail"
    );

    // An hour's Retry-After is capped by max_retry_wait.
    let fake = FakeThrottlingBlob::start(vec![(503, Some("3600")), (429, None)]);
    let options = BlobOptions {
        max_retry_wait: Duration::from_millis(100),
        ..BlobOptions::default()
    };
    let started = Instant::now();
    page_blob::open_with(&fake.endpoint(), false, &options).unwrap();
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "{:?}",
        started.elapsed()
    );

    // Busy for good: throttled after max_attempts.
    let fake = FakeThrottlingBlob::start(vec![(503, Some("0")); 10]);
    let options = BlobOptions {
        max_attempts: 3,
        ..BlobOptions::default()
    };
    let err = page_blob::open_with(&fake.endpoint(), false, &options).unwrap_err();
    assert!(
        matches!(
            err,
            BlobError::Throttled {
                status: 503,
                attempts: 3,
                ..
            }
        ),
        "{err:?}"
    );
    assert_eq!(fake.requests.load(Ordering::SeqCst), 3);
}

/// Log lines written while a subscriber from [`LogCapture::subscriber`] is
/// the default.
#[derive(Clone, Default)]
struct LogCapture(Arc<Mutex<Vec<u8>>>);

impl LogCapture {
    fn subscriber(&self) -> impl tracing::Subscriber + Send + Sync + use<> {
        let sink = self.clone();
        tracing_subscriber::fmt()
            .with_writer(move || sink.clone())
            .with_ansi(false)
            .with_max_level(tracing::Level::INFO)
            .finish()
    }

    fn text(&self) -> String {
        String::from_utf8_lossy(&self.0.lock().unwrap()).into_owned()
    }
}

impl Write for LogCapture {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}
