//! Disk image formats against the real tool: images `qemu-img` writes read back byte for byte, images Homeward writes are identical for `qemu-img compare`, and every format Homeward does not serve is refused with its name and the conversion.

use std::io;
use std::os::unix::fs::{FileExt, MetadataExt};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Arc;

use homeward::disk::{
    self, BlockDevice, DiskError, ImageFormat, RawFile, VhdFixed, VmdkFlat, detect,
};

/// 3 MiB and 7 sectors: whole sectors, but not whole MiB or CHS cylinders.
const LEN: usize = 3 * 1024 * 1024 + 7 * 512;
const MIB: usize = 1024 * 1024;

/// Whether `qemu-img` is installed; tests that need it say so and pass
/// without it (it is installed in CI).
fn have_qemu() -> bool {
    let ok = Command::new("qemu-img")
        .arg("--version")
        .output()
        .is_ok_and(|o| o.status.success());
    if !ok {
        eprintln!("qemu-img not found: skipping");
    }
    ok
}

/// Runs `qemu-img args`, returning (exit code, stdout + stderr).
fn qemu(args: &[&str]) -> (i32, String) {
    let out = Command::new("qemu-img")
        .args(args)
        .output()
        .expect("run qemu-img");
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    (out.status.code().unwrap_or(-1), text)
}

/// Runs `qemu-img args` and fails the test unless it succeeds.
fn qemu_ok(args: &[&str]) -> String {
    let (code, text) = qemu(args);
    assert_eq!(code, 0, "qemu-img {args:?} failed: {text}");
    text
}

fn s(p: &Path) -> &str {
    p.to_str().expect("utf-8 temp path")
}

/// Deterministic, non-repeating bytes, with the second MiB left zero so the
/// images have a hole.
fn pattern(len: usize) -> Vec<u8> {
    let mut x: u64 = 0x9e37_79b9_7f4a_7c15;
    let mut v: Vec<u8> = (0..len)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            (x >> 24) as u8
        })
        .collect();
    v[MIB..2 * MIB].fill(0);
    v
}

/// The raw source image: [`pattern`] written by Rust.
fn source(dir: &Path) -> (PathBuf, Vec<u8>) {
    let data = pattern(LEN);
    let path = dir.join("src.raw");
    std::fs::write(&path, &data).unwrap();
    (path, data)
}

