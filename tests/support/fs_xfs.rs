//! XFS images for the `fs_xfs_*` tests: the tree `mkfs.xfs -p` can express,
//! a protofile writer, image makers for the option sets under test, and
//! parsers of `xfs_db` output to compare the handler against.

use crate::fs_images::{
    TreeEntry, run_tool, run_tool_env, sparse_file, standard_tree, stdout_text, write_tree,
};
use std::collections::{BTreeMap, HashMap};
use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::process::Output;

/// What `mkfs.xfs` needs to accept an image under 300 MB.
pub const MKFS_ENV: [(&str, &str); 3] =
    [("TEST_DIR", "1"), ("TEST_DEV", "1"), ("QA_CHECK_FS", "1")];

/// Size of the test images: the smallest that gets the default 4 AGs.
pub const IMAGE_SIZE: u64 = 64 << 20;

/// The `-m` option sets under test, with a name for messages.
pub const OPTION_SETS: [(&str, &str); 3] = [
    ("default", ""),
    ("reflink-rmapbt", "reflink=1,rmapbt=1"),
    (
        "no-reflink-no-rmapbt-no-finobt",
        "reflink=0,rmapbt=0,finobt=0",
    ),
];

/// The standard tree (scale 1) as `mkfs.xfs -p` can build it, plus what XFS
/// needs to show all its directory forms: a block-form directory
/// (`blockdir`) and a leaf-form one (`leafdir`; the 600-entry `many` is node
/// form with 4 KiB blocks).
///
/// The protofile format splits on whitespace, so names with spaces
/// (`names/with space`) cannot be expressed and are left out. Symlinks too
/// long to be inline are left out too: see [`remote_symlink_target`].
pub fn xfs_tree() -> Vec<TreeEntry> {
    let mut tree: Vec<TreeEntry> = standard_tree(1)
        .into_iter()
        .filter(|e| !path_of(e).to_string_lossy().contains(char::is_whitespace))
        .collect();
    tree.push(TreeEntry::Dir("blockdir".into()));
    for i in 0..30 {
        tree.push(TreeEntry::File(
            format!("blockdir/file-{i:02}-of-a-block-directory").into(),
            format!("block {i}\n").into_bytes(),
        ));
    }
    tree.push(TreeEntry::Dir("leafdir".into()));
    for i in 0..200 {
        tree.push(TreeEntry::File(
            format!("leafdir/leaf-entry-{i:03}").into(),
            format!("leaf {i}\n").into_bytes(),
        ));
    }
    tree
}

/// A directory `bigdir` of `count` files with 60-byte names. `mkfs.xfs -p`
/// interleaves its directory blocks with its files' data, so with 2000
/// entries it needs ~48 extents: more than the inode holds, and its data fork
/// becomes a B+tree (the only way we found to get a B+tree data fork from the
/// real tools without mounting).
pub fn big_dir(count: usize) -> Vec<TreeEntry> {
    let mut tree = vec![TreeEntry::Dir("bigdir".into())];
    for i in 0..count {
        tree.push(TreeEntry::File(
            format!("bigdir/big-directory-entry-{i:05}-{}", "x".repeat(40)).into(),
            format!("big {i}\n").into_bytes(),
        ));
    }
    tree
}

/// The file-system block of the first child of a B+tree data fork's root
/// (`xfs_db print u3.bmbt.ptrs`), as a byte offset.
pub fn bmbt_child_offset(image: &Path, path: &str) -> u64 {
    let sb = xfs_db_sb(image);
    let num = |k: &str| -> u64 { sb[k].parse().unwrap() };
    let out = xfs_db_at(image, path, &["print u3.bmbt.ptrs"]);
    let text = stdout_text(&out);
    let fsb: u64 = text
        .split(" = ")
        .nth(1)
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or_else(|| panic!("no bmbt pointer in:\n{text}"));
    let agblklog = num("agblklog");
    ((fsb >> agblklog) * num("agblocks") + (fsb & ((1 << agblklog) - 1))) * num("blocksize")
}

