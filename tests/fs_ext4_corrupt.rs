//! Damaged ext4 images: truncated at several points, and deterministic byte
//! flips in the superblock, group descriptors, an inode, a directory block and
//! an extent block. Every call must return `Ok` or a named error (never panic
//! or hang); a few specific damages give the expected error.

use homeward_fs_ext4::{Handler, fuzz_one};
use homeward_sdk::Error;
use homeward_sdk::fs::{FileSystem, MemDevice};
use homeward_tests::fs_images::{
    TreeEntry, run_tool, sparse_file, standard_tree, stdout_text, write_tree,
};
use std::path::Path;

/// An image with the standard tree (its `many` directory cut to 100 entries,
/// which keeps 200 whole-tree walks quick) plus `/var/holes`, a sparse file
/// whose 12 data blocks need an extent block (more extents than the inode
/// holds).
fn make(dir: &Path, name: &str, mkfs: &[&str]) -> (Vec<u8>, Layout) {
    let src = dir.join(format!("{name}-src"));
    std::fs::create_dir_all(&src).expect("mkdir");
    let tree: Vec<TreeEntry> = standard_tree(0)
        .into_iter()
        .filter(|e| !matches!(e, TreeEntry::File(p, _) if p.starts_with("many") && !p.to_string_lossy().contains("-00")))
        .collect();
    write_tree(&src, &tree);
    {
        use std::os::unix::fs::FileExt;
        let file = std::fs::File::create(src.join("var/holes")).expect("create");
        for i in 0..12u64 {
            file.write_all_at(&[i as u8 + 1; 4096], i * 2 * 65536)
                .expect("write");
        }
    }
    let img = dir.join(format!("{name}.img"));
    sparse_file(&img, 12 << 20);
    let img_s = img.to_str().expect("utf-8");
    let mut args = vec!["-q", "-F"];
    args.extend(mkfs);
    args.extend(["-d", src.to_str().expect("utf-8"), img_s]);
    run_tool("mkfs.ext4", &args);
    let layout = Layout::of(&img);
    (std::fs::read(&img).expect("read image"), layout)
}

/// Byte offsets of the structures the tests damage, per `debugfs`.
struct Layout {
    block_size: usize,
    gdt: usize,
    inode: usize,
    dir_block: usize,
    extent_block: usize,
}

fn debugfs(img: &Path, request: &str) -> String {
    stdout_text(&run_tool(
        "debugfs",
        &["-R", request, img.to_str().expect("utf-8")],
    ))
}

impl Layout {
    fn of(img: &Path) -> Layout {
        let stats = debugfs(img, "stats");
        let field = |name: &str| -> usize {
            stats
                .lines()
                .find_map(|l| l.strip_prefix(name))
                .and_then(|v| v.trim().parse().ok())
                .unwrap_or_else(|| panic!("no {name} in debugfs stats"))
        };
        let block_size = field("Block size:");
        let first_data_block = if block_size == 1024 { 1 } else { 0 };
        // "located at block N, offset 0xOFF"
        let imap = debugfs(img, "imap /etc/hostname");
        let after = imap.split("located at block ").nth(1).expect("imap");
        let (block, offset) = after.split_once(", offset 0x").expect("imap offset");
        let inode = block.trim().parse::<usize>().expect("block") * block_size
            + usize::from_str_radix(offset.trim(), 16).expect("offset");
        let dir_block: usize = debugfs(img, "bmap /etc 0").trim().parse().expect("bmap");
        let stat = debugfs(img, "stat /var/holes");
        let etb: usize = stat
            .split("(ETB0):")
            .nth(1)
            .and_then(|s| s.split(|c: char| !c.is_ascii_digit()).next())
            .and_then(|s| s.parse().ok())
            .expect("an extent tree block");
        Layout {
            block_size,
            gdt: (first_data_block + 1) * block_size,
            inode,
            dir_block: dir_block * block_size,
            extent_block: etb * block_size,
        }
    }
}

/// Deterministic xorshift stream.
fn xorshift(seed: u64) -> impl FnMut() -> u64 {
    let mut x = seed.wrapping_mul(0x9e37_79b9_7f4a_7c15) | 1;
    move || {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        x
    }
}

/// Runs every API call on `bytes`: each is Ok or an error that says what.
fn exercise(bytes: &[u8], what: &str) {
    let named = |r: Result<(), Error>, call: &str| {
        if let Err(e) = r {
            let msg = format!("{e:?}");
            assert!(
                msg.contains("ext4") || msg.contains("past the end") || msg.contains("no entry"),
                "{what}: {call} returned an unnamed error: {msg}"
            );
        }
    };
    named(
        Handler::probe(&MemDevice::read_only(bytes.to_vec())).map(|_| ()),
        "probe",
    );
    named(
        Handler::used_extents(&MemDevice::read_only(bytes.to_vec())).map(|_| ()),
        "used_extents",
    );
    match Handler::open(Box::new(MemDevice::read_only(bytes.to_vec())), false) {
        Ok(fs) => {
            named(
                fs.read_file("/etc/hostname", 0, 100).map(|_| ()),
                "read_file",
            );
            named(fs.read_dir("/many").map(|_| ()), "read_dir");
            named(
                fs.read_file("/var/holes", 0, 1 << 20).map(|_| ()),
                "read_file holes",
            );
        }
        Err(e) => named(Err(e), "open"),
    }
    fuzz_one(bytes);
}

