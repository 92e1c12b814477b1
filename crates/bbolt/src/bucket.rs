//! Buckets, entries and in-order iteration over a validated file.
//!
//! `Db` validated every reachable page at open, so lookups cannot meet
//! damage. The page readers still return `Result` (they are shared with the
//! validating walk); here a failure would mean a bug in that walk, and is
//! answered as "absent" rather than with a panic.

use std::fmt;

use crate::db::Db;
use crate::page::{self, BUCKET_LEAF, Node};

/// A bucket: an ordered map of keys to values and nested buckets.
#[derive(Clone, Copy)]
pub struct Bucket<'a> {
    db: &'a Db,
    root: Root<'a>,
    sequence: u64,
}

#[derive(Clone, Copy)]
enum Root<'a> {
    Paged(u64),
    /// The page image after an inline bucket's 16-byte header.
    Inline(&'a [u8]),
}

/// What a key holds.
#[derive(Clone, Copy)]
pub enum Entry<'a> {
    /// A value (possibly empty).
    Value(&'a [u8]),
    Bucket(Bucket<'a>),
}

impl<'a> Entry<'a> {
    pub fn as_value(&self) -> Option<&'a [u8]> {
        match *self {
            Entry::Value(v) => Some(v),
            Entry::Bucket(_) => None,
        }
    }

    pub fn as_bucket(&self) -> Option<Bucket<'a>> {
        match *self {
            Entry::Bucket(b) => Some(b),
            Entry::Value(_) => None,
        }
    }
}

impl<'a> Bucket<'a> {
    pub(crate) fn root_of(db: &'a Db) -> Bucket<'a> {
        let m = db.meta();
        Bucket {
            db,
            root: Root::Paged(m.root),
            sequence: m.root_sequence,
        }
    }

    fn node(&self, root: Root<'a>) -> Option<Node<'a>> {
        match root {
            Root::Paged(id) => self.db.node(id),
            Root::Inline(image) => {
                let h = page::header(image)?;
                Node::parse(image, &h).ok()
            }
        }
    }

    /// The bucket's sequence counter (bbolt `NextSequence` hands out
    /// sequence + 1).
    pub fn sequence(&self) -> u64 {
        self.sequence
    }

    /// The page id of the bucket's tree root, `None` for an inline bucket.
    pub fn root_page(&self) -> Option<u64> {
        match self.root {
            Root::Paged(id) => Some(id),
            Root::Inline(_) => None,
        }
    }

    /// Whether the bucket is stored inline in its parent's leaf.
    pub fn is_inline(&self) -> bool {
        matches!(self.root, Root::Inline(_))
    }

    /// The entry stored under `key`.
    pub fn entry(&self, key: impl AsRef<[u8]>) -> Option<Entry<'a>> {
        let key = key.as_ref();
        let mut node = self.node(self.root)?;
        while !node.leaf {
            let (_, child) = node.branch(node.branch_index(key)).ok()?;
            node = self.db.node(child)?;
        }
        let i = node.lower_bound(key);
        if i >= node.count {
            return None;
        }
        let e = node.leaf(i).ok()?;
        if e.key != key {
            return None;
        }
        self.decode(e.flags, e.value)
    }

    /// The value under `key`; `None` if absent or if `key` is a bucket.
    pub fn get(&self, key: impl AsRef<[u8]>) -> Option<&'a [u8]> {
        self.entry(key)?.as_value()
    }

    /// The nested bucket under `name`; `None` if absent or a plain value.
    pub fn bucket(&self, name: impl AsRef<[u8]>) -> Option<Bucket<'a>> {
        self.entry(name)?.as_bucket()
    }

    /// Follows nested bucket names: `bucket_path(["v1", "moby", "images"])`.
    pub fn bucket_path<I>(&self, path: I) -> Option<Bucket<'a>>
    where
        I: IntoIterator,
        I::Item: AsRef<[u8]>,
    {
        path.into_iter().try_fold(*self, |b, name| b.bucket(name))
    }

    /// All entries in key order (unsigned byte order).
    pub fn iter(&self) -> Iter<'a> {
        let mut it = Iter {
            bucket: *self,
            stack: Vec::new(),
        };
        if let Some(n) = self.node(self.root) {
            it.stack.push((n, 0));
        }
        it
    }

    /// Entries whose key is >= `start`, in key order.
    pub fn iter_from(&self, start: impl AsRef<[u8]>) -> Iter<'a> {
        let start = start.as_ref();
        let mut it = Iter {
            bucket: *self,
            stack: Vec::new(),
        };
        let mut next = self.node(self.root);
        while let Some(node) = next {
            if node.leaf {
                it.stack.push((node, node.lower_bound(start)));
                break;
            }
            let i = node.branch_index(start);
            it.stack.push((node, i + 1));
            next = node
                .branch(i)
                .ok()
                .and_then(|(_, child)| self.db.node(child));
        }
        it
    }

    /// Nested buckets only, in key order.
    pub fn buckets(&self) -> impl Iterator<Item = (&'a [u8], Bucket<'a>)> + use<'a> {
        self.iter().filter_map(|(k, e)| Some((k, e.as_bucket()?)))
    }

    /// Plain values only, in key order.
    pub fn values(&self) -> impl Iterator<Item = (&'a [u8], &'a [u8])> + use<'a> {
        self.iter().filter_map(|(k, e)| Some((k, e.as_value()?)))
    }

    fn decode(&self, flags: u32, value: &'a [u8]) -> Option<Entry<'a>> {
        if flags & BUCKET_LEAF == 0 {
            return Some(Entry::Value(value));
        }
        let (root, sequence) = page::bucket_header(value)?;
        let root = if root == 0 {
            Root::Inline(value.get(16..)?)
        } else {
            Root::Paged(root)
        };
        Some(Entry::Bucket(Bucket {
            db: self.db,
            root,
            sequence,
        }))
    }
}

impl fmt::Debug for Bucket<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut d = f.debug_struct("Bucket");
        match self.root {
            Root::Paged(id) => d.field("root", &id),
            Root::Inline(_) => d.field("root", &"inline"),
        };
        d.field("sequence", &self.sequence).finish()
    }
}

impl fmt::Debug for Entry<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Entry::Value(v) => f
                .debug_tuple("Value")
                .field(&String::from_utf8_lossy(v))
                .finish(),
            Entry::Bucket(b) => b.fmt(f),
        }
    }
}

/// In-order iterator over a bucket's entries: `(key, entry)`.
pub struct Iter<'a> {
    bucket: Bucket<'a>,
    /// Path from the bucket's root to the current leaf: node and next index.
    stack: Vec<(Node<'a>, usize)>,
}

impl<'a> Iterator for Iter<'a> {
    type Item = (&'a [u8], Entry<'a>);

    fn next(&mut self) -> Option<Self::Item> {
        loop {
            let (node, i) = self.stack.last_mut()?;
            if *i >= node.count {
                self.stack.pop();
                continue;
            }
            let idx = *i;
            *i += 1;
            let node = *node;
            if node.leaf {
                let Ok(e) = node.leaf(idx) else { continue };
                match self.bucket.decode(e.flags, e.value) {
                    Some(entry) => return Some((e.key, entry)),
                    None => continue,
                }
            }
            if let Some(child) = node
                .branch(idx)
                .ok()
                .and_then(|(_, c)| self.bucket.db.node(c))
            {
                self.stack.push((child, 0));
            }
        }
    }
}
