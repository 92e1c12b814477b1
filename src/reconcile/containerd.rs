//! `df --disk` of a containerd root: one walk of the whole root (like
//! `du -x -s -B1`), every byte charged to one category, so the categories
//! add up to `du -s -B1` of the root.

use super::{Category, DiskUsage, WalkError};
use crate::disk::{Classifier, Progress, walk_allocated};
use crate::holds::Holder;
use crate::holds::containerd::{Analysis, CtrdHolder, ItemKind, OrphanKind};
use crate::reach::{Kind, Node};
use crate::store::Snapshot;
use crate::usage::containerd::Usage;
use std::collections::HashMap;
use std::ffi::{OsStr, OsString};

/// Report categories, in charging priority order (a hard-linked inode is
/// charged to the first that holds a name for it).
pub const CATEGORIES: [&str; 9] = [
    "image-snapshots",
    "container-snapshots",
    "blobs",
    "ingests",
    "other-snapshots",
    "collectable",
    "orphans",
    "metadata",
    "other",
];
const IMAGE_SNAPSHOTS: usize = 0;
const CONTAINER_SNAPSHOTS: usize = 1;
const BLOBS: usize = 2;
const INGESTS: usize = 3;
const OTHER_SNAPSHOTS: usize = 4;
const COLLECTABLE: usize = 5;
const ORPHANS: usize = 6;
const METADATA: usize = 7;
const OTHER: usize = 8;
// Walk states, charged to "other".
const CONTENT_HOME: usize = 9;
const BLOBS_HOME: usize = 10;
const SHA_HOME: usize = 11;
const INGEST_HOME: usize = 12;
/// Per snapshotter: its plugin dir, then its `snapshots/` (two states each).
const SNAPSHOTTER_BASE: usize = 13;

struct RootClassifier {
    content: OsString,
    metadata: OsString,
    mounts: OsString,
    /// Plugin dir name → snapshotter index.
    snapshotters: HashMap<OsString, usize>,
    blobs: HashMap<OsString, usize>,
    ingests: HashMap<OsString, usize>,
    /// Per snapshotter: dir name → category.
    dirs: Vec<HashMap<OsString, usize>>,
}

impl Classifier for RootClassifier {
    fn root_category(&self) -> usize {
        OTHER
    }
    fn categories(&self) -> usize {
        SNAPSHOTTER_BASE + 2 * self.dirs.len()
    }
    fn child_category(&self, parent: usize, depth: usize, name: &OsStr, _is_dir: bool) -> usize {
        match (depth, parent) {
            (1, _) if name == self.content => CONTENT_HOME,
            (1, _) if name == self.metadata || name == self.mounts => METADATA,
            (1, _) => self
                .snapshotters
                .get(name)
                .map_or(OTHER, |i| SNAPSHOTTER_BASE + 2 * i),
            (2, CONTENT_HOME) if name == "blobs" => BLOBS_HOME,
            (2, CONTENT_HOME) if name == "ingest" => INGEST_HOME,
            (3, BLOBS_HOME) if name == "sha256" => SHA_HOME,
            (4, SHA_HOME) => self.blobs.get(name).copied().unwrap_or(ORPHANS),
            (3, INGEST_HOME) => self.ingests.get(name).copied().unwrap_or(INGESTS),
            (2, p) if p >= SNAPSHOTTER_BASE && (p - SNAPSHOTTER_BASE).is_multiple_of(2) => {
                if name == "snapshots" {
                    p + 1
                } else if name == "metadata.db" {
                    METADATA
                } else {
                    OTHER
                }
            }
            (3, p) if p > SNAPSHOTTER_BASE && (p - SNAPSHOTTER_BASE) % 2 == 1 => {
                let i = (p - SNAPSHOTTER_BASE) / 2;
                self.dirs[i].get(name).copied().unwrap_or(ORPHANS)
            }
            (_, p) if p >= CONTENT_HOME => OTHER,
            (_, p) => p,
        }
    }
}

/// Charges the blob files and ingest dirs that are collectable or orphans to
/// those categories; returns the collectable snapshot dirs by (snapshotter,
/// dir).
fn leftovers(
    u: &Usage,
    blobs: &mut HashMap<OsString, usize>,
    ingests: &mut HashMap<OsString, usize>,
) -> HashMap<(String, String), usize> {
    let name_of = |p: &std::path::Path| OsString::from(p.file_name().unwrap_or_default());
    let mut collectable_dirs: HashMap<(String, String), usize> = HashMap::new();
    for i in &u.collectable {
        match i.kind {
            ItemKind::Blob => {
                blobs.insert(name_of(&i.path), COLLECTABLE);
            }
            ItemKind::IngestDir => {
                ingests.insert(name_of(&i.path), COLLECTABLE);
            }
            ItemKind::SnapshotDir => {
                let sn = i
                    .path
                    .parent()
                    .and_then(|p| p.parent())
                    .and_then(|p| p.file_name())
                    .map(|n| n.to_string_lossy().to_string())
                    .unwrap_or_default();
                let sn = sn
                    .strip_prefix(crate::store::containerd::paths::SNAPSHOTTER_PREFIX)
                    .unwrap_or(&sn)
                    .to_string();
                collectable_dirs.insert((sn, i.id.clone()), COLLECTABLE);
            }
            _ => {}
        }
    }
    for o in &u.orphans {
        match o.kind {
            OrphanKind::BlobFile => {
                blobs.insert(name_of(&o.path), ORPHANS);
            }
            OrphanKind::IngestDir | OrphanKind::IngestWithoutRef => {
                ingests.insert(name_of(&o.path), ORPHANS);
            }
            _ => {}
        }
    }
    collectable_dirs
}

