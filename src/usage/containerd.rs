//! `df` of a containerd store: Docker Engine 29's image sizes (moby
//! `daemon/containerd/image_list.go` `Images`, `multiPlatformSummary`,
//! `computeSharedSize`; `daemon/containerd/service.go` and
//! `daemon/disk_usage.go` for the summary), applied per engine version,
//! plus what containerd keeps that Docker does not show: snapshots by
//! kind, leases, ingests, what the next GC collects and orphaned data.
//! Snapshot sizes are what `ctr snapshots usage -b` prints.

use crate::holds::containerd::{self as gc, Analysis, Item, Orphan};
use crate::holds::{Holder, HolderId};
use crate::ids::{BlobDigest, ChainId, SnapshotKey};
use crate::reach::{Kind, Node};
use crate::store::containerd::{
    Doc, Namespace, SnapKind, State, Time, Usage as SnapUsage, manifest,
};
use crate::store::{Anomaly, Snapshot};
use crate::usage::SummaryRow;
use serde::Serialize;
use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::path::PathBuf;

mod engine;
#[cfg(test)]
mod tests;

pub use engine::{DANGLING_PREFIX, EngineVersion, Rules};
use engine::{images, images_total, visited_groups};

#[derive(Debug, Serialize)]
pub struct Usage {
    /// Always `containerd`: which df contract this is.
    pub store: &'static str,
    pub root: PathBuf,
    pub docker_root: Option<PathBuf>,
    /// The namespace reported, or `all`.
    pub namespace: String,
    pub namespaces: Vec<String>,
    pub containerd: ContainerdInfo,
    pub engine_rules: Rules,
    pub summary: Vec<SummaryRow>,
    pub images: Vec<ImageUsage>,
    pub containers: Vec<ContainerUsage>,
    pub snapshots: Vec<SnapshotUsage>,
    pub blobs: Vec<BlobUsage>,
    /// Σ size of the blob files the report covers.
    pub content_total: u64,
    pub leases: Vec<LeaseUsage>,
    pub ingests: Vec<IngestUsage>,
    /// What containerd's next garbage collection deletes.
    pub collectable: Vec<Item>,
    pub orphans: Vec<Orphan>,
    /// Docker's volumes, for a Docker root (empty otherwise).
    pub volumes: Vec<crate::usage::VolumeUsage>,
    pub anomalies: Vec<Anomaly>,
    pub disk: Option<crate::reconcile::DiskUsage>,
}

#[derive(Debug, Serialize)]
pub struct ContainerdInfo {
    pub schema: Option<i64>,
    pub version: Option<&'static str>,
    pub evidence: Option<String>,
    /// A containerd holds the root's databases now: these figures are a
    /// point-in-time snapshot (each database was read consistently).
    pub live: bool,
    pub point_in_time: bool,
    pub read_at: Time,
    pub held: Vec<PathBuf>,
}

#[derive(Debug, Serialize)]
pub struct ImageUsage {
    pub namespace: String,
    /// The image ID: the target digest (`image_list.go` `singlePlatformImage`).
    pub id: BlobDigest,
    pub media_type: String,
    /// Every record name with this target (`moby-dangling@` names excluded
    /// when a real name exists).
    pub names: Vec<String>,
    pub repo_tags: Vec<String>,
    pub repo_digests: Vec<String>,
    /// Only a `moby-dangling@` record names it: shown as `<none>`.
    pub dangling: bool,
    /// The config's `created` of the host-platform manifest.
    pub created: Option<String>,
    #[serde(skip)]
    pub created_unix: Option<i64>,
    pub size: u64,
    pub shared_size: u64,
    /// `size - shared_size`, as the docker CLI prints UNIQUE SIZE.
    pub unique_size: u64,
    /// What `ctr images ls` prints as SIZE: the target, the host-platform
    /// manifest (for an index), its config and layers, by descriptor sizes
    /// (`core/images/image.go` `Image.Size`); `None` when one is unreadable.
    pub blob_size: Option<u64>,
    /// Docker containers (or containerd containers) on this image; -1 when
    /// no manifest matches the host platform.
    pub containers: i64,
    /// `os/arch[/variant]` of the manifests visited.
    pub platforms: Vec<String>,
    /// The host-platform manifest's top chain ID is a snapshot.
    pub unpacked: bool,
}

