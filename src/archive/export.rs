//! `dockgc export`: an image's flattened root filesystem, as `docker
//! export` of a fresh container of it (`docker create IMAGE` then `docker
//! export`) writes it, as a tar or into a directory.
//!
//! The merged tree is built in memory (metadata only) from the layers'
//! tar-splits, bottom layer first, with the rules of the daemon's layer
//! extraction and overlayfs (moby `vendor/github.com/moby/go-archive/archive_linux.go`,
//! `whiteouts.go`): an entry replaces what was at its
//! path, except that a directory over a directory only takes the new
//! metadata; `.wh.<name>` deletes `<name>`; `.wh..wh..opq` empties its
//! directory of what lower layers put there; whiteouts and opaque markers
//! are never emitted; a hard link shares its target's inode, so a link
//! group survives a rewrite of one of its names in a higher layer as the
//! kernel shows it. Headers (names of any length or bytes, owners, modes,
//! times, link targets, devices, `SCHILY.xattr.*` extended attributes) are
//! parsed from the tar-split's header bytes; file bodies are read from the
//! layer's `diff/` as `verify --deep` reads them, and each is checked
//! against its length and CRC-64 from the tar-split as it is copied. Layer
//! streams are not hashed as a whole (shadowed files are never read): run
//! `verify --deep --image` for that proof.
//!
//! Then, unless `--image-only`, what the daemon puts into every container
//! before it starts: the init layer (`/.dockerenv`, `/etc/hosts`,
//! `/etc/hostname`, `/etc/resolv.conf`, `/dev/console` as empty files of
//! mode 0755, `/etc/mtab` → `/proc/mounts`, the directories `/dev/pts`,
//! `/dev/shm`, `/proc`, `/sys`, and `/dev` and `/etc` themselves, all root's,
//! mode 0755, dated now; moby `daemon/initlayer/setup_unix.go`) and the `WORKDIR` when the image lacks it.
//!
//! Members come in the order `docker export` writes them (each directory's
//! entries sorted by name, depth first); the first name of an inode carries
//! the body and the others are hard links to it.

use super::output::AtomicFile;
use super::tarw::{self, Header, Kind};
use super::{ArchiveError, LayerRef, Target, choose};
use crate::graph::Graph;
use crate::ids::ImageId;
use crate::verify::deep::{self, LayerFiles, Problem};
use crate::verify::tarsplit::{self, Entry, display_name};
use rustix::fs::{AtFlags, FileType, Mode, OFlags, Timestamps, XattrFlags};
use rustix::fs::{Gid, Uid};
use serde::Serialize;
use std::collections::BTreeMap;
use std::fs::File;
use std::io::{self, BufWriter, Read, Seek, SeekFrom, Write};
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;
use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};

#[derive(Clone, Debug)]
pub struct ExportOptions {
    /// The image, as `verify --image` takes it.
    pub image: String,
    /// Add what the daemon adds to every container (init layer, WORKDIR).
    pub container_files: bool,
    /// The time of those files (seconds since the epoch).
    pub now: i64,
}

