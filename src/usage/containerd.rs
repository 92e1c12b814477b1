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
    Doc, ImageRec, Namespace, SnapKind, State, Time, Usage as SnapUsage, manifest,
};
use crate::store::{Anomaly, Snapshot};
use crate::usage::SummaryRow;
use serde::Serialize;
use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::path::PathBuf;

/// Docker 29 names untagged images `moby-dangling@<digest>`
/// (`daemon/containerd/soft_delete.go`).
pub const DANGLING_PREFIX: &str = "moby-dangling@";

/// An Engine 29 release, for the rules that changed between them.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Serialize)]
pub struct EngineVersion {
    pub major: u32,
    pub minor: u32,
}

impl EngineVersion {
    /// `29.5`, `29.5.1`, `v29.5.0`, `docker-v29.5.0`.
    pub fn parse(s: &str) -> Result<EngineVersion, String> {
        let t = s
            .trim()
            .trim_start_matches("docker-")
            .trim_start_matches('v');
        let mut it = t.split(['.', '-', '+']);
        let major: u32 = it
            .next()
            .and_then(|m| m.parse().ok())
            .ok_or_else(|| format!("{s:?} is not an engine version like 29.5"))?;
        let minor: u32 = it.next().and_then(|m| m.parse().ok()).unwrap_or(0);
        if major != 29 {
            return Err(format!(
                "engine {major}.{minor}: dockgc knows the containerd store's df rules of \
                 Engine 29 (29.0 and later)"
            ));
        }
        Ok(EngineVersion { major, minor })
    }
}

/// The rules of one engine version (doc'd per field with the moby commit
/// that changed it).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
pub struct Rules {
    /// The name reports show: `29.6+`, `29.5`, `29.4`, `29.0-29.3`.
    pub name: &'static str,
    /// 29.5+: SharedSize also counts content shared between images
    /// (moby commit 9f195211).
    pub shared_content: bool,
    /// 29.6+: Images TotalSize counts the chains of unpacked image
    /// manifests only, not every snapshot of the namespace (moby PR #52901).
    pub total_chains_only: bool,
    /// 29.4+: Active counts images with containers, Reclaimable sums the
    /// unique sizes of images without (moby commit 46dba49e).
    pub active_with_containers: bool,
    /// Whether the version was given (`--engine-version`) or the newest assumed.
    pub chosen: bool,
}

impl Rules {
    pub fn for_version(v: Option<EngineVersion>) -> Rules {
        let minor = v.map_or(u32::MAX, |v| v.minor);
        Rules {
            name: match minor {
                6.. => "29.6+",
                5 => "29.5",
                4 => "29.4",
                _ => "29.0-29.3",
            },
            shared_content: minor >= 5,
            total_chains_only: minor >= 6,
            active_with_containers: minor >= 4,
            chosen: v.is_some(),
        }
    }
}

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

/// One manifest visited for an image group.
struct Visited {
    digest: BlobDigest,
    content: u64,
    unpacked: u64,
    /// Chain IDs of its config (empty for pseudo manifests).
    chains: Vec<ChainId>,
    /// Content digests counted.
    digests: Vec<(BlobDigest, u64)>,
    platform: Option<manifest::Platform>,
    host: bool,
    pseudo: bool,
    created: Option<String>,
}

fn visit_manifest(
    n: &Ns<'_>,
    d: &manifest::Descriptor,
    host: &manifest::Platform,
    out: &mut Vec<Visited>,
) {
    let Some(md) = d.digest else { return };
    // A manifest without a record drops its subtree (`presentChildrenHandler`).
    if !n.has_record(&md) {
        return;
    }
    let size = u64::try_from(d.size).unwrap_or(0);
    let pseudo = manifest::is_pseudo(d);
    let mut v = Visited {
        digest: md,
        content: size,
        unpacked: 0,
        chains: Vec::new(),
        digests: vec![(md, size)],
        platform: d.platform.clone(),
        host: manifest::matches_host(d.platform.as_ref(), host),
        pseudo,
        created: None,
    };
    if let Some(Doc::Manifest { config, layers }) = n.s.doc(&md) {
        for c in std::iter::once(config).chain(layers) {
            if let Some(cd) = c.digest
                && n.has_record(&cd)
            {
                let sz = u64::try_from(c.size).unwrap_or(0);
                v.content += sz;
                v.digests.push((cd, sz));
            }
        }
        if !pseudo
            && let Some(cd) = config.digest
            && let Some(Doc::Config(cfg)) = n.s.doc(&cd)
        {
            v.chains = ChainId::chain(&cfg.diff_ids);
            v.created = cfg.created.clone();
            if v.platform.is_none() {
                v.platform = cfg.os.as_ref().map(|os| manifest::Platform {
                    os: os.clone(),
                    architecture: cfg.architecture.clone().unwrap_or_default(),
                    variant: cfg.variant.clone(),
                });
                v.host = manifest::matches_host(v.platform.as_ref(), host);
            }
            // One missing snapshot makes the whole chain 0
            // (`image_snapshot.go` `calculateSnapshotTotalUsage`).
            let mut total = 0u64;
            for c in &v.chains {
                match n.usage(&c.to_string()) {
                    Some(u) => total += u.size,
                    None => {
                        total = 0;
                        break;
                    }
                }
            }
            v.unpacked = total;
        }
    }
    out.push(v);
}