#[derive(Debug, Serialize)]
pub struct ContainerUsage {
    pub namespace: String,
    pub id: String,
    pub names: Vec<String>,
    pub image: Option<String>,
    pub state: &'static str,
    pub active: bool,
    pub snapshot: Option<SnapshotKey>,
    /// The RW snapshot's usage (`GetContainerLayerSize`).
    pub size_rw: u64,
    /// `size_rw` plus the init layer and the image chain.
    pub size_root_fs: u64,
}

#[derive(Debug, Serialize)]
pub struct SnapshotUsage {
    pub namespace: String,
    pub snapshotter: String,
    pub key: SnapshotKey,
    pub kind: SnapKind,
    pub parent: Option<SnapshotKey>,
    /// As `ctr snapshots usage -b` prints them: stored at commit for
    /// committed snapshots, walked now for active ones, 0 for views.
    pub size: u64,
    pub inodes: u64,
    /// The backend name and directory id.
    pub backend: String,
    pub dir: Option<String>,
    /// What keeps it (containerd's GC roots that reach it).
    pub holders: Vec<String>,
}

#[derive(Debug, Serialize)]
pub struct BlobUsage {
    pub digest: BlobDigest,
    /// The file's size; the record's when the file is missing.
    pub size: u64,
    pub media_type: Option<String>,
    pub present: bool,
    /// Namespaces that record it.
    pub namespaces: Vec<String>,
    /// A layer blob whose chain is also unpacked: its bytes are on disk twice.
    pub unpacked: bool,
}

#[derive(Debug, Serialize)]
pub struct LeaseUsage {
    pub namespace: String,
    pub id: String,
    pub created: Option<Time>,
    pub expires: Option<String>,
    pub expired: bool,
    pub flat: bool,
    pub content: usize,
    pub snapshots: usize,
    pub ingests: usize,
    pub images: usize,
    /// Bytes only this lease keeps (what would go with it).
    pub exclusive_bytes: u64,
}

#[derive(Debug, Serialize)]
pub struct IngestUsage {
    pub dir: String,
    pub namespace: Option<String>,
    pub backend_ref: Option<String>,
    /// Bytes received (`data`), and `total` when known.
    pub offset: Option<u64>,
    pub total: Option<u64>,
    pub started_at: Option<String>,
    pub updated_at: Option<String>,
    pub expire_at: Option<Time>,
    pub allocated: u64,
}

#[derive(Debug, Clone, Default)]
pub struct Options {
    pub engine: Option<EngineVersion>,
}

/// Per-namespace context: its records and the default snapshotter.
struct Ns<'s> {
    s: &'s State,
    ns: &'s Namespace,
    /// `Usage` of every snapshot key in the default snapshotter, looked up
    /// once: image sizes ask for each chain ID several times.
    usage: HashMap<&'s str, SnapUsage>,
}

impl<'s> Ns<'s> {
    fn new(s: &'s State, ns: &'s Namespace) -> Ns<'s> {
        let sn = s.default_snapshotter();
        let usage = match (ns.snapshots.get(sn), s.snapshotters.get(sn)) {
            (Some(recs), Some(x)) => recs
                .iter()
                .filter_map(|(k, r)| Some((k.0.as_str(), x.usage(&r.name)?)))
                .collect(),
            _ => HashMap::new(),
        };
        Ns { s, ns, usage }
    }

    fn snapshotter(&self) -> &'s str {
        self.s.default_snapshotter()
    }

    /// `Usage` of a snapshot key in the default snapshotter.
    fn usage(&self, key: &str) -> Option<SnapUsage> {
        self.usage.get(key).copied()
    }

    fn has_record(&self, d: &BlobDigest) -> bool {
        self.ns.blobs.contains_key(d)
    }
}

