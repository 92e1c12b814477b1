//! The local content store's files (`plugins/content/local/store.go`,
//! `writer.go`): committed blobs under `blobs/<alg>/<hex>` and unfinished
//! writes under `ingest/<sha256(ref)>/`. Sizes and labels live only in
//! meta.db; here are the files as they are.

use super::paths::{INGEST_DATA, INGEST_REF, INGEST_STARTED, INGEST_TOTAL, INGEST_UPDATED, Paths};
use crate::ids::BlobDigest;
use crate::store::fsread::{list_dir_opt, read_opt, read_text_opt};
use crate::store::{Anomaly, AnomalyKind};
use rayon::prelude::*;
use serde::Serialize;
use std::collections::BTreeMap;
use std::fs;
use std::os::unix::fs::MetadataExt;

/// One committed blob file.
#[derive(Debug, Clone, Serialize)]
pub struct BlobFile {
    /// `st_size`: what containerd's `Info` reports for the backend.
    pub size: u64,
    /// `st_blocks * 512`.
    pub allocated: u64,
    pub mode: u32,
}

/// One directory of `ingest/`.
#[derive(Debug, Clone, Serialize)]
pub struct IngestDir {
    /// The backend ref written at start (`"<ns>/<seq>/<ref>"`); `Err` with
    /// the reason when it cannot be read, `Ok(None)` when the file is missing.
    pub backend_ref: Result<Option<String>, String>,
    /// Bytes received so far (the size of `data`).
    pub offset: Option<u64>,
    /// `total`, written only when the expected size was known.
    pub total: Option<u64>,
    pub started_at: Option<String>,
    pub updated_at: Option<String>,
    /// Allocated bytes of the whole directory.
    pub allocated: u64,
}

#[derive(Debug, Default)]
pub struct Content {
    pub blobs: BTreeMap<BlobDigest, BlobFile>,
    pub ingests: BTreeMap<String, IngestDir>,
    pub anomalies: Vec<Anomaly>,
}

fn anomaly(path: std::path::PathBuf, message: String) -> Anomaly {
    Anomaly {
        kind: AnomalyKind::Containerd,
        path,
        message,
    }
}

pub fn read(paths: &Paths) -> Content {
    let (blobs, ingests) = rayon::join(|| read_blobs(paths), || read_ingests(paths));
    let mut anomalies = blobs.1;
    anomalies.extend(ingests.1);
    Content {
        blobs: blobs.0,
        ingests: ingests.0,
        anomalies,
    }
}

fn read_blobs(paths: &Paths) -> (BTreeMap<BlobDigest, BlobFile>, Vec<Anomaly>) {
    let mut anomalies = Vec::new();
    match list_dir_opt(&paths.blobs()) {
        Ok(l) => {
            for n in l.names.iter().filter(|n| *n != "sha256") {
                anomalies.push(anomaly(
                    paths.blobs().join(n),
                    "blobs of an algorithm other than sha256 are not read".into(),
                ));
            }
        }
        Err(e) => anomalies.push(anomaly(paths.blobs(), format!("cannot list: {e}"))),
    }
    let dir = paths.sha256_blobs();
    let names = match list_dir_opt(&dir) {
        Ok(l) => l.names,
        Err(e) => {
            anomalies.push(anomaly(dir, format!("cannot list: {e}")));
            return (BTreeMap::new(), anomalies);
        }
    };
    let stats: Vec<(String, Result<BlobFile, String>)> = names
        .into_par_iter()
        .map(|n| {
            let r = fs::symlink_metadata(dir.join(&n))
                .map_err(|e| e.to_string())
                .and_then(|m| {
                    if m.is_file() {
                        Ok(BlobFile {
                            size: m.len(),
                            allocated: m.blocks() * 512,
                            mode: m.mode() & 0o7777,
                        })
                    } else {
                        Err("not a regular file".into())
                    }
                });
            (n, r)
        })
        .collect();
    let mut blobs = BTreeMap::new();
    for (n, r) in stats {
        match (BlobDigest::from_hex(&n), r) {
            (Some(d), Ok(f)) => {
                blobs.insert(d, f);
            }
            (None, _) => anomalies.push(anomaly(
                dir.join(&n),
                "not a blob name (64 lowercase hex); the content store ignores it".into(),
            )),
            (_, Err(e)) => anomalies.push(anomaly(dir.join(&n), e)),
        }
    }
    (blobs, anomalies)
}

fn read_ingests(paths: &Paths) -> (BTreeMap<String, IngestDir>, Vec<Anomaly>) {
    let root = paths.ingests();
    let names = match list_dir_opt(&root) {
        Ok(l) => l.names,
        Err(e) => {
            return (
                BTreeMap::new(),
                vec![anomaly(root, format!("cannot list: {e}"))],
            );
        }
    };
    let dirs: Vec<(String, IngestDir)> = names
        .into_par_iter()
        .map(|n| {
            let text = |f: &str| {
                read_text_opt(&paths.ingest_file(&n, f))
                    .ok()
                    .flatten()
                    .map(|s| s.trim().to_string())
            };
            let backend_ref = match read_opt(&paths.ingest_file(&n, INGEST_REF)) {
                Ok(Some(b)) => String::from_utf8(b)
                    .map(Some)
                    .map_err(|_| "ref is not UTF-8".to_string()),
                Ok(None) => Ok(None),
                Err(e) => Err(e),
            };
            let offset = fs::symlink_metadata(paths.ingest_file(&n, INGEST_DATA))
                .ok()
                .map(|m| m.len());
            let allocated = crate::disk::allocated_bytes(&paths.ingest(&n));
            let dir = IngestDir {
                backend_ref,
                offset,
                total: text(INGEST_TOTAL).and_then(|t| t.parse().ok()),
                started_at: text(INGEST_STARTED),
                updated_at: text(INGEST_UPDATED),
                allocated,
            };
            (n, dir)
        })
        .collect();
    (dirs.into_iter().collect(), Vec::new())
}
