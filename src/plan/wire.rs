//! Plan items as plan format version 1 writes them: the same fields in the
//! same order as before items kept their executor steps apart, so plans
//! saved with `--plan-out` and the documented JSON stay byte for byte.

use super::{LayerData, OrphanSteps, PlanLayer, PlanMount, PlanOrphan, RwDirs};
use crate::ids::{CacheId, ChainId, DiffId, MountId};
use crate::leftovers::OrphanKind;
use serde::{Deserialize, Serialize};
use std::path::PathBuf;

#[derive(Serialize, Deserialize)]
pub struct Layer {
    chain_id: ChainId,
    diff_id: DiffId,
    cache_id: CacheId,
    parent: Option<ChainId>,
    size: u64,
    reason: String,
    #[serde(default)]
    keep_driver_dir: bool,
}

impl From<PlanLayer> for Layer {
    fn from(l: PlanLayer) -> Self {
        Layer {
            chain_id: l.chain_id,
            diff_id: l.diff_id,
            cache_id: l.data.cache_id,
            parent: l.parent,
            size: l.size,
            reason: l.reason,
            keep_driver_dir: l.data.keep_dir,
        }
    }
}

impl From<Layer> for PlanLayer {
    fn from(l: Layer) -> Self {
        PlanLayer {
            chain_id: l.chain_id,
            diff_id: l.diff_id,
            parent: l.parent,
            size: l.size,
            reason: l.reason,
            data: LayerData {
                cache_id: l.cache_id,
                keep_dir: l.keep_driver_dir,
            },
        }
    }
}

#[derive(Serialize, Deserialize)]
pub struct Mount {
    name: String,
    mount_id: MountId,
    init_id: Option<MountId>,
    bytes: u64,
    reason: String,
}

impl From<PlanMount> for Mount {
    fn from(m: PlanMount) -> Self {
        Mount {
            name: m.name,
            mount_id: m.dirs.mount_id,
            init_id: m.dirs.init_id,
            bytes: m.bytes,
            reason: m.reason,
        }
    }
}

impl From<Mount> for PlanMount {
    fn from(m: Mount) -> Self {
        PlanMount {
            name: m.name,
            bytes: m.bytes,
            reason: m.reason,
            dirs: RwDirs {
                mount_id: m.mount_id,
                init_id: m.init_id,
            },
        }
    }
}

#[derive(Serialize, Deserialize)]
pub struct Orphan {
    path: PathBuf,
    kind: OrphanKind,
    bytes: u64,
    reason: String,
    link: Option<String>,
    cache_dir: Option<String>,
    mtime: i64,
}

impl From<PlanOrphan> for Orphan {
    fn from(o: PlanOrphan) -> Self {
        Orphan {
            path: o.path,
            kind: o.kind,
            bytes: o.bytes,
            reason: o.reason,
            link: o.steps.link,
            cache_dir: o.steps.cache_dir,
            mtime: o.mtime,
        }
    }
}

impl From<Orphan> for PlanOrphan {
    fn from(o: Orphan) -> Self {
        PlanOrphan {
            path: o.path,
            kind: o.kind,
            bytes: o.bytes,
            reason: o.reason,
            mtime: o.mtime,
            steps: OrphanSteps {
                link: o.link,
                cache_dir: o.cache_dir,
            },
        }
    }
}
