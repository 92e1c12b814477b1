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
