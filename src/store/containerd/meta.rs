//! meta.db, containerd's metadata store (`core/metadata/buckets.go` and the
//! per-object files `images.go`, `content.go`, `snapshot.go`,
//! `containers.go`, `leases.go`, `sandbox.go`; 1.6/1.7: `metadata/`).
//! Layout: `v1/version` and one bucket per namespace under `v1`; every
//! object a bucket of its own. Values decode with [`super::decode`].

use super::decode::{Time, uvarint, varint};
use crate::ids::{BlobDigest, SnapshotKey};
use crate::store::{Anomaly, AnomalyKind};
use bbolt::{Bucket, Db};
use serde::Serialize;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

/// Schema versions of `v1` this reader knows (`core/metadata/db.go`
/// `dbVersion`): 3 through containerd 1.7, 4 from 2.0 (migration 4 moved
/// 1.7's top-level sandbox buckets under the namespaces).
pub const KNOWN_VERSIONS: [i64; 2] = [3, 4];

pub type Labels = BTreeMap<String, String>;

#[derive(Debug, Clone, Default, Serialize)]
pub struct Namespace {
    pub name: String,
    pub labels: Labels,
    pub images: BTreeMap<String, ImageRec>,
    pub blobs: BTreeMap<BlobDigest, BlobRec>,
    pub ingests: BTreeMap<String, IngestRec>,
    /// Snapshot records per snapshotter, by key.
    pub snapshots: BTreeMap<String, BTreeMap<SnapshotKey, SnapRec>>,
    pub containers: BTreeMap<String, ContainerRec>,
    pub leases: BTreeMap<String, LeaseRec>,
    pub sandboxes: BTreeMap<String, SandboxRec>,
}

/// A descriptor as meta.db stores an image target (`images.go` `readImage`).
#[derive(Debug, Clone, Serialize)]
pub struct Target {
    /// `None` when the stored digest is not a sha256 digest (see `raw_digest`).
    pub digest: Option<BlobDigest>,
    pub raw_digest: String,
    pub media_type: String,
    pub size: i64,
}

#[derive(Debug, Clone, Serialize)]
pub struct ImageRec {
    pub name: String,
    pub created: Option<Time>,
    pub updated: Option<Time>,
    pub labels: Labels,
    pub annotations: Labels,
    pub target: Target,
}

#[derive(Debug, Clone, Serialize)]
pub struct BlobRec {
    pub size: i64,
    pub created: Option<Time>,
    pub updated: Option<Time>,
    pub labels: Labels,
}

/// `content/ingests/<ref>` (`content.go` `Writer`, `createIngest`).
#[derive(Debug, Clone, Serialize)]
pub struct IngestRec {
    /// The backend ref `"<ns>/<seq>/<ref>"`: the content store names the
    /// ingest directory by its sha256.
    pub backend_ref: String,
    /// Set only when the write is not leased: the record lives until then.
    pub expire_at: Option<Time>,
    /// The digest the write will produce when the backend already had it.
    pub expected: Option<BlobDigest>,
}

/// `snapshots/<snapshotter>/<key>` (`snapshot.go` `createSnapshot`, `Commit`).
#[derive(Debug, Clone, Serialize)]
pub struct SnapRec {
    /// The backend name `"<ns>/<seq>/<key>"` in the snapshotter's metastore.
    pub name: String,
    /// The parent's key in this namespace.
    pub parent: Option<SnapshotKey>,
    pub children: Vec<SnapshotKey>,
    pub created: Option<Time>,
    pub updated: Option<Time>,
    pub labels: Labels,
}

/// `containers/<id>` (`containers.go` `writeContainer`).
#[derive(Debug, Clone, Serialize)]
pub struct ContainerRec {
    pub image: Option<String>,
    pub snapshotter: Option<String>,
    pub snapshot_key: Option<SnapshotKey>,
    pub runtime: Option<String>,
    pub labels: Labels,
    pub sandbox_id: Option<String>,
    pub created: Option<Time>,
}

