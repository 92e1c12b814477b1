//! Page headers and branch/leaf elements, read from byte slices with bounds
//! checks. Nothing here trusts the bytes: every accessor returns `Damage`
//! instead of indexing out of range.

use crate::error::Damage;

pub(crate) const HEADER: usize = 16;
pub(crate) const ELEMENT: usize = 16;

pub(crate) const BRANCH: u16 = 0x01;
pub(crate) const LEAF: u16 = 0x02;
#[cfg_attr(not(feature = "writer"), allow(dead_code))] // read by the writer only
pub(crate) const META: u16 = 0x04;
pub(crate) const FREELIST: u16 = 0x10;

/// Leaf element flag: the value is a nested bucket.
pub(crate) const BUCKET_LEAF: u32 = 0x01;

pub(crate) fn u16_at(b: &[u8], off: usize) -> Option<u16> {
    let s = b.get(off..off.checked_add(2)?)?;
    Some(u16::from_le_bytes([s[0], s[1]]))
}

pub(crate) fn u32_at(b: &[u8], off: usize) -> Option<u32> {
    let s = b.get(off..off.checked_add(4)?)?;
    Some(u32::from_le_bytes(s.try_into().ok()?))
}

pub(crate) fn u64_at(b: &[u8], off: usize) -> Option<u64> {
    let s = b.get(off..off.checked_add(8)?)?;
    Some(u64::from_le_bytes(s.try_into().ok()?))
}

#[derive(Debug, Clone, Copy)]
pub(crate) struct Header {
    pub id: u64,
    pub flags: u16,
    pub count: u16,
    pub overflow: u32,
}

/// The header at the start of `b`; `None` if `b` is shorter than a header.
pub(crate) fn header(b: &[u8]) -> Option<Header> {
    Some(Header {
        id: u64_at(b, 0)?,
        flags: u16_at(b, 8)?,
        count: u16_at(b, 10)?,
        overflow: u32_at(b, 12)?,
    })
}

/// A branch or leaf page whose header and element array were checked to fit
/// in `bytes` (the page span, or an inline bucket's page image).
#[derive(Debug, Clone, Copy)]
pub(crate) struct Node<'a> {
    pub bytes: &'a [u8],
    pub leaf: bool,
    pub count: usize,
}

pub(crate) struct LeafElem<'a> {
    pub flags: u32,
    pub key: &'a [u8],
    pub value: &'a [u8],
}

impl<'a> Node<'a> {
    /// Checks flags (exactly branch or leaf, as bbolt ≥ 1.4 does) and that the
    /// element array fits.
    pub fn parse(bytes: &'a [u8], h: &Header) -> Result<Node<'a>, Damage> {
        let leaf = match h.flags {
            LEAF => true,
            BRANCH => false,
            flags => {
                return Err(Damage::BadFlags {
                    flags,
                    expected: "branch (0x01) or leaf (0x02)",
                });
            }
        };
        let count = usize::from(h.count);
        if HEADER + ELEMENT * count > bytes.len() {
            return Err(Damage::ElementsOutsidePage {
                count: h.count,
                span: bytes.len(),
            });
        }
        if !leaf && count == 0 {
            return Err(Damage::EmptyBranch);
        }
        Ok(Node { bytes, leaf, count })
    }

    fn span(
        &self,
        index: usize,
        elem: usize,
        pos: u32,
        len: u32,
        what: &'static str,
    ) -> Result<&'a [u8], Damage> {
        let start = elem as u64 + u64::from(pos);
        let end = start + u64::from(len);
        let out = || Damage::DataOutsidePage {
            index,
            what,
            start,
            end,
            span: self.bytes.len(),
        };
        if end > self.bytes.len() as u64 {
            return Err(out());
        }
        // Both bounds are below bytes.len(), so they fit in usize.
        self.bytes.get(start as usize..end as usize).ok_or_else(out)
    }

    /// Key and child page id of branch element `i`.
    pub fn branch(&self, i: usize) -> Result<(&'a [u8], u64), Damage> {
        let e = HEADER + ELEMENT * i;
        let bad = || Damage::ElementsOutsidePage {
            count: self.count as u16,
            span: self.bytes.len(),
        };
        let pos = u32_at(self.bytes, e).ok_or_else(bad)?;
        let ksize = u32_at(self.bytes, e + 4).ok_or_else(bad)?;
        let child = u64_at(self.bytes, e + 8).ok_or_else(bad)?;
        Ok((self.span(i, e, pos, ksize, "key")?, child))
    }

    pub fn leaf(&self, i: usize) -> Result<LeafElem<'a>, Damage> {
        let e = HEADER + ELEMENT * i;
        let bad = || Damage::ElementsOutsidePage {
            count: self.count as u16,
            span: self.bytes.len(),
        };
        let flags = u32_at(self.bytes, e).ok_or_else(bad)?;
        let pos = u32_at(self.bytes, e + 4).ok_or_else(bad)?;
        let ksize = u32_at(self.bytes, e + 8).ok_or_else(bad)?;
        let vsize = u32_at(self.bytes, e + 12).ok_or_else(bad)?;
        let key = self.span(i, e, pos, ksize, "key")?;
        // The value follows the key directly.
        let vpos = pos
            .checked_add(ksize)
            .ok_or_else(|| Damage::DataOutsidePage {
                index: i,
                what: "value",
                start: u64::from(pos) + u64::from(ksize),
                end: u64::from(pos) + u64::from(ksize) + u64::from(vsize),
                span: self.bytes.len(),
            })?;
        let value = self.span(i, e, vpos, vsize, "value")?;
        Ok(LeafElem { flags, key, value })
    }

    /// Key of element `i`, branch or leaf.
    pub fn key(&self, i: usize) -> Result<&'a [u8], Damage> {
        if self.leaf {
            self.leaf(i).map(|e| e.key)
        } else {
            self.branch(i).map(|(k, _)| k)
        }
    }

    /// Index of the last element whose key is <= `target` (0 if none), the
    /// branch descent rule of bbolt's cursor. Keys are sorted (checked at open).
    pub fn branch_index(&self, target: &[u8]) -> usize {
        let (mut lo, mut hi) = (0usize, self.count);
        // Invariant: keys[..lo] <= target < keys[hi..].
        while lo < hi {
            let mid = lo + (hi - lo) / 2;
            match self.key(mid) {
                Ok(k) if k <= target => lo = mid + 1,
                _ => hi = mid,
            }
        }
        lo.saturating_sub(1)
    }

    /// Index of the first element whose key is >= `target` (`count` if none).
    pub fn lower_bound(&self, target: &[u8]) -> usize {
        let (mut lo, mut hi) = (0usize, self.count);
        while lo < hi {
            let mid = lo + (hi - lo) / 2;
            match self.key(mid) {
                Ok(k) if k < target => lo = mid + 1,
                _ => hi = mid,
            }
        }
        lo
    }
}

/// A nested bucket's value: 16-byte header (root page id, sequence), then,
/// when root is 0, the bucket's only leaf as a page image.
pub(crate) fn bucket_header(value: &[u8]) -> Option<(u64, u64)> {
    Some((u64_at(value, 0)?, u64_at(value, 8)?))
}
