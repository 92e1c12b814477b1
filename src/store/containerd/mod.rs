//! The containerd source: reads a containerd root (meta.db, each
//! snapshotter's metastore and directories, the content store's files) into
//! the store-neutral inventory plus [`State`]. Everything here only reads:
//! bbolt files are read whole without a lock ([`bbolt::Db::open`] retries
//! until it holds one consistent copy of a file a live containerd writes),
//! and nothing is ever started or written.
//!
//! The whole root is read, every namespace: containerd's garbage collector
//! marks across all of them and a blob file goes only when no namespace
//! records it, so even a one-namespace report needs them all.

pub mod content;
pub mod decode;
pub mod docker;
pub mod manifest;
pub mod meta;
pub mod metastore;
pub mod paths;
pub mod snapshots;

pub use content::{BlobFile, IngestDir};
pub use decode::Time;
pub use docker::DockerContainer;
pub use manifest::{Descriptor, Doc, ImageConfig, Platform};
pub use meta::{
    BlobRec, ContainerRec, ImageRec, IngestRec, LeaseRec, Namespace, SandboxRec, SnapRec, Target,
};
pub use metastore::{Backend, SnapKind};
pub use paths::Paths;
pub use snapshots::{SnapDir, Snapshotter, Usage};

use super::{Anomaly, AnomalyKind, Image, Layer, Reference, Snapshot, Store};
use crate::ids::{BlobDigest, ChainId, ImageId};
use serde::Serialize;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

/// Docker 29 and dockerd-managed containerds keep their images here
/// (moby `daemon/config/config.go` `DefaultContainersNamespace`).
pub const MOBY: &str = "moby";

/// Which namespaces a report covers.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Scope {
    One(String),
    All,
}

impl Scope {
    pub fn covers(&self, ns: &str) -> bool {
        match self {
            Scope::One(n) => n == ns,
            Scope::All => true,
        }
    }

    /// The word reports use: the namespace, or `all`.
    pub fn name(&self) -> &str {
        match self {
            Scope::One(n) => n,
            Scope::All => "all",
        }
    }
}

/// What to read.
#[derive(Debug, Clone)]
pub struct Options {
    /// The containerd root (`root` in its config.toml).
    pub root: PathBuf,
    /// The Docker root this containerd serves, when there is one: its
    /// containers count for namespace `moby`.
    pub docker_root: Option<PathBuf>,
    pub scope: Scope,
    /// Measure active snapshots now (what `ctr snapshots usage` does).
    pub walk_active: bool,
    /// Look inside every snapshot dir for its `fs/` (verify's check 9);
    /// `df` only needs the listing.
    pub check_dirs: bool,
}

/// The rules of containerd's garbage collector that changed across
/// versions (`core/metadata/gc.go`; 1.x `metadata/gc.go`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct GcRules {
    /// 2.0+: images are GC nodes (collected when their `gc.expire` passed),
    /// leases hold images, and `gc.ref.image` labels refer to them.
    pub images_are_nodes: bool,
    /// 2.2+: `containerd.io/gc.root` matches as a key prefix, not exactly.
    pub root_prefix: bool,
    /// 2.2+: `gc.bref.*` back-references.
    pub back_refs: bool,
    /// 2.3+: `gc.cond.snapshot.*` conditional references.
    pub conditional: bool,
}

/// The containerd version family that wrote the root, as far as the files tell.
#[derive(Debug, Clone, Serialize)]
pub struct Version {
    /// `v1/version` in meta.db.
    pub schema: i64,
    /// `1.6`, `1.7`, `1.x`, `2.0/2.1`, `2.2+`, `2.3+`.
    pub family: &'static str,
    /// What the family was inferred from.
    pub evidence: String,
    pub gc: GcRules,
}

/// Whether a containerd has the root open now: it holds meta.db and each
/// metastore with an exclusive flock for its whole life.
#[derive(Debug, Clone, Default, Serialize)]
pub struct Liveness {
    /// Some bbolt file is held by a writer (`flock(LOCK_EX)`): a containerd runs.
    pub live: bool,
    /// The files whose lock is held.
    pub held: Vec<PathBuf>,
}