/// Every reachable platform manifest under `target` (`walkReachableImageManifests`).
fn visit(n: &Ns<'_>, target: &ImageRec, host: &manifest::Platform) -> Vec<Visited> {
    let mut out = Vec::new();
    let Some(td) = target.target.digest else {
        return out;
    };
    let desc = manifest::Descriptor {
        media_type: target.target.media_type.clone(),
        digest: Some(td),
        raw_digest: target.target.raw_digest.clone(),
        size: target.target.size,
        platform: None,
        annotations: BTreeMap::new(),
    };
    let mut stack = vec![(desc, 0usize)];
    while let Some((d, depth)) = stack.pop() {
        let Some(dd) = d.digest else { continue };
        match n.s.doc(&dd) {
            Some(Doc::Index { manifests }) if depth < 4 && n.has_record(&dd) => {
                for m in manifests.iter().rev() {
                    stack.push((m.clone(), depth + 1));
                }
            }
            Some(Doc::Index { .. }) => {}
            _ if manifest::is_index(&d.media_type) => {}
            _ => visit_manifest(n, &d, host, &mut out),
        }
    }
    out
}

struct Group<'s> {
    target: BlobDigest,
    recs: Vec<&'s ImageRec>,
    visited: Vec<Visited>,
}

fn groups(ns: &Namespace) -> Vec<(BlobDigest, Vec<&ImageRec>)> {
    let mut by: BTreeMap<BlobDigest, Vec<&ImageRec>> = BTreeMap::new();
    for img in ns.images.values() {
        if let Some(t) = img.target.digest {
            by.entry(t).or_default().push(img);
        }
    }
    by.into_iter()
        .map(|(t, mut recs)| {
            // A dangling record counts only when no named record has this target.
            if recs.iter().any(|r| !r.name.starts_with(DANGLING_PREFIX)) {
                recs.retain(|r| !r.name.starts_with(DANGLING_PREFIX));
            }
            (t, recs)
        })
        .collect()
}

fn platform_word(p: &manifest::Platform) -> String {
    match &p.variant {
        Some(v) => format!("{}/{}/{v}", p.os, p.architecture),
        None => format!("{}/{}", p.os, p.architecture),
    }
}

/// Every image group of a namespace with the manifests it reaches.
fn visited_groups<'s>(n: &Ns<'s>, host: &manifest::Platform) -> Vec<Group<'s>> {
    groups(n.ns)
        .into_iter()
        .map(|(target, recs)| {
            let visited = visit(n, recs[0], host);
            Group {
                target,
                recs,
                visited,
            }
        })
        .collect()
}

