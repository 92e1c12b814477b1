//! A snapshotter's directories (`plugins/snapshots/overlay/overlay.go`,
//! `plugins/snapshots/native/native.go`): `snapshots/<id>` per backend
//! snapshot, `new-*` while a create is in flight, and (native) `rm-<id>`
//! while a removal is. Active snapshots are measured here the way
//! `Usage` measures them; committed ones carry their stored usage and
//! views report 0.

use super::metastore::{self, Backend, SnapKind};
use super::paths::Paths;
use crate::store::fsread::list_dir_opt;
use crate::store::{Anomaly, AnomalyKind};
use rayon::prelude::*;
use serde::Serialize;
use std::collections::BTreeMap;
use std::path::PathBuf;

/// Snapshotters whose on-disk layout dockgc reads.
pub const READ: [&str; 2] = ["overlayfs", "native"];

/// What `ctr snapshots usage` prints for one snapshot: bytes and inodes.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct Usage {
    pub size: u64,
    pub inodes: u64,
}

/// One entry of `snapshots/`.
#[derive(Debug, Clone, Serialize)]
pub struct SnapDir {
    pub is_dir: bool,
    /// overlayfs: `fs/` exists (the layer). Looked at only when the read
    /// asked to (`Options::check_dirs`); otherwise assumed.
    pub has_fs: bool,
}

#[derive(Debug, Clone, Default, Serialize)]
pub struct Snapshotter {
    pub name: String,
    /// `metadata.db` exists.
    pub has_db: bool,
    /// Why `metadata.db` could not be read.
    pub db_error: Option<String>,
    /// Backend snapshots by backend name.
    pub backends: BTreeMap<String, Backend>,
    /// The metastore's id sequence.
    pub sequence: u64,
    /// Entries of `snapshots/` by name.
    pub dirs: BTreeMap<String, SnapDir>,
    /// Usage of active snapshots, walked now, by backend name.
    pub walked: BTreeMap<String, Usage>,
    /// Active snapshots whose walk failed, with the reason.
    pub walk_errors: BTreeMap<String, String>,
}

impl Snapshotter {
    /// `Usage` as the snapshotter answers it: committed ones their stored
    /// values, active ones a walk, views 0 (`overlay.go` `Usage`).
    pub fn usage(&self, backend_name: &str) -> Option<Usage> {
        let b = self.backends.get(backend_name)?;
        match b.kind {
            SnapKind::Committed => Some(Usage {
                size: u64::try_from(b.size.unwrap_or(0)).unwrap_or(0),
                inodes: u64::try_from(b.inodes.unwrap_or(0)).unwrap_or(0),
            }),
            SnapKind::Active => self.walked.get(backend_name).copied(),
            SnapKind::View | SnapKind::Unknown => Some(Usage::default()),
        }
    }

    /// Backend name by directory id.
    pub fn by_id(&self) -> BTreeMap<u64, &str> {
        self.backends
            .iter()
            .map(|(n, b)| (b.id, n.as_str()))
            .collect()
    }
}

pub fn read(
    paths: &Paths,
    name: &str,
    walk_active: bool,
    check_dirs: bool,
) -> (Snapshotter, Vec<Anomaly>) {
    let mut anomalies = Vec::new();
    let mut sn = Snapshotter {
        name: name.to_string(),
        ..Snapshotter::default()
    };
    let db_path = paths.metastore(name);
    sn.has_db = db_path.exists();
    if sn.has_db {
        match bbolt::Db::open(&db_path) {
            Ok(db) => {
                let m = metastore::read(&db);
                sn.backends = m.backends;
                sn.sequence = m.sequence;
                anomalies.extend(m.anomalies);
            }
            Err(e) => sn.db_error = Some(e.to_string()),
        }
    }
    let dir = paths.snapshot_dirs(name);
    match list_dir_opt(&dir) {
        Ok(l) => {
            let listed: Vec<(String, bool)> = l.names.into_iter().zip(l.is_dir).collect();
            let dirs: Vec<(String, SnapDir)> = listed
                .into_par_iter()
                .map(|(n, is_dir)| {
                    let has_fs =
                        is_dir && (!check_dirs || paths.snapshot_dir(name, &n).join("fs").is_dir());
                    (n, SnapDir { is_dir, has_fs })
                })
                .collect();
            sn.dirs.extend(dirs);
        }
        Err(e) => anomalies.push(Anomaly {
            kind: AnomalyKind::Containerd,
            path: dir,
            message: format!("cannot list: {e}"),
        }),
    }
    if walk_active {
        let todo: Vec<(&String, PathBuf)> = sn
            .backends
            .iter()
            .filter(|(_, b)| b.kind == SnapKind::Active)
            .map(|(n, b)| (n, paths.snapshot_data(name, &b.id.to_string())))
            .collect();
        let results: Vec<(String, Result<Usage, String>)> = todo
            .into_par_iter()
            .map(|(n, p)| {
                let r = crate::disk::disk_usage(&p)
                    .map(|(size, inodes)| Usage { size, inodes })
                    .map_err(|e| format!("{}: {e}", p.display()));
                (n.clone(), r)
            })
            .collect();
        for (n, r) in results {
            match r {
                Ok(u) => {
                    sn.walked.insert(n, u);
                }
                Err(e) => {
                    sn.walk_errors.insert(n, e);
                }
            }
        }
    }
    (sn, anomalies)
}
