//! Synthetic damage: each must give a typed error that names the file and the
//! page and says what is wrong, never a panic.

mod common;

use bbolt::build::{self, Options, Tree};
use bbolt::{Damage, Db, Error};

const PS: usize = 4096;
const NAME: &str = "damaged.db";

fn put_u16(img: &mut [u8], off: usize, v: u16) {
    img[off..off + 2].copy_from_slice(&v.to_le_bytes());
}
fn put_u32(img: &mut [u8], off: usize, v: u32) {
    img[off..off + 4].copy_from_slice(&v.to_le_bytes());
}
fn put_u64(img: &mut [u8], off: usize, v: u64) {
    img[off..off + 8].copy_from_slice(&v.to_le_bytes());
}
fn get_u64(img: &[u8], off: usize) -> u64 {
    u64::from_le_bytes(img[off..off + 8].try_into().unwrap())
}

/// Bucket "b" with 400 keys (leaves under one branch page), bucket "small"
/// (inline), and the page ids to damage.
struct Sample {
    img: Vec<u8>,
    root: u64,
    branch: u64,
    leaves: Vec<u64>,
    hwm: u64,
}

fn sample() -> Sample {
    let mut t = Tree::new();
    let b = t.bucket("b");
    for i in 0..400u32 {
        b.put(
            format!("key-{i:04}"),
            format!("value-{i}-{}", "v".repeat(20)),
        );
    }
    t.bucket("small").put("k", "v");
    let img = build::image(
        &t,
        &Options {
            txid: 3,
            ..Options::default()
        },
    )
    .unwrap();
    let db = Db::from_bytes(img.clone(), NAME).unwrap();
    let branch = db.bucket("b").unwrap().root_page().unwrap();
    let count = u16::from_le_bytes([
        img[branch as usize * PS + 10],
        img[branch as usize * PS + 11],
    ]);
    let leaves = (0..count as usize)
        .map(|i| get_u64(&img, branch as usize * PS + 16 + 16 * i + 8))
        .collect();
    Sample {
        root: db.meta().root,
        branch,
        leaves,
        hwm: db.meta().high_water_mark,
        img,
    }
}

/// Opens `img` and returns the error, checking it names the file and page.
fn corrupt(img: Vec<u8>, page: u64) -> Damage {
    let err = Db::from_bytes(img, NAME).expect_err("damage must be refused");
    let text = err.to_string();
    assert!(text.starts_with(NAME), "{text}");
    assert!(text.contains(&format!("page {page}:")), "{text}");
    assert_eq!(err.page(), Some(page), "{text}");
    err.damage().cloned().unwrap()
}

#[test]
fn the_sample_is_sound() {
    let s = sample();
    let db = Db::from_bytes(s.img.clone(), NAME).unwrap();
    assert!(s.leaves.len() >= 3);
    assert_eq!(db.bucket("b").unwrap().iter().count(), 400);
    assert!(db.check().unwrap().leaked.is_empty());
}

#[test]
fn truncated_file() {
    let s = sample();
    let mut img = s.img.clone();
    img.truncate(img.len() / 2);
    match corrupt(img, 1) {
        Damage::FileTooShort {
            high_water_mark, ..
        } => assert_eq!(high_water_mark, s.hwm),
        d => panic!("{d}"),
    }
    for len in [0, 50, 4096] {
        let mut img = s.img.clone();
        img.truncate(len);
        let r = Db::from_bytes(img, NAME);
        match r {
            Err(Error::NoValidMeta { .. }) if len < 80 => {}
            Err(Error::Corrupt {
                damage: Damage::FileTooShort { .. },
                page: 0,
                ..
            }) if len == 4096 => {}
            other => panic!("{len}: {other:?}"),
        }
    }
}

#[test]
fn both_metas_zeroed() {
    let mut img = sample().img;
    img[..2 * PS].fill(0);
    let err = Db::from_bytes(img, NAME).unwrap_err();
    let Error::NoValidMeta { meta0, meta1, .. } = &err else {
        panic!("{err}")
    };
    assert_eq!(**meta0, Damage::BadMagic { found: 0 });
    assert_eq!(**meta1, Damage::NoMetaFound);
    assert!(
        err.to_string()
            .starts_with("damaged.db: not a usable bbolt file: meta page 0: bad magic"),
        "{err}"
    );
}

