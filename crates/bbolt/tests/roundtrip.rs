//! Writer → reader round trips: fixed shapes that exercise each page kind,
//! and random trees (proptest).

use std::collections::BTreeMap;

use bbolt::build::{self, Node, Options, Tree};
use bbolt::{Bucket, Db, Entry};
use proptest::prelude::*;

/// Reads a bucket back into the writer's tree type.
fn read_tree(b: Bucket<'_>) -> Tree {
    let mut t = Tree {
        sequence: b.sequence(),
        entries: BTreeMap::new(),
    };
    let mut prev: Option<Vec<u8>> = None;
    for (k, e) in b.iter() {
        assert!(prev.as_deref().is_none_or(|p| p < k), "keys out of order");
        prev = Some(k.to_vec());
        let node = match e {
            Entry::Value(v) => Node::Value(v.to_vec()),
            Entry::Bucket(sub) => Node::Bucket(read_tree(sub)),
        };
        t.entries.insert(k.to_vec(), node);
    }
    t
}

/// Every key is found by point lookup too, and `iter_from` starts right.
fn check_lookups(b: Bucket<'_>, t: &Tree) {
    for (k, n) in &t.entries {
        match (n, b.entry(k)) {
            (Node::Value(v), Some(Entry::Value(got))) => assert_eq!(got, &v[..]),
            (Node::Bucket(sub), Some(Entry::Bucket(got))) => {
                assert_eq!(got.sequence(), sub.sequence);
                check_lookups(got, sub);
            }
            (_, got) => panic!("key {k:?}: got {got:?}"),
        }
        let first = b.iter_from(k).next().map(|(key, _)| key.to_vec());
        assert_eq!(first.as_deref(), Some(&k[..]));
        let mut after = k.clone();
        after.push(0);
        let want = t
            .entries
            .range(after.clone()..)
            .next()
            .map(|(key, _)| key.clone());
        assert_eq!(
            b.iter_from(&after).next().map(|(key, _)| key.to_vec()),
            want
        );
        assert!(b.get(&after).is_none() || t.entries.contains_key(&after));
    }
}

fn roundtrip(root: &Tree, opts: &Options) -> Db {
    let image = build::image(root, opts).expect("image");
    assert_eq!(image.len() % opts.page_size as usize, 0);
    let db = Db::from_bytes(image, "roundtrip.db").expect("reads back");
    assert_eq!(db.txid(), opts.txid);
    assert_eq!(db.page_size(), opts.page_size);
    assert_eq!(&read_tree(db.root()), root);
    check_lookups(db.root(), root);
    let report = db.check().expect("check");
    assert!(report.leaked.is_empty(), "leaked pages {:?}", report.leaked);
    assert_eq!(report.free, opts.first_page - 2);
    assert_eq!(
        report.pages,
        report.reachable + report.free + report.freelist_pages + 2
    );
    db
}

#[test]
fn small_buckets_are_inline_and_big_ones_paged() {
    let mut root = Tree::new();
    root.bucket("small")
        .set_sequence(7)
        .put("a", "1")
        .put("b", "");
    root.bucket("empty");
    let big = root.bucket("big");
    for i in 0..2000u32 {
        big.put(format!("key-{i:05}"), format!("value {i}"));
    }
    big.bucket("nested").put("x", vec![7u8; 20_000]);
    let db = roundtrip(&root, &Options::default());
    let s = db.stats();
    assert_eq!(s.buckets, 4);
    assert_eq!(
        s.inline_buckets, 2,
        "small and empty are inline; big (nested) and nested (20 KB value) are not"
    );
    assert!(db.bucket("small").unwrap().is_inline());
    assert!(db.bucket("empty").unwrap().is_inline());
    assert_eq!(db.bucket("empty").unwrap().iter().count(), 0);
    assert!(!db.bucket("big").unwrap().is_inline());
    assert!(s.branch_pages >= 1, "2000 keys need a branch page: {s:?}");
    assert!(
        s.overflow_pages >= 4,
        "a 20 KB value needs overflow pages: {s:?}"
    );
    assert_eq!(db.bucket("small").unwrap().sequence(), 7);
    assert_eq!(db.bucket("small").unwrap().get("b"), Some(&b""[..]));
    assert_eq!(
        db.bucket_path(["big", "nested"])
            .unwrap()
            .get("x")
            .map(<[u8]>::len),
        Some(20_000)
    );
    assert!(db.bucket_path(["big", "missing"]).is_none());
    assert!(
        db.bucket("big").unwrap().bucket("key-00001").is_none(),
        "a value is not a bucket"
    );
    assert!(
        db.bucket("big").unwrap().get("nested").is_none(),
        "a bucket is not a value"
    );
}

