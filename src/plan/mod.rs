//! The Plan: exactly what a prune removes, each item with its bytes and the
//! rule that chose it. `--dry-run` prints it, `--plan-out` saves it, and the
//! real run executes the very same value; `apply FILE` re-validates a saved
//! one against the store as it is now before touching anything.
//!
//! Items name what goes in the store's neutral terms (a reference, an image
//! ID, a layer's chain ID, a RW layer's name, a leftover's path) and carry,
//! apart, what the executor needs to remove it from this store (a layer's
//! driver dir, a RW layer's dirs, a leftover's link). The JSON keeps version
//! 1's field order (`wire.rs`), so saved plans and scripts keep working.

mod build;
mod extras;
mod wire;

pub use build::{MIN_LIVE_GRACE, OrphanOptions, build, frees, holders_removed};
pub use extras::{
    ANONYMOUS_LABEL, ApiVolume, BuildCacheOptions, build_cache, build_cache_of, volumes,
};

use crate::ids::{CacheId, ChainId, ContainerId, DiffId, ImageId, MountId};
use crate::leftovers::OrphanKind;
use serde::{Deserialize, Serialize};
use std::path::PathBuf;

pub const PLAN_VERSION: u32 = 1;

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Plan {
    pub version: u32,
    pub root: PathBuf,
    pub driver: String,
    /// When the plan was made (RFC 3339).
    pub created: String,
    /// `repositories.json` entries to remove.
    pub references: Vec<PlanRef>,
    /// Images whose config and metadata go.
    pub images: Vec<PlanImage>,
    /// Layers to remove, children before parents.
    pub layers: Vec<PlanLayer>,
    /// RW layers (`layerdb/mounts` entries) no container owns (`--orphans`).
    pub mounts: Vec<PlanMount>,
    /// Leftovers (`--orphans`): driver dirs, `-removing` entries, write-sets, dangling links.
    pub orphans: Vec<PlanOrphan>,
    /// Candidates a keep rule protected, for the reader of the plan.
    pub kept: Vec<PlanKept>,
    /// Things seen but never removed (unknown driver entries).
    pub untouched: Vec<PlanOrphan>,
    pub reclaim: Reclaim,
    pub note: Option<String>,
    /// Stopped containers to remove first (`--containers`).
    #[serde(default)]
    pub containers: Vec<PlanContainer>,
    /// Containers a rule kept, for the reader of the plan.
    #[serde(default)]
    pub kept_containers: Vec<PlanKeptContainer>,
    /// The build cache prune (`--build-cache`), run by the daemon after the images.
    #[serde(default)]
    pub build_cache: Option<PlanBuildCache>,
    /// Volumes to remove (`--volumes`), last.
    #[serde(default)]
    pub volumes: Vec<PlanVolume>,
    /// Where the plan's facts came from: `disk` (the root, cross-checked
    /// against the daemon when it runs) or `api` (the daemon alone).
    #[serde(default = "disk")]
    pub source: String,
    /// What this plan's source cannot see, so it is not planned (never
    /// "none"): `orphans` and `leftovers` for an API-only plan.
    #[serde(default)]
    pub unseen: Vec<String>,
    /// Images and containers the disk and the daemon disagree on: left
    /// alone, each with the reason.
    #[serde(default)]
    pub disagreements: Vec<Disagreement>,
    /// With `--orphans`, the grace period (seconds) the leftovers were
    /// chosen with; a live run checks each one against it again.
    #[serde(default)]
    pub grace: Option<i64>,
}

fn disk() -> String {
    "disk".into()
}

/// A stopped container to remove, with its RW layers.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct PlanContainer {
    pub id: ContainerId,
    pub name: String,
    pub image: Option<ImageId>,
    /// `exited`, `dead` or `created`.
    pub state: String,
    /// When it stopped (`FinishedAt`, or `Created` if it never ran).
    pub stopped: Option<String>,
    pub reason: String,
    /// Its RW layer and its logs, as df counts them.
    pub bytes: u64,
    /// Its RW layer (named by its ID) and its image mounts' RW layers,
    /// removed with it (the graphdriver executor's part).
    pub mounts: Vec<PlanMount>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct PlanKeptContainer {
    pub id: ContainerId,
    pub name: String,
    pub reason: String,
}

