//! Open (read + validating walk) of a ~100 MB generated database, from memory
//! and from a file in the page cache; plus a full iteration.
//!
//! `cargo bench -p bbolt-ro --bench open`

use std::hint::black_box;
use std::time::Duration;

use bbolt::{Bucket, Db, Entry};
use criterion::{BatchSize, Criterion, Throughput, criterion_group, criterion_main};

mod common;
use common::big_db;

fn walk(b: Bucket<'_>) -> usize {
    b.iter()
        .map(|(k, e)| match e {
            Entry::Value(v) => k.len() + v.len(),
            Entry::Bucket(sub) => walk(sub),
        })
        .sum()
}

fn bench(c: &mut Criterion) {
    let img = big_db();
    let len = img.len() as u64;
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("big.db");
    std::fs::write(&path, &img).unwrap();
    let stats = Db::open(&path).unwrap().stats();
    eprintln!("database: {:.1} MB, {stats:?}", len as f64 / 1e6);

    let mut g = c.benchmark_group("open");
    g.throughput(Throughput::Bytes(len));
    g.sample_size(20);
    g.measurement_time(Duration::from_secs(8));
    g.bench_function("from_bytes (in memory)", |b| {
        b.iter_batched(
            || img.clone(),
            |bytes| Db::from_bytes(bytes, "big.db").unwrap(),
            BatchSize::LargeInput,
        )
    });
    g.bench_function("open (warm file)", |b| b.iter(|| Db::open(&path).unwrap()));
    let db = Db::from_bytes(img.clone(), "big.db").unwrap();
    g.bench_function("iterate every entry (after open)", |b| {
        b.iter(|| black_box(walk(db.root())))
    });
    g.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
