//! The validating walk done once at open. After it succeeds, every page and
//! element reachable from the chosen meta is known to be in bounds, in key
//! order and reached once, so the accessors in `bucket.rs` need no error path.

use crate::error::Damage;
use crate::page::{self, BUCKET_LEAF, HEADER, LEAF, Node};

/// Nesting bound for branch levels plus bucket levels together. Real files
/// stay below 20; the bound keeps a crafted chain of inline buckets from
/// exhausting the stack.
pub(crate) const MAX_DEPTH: usize = 256;

/// What the walk counted.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct Stats {
    /// Pages reached, overflow pages included.
    pub pages: u64,
    pub branch_pages: u64,
    pub leaf_pages: u64,
    /// Extra pages of multi-page (overflow) branch and leaf pages.
    pub overflow_pages: u64,
    /// Nested buckets (the root bucket not counted).
    pub buckets: u64,
    pub inline_buckets: u64,
    /// Key/value pairs that are not buckets.
    pub values: u64,
    /// Deepest nesting of pages and buckets seen.
    pub max_depth: usize,
}

pub(crate) struct Fault {
    pub page: u64,
    pub damage: Damage,
}

/// Key-order state of one bucket's tree, carried along its in-order walk.
#[derive(Default)]
struct Order<'a> {
    /// Last key seen in this bucket.
    prev: Option<&'a [u8]>,
    /// The next key must be >= this (the branch key of the subtree entered).
    lo: Option<&'a [u8]>,
}

pub(crate) struct Walker<'a> {
    data: &'a [u8],
    page_size: usize,
    hwm: u64,
    /// One bit per page below the high-water mark: reached already.
    pub reached: Vec<u64>,
    budget: u64,
    depth: usize,
    /// Element indexes of the inline buckets we are inside, in the page `page`.
    inline: Vec<usize>,
    page: u64,
    pub stats: Stats,
}

