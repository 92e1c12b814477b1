//! The optional integrity check: the freelist against the reachable pages.

use crate::error::Damage;
use crate::meta::Meta;
use crate::page::{self, FREELIST, HEADER, u64_at};
use crate::walk::Fault;

/// What [`crate::Db::check`] found in a file that passed it.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct CheckReport {
    /// Pages below the high-water mark, meta pages included.
    pub pages: u64,
    /// Pages reachable from the root (each reached exactly once).
    pub reachable: u64,
    /// Pages the freelist lists (free and pending).
    pub free: u64,
    /// Pages the freelist itself occupies (0 if not persisted).
    pub freelist_pages: u64,
    /// Whether the file persists its freelist. Without one, unreachable pages
    /// are expected and `leaked` stays empty.
    pub freelist_persisted: bool,
    /// Pages below the high-water mark that are neither meta, reachable,
    /// free nor the freelist: lost space, harmless to a reader.
    pub leaked: Vec<u64>,
}

fn is_set(bits: &[u64], p: u64) -> bool {
    bits.get((p / 64) as usize)
        .is_some_and(|w| w & (1 << (p % 64)) != 0)
}

fn set(bits: &mut [u64], p: u64) {
    if let Some(w) = bits.get_mut((p / 64) as usize) {
        *w |= 1 << (p % 64);
    }
}

pub(crate) fn run(
    data: &[u8],
    meta: &Meta,
    reached: &[u64],
    reachable: u64,
) -> Result<CheckReport, Fault> {
    let hwm = meta.high_water_mark;
    let ps = meta.page_size as usize;
    let mut report = CheckReport {
        pages: hwm,
        reachable,
        free: 0,
        freelist_pages: 0,
        freelist_persisted: meta.freelist.is_some(),
        leaked: Vec::new(),
    };
    let Some(fl) = meta.freelist else {
        return Ok(report);
    };
    let at_meta = |damage| Fault {
        page: u64::from(meta.slot),
        damage,
    };
    if fl < 2 || fl >= hwm {
        return Err(at_meta(Damage::PageOutOfRange {
            id: fl,
            high_water_mark: hwm,
        }));
    }
    let fault = |damage| Fault { page: fl, damage };
    // hwm pages fit in `data` (checked at open), so this slice exists.
    let off = fl as usize * ps;
    let h =
        data.get(off..off + ps)
            .and_then(page::header)
            .ok_or(fault(Damage::PageOutOfRange {
                id: fl,
                high_water_mark: hwm,
            }))?;
    if h.id != fl {
        return Err(fault(Damage::WrongHeaderId { found: h.id }));
    }
    if h.flags != FREELIST {
        return Err(fault(Damage::BadFlags {
            flags: h.flags,
            expected: "freelist (0x10)",
        }));
    }
    let last = fl.checked_add(u64::from(h.overflow)).filter(|&l| l < hwm);
    let Some(last) = last else {
        return Err(fault(Damage::OverflowOutOfRange {
            overflow: h.overflow,
            high_water_mark: hwm,
        }));
    };
    let mut used = vec![0u64; hwm.div_ceil(64) as usize];
    for p in fl..=last {
        if is_set(reached, p) {
            return Err(fault(Damage::ReachedTwice));
        }
        set(&mut used, p);
    }
    report.freelist_pages = last - fl + 1;
    let span = &data[off..(last as usize + 1) * ps];
    // A count of 0xFFFF escapes to a u64 count in the first id slot.
    let (n, start) = if h.count == 0xFFFF {
        (u64_at(span, HEADER).unwrap_or(u64::MAX), HEADER + 8)
    } else {
        (u64::from(h.count), HEADER)
    };
    let end = n.checked_mul(8).and_then(|b| b.checked_add(start as u64));
    if end.is_none_or(|e| e > span.len() as u64) {
        return Err(fault(Damage::DataOutsidePage {
            index: 0,
            what: "freelist ids",
            start: start as u64,
            end: end.unwrap_or(u64::MAX),
            span: span.len(),
        }));
    }
    let mut free = vec![0u64; used.len()];
    for i in 0..n as usize {
        let id = u64_at(span, start + 8 * i).unwrap_or(0);
        if id < 2 || id >= hwm {
            return Err(fault(Damage::FreeIdOutOfRange { id }));
        }
        if is_set(&free, id) {
            return Err(fault(Damage::FreeIdDuplicate { id }));
        }
        if is_set(reached, id) || is_set(&used, id) {
            return Err(fault(Damage::FreeButReachable { id }));
        }
        set(&mut free, id);
    }
    report.free = n;
    report.leaked = (2..hwm)
        .filter(|&p| !is_set(reached, p) && !is_set(&used, p) && !is_set(&free, p))
        .collect();
    Ok(report)
}
