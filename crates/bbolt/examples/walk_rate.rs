//! Read + validating page walk rate of `Db::open` on the ~100 MB database of
//! `benches/open.rs`, from a file in the page cache, for
//! `scripts/bench-buildkit.sh`.
//!
//! `cargo run --release -p bbolt-ro --example walk_rate -- DIR [RUNS]`
//!
//! Writes `DIR/big.db`, reads it once (warm cache), checks that the walk
//! reaches every page below the high-water mark that is not free, a meta
//! page or the freelist, then times RUNS rounds of three, interleaved:
//! `Db::open` (the whole file read with `read(2)`, the meta pages re-read,
//! every reachable page walked and validated), the read alone
//! (`std::fs::read`), and the walk alone (`Db::from_bytes` of what that read
//! returned). Prints `key=value` lines: sizes and medians in seconds, and
//! rates in GB/s (10^9 bytes per second of file).

use std::path::PathBuf;
use std::time::Instant;

use bbolt::Db;

#[path = "../benches/common/mod.rs"]
mod common;

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

fn main() {
    let mut args = std::env::args().skip(1);
    let dir = PathBuf::from(args.next().expect("usage: walk_rate DIR [RUNS]"));
    let runs: usize = args.next().map_or(15, |r| r.parse().expect("RUNS"));
    std::fs::create_dir_all(&dir).expect("create DIR");
    let path = dir.join("big.db");
    std::fs::write(&path, common::big_db()).expect("write big.db");
    let len = std::fs::metadata(&path).expect("stat").len();

    // Warm the page cache, and make sure the walk is a full one.
    let _ = std::fs::read(&path).expect("read");
    let db = Db::open(&path).expect("open");
    let stats = db.stats();
    let check = db.check().expect("check");
    let unwalked = check.pages - 2 - check.free - check.freelist_pages - check.reachable;
    assert_eq!(check.reachable, stats.pages);
    assert_eq!(unwalked, 0, "pages the walk did not reach: {check:?}");
    drop(db);

    let (mut open, mut read, mut walk) = (Vec::new(), Vec::new(), Vec::new());
    for _ in 0..runs {
        let t = Instant::now();
        let db = Db::open(&path).expect("open");
        open.push(t.elapsed().as_secs_f64());
        assert_eq!(db.stats().pages, stats.pages);
        drop(db);

        let t = Instant::now();
        let bytes = std::fs::read(&path).expect("read");
        read.push(t.elapsed().as_secs_f64());

        let t = Instant::now();
        let db = Db::from_bytes(bytes, "big.db").expect("walk");
        walk.push(t.elapsed().as_secs_f64());
        drop(db);
    }
    let (open, read, walk) = (median(open), median(read), median(walk));
    let gbps = |s: f64| len as f64 / s / 1e9;
    println!("bytes={len}");
    println!("pages={}", check.pages);
    println!("reachable_pages={}", stats.pages);
    println!("overflow_pages={}", stats.overflow_pages);
    println!("buckets={}", stats.buckets);
    println!("values={}", stats.values);
    println!("runs={runs}");
    println!("open_s={open:.6}");
    println!("read_s={read:.6}");
    println!("walk_s={walk:.6}");
    println!("open_gbps={:.2}", gbps(open));
    println!("read_gbps={:.2}", gbps(read));
    println!("walk_gbps={:.2}", gbps(walk));
}
