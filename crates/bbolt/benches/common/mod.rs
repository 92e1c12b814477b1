//! The ~100 MB database the benchmarks read (`benches/open.rs`,
//! `examples/walk_rate.rs`).

use bbolt::build::{Options, Tree, image};

/// Shaped like the files dockgc reads, scaled up: many small inline buckets
/// (BuildKit records), paged nested buckets (containerd namespaces), plain
/// values, and big values in overflow pages. Paged buckets holding a few keys
/// fill a page each, as they do in bbolt.
pub fn big_db() -> Vec<u8> {
    let mut root = Tree::new();
    let records = root.bucket("_main");
    for i in 0..120_000u32 {
        let r = records.bucket(format!("{:025}", u64::from(i) * 7_919));
        r.put(
            "cache.createdAt",
            format!(
                r#"{{"value":{}}}"#,
                1_796_114_004_468_967_233u64 + u64::from(i)
            ),
        );
        r.put(
            "cache.description",
            format!(r#"{{"value":"mount / from exec {i}"}}"#),
        );
        r.put("snapshot.size", format!(r#"{{"value":{}}}"#, i * 13));
        r.put("cache.equalMutable", "");
    }
    let v1 = root.bucket("v1");
    for ns in 0..10u32 {
        let blobs = v1
            .bucket(format!("ns{ns}"))
            .bucket("content")
            .bucket("blob");
        blobs.set_sequence(u64::from(ns));
        for b in 0..1_000u32 {
            let blob = blobs.bucket(format!(
                "sha256:{:064x}",
                u64::from(ns) << 32 | u64::from(b)
            ));
            blob.put("size", vec![0x80, 0x01]);
            blob.put("createdat", vec![1u8; 15]);
            blob.bucket("labels").put(
                "containerd.io/gc.ref.content.l.0",
                format!("sha256:{b:064x}"),
            );
        }
    }
    let large = root.bucket("large");
    for i in 0..2_000u32 {
        large.put(
            format!("blob-{i:06}"),
            vec![(i % 251) as u8; 12_000 + (i as usize % 7) * 1000],
        );
    }
    image(&root, &Options::default()).unwrap()
}
