//! containerd's sweep (`core/metadata/db.go` `GarbageCollect`;
//! `core/metadata/content.go` and `snapshot.go` `garbageCollect`; the
//! snapshotters' `Cleanup`) mirrored over the mark: meta.db records nobody
//! reaches, then the blob files and ingest dirs no record holds when the
//! content store is dirty, then each dirty snapshotter's backend snapshots
//! no record names, leaves first, and every directory without an id.

use super::*;
use crate::ids::BlobDigest;
use crate::store::containerd::Snapshotter;
use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};
use std::path::PathBuf;

/// What the sweep would delete: a record, or a file or directory.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum ItemKind {
    /// meta.db records.
    Lease,
    Image,
    BlobRecord,
    SnapshotRecord,
    IngestRecord,
    /// A snapshotter metastore record.
    Backend,
    /// Files and directories.
    Blob,
    SnapshotDir,
    IngestDir,
}

#[derive(Clone, Debug, Serialize)]
pub struct Item {
    pub kind: ItemKind,
    /// `ns/name` for records, the digest for blobs, the backend name for
    /// backend records, the directory name for dirs.
    pub id: String,
    /// The file or directory that goes (records: the database holding them).
    pub path: PathBuf,
    /// The namespace the item belongs to, when it belongs to one.
    pub namespace: Option<String>,
    /// Bytes it frees: file size for blobs, snapshot usage for snapshot
    /// dirs, allocated bytes for ingest dirs; 0 for records.
    pub bytes: u64,
    pub reason: String,
}

/// Data no record holds (doc'd per kind on [`OrphanKind`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum OrphanKind {
    /// A blob file no namespace records.
    BlobFile,
    /// An ingest directory whose ref no ingest record holds.
    IngestDir,
    /// An ingest directory without a readable `ref`: containerd logs it and
    /// never removes it (`store.go` `WalkStatusRefs`).
    IngestWithoutRef,
    /// A metastore snapshot no namespace's record names.
    Backend,
    /// A `snapshots/` entry that is no backend's id (`new-*`: an
    /// interrupted create; `rm-*`: an interrupted native removal).
    SnapshotDir,
}

#[derive(Clone, Debug, Serialize)]
pub struct Orphan {
    pub kind: OrphanKind,
    pub id: String,
    pub path: PathBuf,
    pub bytes: u64,
    pub reason: String,
    /// The next collection deletes it too: it dirties this store by
    /// removing collectable records (containerd sweeps a store only then).
    pub removed_at_next_gc: bool,
}

#[derive(Debug, Default, Serialize)]
pub struct Sweep {
    pub collectable: Vec<Item>,
    pub orphans: Vec<Orphan>,
}

/// The sweep of containerd's next collection, with "now" the time of reading.
pub fn collect(a: &Analysis<'_>) -> Sweep {
    let s = a.edges.state;
    let mut sweep = Sweep::default();
    sweep_leases_and_images(a, &mut sweep);
    let recs = sweep_records(a, &mut sweep);
    sweep_content(s, &recs, &mut sweep);
    for (sn_name, sn) in &s.snapshotters {
        sweep_snapshotter(a, sn_name, sn, &recs, &mut sweep);
    }
    sweep
        .collectable
        .sort_by(|x, y| (&x.kind, &x.id).cmp(&(&y.kind, &y.id)));
    sweep
        .orphans
        .sort_by(|x, y| (x.kind, &x.id).cmp(&(y.kind, &y.id)));
    sweep
}

const REASON_UNMARKED: &str =
    "no lease, image, container, sandbox, live ingest or gc.root reaches it";

