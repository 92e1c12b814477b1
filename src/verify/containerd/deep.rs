//! `verify --deep` on a containerd store: sha256 of every blob file against
//! its name, in parallel over both cores (containerd checks a blob's digest
//! only when it commits it: `plugins/content/local/writer.go` `Commit`).

use super::*;
use rayon::prelude::*;
use sha2::{Digest as _, Sha256};
use std::cell::RefCell;
use std::io::Read;
use std::path::Path;
use std::sync::atomic::Ordering;

const BUF: usize = 1 << 20;

thread_local! {
    static BUFFER: RefCell<Vec<u8>> = const { RefCell::new(Vec::new()) };
}

fn hash_file(path: &Path, hashed: &AtomicU64) -> std::io::Result<String> {
    let mut f = std::fs::File::open(path)?;
    // Sequential read-ahead: the kernel doubles its window, which matters
    // on cold caches; an error here only loses the hint.
    let _ = rustix::fs::fadvise(&f, 0, None, rustix::fs::Advice::Sequential);
    let mut h = Sha256::new();
    BUFFER.with_borrow_mut(|buf| {
        if buf.len() < BUF {
            buf.resize(BUF, 0);
        }
        loop {
            let n = f.read(buf)?;
            if n == 0 {
                break;
            }
            h.update(&buf[..n]);
            hashed.fetch_add(n as u64, Ordering::Relaxed);
        }
        Ok(crate::ids::hex(&h.finalize()))
    })
}

/// A blob whose file does not hash to its name: what it hashes to, or why
/// it could not be read.
pub(super) type Mismatch = (BlobDigest, Result<String, String>);

/// sha256 of every blob file, largest first so a big one does not run
/// alone at the end; returns the bytes hashed and the mismatches.
pub(super) fn deep(s: &State, hashed: &AtomicU64) -> (u64, Vec<Mismatch>) {
    let mut todo: Vec<(&BlobDigest, u64)> = s.blobs.iter().map(|(d, f)| (d, f.size)).collect();
    todo.sort_by(|a, b| b.1.cmp(&a.1).then(a.0.cmp(b.0)));
    let before = hashed.load(Ordering::Relaxed);
    let bad: Vec<Mismatch> = todo
        .par_iter()
        .filter_map(|(d, _)| match hash_file(&s.paths.blob(d), hashed) {
            Ok(h) if h == d.hex() => None,
            Ok(h) => Some((**d, Ok(h))),
            Err(e) => Some((**d, Err(e.to_string()))),
        })
        .collect();
    (hashed.load(Ordering::Relaxed) - before, bad)
}
