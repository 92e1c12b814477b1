//! Property-based fuzzing, bounded to run in seconds: arbitrary bytes,
//! bit-flipped and truncated real fixtures, and damaged generated images
//! must never panic or hang, and whatever opens must walk cleanly.

mod common;

use bbolt::{Bucket, Db, Entry};
use proptest::prelude::*;

/// Visits everything reachable the ways callers do; returns entries seen.
fn exercise(b: Bucket<'_>, depth: usize) -> usize {
    let mut n = 0;
    for (k, e) in b.iter() {
        n += 1;
        assert!(
            b.entry(k).is_some(),
            "every iterated key is found by lookup"
        );
        assert_eq!(b.iter_from(k).next().map(|(first, _)| first), Some(k));
        if let Entry::Bucket(sub) = e {
            assert!(depth < 300);
            n += exercise(sub, depth + 1);
        }
    }
    n
}

fn open_and_walk(img: Vec<u8>) {
    if let Ok(db) = Db::from_bytes(img, "fuzz.db") {
        let n = exercise(db.root(), 0) as u64;
        let s = db.stats();
        assert_eq!(n, s.buckets + s.values);
        let _ = db.check();
    }
}

fn fixtures() -> &'static [Vec<u8>] {
    static F: std::sync::OnceLock<Vec<Vec<u8>>> = std::sync::OnceLock::new();
    F.get_or_init(|| {
        common::ALL
            .iter()
            .map(|rel| common::fixture_bytes(rel))
            .collect()
    })
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 300, failure_persistence: None, ..ProptestConfig::default() })]

    #[test]
    fn arbitrary_bytes(bytes in prop::collection::vec(any::<u8>(), 0..12_000), reseal in any::<bool>()) {
        let mut img = bytes;
        if reseal {
            // Give random bytes valid-looking metas so the walk gets fuzzed too.
            for off in [0usize, 1024] {
                if let Some(m) = img.get_mut(off + 16..off + 28) {
                    m[..4].copy_from_slice(&0xED0C_DAEDu32.to_le_bytes());
                    m[4..8].copy_from_slice(&2u32.to_le_bytes());
                    m[8..12].copy_from_slice(&1024u32.to_le_bytes());
                }
            }
            common::reseal_metas(&mut img, 1024);
        }
        open_and_walk(img);
    }

    #[test]
    fn bit_flipped_fixtures(
        which in 0..common::ALL.len(),
        flips in prop::collection::vec((any::<prop::sample::Index>(), 0u8..8), 1..24),
        reseal in any::<bool>(),
    ) {
        let mut img = fixtures()[which].clone();
        // Aim most flips at the used pages, where they matter.
        let used = img.len().min(128 * 1024);
        for (at, bit) in flips {
            img[at.index(used)] ^= 1 << bit;
        }
        if reseal {
            common::reseal_metas(&mut img, 4096);
        }
        open_and_walk(img);
    }

    #[test]
    fn truncated_fixtures(which in 0..common::ALL.len(), cut in any::<prop::sample::Index>()) {
        let mut img = fixtures()[which].clone();
        img.truncate(cut.index(img.len()));
        open_and_walk(img);
    }

    #[test]
    fn overwritten_words_in_fixtures(
        which in 0..common::ALL.len(),
        writes in prop::collection::vec((any::<prop::sample::Index>(), any::<u32>()), 1..8),
    ) {
        // Whole words hit counts, positions and page ids more often than bit flips.
        let mut img = fixtures()[which].clone();
        let used = img.len().min(128 * 1024) - 4;
        for (at, v) in writes {
            let at = at.index(used);
            let v = if v % 3 == 0 { v % 64 } else { v };
            img[at..at + 4].copy_from_slice(&v.to_le_bytes());
        }
        common::reseal_metas(&mut img, 4096);
        open_and_walk(img);
    }
}
