//! File-system images for the `fs_*` tests: running the real tools (mkfs,
//! checkers, readers) and a standard source tree to populate images with.
//!
//! The tools come from Debian packages that `scripts/test` installs
//! (e2fsprogs, xfsprogs, reiserfsprogs, grub-common). A missing tool fails the
//! test with the package to install, never skips it.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

/// Runs `program` with `args` and returns its output, failing the test with
/// the command line and both streams when it cannot start or exits non-zero.
pub fn run_tool(program: &str, args: &[&str]) -> Output {
    run_tool_env(program, args, &[])
}

/// [`run_tool`] with extra environment variables (e.g. the ones `mkfs.xfs`
/// needs to accept a small image).
pub fn run_tool_env(program: &str, args: &[&str], env: &[(&str, &str)]) -> Output {
    let output = tool_output(program, args, env);
    assert!(
        output.status.success(),
        "`{program} {}` failed ({}):\n--- stdout\n{}\n--- stderr\n{}",
        args.join(" "),
        output.status,
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr),
    );
    output
}

/// Runs `program` and returns its output whatever the exit status (for
/// checkers whose status is the answer). Fails only when it cannot start.
pub fn tool_output(program: &str, args: &[&str], env: &[(&str, &str)]) -> Output {
    let mut command = Command::new(program);
    command.args(args);
    for (k, v) in env {
        command.env(k, v);
    }
    command.output().unwrap_or_else(|e| {
        panic!(
            "cannot run `{program}` ({e}); install its Debian package ({}) or run ./scripts/test, which does",
            package_of(program)
        )
    })
}

/// The Debian package that ships `program`, for error messages.
pub fn package_of(program: &str) -> &'static str {
    match program {
        p if p.contains("e2fs") || p.contains("ext4") || p == "debugfs" || p == "dumpe2fs" => {
            "e2fsprogs"
        }
        p if p.contains("xfs") => "xfsprogs",
        p if p.contains("reiser") => "reiserfsprogs",
        p if p.starts_with("grub") => "grub-common",
        "sfdisk" => "fdisk",
        "sgdisk" => "gdisk",
        p if p.starts_with("pv") || p.starts_with("vg") || p.starts_with("lv") => "lvm2",
        _ => "the package that provides it",
    }
}

/// Standard output as text.
pub fn stdout_text(output: &Output) -> String {
    String::from_utf8_lossy(&output.stdout).into_owned()
}

/// A sparse file of `size` bytes at `path` (mkfs targets).
pub fn sparse_file(path: &Path, size: u64) {
    let file = std::fs::File::create(path).expect("create image file");
    file.set_len(size).expect("size image file");
}

/// One file of the standard tree, relative to its root.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TreeEntry {
    /// A regular file with its content.
    File(PathBuf, Vec<u8>),
    /// A directory.
    Dir(PathBuf),
    /// A symlink with its target.
    Symlink(PathBuf, String),
}

/// Deterministic pseudo-random bytes (xorshift), so contents differ per file
/// and compress badly: the conformance suite's own generator.
pub use homeward::conformance::suites::fs_images::pseudo_random;

/// The standard source tree, exercising what handlers must read: empty,
/// one-byte, sub-block, multi-block and multi-megabyte files, a file with
/// many extents' worth of data, deep directories, a directory of 600 entries
/// (hashed / leaf / node directory formats), short and long symlinks (inline
/// and block-stored targets), relative and absolute targets, and non-ASCII
/// names. `scale` 1 is ~3.5 MiB of data; tests on small images use 0.
pub fn standard_tree(scale: usize) -> Vec<TreeEntry> {
    use TreeEntry::*;
    let p = PathBuf::from;
    let mut entries =
        vec![
        Dir(p("etc")),
        File(p("etc/hostname"), b"web01\n".to_vec()),
        File(p("etc/empty"), Vec::new()),
        File(p("etc/one"), b"x".to_vec()),
        Dir(p("etc/sysconfig")),
        Dir(p("etc/sysconfig/network-scripts")),
        File(
            p("etc/sysconfig/network-scripts/ifcfg-eth0"),
            b"DEVICE=eth0\nBOOTPROTO=static\nIPADDR=10.0.0.5\nPREFIX=24\nONBOOT=yes\n".to_vec(),
        ),
        Dir(p("etc/NetworkManager")),
        Dir(p("etc/NetworkManager/system-connections")),
        File(
            p("etc/NetworkManager/system-connections/eth0.nmconnection"),
            b"[connection]\nid=eth0\ntype=ethernet\n[ipv4]\nmethod=manual\naddress1=10.0.0.5/24\n"
                .to_vec(),
        ),
        Symlink(p("etc/localtime"), "/usr/share/zoneinfo/UTC".into()),
        Dir(p("usr")),
        Dir(p("usr/share")),
        Dir(p("usr/share/zoneinfo")),
        File(p("usr/share/zoneinfo/UTC"), b"TZif2 fake zone data\n".to_vec()),
        Dir(p("var")),
        Dir(p("var/lib")),
        File(p("var/lib/block-4095"), pseudo_random(4095, 1)),
        File(p("var/lib/block-4097"), pseudo_random(4097, 2)),
        File(p("var/lib/medium"), pseudo_random(70_000, 3)),
        Symlink(p("var/lib/rel-link"), "medium".into()),
        Symlink(p("var/lib/long-link"), format!("/{}", "long-target-name/".repeat(8)) + "end"),
        Dir(p("deep")),
        Dir(p("deep/a")),
        Dir(p("deep/a/b")),
        Dir(p("deep/a/b/c")),
        Dir(p("deep/a/b/c/d")),
        File(p("deep/a/b/c/d/leaf.txt"), b"bottom\n".to_vec()),
        Dir(p("names")),
        File(p("names/caf\u{e9}-\u{d55c}\u{ad6d}\u{c5b4}.txt"), b"utf-8 name\n".to_vec()),
        File(p("names/with space"), b"space\n".to_vec()),
        Dir(p("many")),
    ];
    for i in 0..600 {
        entries.push(File(
            PathBuf::from(format!("many/entry-{i:04}-{}", "n".repeat(i % 40))),
            format!("entry {i}\n").into_bytes(),
        ));
    }
    if scale > 0 {
        entries.push(File(p("var/lib/large"), pseudo_random(3 << 20, 4)));
    }
    entries
}