/// `leases/<id>` (`leases.go` `Create`, `addContentLease`, `addSnapshotLease`, ...).
#[derive(Debug, Clone, Default, Serialize)]
pub struct LeaseRec {
    pub created: Option<Time>,
    pub labels: Labels,
    pub content: Vec<BlobDigest>,
    /// (snapshotter, key).
    pub snapshots: Vec<(String, SnapshotKey)>,
    pub ingests: Vec<String>,
    /// 2.0+: images that carry `gc.expire`.
    pub images: Vec<String>,
}

#[derive(Debug, Clone, Default, Serialize)]
pub struct SandboxRec {
    pub labels: Labels,
}

/// Everything meta.db holds, with what looked wrong on the way.
#[derive(Debug, Default)]
pub struct Meta {
    /// `v1/version`.
    pub version: i64,
    pub namespaces: BTreeMap<String, Namespace>,
    /// Top-level buckets other than `v1` (1.7 keeps sandboxes there).
    pub other_top: Vec<String>,
    /// 1.7's top-level `<ns>/sandboxes` buckets (`createSandboxBucket`).
    pub toplevel_sandboxes: bool,
    /// `sandboxid` on a container record: written from 1.7 on.
    pub sandbox_ids: bool,
    pub anomalies: Vec<Anomaly>,
}

/// Why meta.db could not be read at all.
#[derive(Debug, Clone, thiserror::Error, Serialize)]
pub enum MetaError {
    #[error("{0}")]
    Open(String),
    #[error(
        "{file}: no v1 bucket (top-level buckets: {found}); not a containerd meta.db dockgc reads"
    )]
    NoV1 { file: PathBuf, found: String },
    #[error(
        "{file}: schema v1 version {version}; dockgc reads versions 3 (containerd 1.x) and 4 (2.x)"
    )]
    Version { file: PathBuf, version: String },
}

fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

/// A label bucket as string pairs; an empty or missing bucket is no labels.
pub fn labels(b: Option<Bucket<'_>>) -> Labels {
    b.map(|b| b.values().map(|(k, v)| (text(k), text(v))).collect())
        .unwrap_or_default()
}

struct Ctx<'a> {
    file: &'a Path,
    anomalies: Vec<Anomaly>,
}

impl Ctx<'_> {
    fn bad(&mut self, what: String) {
        self.anomalies.push(Anomaly {
            kind: AnomalyKind::Containerd,
            path: self.file.to_path_buf(),
            message: what,
        });
    }

    fn time(&mut self, b: Bucket<'_>, key: &str, at: &str) -> Option<Time> {
        let v = b.get(key)?;
        match Time::from_go_binary(v) {
            Ok(t) => Some(t),
            Err(e) => {
                self.bad(format!("{at}/{key}: {e}"));
                None
            }
        }
    }

    fn int(&mut self, b: Bucket<'_>, key: &str, at: &str) -> Option<i64> {
        let v = b.get(key)?;
        match varint(v) {
            Ok(n) => Some(n),
            Err(e) => {
                self.bad(format!("{at}/{key}: {e}"));
                None
            }
        }
    }

    fn digest(&mut self, raw: &[u8], at: &str) -> Option<BlobDigest> {
        let s = text(raw);
        match BlobDigest::parse(&s) {
            Ok(d) => Some(d),
            Err(_) => {
                self.bad(format!(
                    "{at}: {s:?} is not a sha256 digest; dockgc reads sha256 content only"
                ));
                None
            }
        }
    }
}