/// What the record sweep leaves for the content and snapshot sweeps.
#[derive(Default)]
struct Records<'s> {
    /// A blob or ingest record goes: the content store is dirty.
    removed_blob_or_ingest: bool,
    /// Snapshotters one of whose records goes.
    dirty_sn: BTreeSet<&'s str>,
    /// Digests a remaining record (blob, or a live ingest's expected) holds.
    kept_digests: HashSet<BlobDigest>,
    /// Digests whose records go, with their namespaces.
    removed_blob_ns: BTreeMap<BlobDigest, Vec<&'s str>>,
    /// Ingest refs whose records stay.
    live_refs: HashSet<&'s str>,
    /// Backend names still held, per snapshotter.
    named: HashMap<&'s str, HashSet<&'s str>>,
}

/// Step 1: meta.db's leases and (2.0+) images nobody reaches.
fn sweep_leases_and_images(a: &Analysis<'_>, sweep: &mut Sweep) {
    let e = &a.edges;
    let s = e.state;
    let meta = s.paths.meta_db();
    let images_collected = s.version.as_ref().is_some_and(|v| v.gc.images_are_nodes);
    let unheld = |n: Node| !a.marked(n);
    for (key, (ns, id)) in e.leases.iter().enumerate() {
        if unheld(Node::new(Kind::Lease, key as u32)) {
            let name = e.namespaces[*ns as usize];
            let rec = &s.namespaces[name].leases[*id];
            sweep.collectable.push(Item {
                kind: ItemKind::Lease,
                id: format!("{name}/{id}"),
                path: meta.clone(),
                namespace: Some(name.into()),
                bytes: 0,
                reason: format!(
                    "expired at {}",
                    rec.labels.get(LABEL_EXPIRE).map_or("?", String::as_str)
                ),
            });
        }
    }
    if images_collected {
        for (key, (ns, img)) in e.images.iter().enumerate() {
            if unheld(Node::new(Kind::Image, key as u32)) {
                let name = e.namespaces[*ns as usize];
                let rec = &s.namespaces[name].images[*img];
                sweep.collectable.push(Item {
                    kind: ItemKind::Image,
                    id: format!("{name}/{img}"),
                    path: meta.clone(),
                    namespace: Some(name.into()),
                    bytes: 0,
                    reason: format!(
                        "gc.expire {} has passed and nothing refers to it",
                        rec.labels.get(LABEL_EXPIRE).map_or("?", String::as_str)
                    ),
                });
            }
        }
    }
}

/// Step 1: meta.db's blob, ingest and snapshot records nobody reaches.
fn sweep_records<'s>(a: &Analysis<'s>, sweep: &mut Sweep) -> Records<'s> {
    let e = &a.edges;
    let s = e.state;
    let meta = s.paths.meta_db();
    let unheld = |n: Node| !a.marked(n);
    let mut recs = Records::default();
    // Records that stay: what the content and snapshot sweeps keep.
    for (key, (ns, d)) in e.blobs.iter().enumerate() {
        let name = e.namespaces[*ns as usize];
        if unheld(Node::new(Kind::Blob, key as u32)) {
            recs.removed_blob_or_ingest = true;
            recs.removed_blob_ns.entry(*d).or_default().push(name);
            sweep.collectable.push(Item {
                kind: ItemKind::BlobRecord,
                id: format!("{name}/{d}"),
                path: meta.clone(),
                namespace: Some(name.into()),
                bytes: 0,
                reason: REASON_UNMARKED.into(),
            });
        } else {
            recs.kept_digests.insert(*d);
        }
    }
    for (key, (ns, k)) in e.ingests.iter().enumerate() {
        let name = e.namespaces[*ns as usize];
        let rec = &s.namespaces[name].ingests[*k];
        if unheld(Node::new(Kind::Ingest, key as u32)) {
            recs.removed_blob_or_ingest = true;
            sweep.collectable.push(Item {
                kind: ItemKind::IngestRecord,
                id: format!("{name}/{k}"),
                path: meta.clone(),
                namespace: Some(name.into()),
                bytes: 0,
                reason: match rec.expire_at {
                    Some(t) => format!("expired at {t}"),
                    None => "its lease is gone".into(),
                },
            });
        } else {
            recs.live_refs.insert(rec.backend_ref.as_str());
            if let Some(d) = rec.expected {
                recs.kept_digests.insert(d);
            }
        }
    }
    for key in 0..e.snapshots.len() {
        let (name, sn, k, rec) = e.snap_rec(key as u32);
        if unheld(Node::new(Kind::Snapshot, key as u32)) {
            recs.dirty_sn.insert(sn);
            sweep.collectable.push(Item {
                kind: ItemKind::SnapshotRecord,
                id: format!("{name}/{sn}/{k}"),
                path: meta.clone(),
                namespace: Some(name.into()),
                bytes: 0,
                reason: REASON_UNMARKED.into(),
            });
        } else {
            recs.named.entry(sn).or_default().insert(rec.name.as_str());
        }
    }

    recs
}