/// qemu-img's format name and creation options for each format.
fn qemu_target(format: ImageFormat) -> (&'static str, &'static [&'static str], &'static str) {
    match format {
        ImageFormat::Raw => ("raw", &[], "img"),
        ImageFormat::VmdkFlat => ("vmdk", &["-o", "subformat=monolithicFlat"], "vmdk"),
        ImageFormat::VhdFixed => ("vpc", &["-o", "subformat=fixed,force_size=on"], "vhd"),
    }
}

/// Reads the whole device in 1 MiB blocks from two threads at once, as the
/// data path does.
fn read_all(dev: &Arc<dyn BlockDevice>) -> Vec<u8> {
    let cap = usize::try_from(dev.capacity()).unwrap();
    let mut out = vec![0u8; cap];
    std::thread::scope(|scope| {
        for (i, chunk) in out.chunks_mut(MIB).enumerate() {
            let dev = dev.clone();
            scope.spawn(move || dev.read_at(chunk, (i * MIB) as u64).unwrap());
        }
    });
    out
}

/// Writes `data` in 1 MiB blocks from several threads at once.
fn write_all(dev: &Arc<dyn BlockDevice>, data: &[u8]) {
    std::thread::scope(|scope| {
        for (i, chunk) in data.chunks(MIB).enumerate() {
            let dev = dev.clone();
            scope.spawn(move || dev.write_at(chunk, (i * MIB) as u64).unwrap());
        }
    });
    dev.flush().unwrap();
}

fn open_err(path: &Path, declared: Option<ImageFormat>) -> DiskError {
    match disk::open(path, false, declared) {
        Ok(d) => panic!("{} opened as {}", path.display(), d.describe()),
        Err(e) => e,
    }
}

fn create_err(path: &Path, format: ImageFormat, capacity: u64) -> DiskError {
    match disk::create(path, format, capacity) {
        Ok(d) => panic!("{} created as {}", path.display(), d.describe()),
        Err(e) => e,
    }
}

/// Whether the temp file system reports holes (SEEK_HOLE); exact allocation
/// checks need it.
fn reports_holes(dir: &Path) -> bool {
    let path = dir.join("probe-holes");
    let ranges = RawFile::create(&path, 1 << 20)
        .unwrap()
        .allocated_ranges()
        .unwrap();
    std::fs::remove_file(&path).unwrap();
    let ok = ranges == Some(vec![]);
    if !ok {
        eprintln!("temp file system does not report holes: skipping exact range checks");
    }
    ok
}

/// The blocks holding `[start, end)` on a file system of `block` bytes.
fn blocks(start: u64, end: u64, block: u64) -> std::ops::Range<u64> {
    (start / block * block)..end.div_ceil(block) * block
}

#[test]
fn images_qemu_writes_read_back_byte_identical() {
    if !have_qemu() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let (src, data) = source(dir.path());
    for format in ImageFormat::ALL {
        let (qfmt, opts, ext) = qemu_target(format);
        let dst = dir.path().join(format!("qemu.{ext}"));
        let mut args = vec!["convert", "-f", "raw", "-O", qfmt];
        args.extend_from_slice(opts);
        args.extend([s(&src), s(&dst)]);
        qemu_ok(&args);

        assert_eq!(detect(&dst).unwrap(), format, "{}", dst.display());
        let dev: Arc<dyn BlockDevice> = disk::open(&dst, false, Some(format)).unwrap().into();
        assert_eq!(dev.capacity(), LEN as u64, "{format}");
        assert!(!dev.writable());
        assert!(read_all(&dev) == data, "{format}: bytes differ");
        // An unaligned read across the hole's edge.
        let mut buf = vec![0u8; 1000];
        dev.read_at(&mut buf, 2 * MIB as u64 - 500).unwrap();
        assert_eq!(buf, data[2 * MIB - 500..2 * MIB + 500]);
        assert!(dev.read_at(&mut buf, LEN as u64 - 999).is_err());
        assert!(dev.describe().contains(s(&dst)), "{}", dev.describe());
    }
}

#[test]
fn vhd_without_force_size_reads_back_too() {
    if !have_qemu() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let (src, data) = source(dir.path());
    let dst = dir.path().join("chs.vhd");
    // qemu rounds the size up to whole CHS cylinders and says so in the footer.
    qemu_ok(&[
        "convert",
        "-f",
        "raw",
        "-O",
        "vpc",
        "-o",
        "subformat=fixed",
        s(&src),
        s(&dst),
    ]);
    let dev: Arc<dyn BlockDevice> = disk::open(&dst, false, None).unwrap().into();
    let info = qemu_ok(&["info", "-f", "vpc", "--output=json", s(&dst)]);
    assert!(
        info.contains(&format!("\"virtual-size\": {}", dev.capacity())),
        "{info}"
    );
    let back = read_all(&dev);
    assert!(back[..LEN] == data[..]);
    assert!(back[LEN..].iter().all(|&b| b == 0));
}

#[test]
fn images_homeward_writes_are_identical_for_qemu() {
    if !have_qemu() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let (src, data) = source(dir.path());
    for format in ImageFormat::ALL {
        let (qfmt, _, ext) = qemu_target(format);
        let dst = dir.path().join(format!("homeward.{ext}"));
        let dev: Arc<dyn BlockDevice> = disk::create(&dst, format, LEN as u64).unwrap().into();
        assert!(dev.writable());
        assert_eq!(dev.capacity(), LEN as u64);
        write_all(&dev, &data);
        drop(dev);

        let out = qemu_ok(&["compare", "-f", "raw", "-F", qfmt, s(&src), s(&dst)]);
        assert!(out.contains("identical"), "{format}: {out}");
        let info = qemu_ok(&["info", "-f", qfmt, "--output=json", s(&dst)]);
        assert!(
            info.contains(&format!("\"virtual-size\": {LEN}")),
            "{format}: {info}"
        );
        match format {
            ImageFormat::VmdkFlat => {
                assert!(
                    info.contains("\"create-type\": \"monolithicFlat\""),
                    "{info}"
                );
                let out = qemu_ok(&["check", "-f", "vmdk", s(&dst)]);
                assert!(out.contains("No errors"), "{out}");
            }
            ImageFormat::VhdFixed => {
                // qemu's vpc driver has no consistency check ("This image
                // format does not support checks", exit 63); `info` above
                // parsed and accepted the footer, checksum included.
                let (code, out) = qemu(&["check", "-f", "vpc", s(&dst)]);
                assert!(
                    code == 0 || (code == 63 && out.contains("does not support checks")),
                    "{out}"
                );
                // The footer is intact after writing up to the last byte.
                let file = std::fs::File::open(&dst).unwrap();
                let mut cookie = [0u8; 8];
                file.read_exact_at(&mut cookie, LEN as u64).unwrap();
                assert_eq!(&cookie, b"conectix");
            }
            ImageFormat::Raw => {}
        }
        let dev: Arc<dyn BlockDevice> = disk::open(&dst, false, Some(format)).unwrap().into();
        assert!(read_all(&dev) == data, "{format}: reopened bytes differ");
    }
}

#[test]
fn vhd_footer_fields_agree_with_qemu() {
    if !have_qemu() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    // 10 MiB rounded up to whole cylinders, as qemu-img does without force_size.
    let cap: u64 = 10_514_432;
    let path = dir.path().join("q.vhd");
    qemu_ok(&[
        "create",
        "-f",
        "vpc",
        "-o",
        "subformat=fixed",
        s(&path),
        "10M",
    ]);
    let mut theirs = [0u8; 512];
    std::fs::File::open(&path)
        .unwrap()
        .read_exact_at(&mut theirs, cap)
        .unwrap();
    let ours = VhdFixed::make_footer(cap);
    // cookie, features, version, data offset
    assert_eq!(ours[..24], theirs[..24]);
    // original size, current size, geometry (CHS by the specification), disk type
    assert_eq!(ours[40..64], theirs[40..64]);
    assert_eq!(&ours[56..60], &[0x01, 0x2e, 0x04, 0x11]);
    // A fresh unique id each time.
    assert_ne!(ours[68..84], VhdFixed::make_footer(cap)[68..84]);
    assert_eq!(ours[68 + 6] >> 4, 4, "a version-4 UUID");
    // The largest geometry for large disks.
    assert_eq!(
        &VhdFixed::make_footer(4 << 40)[56..60],
        &[0xff, 0xff, 0x10, 0xff]
    );
}

#[test]
fn vhd_writes_never_touch_the_footer() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("w.vhd");
    let dev = VhdFixed::create(&path, 64 * 1024).unwrap();
    let footer = std::fs::read(&path).unwrap()[64 * 1024..].to_vec();
    assert!(dev.write_at(&[1, 2], 64 * 1024 - 1).is_err());
    assert!(dev.write_at(&[1], 64 * 1024).is_err());
    assert!(dev.write_at(&[1], u64::MAX).is_err());
    dev.write_at(&[9], 64 * 1024 - 1).unwrap();
    drop(dev);
    let bytes = std::fs::read(&path).unwrap();
    assert_eq!(bytes.len(), 64 * 1024 + 512);
    assert_eq!(bytes[64 * 1024 - 1], 9);
    assert_eq!(bytes[64 * 1024..], footer[..]);
    VhdFixed::open(&path, false).unwrap();
}

