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
mod wire;

pub use build::{OrphanOptions, build, frees, holders_removed};

use crate::ids::{CacheId, ChainId, DiffId, ImageId, MountId};
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
}

impl Plan {
    pub fn is_empty(&self) -> bool {
        self.references.is_empty()
            && self.images.is_empty()
            && self.layers.is_empty()
            && self.mounts.is_empty()
            && self.orphans.is_empty()
    }
}