pub enum ExportTarget<'a> {
    Tar(Target<'a>),
    /// An empty or missing directory (its parent must exist).
    Dir(&'a Path),
}

#[derive(Debug, Serialize)]
pub struct ExportReport {
    pub image: ImageId,
    pub layers: usize,
    /// Members (or directory entries) written.
    pub entries: u64,
    /// Regular-file bodies written, and their bytes.
    pub files: u64,
    pub bytes: u64,
}

/// Exports `opts.image`. `copied` counts file bytes written (progress).
pub fn export(
    g: &Graph,
    opts: &ExportOptions,
    target: ExportTarget<'_>,
    copied: &AtomicU64,
) -> Result<ExportReport, ArchiveError> {
    // Refuse an unusable directory before any work.
    let created_dir = match &target {
        ExportTarget::Dir(d) => Some(check_dir(d)?),
        ExportTarget::Tar(_) => None,
    };
    let image = choose(g, std::slice::from_ref(&opts.image))?.remove(0);
    let mut tree = Tree::default();
    for (i, l) in image.layers.iter().enumerate() {
        tree.apply_layer(i, l, &image.named)?;
    }
    if opts.container_files {
        let n = image.layers.len();
        tree.container_files(n, opts.now);
        if let Some(wd) = working_dir(&image.config) {
            tree.working_dir(n + 1, wd.as_bytes(), opts.now);
        }
    }
    let mut out = Emit {
        layers: &image.layers,
        open: (0..image.layers.len()).map(|_| None).collect(),
        image: &image.named,
        files: Vec::new(),
        copied,
        buf: vec![0u8; 1 << 20],
        report: ExportReport {
            image: image.id,
            layers: image.layers.len(),
            entries: 0,
            files: 0,
            bytes: 0,
        },
    };
    match target {
        ExportTarget::Tar(Target::File(dest)) => {
            let file = AtomicFile::create(dest)?;
            let mut w = BufWriter::with_capacity(1 << 20, file.file());
            out.tar(&tree, &mut w, dest)?;
            w.flush().map_err(|e| ArchiveError::io(dest, e))?;
            drop(w);
            file.commit()?;
        }
        ExportTarget::Tar(Target::Stream(s)) => {
            let mut w = BufWriter::with_capacity(1 << 20, s);
            let p = Path::new("-");
            out.tar(&tree, &mut w, p)?;
            w.flush().map_err(|e| ArchiveError::io(p, e))?;
        }
        ExportTarget::Dir(dir) => {
            let r = out.extract(&tree, dir);
            if r.is_err() {
                // Leave the directory as it was found: empty, or absent.
                let _ = remove_contents(dir);
                if created_dir == Some(true) {
                    let _ = std::fs::remove_dir(dir);
                }
            }
            r?;
        }
    }
    Ok(out.report)
}

/// `--dir`: an empty directory, or a missing one in an existing directory
/// (created here; true). A symlink to a directory is that directory: the
/// path is the user's; what is never followed is a symlink inside it.
fn check_dir(d: &Path) -> Result<bool, ArchiveError> {
    let bad = |reason: String| ArchiveError::Output {
        path: d.to_path_buf(),
        reason,
    };
    match std::fs::metadata(d) {
        Ok(m) if m.is_dir() => {
            let mut it = std::fs::read_dir(d).map_err(|e| bad(e.to_string()))?;
            if it.next().is_some() {
                return Err(bad(
                    "is not empty (export extracts only into an empty directory)".into(),
                ));
            }
            Ok(false)
        }
        Ok(_) => Err(bad("exists and is not a directory".into())),
        Err(e) if e.kind() == io::ErrorKind::NotFound && std::fs::symlink_metadata(d).is_err() => {
            std::fs::create_dir(d).map_err(|e| bad(format!("cannot create it: {e}")))?;
            Ok(true)
        }
        Err(e) => Err(bad(e.to_string())),
    }
}

/// `config.WorkingDir` of an image config.
fn working_dir(config: &[u8]) -> Option<String> {
    let v: serde_json::Value = serde_json::from_slice(config).ok()?;
    v.get("config")?
        .get("WorkingDir")?
        .as_str()
        .filter(|s| !s.is_empty())
        .map(str::to_string)
}

// ---- the merged tree --------------------------------------------------

#[derive(Clone, Debug, Default, PartialEq, Eq)]
struct Meta {
    mode: u32,
    uid: u64,
    gid: u64,
    mtime: i64,
    xattrs: Vec<(Vec<u8>, Vec<u8>)>,
}

impl Meta {
    fn root_owned(mode: u32, mtime: i64) -> Meta {
        Meta {
            mode,
            uid: 0,
            gid: 0,
            mtime,
            xattrs: Vec::new(),
        }
    }
}

#[derive(Clone, Debug)]
enum Leaf {
    /// A regular file; `body` is (layer index, tar name, CRC) when it has one.
    File {
        size: u64,
        body: Option<(usize, Box<[u8]>, Option<u64>)>,
    },
    Symlink(Box<[u8]>),
    Char(u64, u64),
    Block(u64, u64),
    Fifo,
}

#[derive(Clone, Debug)]
struct Inode {
    meta: Meta,
    leaf: Leaf,
}

#[derive(Debug)]
enum Node {
    Dir(Box<Dir>),
    /// An index into `Tree::inodes`; hard links share one.
    Leaf {
        ino: usize,
        layer: usize,
    },
}

#[derive(Debug, Default)]
struct Dir {
    meta: Meta,
    /// The layer whose entry (or implicit creation) last set this directory.
    layer: usize,
    children: BTreeMap<Box<[u8]>, Node>,
}

#[derive(Debug, Default)]
struct Tree {
    root: Dir,
    inodes: Vec<Inode>,
}

/// What one tar entry is, from its header.
struct Parsed {
    name: Vec<u8>,
    flag: u8,
    size: u64,
    meta: Meta,
    link: Vec<u8>,
    dev: (u64, u64),
    sparse: bool,
}

impl Tree {
    /// Applies one layer's entries, from its tar-split.
    fn apply_layer(&mut self, idx: usize, l: &LayerRef, image: &str) -> Result<(), ArchiveError> {
        let damaged = |what: String| {
            ArchiveError::Damaged(format!(
                "layer {} (diff ID {}) of {image}: {what}",
                l.chain_id, l.diff_id
            ))
        };
        let f = deep::open_tar_split(&l.layer_dir).map_err(|o| super::layer_error(image, l, &o))?;
        let mut stream = SplitStream::new(f);
        let mut archive = tar::Archive::new(&mut stream);
        let mut parsed = Vec::new();
        {
            let entries = archive
                .entries_with_seek()
                .map_err(|e| damaged(e.to_string()))?;
            for e in entries {
                let mut e =
                    e.map_err(|e| damaged(format!("tar headers in tar-split.json.gz: {e}")))?;
                parsed.push(parse_entry(&mut e).map_err(|e| damaged(format!("tar header: {e}")))?);
            }
        }
        if let Some(e) = stream.error.take() {
            return Err(damaged(format!("tar-split.json.gz {e}")));
        }
        if parsed.len() != stream.files.len() {
            return Err(damaged(format!(
                "tar-split.json.gz lists {} entries, its headers {}",
                stream.files.len(),
                parsed.len()
            )));
        }
        let diff = &l.diff_dir;
        for (p, (ts_name, ts_size, crc)) in parsed.into_iter().zip(stream.files) {
            if deep::clean_beneath(&p.name) != deep::clean_beneath(&ts_name)
                || (p.size != ts_size && p.flag != b'g')
            {
                return Err(damaged(format!(
                    "tar-split.json.gz names {} ({ts_size} bytes) where its header says {} ({} bytes)",
                    display_name(&ts_name),
                    display_name(&p.name),
                    p.size
                )));
            }
            if p.sparse {
                return Err(damaged(format!(
                    "{}: GNU sparse file: its body cannot be read back from diff/ exactly",
                    display_name(&p.name)
                )));
            }
            self.apply(idx, p, ts_name, crc, diff).map_err(&damaged)?;
        }
        Ok(())
    }

    /// Applies one entry of layer `layer` (whose files are in `diff`).
    fn apply(
        &mut self,
        layer: usize,
        p: Parsed,
        tar_name: Vec<u8>,
        crc: Option<u64>,
        diff: &Path,
    ) -> Result<(), String> {
        let Some(comps) = deep::clean_beneath(&p.name) else {
            return Err(format!(
                "{}: leaves the layer root through `..`",
                display_name(&p.name)
            ));
        };
        if p.flag == b'g' || comps.is_empty() {
            // PAX global headers are ignored by the daemon; the root is not a member.
            return Ok(());
        }
        // AUFS metadata at the top (`.wh..wh.plnk`, ...) is never extracted.
        if comps[0].starts_with(b".wh..wh.") {
            return Ok(());
        }
        let (last, parents) = comps.split_last().expect("not empty");
        if *last == b".wh..wh..opq" {
            let parent = self.parent_dir(layer, parents, diff);
            parent.children.retain(|_, n| match n {
                Node::Dir(d) => d.layer == layer,
                Node::Leaf { layer: l, .. } => *l == layer,
            });
            return Ok(());
        }
        if let Some(gone) = last.strip_prefix(b".wh.") {
            self.parent_dir(layer, parents, diff).children.remove(gone);
            return Ok(());
        }
        let name: Box<[u8]> = (*last).into();
        let leaf = match p.flag {
            b'5' => {
                self.merge_dir(layer, parents, diff, name, p.meta);
                return Ok(());
            }
            b'1' => return self.put_hard_link(layer, parents, diff, name, &p),
            // A 0:0 character device is an overlay whiteout once extracted.
            b'3' if p.dev == (0, 0) => {
                self.parent_dir(layer, parents, diff).children.remove(&name);
                return Ok(());
            }
            b'0' | 0 | b'7' => Leaf::File {
                size: p.size,
                body: (p.size > 0).then(|| (layer, tar_name.into_boxed_slice(), crc)),
            },
            b'2' => Leaf::Symlink(p.link.into_boxed_slice()),
            b'3' => Leaf::Char(p.dev.0, p.dev.1),
            b'4' => Leaf::Block(p.dev.0, p.dev.1),
            b'6' => Leaf::Fifo,
            f => {
                return Err(format!(
                    "{}: tar entry type {:?} is not one the daemon extracts",
                    display_name(&p.name),
                    f as char
                ));
            }
        };
        let ino = self.inodes.len();
        self.inodes.push(Inode { meta: p.meta, leaf });
        let parent = self.parent_dir(layer, parents, diff);
        parent.children.insert(name, Node::Leaf { ino, layer });
        Ok(())
    }

    /// A directory over a directory only takes the new metadata; over
    /// anything else it replaces it.
    fn merge_dir(
        &mut self,
        layer: usize,
        parents: &[&[u8]],
        diff: &Path,
        name: Box<[u8]>,
        meta: Meta,
    ) {
        let parent = self.parent_dir(layer, parents, diff);
        match parent.children.get_mut(&name) {
            Some(Node::Dir(d)) => {
                d.meta = meta;
                d.layer = layer;
            }
            _ => {
                parent.children.insert(
                    name,
                    Node::Dir(Box::new(Dir {
                        meta,
                        layer,
                        children: BTreeMap::new(),
                    })),
                );
            }
        }
    }

    /// A hard link: a second name for the target's inode. The daemon's
    /// extraction links, then chowns, chmods and dates the new name
    /// (`createTarFile`): the link's header sets the shared inode's
    /// metadata (but a symlink's mode).
    fn put_hard_link(
        &mut self,
        layer: usize,
        parents: &[&[u8]],
        diff: &Path,
        name: Box<[u8]>,
        p: &Parsed,
    ) -> Result<(), String> {
        let target = deep::clean_beneath(&p.link).ok_or_else(|| {
            format!(
                "{}: hard link target leaves the root",
                display_name(&p.name)
            )
        })?;
        let ino = match self.lookup(&target) {
            Some(Node::Leaf { ino, .. }) => *ino,
            _ => {
                return Err(format!(
                    "{}: hard link to {}, which is missing or a directory",
                    display_name(&p.name),
                    display_name(&p.link)
                ));
            }
        };
        let inode = &mut self.inodes[ino];
        inode.meta.uid = p.meta.uid;
        inode.meta.gid = p.meta.gid;
        if !matches!(inode.leaf, Leaf::Symlink(_)) {
            inode.meta.mode = p.meta.mode;
            inode.meta.mtime = p.meta.mtime;
        }
        for (k, v) in &p.meta.xattrs {
            inode.meta.xattrs.retain(|(x, _)| x != k);
            inode.meta.xattrs.push((k.clone(), v.clone()));
        }
        inode.meta.xattrs.sort();
        let parent = self.parent_dir(layer, parents, diff);
        parent.children.insert(name, Node::Leaf { ino, layer });
        Ok(())
    }

    /// The directory `parents` names, created (or put in place of a
    /// non-directory, as the layer's own `diff/` has it) where missing. A
    /// directory the layer's tar does not list was created implicitly in the
    /// layer's `diff/`, and in the merged view its metadata is that one's.
    fn parent_dir(&mut self, layer: usize, parents: &[&[u8]], diff: &Path) -> &mut Dir {
        let mut d = &mut self.root;
        for (i, c) in parents.iter().enumerate() {
            let implicit = || Dir {
                meta: stat_beneath(diff, &parents[..=i]),
                layer,
                children: BTreeMap::new(),
            };
            let key: &[u8] = c;
            let is_dir = matches!(d.children.get(key), Some(Node::Dir(_)));
            if !is_dir {
                d.children
                    .insert(key.into(), Node::Dir(Box::new(implicit())));
            }
            let Some(Node::Dir(next)) = d.children.get_mut(key) else {
                unreachable!("just made a directory")
            };
            if next.layer != layer {
                next.meta = stat_beneath(diff, &parents[..=i]);
                next.layer = layer;
            }
            d = next;
        }
        d
    }

    fn lookup(&self, comps: &[&[u8]]) -> Option<&Node> {
        let (last, parents) = comps.split_last()?;
        let mut d = &self.root;
        for c in parents {
            match d.children.get(*c) {
                Some(Node::Dir(next)) => d = next,
                _ => return None,
            }
        }
        d.children.get(*last)
    }

    /// A directory at `comps` with this metadata (replacing a non-directory;
    /// a directory keeps its entries), parents made as the daemon's
    /// `MkdirAllAndChownNew` makes them.
    fn put_dir(&mut self, layer: usize, comps: &[&[u8]], meta: &Meta) {
        let mut d = &mut self.root;
        for c in comps {
            let key: &[u8] = c;
            match d.children.get_mut(key) {
                Some(Node::Dir(_)) => {}
                _ => {
                    d.children.insert(
                        key.into(),
                        Node::Dir(Box::new(Dir {
                            meta: meta.clone(),
                            layer,
                            children: BTreeMap::new(),
                        })),
                    );
                }
            }
            let Some(Node::Dir(next)) = d.children.get_mut(key) else {
                unreachable!("just made a directory")
            };
            next.meta = meta.clone();
            next.layer = layer;
            d = next;
        }
    }

    fn put_leaf(&mut self, layer: usize, comps: &[&[u8]], inode: Inode) {
        let (last, parents) = comps.split_last().expect("not the root");
        let ino = self.inodes.len();
        self.inodes.push(inode);
        let mut d = &mut self.root;
        for c in parents {
            let Some(Node::Dir(next)) = d.children.get_mut(*c) else {
                unreachable!("parents are made first")
            };
            d = next;
        }
        d.children.insert((*last).into(), Node::Leaf { ino, layer });
    }

    /// The daemon's init layer (`daemon/initlayer/setup_unix.go`): it sits
    /// above the image, so its directories' metadata wins and its files
    /// replace the image's.
    fn container_files(&mut self, layer: usize, now: i64) {
        let dir = Meta::root_owned(0o755, now);
        for d in ["dev", "etc"] {
            self.put_dir(layer, &[d.as_bytes()], &dir);
        }
        for d in ["dev/pts", "dev/shm", "proc", "sys"] {
            let comps: Vec<&[u8]> = d.split('/').map(str::as_bytes).collect();
            self.put_dir(layer, &comps, &dir);
        }
        for f in [
            ".dockerenv",
            "etc/resolv.conf",
            "etc/hosts",
            "etc/hostname",
            "dev/console",
        ] {
            let comps: Vec<&[u8]> = f.split('/').map(str::as_bytes).collect();
            self.put_leaf(
                layer,
                &comps,
                Inode {
                    meta: Meta::root_owned(0o755, now),
                    leaf: Leaf::File {
                        size: 0,
                        body: None,
                    },
                },
            );
        }
        self.put_leaf(
            layer,
            &[b"etc", b"mtab"],
            Inode {
                meta: Meta::root_owned(0o777, now),
                leaf: Leaf::Symlink(b"/proc/mounts".to_vec().into_boxed_slice()),
            },
        );
    }

    /// `docker create` makes the image's `WORKDIR` (following symlinks
    /// inside the root) in the container's layer when it is missing:
    /// directories of mode 0755, root's; a directory that gains one is dated
    /// now. If a part of it is not a directory, `docker create` fails;
    /// nothing is made then.
    fn working_dir(&mut self, layer: usize, wd: &[u8], now: i64) {
        let Some(path) = resolve_in_tree(self, wd) else {
            return;
        };
        let mut d = &mut self.root;
        for c in &path {
            let key: &[u8] = c;
            match d.children.get(key) {
                Some(Node::Dir(_)) => {}
                Some(Node::Leaf { .. }) => return,
                None => {
                    d.meta.mtime = now;
                    d.children.insert(
                        key.into(),
                        Node::Dir(Box::new(Dir {
                            meta: Meta::root_owned(0o755, now),
                            layer,
                            children: BTreeMap::new(),
                        })),
                    );
                }
            }
            let Some(Node::Dir(next)) = d.children.get_mut(key) else {
                unreachable!("a directory")
            };
            d = next;
        }
    }
}

/// `path` with symlinks inside the tree followed and kept inside it (the
/// daemon's `FollowSymlinkInScope`); `None` on a symlink loop.
fn resolve_in_tree(tree: &Tree, path: &[u8]) -> Option<Vec<Vec<u8>>> {
    let mut todo: Vec<Vec<u8>> = path
        .split(|&c| c == b'/')
        .rev()
        .map(<[u8]>::to_vec)
        .collect();
    let mut have: Vec<Vec<u8>> = Vec::new();
    let mut links = 0;
    while let Some(c) = todo.pop() {
        match c.as_slice() {
            b"" | b"." => continue,
            b".." => {
                have.pop();
                continue;
            }
            _ => {}
        }
        have.push(c);
        let comps: Vec<&[u8]> = have.iter().map(Vec::as_slice).collect();
        if let Some(Node::Leaf { ino, .. }) = tree.lookup(&comps)
            && let Leaf::Symlink(target) = &tree.inodes[*ino].leaf
        {
            links += 1;
            if links > 255 {
                return None;
            }
            have.pop();
            if target.starts_with(b"/") {
                have.clear();
            }
            todo.extend(target.split(|&c| c == b'/').rev().map(<[u8]>::to_vec));
        }
    }
    Some(have)
}

/// The metadata of directory `comps` in a layer's `diff/` (not following
/// symlinks); root's 0755 at the epoch when it cannot be read.
fn stat_beneath(diff: &Path, comps: &[&[u8]]) -> Meta {
    let fallback = Meta::root_owned(0o755, 0);
    let Ok(mut fd) = rustix::fs::open(
        diff,
        OFlags::DIRECTORY | OFlags::RDONLY | OFlags::CLOEXEC,
        Mode::empty(),
    ) else {
        return fallback;
    };
    for c in comps {
        match rustix::fs::openat(
            &fd,
            *c,
            OFlags::DIRECTORY | OFlags::RDONLY | OFlags::NOFOLLOW | OFlags::CLOEXEC,
            Mode::empty(),
        ) {
            Ok(next) => fd = next,
            Err(_) => return fallback,
        }
    }
    match rustix::fs::fstat(&fd) {
        Ok(st) => Meta {
            mode: st.st_mode & 0o7777,
            uid: u64::from(st.st_uid),
            gid: u64::from(st.st_gid),
            mtime: st.st_mtime,
            xattrs: Vec::new(),
        },
        Err(_) => fallback,
    }
}

fn parse_entry<R: Read>(e: &mut tar::Entry<'_, R>) -> io::Result<Parsed> {
    // Numbers are read as Go's reader reads them (an empty field is 0:
    // layers written by some tools leave owner fields blank), not with the
    // tar crate's stricter parser.
    let raw: [u8; 512] = *e.header().as_bytes();
    let flag = raw[156];
    let mut meta = Meta {
        mode: number(&raw[100..108]) as u32 & 0o7777,
        uid: number(&raw[108..116]) as u64,
        gid: number(&raw[116..124]) as u64,
        mtime: number(&raw[136..148]) as i64,
        xattrs: Vec::new(),
    };
    let dev = match flag {
        b'3' | b'4' => (number(&raw[329..337]) as u64, number(&raw[337..345]) as u64),
        _ => (0, 0),
    };
    let name = e.path_bytes().into_owned();
    let link = e
        .link_name_bytes()
        .map(|l| l.into_owned())
        .unwrap_or_default();
    let size = e.size();
    let mut sparse = flag == b'S';
    if let Some(pax) = e.pax_extensions()? {
        for r in pax {
            let r = r?;
            let k = r.key_bytes();
            if let Some(x) = k.strip_prefix(b"SCHILY.xattr.") {
                // The overlay's own attributes are the driver's, not the image's.
                if !x.starts_with(b"trusted.overlay.") {
                    meta.xattrs.push((x.to_vec(), r.value_bytes().to_vec()));
                }
            } else if k == b"mtime" {
                let v = String::from_utf8_lossy(r.value_bytes());
                if let Some(s) = v.split('.').next().and_then(|s| s.parse::<i64>().ok()) {
                    meta.mtime = s;
                }
            } else if k == b"uid" || k == b"gid" {
                if let Ok(v) = String::from_utf8_lossy(r.value_bytes()).parse::<u64>() {
                    if k == b"uid" {
                        meta.uid = v;
                    } else {
                        meta.gid = v;
                    }
                }
            } else if k.starts_with(b"GNU.sparse.") {
                sparse = true;
            }
        }
    }
    meta.xattrs.sort();
    Ok(Parsed {
        name,
        flag,
        size,
        meta,
        link,
        dev,
        sparse,
    })
}

/// A numeric header field as Go's `archive/tar` parses it: base-256 when
/// the first byte has its high bit set, else octal between optional
/// spaces and NULs (nothing at all is 0).
fn number(field: &[u8]) -> i128 {
    if field.first().is_some_and(|&b| b & 0x80 != 0) {
        let mut v: i128 = 0;
        for (i, &b) in field.iter().enumerate() {
            v = (v << 8) | i128::from(if i == 0 { b & 0x7f } else { b });
        }
        // 0xff first: a negative number in two's complement.
        if field[0] == 0xff {
            v -= 1i128 << (8 * field.len() - 1);
        }
        return v;
    }
    let t: Vec<u8> = field
        .iter()
        .copied()
        .skip_while(|&c| c == b' ' || c == 0)
        .take_while(|&c| (b'0'..=b'7').contains(&c))
        .collect();
    t.iter()
        .fold(0i128, |v, &c| (v << 3) | i128::from(c - b'0'))
}

/// The tar stream of a layer with every body replaced by zeros that are
/// never materialized: Segments from the tar-split, and for each File its
/// recorded length of nothing, which the tar reader skips by seeking. So
/// the headers (PAX and GNU long names included) are parsed by a real tar
/// reader without reading a single file.
struct SplitStream {
    reader: tarsplit::Reader<File>,
    seg: Vec<u8>,
    at: usize,
    zeros: u64,
    pos: u64,
    eof: bool,
    /// (name, size, CRC) of every File entry reached so far.
    files: Vec<(Vec<u8>, u64, Option<u64>)>,
    error: Option<tarsplit::TarSplitError>,
}

impl SplitStream {
    fn new(f: File) -> Self {
        SplitStream {
            reader: tarsplit::Reader::new(f),
            seg: Vec::new(),
            at: 0,
            zeros: 0,
            pos: 0,
            eof: false,
            files: Vec::new(),
            error: None,
        }
    }

    /// Moves to the next non-empty Segment or body. File entries are taken
    /// as soon as the header before them is consumed, so entry `k` of the
    /// tar reader always finds its `files[k]`.
    fn fill(&mut self) -> io::Result<()> {
        while self.at == self.seg.len() && self.zeros == 0 && !self.eof {
            match self.reader.next_entry() {
                Ok(Some(Entry::Segment(b))) => {
                    self.seg.clear();
                    self.seg.extend_from_slice(b);
                    self.at = 0;
                }
                Ok(Some(Entry::File(f))) => {
                    self.files.push((f.name.to_vec(), f.size, f.crc));
                    self.zeros = f.size;
                }
                Ok(None) => self.eof = true,
                Err(e) => {
                    let msg = e.to_string();
                    self.error = Some(e);
                    self.eof = true;
                    return Err(io::Error::other(msg));
                }
            }
        }
        Ok(())
    }

    /// Consumes up to `n` bytes (copying into `buf` when given).
    fn advance(&mut self, mut buf: Option<&mut [u8]>, n: usize) -> io::Result<usize> {
        self.fill()?;
        let k = if self.at < self.seg.len() {
            let k = n.min(self.seg.len() - self.at);
            if let Some(b) = buf.as_deref_mut() {
                b[..k].copy_from_slice(&self.seg[self.at..self.at + k]);
            }
            self.at += k;
            k
        } else if self.zeros > 0 {
            let k = n.min(usize::try_from(self.zeros).unwrap_or(usize::MAX));
            if let Some(b) = buf {
                b[..k].fill(0);
            }
            self.zeros -= k as u64;
            k
        } else {
            0
        };
        self.pos += k as u64;
        // Take the next File entry now if this header was its last byte.
        if k > 0 {
            self.fill()?;
        }
        Ok(k)
    }
}

impl Read for SplitStream {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = buf.len();
        self.advance(Some(buf), n)
    }
}

