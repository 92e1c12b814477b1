//! A snapshotter's metastore, `io.containerd.snapshotter.v1.<name>/metadata.db`
//! (`core/snapshots/storage/bolt.go`, `metastore.go`): backend snapshots by
//! their backend name `"<ns>/<seq>/<key>"`, each with the numeric id that
//! names its directory, its kind, its parent's backend name and, once
//! committed, the usage measured at commit.

use super::decode::{Time, uvarint, varint};
use super::meta::{Labels, labels};
use crate::store::{Anomaly, AnomalyKind};
use bbolt::Db;
use serde::Serialize;
use std::collections::BTreeMap;

/// `snapshots.Kind` (`core/snapshots/snapshotter.go`), stored as one byte.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum SnapKind {
    Unknown,
    View,
    Active,
    Committed,
}

impl SnapKind {
    pub fn from_byte(b: u8) -> SnapKind {
        match b {
            1 => SnapKind::View,
            2 => SnapKind::Active,
            3 => SnapKind::Committed,
            _ => SnapKind::Unknown,
        }
    }

    pub fn word(self) -> &'static str {
        match self {
            SnapKind::Unknown => "unknown",
            SnapKind::View => "view",
            SnapKind::Active => "active",
            SnapKind::Committed => "committed",
        }
    }
}

/// `v1/snapshots/<name>`.
#[derive(Debug, Clone, Serialize)]
pub struct Backend {
    pub id: u64,
    pub kind: SnapKind,
    /// The parent's backend name.
    pub parent: Option<String>,
    /// Stored at commit (`CommitActive` → `putUsage`); absent otherwise.
    pub size: Option<i64>,
    pub inodes: Option<i64>,
    pub created: Option<Time>,
    /// Only inherited ones (`FilterInheritedLabels`).
    pub labels: Labels,
}

#[derive(Debug, Default)]
pub struct Metastore {
    pub backends: BTreeMap<String, Backend>,
    /// The sequence of `v1/snapshots`: the last id handed out.
    pub sequence: u64,
    pub anomalies: Vec<Anomaly>,
}

pub fn read(db: &Db) -> Metastore {
    let file = db.file();
    let mut anomalies = Vec::new();
    let mut bad = |what: String| {
        anomalies.push(Anomaly {
            kind: AnomalyKind::Containerd,
            path: file.to_path_buf(),
            message: what,
        })
    };
    let mut backends = BTreeMap::new();
    let Some(sb) = db.bucket_path(["v1", "snapshots"]) else {
        return Metastore::default();
    };
    for (k, b) in sb.buckets() {
        let name = String::from_utf8_lossy(k).into_owned();
        let at = format!("v1/snapshots/{name}");
        let id = match b.get("id").map(uvarint) {
            Some(Ok(id)) => id,
            Some(Err(e)) => {
                bad(format!(
                    "{at}/id: {e}; the snapshotter cannot use this snapshot"
                ));
                continue;
            }
            None => {
                bad(format!(
                    "{at}: no id; the snapshotter cannot use this snapshot"
                ));
                continue;
            }
        };
        let kind = match b.get("kind") {
            Some([k]) => SnapKind::from_byte(*k),
            _ => {
                bad(format!("{at}/kind: not one byte"));
                SnapKind::Unknown
            }
        };
        let mut int = |key: &str| match b.get(key).map(varint) {
            Some(Ok(v)) => Some(v),
            Some(Err(e)) => {
                bad(format!("{at}/{key}: {e}"));
                None
            }
            None => None,
        };
        let (size, inodes) = (int("size"), int("inodes"));
        let created = match b.get("createdat").map(Time::from_go_binary) {
            Some(Ok(t)) => Some(t),
            Some(Err(e)) => {
                bad(format!("{at}/createdat: {e}"));
                None
            }
            None => None,
        };
        backends.insert(
            name,
            Backend {
                id,
                kind,
                parent: b
                    .get("parent")
                    .filter(|p| !p.is_empty())
                    .map(|p| String::from_utf8_lossy(p).into_owned()),
                size,
                inodes,
                created,
                labels: labels(b.bucket("labels")),
            },
        );
    }
    Metastore {
        backends,
        sequence: sb.sequence(),
        anomalies,
    }
}