/// The images of one namespace with Docker 29's sizes.
fn images(
    n: &Ns<'_>,
    groups: &[Group<'_>],
    rules: &Rules,
    containers: &[ContainerUsage],
) -> Vec<ImageUsage> {
    let host = manifest::host_platform();
    // computeSharedSize: chain IDs per occurrence, content digests once per group.
    let mut chain_count: HashMap<ChainId, u32> = HashMap::new();
    let mut digest_count: HashMap<BlobDigest, u32> = HashMap::new();
    for g in groups {
        let mut mine = BTreeSet::new();
        for v in &g.visited {
            for c in &v.chains {
                *chain_count.entry(*c).or_default() += 1;
            }
            for (d, _) in &v.digests {
                mine.insert(*d);
            }
        }
        for d in mine {
            *digest_count.entry(d).or_default() += 1;
        }
    }
    groups
        .iter()
        .map(|g| {
            let size: u64 = g.visited.iter().map(|v| v.content + v.unpacked).sum();
            let mut shared: u64 = 0;
            let mut seen_digest = BTreeSet::new();
            for v in &g.visited {
                for c in &v.chains {
                    if chain_count.get(c).copied().unwrap_or(0) > 1 {
                        shared += n.usage(&c.to_string()).map_or(0, |u| u.size);
                    }
                }
                if rules.shared_content {
                    for (d, sz) in &v.digests {
                        if digest_count.get(d).copied().unwrap_or(0) > 1 && seen_digest.insert(*d) {
                            shared += sz;
                        }
                    }
                }
            }
            let best = g
                .visited
                .iter()
                .find(|v| v.host)
                .or_else(|| g.visited.iter().find(|v| !v.pseudo));
            let manifests: BTreeSet<BlobDigest> = g.visited.iter().map(|v| v.digest).collect();
            let names: Vec<String> = g.recs.iter().map(|r| r.name.clone()).collect();
            let dangling = names.iter().all(|x| x.starts_with(DANGLING_PREFIX));
            let containers_n = if g.visited.iter().any(|v| v.host) {
                containers
                    .iter()
                    .filter(|c| {
                        c.image.as_deref().is_some_and(|i| {
                            names.iter().any(|x| x == i)
                                || i == g.target.to_string()
                                || BlobDigest::parse(i).is_ok_and(|d| manifests.contains(&d))
                        })
                    })
                    .count() as i64
            } else {
                -1
            };
            let (mut repo_tags, mut repo_digests) = (Vec::new(), Vec::new());
            for x in &names {
                if x.starts_with(DANGLING_PREFIX) {
                    continue;
                }
                if x.contains('@') {
                    repo_digests.push(x.clone());
                } else if !x.starts_with("sha256:") {
                    repo_tags.push(x.clone());
                }
            }
            let created = best.and_then(|b| b.created.clone());
            let blob_size = ctr_size(n.s, g.recs[0], &host);
            ImageUsage {
                blob_size,
                namespace: n.ns.name.clone(),
                id: g.target,
                media_type: g.recs[0].target.media_type.clone(),
                names,
                repo_tags,
                repo_digests,
                dangling,
                created_unix: created
                    .as_deref()
                    .and_then(|c| c.parse::<jiff::Timestamp>().ok())
                    .map(|t| t.as_second()),
                created,
                size,
                shared_size: shared,
                unique_size: size.saturating_sub(shared),
                containers: containers_n,
                platforms: g
                    .visited
                    .iter()
                    .filter(|v| !v.pseudo)
                    .filter_map(|v| v.platform.as_ref().map(platform_word))
                    .collect(),
                unpacked: best.is_some_and(|b| {
                    b.chains
                        .last()
                        .is_some_and(|top| n.usage(&top.to_string()).is_some())
                }),
            }
        })
        .collect()
}

/// `ctr images ls` SIZE: a walk from the target that keeps the host's
/// platform and one manifest (`LimitManifests(FilterPlatforms(...), 1)`),
/// adding every descriptor's size; any unreadable document fails it.
fn ctr_size(s: &State, img: &ImageRec, host: &manifest::Platform) -> Option<u64> {
    let mut total = u64::try_from(img.target.size).ok()?;
    let mut d = img.target.digest?;
    for _ in 0..4 {
        match s.doc(&d)? {
            Doc::Index { manifests } => {
                let m = manifests
                    .iter()
                    .find(|m| manifest::matches_host(m.platform.as_ref(), host))?;
                total += u64::try_from(m.size).ok()?;
                d = m.digest?;
            }
            Doc::Manifest { config, layers } => {
                for x in std::iter::once(config).chain(layers) {
                    total += u64::try_from(x.size).ok()?;
                }
                return Some(total);
            }
            _ => return None,
        }
    }
    None
}

/// Images TotalSize (`ImageDiskUsage`): chains of unpacked manifests (29.6+)
/// or every snapshot of the namespace (before), plus the present blobs
/// reachable from each target, index included, each digest once.
fn images_total(n: &Ns<'_>, groups: &[Group<'_>], rules: &Rules) -> u64 {
    let mut chains: BTreeSet<ChainId> = BTreeSet::new();
    let mut digests: BTreeMap<BlobDigest, u64> = BTreeMap::new();
    for g in groups {
        let (t, rec) = (g.target, g.recs[0]);
        if n.has_record(&t) {
            digests.insert(t, u64::try_from(rec.target.size).unwrap_or(0));
        }
        for v in &g.visited {
            for (d, sz) in &v.digests {
                digests.insert(*d, *sz);
            }
            if v.unpacked > 0
                || v.chains
                    .last()
                    .is_some_and(|c| n.usage(&c.to_string()).is_some())
            {
                chains.extend(v.chains.iter().copied());
            }
        }
    }
    let snaps: u64 = if rules.total_chains_only {
        chains
            .iter()
            .filter_map(|c| n.usage(&c.to_string()))
            .map(|u| u.size)
            .sum()
    } else {
        n.ns.snapshots
            .get(n.snapshotter())
            .map(|recs| {
                recs.keys()
                    .filter_map(|k| n.usage(&k.0))
                    .map(|u| u.size)
                    .sum()
            })
            .unwrap_or(0)
    };
    snaps + digests.values().sum::<u64>()
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

    let mut summary = Vec::new();
    // Images (`docker system df` rules per engine version).
    let active_images = images_v
        .iter()
        .filter(|i| {
            if rules.active_with_containers {
                i.containers > 0
            } else {
                i.containers != 0
            }
        })
        .count() as u64;
    let unused_unique: u64 = images_v
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
        images_v.len() as u64,
        active_images,
        images_total_size,
        reclaim_images,
    ));
    let rw: u64 = containers_v.iter().map(|c| c.size_rw).sum();
    let rw_idle: u64 = containers_v
        .iter()
        .filter(|c| !c.active)
        .map(|c| c.size_rw)
        .sum();
    summary.push(row(
        "containers",
        containers_v.len() as u64,
        containers_v.iter().filter(|c| c.active).count() as u64,
        rw,
        rw_idle,
    ));
    let present: Vec<&BlobUsage> = blobs_v.iter().filter(|b| b.present).collect();
    summary.push(row("content", present.len() as u64, 0, content_total, 0));
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
        let of: Vec<&SnapshotUsage> = snapshots_v.iter().filter(|x| x.kind == kind).collect();
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
        leases_v.len() as u64,
        leases_v.iter().filter(|l| !l.expired).count() as u64,
        leases_v.iter().map(|l| l.exclusive_bytes).sum(),
        leases_v
            .iter()
            .filter(|l| l.expired)
            .map(|l| l.exclusive_bytes)
            .sum(),
    ));
    let ingest_gone: BTreeSet<&str> = collectable
        .iter()
        .filter(|i| i.kind == gc::ItemKind::IngestDir)
        .map(|i| i.id.as_str())
        .chain(
            orphans
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
        ingests_v.len() as u64,
        (ingests_v.len() - ingest_gone.len().min(ingests_v.len())) as u64,
        ingests_v.iter().map(|i| i.allocated).sum(),
        ingests_v
            .iter()
            .filter(|i| ingest_gone.contains(i.dir.as_str()))
            .map(|i| i.allocated)
            .sum(),
    ));
    let coll_bytes: u64 = collectable.iter().map(|i| i.bytes).sum();
    summary.push(row(
        "collectable",
        collectable.len() as u64,
        0,
        coll_bytes,
        coll_bytes,
    ));
    let orphan_bytes: u64 = orphans.iter().map(|o| o.bytes).sum();
    summary.push(row(
        "orphans",
        orphans.len() as u64,
        0,
        orphan_bytes,
        orphan_bytes,
    ));

    let version = s.version.as_ref();
    Some(Usage {
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
        summary,
        images: images_v,
        containers: containers_v,
        snapshots: snapshots_v,
        blobs: blobs_v,
        content_total,
        leases: leases_v,
        ingests: ingests_v,
        collectable,
        orphans,
        anomalies: snap.anomalies.clone(),
        disk: None,
    })
}