impl Seek for SplitStream {
    /// Only forward skips, which is all the tar reader asks for.
    fn seek(&mut self, to: SeekFrom) -> io::Result<u64> {
        let target = match to {
            SeekFrom::Current(d) if d >= 0 => self.pos + d as u64,
            SeekFrom::Start(p) if p >= self.pos => p,
            _ => return Err(io::Error::other("tar-split stream: backward seek")),
        };
        while self.pos < target {
            let want = usize::try_from(target - self.pos).unwrap_or(usize::MAX);
            if self.advance(None, want)? == 0 {
                break;
            }
        }
        Ok(self.pos)
    }
}

// ---- writing the tree -------------------------------------------------

/// Layers whose `diff/` resolver stays open (bounded: file descriptors).
const OPEN_LAYERS: usize = 16;

struct Emit<'a> {
    layers: &'a [LayerRef],
    /// Open `diff/` resolvers, per layer; at most [`OPEN_LAYERS`] at once
    /// (each holds the directories of its last path open).
    open: Vec<Option<LayerFiles<'a>>>,
    image: &'a str,
    /// Per inode: the path it was first written at.
    files: Vec<Option<Vec<u8>>>,
    copied: &'a AtomicU64,
    buf: Vec<u8>,
    report: ExportReport,
}