/// Containers: Docker's (namespace `moby` of a Docker root) with their RW
/// snapshot `<id>`, and containerd's container records elsewhere.
fn containers(n: &Ns<'_>) -> Vec<ContainerUsage> {
    let s = n.s;
    let mut out = Vec::new();
    let docker = s.docker_root.is_some() && n.ns.name == crate::store::containerd::MOBY;
    if docker {
        for c in &s.docker_containers {
            let rw = n.usage(&c.id).map_or(0, |u| u.size);
            let init = n.usage(&format!("{}-init", c.id)).map_or(0, |u| u.size);
            let parent_chain = chain_usage(n, &format!("{}-init", c.id));
            out.push(ContainerUsage {
                namespace: n.ns.name.clone(),
                id: c.id.clone(),
                names: vec![c.name.clone()],
                image: c
                    .image_manifest
                    .map(|d| d.to_string())
                    .or_else(|| c.image.clone()),
                state: c.state,
                active: c.active,
                snapshot: Some(SnapshotKey(c.id.clone())),
                size_rw: rw,
                size_root_fs: rw + init + parent_chain,
            });
        }
        return out;
    }
    for (id, c) in &n.ns.containers {
        let (rw, root_fs) = match (&c.snapshotter, &c.snapshot_key) {
            (Some(_), Some(k)) => {
                let rw = n.usage(&k.0).map_or(0, |u| u.size);
                (rw, rw + chain_usage(n, &k.0))
            }
            _ => (0, 0),
        };
        out.push(ContainerUsage {
            namespace: n.ns.name.clone(),
            id: id.clone(),
            names: vec![id.clone()],
            image: c.image.clone(),
            // Tasks live in containerd's state dir (tmpfs) and in shims,
            // not in the root: whether one runs cannot be read here.
            state: "unknown",
            active: false,
            snapshot: c.snapshot_key.clone(),
            size_rw: rw,
            size_root_fs: root_fs,
        });
    }
    out
}

/// The usage of a snapshot's ancestors (not itself).
fn chain_usage(n: &Ns<'_>, key: &str) -> u64 {
    let Some(recs) = n.ns.snapshots.get(n.snapshotter()) else {
        return 0;
    };
    let mut total = 0;
    let mut cur = recs
        .get(&SnapshotKey(key.to_string()))
        .and_then(|r| r.parent.clone());
    let mut steps = 0;
    while let Some(k) = cur {
        steps += 1;
        if steps > recs.len() {
            break;
        }
        total += n.usage(&k.0).map_or(0, |u| u.size);
        cur = recs.get(&k).and_then(|r| r.parent.clone());
    }
    total
}

fn snapshots(s: &State, a: &Analysis<'_>) -> Vec<SnapshotUsage> {
    let e = &a.edges;
    let mut out = Vec::new();
    for (key, (ns, sn, k)) in e.snapshots.iter().enumerate() {
        let name = e.namespaces[*ns as usize];
        if !s.scope.covers(name) {
            continue;
        }
        let rec = &s.namespaces[name].snapshots[*sn][*k];
        let backend = s
            .snapshotters
            .get(*sn)
            .and_then(|x| x.backends.get(&rec.name));
        let usage = s
            .snapshotters
            .get(*sn)
            .and_then(|x| x.usage(&rec.name))
            .unwrap_or_default();
        out.push(SnapshotUsage {
            namespace: name.into(),
            snapshotter: (*sn).into(),
            key: (*k).clone(),
            kind: backend.map_or(SnapKind::Unknown, |b| b.kind),
            parent: rec.parent.clone(),
            size: usage.size,
            inodes: usage.inodes,
            backend: rec.name.clone(),
            dir: backend.map(|b| b.id.to_string()),
            holders: describe(a, &a.holders_of(Node::new(Kind::Snapshot, key as u32))),
        });
    }
    out
}