impl<'a> Walker<'a> {
    /// `data` must hold at least `hwm` pages (checked by the caller);
    /// `meta_slot` is named by errors about the root page id.
    pub fn new(data: &'a [u8], page_size: u32, hwm: u64, meta_slot: u8) -> Walker<'a> {
        Walker {
            data,
            page_size: page_size as usize,
            hwm,
            reached: vec![0; hwm.div_ceil(64) as usize],
            // In a sound file every element header occupies its own 16 bytes
            // of the file, so more elements than that means overlapping data.
            budget: data.len() as u64 / page::ELEMENT as u64,
            depth: 0,
            inline: Vec::new(),
            page: u64::from(meta_slot),
            stats: Stats::default(),
        }
    }

    fn fault(&self, damage: Damage) -> Fault {
        let damage =
            self.inline
                .iter()
                .rev()
                .fold(damage, |inner, &index| Damage::InInlineBucket {
                    index,
                    inner: Box::new(inner),
                });
        Fault {
            page: self.page,
            damage,
        }
    }

    pub fn bucket(&mut self, root: u64) -> Result<(), Fault> {
        self.page(root, &mut Order::default())
    }

    fn enter(&mut self) -> Result<(), Fault> {
        self.depth += 1;
        self.stats.max_depth = self.stats.max_depth.max(self.depth);
        if self.depth > MAX_DEPTH {
            return Err(self.fault(Damage::TooDeep { depth: MAX_DEPTH }));
        }
        Ok(())
    }

    fn page(&mut self, id: u64, order: &mut Order<'a>) -> Result<(), Fault> {
        // Errors about the id itself belong to the page that referred to it;
        // `self.page` still names that page here.
        if id < 2 || id >= self.hwm {
            return Err(self.fault(Damage::PageOutOfRange {
                id,
                high_water_mark: self.hwm,
            }));
        }
        let outer_page = self.page;
        let outer_inline = std::mem::take(&mut self.inline);
        self.page = id;
        self.enter()?;
        self.page_inner(id, order)?;
        self.depth -= 1;
        self.page = outer_page;
        self.inline = outer_inline;
        Ok(())
    }

    fn page_inner(&mut self, id: u64, order: &mut Order<'a>) -> Result<(), Fault> {
        let off = id as usize * self.page_size;
        let first = self
            .data
            .get(off..off + self.page_size)
            .and_then(page::header);
        let Some(h) = first else {
            // Unreachable: the caller checked the file holds hwm pages.
            return Err(self.fault(Damage::PageOutOfRange {
                id,
                high_water_mark: self.hwm,
            }));
        };
        if h.id != id {
            return Err(self.fault(Damage::WrongHeaderId { found: h.id }));
        }
        let last = id
            .checked_add(u64::from(h.overflow))
            .filter(|&l| l < self.hwm);
        let Some(last) = last else {
            return Err(self.fault(Damage::OverflowOutOfRange {
                overflow: h.overflow,
                high_water_mark: self.hwm,
            }));
        };
        for p in id..=last {
            let (w, bit) = ((p / 64) as usize, 1u64 << (p % 64));
            if self.reached[w] & bit != 0 {
                return Err(self.fault(Damage::ReachedTwice));
            }
            self.reached[w] |= bit;
        }
        let span_end = (last as usize + 1) * self.page_size;
        let span = &self.data[off..span_end];
        let node = Node::parse(span, &h).map_err(|d| self.fault(d))?;
        self.stats.pages += last - id + 1;
        self.stats.overflow_pages += u64::from(h.overflow);
        if node.leaf {
            self.stats.leaf_pages += 1;
        } else {
            self.stats.branch_pages += 1;
        }
        self.node(node, order)
    }

    fn node(&mut self, node: Node<'a>, order: &mut Order<'a>) -> Result<(), Fault> {
        let count = node.count as u64;
        if count > self.budget {
            return Err(self.fault(Damage::TooManyElements));
        }
        self.budget -= count;
        if node.leaf {
            for i in 0..node.count {
                let e = node.leaf(i).map_err(|d| self.fault(d))?;
                self.key(i, e.key, order)?;
                if e.flags & BUCKET_LEAF != 0 {
                    self.nested(i, e.value)?;
                } else {
                    self.stats.values += 1;
                }
            }
        } else {
            let mut last_branch_key: Option<&[u8]> = None;
            for i in 0..node.count {
                let (key, child) = node.branch(i).map_err(|d| self.fault(d))?;
                if i > 0 {
                    // Everything left of this element sorts before its key;
                    // with the in-order check that bounds the subtree before.
                    if last_branch_key.is_some_and(|p| p >= key)
                        || order.prev.is_some_and(|p| p >= key)
                    {
                        return Err(self.fault(Damage::KeyOrder { index: i }));
                    }
                    order.lo = Some(key);
                }
                last_branch_key = Some(key);
                self.page(child, order)?;
            }
        }
        Ok(())
    }

    fn key(&self, i: usize, key: &'a [u8], order: &mut Order<'a>) -> Result<(), Fault> {
        let below_prev = order.prev.is_some_and(|p| key <= p);
        let below_lo = order.lo.take().is_some_and(|lo| key < lo);
        if below_prev || below_lo {
            return Err(self.fault(Damage::KeyOrder { index: i }));
        }
        order.prev = Some(key);
        Ok(())
    }

    fn nested(&mut self, i: usize, value: &'a [u8]) -> Result<(), Fault> {
        let Some((root, _sequence)) = page::bucket_header(value) else {
            return Err(self.fault(Damage::BucketValueTooShort {
                index: i,
                len: value.len(),
            }));
        };
        self.stats.buckets += 1;
        if root != 0 {
            return self.bucket(root);
        }
        let image = &value[16..];
        let Some(h) = page::header(image).filter(|_| image.len() >= HEADER) else {
            return Err(self.fault(Damage::InlineTooShort {
                index: i,
                len: value.len(),
            }));
        };
        self.inline.push(i);
        self.enter()?;
        if h.flags != LEAF {
            return Err(self.fault(Damage::BadFlags {
                flags: h.flags,
                expected: "leaf (0x02) in an inline bucket",
            }));
        }
        let node = Node::parse(image, &h).map_err(|d| self.fault(d))?;
        self.stats.inline_buckets += 1;
        self.node(node, &mut Order::default())?;
        self.depth -= 1;
        self.inline.pop();
        Ok(())
    }
}
