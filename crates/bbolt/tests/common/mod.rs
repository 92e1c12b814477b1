//! Shared by the integration tests: loading the committed fixtures.
#![allow(dead_code)]

use std::io::Read;
use std::path::PathBuf;

use bbolt::Db;

pub fn fixture_path(rel: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures")
        .join(rel)
}

/// A gzipped fixture, decompressed.
pub fn fixture_bytes(rel: &str) -> Vec<u8> {
    let gz = std::fs::read(fixture_path(rel)).unwrap_or_else(|e| panic!("{rel}: {e}"));
    let mut out = Vec::new();
    flate2::read::GzDecoder::new(&gz[..])
        .read_to_end(&mut out)
        .unwrap();
    out
}

pub fn fixture_text(rel: &str) -> String {
    std::fs::read_to_string(fixture_path(rel)).unwrap_or_else(|e| panic!("{rel}: {e}"))
}

pub fn fixture(rel: &str) -> Db {
    Db::from_bytes(fixture_bytes(rel), rel).unwrap_or_else(|e| panic!("{e}"))
}

/// All the Go-written fixtures.
pub const ALL: [&str; 8] = [
    "docker/metadata_v2.db.gz",
    "docker/snapshots.db.gz",
    "docker/cache.db.gz",
    "docker/containerdmeta.db.gz",
    "docker/metadata.db.gz",
    "docker/local-kv.db.gz",
    "containerd/meta.db.gz",
    "containerd/metadata.db.gz",
];

/// FNV-1a 64, to re-seal meta pages a test has edited.
pub fn fnv1a64(bytes: &[u8]) -> u64 {
    bytes.iter().fold(0xcbf2_9ce4_8422_2325, |h, &b| {
        (h ^ u64::from(b)).wrapping_mul(0x100_0000_01b3)
    })
}

/// Recomputes the checksum of the meta page at `off` (if it has room).
pub fn reseal_meta(img: &mut [u8], off: usize) {
    if let Some(m) = img.get_mut(off + 16..off + 80) {
        let sum = fnv1a64(&m[..56]);
        m[56..64].copy_from_slice(&sum.to_le_bytes());
    }
}

/// Both meta slots of an image whose page size is `ps`.
pub fn reseal_metas(img: &mut [u8], ps: usize) {
    reseal_meta(img, 0);
    reseal_meta(img, ps);
}
