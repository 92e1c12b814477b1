//! A writer keeps committing new versions of a file while `Db::open` reads
//! it: every open must give one consistent version or `Error::Unstable`.

use std::fs::{self, File, OpenOptions};
use std::os::unix::fs::FileExt;
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use bbolt::build::{Options, Tree, image};
use bbolt::{Db, Error, Retry};

const PS: usize = 4096;
const KEYS: u32 = 600;
const VERSIONS: u64 = 400;

/// Version `txid` of the file: every value says which version it belongs
/// to, so a mix of two versions cannot pass `consistent`.
fn version(txid: u64) -> Tree {
    let mut root = Tree::new();
    let g = root.bucket("gen");
    g.set_sequence(txid).put("txid", txid.to_string());
    for i in 0..KEYS {
        g.put(
            format!("key-{i:05}"),
            format!("{txid}:{i}:{}", "p".repeat((i % 40) as usize)),
        );
    }
    root.bucket("side").put("txid", txid.to_string());
    root
}

fn consistent(db: &Db) -> Result<(), String> {
    let t = db.txid();
    let g = db.bucket("gen").ok_or("no gen")?;
    let want = t.to_string();
    if g.sequence() != t || g.get("txid") != Some(want.as_bytes()) {
        return Err(format!("txid {t}: gen says {:?}", g.get("txid")));
    }
    let mut n = 0;
    for (k, v) in g.values().filter(|(k, _)| k.starts_with(b"key-")) {
        let v = std::str::from_utf8(v).map_err(|e| e.to_string())?;
        if !v.starts_with(&format!("{t}:")) {
            return Err(format!("txid {t}: {} = {v}", String::from_utf8_lossy(k)));
        }
        n += 1;
    }
    let side = db.bucket("side").and_then(|b| b.get("txid"));
    if n != KEYS || side != Some(want.as_bytes()) {
        return Err(format!("txid {t}: {n} keys, side {side:?}"));
    }
    Ok(())
}

/// Versions alternate between two page regions, as bbolt's copy-on-write
/// does: version T never overwrites the pages of T-1, which its meta slot
/// still points to until T+1 is written.
struct Layout {
    region: u64,
}

impl Layout {
    fn new() -> Layout {
        let pages = image(&version(1), &Options::default()).unwrap().len() / PS;
        Layout {
            region: pages as u64 + 4,
        }
    }
    fn image(&self, txid: u64) -> Vec<u8> {
        let first_page = 2 + (txid % 2) * self.region;
        let mut img = image(
            &version(txid),
            &Options {
                txid,
                first_page,
                ..Options::default()
            },
        )
        .unwrap();
        img.resize((2 + 2 * self.region) as usize * PS, 0);
        img
    }
    fn first_page(&self, txid: u64) -> usize {
        (2 + (txid % 2) * self.region) as usize
    }
}

/// Writes version `txid` into the file in place: its pages, then its meta
/// slot (bbolt's commit order, without the fsyncs).
fn commit_in_place(f: &File, layout: &Layout, txid: u64, img: &[u8]) {
    let hwm = u64::from_le_bytes(
        img[(txid % 2) as usize * PS + 56..][..8]
            .try_into()
            .unwrap(),
    );
    let start = layout.first_page(txid) * PS;
    let end = hwm as usize * PS;
    f.write_all_at(&img[start..end], start as u64).unwrap();
    let slot = (txid % 2) as usize * PS;
    f.write_all_at(&img[slot..slot + PS], slot as u64).unwrap();
}

fn commit_by_rename(path: &Path, img: &[u8]) {
    let tmp = path.with_extension("tmp");
    fs::write(&tmp, img).unwrap();
    fs::rename(&tmp, path).unwrap();
}

fn run(in_place: bool) {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("live.db");
    let layout = Arc::new(Layout::new());
    fs::write(&path, layout.image(1)).unwrap();
    // Made up front so that commits come fast, as a busy daemon's do.
    let versions: Arc<Vec<Vec<u8>>> = Arc::new((2..=VERSIONS).map(|t| layout.image(t)).collect());
    let done = Arc::new(AtomicBool::new(false));
    let writer = {
        let (done, layout, path, versions) =
            (done.clone(), layout.clone(), path.clone(), versions.clone());
        std::thread::spawn(move || {
            let f = OpenOptions::new().write(true).open(&path).unwrap();
            for (i, img) in versions.iter().enumerate() {
                let txid = i as u64 + 2;
                if in_place {
                    commit_in_place(&f, &layout, txid, img);
                } else {
                    commit_by_rename(&path, img);
                }
                std::thread::sleep(Duration::from_micros(100 * (i % 5) as u64));
            }
            done.store(true, Ordering::Relaxed);
        })
    };
    let (mut ok, mut unstable, mut txids) = (0, 0, std::collections::BTreeSet::new());
    let mut i = 0u32;
    while !done.load(Ordering::Relaxed) {
        i += 1;
        // Half the opens get no retry, to see that changes are detected.
        let attempts = if i.is_multiple_of(2) { 1 } else { 4 };
        match Db::open_with(
            &path,
            Retry {
                attempts,
                pause: Duration::from_micros(300),
            },
        ) {
            Ok(db) => {
                consistent(&db).unwrap_or_else(|e| panic!("inconsistent snapshot accepted: {e}"));
                txids.insert(db.txid());
                ok += 1;
            }
            Err(Error::Unstable { .. }) => unstable += 1,
            Err(e) => panic!("open failed with {e}"),
        }
    }
    writer.join().unwrap();
    eprintln!(
        "in_place={in_place}: {ok} consistent ({} versions), {unstable} unstable",
        txids.len()
    );
    assert!(ok > 0 && txids.len() > 1, "the reader saw several versions");
    if in_place {
        assert!(unstable > 0, "commits during a read are detected");
    }
    // Once the writer stops, the file opens at its last version.
    let db = Db::open(&path).unwrap();
    assert_eq!(db.txid(), VERSIONS);
    consistent(&db).unwrap();
}

#[test]
fn open_under_an_in_place_writer_is_consistent_or_unstable() {
    run(true);
}

#[test]
fn open_under_a_renaming_writer_is_consistent() {
    run(false);
}

#[test]
fn in_place_layout_is_sound_at_each_step() {
    // Each intermediate state of an in-place commit is itself a valid file:
    // before the meta write it still reads as the previous version.
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("step.db");
    let layout = Layout::new();
    fs::write(&path, layout.image(1)).unwrap();
    let f = OpenOptions::new().write(true).open(&path).unwrap();
    for txid in 2..6 {
        let img = layout.image(txid);
        let start = layout.first_page(txid) * PS;
        let hwm = Db::from_bytes(img.clone(), "x")
            .unwrap()
            .meta()
            .high_water_mark as usize;
        f.write_all_at(&img[start..hwm * PS], start as u64).unwrap();
        let db = Db::open(&path).unwrap();
        assert_eq!(db.txid(), txid - 1);
        consistent(&db).unwrap();
        let slot = (txid % 2) as usize * PS;
        f.write_all_at(&img[slot..slot + PS], slot as u64).unwrap();
        let db = Db::open(&path).unwrap();
        assert_eq!(db.txid(), txid);
        consistent(&db).unwrap();
    }
}