#[test]
fn deep_trees_need_several_branch_levels() {
    let mut root = Tree::new();
    let b = root.bucket("b");
    for i in 0..60_000u32 {
        b.put(
            format!("{i:08}-{}", "k".repeat((i % 50) as usize)),
            i.to_le_bytes().to_vec(),
        );
    }
    let db = roundtrip(
        &root,
        &Options {
            page_size: 1024,
            txid: 9,
            first_page: 5,
        },
    );
    assert!(db.stats().max_depth >= 4, "{:?}", db.stats());
}

#[test]
fn empty_root_and_escaped_freelist_count() {
    let db = roundtrip(
        &Tree::new(),
        &Options {
            page_size: 4096,
            txid: 2,
            first_page: 70_000,
        },
    );
    assert_eq!(db.root().iter().count(), 0);
    assert_eq!(db.check().unwrap().free, 69_998);
}

#[test]
fn writer_refuses_what_bbolt_cannot_store() {
    let mut root = Tree::new();
    root.put("top", "value");
    assert!(matches!(
        build::image(&root, &Options::default()),
        Err(build::BuildError::TopLevelValue { .. })
    ));
    let mut root = Tree::new();
    root.bucket("b").put("", "v");
    assert_eq!(
        build::image(&root, &Options::default()),
        Err(build::BuildError::EmptyKey)
    );
    let mut root = Tree::new();
    root.bucket("b").put(vec![1u8; build::MAX_KEY + 1], "v");
    assert!(matches!(
        build::image(&root, &Options::default()),
        Err(build::BuildError::KeyTooLarge { .. })
    ));
}

fn key() -> impl Strategy<Value = Vec<u8>> {
    prop_oneof![
        4 => prop::collection::vec(any::<u8>(), 1..12),
        1 => prop::collection::vec(any::<u8>(), 100..600),
    ]
}

fn value() -> impl Strategy<Value = Vec<u8>> {
    prop_oneof![
        6 => prop::collection::vec(any::<u8>(), 0..40),
        1 => prop::collection::vec(any::<u8>(), 0..3000),
        1 => (1000usize..20_000).prop_map(|n| (0..n).map(|i| (i % 251) as u8).collect()),
    ]
}

fn tree() -> impl Strategy<Value = Tree> {
    let leaf = (
        any::<u64>(),
        prop::collection::btree_map(key(), value().prop_map(Node::Value), 0..40),
    )
        .prop_map(|(sequence, entries)| Tree { sequence, entries });
    leaf.prop_recursive(3, 64, 8, |inner| {
        (
            any::<u64>(),
            prop::collection::btree_map(
                key(),
                prop_oneof![3 => value().prop_map(Node::Value), 1 => inner.prop_map(Node::Bucket)],
                0..12,
            ),
        )
            .prop_map(|(sequence, entries)| Tree { sequence, entries })
    })
}

fn root_tree() -> impl Strategy<Value = Tree> {
    (
        any::<u64>(),
        prop::collection::btree_map(key(), tree().prop_map(Node::Bucket), 0..4),
    )
        .prop_map(|(sequence, entries)| Tree { sequence, entries })
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 64, ..ProptestConfig::default() })]

    #[test]
    fn random_trees_read_back_equal(
        root in root_tree(),
        page_size in prop::sample::select(vec![1024u32, 4096, 16384]),
        txid in 1u64..1000,
        first_page in 2u64..6,
    ) {
        roundtrip(&root, &Options { page_size, txid, first_page });
    }
}