/// A target too long for the inode (stored in a block). `mkfs.xfs` 6.1 `-p`
/// writes such blocks without the v5 `XSLM` header and CRC, so the result is
/// damaged (`xfs_repair -n` says "bad symlink header"): tests use it only as
/// a damaged image.
pub fn remote_symlink_target() -> String {
    format!("/{}", "a-very-long-symlink-target-component/".repeat(16)) + "end"
}

/// The relative path of a tree entry.
pub fn path_of(entry: &TreeEntry) -> &Path {
    match entry {
        TreeEntry::File(p, _) | TreeEntry::Dir(p) | TreeEntry::Symlink(p, _) => p,
    }
}

#[derive(Default)]
struct ProtoDir {
    children: BTreeMap<String, ProtoNode>,
}

enum ProtoNode {
    Dir(ProtoDir),
    File(PathBuf),
    Symlink(String),
}

/// Writes a `mkfs.xfs -p` protofile for `tree`, whose files are in `src`.
pub fn write_protofile(tree: &[TreeEntry], src: &Path, out: &Path) {
    let mut root = ProtoDir::default();
    for entry in tree {
        let rel = path_of(entry);
        let mut dir = &mut root;
        let parts: Vec<String> = rel
            .iter()
            .map(|c| c.to_string_lossy().into_owned())
            .collect();
        let (last, parents) = parts.split_last().expect("non-empty path");
        for part in parents {
            dir = match dir
                .children
                .entry(part.clone())
                .or_insert_with(|| ProtoNode::Dir(ProtoDir::default()))
            {
                ProtoNode::Dir(d) => d,
                _ => panic!("{part} is not a directory in the tree"),
            };
        }
        let node = match entry {
            TreeEntry::Dir(_) => ProtoNode::Dir(ProtoDir::default()),
            TreeEntry::File(p, _) => ProtoNode::File(src.join(p)),
            TreeEntry::Symlink(_, target) => ProtoNode::Symlink(target.clone()),
        };
        dir.children.entry(last.clone()).or_insert(node);
    }
    let mut text = String::from("/dev/null\n0 0\nd--755 0 0\n");
    emit(&root, 1, &mut text);
    text.push_str("$\n");
    std::fs::write(out, text).expect("write protofile");
}

fn emit(dir: &ProtoDir, depth: usize, text: &mut String) {
    let indent = " ".repeat(depth);
    for (name, node) in &dir.children {
        match node {
            ProtoNode::Dir(d) => {
                writeln!(text, "{indent}{name} d--755 0 0").unwrap();
                emit(d, depth + 1, text);
                writeln!(text, "{indent}$").unwrap();
            }
            ProtoNode::File(src) => {
                writeln!(text, "{indent}{name} ---644 1000 100 {}", src.display()).unwrap()
            }
            ProtoNode::Symlink(target) => {
                writeln!(text, "{indent}{name} l--777 0 0 {target}").unwrap()
            }
        }
    }
}

/// An XFS image in a temp dir, populated from [`xfs_tree`].
pub struct XfsImage {
    pub dir: tempfile::TempDir,
    pub path: PathBuf,
    pub tree: Vec<TreeEntry>,
}

/// Makes an image of [`IMAGE_SIZE`] with `mkfs.xfs -m <options>` (none when empty).
pub fn make_image(m_options: &str) -> XfsImage {
    make_image_with(m_options, &xfs_tree())
}

/// [`make_image`] with a chosen tree.
pub fn make_image_with(m_options: &str, tree: &[TreeEntry]) -> XfsImage {
    make_image_sized(m_options, tree, IMAGE_SIZE)
}

/// [`make_image`] with a chosen tree and size (16 MiB gives one AG).
pub fn make_image_sized(m_options: &str, tree: &[TreeEntry], size: u64) -> XfsImage {
    let dir = tempfile::tempdir().expect("temp dir");
    let src = dir.path().join("src");
    std::fs::create_dir(&src).expect("mkdir src");
    write_tree(&src, tree);
    let proto = dir.path().join("proto");
    write_protofile(tree, &src, &proto);
    let path = dir.path().join("xfs.img");
    sparse_file(&path, size);
    let (proto_s, path_s) = (proto.to_str().unwrap(), path.to_str().unwrap());
    let mut args = vec!["-q", "-f", "-p", proto_s];
    if !m_options.is_empty() {
        args.extend(["-m", m_options]);
    }
    args.push(path_s);
    run_tool_env("mkfs.xfs", &args, &MKFS_ENV);
    XfsImage {
        dir,
        path,
        tree: tree.to_vec(),
    }
}