fn describe(a: &Analysis<'_>, hs: &[HolderId]) -> Vec<String> {
    let mut v: Vec<String> = hs.iter().map(|h| a.holds.holder(*h).describe()).collect();
    v.sort();
    v.dedup();
    v
}

/// Media types named by descriptors: image targets, index children, configs, layers.
fn media_types(s: &State) -> HashMap<BlobDigest, String> {
    let mut m = HashMap::new();
    for ns in s.namespaces.values() {
        for img in ns.images.values() {
            if let Some(d) = img.target.digest {
                m.entry(d).or_insert_with(|| img.target.media_type.clone());
            }
        }
    }
    for doc in s.docs.values() {
        match doc {
            Doc::Index { manifests } => {
                for d in manifests {
                    if let Some(x) = d.digest {
                        m.entry(x).or_insert_with(|| d.media_type.clone());
                    }
                }
            }
            Doc::Manifest { config, layers } => {
                for d in std::iter::once(config).chain(layers) {
                    if let Some(x) = d.digest {
                        m.entry(x).or_insert_with(|| d.media_type.clone());
                    }
                }
            }
            _ => {}
        }
    }
    m
}

/// Layer blobs whose chain is unpacked: (digest → unpacked), per namespace.
fn unpacked_layers(n: &Ns<'_>) -> BTreeSet<BlobDigest> {
    let mut out = BTreeSet::new();
    for doc in n.s.docs.values() {
        let Doc::Manifest { config, layers } = doc else {
            continue;
        };
        let Some(Doc::Config(cfg)) = config.digest.and_then(|d| n.s.doc(&d)) else {
            continue;
        };
        let chains = ChainId::chain(&cfg.diff_ids);
        for (l, c) in layers.iter().zip(&chains) {
            if let Some(d) = l.digest
                && n.has_record(&d)
                && n.usage(&c.to_string()).is_some()
            {
                out.insert(d);
            }
        }
    }
    out
}

fn blobs(s: &State, unpacked: &BTreeSet<BlobDigest>) -> Vec<BlobUsage> {
    let mt = media_types(s);
    let mut by: BTreeMap<BlobDigest, Vec<String>> = BTreeMap::new();
    for ns in s.scoped() {
        for d in ns.blobs.keys() {
            by.entry(*d).or_default().push(ns.name.clone());
        }
    }
    by.into_iter()
        .map(|(d, namespaces)| {
            let file = s.blobs.get(&d);
            let rec_size = s
                .namespaces
                .get(&namespaces[0])
                .and_then(|n| n.blobs.get(&d))
                .map_or(0, |b| u64::try_from(b.size).unwrap_or(0));
            BlobUsage {
                digest: d,
                size: file.map_or(rec_size, |f| f.size),
                media_type: mt.get(&d).cloned(),
                present: file.is_some(),
                namespaces,
                unpacked: unpacked.contains(&d),
            }
        })
        .collect()
}

fn leases(s: &State, a: &Analysis<'_>) -> Vec<LeaseUsage> {
    let now = s.read_at;
    // Bytes of what each lease holder alone keeps.
    let mut holder_of_lease: HashMap<(&str, &str), HolderId> = HashMap::new();
    for (i, h) in a.holds.holders().iter().enumerate() {
        if let Holder::Containerd(gc::CtrdHolder::Lease { namespace, id, .. }) = h {
            holder_of_lease.insert((namespace.as_str(), id.as_str()), i as HolderId);
        }
    }
    let mut out = Vec::new();
    for ns in s.scoped() {
        for (id, l) in &ns.leases {
            let exclusive = holder_of_lease
                .get(&(ns.name.as_str(), id.as_str()))
                .map_or(0, |h| node_bytes(s, a, &a.holds.freed([*h])));
            out.push(LeaseUsage {
                namespace: ns.name.clone(),
                id: id.clone(),
                created: l.created,
                expires: l.labels.get(gc::LABEL_EXPIRE).cloned(),
                expired: gc::expired(&l.labels, now),
                flat: l.labels.contains_key(gc::LABEL_FLAT),
                content: l.content.len(),
                snapshots: l.snapshots.len(),
                ingests: l.ingests.len(),
                images: l.images.len(),
                exclusive_bytes: exclusive,
            });
        }
    }
    out
}