/// Reads a validated meta.db.
pub fn read(db: &Db) -> Result<Meta, MetaError> {
    let file = db.file();
    let root = db.root();
    let mut other_top = Vec::new();
    let mut toplevel_sandboxes = false;
    for (k, b) in root.buckets() {
        if k != b"v1" {
            other_top.push(text(k));
            if b.bucket("sandboxes").is_some() {
                toplevel_sandboxes = true;
            }
        }
    }
    let Some(v1) = db.bucket("v1") else {
        return Err(MetaError::NoV1 {
            file: file.to_path_buf(),
            found: if other_top.is_empty() {
                "none".into()
            } else {
                other_top.join(", ")
            },
        });
    };
    let version = match v1.get("version").map(varint) {
        Some(Ok(v)) if KNOWN_VERSIONS.contains(&v) => v,
        Some(Ok(v)) => {
            return Err(MetaError::Version {
                file: file.to_path_buf(),
                version: v.to_string(),
            });
        }
        Some(Err(e)) => {
            return Err(MetaError::Version {
                file: file.to_path_buf(),
                version: format!("unreadable ({e})"),
            });
        }
        None => {
            return Err(MetaError::Version {
                file: file.to_path_buf(),
                version: "missing".into(),
            });
        }
    };
    let mut cx = Ctx {
        file,
        anomalies: Vec::new(),
    };
    let mut namespaces = BTreeMap::new();
    let mut sandbox_ids = false;
    // Values under v1 (the version) are not namespaces; the GC skips them
    // too (`core/metadata/gc.go` `scanRoots`).
    for (k, nb) in v1.buckets() {
        let ns = read_namespace(&mut cx, &text(k), nb);
        sandbox_ids |= ns.containers.values().any(|c| c.sandbox_id.is_some());
        namespaces.insert(ns.name.clone(), ns);
    }
    Ok(Meta {
        version,
        namespaces,
        other_top,
        toplevel_sandboxes,
        sandbox_ids,
        anomalies: cx.anomalies,
    })
}

fn read_namespace(cx: &mut Ctx<'_>, name: &str, nb: Bucket<'_>) -> Namespace {
    let mut ns = Namespace {
        name: name.to_string(),
        labels: labels(nb.bucket("labels")),
        ..Namespace::default()
    };
    // The schema comment in buckets.go says `image`; the key is `images`.
    if let Some(ib) = nb.bucket("images") {
        for (k, b) in ib.buckets() {
            let at = format!("v1/{name}/images/{}", text(k));
            if let Some(img) = read_image(cx, &at, k, b) {
                ns.images.insert(text(k), img);
            }
        }
    }
    if let Some(cb) = nb.bucket("content") {
        read_content(cx, name, cb, &mut ns);
    }
    if let Some(sb) = nb.bucket("snapshots") {
        ns.snapshots = read_snapshot_recs(cx, name, sb);
    }
    if let Some(cb) = nb.bucket("containers") {
        for (k, b) in cb.buckets() {
            let at = format!("v1/{name}/containers/{}", text(k));
            let s = |key: &str| b.get(key).filter(|v| !v.is_empty()).map(text);
            ns.containers.insert(
                text(k),
                ContainerRec {
                    image: s("image"),
                    snapshotter: s("snapshotter"),
                    snapshot_key: s("snapshotKey").map(SnapshotKey),
                    runtime: b.bucket("runtime").and_then(|r| r.get("name")).map(text),
                    labels: labels(b.bucket("labels")),
                    sandbox_id: s("sandboxid"),
                    created: cx.time(b, "createdat", &at),
                },
            );
        }
    }
    if let Some(lb) = nb.bucket("leases") {
        for (k, b) in lb.buckets() {
            let at = format!("v1/{name}/leases/{}", text(k));
            let lease = read_lease(cx, &at, b);
            ns.leases.insert(text(k), lease);
        }
    }
    if let Some(sb) = nb.bucket("sandboxes") {
        for (k, b) in sb.buckets() {
            ns.sandboxes.insert(
                text(k),
                SandboxRec {
                    labels: labels(b.bucket("labels")),
                },
            );
        }
    }
    ns
}

/// `content/blob` and `content/ingests` of a namespace.
fn read_content(cx: &mut Ctx<'_>, name: &str, cb: Bucket<'_>, ns: &mut Namespace) {
    if let Some(bb) = cb.bucket("blob") {
        for (k, b) in bb.buckets() {
            let at = format!("v1/{name}/content/blob/{}", text(k));
            let Some(d) = cx.digest(k, &at) else { continue };
            let size = cx.int(b, "size", &at).unwrap_or(0);
            ns.blobs.insert(
                d,
                BlobRec {
                    size,
                    created: cx.time(b, "createdat", &at),
                    updated: cx.time(b, "updatedat", &at),
                    labels: labels(b.bucket("labels")),
                },
            );
        }
    }
    if let Some(ib) = cb.bucket("ingests") {
        for (k, b) in ib.buckets() {
            let at = format!("v1/{name}/content/ingests/{}", text(k));
            let expected = b.get("expected").and_then(|v| cx.digest(v, &at));
            ns.ingests.insert(
                text(k),
                IngestRec {
                    backend_ref: b.get("ref").map(text).unwrap_or_default(),
                    expire_at: cx.time(b, "expireat", &at),
                    expected,
                },
            );
        }
    }
}