#[derive(Debug, Clone, Serialize)]
pub struct State {
    pub paths: Paths,
    pub docker_root: Option<PathBuf>,
    pub scope: Scope,
    /// "Now" for every expiry decision (leases, ingests, images).
    pub read_at: Time,
    pub live: Liveness,
    /// `None` when meta.db could not be read (see `meta_error`).
    pub version: Option<Version>,
    /// Why meta.db could not be read; then nothing of it is known.
    pub meta_error: Option<String>,
    pub namespaces: BTreeMap<String, Namespace>,
    /// Top-level meta.db buckets other than `v1`.
    pub other_top: Vec<String>,
    /// The snapshotters dockgc reads (overlayfs, native) that exist here.
    pub snapshotters: BTreeMap<String, Snapshotter>,
    /// Snapshotter plugin dirs dockgc does not read, with their record counts.
    pub other_snapshotters: BTreeMap<String, usize>,
    pub blobs: BTreeMap<BlobDigest, BlobFile>,
    pub ingests: BTreeMap<String, IngestDir>,
    /// Parsed indexes, manifests and configs, by digest.
    pub docs: BTreeMap<BlobDigest, Doc>,
    /// Docker's containers (namespace `moby`), when a Docker root is known.
    pub docker_containers: Vec<DockerContainer>,
    /// Docker's volumes (`<root>/volumes`), when a Docker root is known:
    /// Engine 29 keeps them as with a graphdriver.
    pub docker_volumes: Vec<crate::store::Volume>,
}

impl State {
    /// The namespaces a report covers, in name order.
    pub fn scoped(&self) -> impl Iterator<Item = &Namespace> {
        self.namespaces
            .values()
            .filter(|n| self.scope.covers(&n.name))
    }

    /// The snapshotter images are unpacked into: overlayfs, containerd's
    /// default (`defaults.DefaultSnapshotter`), unless only native holds
    /// records. A host configured with `snapshotter = "native"` (no overlay
    /// support, e.g. inside a container) has nothing in overlayfs, and
    /// sizing its images against an empty overlayfs would call every image
    /// not unpacked.
    pub fn default_snapshotter(&self) -> &str {
        let used = |sn: &str| {
            self.namespaces
                .values()
                .any(|n| n.snapshots.get(sn).is_some_and(|r| !r.is_empty()))
        };
        if !used("overlayfs") && used("native") {
            "native"
        } else {
            "overlayfs"
        }
    }

    /// The manifest, index or config parsed from a blob.
    pub fn doc(&self, d: &BlobDigest) -> Option<&Doc> {
        self.docs.get(d)
    }
}

/// Why a containerd root cannot be read at all.
#[derive(Debug, thiserror::Error)]
pub enum OpenError {
    #[error("{path}: not a containerd root (no io.containerd.metadata.v1.bolt/meta.db)")]
    NotARoot { path: PathBuf },
    #[error(
        "{path}: namespace {namespace:?} does not exist in meta.db; namespaces here: {present} \
         (pass --namespace NS or --namespace all)"
    )]
    NoNamespace {
        path: PathBuf,
        namespace: String,
        present: String,
    },
}