/// `xfs_db -r IMAGE -c "path PATH" -c COMMAND...`: the tool's view of the
/// inode at guest `path`.
pub fn xfs_db_at(image: &Path, path: &str, commands: &[&str]) -> Output {
    let at = format!("path {path}");
    let mut args = vec!["-r", "-c", &at];
    for command in commands {
        args.extend(["-c", command]);
    }
    let image = image.to_str().expect("utf-8 image path");
    args.push(image);
    run_tool("xfs_db", &args)
}

/// `xfs_db -r -c "sb 0" -c print`: field name to value.
pub fn xfs_db_sb(image: &Path) -> HashMap<String, String> {
    let out = run_tool(
        "xfs_db",
        &["-r", "-c", "sb 0", "-c", "print", image.to_str().unwrap()],
    );
    stdout_text(&out)
        .lines()
        .filter_map(|l| l.split_once(" = "))
        .map(|(k, v)| (k.trim().to_string(), v.trim().to_string()))
        .collect()
}

/// The free extents `xfs_db -r -c "freesp -d"` lists, as (agno, agbno, len).
pub fn freesp_extents(image: &Path) -> Vec<(u64, u64, u64)> {
    let out = run_tool(
        "xfs_db",
        &["-r", "-c", "freesp -d", image.to_str().unwrap()],
    );
    let text = stdout_text(&out);
    let mut extents = Vec::new();
    for line in text.lines() {
        let fields: Vec<&str> = line.split_whitespace().collect();
        if fields.len() != 3 {
            continue;
        }
        if let (Ok(a), Ok(b), Ok(c)) = (fields[0].parse(), fields[1].parse(), fields[2].parse()) {
            extents.push((a, b, c));
        }
    }
    assert!(!extents.is_empty(), "no free extents parsed from:\n{text}");
    extents
}

/// Used byte ranges as the complement of `freesp -d` over the data section,
/// sorted and merged: (offset, length).
pub fn used_from_freesp(image: &Path) -> Vec<(u64, u64)> {
    let sb = xfs_db_sb(image);
    let num = |k: &str| -> u64 { sb[k].parse().unwrap_or_else(|_| panic!("{k} = {}", sb[k])) };
    let (block, agblocks, dblocks) = (num("blocksize"), num("agblocks"), num("dblocks"));
    let mut free: Vec<(u64, u64)> = freesp_extents(image)
        .into_iter()
        .map(|(ag, bno, len)| ((ag * agblocks + bno) * block, len * block))
        .collect();
    free.sort();
    let mut used = Vec::new();
    let mut cursor = 0;
    for (off, len) in free {
        if off > cursor {
            used.push((cursor, off - cursor));
        }
        cursor = off + len;
    }
    let end = dblocks * block;
    if end > cursor {
        used.push((cursor, end - cursor));
    }
    used
}

/// `xfs_repair -n -f` (with `-o force_geometry`, which one-AG images need):
/// (exit code 0, output).
pub fn repair_check(image: &Path) -> (bool, String) {
    let args = ["-n", "-f", "-o", "force_geometry", image.to_str().unwrap()];
    let out = crate::fs_images::tool_output("xfs_repair", &args, &[]);
    let text = format!(
        "{}{}",
        stdout_text(&out),
        String::from_utf8_lossy(&out.stderr)
    );
    (out.status.success(), text)
}

/// Byte offset of the inode at guest `path`, from `xfs_db`'s `stack`.
pub fn inode_offset(image: &Path, path: &str) -> u64 {
    let out = xfs_db_at(image, path, &["stack"]);
    let text = stdout_text(&out);
    text.split("byte offset ")
        .nth(1)
        .and_then(|rest| rest.split(',').next())
        .and_then(|n| n.trim().parse().ok())
        .unwrap_or_else(|| panic!("no byte offset in:\n{text}"))
}