/// Step 2: Content files, when a blob or ingest record goes.
fn sweep_content(s: &State, recs: &Records<'_>, sweep: &mut Sweep) {
    for (d, f) in &s.blobs {
        if recs.kept_digests.contains(d) {
            continue;
        }
        let path = s.paths.blob(d);
        match recs.removed_blob_ns.get(d) {
            Some(nss) if recs.removed_blob_or_ingest => sweep.collectable.push(Item {
                kind: ItemKind::Blob,
                id: d.to_string(),
                path,
                namespace: (nss.len() == 1).then(|| nss[0].to_string()),
                bytes: f.size,
                reason: format!("its record(s) in {} go", nss.join(", ")),
            }),
            Some(_) => {}
            None => sweep.orphans.push(Orphan {
                kind: OrphanKind::BlobFile,
                id: d.to_string(),
                path,
                bytes: f.size,
                reason: "no namespace records this blob".into(),
                removed_at_next_gc: recs.removed_blob_or_ingest,
            }),
        }
    }
    let all_refs: HashSet<&str> = s
        .namespaces
        .values()
        .flat_map(|n| n.ingests.values().map(|i| i.backend_ref.as_str()))
        .collect();
    for (dir, ing) in &s.ingests {
        let path = s.paths.ingest(dir);
        match &ing.backend_ref {
            Ok(Some(r)) if recs.live_refs.contains(r.as_str()) => {}
            Ok(Some(r)) if all_refs.contains(r.as_str()) => {
                if recs.removed_blob_or_ingest {
                    sweep.collectable.push(Item {
                        kind: ItemKind::IngestDir,
                        id: dir.clone(),
                        path,
                        namespace: r.split('/').next().map(str::to_string),
                        bytes: ing.allocated,
                        reason: format!("its record for {r} goes"),
                    });
                }
            }
            Ok(Some(r)) => sweep.orphans.push(Orphan {
                kind: OrphanKind::IngestDir,
                id: dir.clone(),
                path,
                bytes: ing.allocated,
                reason: format!("no ingest record holds {r}"),
                removed_at_next_gc: recs.removed_blob_or_ingest,
            }),
            Ok(None) | Err(_) => sweep.orphans.push(Orphan {
                kind: OrphanKind::IngestWithoutRef,
                id: dir.clone(),
                path,
                bytes: ing.allocated,
                reason: match &ing.backend_ref {
                    Err(why) => format!("ref unreadable ({why}); containerd never removes it"),
                    _ => "no ref file; containerd never removes it".into(),
                },
                removed_at_next_gc: false,
            }),
        }
    }
}