/// Reads a containerd root. A meta.db that cannot be read is not an error
/// here: `State::meta_error` says why, so verify can report it as damage.
pub fn read(opts: &Options) -> Result<Snapshot, OpenError> {
    let paths = Paths::new(&opts.root);
    if !paths.meta_db().exists() {
        return Err(OpenError::NotARoot {
            path: opts.root.clone(),
        });
    }
    let read_at = Time::now();
    let live = liveness(&paths);
    let ((meta, (snapshotters, other)), (content, docker)) = rayon::join(
        || {
            rayon::join(
                || read_meta(&paths),
                || read_snapshotters(&paths, opts.walk_active, opts.check_dirs),
            )
        },
        || {
            rayon::join(
                || content::read(&paths),
                || opts.docker_root.as_deref().map(docker_side),
            )
        },
    );
    let (meta, meta_error) = match meta {
        Ok(m) => (m, None),
        Err(e) => (meta::Meta::default(), Some(e)),
    };
    if meta_error.is_none()
        && let Scope::One(ns) = &opts.scope
        && !meta.namespaces.contains_key(ns)
    {
        return Err(no_namespace(&paths, &meta, ns));
    }
    let mut anomalies = meta.anomalies.clone();
    anomalies.extend(content.anomalies);
    let (sn_map, sn_anomalies) = snapshotters;
    anomalies.extend(sn_anomalies);
    let other_snapshotters = other_snapshotters(&paths, &meta, &sn_map, other, &mut anomalies);
    let (docker_containers, docker_volumes, docker_anomalies) = docker.unwrap_or_default();
    anomalies.extend(docker_anomalies);

    let targets: Vec<(BlobDigest, String)> = meta
        .namespaces
        .values()
        .flat_map(|n| n.images.values())
        .filter_map(|i| Some((i.target.digest?, i.target.media_type.clone())))
        .collect();
    let docs = manifest::read_all(&paths, targets, |d| content.blobs.get(d).map(|f| f.size));
    let version = meta_error.is_none().then(|| infer_version(&paths, &meta));
    let state = State {
        paths,
        docker_root: opts.docker_root.clone(),
        scope: opts.scope.clone(),
        read_at,
        live,
        version,
        meta_error: meta_error.map(|e| e.to_string()),
        namespaces: meta.namespaces,
        other_top: meta.other_top,
        snapshotters: sn_map,
        other_snapshotters,
        blobs: content.blobs,
        ingests: content.ingests,
        docs,
        docker_containers,
        docker_volumes,
    };
    let (refs, images, layers) = inventory(&state);
    anomalies.sort_by(|a, b| (&a.path, &a.message).cmp(&(&b.path, &b.message)));
    Ok(Snapshot {
        root: opts.root.clone(),
        engine_id_present: opts
            .docker_root
            .as_deref()
            .is_some_and(|d| crate::store::paths::DockerRoot::new(d).engine_id().exists()),
        refs,
        images,
        layers,
        containers: BTreeMap::new(),
        volumes: Vec::new(),
        anomalies,
        unresolved: Vec::new(),
        source: super::Source::Disk,
        store: Store::Containerd(state),
    })
}

/// Docker's containers and volumes of a Docker root in containerd mode.
fn docker_side(d: &Path) -> (Vec<DockerContainer>, Vec<super::Volume>, Vec<Anomaly>) {
    let d = crate::store::paths::DockerRoot::new(d);
    let ((c, mut a), (v, va)) = rayon::join(
        || docker::read(&d),
        || crate::store::volumes::read(&d, None),
    );
    a.extend(va);
    (c, v, a)
}

/// `--namespace NS` names none of meta.db's namespaces: say which exist.
fn no_namespace(paths: &Paths, meta: &meta::Meta, ns: &str) -> OpenError {
    OpenError::NoNamespace {
        path: paths.meta_db(),
        namespace: ns.to_string(),
        present: if meta.namespaces.is_empty() {
            "none".into()
        } else {
            meta.namespaces
                .keys()
                .cloned()
                .collect::<Vec<_>>()
                .join(", ")
        },
    }
}

/// Snapshotters dockgc does not read, with their record counts (plugin dirs
/// found, plus meta.db records naming others); each with records is named
/// as an anomaly.
fn other_snapshotters(
    paths: &Paths,
    meta: &meta::Meta,
    read: &BTreeMap<String, Snapshotter>,
    mut other: BTreeMap<String, usize>,
    anomalies: &mut Vec<Anomaly>,
) -> BTreeMap<String, usize> {
    for ns in meta.namespaces.values() {
        for (sn, recs) in &ns.snapshots {
            if !read.contains_key(sn) && !recs.is_empty() {
                *other.entry(sn.clone()).or_default() += recs.len();
            }
        }
    }
    for (sn, n) in &other {
        if *n > 0 {
            anomalies.push(Anomaly {
                kind: AnomalyKind::Containerd,
                path: paths.snapshotter(sn),
                message: format!(
                    "snapshotter {sn:?} is not one dockgc reads (overlayfs, native): its {n} \
                     snapshot(s) are listed but not measured"
                ),
            });
        }
    }
    other
}