/// A file with two versions, like after a commit: slot 0 (txid 4) points at
/// tree A in pages 2.., slot 1 (txid 5) at tree B placed above A's pages.
fn two_versions() -> Vec<u8> {
    let mut a = Tree::new();
    a.bucket("v").put("version", "A");
    let a_img = build::image(
        &a,
        &Options {
            txid: 4,
            ..Options::default()
        },
    )
    .unwrap();
    let a_pages = a_img.len() / PS;
    let mut b = Tree::new();
    b.bucket("v").put("version", "B");
    let mut img = build::image(
        &b,
        &Options {
            txid: 5,
            first_page: a_pages as u64,
            ..Options::default()
        },
    )
    .unwrap();
    img[2 * PS..a_pages * PS].copy_from_slice(&a_img[2 * PS..]);
    img[..PS].copy_from_slice(&a_img[..PS]);
    img
}

#[test]
fn corrupt_newer_meta_falls_back_to_the_older() {
    let img = two_versions();
    let db = Db::from_bytes(img.clone(), NAME).unwrap();
    assert_eq!((db.txid(), db.meta().slot), (5, 1));
    assert_eq!(db.bucket("v").unwrap().get("version"), Some(&b"B"[..]));
    let mut bad = img.clone();
    bad[PS + 16 + 20] ^= 0x01; // a byte of meta 1's root page id: checksum fails
    let db = Db::from_bytes(bad, NAME).unwrap();
    assert_eq!((db.txid(), db.meta().slot), (4, 0));
    assert_eq!(db.bucket("v").unwrap().get("version"), Some(&b"A"[..]));
    // With both slots valid, the higher txid wins whichever slot holds it.
    let mut swapped = img;
    put_u64(&mut swapped, 16 + 48, 9);
    common::reseal_meta(&mut swapped, 0);
    assert_eq!(
        Db::from_bytes(swapped, NAME)
            .unwrap()
            .bucket("v")
            .unwrap()
            .get("version"),
        Some(&b"A"[..])
    );
}

#[test]
fn page_size_comes_from_meta_1_when_meta_0_is_bad() {
    let mut t = Tree::new();
    t.bucket("x").put("k", "v");
    for ps in [1024u32, 16384, 65536] {
        let mut img = build::image(
            &t,
            &Options {
                page_size: ps,
                txid: 7,
                first_page: 2,
            },
        )
        .unwrap();
        img[..64].fill(0xAB);
        let db = Db::from_bytes(img, NAME).unwrap();
        assert_eq!((db.page_size(), db.meta().slot, db.txid()), (ps, 1, 7));
        assert_eq!(db.bucket("x").unwrap().get("k"), Some(&b"v"[..]));
    }
}

#[test]
fn byte_swapped_file_is_refused() {
    let mut img = sample().img;
    for off in [0, PS] {
        img[off + 16..off + 20].copy_from_slice(&0xED0C_DAEDu32.to_be_bytes());
        put_u32(&mut img, off + 24, (PS as u32).swap_bytes());
    }
    let err = Db::from_bytes(img, NAME).unwrap_err();
    assert!(matches!(err, Error::ByteSwapped { .. }), "{err}");
    assert!(err.to_string().contains("big-endian"), "{err}");
}

#[test]
fn page_id_past_the_high_water_mark() {
    let s = sample();
    let mut img = s.img.clone();
    put_u64(&mut img, s.branch as usize * PS + 16 + 16 + 8, s.hwm + 5);
    assert_eq!(
        corrupt(img, s.branch),
        Damage::PageOutOfRange {
            id: s.hwm + 5,
            high_water_mark: s.hwm
        }
    );
    let mut img = s.img.clone();
    put_u64(&mut img, s.branch as usize * PS + 16 + 8, 1); // a meta page
    assert_eq!(
        corrupt(img, s.branch),
        Damage::PageOutOfRange {
            id: 1,
            high_water_mark: s.hwm
        }
    );
    // The root page named by the meta: the error names the meta slot.
    let mut img = s.img.clone();
    put_u64(&mut img, PS + 16 + 16, s.hwm);
    common::reseal_metas(&mut img, PS);
    assert!(matches!(corrupt(img, 1), Damage::PageOutOfRange { .. }));
}

#[test]
fn wrong_header_id() {
    let s = sample();
    let mut img = s.img.clone();
    let leaf = s.leaves[1];
    put_u64(&mut img, leaf as usize * PS, leaf + 1);
    assert_eq!(
        corrupt(img, leaf),
        Damage::WrongHeaderId { found: leaf + 1 }
    );
}

#[test]
fn bad_flags() {
    let s = sample();
    for flags in [0x04u16, 0x10, 0x03, 0] {
        let mut img = s.img.clone();
        put_u16(&mut img, s.leaves[0] as usize * PS + 8, flags);
        assert!(
            matches!(corrupt(img, s.leaves[0]), Damage::BadFlags { flags: f, .. } if f == flags)
        );
    }
    let mut img = s.img.clone();
    put_u16(&mut img, s.branch as usize * PS + 10, 0);
    assert_eq!(corrupt(img, s.branch), Damage::EmptyBranch);
}