/// Bytes of freed nodes: snapshot usage and blob file sizes (a blob file
/// only when every record of it is among them).
fn node_bytes(s: &State, a: &Analysis<'_>, nodes: &[Node]) -> u64 {
    let e = &a.edges;
    let mut total = 0;
    let freed: BTreeSet<Node> = nodes.iter().copied().collect();
    let mut blobs: BTreeMap<BlobDigest, (usize, usize)> = BTreeMap::new();
    for n in nodes {
        match n.kind {
            Kind::Snapshot => {
                let (ns, sn, k) = e.snapshots[n.key as usize];
                let rec = &s.namespaces[e.namespaces[ns as usize]].snapshots[sn][k];
                total += s
                    .snapshotters
                    .get(sn)
                    .and_then(|x| x.usage(&rec.name))
                    .map_or(0, |u| u.size);
            }
            Kind::Blob => {
                let d = e.blobs[n.key as usize].1;
                blobs.entry(d).or_default().0 += 1;
            }
            _ => {}
        }
    }
    for (d, (freed_n, _)) in &blobs {
        let records = e.blobs.iter().filter(|(_, x)| x == d).count();
        let all_freed = *freed_n == records
            && e.blobs
                .iter()
                .enumerate()
                .filter(|(_, (_, x))| x == d)
                .all(|(k, _)| freed.contains(&Node::new(Kind::Blob, k as u32)));
        if all_freed {
            total += s.blobs.get(d).map_or(0, |f| f.size);
        }
    }
    total
}

fn ingests(s: &State) -> Vec<IngestUsage> {
    let mut by_ref: HashMap<&str, (&str, Option<Time>)> = HashMap::new();
    for ns in s.namespaces.values() {
        for i in ns.ingests.values() {
            by_ref.insert(i.backend_ref.as_str(), (ns.name.as_str(), i.expire_at));
        }
    }
    s.ingests
        .iter()
        .filter_map(|(dir, d)| {
            let r = d.backend_ref.as_ref().ok().and_then(|r| r.as_deref());
            let ns = r.and_then(|r| r.split('/').next()).map(str::to_string);
            if let Some(ns) = &ns
                && !s.scope.covers(ns)
            {
                return None;
            }
            Some(IngestUsage {
                dir: dir.clone(),
                namespace: ns,
                backend_ref: r.map(str::to_string),
                offset: d.offset,
                total: d.total,
                started_at: d.started_at.clone(),
                updated_at: d.updated_at.clone(),
                expire_at: r.and_then(|r| by_ref.get(r)).and_then(|x| x.1),
                allocated: d.allocated,
            })
        })
        .collect()
}

fn row(kind: &'static str, total: u64, active: u64, size: u64, reclaimable: u64) -> SummaryRow {
    SummaryRow {
        kind,
        total,
        active,
        size,
        reclaimable,
    }
}