fn read_meta(paths: &Paths) -> Result<meta::Meta, meta::MetaError> {
    let db = bbolt::Db::open(paths.meta_db()).map_err(|e| meta::MetaError::Open(e.to_string()))?;
    meta::read(&db)
}

type Snapshotters = (BTreeMap<String, Snapshotter>, Vec<Anomaly>);

/// Every `io.containerd.snapshotter.v1.*` directory: overlayfs and native
/// are read; the others are counted (records in their metastore) so a
/// report can name them.
fn read_snapshotters(
    paths: &Paths,
    walk_active: bool,
    check_dirs: bool,
) -> (Snapshotters, BTreeMap<String, usize>) {
    let mut read = BTreeMap::new();
    let mut anomalies = Vec::new();
    let mut other = BTreeMap::new();
    let names: Vec<String> = crate::store::fsread::list_dir_opt(paths.root())
        .map(|l| l.names)
        .unwrap_or_default()
        .into_iter()
        .filter_map(|n| {
            n.strip_prefix(paths::SNAPSHOTTER_PREFIX)
                .map(str::to_string)
        })
        .collect();
    for name in names {
        if snapshots::READ.contains(&name.as_str()) {
            let (sn, a) = snapshots::read(paths, &name, walk_active, check_dirs);
            anomalies.extend(a);
            read.insert(name, sn);
        } else {
            let n = bbolt::Db::open(paths.metastore(&name))
                .ok()
                .and_then(|db| {
                    db.bucket_path(["v1", "snapshots"])
                        .map(|b| b.buckets().count())
                })
                .unwrap_or(0);
            other.insert(name, n);
        }
    }
    ((read, anomalies), other)
}

/// Probes every bbolt file's lock without waiting ([`bbolt::probe_lock`]
/// takes and drops a shared flock at once): containerd holds meta.db and
/// each metastore exclusively while it runs (`plugins/metadata/plugin.go`,
/// `core/snapshots/storage/metastore.go` `NewMetaStore`).
fn liveness(paths: &Paths) -> Liveness {
    let mut files = vec![paths.meta_db()];
    for sn in snapshots::READ {
        files.push(paths.metastore(sn));
    }
    let held: Vec<PathBuf> = files
        .into_iter()
        .filter(|f| matches!(bbolt::probe_lock(f), Ok(bbolt::LockProbe::HeldExclusive)))
        .collect();
    Liveness {
        live: !held.is_empty(),
        held,
    }
}

fn infer_version(paths: &Paths, m: &meta::Meta) -> Version {
    let has_cond = m.namespaces.values().any(|ns| {
        let cond = |l: &meta::Labels| l.keys().any(|k| k.starts_with("containerd.io/gc.cond."));
        ns.blobs.values().any(|b| cond(&b.labels)) || ns.images.values().any(|i| cond(&i.labels))
    });
    let (family, evidence) = if m.version < 4 {
        if m.toplevel_sandboxes || m.sandbox_ids {
            ("1.7", "meta.db schema 3 with sandboxes (1.7)".to_string())
        } else {
            (
                "1.x",
                "meta.db schema 3 (containerd 1.6 or 1.7)".to_string(),
            )
        }
    } else if paths.mount_manager_db().exists() {
        if has_cond {
            (
                "2.3+",
                "schema 4, a mount manager and gc.cond labels".to_string(),
            )
        } else {
            ("2.2+", "schema 4 and a mount manager (2.2+)".to_string())
        }
    } else {
        (
            "2.0/2.1",
            "meta.db schema 4 without a mount manager".to_string(),
        )
    };
    let two = m.version >= 4;
    let two_two = family.starts_with("2.2") || family.starts_with("2.3");
    Version {
        schema: m.version,
        family,
        evidence,
        gc: GcRules {
            images_are_nodes: two,
            root_prefix: two_two,
            back_refs: two_two,
            conditional: family == "2.3+",
        },
    }
}