/// Depth first, each directory's entries in name order (Go's
/// `filepath.Walk`, as `docker export` walks): `visit(path, node)` before a
/// directory's entries, `leave(path, dir)` after them.
fn walk<E>(
    dir: &Dir,
    path: &mut Vec<u8>,
    visit: &mut impl FnMut(&[u8], &Node) -> Result<(), E>,
) -> Result<(), E> {
    for (name, node) in &dir.children {
        let len = path.len();
        if !path.is_empty() {
            path.push(b'/');
        }
        path.extend_from_slice(name);
        visit(path, node)?;
        if let Node::Dir(d) = node {
            walk(d, path, visit)?;
        }
        path.truncate(len);
    }
    Ok(())
}

impl Emit<'_> {
    fn layer_damage(&self, layer: usize, name: &[u8], why: &str) -> ArchiveError {
        let l = &self.layers[layer];
        ArchiveError::Damaged(format!(
            "layer {} (diff ID {}) of {}: {}: {}: {why}",
            l.chain_id,
            l.diff_id,
            self.image,
            l.diff_dir.display(),
            display_name(name)
        ))
    }

    /// Opens a body in its layer's `diff/` (checked: a regular file of the
    /// recorded length, resolved without following symlinks).
    fn open_body(&mut self, layer: usize, name: &[u8], size: u64) -> Result<File, ArchiveError> {
        if self.open[layer].is_none() {
            if self.open.iter().filter(|o| o.is_some()).count() >= OPEN_LAYERS {
                self.open.iter_mut().for_each(|o| *o = None);
            }
            let l = &self.layers[layer];
            self.open[layer] = Some(LayerFiles::new(&l.layer_dir, &l.diff_dir));
        }
        let files = self.open[layer].as_mut().expect("just opened");
        match files.open_body(name, size) {
            Ok(fd) => Ok(File::from(fd)),
            Err(Problem::Damaged(why) | Problem::Unverifiable(why)) => {
                Err(self.layer_damage(layer, name, &why))
            }
        }
    }

    /// Copies a body to `out`, checking its CRC-64 as it goes.
    fn copy_body(
        &mut self,
        layer: usize,
        name: &[u8],
        size: u64,
        crc: Option<u64>,
        out: &mut dyn Write,
        out_path: &Path,
    ) -> Result<(), ArchiveError> {
        let mut f = self.open_body(layer, name, size)?;
        let mut digest = crc_fast::Digest::new(crc_fast::CrcAlgorithm::Crc64GoIso);
        let mut left = size;
        while left > 0 {
            let cap = self
                .buf
                .len()
                .min(usize::try_from(left).unwrap_or(usize::MAX));
            let n = match f.read(&mut self.buf[..cap]) {
                Ok(0) => {
                    let why = format!(
                        "truncated while being read: {} of {size} bytes",
                        size - left
                    );
                    return Err(self.layer_damage(layer, name, &why));
                }
                Ok(n) => n,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => return Err(self.layer_damage(layer, name, &format!("read error: {e}"))),
            };
            digest.update(&self.buf[..n]);
            out.write_all(&self.buf[..n])
                .map_err(|e| ArchiveError::io(out_path, e))?;
            left -= n as u64;
            self.copied.fetch_add(n as u64, Ordering::Relaxed);
        }
        if crc.is_some_and(|c| c != digest.finalize()) {
            return Err(self.layer_damage(layer, name, "content differs (CRC)"));
        }
        self.report.files += 1;
        self.report.bytes += size;
        Ok(())
    }

    fn tar(
        &mut self,
        tree: &Tree,
        out: &mut dyn Write,
        out_path: &Path,
    ) -> Result<(), ArchiveError> {
        self.files = vec![None; tree.inodes.len()];
        let io = |e| ArchiveError::io(out_path, e);
        let mut hdr = Vec::with_capacity(1024);
        walk(
            &tree.root,
            &mut Vec::new(),
            &mut |path: &[u8], node: &Node| {
                hdr.clear();
                self.report.entries += 1;
                match node {
                    Node::Dir(d) => {
                        let mut name = path.to_vec();
                        name.push(b'/');
                        tarw::write_header(
                            &header(&name, Kind::Dir, 0, &d.meta, b"", (0, 0)),
                            &mut hdr,
                        );
                        out.write_all(&hdr).map_err(io)
                    }
                    Node::Leaf { ino, .. } => {
                        let inode = &tree.inodes[*ino];
                        if let Some(first) = &self.files[*ino] {
                            tarw::write_header(
                                &header(path, Kind::HardLink, 0, &inode.meta, first, (0, 0)),
                                &mut hdr,
                            );
                            return out.write_all(&hdr).map_err(io);
                        }
                        self.files[*ino] = Some(path.to_vec());
                        match &inode.leaf {
                            Leaf::File { size, body } => {
                                tarw::write_header(
                                    &header(path, Kind::File, *size, &inode.meta, b"", (0, 0)),
                                    &mut hdr,
                                );
                                out.write_all(&hdr).map_err(io)?;
                                if let Some((layer, name, crc)) = body {
                                    self.copy_body(*layer, name, *size, *crc, out, out_path)?;
                                }
                                out.write_all(&[0u8; 512][..tarw::padding(*size)])
                                    .map_err(io)
                            }
                            Leaf::Symlink(t) => {
                                tarw::write_header(
                                    &header(path, Kind::Symlink, 0, &inode.meta, t, (0, 0)),
                                    &mut hdr,
                                );
                                out.write_all(&hdr).map_err(io)
                            }
                            Leaf::Char(a, b) | Leaf::Block(a, b) => {
                                let k = if matches!(inode.leaf, Leaf::Char(..)) {
                                    Kind::Char
                                } else {
                                    Kind::Block
                                };
                                tarw::write_header(
                                    &header(path, k, 0, &inode.meta, b"", (*a, *b)),
                                    &mut hdr,
                                );
                                out.write_all(&hdr).map_err(io)
                            }
                            Leaf::Fifo => {
                                tarw::write_header(
                                    &header(path, Kind::Fifo, 0, &inode.meta, b"", (0, 0)),
                                    &mut hdr,
                                );
                                out.write_all(&hdr).map_err(io)
                            }
                        }
                    }
                }
            },
        )?;
        out.write_all(&tarw::END).map_err(io)
    }

    /// Creates the tree inside `dir` with `*at` calls relative to directory
    /// descriptors opened with `O_NOFOLLOW`: nothing is ever created or
    /// changed through a symlink, and every name is new (`O_EXCL`,
    /// `mkdirat`, `symlinkat`, `mknodat`, `linkat` all fail on an existing
    /// one), so nothing outside `dir` can be reached.
    fn extract(&mut self, tree: &Tree, dir: &Path) -> Result<(), ArchiveError> {
        self.files = vec![None; tree.inodes.len()];
        let root = rustix::fs::open(
            dir,
            OFlags::DIRECTORY | OFlags::RDONLY | OFlags::CLOEXEC,
            Mode::empty(),
        )
        .map_err(|e| ArchiveError::io(dir, e.into()))?;
        let mut path = Vec::new();
        self.extract_dir(tree, &tree.root, root.as_fd(), root.as_fd(), &mut path, dir)
    }

    fn extract_dir(
        &mut self,
        tree: &Tree,
        d: &Dir,
        root: BorrowedFd<'_>,
        fd: BorrowedFd<'_>,
        path: &mut Vec<u8>,
        top: &Path,
    ) -> Result<(), ArchiveError> {
        for (name, node) in &d.children {
            let len = path.len();
            if !path.is_empty() {
                path.push(b'/');
            }
            path.extend_from_slice(name);
            let full = top.join(std::ffi::OsStr::from_bytes(path));
            let at = |e: rustix::io::Errno| ArchiveError::io(&full, e.into());
            self.report.entries += 1;
            match node {
                Node::Dir(sub) => {
                    rustix::fs::mkdirat(fd, &**name, Mode::from_raw_mode(0o700)).map_err(at)?;
                    let child = rustix::fs::openat(
                        fd,
                        &**name,
                        OFlags::DIRECTORY | OFlags::RDONLY | OFlags::NOFOLLOW | OFlags::CLOEXEC,
                        Mode::empty(),
                    )
                    .map_err(at)?;
                    self.extract_dir(tree, sub, root, child.as_fd(), path, top)?;
                    // Metadata last: a read-only directory must still take
                    // its entries, and creating them changes its mtime.
                    finish_fd(child.as_fd(), &sub.meta).map_err(at)?;
                }
                Node::Leaf { ino, .. } => {
                    let inode = &tree.inodes[*ino];
                    if let Some(first) = &self.files[*ino] {
                        let first = first.clone();
                        link_to(root, &first, fd, name).map_err(at)?;
                    } else {
                        self.files[*ino] = Some(path.clone());
                        self.extract_leaf(inode, fd, name, path, top)?;
                    }
                }
            }
            path.truncate(len);
        }
        Ok(())
    }

    fn extract_leaf(
        &mut self,
        inode: &Inode,
        fd: BorrowedFd<'_>,
        name: &[u8],
        path: &[u8],
        top: &Path,
    ) -> Result<(), ArchiveError> {
        let full = top.join(std::ffi::OsStr::from_bytes(path));
        let at = |e: rustix::io::Errno| ArchiveError::io(&full, e.into());
        let m = &inode.meta;
        match &inode.leaf {
            Leaf::File { size, body } => {
                let f = rustix::fs::openat(
                    fd,
                    name,
                    OFlags::WRONLY
                        | OFlags::CREATE
                        | OFlags::EXCL
                        | OFlags::NOFOLLOW
                        | OFlags::CLOEXEC,
                    Mode::from_raw_mode(0o600),
                )
                .map_err(at)?;
                let mut file = File::from(f);
                if let Some((layer, tname, crc)) = body {
                    self.copy_body(*layer, tname, *size, *crc, &mut file, &full)?;
                }
                finish_fd(file.as_fd(), m).map_err(at)?;
            }
            Leaf::Symlink(t) => {
                rustix::fs::symlinkat(&**t, fd, name).map_err(at)?;
                finish_at(fd, name, m, false).map_err(at)?;
            }
            leaf => {
                let (ft, dev) = match leaf {
                    Leaf::Char(a, b) => (
                        FileType::CharacterDevice,
                        rustix::fs::makedev(*a as u32, *b as u32),
                    ),
                    Leaf::Block(a, b) => (
                        FileType::BlockDevice,
                        rustix::fs::makedev(*a as u32, *b as u32),
                    ),
                    _ => (FileType::Fifo, 0),
                };
                rustix::fs::mknodat(fd, name, ft, Mode::from_raw_mode(0o600), dev).map_err(at)?;
                finish_at(fd, name, m, true).map_err(at)?;
            }
        }
        Ok(())
    }
}