#[cfg(test)]
mod tests {
    //! Engine 29's rules on a hand-built store: a base B, layers L1 and
    //! L2; images A = [B, L1], C = [B, L1, L2], D = [B]; a container on A
    //! (its RW snapshot walked at 500 bytes); a dangling name on A's
    //! target (ignored: A is named) and a dangling-only image E = [B].
    use super::*;
    use crate::ids::{DiffId, Digest};
    use crate::store::containerd::meta::{BlobRec, ContainerRec, Namespace, SnapRec, Target};
    use crate::store::containerd::{
        Backend, Descriptor, GcRules, ImageConfig, Liveness, Paths, Scope, Snapshotter, Version,
    };
    use crate::store::{Snapshot, Store};

    fn d(s: &str) -> BlobDigest {
        BlobDigest(Digest::of_bytes(s.as_bytes()))
    }

    fn desc(mt: &str, digest: BlobDigest, size: i64) -> Descriptor {
        Descriptor {
            media_type: mt.into(),
            digest: Some(digest),
            raw_digest: digest.to_string(),
            size,
            platform: None,
            annotations: BTreeMap::new(),
        }
    }

    struct Model {
        s: State,
    }

    impl Model {
        fn new() -> Model {
            let ns = Namespace {
                name: "moby".into(),
                ..Namespace::default()
            };
            Model {
                s: State {
                    paths: Paths::new(std::path::Path::new("/nonexistent")),
                    docker_root: None,
                    scope: Scope::One("moby".into()),
                    read_at: Time::from_unix(1_900_000_000, 0),
                    live: Liveness::default(),
                    version: Some(Version {
                        schema: 4,
                        family: "2.2+",
                        evidence: String::new(),
                        gc: GcRules {
                            images_are_nodes: true,
                            root_prefix: true,
                            back_refs: true,
                            conditional: false,
                        },
                    }),
                    meta_error: None,
                    namespaces: [("moby".to_string(), ns)].into_iter().collect(),
                    other_top: Vec::new(),
                    snapshotters: [(
                        "overlayfs".to_string(),
                        Snapshotter {
                            name: "overlayfs".into(),
                            ..Snapshotter::default()
                        },
                    )]
                    .into_iter()
                    .collect(),
                    other_snapshotters: BTreeMap::new(),
                    blobs: BTreeMap::new(),
                    ingests: BTreeMap::new(),
                    docs: BTreeMap::new(),
                    docker_containers: Vec::new(),
                },
            }
        }