/// The store-neutral inventory of the scoped namespaces: image names as
/// references to their target digest (containerd's image ID), images by
/// target with their config's facts, and the image layers unpacked in the
/// default snapshotter by chain ID.
fn inventory(
    s: &State,
) -> (
    Vec<Reference>,
    BTreeMap<ImageId, Image>,
    BTreeMap<ChainId, Layer>,
) {
    let mut refs = Vec::new();
    let mut images = BTreeMap::new();
    let mut layers = BTreeMap::new();
    let host = manifest::host_platform();
    for ns in s.scoped() {
        let snaps = ns.snapshots.get(s.default_snapshotter());
        let sn = s.snapshotters.get(s.default_snapshotter());
        for img in ns.images.values() {
            let Some(target) = img.target.digest else {
                continue;
            };
            let id = ImageId(target.0);
            refs.push(Reference {
                repository: img
                    .name
                    .split(['@', ':'])
                    .next()
                    .unwrap_or(&img.name)
                    .to_string(),
                reference: img.name.clone(),
                image: id,
            });
            let Some(cfg) = config_of(s, &target, &host) else {
                continue;
            };
            let chain = ChainId::chain(&cfg.1.diff_ids);
            for (i, c) in chain.iter().enumerate() {
                let key = crate::ids::SnapshotKey(c.to_string());
                let size = snaps
                    .and_then(|m| m.get(&key))
                    .and_then(|r| sn.and_then(|sn| sn.usage(&r.name)))
                    .map(|u| u.size);
                if let Some(size) = size {
                    layers.entry(*c).or_insert(Layer {
                        chain_id: *c,
                        diff_id: cfg.1.diff_ids[i],
                        size,
                        parent: i.checked_sub(1).map(|p| chain[p]),
                    });
                }
            }
            images.entry(id).or_insert_with(|| Image {
                id,
                created_unix: cfg
                    .1
                    .created
                    .as_deref()
                    .and_then(|c| c.parse::<jiff::Timestamp>().ok())
                    .map(|t| t.as_second()),
                created: cfg.1.created.clone(),
                labels: cfg.1.labels.clone().into(),
                diff_ids: cfg.1.diff_ids.clone(),
                os: cfg.1.os.clone(),
                parent: None,
                last_updated: None,
                built_locally: false,
                config_bytes: u64::try_from(cfg.0).unwrap_or(0),
            });
        }
    }
    (refs, images, layers)
}

/// The config (its descriptor size and contents) of the host-platform
/// manifest under `target`.
pub fn config_of<'s>(
    s: &'s State,
    target: &BlobDigest,
    host: &Platform,
) -> Option<(i64, &'s ImageConfig)> {
    let manifest = match s.doc(target)? {
        Doc::Manifest { config, .. } => return cfg(s, config),
        Doc::Index { manifests } => manifests
            .iter()
            .find(|m| manifest::matches_host(m.platform.as_ref(), host))
            .or_else(|| manifests.iter().find(|m| !manifest::is_pseudo(m)))?,
        _ => return None,
    };
    match s.doc(manifest.digest.as_ref()?)? {
        Doc::Manifest { config, .. } => cfg(s, config),
        _ => None,
    }
}

fn cfg<'s>(s: &'s State, d: &Descriptor) -> Option<(i64, &'s ImageConfig)> {
    match s.doc(d.digest.as_ref()?)? {
        Doc::Config(c) => Some((d.size, c)),
        _ => None,
    }
}

/// The default containerd root for a Docker root in containerd mode.
pub fn root_for_docker(docker_root: &Path) -> PathBuf {
    paths::for_docker_root(docker_root)
}
