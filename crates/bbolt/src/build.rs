//! Makes complete bbolt file images from a tree of buckets, **for generating
//! test and benchmark files**. dockgc never writes a daemon's database.
//!
//! The images are what Go bbolt writes and accepts: two valid meta pages
//! (txids `txid - 1` and `txid`, in slots `txid % 2`), a freelist page,
//! leaves packed up to a page and split under branch pages, values too big
//! for a page in overflow pages, and a bucket stored inline in its parent's
//! leaf when it has no nested buckets and its page image is at most a quarter
//! page (bbolt's own rule). The root bucket may hold only buckets, as with
//! bbolt's API.
//!
//! ```
//! use bbolt::build::{Options, Tree};
//! let mut root = Tree::new();
//! root.bucket("volumes").put("data1", r#"{"Name":"data1"}"#);
//! let image = bbolt::build::image(&root, &Options::default()).unwrap();
//! let db = bbolt::Db::from_bytes(image, "metadata.db").unwrap();
//! assert!(db.bucket("volumes").unwrap().get("data1").is_some());
//! ```

use std::borrow::Cow;
use std::collections::BTreeMap;

use crate::meta::{MAGIC, VERSION, fnv1a64};
use crate::page::{BRANCH, BUCKET_LEAF, ELEMENT, FREELIST, HEADER, LEAF, META};

/// bbolt's limits (`MaxKeySize`, `MaxValueSize`).
pub const MAX_KEY: usize = 32768;
pub const MAX_VALUE: usize = (1 << 31) - 2;

/// A bucket's contents: keys in unsigned byte order, and its sequence.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Tree {
    pub sequence: u64,
    pub entries: BTreeMap<Vec<u8>, Node>,
}

/// What a key holds.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Node {
    Value(Vec<u8>),
    Bucket(Tree),
}

impl Tree {
    pub fn new() -> Tree {
        Tree::default()
    }

    /// Sets `key` to a value (replacing whatever it held).
    pub fn put(&mut self, key: impl Into<Vec<u8>>, value: impl Into<Vec<u8>>) -> &mut Tree {
        self.entries.insert(key.into(), Node::Value(value.into()));
        self
    }

    /// The nested bucket `name`, created empty if absent; a value under
    /// `name` is replaced by the new bucket.
    pub fn bucket(&mut self, name: impl Into<Vec<u8>>) -> &mut Tree {
        let slot = self
            .entries
            .entry(name.into())
            .or_insert_with(|| Node::Bucket(Tree::new()));
        if let Node::Value(_) = slot {
            *slot = Node::Bucket(Tree::new());
        }
        match slot {
            Node::Bucket(t) => t,
            Node::Value(_) => unreachable!("replaced just above"),
        }
    }

    pub fn set_sequence(&mut self, sequence: u64) -> &mut Tree {
        self.sequence = sequence;
        self
    }
}

/// Layout of the image.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Options {
    /// A power of two from 1024 to 16 MiB; bbolt uses the OS page size.
    pub page_size: u32,
    /// Txid of the newer meta page (>= 1); the other slot gets `txid - 1`.
    pub txid: u64,
    /// First page of the freelist and tree (>= 2). Pages from 2 up to it are
    /// left zeroed and listed as free, which lets a test place successive
    /// versions of a file in disjoint pages the way bbolt's copy-on-write does.
    pub first_page: u64,
}