/// Writes `entries` under `root` (which must exist).
pub fn write_tree(root: &Path, entries: &[TreeEntry]) {
    for entry in entries {
        match entry {
            TreeEntry::Dir(rel) => std::fs::create_dir_all(root.join(rel)).expect("mkdir"),
            TreeEntry::File(rel, content) => {
                std::fs::write(root.join(rel), content).expect("write")
            }
            TreeEntry::Symlink(rel, target) => {
                std::os::unix::fs::symlink(target, root.join(rel)).expect("symlink")
            }
        }
    }
}

/// Writes `entries` through a handler (natively): directories with
/// `dir_mode`, files with `file_mode`; then syncs. Fails the test naming the
/// entry that could not be written.
pub fn populate<F: homeward_sdk::fs::FileSystem>(
    fs: &mut F,
    entries: &[TreeEntry],
    dir_mode: u32,
    file_mode: u32,
) {
    for entry in entries {
        let result = match entry {
            TreeEntry::Dir(rel) => fs.create_dir(&guest_path(rel), dir_mode),
            TreeEntry::File(rel, content) => fs.write_file(&guest_path(rel), content, file_mode),
            TreeEntry::Symlink(rel, target) => fs.create_symlink(&guest_path(rel), target),
        };
        result.unwrap_or_else(|e| panic!("writing {entry:?}: {e:?}"));
    }
    fs.sync().expect("sync");
}

/// The guest path (`/etc/hostname`) of a tree entry's relative path.
pub fn guest_path(rel: &Path) -> String {
    format!("/{}", rel.display())
}

/// The file-system handlers embedded in the host (ext4, XFS, ReiserFS), as
/// wasm components in a fresh runtime; `disk_write` grants them writing. Keep
/// the runtime alive while calling: it drives the call deadlines.
pub fn embedded_fs_handlers(
    disk_write: bool,
) -> (homeward::plugin::Runtime, homeward::filesystem::FsHandlers) {
    use homeward::config::Grants;
    use homeward::plugin::{PluginSettings, Runtime, RuntimeOptions};
    let runtime = Runtime::new(RuntimeOptions::default()).expect("plugin runtime");
    let plugins: Vec<_> = homeward::embedded::ALL
        .iter()
        .filter(|p| p.id.starts_with("fs-"))
        .map(|p| {
            let settings = PluginSettings {
                grants: Grants {
                    disk_write,
                    ..Grants::default()
                },
                ..PluginSettings::default()
            };
            runtime
                .load(p.wasm, p.id, settings)
                .unwrap_or_else(|e| panic!("embedded {} does not load: {e}", p.id))
        })
        .collect();
    assert_eq!(
        plugins.len(),
        3,
        "ext4, XFS and ReiserFS handlers are embedded"
    );
    (runtime, homeward::filesystem::FsHandlers::new(plugins))
}

/// Makes a 32 MiB ext4 image with 4 KiB blocks at `image`, populated from
/// `entries` (through a source directory under `scratch`).
pub fn ext4_image(image: &Path, scratch: &Path, entries: &[TreeEntry], extra: &[&str]) {
    let src = scratch.join("ext4-src");
    std::fs::create_dir_all(&src).expect("source dir");
    write_tree(&src, entries);
    sparse_file(image, 32 << 20);
    let mut args = vec!["-q", "-F", "-b", "4096", "-L", "guestroot"];
    args.extend_from_slice(extra);
    let (src, img) = (src.display().to_string(), image.display().to_string());
    args.extend_from_slice(&["-d", &src, &img]);
    run_tool("mkfs.ext4", &args);
}

/// `grub-fstest IMG cat PATH`: GRUB's own readers of ext4, XFS and ReiserFS,
/// an implementation independent of both the kernel and Homeward.
pub fn grub_cat(image: &Path, path: &str) -> Vec<u8> {
    run_tool("grub-fstest", &[&image.display().to_string(), "cat", path]).stdout
}
