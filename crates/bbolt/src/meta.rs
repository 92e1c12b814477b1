//! Meta pages: validation, page-size discovery and the choice between the two
//! slots.

use crate::error::Damage;
use crate::page::{HEADER, u32_at, u64_at};

pub(crate) const MAGIC: u32 = 0xED0C_DAED;
pub(crate) const VERSION: u32 = 2;
/// The meta struct is 64 bytes; the checksum covers the 56 before it.
const META_LEN: usize = 64;
const SUMMED: usize = 56;
/// Freelist page id meaning "freelist not persisted" (bbolt `NoFreelistSync`).
pub(crate) const NO_FREELIST: u64 = u64::MAX;

const MIN_PAGE: u32 = 1024;
const MAX_PAGE: u32 = 1 << 24;

/// The meta page a reader uses.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub struct Meta {
    /// Which slot (page 0 or 1) it came from.
    pub slot: u8,
    pub page_size: u32,
    pub flags: u32,
    /// Root page of the top-level bucket tree.
    pub root: u64,
    /// Sequence of the root bucket.
    pub root_sequence: u64,
    /// Freelist page, `None` if the freelist is not persisted.
    pub freelist: Option<u64>,
    /// Number of pages in use; every valid page id is below it.
    pub high_water_mark: u64,
    pub txid: u64,
}

pub(crate) fn fnv1a64(bytes: &[u8]) -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for &b in bytes {
        h ^= u64::from(b);
        h = h.wrapping_mul(0x0000_0100_0000_01b3);
    }
    h
}

/// Why a meta slot was refused; `swapped` says the magic matched in the other
/// byte order.
pub(crate) struct Refused {
    pub damage: Damage,
    pub swapped: bool,
}

/// Validates the meta page starting at `off` (magic, version, checksum, page
/// size), as bbolt does before trusting a slot.
pub(crate) fn parse_at(data: &[u8], off: usize, slot: u8) -> Result<Meta, Refused> {
    let refuse = |damage| Refused {
        damage,
        swapped: false,
    };
    let m = data
        .get(off.saturating_add(HEADER)..off.saturating_add(HEADER + META_LEN))
        .ok_or(refuse(Damage::TooShort {
            len: data.len() as u64,
        }))?;
    let get32 = |o| u32_at(m, o).unwrap_or_default();
    let get64 = |o| u64_at(m, o).unwrap_or_default();
    let magic = get32(0);
    if magic != MAGIC {
        return Err(Refused {
            damage: Damage::BadMagic { found: magic },
            swapped: magic == MAGIC.swap_bytes(),
        });
    }
    let version = get32(4);
    if version != VERSION {
        return Err(refuse(Damage::BadVersion { found: version }));
    }
    let stored = get64(56);
    let computed = fnv1a64(&m[..SUMMED]);
    if stored != computed {
        return Err(refuse(Damage::BadChecksum { stored, computed }));
    }
    let page_size = get32(8);
    if !(MIN_PAGE..=MAX_PAGE).contains(&page_size) || !page_size.is_power_of_two() {
        return Err(refuse(Damage::BadPageSize { found: page_size }));
    }
    let freelist = get64(32);
    Ok(Meta {
        slot,
        page_size,
        flags: get32(12),
        root: get64(16),
        root_sequence: get64(24),
        freelist: (freelist != NO_FREELIST).then_some(freelist),
        high_water_mark: get64(40),
        txid: get64(48),
    })
}

/// Both slots, as read: meta 0 at offset 0, meta 1 at the page size meta 0
/// gives or, if meta 0 is unusable, at the first of `1024 << i` that
/// validates (bbolt `getPageSize`).
pub(crate) struct Slots {
    pub meta0: Result<Meta, Refused>,
    pub meta1: Result<Meta, Refused>,
}

pub(crate) fn read_slots(data: &[u8]) -> Slots {
    let meta0 = parse_at(data, 0, 0);
    let meta1 = match &meta0 {
        Ok(m0) => parse_at(data, m0.page_size as usize, 1).and_then(|m1| {
            // A meta 1 with another page size cannot sit at this offset in a
            // sound file.
            if m1.page_size == m0.page_size {
                Ok(m1)
            } else {
                Err(Refused {
                    damage: Damage::BadPageSize {
                        found: m1.page_size,
                    },
                    swapped: false,
                })
            }
        }),
        Err(_) => probe_meta1(data),
    };
    Slots { meta0, meta1 }
}

fn probe_meta1(data: &[u8]) -> Result<Meta, Refused> {
    let mut swapped = false;
    for i in 0..15 {
        let off = 1024usize << i;
        if off + 1024 > data.len() {
            break;
        }
        match parse_at(data, off, 1) {
            // The slot must sit exactly one page in.
            Ok(m) if m.page_size as usize == off => return Ok(m),
            Ok(_) => {}
            Err(r) => swapped |= r.swapped,
        }
    }
    Err(Refused {
        damage: Damage::NoMetaFound,
        swapped,
    })
}

/// The valid slot with the higher txid (meta 0 on a tie, like bbolt), or
/// why both were refused.
#[allow(clippy::result_large_err)] // internal, consumed at once
pub(crate) fn choose(slots: Slots) -> Result<Meta, (Refused, Refused)> {
    match (slots.meta0, slots.meta1) {
        (Ok(a), Ok(b)) => Ok(if b.txid > a.txid { b } else { a }),
        (Ok(a), Err(_)) => Ok(a),
        (Err(_), Ok(b)) => Ok(b),
        (Err(r0), Err(r1)) => Err((r0, r1)),
    }
}