fn header<'a>(
    name: &'a [u8],
    kind: Kind,
    size: u64,
    m: &'a Meta,
    link: &'a [u8],
    dev: (u64, u64),
) -> Header<'a> {
    Header {
        name,
        kind,
        size,
        mode: m.mode,
        uid: m.uid,
        gid: m.gid,
        mtime: m.mtime,
        link,
        dev,
        xattrs: &m.xattrs,
    }
}

fn times(mtime: i64) -> Timestamps {
    let t = rustix::fs::Timespec {
        tv_sec: mtime,
        tv_nsec: 0,
    };
    Timestamps {
        last_access: t,
        last_modification: t,
    }
}

fn ids(m: &Meta) -> (Option<Uid>, Option<Gid>) {
    (
        Some(Uid::from_raw(m.uid as u32)),
        Some(Gid::from_raw(m.gid as u32)),
    )
}

/// Owner, then mode (a chown clears setuid bits), then extended attributes
/// (a chown clears `security.capability`), then times.
fn finish_fd(fd: BorrowedFd<'_>, m: &Meta) -> rustix::io::Result<()> {
    let (u, g) = ids(m);
    rustix::fs::fchown(fd, u, g)?;
    rustix::fs::fchmod(fd, Mode::from_raw_mode(m.mode))?;
    for (k, v) in &m.xattrs {
        rustix::fs::fsetxattr(fd, k.as_slice(), v, XattrFlags::empty())?;
    }
    rustix::fs::futimens(fd, &times(m.mtime))
}