/// Flips footer checksum bytes: the error names the file, both values and the fix.
#[test]
fn vhd_with_a_bad_checksum_is_refused() {
    if !have_qemu() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("bad.vhd");
    qemu_ok(&[
        "create",
        "-f",
        "vpc",
        "-o",
        "subformat=fixed,force_size=on",
        s(&path),
        "1M",
    ]);
    let file = std::fs::OpenOptions::new().write(true).open(&path).unwrap();
    let mut sum = [0u8; 4];
    std::fs::File::open(&path)
        .unwrap()
        .read_exact_at(&mut sum, MIB as u64 + 64)
        .unwrap();
    let stored = u32::from_be_bytes(sum);
    file.write_all_at(&(stored ^ 0x0101).to_be_bytes(), MIB as u64 + 64)
        .unwrap();
    drop(file);
    // Detection still sees a fixed VHD; opening checks the checksum.
    assert_eq!(detect(&path).unwrap(), ImageFormat::VhdFixed);
    let err = open_err(&path, None);
    let msg = err.to_string();
    match err {
        DiskError::VhdChecksum {
            expected, found, ..
        } => {
            assert_eq!(expected, stored);
            assert_eq!(found, stored ^ 0x0101);
            assert!(msg.contains(&format!("{found:#010x}")), "{msg}");
            assert!(msg.contains(&format!("{expected:#010x}")), "{msg}");
        }
        other => panic!("expected a checksum error, got {other}"),
    }
    assert!(msg.contains(s(&path)) && msg.contains("checksum"), "{msg}");
    assert!(msg.contains("truncate -s -512"), "{msg}");
    // qemu agrees the image is damaged.
    let (code, out) = qemu(&["info", "-f", "vpc", s(&path)]);
    assert_ne!(code, 0, "{out}");
}