#[test]
fn element_spans_outside_the_page() {
    let s = sample();
    let leaf = s.leaves[0] as usize * PS;
    let mut img = s.img.clone();
    put_u16(&mut img, leaf + 10, 300); // 300 elements of 16 bytes > 4096
    assert_eq!(
        corrupt(img, s.leaves[0]),
        Damage::ElementsOutsidePage {
            count: 300,
            span: PS
        }
    );
    let mut img = s.img.clone();
    put_u32(&mut img, leaf + 16 + 16 * 2 + 12, 5000); // element 2's vsize
    assert!(matches!(
        corrupt(img, s.leaves[0]),
        Damage::DataOutsidePage {
            index: 2,
            what: "value",
            ..
        }
    ));
    let mut img = s.img.clone();
    put_u32(&mut img, leaf + 16 + 4, u32::MAX); // element 0's pos
    assert!(matches!(
        corrupt(img, s.leaves[0]),
        Damage::DataOutsidePage {
            index: 0,
            what: "key",
            ..
        }
    ));
    let mut img = s.img.clone();
    put_u32(&mut img, s.branch as usize * PS + 16 + 4, 70_000); // branch key size
    assert!(matches!(
        corrupt(img, s.branch),
        Damage::DataOutsidePage {
            index: 0,
            what: "key",
            ..
        }
    ));
}

#[test]
fn keys_out_of_order() {
    let s = sample();
    // Point element 1's key at element 0's key: a duplicate.
    let leaf = s.leaves[0] as usize * PS;
    let mut img = s.img.clone();
    let pos0 = u32::from_le_bytes(img[leaf + 16 + 4..leaf + 16 + 8].try_into().unwrap());
    put_u32(&mut img, leaf + 32 + 4, pos0 - 16); // relative to element 1
    put_u32(&mut img, leaf + 32 + 12, 0);
    assert_eq!(corrupt(img, s.leaves[0]), Damage::KeyOrder { index: 1 });
    // Swap two children of the branch: the second leaf's keys now precede.
    let mut img = s.img.clone();
    let b = s.branch as usize * PS;
    put_u64(&mut img, b + 16 + 8, s.leaves[1]);
    put_u64(&mut img, b + 32 + 8, s.leaves[0]);
    assert!(matches!(
        corrupt(img, s.branch),
        Damage::KeyOrder { index: 1 }
    ));
}

#[test]
fn cycles_and_shared_pages() {
    let s = sample();
    let b = s.branch as usize * PS;
    // A branch pointing at itself.
    let mut img = s.img.clone();
    put_u64(&mut img, b + 16 + 8, s.branch);
    assert_eq!(corrupt(img, s.branch), Damage::ReachedTwice);
    // A branch pointing at an ancestor (the root leaf holding bucket "b").
    let mut img = s.img.clone();
    put_u64(&mut img, b + 16 + 16 + 8, s.root);
    assert_eq!(corrupt(img, s.root), Damage::ReachedTwice);
    // Two elements sharing a child.
    let mut img = s.img.clone();
    put_u64(&mut img, b + 16 + 16 + 8, s.leaves[0]);
    assert_eq!(corrupt(img, s.leaves[0]), Damage::ReachedTwice);
}

#[test]
fn inline_bucket_value_too_short() {
    let s = sample();
    let root = s.root as usize * PS;
    // Root leaf: element 0 = "b" (paged), element 1 = "small" (inline).
    let db = Db::from_bytes(s.img.clone(), NAME).unwrap();
    assert!(db.bucket("small").unwrap().is_inline());
    let mut img = s.img.clone();
    put_u32(&mut img, root + 32 + 12, 20);
    assert_eq!(
        corrupt(img, s.root),
        Damage::InlineTooShort { index: 1, len: 20 }
    );
    let mut img = s.img.clone();
    put_u32(&mut img, root + 32 + 12, 8);
    assert_eq!(
        corrupt(img, s.root),
        Damage::BucketValueTooShort { index: 1, len: 8 }
    );
    // Damage inside the inline page names the bucket's element.
    let mut img = s.img.clone();
    let pos = u32::from_le_bytes(img[root + 32 + 4..root + 32 + 8].try_into().unwrap()) as usize;
    let value = root + 32 + pos + "small".len();
    put_u16(&mut img, value + 16 + 8, 0x01);
    let d = corrupt(img, s.root);
    assert!(
        matches!(&d, Damage::InInlineBucket { index: 1, inner } if matches!(**inner, Damage::BadFlags { flags: 1, .. })),
        "{d}"
    );
    assert!(
        d.to_string()
            .starts_with("inline bucket at element 1: page flags 0x0001"),
        "{d}"
    );
}