/// The summary rows: `docker system df`'s (Images, Containers, and Local
/// Volumes for a Docker root) by the engine's rules, then containerd's own.
fn summary(u: &Usage, rules: &Rules, images_total_size: u64) -> Vec<SummaryRow> {
    let mut summary = Vec::new();
    // Images (`docker system df` rules per engine version).
    let active_images = u
        .images
        .iter()
        .filter(|i| {
            if rules.active_with_containers {
                i.containers > 0
            } else {
                i.containers != 0
            }
        })
        .count() as u64;
    let unused_unique: u64 = u
        .images
        .iter()
        .filter(|i| i.containers == 0)
        .map(|i| i.unique_size)
        .sum();
    let reclaim_images = if rules.active_with_containers {
        unused_unique
    } else {
        images_total_size.saturating_sub(unused_unique)
    };
    summary.push(row(
        "images",
        u.images.len() as u64,
        active_images,
        images_total_size,
        reclaim_images,
    ));
    let rw: u64 = u.containers.iter().map(|c| c.size_rw).sum();
    let rw_idle: u64 = u
        .containers
        .iter()
        .filter(|c| !c.active)
        .map(|c| c.size_rw)
        .sum();
    summary.push(row(
        "containers",
        u.containers.len() as u64,
        u.containers.iter().filter(|c| c.active).count() as u64,
        rw,
        rw_idle,
    ));
    if u.docker_root.is_some() {
        summary.push(crate::usage::volumes_row(&u.volumes));
    }
    summary.extend(containerd_rows(u));
    summary
}

/// The rows containerd keeps that Docker does not show.
fn containerd_rows(u: &Usage) -> Vec<SummaryRow> {
    let mut summary = Vec::new();
    let present: Vec<&BlobUsage> = u.blobs.iter().filter(|b| b.present).collect();
    summary.push(row("content", present.len() as u64, 0, u.content_total, 0));
    let both: Vec<&&BlobUsage> = present.iter().filter(|b| b.unpacked).collect();
    summary.push(row(
        "compressed-and-unpacked",
        both.len() as u64,
        0,
        both.iter().map(|b| b.size).sum(),
        0,
    ));
    for (kind, word) in [
        (SnapKind::Committed, "snapshots-committed"),
        (SnapKind::Active, "snapshots-active"),
        (SnapKind::View, "snapshots-view"),
    ] {
        let of: Vec<&SnapshotUsage> = u.snapshots.iter().filter(|x| x.kind == kind).collect();
        summary.push(row(
            word,
            of.len() as u64,
            0,
            of.iter().map(|x| x.size).sum(),
            0,
        ));
    }
    summary.push(row(
        "leases",
        u.leases.len() as u64,
        u.leases.iter().filter(|l| !l.expired).count() as u64,
        u.leases.iter().map(|l| l.exclusive_bytes).sum(),
        u.leases
            .iter()
            .filter(|l| l.expired)
            .map(|l| l.exclusive_bytes)
            .sum(),
    ));
    let ingest_gone: BTreeSet<&str> = u
        .collectable
        .iter()
        .filter(|i| i.kind == gc::ItemKind::IngestDir)
        .map(|i| i.id.as_str())
        .chain(
            u.orphans
                .iter()
                .filter(|o| {
                    matches!(
                        o.kind,
                        gc::OrphanKind::IngestDir | gc::OrphanKind::IngestWithoutRef
                    )
                })
                .map(|o| o.id.as_str()),
        )
        .collect();
    summary.push(row(
        "ingests",
        u.ingests.len() as u64,
        (u.ingests.len() - ingest_gone.len().min(u.ingests.len())) as u64,
        u.ingests.iter().map(|i| i.allocated).sum(),
        u.ingests
            .iter()
            .filter(|i| ingest_gone.contains(i.dir.as_str()))
            .map(|i| i.allocated)
            .sum(),
    ));
    let coll_bytes: u64 = u.collectable.iter().map(|i| i.bytes).sum();
    summary.push(row(
        "collectable",
        u.collectable.len() as u64,
        0,
        coll_bytes,
        coll_bytes,
    ));
    let orphan_bytes: u64 = u.orphans.iter().map(|o| o.bytes).sum();
    summary.push(row(
        "orphans",
        u.orphans.len() as u64,
        0,
        orphan_bytes,
        orphan_bytes,
    ));

    summary
}