/// Creates an image with `qemu-img create args… <dir>/name 4M`; returns the
/// refusal from `open` (and checks `detect` gives the same).
fn refusal_of(dir: &Path, name: &str, args: &[&str]) -> String {
    let path = dir.join(name);
    let mut all = vec!["create"];
    all.extend_from_slice(args);
    all.extend([s(&path), "4M"]);
    qemu_ok(&all);
    let err = open_err(&path, None);
    assert!(
        matches!(err, DiskError::UnsupportedFormat { .. }),
        "{name}: {err:?}"
    );
    assert_eq!(detect(&path).unwrap_err().to_string(), err.to_string());
    let msg = err.to_string();
    assert!(msg.contains(s(&path)), "{msg}");
    assert!(msg.contains("qemu-img convert"), "{msg}");
    msg
}

#[test]
fn formats_that_are_not_served_are_refused_with_the_conversion() {
    if !have_qemu() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let cases: &[(&str, &[&str], &[&str])] = &[
        (
            "sparse.vmdk",
            &["-f", "vmdk"],
            &[
                "VMDK sparse (monolithicSparse or streamOptimized)",
                "-f vmdk",
            ],
        ),
        (
            "stream.vmdk",
            &["-f", "vmdk", "-o", "subformat=streamOptimized"],
            &["VMDK sparse", "-f vmdk"],
        ),
        (
            "split.vmdk",
            &["-f", "vmdk", "-o", "subformat=twoGbMaxExtentSparse"],
            &["VMDK twoGbMaxExtentSparse", "-f vmdk"],
        ),
        ("disk.qcow2", &["-f", "qcow2"], &["qcow2 image", "-f qcow2"]),
        ("dyn.vhd", &["-f", "vpc"], &["VHD dynamic", "-f vpc"]),
        ("disk.vhdx", &["-f", "vhdx"], &["VHDX", "-f vhdx"]),
        ("disk.vdi", &["-f", "vdi"], &["VDI", "-f vdi"]),
    ];
    for (name, args, needles) in cases {
        let msg = refusal_of(d, name, args);
        for n in *needles {
            assert!(msg.contains(n), "{name}: `{n}` not in: {msg}");
        }
    }
}

/// The one's-complement byte sum of a VHD footer.
fn vhd_checksum(f: &[u8]) -> u32 {
    let sum = f
        .iter()
        .enumerate()
        .filter(|(i, _)| !(64..68).contains(i))
        .fold(0u32, |a, (_, &b)| a.wrapping_add(u32::from(b)));
    !sum
}

#[test]
fn differencing_vhd_is_refused() {
    if !have_qemu() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("child.vhd");
    // qemu-img cannot create one; make a dynamic disk claim type 4 in both
    // footer copies (start and end), with valid checksums.
    qemu_ok(&["create", "-f", "vpc", s(&path), "4M"]);
    let mut bytes = std::fs::read(&path).unwrap();
    let end = bytes.len() - 512;
    for at in [0, end] {
        let f = &mut bytes[at..at + 512];
        f[60..64].copy_from_slice(&4u32.to_be_bytes());
        let sum = vhd_checksum(f);
        f[64..68].copy_from_slice(&sum.to_be_bytes());
    }
    std::fs::write(&path, bytes).unwrap();
    let msg = open_err(&path, None).to_string();
    assert!(msg.contains("VHD differencing"), "{msg}");
    assert!(msg.contains("-f vpc") && msg.contains(s(&path)), "{msg}");
}