/// `POST /build/prune` with these options; the records are dockgc's
/// estimate from BuildKit's databases, the daemon decides.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct PlanBuildCache {
    /// Every unused record (`docker builder prune -a`), not only the
    /// unshared regular ones.
    pub all: bool,
    /// Only records last used longer ago than this (seconds).
    pub until: Option<i64>,
    /// Keep this much cache (BuildKit's keep-storage).
    pub keep_bytes: Option<u64>,
    /// The records dockgc expects to go (empty when `known` is false).
    pub records: Vec<PlanCacheRecord>,
    pub bytes: u64,
    /// BuildKit's databases could be read.
    pub known: bool,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct PlanCacheRecord {
    pub id: String,
    #[serde(rename = "type")]
    pub kind: String,
    pub bytes: u64,
    pub last_used: Option<String>,
    pub description: String,
}

/// A volume no container uses.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct PlanVolume {
    pub name: String,
    pub driver: String,
    /// As `/system/df` measures it (`null`: the daemon did not say).
    pub bytes: Option<u64>,
    pub labels: std::collections::BTreeMap<String, String>,
    pub anonymous: bool,
    pub reason: String,
}

/// Something the disk and the daemon disagree on, left alone.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct Disagreement {
    /// `image` or `container`.
    pub kind: String,
    pub id: String,
    pub reason: String,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct PlanRef {
    pub repository: String,
    pub reference: String,
    pub image: ImageId,
    pub reason: String,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct PlanImage {
    pub id: ImageId,
    pub reason: String,
    pub config_bytes: u64,
    pub repo_tags: Vec<String>,
}

/// A layer to remove.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(into = "wire::Layer", from = "wire::Layer")]
pub struct PlanLayer {
    pub chain_id: ChainId,
    pub diff_id: DiffId,
    pub parent: Option<ChainId>,
    pub size: u64,
    pub reason: String,
    /// Where its data lives (the graphdriver executor's part).
    pub data: LayerData,
}

/// A layer's graphdriver data: its driver dir and whether it stays.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LayerData {
    pub cache_id: CacheId,
    /// Another layer that stays names the same driver dir: remove only the
    /// layerdb entry, never a dir a kept layer uses.
    pub keep_dir: bool,
}

/// A RW layer no container owns.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(into = "wire::Mount", from = "wire::Mount")]
pub struct PlanMount {
    pub name: String,
    pub bytes: u64,
    pub reason: String,
    /// Its driver dirs (the graphdriver executor's part).
    pub dirs: RwDirs,
}

/// The driver dirs of a RW layer: `mount-id` and `init-id`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RwDirs {
    pub mount_id: MountId,
    pub init_id: Option<MountId>,
}

/// A leftover to remove (or, in `untouched`, one never removed).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(into = "wire::Orphan", from = "wire::Orphan")]
pub struct PlanOrphan {
    /// Relative to the root.
    pub path: PathBuf,
    pub kind: OrphanKind,
    pub bytes: u64,
    pub reason: String,
    /// Modification time (Unix seconds) when planned; a change makes the plan stale.
    pub mtime: i64,
    /// What else goes with it (the graphdriver executor's part).
    pub steps: OrphanSteps,
}

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct OrphanSteps {
    /// For driver dirs: their `l/` link, removed with them.
    pub link: Option<String>,
    /// For `-removing` entries: the driver dir to finish removing first.
    pub cache_dir: Option<String>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct PlanKept {
    pub id: ImageId,
    pub reason: String,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq, Eq)]
pub struct Reclaim {
    pub images: u64,
    pub layers: u64,
    pub mounts: u64,
    pub orphans: u64,
    pub total: u64,
    #[serde(default)]
    pub containers: u64,
    #[serde(default)]
    pub build_cache: u64,
    #[serde(default)]
    pub volumes: u64,
}

impl Reclaim {
    pub fn sum(&mut self) {
        self.total = self.images
            + self.layers
            + self.mounts
            + self.orphans
            + self.containers
            + self.build_cache
            + self.volumes;
    }
}

impl Plan {
    pub fn is_empty(&self) -> bool {
        self.references.is_empty()
            && self.images.is_empty()
            && self.layers.is_empty()
            && self.mounts.is_empty()
            && self.orphans.is_empty()
            && self.containers.is_empty()
            && self.build_cache.is_none()
            && self.volumes.is_empty()
    }
}
