//! `cargo +nightly fuzz run open` (from crates/bbolt): any input must open
//! or fail with an error, never panic, and whatever opens must walk cleanly.
//! Each input is tried as is and with its meta checksums recomputed, so that
//! mutations get past the checksum into the page walk.
#![no_main]

use bbolt::{Bucket, Db, Entry};
use libfuzzer_sys::fuzz_target;

fn fnv1a64(bytes: &[u8]) -> u64 {
    bytes.iter().fold(0xcbf2_9ce4_8422_2325, |h, &b| {
        (h ^ u64::from(b)).wrapping_mul(0x100_0000_01b3)
    })
}

fn reseal(img: &mut [u8]) {
    let ps = img
        .get(24..28)
        .map_or(4096, |b| u32::from_le_bytes(b.try_into().unwrap()) as usize);
    for off in [0, ps] {
        if let Some(m) = img.get_mut(off.saturating_add(16)..off.saturating_add(80)) {
            let sum = fnv1a64(&m[..56]);
            m[56..64].copy_from_slice(&sum.to_le_bytes());
        }
    }
}

fn walk(b: Bucket<'_>) -> u64 {
    let mut n = 0;
    for (k, e) in b.iter() {
        n += 1;
        assert!(b.entry(k).is_some());
        assert_eq!(b.iter_from(k).next().map(|(first, _)| first), Some(k));
        if let Entry::Bucket(sub) = e {
            n += walk(sub);
        }
    }
    n
}

fn open(img: Vec<u8>) {
    if let Ok(db) = Db::from_bytes(img, "fuzz.db") {
        let s = db.stats();
        assert_eq!(walk(db.root()), s.buckets + s.values);
        let _ = db.check();
    }
}

fuzz_target!(|data: &[u8]| {
    open(data.to_vec());
    let mut sealed = data.to_vec();
    reseal(&mut sealed);
    if sealed != data {
        open(sealed);
    }
});