#[test]
fn declared_format_must_match_the_content() {
    let dir = tempfile::tempdir().unwrap();
    let raw = dir.path().join("disk.vhd");
    std::fs::write(&raw, vec![1u8; 8192]).unwrap();
    let err = open_err(&raw, Some(ImageFormat::VhdFixed));
    let msg = err.to_string();
    assert!(
        matches!(
            err,
            DiskError::FormatMismatch {
                declared: ImageFormat::VhdFixed,
                detected: ImageFormat::Raw,
                ..
            }
        ),
        "{msg}"
    );
    assert!(msg.contains(s(&raw)), "{msg}");
    assert!(
        msg.contains("declared VHD fixed") && msg.contains("content is raw"),
        "{msg}"
    );
    // The same file declared raw, or not declared, opens.
    assert_eq!(
        disk::open(&raw, false, Some(ImageFormat::Raw))
            .unwrap()
            .capacity(),
        8192
    );

    // A VMDK descriptor declared raw is a mismatch too; the -flat extent
    // declared vmdk gets a hint to give the descriptor.
    let vmdk = dir.path().join("d.vmdk");
    VmdkFlat::create(&vmdk, 4096).unwrap();
    assert!(matches!(
        open_err(&vmdk, Some(ImageFormat::Raw)),
        DiskError::FormatMismatch {
            detected: ImageFormat::VmdkFlat,
            ..
        }
    ));
    let msg = open_err(&dir.path().join("d-flat.vmdk"), Some(ImageFormat::VmdkFlat)).to_string();
    assert!(msg.contains("descriptor"), "{msg}");
}

#[test]
fn format_names_parse_and_display() {
    assert_eq!("raw".parse::<ImageFormat>().unwrap(), ImageFormat::Raw);
    assert_eq!(
        "VMDK".parse::<ImageFormat>().unwrap(),
        ImageFormat::VmdkFlat
    );
    assert_eq!("vhd".parse::<ImageFormat>().unwrap(), ImageFormat::VhdFixed);
    assert_eq!("vpc".parse::<ImageFormat>().unwrap(), ImageFormat::VhdFixed);
    let err = "qcow2".parse::<ImageFormat>().unwrap_err().to_string();
    assert!(err.contains("`qcow2`") && err.contains("raw"), "{err}");
    assert_eq!(ImageFormat::Raw.to_string(), "raw");
    assert_eq!(ImageFormat::VmdkFlat.to_string(), "VMDK monolithicFlat");
    assert_eq!(ImageFormat::VhdFixed.to_string(), "VHD fixed");
    for f in ImageFormat::ALL {
        assert_eq!(f.cli_name().parse::<ImageFormat>().unwrap(), f);
    }
}

/// A qemu-made monolithicFlat descriptor text and its 1 MiB extent.
fn qemu_flat(dir: &Path, name: &str) -> (PathBuf, String) {
    let path = dir.join(format!("{name}.vmdk"));
    qemu_ok(&[
        "create",
        "-f",
        "vmdk",
        "-o",
        "subformat=monolithicFlat",
        s(&path),
        "1M",
    ]);
    let text = std::fs::read_to_string(&path).unwrap();
    (path, text)
}

#[test]
fn damaged_vmdk_descriptors_and_extents_have_their_own_errors() {
    if !have_qemu() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let (path, text) = qemu_flat(dir.path(), "t");
    disk::open(&path, false, Some(ImageFormat::VmdkFlat)).unwrap();

    // Truncated before the extent lines.
    let cut = text.find("# Extent description").unwrap();
    std::fs::write(&path, &text[..cut]).unwrap();
    let msg = open_err(&path, None).to_string();
    assert!(
        msg.contains("lists no extents") && msg.contains(s(&path)),
        "{msg}"
    );

    // Truncated inside the extent file name.
    let cut = text.find("t-flat").unwrap() + 3;
    std::fs::write(&path, &text[..cut]).unwrap();
    let msg = open_err(&path, None).to_string();
    assert!(
        msg.contains("no closing quote") && msg.contains("line 8"),
        "{msg}"
    );

    // Truncated before createType: still a descriptor by its banner.
    std::fs::write(&path, "# Disk DescriptorFile\nversion=1\nCID=1234").unwrap();
    let msg = open_err(&path, Some(ImageFormat::VmdkFlat)).to_string();
    assert!(msg.contains("no createType"), "{msg}");

    // A short extent.
    std::fs::write(&path, &text).unwrap();
    let flat = dir.path().join("t-flat.vmdk");
    std::fs::File::options()
        .write(true)
        .open(&flat)
        .unwrap()
        .set_len(1000)
        .unwrap();
    let msg = open_err(&path, None).to_string();
    assert!(
        msg.contains(s(&flat)) && msg.contains("1000 bytes") && msg.contains("truncated"),
        "{msg}"
    );

    // A missing extent.
    std::fs::remove_file(&flat).unwrap();
    let err = open_err(&path, None);
    assert!(matches!(err, DiskError::MissingExtent { .. }), "{err}");
    assert!(err.to_string().contains(s(&flat)), "{err}");
}