/// The data-fork extents of guest `path` from `xfs_db bmap`, as
/// (file block, byte offset on the image, blocks).
pub fn block_map(image: &Path, path: &str) -> Vec<(u64, u64, u64)> {
    let sb = xfs_db_sb(image);
    let (block, agblocks): (u64, u64) = (
        sb["blocksize"].parse().unwrap(),
        sb["agblocks"].parse().unwrap(),
    );
    let out = xfs_db_at(image, path, &["bmap"]);
    stdout_text(&out)
        .lines()
        .filter_map(|line| {
            // "data offset 0 startblock 34 (0/34) count 1 flag 0"
            let f: Vec<&str> = line.split_whitespace().collect();
            let (ag, agbno) = f
                .get(5)?
                .trim_matches(|c| c == '(' || c == ')')
                .split_once('/')?;
            let (ag, agbno): (u64, u64) = (ag.parse().ok()?, agbno.parse().ok()?);
            Some((
                f.get(2)?.parse().ok()?,
                (ag * agblocks + agbno) * block,
                f.get(7)?.parse().ok()?,
            ))
        })
        .collect()
}

/// The number of levels of each AG's reverse-mapping B+tree (`agf N`, `rmaplevel`).
pub fn rmap_levels(image: &Path) -> Vec<u32> {
    let agcount: u32 = xfs_db_sb(image)["agcount"].parse().unwrap();
    (0..agcount)
        .map(|ag| {
            let out = run_tool(
                "xfs_db",
                &[
                    "-r",
                    "-c",
                    &format!("agf {ag}"),
                    "-c",
                    "print rmaplevel",
                    image.to_str().unwrap(),
                ],
            );
            let text = stdout_text(&out);
            text.split(" = ")
                .nth(1)
                .and_then(|v| v.trim().parse().ok())
                .unwrap_or_else(|| panic!("rmaplevel in {text}"))
        })
        .collect()
}

/// The file `mkfs.xfs` placed last in AG `ag`, just before the AG's free end,
/// found by content (every file of the tree differs): growing it extends its
/// last extent in place. `None` when that block is not a one-block file.
pub fn last_file_of_ag(image: &Path, tree: &[TreeEntry], ag: u64) -> Option<(String, Vec<u8>)> {
    let sb = xfs_db_sb(image);
    let (block, agblocks): (u64, u64) = (
        sb["blocksize"].parse().unwrap(),
        sb["agblocks"].parse().unwrap(),
    );
    let free_end = freesp_extents(image)
        .into_iter()
        .filter(|&(a, _, _)| a == ag)
        .map(|(_, bno, _)| bno)
        .max()?;
    let offset = (ag * agblocks + free_end.checked_sub(1)?) * block;
    let bytes = std::fs::read(image).unwrap();
    let data = &bytes[offset as usize..(offset + block) as usize];
    tree.iter().find_map(|entry| match entry {
        TreeEntry::File(rel, content)
            if !content.is_empty()
                && content.len() as u64 <= block
                && data.starts_with(content)
                && data[content.len()..].iter().all(|&b| b == 0) =>
        {
            Some((crate::fs_images::guest_path(rel), content.clone()))
        }
        _ => None,
    })
}

/// Fails the test unless the handler's used extents of `image` equal the
/// complement of `xfs_db freesp -d`, byte for byte (`what` says when).
pub fn assert_used_matches_freesp(image: &Path, what: &str) {
    use homeward_sdk::fs::{FileDevice, FileSystem};
    let device = FileDevice::open(image, false).expect("open image");
    let used: Vec<(u64, u64)> = homeward_fs_xfs::Handler::used_extents(&device)
        .expect("used extents")
        .iter()
        .map(|r| (r.offset, r.length))
        .collect();
    assert_eq!(
        used,
        used_from_freesp(image),
        "{what}: used extents vs freesp -d"
    );
}