#[test]
fn truncated_images_give_errors_not_panics() {
    let dir = tempfile::tempdir().expect("temp dir");
    let (bytes, layout) = make(dir.path(), "trunc", &["-b", "4096"]);
    for cut in [
        0,
        1000,
        1100,
        2048,
        4096,
        layout.gdt + 100,
        layout.inode,
        bytes.len() / 3,
        bytes.len() / 2,
        bytes.len() - 4096,
    ] {
        exercise(&bytes[..cut.min(bytes.len())], &format!("cut at {cut}"));
    }
    let err = Handler::used_extents(&MemDevice::read_only(bytes[..bytes.len() / 2].to_vec()))
        .expect_err("half an image");
    assert!(
        matches!(err, Error::InvalidInput(ref m) if m.contains("truncated")),
        "{err:?}"
    );
}

#[test]
fn random_flips_in_metadata_never_panic() {
    let dir = tempfile::tempdir().expect("temp dir");
    for (name, mkfs) in [
        ("flip-csum", &["-b", "4096"][..]),
        (
            "flip-nocsum",
            &["-b", "1024", "-O", "^metadata_csum,^64bit"][..],
        ),
    ] {
        let (bytes, layout) = make(dir.path(), name, mkfs);
        let bs = layout.block_size;
        let regions = [
            ("superblock", 1024, 1024),
            ("group descriptors", layout.gdt, 256),
            ("inode", layout.inode, 256),
            ("directory block", layout.dir_block, bs),
            ("extent block", layout.extent_block, bs.min(1024)),
        ];
        for (region, start, len) in regions {
            for seed in 0..20u64 {
                let mut next = xorshift(seed + 1);
                let mut damaged = bytes.clone();
                let flips = 1 + next() % 4;
                for _ in 0..flips {
                    let at = start + (next() as usize % len);
                    damaged[at] ^= (next() as u8) | 1;
                }
                exercise(&damaged, &format!("{name}: {region} seed {seed}"));
            }
        }
    }
}

fn reseal_superblock(bytes: &mut [u8]) {
    let crc = homeward_sdk::fs::crc32c_update(!0, &bytes[1024..1024 + 0x3fc]);
    bytes[1024 + 0x3fc..1024 + 0x400].copy_from_slice(&crc.to_le_bytes());
}

fn invalid_input_containing(result: Result<impl std::fmt::Debug, Error>, words: &[&str]) {
    match result {
        Err(Error::InvalidInput(msg)) => {
            for w in words {
                assert!(msg.contains(w), "{msg:?} should mention {w:?}");
            }
        }
        other => panic!("expected invalid input mentioning {words:?}, got {other:?}"),
    }
}

#[test]
fn specific_damages_give_specific_errors() {
    let dir = tempfile::tempdir().expect("temp dir");
    let (csum, csum_layout) = make(dir.path(), "csum", &["-b", "4096"]);
    let (plain, plain_layout) = make(
        dir.path(),
        "plain",
        &["-b", "1024", "-O", "^metadata_csum,^64bit"],
    );
    let probe = |b: &[u8]| Handler::probe(&MemDevice::read_only(b.to_vec()));
    let open =
        |b: &[u8]| Handler::open(Box::new(MemDevice::read_only(b.to_vec())), false).map(|_| ());

    // Another magic: not mine.
    let mut b = csum.clone();
    b[1024 + 0x38] = 0;
    assert!(probe(&b).expect("probe").is_none());

    // A block size of 2^30: a damaged superblock.
    let mut b = csum.clone();
    b[1024 + 0x18] = 20;
    reseal_superblock(&mut b);
    invalid_input_containing(probe(&b), &["superblock", "s_log_block_size 20"]);

    // No blocks per group.
    let mut b = csum.clone();
    b[1024 + 0x20..1024 + 0x24].fill(0);
    reseal_superblock(&mut b);
    invalid_input_containing(probe(&b), &["superblock", "blocks per group"]);

    // A group descriptor whose checksum no longer matches.
    let mut b = csum.clone();
    b[csum_layout.gdt + 0xc] ^= 0x10;
    invalid_input_containing(open(&b), &["group descriptor 0", "checksum"]);

    // An inode whose checksum no longer matches.
    let mut b = csum.clone();
    b[csum_layout.inode + 0x4] ^= 0x01;
    let fs = Handler::open(Box::new(MemDevice::read_only(b)), false).expect("open");
    invalid_input_containing(fs.read_file("/etc/hostname", 0, 10), &["inode", "checksum"]);

    // A directory block with a zero record length.
    let mut b = plain.clone();
    b[plain_layout.dir_block + 4..plain_layout.dir_block + 6].fill(0);
    let fs = Handler::open(Box::new(MemDevice::read_only(b)), false).expect("open");
    invalid_input_containing(fs.read_dir("/etc"), &["directory", "rec_len 0"]);

    // An extent block without its magic.
    let mut b = plain.clone();
    b[plain_layout.extent_block..plain_layout.extent_block + 2].fill(0);
    let fs = Handler::open(Box::new(MemDevice::read_only(b)), false).expect("open");
    invalid_input_containing(
        fs.read_file("/var/holes", 0, 10),
        &["extent header magic 0x0000", "damaged extent tree"],
    );

    // The same block on a metadata_csum volume fails its checksum first.
    let mut b = csum.clone();
    b[csum_layout.extent_block + 20] ^= 0xff;
    let fs = Handler::open(Box::new(MemDevice::read_only(b)), false).expect("open");
    invalid_input_containing(
        fs.read_file("/var/holes", 0, 10),
        &["extent block", "checksum"],
    );
}