#[test]
fn malformed_descriptors_are_errors_never_panics() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    std::fs::write(d.join("x-flat.vmdk"), vec![0u8; 4096]).unwrap();
    let head = "# Disk DescriptorFile\nversion=1\nCID=fffffffe\nparentCID=ffffffff\n";
    let cases: &[(&str, &str)] = &[
        (
            "createType=\"monolithicFlat\"\nRW 99999999999999999999 FLAT \"x-flat.vmdk\" 0\n",
            "not a number of sectors",
        ),
        (
            "createType=\"monolithicFlat\"\nRW 36028797018963968 FLAT \"x-flat.vmdk\" 0\n",
            "more than any disk",
        ),
        (
            "createType=\"monolithicFlat\"\nRW 8 FLAT \"x-flat.vmdk\" 18446744073709551615\n",
            "more than any disk",
        ),
        (
            "createType=\"monolithicFlat\"\nRW 8 FLAT \"x-flat.vmdk\" 7\n",
            "truncated",
        ),
        (
            "createType=\"monolithicFlat\"\nRW 8 FLAT \"/etc/passwd\" 0\n",
            "not a path inside",
        ),
        (
            "createType=\"monolithicFlat\"\nRW 8 FLAT \"../x-flat.vmdk\" 0\n",
            "not a path inside",
        ),
        ("createType=\"monolithicFlat\"\nRW 8 ZERO\n", "ZERO extent"),
        (
            "createType=\"monolithicFlat\"\nRW 8 SPARSE \"x-flat.vmdk\"\n",
            "SPARSE extent",
        ),
        (
            "createType=\"monolithicFlat\"\nNOACCESS 8 FLAT \"x-flat.vmdk\" 0\n",
            "NOACCESS extent",
        ),
        ("createType=\"monolithicFlat\"\nRW 8 FLAT\n", "no file name"),
        ("createType=\"monolithicFlat\"\nRW\n", "lists no extents"),
        ("version=2\n", "no createType"),
        ("createType=\"monolithicFlat\"\nRW x\n", "not a number"),
        ("createType=\"vmfsSparse\"\n", "VMDK vmfsSparse"),
        ("createType=\"seSparse\"\n", "vmkfstools"),
        ("createType=\"streamOptimized\"\n", "VMDK streamOptimized"),
    ];
    for (i, (body, needle)) in cases.iter().enumerate() {
        let path = d.join(format!("case{i}.vmdk"));
        std::fs::write(&path, format!("{head}{body}")).unwrap();
        let msg = open_err(&path, None).to_string();
        assert!(msg.contains(needle), "case {i}: `{needle}` not in: {msg}");
        assert!(msg.contains(s(&path)), "case {i}: {msg}");
    }

    // Every prefix of a valid descriptor, and every byte of it replaced by
    // an odd one, opens or fails cleanly.
    let full = format!(
        "{head}createType=\"monolithicFlat\"\r\n\r\n# Extent description\r\nRW 8 FLAT \"x-flat.vmdk\" 0\r\n\r\nddb.adapterType = \"lsilogic\"\r\n"
    );
    let path = d.join("fuzz.vmdk");
    std::fs::write(&path, &full).unwrap();
    assert_eq!(disk::open(&path, false, None).unwrap().capacity(), 4096);
    for cut in 0..full.len() {
        std::fs::write(&path, &full.as_bytes()[..cut]).unwrap();
        let _ = disk::open(&path, false, None);
        for b in [b'"', b'\0', 0xff, b'9', b' '] {
            let mut bytes = full.clone().into_bytes();
            bytes[cut] = b;
            std::fs::write(&path, &bytes).unwrap();
            let _ = disk::open(&path, true, None);
        }
    }
}