        fn ns(&mut self) -> &mut Namespace {
            self.s.namespaces.get_mut("moby").unwrap()
        }

        fn blob(&mut self, digest: BlobDigest, size: i64) {
            self.ns().blobs.insert(
                digest,
                BlobRec {
                    size,
                    created: None,
                    updated: None,
                    labels: BTreeMap::new(),
                },
            );
        }

        /// A snapshot keyed `key` with `size` bytes, committed or active.
        fn snapshot(&mut self, key: &str, parent: Option<&str>, size: u64, committed: bool) {
            let sn = self.s.snapshotters.get_mut("overlayfs").unwrap();
            let id = sn.backends.len() as u64 + 1;
            let name = format!("moby/{id}/{key}");
            let parent_name = parent.map(|p| {
                sn.backends
                    .keys()
                    .find(|n| n.ends_with(&format!("/{p}")))
                    .cloned()
                    .unwrap()
            });
            sn.backends.insert(
                name.clone(),
                Backend {
                    id,
                    kind: if committed {
                        SnapKind::Committed
                    } else {
                        SnapKind::Active
                    },
                    parent: parent_name,
                    size: committed.then_some(size as i64),
                    inodes: committed.then_some(1),
                    created: None,
                    labels: BTreeMap::new(),
                },
            );
            if !committed {
                sn.walked
                    .insert(name.clone(), SnapUsage { size, inodes: 1 });
            }
            self.ns()
                .snapshots
                .entry("overlayfs".into())
                .or_default()
                .insert(
                    SnapshotKey(key.into()),
                    SnapRec {
                        name,
                        parent: parent.map(|p| SnapshotKey(p.into())),
                        children: Vec::new(),
                        created: None,
                        updated: None,
                        labels: BTreeMap::new(),
                    },
                );
        }