/// The category of a snapshot dir held by these meta.db snapshot nodes:
/// an image's, a container's (a Docker container's lease included), another
/// holder's, or an orphan's when no record names it.
fn snapshot_category(
    a: &Analysis<'_>,
    nodes: &[Node],
    docker_ids: &std::collections::HashSet<&str>,
) -> usize {
    let holders: Vec<&Holder> = nodes
        .iter()
        .flat_map(|n| a.holders_of(*n))
        .map(|h| a.holds.holder(h))
        .collect();
    let is = |f: &dyn Fn(&CtrdHolder) -> bool| {
        holders
            .iter()
            .any(|h| matches!(h, Holder::Containerd(c) if f(c)))
    };
    if nodes.is_empty() {
        ORPHANS
    } else if is(&|c| matches!(c, CtrdHolder::Image { .. })) {
        IMAGE_SNAPSHOTS
    } else if is(&|c| match c {
        CtrdHolder::Container { .. } => true,
        CtrdHolder::Lease { id, .. } => docker_ids.contains(id.as_str()),
        _ => false,
    }) {
        CONTAINER_SNAPSHOTS
    } else {
        OTHER_SNAPSHOTS
    }
}

/// Walks the containerd root and charges every byte to one category.
pub fn disk_usage(snap: &Snapshot, u: &Usage, progress: &Progress) -> std::io::Result<DiskUsage> {
    let Some(s) = snap.containerd() else {
        return Err(std::io::Error::other("not a containerd snapshot"));
    };
    let a = Analysis::new(s);
    let e = &a.edges;
    let paths = &s.paths;
    let name_of = |p: &std::path::Path| OsString::from(p.file_name().unwrap_or_default());
    let mut blobs: HashMap<OsString, usize> = s
        .blobs
        .keys()
        .map(|d| (OsString::from(d.hex()), BLOBS))
        .collect();
    let mut ingests: HashMap<OsString, usize> = HashMap::new();
    let collectable_dirs = leftovers(u, &mut blobs, &mut ingests);
    // Which backend names each snapshotter's records hold, with their nodes.
    let mut by_backend: HashMap<(&str, &str), Vec<Node>> = HashMap::new();
    for (key, (ns, sn, k)) in e.snapshots.iter().enumerate() {
        let rec = &s.namespaces[e.namespaces[*ns as usize]].snapshots[*sn][*k];
        by_backend
            .entry((sn, rec.name.as_str()))
            .or_default()
            .push(Node::new(Kind::Snapshot, key as u32));
    }
    let docker_ids: std::collections::HashSet<&str> =
        s.docker_containers.iter().map(|c| c.id.as_str()).collect();
    let mut snapshotters = HashMap::new();
    let mut dirs = Vec::new();
    for (i, (sn_name, sn)) in s.snapshotters.iter().enumerate() {
        snapshotters.insert(name_of(&paths.snapshotter(sn_name)), i);
        let mut m: HashMap<OsString, usize> = HashMap::new();
        for (bname, b) in &sn.backends {
            let dir = b.id.to_string();
            let cat = if let Some(c) = collectable_dirs.get(&(sn_name.clone(), dir.clone())) {
                *c
            } else {
                let nodes = by_backend
                    .get(&(sn_name.as_str(), bname.as_str()))
                    .map_or(&[][..], Vec::as_slice);
                snapshot_category(&a, nodes, &docker_ids)
            };
            m.insert(OsString::from(dir), cat);
        }
        dirs.push(m);
    }
    let classifier = RootClassifier {
        content: name_of(&paths.content()),
        metadata: name_of(&paths.metadata_dir()),
        mounts: OsString::from(
            paths
                .mount_manager_db()
                .parent()
                .and_then(|p| p.file_name())
                .unwrap_or_default(),
        ),
        snapshotters,
        blobs,
        ingests,
        dirs,
    };
    let t = walk_allocated(paths.root(), &classifier, progress)?;
    let mut bytes = t.by_category.clone();
    let folded: u64 = bytes.drain(CATEGORIES.len()..).sum();
    bytes[OTHER] += folded;
    Ok(DiskUsage {
        total_bytes: t.total_bytes,
        entries: t.entries,
        categories: CATEGORIES
            .iter()
            .zip(bytes)
            .map(|(name, bytes)| Category { name, bytes })
            .collect(),
        errors: t
            .errors
            .into_iter()
            .map(|(path, message)| WalkError { path, message })
            .collect(),
        other_filesystems: t.other_fs,
    })
}