#[test]
fn esxi_descriptors_and_split_extents_open() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    // What an ESXi datastore holds, with CRLF and comments: one VMFS extent
    // without an offset.
    std::fs::write(d.join("vm-flat.vmdk"), vec![5u8; 8192]).unwrap();
    let esxi = "# Disk DescriptorFile\r\nversion=1\r\nencoding=\"UTF-8\"\r\nCID=fffffffe\r\nparentCID=ffffffff\r\n  createType = \"vmfs\"  \r\n\r\n# Extent description\r\nRW 16 VMFS \"vm-flat.vmdk\"\r\n\r\n# The Disk Data Base\r\n#DDB\r\n\r\nddb.adapterType = \"lsilogic\"\r\nddb.uuid = \"60 00 C2 9a\"\r\nddb.virtualHWVersion = \"14\"\r\n";
    let path = d.join("vm.vmdk");
    std::fs::write(&path, esxi).unwrap();
    assert_eq!(detect(&path).unwrap(), ImageFormat::VmdkFlat);
    let dev = disk::open(&path, false, Some(ImageFormat::VmdkFlat)).unwrap();
    assert_eq!(dev.capacity(), 8192);
    assert!(dev.describe().contains("vmfs"), "{}", dev.describe());

    // Three extents, one starting at an offset inside its file, one with a
    // space and an `=` in its name, one RDONLY; reads and writes cross them.
    std::fs::write(d.join("a.bin"), vec![0u8; 4096]).unwrap();
    std::fs::write(d.join("b = c.bin"), vec![0u8; 8192]).unwrap();
    std::fs::write(d.join("c.bin"), vec![0u8; 512]).unwrap();
    let text = "# Disk DescriptorFile\ncreateType=\"twoGbMaxExtentFlat\"\nRW 8 FLAT \"a.bin\" 0\nRW 0 FLAT \"c.bin\" 0\nRW 4 FLAT \"b = c.bin\" 8\nRDONLY 1 FLAT \"c.bin\" 0\n";
    let path = d.join("split.vmdk");
    std::fs::write(&path, text).unwrap();
    let err = VmdkFlat::open(&path, true).unwrap_err();
    assert!(err.to_string().contains("RDONLY"), "{err}");
    std::fs::write(&path, text.replace("RDONLY", "RW")).unwrap();
    let dev = VmdkFlat::open(&path, true).unwrap();
    assert_eq!(dev.capacity(), (8 + 4 + 1) * 512);
    assert_eq!(dev.extent_paths().len(), 3);
    let data: Vec<u8> = (0..13 * 512).map(|i| (i % 251) as u8).collect();
    dev.write_at(&data, 0).unwrap();
    let mut back = vec![0u8; data.len() - 100];
    dev.read_at(&mut back, 50).unwrap();
    assert_eq!(back, data[50..data.len() - 50]);
    assert!(dev.write_at(&[0], 13 * 512).is_err());
    let b = std::fs::read(d.join("b = c.bin")).unwrap();
    assert!(
        b[..4096].iter().all(|&x| x == 0),
        "bytes before the offset untouched"
    );
    assert_eq!(b[4096..6144], data[4096..6144]);
    assert!(
        b[6144..].iter().all(|&x| x == 0),
        "bytes after the extent untouched"
    );
    assert_eq!(std::fs::read(d.join("c.bin")).unwrap(), data[6144..]);
}

#[test]
fn creating_refuses_existing_files_and_odd_capacities() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    for format in ImageFormat::ALL {
        let path = d.join(format!("e.{}", format.cli_name()));
        std::fs::write(&path, b"keep").unwrap();
        let err = create_err(&path, format, 4096);
        assert!(matches!(err, DiskError::Exists { .. }), "{err}");
        assert!(err.to_string().contains(s(&path)), "{err}");
        assert_eq!(std::fs::read(&path).unwrap(), b"keep");
        for cap in [0, 1000, u64::MAX, u64::MAX / 512 * 512] {
            let fresh = d.join(format!("n{cap}.{}", format.cli_name()));
            let err = create_err(&fresh, format, cap);
            assert!(matches!(err, DiskError::InvalidCapacity { .. }), "{err}");
            assert!(!fresh.exists());
        }
    }
    // A VMDK whose extent name is taken: nothing created, nothing removed.
    std::fs::write(d.join("v-flat.vmdk"), b"keep").unwrap();
    let err = VmdkFlat::create(&d.join("v.vmdk"), 4096).unwrap_err();
    assert!(err.to_string().contains("v-flat.vmdk"), "{err}");
    assert!(!d.join("v.vmdk").exists());
    assert_eq!(std::fs::read(d.join("v-flat.vmdk")).unwrap(), b"keep");
}