/// Step 3: One snapshotter: backends no record names, leaves first; then every
/// directory that is no remaining backend's id (`Cleanup`).
fn sweep_snapshotter(
    a: &Analysis<'_>,
    sn_name: &str,
    sn: &Snapshotter,
    recs: &Records<'_>,
    sweep: &mut Sweep,
) {
    let s = a.edges.state;
    if sn.db_error.is_some() {
        // Its backends are unknown: nothing of it can be called collectable.
        return;
    }
    let dirty = recs.dirty_sn.contains(sn_name);
    let held = recs.named.get(sn_name);
    let unnamed = |b: &str| !held.is_some_and(|h| h.contains(b));
    // Children per backend, to keep a parent whose child stays.
    let mut kids: HashMap<&str, Vec<&str>> = HashMap::new();
    for (n, b) in &sn.backends {
        if let Some(p) = &b.parent {
            kids.entry(p.as_str()).or_default().push(n.as_str());
        }
    }
    let mut goes: HashMap<&str, bool> = HashMap::new();
    let mut remaining_ids: HashSet<String> = HashSet::new();
    for (n, b) in &sn.backends {
        let g = decide(n.as_str(), &kids, &unnamed, &mut goes, 0);
        let dir = b.id.to_string();
        if !g {
            remaining_ids.insert(dir);
            continue;
        }
        let ns = n.split('/').next().map(str::to_string);
        if removed_backend_from_collectable(a, sn_name, n) {
            // Only collectable records name it: it goes with them (its
            // snapshotter is dirty, since one of its records goes).
            sweep.collectable.push(Item {
                kind: ItemKind::Backend,
                id: n.clone(),
                path: s.paths.metastore(sn_name),
                namespace: ns.clone(),
                bytes: 0,
                reason: "its snapshot record goes".into(),
            });
            if sn.dirs.contains_key(dir.as_str()) {
                sweep.collectable.push(Item {
                    kind: ItemKind::SnapshotDir,
                    id: dir.clone(),
                    path: s.paths.snapshot_dir(sn_name, &dir),
                    namespace: ns,
                    bytes: sn.usage(n).map_or(0, |u| u.size),
                    reason: format!("its backend snapshot {n} goes"),
                });
            }
        } else {
            sweep.orphans.push(Orphan {
                kind: OrphanKind::Backend,
                id: n.clone(),
                path: s.paths.snapshot_dir(sn_name, &dir),
                bytes: sn.usage(n).map_or(0, |u| u.size),
                reason: format!(
                    "metastore snapshot {n} (dir {dir}) is named by no namespace's record"
                ),
                removed_at_next_gc: dirty,
            });
            if !dirty {
                remaining_ids.insert(dir);
            }
        }
    }
    for name in sn.dirs.keys() {
        if remaining_ids.contains(name) || sn.backends.values().any(|b| b.id.to_string() == *name) {
            continue;
        }
        let path = s.paths.snapshot_dir(sn_name, name);
        sweep.orphans.push(Orphan {
            kind: OrphanKind::SnapshotDir,
            id: name.clone(),
            bytes: crate::disk::allocated_bytes(&path),
            path,
            reason: if name.starts_with("new-") {
                "an interrupted snapshot create".into()
            } else if name.starts_with("rm-") {
                "an interrupted snapshot removal".into()
            } else {
                "no backend snapshot has this id".into()
            },
            removed_at_next_gc: dirty,
        });
    }
}

/// Whether backend `n` goes: no record names it and every child goes too
/// (a cycle, or a chain deeper than 10,000, keeps everything on it).
fn decide<'a>(
    n: &'a str,
    kids: &HashMap<&'a str, Vec<&'a str>>,
    unnamed: &dyn Fn(&str) -> bool,
    goes: &mut HashMap<&'a str, bool>,
    depth: usize,
) -> bool {
    if let Some(g) = goes.get(n) {
        return *g;
    }
    goes.insert(n, false); // a cycle keeps everything on it
    let g = unnamed(n)
        && depth < 10_000
        && kids
            .get(n)
            .is_none_or(|ks| ks.iter().all(|k| decide(k, kids, unnamed, goes, depth + 1)));
    goes.insert(n, g);
    g
}

/// Whether a backend name is held only by snapshot records that are collectable.
fn removed_backend_from_collectable(a: &Analysis<'_>, sn: &str, backend: &str) -> bool {
    let e = &a.edges;
    (0..e.snapshots.len()).any(|key| {
        let (_, s, _, rec) = e.snap_rec(key as u32);
        s == sn && rec.name == backend && !a.marked(Node::new(Kind::Snapshot, key as u32))
    })
}
