//! `verify`: integrity checks of the whole store. Quick checks read only
//! metadata (already in the Snapshot); deep checks rebuild every layer's tar
//! stream from tar-split and `diff/` and compare it with the diff ID.

mod checks;
pub mod containerd;
pub mod deep;
mod impact;
mod layerfiles;
pub mod select;
pub mod tarsplit;

use crate::graph::Graph;
use crate::ids::{ContainerId, ImageId};
use rayon::prelude::*;
use serde::Serialize;
use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::atomic::AtomicU64;

/// Stable check identifiers (JSON, docs, exit status).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Check {
    ConfigDigest,
    ConfigParse,
    ImageParent,
    Refs,
    LayerChain,
    LayerFiles,
    ChainId,
    DriverDir,
    Mounts,
    ContainerConfig,
    ContainerImage,
    Unreadable,
    LayerContent,
    TarSplit,
    // containerd stores (errors)
    /// meta.db cannot be read: nothing of the store is known.
    MetaDb,
    /// A snapshotter's metadata.db cannot be read.
    Metastore,
    BlobDigestMismatch,
    BlobSizeMismatch,
    BlobMissing,
    ImageClosure,
    ImageChain,
    UncompressedLabel,
    SnapshotBackend,
    SnapshotDirMissing,
    SnapshotParent,
    // warnings
    ImageRemoved,
    BuildkitRecord,
    BuildkitSnapshot,
    OrphanDir,
    OrphanMount,
    UnknownDir,
    UnreferencedLayer,
    Removing,
    WriteSet,
    DanglingLink,
    SizeMismatch,
    Unverifiable,
    // containerd stores (warnings)
    BlobFileUnrecorded,
    SnapshotDirUnrecorded,
    BackendUnreferenced,
    IngestDirWithoutRef,
    IngestRefMismatch,
    IngestDirUnrecorded,
}

impl Check {
    pub fn severity(self) -> Severity {
        use Check::*;
        match self {
            ImageRemoved
            | BuildkitRecord
            | BuildkitSnapshot
            | OrphanDir
            | OrphanMount
            | UnknownDir
            | UnreferencedLayer
            | Removing
            | WriteSet
            | DanglingLink
            | SizeMismatch
            | Unverifiable
            | BlobFileUnrecorded
            | SnapshotDirUnrecorded
            | BackendUnreferenced
            | IngestDirWithoutRef
            | IngestRefMismatch
            | IngestDirUnrecorded => Severity::Warning,
            _ => Severity::Error,
        }
    }

