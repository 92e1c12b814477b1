//! `df --disk`: the real allocated bytes under the root, walked once, charged
//! to categories that add up to exactly what `du -s -B1` reports.

pub mod containerd;

use crate::disk::{Classifier, Company, DEFERRED, Progress, RawTotals, walk_raw};
use crate::graph::{DirRole, Graph};
use crate::holds::Holder;
use crate::store::paths::is_container_log;
use serde::Serialize;
use std::collections::HashMap;
use std::ffi::{OsStr, OsString};
use std::path::{Path, PathBuf};

/// Report categories, in charging priority order (a hard-linked inode is
/// charged to the first that holds a name for it).
pub const CATEGORIES: [&str; 8] = [
    "image-layers",
    "image-metadata",
    "container-rw",
    "logs",
    "volumes",
    "build-cache",
    "orphans",
    "other",
];
const IMAGE_LAYERS: usize = 0;
const IMAGE_METADATA: usize = 1;
const CONTAINER_RW: usize = 2;
const LOGS: usize = 3;
const VOLUMES: usize = 4;
const BUILD_CACHE: usize = 5;
const ORPHANS: usize = 6;
const OTHER: usize = 7;
// Walk states that are not report categories; charged to "other".
const DRIVER_HOME: usize = 8;
const CONTAINERS_HOME: usize = 9;
const CONTAINER_DIR: usize = 10;

#[derive(Debug, Serialize)]
pub struct DiskUsage {
    /// Allocated bytes of everything under the root on its filesystem; equals
    /// `du -s -B1 <root>` when nothing else is mounted below it.
    pub total_bytes: u64,
    pub entries: u64,
    pub categories: Vec<Category>,
    /// Directories that could not be read: their contents are not counted.
    pub errors: Vec<WalkError>,
    /// Mount points of other filesystems below the root, not descended into.
    pub other_filesystems: Vec<PathBuf>,
}

#[derive(Debug, Serialize)]
pub struct Category {
    pub name: &'static str,
    pub bytes: u64,
}

#[derive(Debug, Serialize)]
pub struct WalkError {
    pub path: PathBuf,
    pub message: String,
}

/// Classifies while walking: everything but the driver dirs is known from
/// names alone; each driver dir is deferred to its own bucket and charged
/// from the graph once both are done, so the walk runs while the metadata
/// loads.
struct RootClassifier {
    top: HashMap<OsString, usize>,
    driver: OsString,
}

impl Classifier for RootClassifier {
    fn root_category(&self) -> usize {
        OTHER
    }
    fn categories(&self) -> usize {
        11
    }
    fn child_category(&self, parent: usize, depth: usize, name: &OsStr, is_dir: bool) -> usize {
        match (depth, parent) {
            (1, _) if name == self.driver.as_os_str() => DRIVER_HOME,
            (1, _) => self.top.get(name).copied().unwrap_or(OTHER),
            (2, DRIVER_HOME) if name == "l" => IMAGE_LAYERS,
            (2, DRIVER_HOME) => DEFERRED,
            (2, CONTAINERS_HOME) if is_dir => CONTAINER_DIR,
            (2, CONTAINERS_HOME) => OTHER,
            (3, CONTAINER_DIR) if is_container_log(name) => LOGS,
            (3, CONTAINER_DIR) => OTHER,
            (_, p) => p,
        }
    }
}

/// A driver dir's category, from who holds it: image or container data,
/// BuildKit's, or (nobody's) orphaned.
fn dir_category(g: &Graph, name: &str, role: &DirRole) -> usize {
    let held =
        |f: &dyn Fn(&Holder) -> bool| g.edges.dir(name).is_some_and(|n| g.holds.held_by(n, f));
    match role {
        DirRole::Unknown(_) => OTHER,
        DirRole::MountRw(m) | DirRole::MountInit(m) if g.mount_owners.contains_key(m.as_str()) => {
            CONTAINER_RW
        }
        DirRole::Layer(_)
            if held(&|h| matches!(h, Holder::Image { .. } | Holder::Mount { .. })) =>
        {
            IMAGE_LAYERS
        }
        _ if held(&|h| matches!(h, Holder::Buildkit { .. })) => BUILD_CACHE,
        _ => ORPHANS,
    }
}

/// Walks the snapshot's root and charges every byte to one category.
pub fn disk_usage(g: &Graph, progress: &Progress) -> std::io::Result<DiskUsage> {
    let raw = walk(&g.snap.root, g.snap.driver(), progress, Company::Alone)?;
    Ok(charge(g, raw))
}

/// The walk of `df --disk` over `root`, whose storage driver is `driver`:
/// it needs nothing of the metadata, so it may run while that loads.
pub fn walk(
    root: &Path,
    driver: &str,
    progress: &Progress,
    company: Company,
) -> std::io::Result<RawTotals> {
    let top = [
        ("image", IMAGE_METADATA),
        ("containers", CONTAINERS_HOME),
        ("volumes", VOLUMES),
        ("buildkit", BUILD_CACHE),
    ]
    .into_iter()
    .map(|(n, c)| (OsString::from(n), c))
    .collect();
    let classifier = RootClassifier {
        top,
        driver: OsString::from(driver),
    };
    walk_raw(root, &classifier, progress, company)
}

/// The report of a walk of `g`'s root: each driver dir charged to its
/// category from who holds it.
pub fn charge(g: &Graph, raw: RawTotals) -> DiskUsage {
    let t = raw.resolve(|name| {
        let role = name.to_str().and_then(|n| Some((n, g.dir_roles.get(n)?)));
        role.map_or(OTHER, |(n, role)| dir_category(g, n, role))
    });
    let mut bytes = t.by_category.clone();
    let folded: u64 = bytes.drain(CATEGORIES.len()..).sum();
    bytes[OTHER] += folded;
    DiskUsage {
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
    }
}