impl Default for Options {
    fn default() -> Self {
        Options {
            page_size: 4096,
            txid: 1,
            first_page: 2,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum BuildError {
    #[error("empty key (bbolt forbids them)")]
    EmptyKey,
    #[error("key of {len} bytes exceeds bbolt's maximum of {MAX_KEY}")]
    KeyTooLarge { len: usize },
    #[error("value of {len} bytes exceeds bbolt's maximum of {MAX_VALUE}")]
    ValueTooLarge { len: usize },
    #[error("value at top level under key {key:?} (bbolt allows only buckets there)")]
    TopLevelValue { key: String },
    #[error("bad options: {0}")]
    Options(&'static str),
}

/// The complete file image for `root` (the top-level bucket).
pub fn image(root: &Tree, opts: &Options) -> Result<Vec<u8>, BuildError> {
    let ps = opts.page_size;
    if !(1024..=1 << 24).contains(&ps) || !ps.is_power_of_two() {
        return Err(BuildError::Options(
            "page_size must be a power of two from 1024 to 16 MiB",
        ));
    }
    if opts.txid == 0 {
        return Err(BuildError::Options("txid must be at least 1"));
    }
    if opts.first_page < 2 {
        return Err(BuildError::Options("first_page must be at least 2"));
    }
    if let Some((k, _)) = root
        .entries
        .iter()
        .find(|(_, n)| matches!(n, Node::Value(_)))
    {
        return Err(BuildError::TopLevelValue {
            key: String::from_utf8_lossy(k).into_owned(),
        });
    }
    let mut w = Writer {
        ps: ps as usize,
        out: Vec::new(),
        next: opts.first_page,
    };
    w.out.resize(opts.first_page as usize * w.ps, 0);

    let free: Vec<u64> = (2..opts.first_page).collect();
    let freelist = w.write_freelist(&free);
    let root_page = w.bucket(root)?;
    let hwm = w.next;
    for slot in 0..2u64 {
        // The newer meta goes to slot txid % 2, the older to the other one.
        let txid = if opts.txid % 2 == slot {
            opts.txid
        } else {
            opts.txid - 1
        };
        w.write_meta(slot, ps, root_page, root.sequence, freelist, hwm, txid);
    }
    Ok(w.out)
}

struct Writer {
    ps: usize,
    out: Vec<u8>,
    next: u64,
}

struct LeafElem<'t> {
    flags: u32,
    key: &'t [u8],
    value: Cow<'t, [u8]>,
}

fn put_u16(b: &mut [u8], off: usize, v: u16) {
    b[off..off + 2].copy_from_slice(&v.to_le_bytes());
}
fn put_u32(b: &mut [u8], off: usize, v: u32) {
    b[off..off + 4].copy_from_slice(&v.to_le_bytes());
}
fn put_u64(b: &mut [u8], off: usize, v: u64) {
    b[off..off + 8].copy_from_slice(&v.to_le_bytes());
}

fn check_key(k: &[u8]) -> Result<(), BuildError> {
    if k.is_empty() {
        return Err(BuildError::EmptyKey);
    }
    if k.len() > MAX_KEY {
        return Err(BuildError::KeyTooLarge { len: k.len() });
    }
    Ok(())
}

fn leaf_size(e: &LeafElem<'_>) -> usize {
    ELEMENT + e.key.len() + e.value.len()
}

/// A leaf page image: header, elements, then each key followed by its value.
fn leaf_image(elems: &[LeafElem<'_>]) -> Vec<u8> {
    let size = HEADER + elems.iter().map(leaf_size).sum::<usize>();
    let mut b = vec![0u8; size];
    put_u16(&mut b, 8, LEAF);
    put_u16(&mut b, 10, elems.len() as u16);
    let mut data = HEADER + ELEMENT * elems.len();
    for (i, e) in elems.iter().enumerate() {
        let at = HEADER + ELEMENT * i;
        put_u32(&mut b, at, e.flags);
        put_u32(&mut b, at + 4, (data - at) as u32);
        put_u32(&mut b, at + 8, e.key.len() as u32);
        put_u32(&mut b, at + 12, e.value.len() as u32);
        b[data..data + e.key.len()].copy_from_slice(e.key);
        data += e.key.len();
        b[data..data + e.value.len()].copy_from_slice(&e.value);
        data += e.value.len();
    }
    b
}

fn branch_image(elems: &[(&[u8], u64)]) -> Vec<u8> {
    let size = HEADER + elems.iter().map(|(k, _)| ELEMENT + k.len()).sum::<usize>();
    let mut b = vec![0u8; size];
    put_u16(&mut b, 8, BRANCH);
    put_u16(&mut b, 10, elems.len() as u16);
    let mut data = HEADER + ELEMENT * elems.len();
    for (i, (key, child)) in elems.iter().enumerate() {
        let at = HEADER + ELEMENT * i;
        put_u32(&mut b, at, (data - at) as u32);
        put_u32(&mut b, at + 4, key.len() as u32);
        put_u64(&mut b, at + 8, *child);
        b[data..data + key.len()].copy_from_slice(key);
        data += key.len();
    }
    b
}

/// Splits `sizes` (element sizes) into runs that fill a page each, with at
/// least `min` elements a run; a run bigger than a page becomes a page with
/// overflow pages. Branch levels use `min` = 2 (as bbolt does) so that each
/// level is smaller than the one below even with huge keys.
fn runs(sizes: impl Iterator<Item = usize>, ps: usize, min: usize) -> Vec<std::ops::Range<usize>> {
    let mut out = Vec::new();
    let (mut start, mut used, mut n) = (0, HEADER, 0);
    for (i, s) in sizes.enumerate() {
        if n >= min && (used + s > ps || n == usize::from(u16::MAX)) {
            out.push(start..i);
            (start, used, n) = (i, HEADER, 0);
        }
        used += s;
        n += 1;
    }
    if n > 0 || out.is_empty() {
        out.push(start..start + n);
    }
    out
}

impl Writer {
    /// Places a page image at the next free pages; returns its id.
    fn place(&mut self, mut image: Vec<u8>) -> u64 {
        let pages = image.len().div_ceil(self.ps).max(1);
        let id = self.next;
        put_u64(&mut image, 0, id);
        put_u32(&mut image, 12, (pages - 1) as u32);
        self.next += pages as u64;
        let off = id as usize * self.ps;
        self.out.resize(self.next as usize * self.ps, 0);
        self.out[off..off + image.len()].copy_from_slice(&image);
        id
    }

    fn write_freelist(&mut self, free: &[u64]) -> u64 {
        let escaped = free.len() >= 0xFFFF;
        let start = HEADER + if escaped { 8 } else { 0 };
        let mut b = vec![0u8; start + 8 * free.len()];
        put_u16(&mut b, 8, FREELIST);
        if escaped {
            put_u16(&mut b, 10, 0xFFFF);
            put_u64(&mut b, HEADER, free.len() as u64);
        } else {
            put_u16(&mut b, 10, free.len() as u16);
        }
        for (i, id) in free.iter().enumerate() {
            put_u64(&mut b, start + 8 * i, *id);
        }
        self.place(b)
    }

    #[allow(clippy::too_many_arguments)]
    fn write_meta(
        &mut self,
        slot: u64,
        ps: u32,
        root: u64,
        seq: u64,
        freelist: u64,
        hwm: u64,
        txid: u64,
    ) {
        let off = slot as usize * self.ps;
        let p = &mut self.out[off..off + self.ps];
        put_u64(p, 0, slot);
        put_u16(p, 8, META);
        let m = &mut p[HEADER..HEADER + 64];
        put_u32(m, 0, MAGIC);
        put_u32(m, 4, VERSION);
        put_u32(m, 8, ps);
        put_u64(m, 16, root);
        put_u64(m, 24, seq);
        put_u64(m, 32, freelist);
        put_u64(m, 40, hwm);
        put_u64(m, 48, txid);
        let sum = fnv1a64(&m[..56]);
        put_u64(m, 56, sum);
    }

    /// Writes a bucket's pages (nested paged buckets first); returns its root.
    fn bucket(&mut self, t: &Tree) -> Result<u64, BuildError> {
        let mut elems = Vec::with_capacity(t.entries.len());
        for (k, node) in &t.entries {
            check_key(k)?;
            elems.push(match node {
                Node::Value(v) => {
                    if v.len() > MAX_VALUE {
                        return Err(BuildError::ValueTooLarge { len: v.len() });
                    }
                    LeafElem {
                        flags: 0,
                        key: k,
                        value: Cow::Borrowed(v),
                    }
                }
                Node::Bucket(child) => LeafElem {
                    flags: BUCKET_LEAF,
                    key: k,
                    value: Cow::Owned(self.bucket_value(child)?),
                },
            });
        }
        let mut level: Vec<(&[u8], u64)> = Vec::new();
        for r in runs(elems.iter().map(leaf_size), self.ps, 1) {
            let first = elems.get(r.start).map_or(&[][..], |e| e.key);
            level.push((first, self.place(leaf_image(&elems[r]))));
        }
        while level.len() > 1 {
            let mut up = Vec::new();
            for r in runs(level.iter().map(|(k, _)| ELEMENT + k.len()), self.ps, 2) {
                let first = level[r.start].0;
                up.push((first, self.place(branch_image(&level[r]))));
            }
            level = up;
        }
        Ok(level[0].1)
    }

    /// The value stored for a nested bucket: its header, then the page image
    /// if it is small enough to live inline.
    fn bucket_value(&mut self, t: &Tree) -> Result<Vec<u8>, BuildError> {
        let mut v = vec![0u8; 16];
        put_u64(&mut v, 8, t.sequence);
        let plain = t.entries.values().all(|n| matches!(n, Node::Value(_)));
        let size = HEADER
            + t.entries
                .iter()
                .map(|(k, n)| ELEMENT + k.len() + node_len(n))
                .sum::<usize>();
        if plain && size <= self.ps / 4 {
            let mut elems = Vec::with_capacity(t.entries.len());
            for (k, n) in &t.entries {
                check_key(k)?;
                if let Node::Value(val) = n {
                    elems.push(LeafElem {
                        flags: 0,
                        key: k,
                        value: Cow::Borrowed(val),
                    });
                }
            }
            v.extend_from_slice(&leaf_image(&elems));
        } else {
            let root = self.bucket(t)?;
            put_u64(&mut v, 0, root);
        }
        Ok(v)
    }
}

fn node_len(n: &Node) -> usize {
    match n {
        Node::Value(v) => v.len(),
        Node::Bucket(_) => 0,
    }
}