    pub fn id(self) -> String {
        serde_json::to_value(self)
            .ok()
            .and_then(|v| v.as_str().map(str::to_string))
            .unwrap_or_default()
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Severity {
    Error,
    Warning,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum SubjectKind {
    Image,
    Layer,
    Container,
    Mount,
    Reference,
    Path,
    /// containerd: a blob digest, a snapshot (`ns/snapshotter/key` or a
    /// backend name), an ingest directory.
    Blob,
    Snapshot,
    Ingest,
}

#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Serialize)]
pub struct Subject {
    pub kind: SubjectKind,
    /// Full image or chain ID, container ID, mount name, reference or path.
    pub id: String,
}

/// What a finding breaks: images whose layer chain contains the damaged
/// layer (or the damaged image itself) and containers on them.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
pub struct Impact {
    pub images: Vec<ImageId>,
    pub containers: Vec<ContainerId>,
}

#[derive(Clone, Debug, Serialize)]
pub struct Finding {
    pub check: Check,
    pub severity: Severity,
    pub subject: Subject,
    pub path: PathBuf,
    pub message: String,
    pub impact: Impact,
}

#[derive(Debug, Default, Serialize)]
pub struct Summary {
    pub errors: u64,
    pub warnings: u64,
    pub by_check: BTreeMap<String, u64>,
    pub images_checked: u64,
    pub layers_checked: u64,
    /// Deep only: bytes fed to sha256, and file bodies read and CRC-checked.
    pub bytes_hashed: u64,
    pub files_checked: u64,
    /// Deep only: layers that cannot be checked offline; not counted as passed.
    pub unverifiable: u64,
    /// containerd stores: blob files and snapshots covered.
    pub blobs_checked: u64,
    pub snapshots_checked: u64,
}

#[derive(Debug, Serialize)]
pub struct Report {
    /// `graphdriver` or `containerd`.
    pub store: &'static str,
    /// containerd stores: the namespace reported, or `all`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub namespace: Option<String>,
    pub root: PathBuf,
    pub deep: bool,
    pub findings: Vec<Finding>,
    pub summary: Summary,
}

impl Report {
    pub fn has_errors(&self) -> bool {
        self.summary.errors > 0
    }
}

pub struct Options {
    /// Rebuild every layer's tar stream and compare it with its diff ID.
    pub deep: bool,
    /// Also walk each layer's `diff/` and compare with its `size` file.
    pub sizes: bool,
    /// Limit the work to the chains of these images (see `select`).
    pub images: Vec<String>,
}

/// A tar name that maps to a path under `diff/` as written.
fn plain_name(f: &str) -> bool {
    !f.contains("\\x") && f.split('/').all(|c| c != "..")
}

/// Runs the checks. `hashed` counts deep bytes as they are hashed (progress).
pub fn run(g: &Graph, opts: &Options, hashed: &AtomicU64) -> Result<Report, select::SelectError> {
    let snap = g.snap;
    let scope = select::scope(g, &opts.images)?;
    let mut findings = checks::quick(g, &scope);
    if opts.sizes {
        findings.extend(checks::sizes(g, &scope));
    }

    let mut summary = Summary {
        images_checked: scope.images.len() as u64,
        layers_checked: scope.layers.len() as u64,
        ..Summary::default()
    };
    if opts.deep {
        let gd = g.gd;
        let paths = &gd.paths;
        // A layer's data dir, or (no cache-id on record) its layerdb entry.
        let data_dir = |c: &crate::ids::ChainId| {
            gd.cache_id(c)
                .map_or_else(|| paths.layer(c), |d| paths.diff(&d.0))
        };
        // Largest first, so one big layer does not start last and run alone.
        let mut todo: Vec<_> = scope
            .layers
            .iter()
            .filter_map(|c| snap.layers.get(c))
            .collect();
        todo.sort_by(|a, b| b.size.cmp(&a.size).then(a.chain_id.cmp(&b.chain_id)));
        let results: Vec<deep::LayerCheck> = todo
            .par_iter()
            .map(|l| {
                deep::verify_layer(
                    l.chain_id,
                    &l.diff_id,
                    &paths.layer(&l.chain_id),
                    &data_dir(&l.chain_id),
                    hashed,
                )
            })
            .collect();
        for r in results {
            summary.bytes_hashed += r.bytes;
            summary.files_checked += r.files;
            let mut damaged_file = None;
            let (check, message) = match r.outcome {
                deep::Outcome::Verified => continue,
                deep::Outcome::Damaged { file, message } => (
                    Check::LayerContent,
                    match file {
                        Some(f) => {
                            let m = format!("{f}: {message}");
                            damaged_file = Some(f);
                            m
                        }
                        None => message,
                    },
                ),
                deep::Outcome::TarSplit { message } => (Check::TarSplit, message),
                deep::Outcome::Unverifiable { reason } => {
                    summary.unverifiable += 1;
                    (Check::Unverifiable, reason)
                }
            };
            let path = match (check, &damaged_file) {
                (Check::TarSplit, _) => paths.tar_split(&r.chain_id),
                // The damaged file itself, when its tar name is a plain
                // relative path (display names escape raw bytes as \xNN).
                (_, Some(f)) if plain_name(f) && gd.cache_id(&r.chain_id).is_some() => {
                    data_dir(&r.chain_id).join(f.trim_start_matches("./").trim_start_matches('/'))
                }
                _ => data_dir(&r.chain_id),
            };
            findings.push(checks::layer_finding(check, r.chain_id, path, message));
        }
    }

    impact::fill(g, &mut findings);
    findings.sort_by(|a, b| (a.check, &a.subject, &a.path).cmp(&(b.check, &b.subject, &b.path)));
    for f in &findings {
        match f.severity {
            Severity::Error => summary.errors += 1,
            Severity::Warning => summary.warnings += 1,
        }
        *summary.by_check.entry(f.check.id()).or_default() += 1;
    }
    Ok(Report {
        store: "graphdriver",
        namespace: None,
        root: snap.root.clone(),
        deep: opts.deep,
        findings,
        summary,
    })
}