/// `snapshots/<snapshotter>/<key>` records of a namespace.
fn read_snapshot_recs(
    cx: &mut Ctx<'_>,
    name: &str,
    sb: Bucket<'_>,
) -> BTreeMap<String, BTreeMap<SnapshotKey, SnapRec>> {
    let mut out = BTreeMap::new();
    for (sn, snb) in sb.buckets() {
        let sn = text(sn);
        let mut recs = BTreeMap::new();
        for (k, b) in snb.buckets() {
            let at = format!("v1/{name}/snapshots/{sn}/{}", text(k));
            let children = b
                .bucket("children")
                .map(|c| c.iter().map(|(k, _)| SnapshotKey(text(k))).collect())
                .unwrap_or_default();
            recs.insert(
                SnapshotKey(text(k)),
                SnapRec {
                    name: b.get("name").map(text).unwrap_or_default(),
                    parent: b
                        .get("parent")
                        .filter(|p| !p.is_empty())
                        .map(|p| SnapshotKey(text(p))),
                    children,
                    created: cx.time(b, "createdat", &at),
                    updated: cx.time(b, "updatedat", &at),
                    labels: labels(b.bucket("labels")),
                },
            );
        }
        out.insert(sn, recs);
    }
    out
}

/// One lease record and the resources it names.
fn read_lease(cx: &mut Ctx<'_>, at: &str, b: Bucket<'_>) -> LeaseRec {
    let keys = |sub: &str| -> Vec<String> {
        b.bucket(sub)
            .map(|s| s.iter().map(|(k, _)| text(k)).collect())
            .unwrap_or_default()
    };
    let mut lease = LeaseRec {
        created: cx.time(b, "createdat", at),
        labels: labels(b.bucket("labels")),
        ingests: keys("ingests"),
        images: keys("images"),
        ..LeaseRec::default()
    };
    for d in keys("content") {
        if let Some(d) = cx.digest(d.as_bytes(), &format!("{at}/content")) {
            lease.content.push(d);
        }
    }
    if let Some(ss) = b.bucket("snapshots") {
        for (sn, keys) in ss.buckets() {
            for (key, _) in keys.iter() {
                lease.snapshots.push((text(sn), SnapshotKey(text(key))));
            }
        }
    }
    lease
}

fn read_image(cx: &mut Ctx<'_>, at: &str, name: &[u8], b: Bucket<'_>) -> Option<ImageRec> {
    let Some(t) = b.bucket("target") else {
        cx.bad(format!("{at}: no target; containerd cannot use this image"));
        return None;
    };
    let raw_digest = t.get("digest").map(text).unwrap_or_default();
    let digest = cx.digest(raw_digest.as_bytes(), &format!("{at}/target/digest"));
    let size = cx.int(t, "size", &format!("{at}/target")).unwrap_or(0);
    Some(ImageRec {
        name: text(name),
        created: cx.time(b, "createdat", at),
        updated: cx.time(b, "updatedat", at),
        labels: labels(b.bucket("labels")),
        annotations: labels(b.bucket("annotations")),
        target: Target {
            digest,
            raw_digest,
            media_type: t.get("mediatype").map(text).unwrap_or_default(),
            size,
        },
    })
}

/// The sequence of a namespace's snapshotter bucket: the last `<seq>`
/// handed out in backend names (`snapshot.go` `createKey`).
pub fn snapshot_sequence(db: &Db, ns: &str, snapshotter: &str) -> Option<u64> {
    db.bucket_path(["v1", ns, "snapshots", snapshotter])
        .map(|b| b.sequence())
}

/// `id` in the metastore is a `PutUvarint` (`bolt.go` `encodeID`); exported
/// for the metastore reader.
pub fn decode_id(b: &[u8]) -> Result<u64, String> {
    uvarint(b)
}