/// Docker's volumes (a Docker root in containerd mode, namespace `moby` in
/// scope), sized and linked as `/system/df` does.
fn docker_volumes(s: &State) -> Vec<crate::usage::VolumeUsage> {
    let Some(root) = s.docker_root.as_deref() else {
        return Vec::new();
    };
    if !s.scope.covers(crate::store::containerd::MOBY) {
        return Vec::new();
    }
    let mut links: HashMap<&str, u64> = HashMap::new();
    for c in &s.docker_containers {
        for v in &c.volumes {
            *links.entry(v.as_str()).or_default() += 1;
        }
    }
    crate::usage::volume_usage(
        &crate::store::paths::DockerRoot::new(root),
        &s.docker_volumes,
        &links,
    )
}

/// Computes the containerd df of a snapshot read by `store::containerd`.
pub fn compute(snap: &Snapshot, opts: &Options) -> Option<Usage> {
    let s = snap.containerd()?;
    let rules = Rules::for_version(opts.engine);
    let a = Analysis::new(s);
    let sweep = gc::collect(&a);
    let in_scope = |ns: &Option<String>| ns.as_ref().is_none_or(|n| s.scope.covers(n));

    let mut images_v = Vec::new();
    let mut containers_v = Vec::new();
    let mut images_total_size = 0u64;
    let mut unpacked = BTreeSet::new();
    for ns in s.scoped() {
        let n = Ns::new(s, ns);
        let cs = containers(&n);
        let groups = visited_groups(&n, &manifest::host_platform());
        images_v.extend(images(&n, &groups, &rules, &cs));
        images_total_size += images_total(&n, &groups, &rules);
        unpacked.extend(unpacked_layers(&n));
        containers_v.extend(cs);
    }
    images_v.sort_by(|x, y| {
        y.created_unix
            .cmp(&x.created_unix)
            .then(x.namespace.cmp(&y.namespace))
            .then(x.id.cmp(&y.id))
    });
    let snapshots_v = snapshots(s, &a);
    let blobs_v = blobs(s, &unpacked);
    let content_total: u64 = blobs_v.iter().filter(|b| b.present).map(|b| b.size).sum();
    let leases_v = leases(s, &a);
    let ingests_v = ingests(s);
    let collectable: Vec<Item> = sweep
        .collectable
        .into_iter()
        .filter(|i| in_scope(&i.namespace))
        .collect();
    let orphans: Vec<Orphan> = sweep
        .orphans
        .into_iter()
        .filter(|o| match o.kind {
            gc::OrphanKind::Backend => in_scope(&o.id.split('/').next().map(str::to_string)),
            _ => true,
        })
        .collect();

    let volumes = docker_volumes(s);
    let version = s.version.as_ref();
    let mut u = Usage {
        store: "containerd",
        root: s.paths.root().to_path_buf(),
        docker_root: s.docker_root.clone(),
        namespace: s.scope.name().to_string(),
        namespaces: s.scoped().map(|n| n.name.clone()).collect(),
        containerd: ContainerdInfo {
            schema: version.map(|v| v.schema),
            version: version.map(|v| v.family),
            evidence: version.map(|v| v.evidence.clone()),
            live: s.live.live,
            point_in_time: s.live.live,
            read_at: s.read_at,
            held: s.live.held.clone(),
        },
        engine_rules: rules,
        summary: Vec::new(),
        images: images_v,
        containers: containers_v,
        snapshots: snapshots_v,
        blobs: blobs_v,
        content_total,
        leases: leases_v,
        ingests: ingests_v,
        collectable,
        orphans,
        volumes,
        anomalies: snap.anomalies.clone(),
        disk: None,
    };
    u.summary = summary(&u, &rules, images_total_size);
    Some(u)
}