        /// An image over `layers` (name, blob size, snapshot size); returns its target.
        fn image(
            &mut self,
            names: &[&str],
            tag: &str,
            layers: &[(&str, i64)],
            manifest: i64,
            config: i64,
        ) -> BlobDigest {
            let diffs: Vec<DiffId> = layers
                .iter()
                .map(|(l, _)| DiffId(Digest::of_bytes(format!("diff {l}").as_bytes())))
                .collect();
            let cd = d(&format!("config {tag}"));
            let md = d(&format!("manifest {tag}"));
            let lds: Vec<Descriptor> = layers
                .iter()
                .map(|(l, sz)| {
                    desc(
                        "application/vnd.oci.image.layer.v1.tar+gzip",
                        d(&format!("blob {l}")),
                        *sz,
                    )
                })
                .collect();
            for l in &lds {
                self.blob(l.digest.unwrap(), l.size);
            }
            self.blob(cd, config);
            self.blob(md, manifest);
            self.s.docs.insert(
                md,
                Doc::Manifest {
                    config: desc(manifest::OCI_CONFIG, cd, config),
                    layers: lds,
                },
            );
            self.s.docs.insert(
                cd,
                Doc::Config(ImageConfig {
                    created: Some("2024-01-01T00:00:00Z".into()),
                    os: Some("linux".into()),
                    architecture: Some(manifest::host_platform().architecture),
                    variant: manifest::host_platform().variant,
                    diff_ids: diffs,
                    labels: BTreeMap::new(),
                }),
            );
            for n in names {
                self.ns().images.insert(
                    n.to_string(),
                    ImageRec {
                        name: n.to_string(),
                        created: None,
                        updated: None,
                        labels: BTreeMap::new(),
                        annotations: BTreeMap::new(),
                        target: Target {
                            digest: Some(md),
                            raw_digest: md.to_string(),
                            media_type: manifest::OCI_MANIFEST.into(),
                            size: manifest,
                        },
                    },
                );
            }
            md
        }

        fn chain(layers: &[&str]) -> Vec<String> {
            let diffs: Vec<DiffId> = layers
                .iter()
                .map(|l| DiffId(Digest::of_bytes(format!("diff {l}").as_bytes())))
                .collect();
            ChainId::chain(&diffs)
                .iter()
                .map(|c| c.to_string())
                .collect()
        }

        fn scenario() -> Model {
            let mut m = Model::new();
            let b = &Model::chain(&["B"]);
            let l1 = &Model::chain(&["B", "L1"]);
            let l2 = &Model::chain(&["B", "L1", "L2"]);
            m.snapshot(&b[0], None, 4000, true);
            m.snapshot(&l1[1], Some(&b[0]), 800, true);
            m.snapshot(&l2[2], Some(&l1[1]), 100, true);
            let a = m.image(&["a:1"], "A", &[("B", 1000), ("L1", 200)], 300, 100);
            m.image(
                &["c:1"],
                "C",
                &[("B", 1000), ("L1", 200), ("L2", 50)],
                310,
                110,
            );
            m.image(&["d:1"], "D", &[("B", 1000)], 290, 90);
            m.image(&["moby-dangling@E"], "E", &[("B", 1000)], 280, 80);
            // A dangling name on A's target: ignored, A is named.
            let rec = m.ns().images["a:1"].clone();
            m.ns().images.insert(
                format!("moby-dangling@{a}"),
                ImageRec {
                    name: format!("moby-dangling@{a}"),
                    ..rec
                },
            );
            m.snapshot("ctrX", Some(&l1[1]), 500, false);
            m.ns().containers.insert(
                "ctrX".into(),
                ContainerRec {
                    image: Some("a:1".into()),
                    snapshotter: Some("overlayfs".into()),
                    snapshot_key: Some(SnapshotKey("ctrX".into())),
                    runtime: None,
                    labels: BTreeMap::new(),
                    sandbox_id: None,
                    created: None,
                },
            );
            m
        }

        fn usage(self, version: Option<&str>) -> Usage {
            let snap = Snapshot {
                root: "/nonexistent".into(),
                engine_id_present: true,
                refs: Vec::new(),
                images: BTreeMap::new(),
                layers: BTreeMap::new(),
                containers: BTreeMap::new(),
                volumes: Vec::new(),
                anomalies: Vec::new(),
                unresolved: Vec::new(),
                source: Default::default(),
                store: Store::Containerd(self.s),
            };
            compute(
                &snap,
                &Options {
                    engine: version.map(|v| EngineVersion::parse(v).unwrap()),
                },
            )
            .unwrap()
        }
    }