/// [`finish_fd`] for a symlink or device node just made at `dir/name`
/// (neither can be opened for writing): `*at` calls that do not follow.
fn finish_at(dir: BorrowedFd<'_>, name: &[u8], m: &Meta, chmod: bool) -> rustix::io::Result<()> {
    let (u, g) = ids(m);
    rustix::fs::chownat(dir, name, u, g, AtFlags::SYMLINK_NOFOLLOW)?;
    if chmod {
        // A node of our own making, named in a directory we hold open.
        rustix::fs::chmodat(dir, name, Mode::from_raw_mode(m.mode), AtFlags::empty())?;
    }
    if !m.xattrs.is_empty() {
        // No fd for a symlink: name it through our directory descriptor.
        let mut p = format!("/proc/self/fd/{}/", dir.as_raw_fd()).into_bytes();
        p.extend_from_slice(name);
        for (k, v) in &m.xattrs {
            rustix::fs::lsetxattr(p.as_slice(), k.as_slice(), v, XattrFlags::empty())?;
        }
    }
    rustix::fs::utimensat(dir, name, &times(m.mtime), AtFlags::SYMLINK_NOFOLLOW)
}

/// Hard-links `first` (a path below `root` made by this export) as `name`
/// in `dir`.
fn link_to(
    root: BorrowedFd<'_>,
    first: &[u8],
    dir: BorrowedFd<'_>,
    name: &[u8],
) -> rustix::io::Result<()> {
    let comps: Vec<&[u8]> = first.split(|&c| c == b'/').collect();
    let (last, parents) = comps.split_last().expect("a path");
    let mut held: Option<OwnedFd> = None;
    for c in parents {
        let at = held.as_ref().map_or(root, |f| f.as_fd());
        held = Some(rustix::fs::openat(
            at,
            *c,
            OFlags::DIRECTORY | OFlags::RDONLY | OFlags::NOFOLLOW | OFlags::CLOEXEC,
            Mode::empty(),
        )?);
    }
    let from = held.as_ref().map_or(root, |f| f.as_fd());
    rustix::fs::linkat(from, *last, dir, name, AtFlags::empty())
}