#[test]
fn missing_and_unreadable_files_say_so() {
    let dir = tempfile::tempdir().unwrap();
    let missing = dir.path().join("nope.img");
    let err = open_err(&missing, None);
    assert!(matches!(err, DiskError::NotFound { .. }), "{err}");
    assert!(err.to_string().contains(s(&missing)));
    let err = open_err(dir.path(), None);
    assert!(matches!(err, DiskError::Unreadable { .. }), "{err}");
    // io::Error keeps the message, for callers in io::Result.
    let io_err: io::Error = open_err(&missing, None).into();
    assert_eq!(io_err.kind(), io::ErrorKind::NotFound);
    assert!(io_err.to_string().contains("does not exist"));
    // Too short for a footer.
    let short = dir.path().join("short.vhd");
    std::fs::write(&short, [0u8; 100]).unwrap();
    let msg = VhdFixed::open(&short, false).unwrap_err().to_string();
    assert!(
        msg.contains("too short") && msg.contains(s(&short)),
        "{msg}"
    );
}

#[test]
fn allocated_ranges_cover_the_written_blocks() {
    let dir = tempfile::tempdir().unwrap();
    if !reports_holes(dir.path()) {
        return;
    }
    let block = std::fs::metadata(dir.path()).unwrap().blksize();
    let cap: u64 = 16 * MIB as u64;
    let writes: [(u64, usize); 3] = [(0, 4096), (MIB as u64 + 8192, 8192), (cap - 512, 512)];
    let expected: Vec<_> = writes
        .iter()
        .map(|&(at, n)| blocks(at, at + n as u64, block))
        .collect();
    for format in ImageFormat::ALL {
        let path = dir.path().join(format!("sparse.{}", format.cli_name()));
        let dev = disk::create(&path, format, cap).unwrap();
        assert_eq!(dev.allocated_ranges().unwrap(), Some(vec![]), "{format}");
        for (at, n) in writes {
            dev.write_at(&vec![0xa5; n], at).unwrap();
        }
        dev.flush().unwrap();
        assert_eq!(
            dev.allocated_ranges().unwrap(),
            Some(expected.clone()),
            "{format}"
        );
        drop(dev);
        let dev = disk::open(&path, false, Some(format)).unwrap();
        assert_eq!(
            dev.allocated_ranges().unwrap(),
            Some(expected.clone()),
            "{format} reopened"
        );
    }
}

#[test]
fn vmdk_allocated_ranges_map_extents_to_disk_offsets() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    if !reports_holes(d) {
        return;
    }
    let block = std::fs::metadata(d).unwrap().blksize();
    // Extent a: 64 blocks at file offset 0; extent b: 64 blocks from file
    // offset 16 blocks.
    let n = 64 * block;
    let a = RawFile::create(&d.join("a.bin"), n).unwrap();
    a.write_at(&[1], block).unwrap();
    let b = RawFile::create(&d.join("b.bin"), n + 16 * block).unwrap();
    b.write_at(&[1], 16 * block).unwrap(); // first byte of extent b
    b.write_at(&[1], 8 * block).unwrap(); // before extent b: not the disk's
    b.flush().unwrap();
    a.flush().unwrap();
    let text = format!(
        "# Disk DescriptorFile\ncreateType=\"twoGbMaxExtentFlat\"\nRW {} FLAT \"a.bin\" 0\nRW {} FLAT \"b.bin\" {}\n",
        n / 512,
        n / 512,
        16 * block / 512
    );
    std::fs::write(d.join("two.vmdk"), text).unwrap();
    let dev = disk::open(&d.join("two.vmdk"), false, None).unwrap();
    assert_eq!(
        dev.allocated_ranges().unwrap(),
        Some(vec![block..2 * block, n..n + block])
    );
}