    fn img<'u>(u: &'u Usage, name: &str) -> &'u ImageUsage {
        u.images
            .iter()
            .find(|i| i.names.iter().any(|n| n == name))
            .unwrap()
    }

    fn row<'u>(u: &'u Usage, kind: &str) -> &'u SummaryRow {
        u.summary.iter().find(|r| r.kind == kind).unwrap()
    }

    #[test]
    fn sizes_are_content_plus_unpacked_chains() {
        let u = Model::scenario().usage(None);
        assert_eq!(img(&u, "a:1").size, 300 + 100 + 1000 + 200 + 4000 + 800);
        assert_eq!(img(&u, "c:1").size, 310 + 110 + 1250 + 4900);
        assert_eq!(img(&u, "d:1").size, 290 + 90 + 1000 + 4000);
        assert_eq!(
            u.images.len(),
            4,
            "A's dangling name is not an image of its own"
        );
        assert!(!img(&u, "a:1").dangling);
        assert!(img(&u, "moby-dangling@E").dangling);
        assert_eq!(img(&u, "a:1").containers, 1);
        assert_eq!(u.engine_rules.name, "29.6+");
        assert!(!u.engine_rules.chosen);
    }

    #[test]
    fn shared_size_counts_content_from_29_5() {
        for v in ["29.5", "29.6", "29.9"] {
            let u = Model::scenario().usage(Some(v));
            // A: chains B and L1, blobs B and L1 are in other images too.
            assert_eq!(img(&u, "a:1").shared_size, 4000 + 800 + 1000 + 200, "{v}");
            assert_eq!(img(&u, "d:1").shared_size, 4000 + 1000, "{v}");
            assert_eq!(img(&u, "a:1").unique_size, 400, "{v}");
        }
        for v in ["29.0", "29.3", "29.4"] {
            let u = Model::scenario().usage(Some(v));
            assert_eq!(img(&u, "a:1").shared_size, 4800, "{v}");
            assert_eq!(img(&u, "d:1").shared_size, 4000, "{v}");
        }
    }

    #[test]
    fn total_size_counts_image_chains_from_29_6_and_every_snapshot_before() {
        // Content: four manifests, four configs, three distinct layer blobs.
        let content = (300 + 310 + 290 + 280) + (100 + 110 + 90 + 80) + 1250;
        let u = Model::scenario().usage(None);
        assert_eq!(row(&u, "images").size, 4900 + content);
        let u = Model::scenario().usage(Some("29.5"));
        assert_eq!(row(&u, "images").size, 4900 + 500 + content, "ctrX counts");
    }

    #[test]
    fn active_and_reclaimable_changed_in_29_4() {
        let u = Model::scenario().usage(Some("29.4"));
        let unique_unused: u64 = ["c:1", "d:1", "moby-dangling@E"]
            .iter()
            .map(|n| img(&u, n).unique_size)
            .sum();
        assert_eq!(row(&u, "images").active, 1);
        assert_eq!(row(&u, "images").reclaimable, unique_unused);
        let u = Model::scenario().usage(Some("29.3"));
        assert_eq!(row(&u, "images").active, 1);
        let total = row(&u, "images").size;
        assert_eq!(row(&u, "images").reclaimable, total - unique_unused);
    }

    #[test]
    fn a_missing_snapshot_makes_the_whole_chain_zero() {
        let mut m = Model::scenario();
        let l2 = Model::chain(&["B", "L1", "L2"]);
        m.ns()
            .snapshots
            .get_mut("overlayfs")
            .unwrap()
            .remove(&SnapshotKey(l2[2].clone()));
        let u = m.usage(None);
        assert_eq!(img(&u, "c:1").size, 310 + 110 + 1250, "content only");
        assert!(!img(&u, "c:1").unpacked);
    }

    #[test]
    fn a_missing_manifest_record_drops_its_subtree_and_a_missing_layer_adds_zero() {
        let mut m = Model::scenario();
        let c = m.ns().images["c:1"].target.digest.unwrap();
        m.ns().blobs.remove(&c);
        let l2 = d("blob L2");
        let u = m.usage(None);
        assert_eq!(img(&u, "c:1").size, 0);
        let mut m = Model::scenario();
        m.ns().blobs.remove(&l2);
        let u = m.usage(None);
        assert_eq!(img(&u, "c:1").size, 310 + 110 + 1200 + 4900);
    }

    #[test]
    fn engine_versions_parse_and_older_engines_are_refused() {
        assert_eq!(EngineVersion::parse("29.5.1").unwrap().minor, 5);
        assert_eq!(EngineVersion::parse("docker-v29.7.2").unwrap().minor, 7);
        assert_eq!(EngineVersion::parse("29").unwrap().minor, 0);
        assert!(EngineVersion::parse("28.3").is_err());
        assert!(EngineVersion::parse("new").is_err());
    }
}