#[test]
fn overflow_running_past_the_file() {
    let s = sample();
    let mut img = s.img.clone();
    put_u32(&mut img, s.leaves[0] as usize * PS + 12, 1000);
    assert_eq!(
        corrupt(img, s.leaves[0]),
        Damage::OverflowOutOfRange {
            overflow: 1000,
            high_water_mark: s.hwm
        }
    );
    let mut img = s.img.clone();
    put_u32(&mut img, s.leaves[0] as usize * PS + 12, u32::MAX);
    assert!(matches!(
        corrupt(img, s.leaves[0]),
        Damage::OverflowOutOfRange { .. }
    ));
    // An overflow run that swallows the next leaf: that leaf is then reached twice.
    let mut img = s.img.clone();
    put_u32(&mut img, s.leaves[0] as usize * PS + 12, 1);
    assert_eq!(corrupt(img, s.leaves[1]), Damage::ReachedTwice);
}

#[test]
fn nesting_is_bounded() {
    let mut t = Tree::new();
    let mut b = t.bucket("n");
    for _ in 0..300 {
        b = b.bucket("n");
    }
    b.put("k", "v");
    let img = build::image(&t, &Options::default()).unwrap();
    let err = Db::from_bytes(img, NAME).unwrap_err();
    assert!(
        matches!(err.damage(), Some(Damage::TooDeep { depth: 256 })),
        "{err}"
    );
}

#[test]
fn freelist_damage_is_found_by_check() {
    let s = sample();
    // The freelist is page 2 (empty here); list a reachable page in it.
    let mut img = s.img.clone();
    put_u16(&mut img, 2 * PS + 10, 2);
    put_u64(&mut img, 2 * PS + 16, s.leaves[0]);
    put_u64(&mut img, 2 * PS + 24, s.hwm + 1);
    let db = Db::from_bytes(img.clone(), NAME).expect("reading ignores the freelist");
    let err = db.check().unwrap_err();
    assert_eq!(
        (err.page(), err.damage()),
        (Some(2), Some(&Damage::FreeButReachable { id: s.leaves[0] }))
    );
    put_u64(&mut img, 2 * PS + 16, 5_000);
    let err = Db::from_bytes(img.clone(), NAME)
        .unwrap()
        .check()
        .unwrap_err();
    assert_eq!(err.damage(), Some(&Damage::FreeIdOutOfRange { id: 5_000 }));
    // The 0xFFFF escape with a count past the page.
    put_u16(&mut img, 2 * PS + 10, 0xFFFF);
    put_u64(&mut img, 2 * PS + 16, 1 << 40);
    let err = Db::from_bytes(img, NAME).unwrap().check().unwrap_err();
    assert!(
        matches!(
            err.damage(),
            Some(Damage::DataOutsidePage {
                what: "freelist ids",
                ..
            })
        ),
        "{err}"
    );
}

#[test]
fn unreachable_pages_are_reported_as_leaked() {
    let s = sample();
    let mut img = s.img.clone();
    img.extend(vec![0u8; 2 * PS]);
    for off in [16usize, PS + 16] {
        put_u64(&mut img, off + 40, s.hwm + 2);
    }
    common::reseal_metas(&mut img, PS);
    let r = Db::from_bytes(img, NAME).unwrap().check().unwrap();
    assert_eq!(r.leaked, vec![s.hwm, s.hwm + 1]);
}

#[test]
fn open_reports_damage_of_an_unchanging_file_and_io_errors_by_name() {
    let s = sample();
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("bad.db");
    let mut img = s.img.clone();
    put_u64(&mut img, s.leaves[1] as usize * PS, 99);
    std::fs::write(&path, img).unwrap();
    let started = std::time::Instant::now();
    let err = Db::open(&path).unwrap_err();
    assert!(
        started.elapsed() < std::time::Duration::from_secs(2),
        "no long retry for a stable file"
    );
    assert_eq!(
        (err.page(), err.damage()),
        (
            Some(s.leaves[1]),
            Some(&Damage::WrongHeaderId { found: 99 })
        )
    );
    assert!(
        err.to_string()
            .starts_with(&format!("{}: page {}:", path.display(), s.leaves[1])),
        "{err}"
    );
    let missing = dir.path().join("missing.db");
    let err = Db::open(&missing).unwrap_err();
    assert!(
        matches!(err, Error::Io { .. }) && err.file() == missing,
        "{err}"
    );
}