/// Removes everything inside `dir` (after a failed `--dir` export, which
/// found it empty), never following a symlink.
fn remove_contents(dir: &Path) -> rustix::io::Result<()> {
    let fd = rustix::fs::open(
        dir,
        OFlags::DIRECTORY | OFlags::RDONLY | OFlags::CLOEXEC,
        Mode::empty(),
    )?;
    remove_in(fd.as_fd())
}

fn remove_in(fd: BorrowedFd<'_>) -> rustix::io::Result<()> {
    let names: Vec<(Vec<u8>, FileType)> = rustix::fs::Dir::read_from(fd)?
        .filter_map(Result::ok)
        .map(|e| (e.file_name().to_bytes().to_vec(), e.file_type()))
        .filter(|(n, _)| n != b"." && n != b"..")
        .collect();
    for (n, t) in names {
        let is_dir = match t {
            FileType::Unknown => rustix::fs::statat(fd, n.as_slice(), AtFlags::SYMLINK_NOFOLLOW)
                .map(|s| FileType::from_raw_mode(s.st_mode) == FileType::Directory)
                .unwrap_or(false),
            t => t == FileType::Directory,
        };
        if is_dir {
            let sub = rustix::fs::openat(
                fd,
                n.as_slice(),
                OFlags::DIRECTORY | OFlags::RDONLY | OFlags::NOFOLLOW | OFlags::CLOEXEC,
                Mode::empty(),
            )?;
            remove_in(sub.as_fd())?;
            rustix::fs::unlinkat(fd, n.as_slice(), AtFlags::REMOVEDIR)?;
        } else {
            rustix::fs::unlinkat(fd, n.as_slice(), AtFlags::empty())?;
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn numbers_parse_as_go_parses_them() {
        assert_eq!(number(b"0000644\0"), 0o644);
        assert_eq!(number(b"   755 \0"), 0o755);
        assert_eq!(number(b"\0\0\0\0\0\0\0\0"), 0);
        assert_eq!(number(&[0x80, 0, 0, 0, 0, 0, 0, 1, 0]), 256);
        assert_eq!(number(&[0xff; 12]), -1);
    }
}
