//! The live executor: the plan's steps as Engine API calls to the running
//! daemon, so its in-memory state stays true (moby
//! `daemon/images/image_delete.go`, `daemon/delete.go`,
//! `daemon/server/router/build`, `daemon/volume/service`).
//!
//! Each item is re-checked against the daemon's lists read when the run
//! starts, and the daemon decides the rest: a conflict (HTTP 409: a
//! container or a child appeared, a tag is in use) leaves the item in place
//! as "in use now" and the run goes on; a 404 means someone else removed it
//! first, which counts as done. References go one by one by name, so a tag
//! added since the plan survives and keeps its image; an image is deleted by
//! ID only when the daemon lists no reference for it.
//!
//! Leftovers (`--orphans`) have no API. They are removed from the files as
//! the offline executor does, each re-checked right before: still in no
//! store's and no API object's hands, not mounted, unchanged for the grace.

use super::offline::Offline;
use super::{Detached, Done, Executor, ImageStep, StepError, Style};
use crate::engine::view::View;
use crate::engine::{Engine, EngineError};
use crate::ids::{ChainId, ContainerId, ImageId};
use crate::plan::{
    Plan, PlanBuildCache, PlanContainer, PlanLayer, PlanMount, PlanOrphan, PlanRef, PlanVolume,
};
use crate::store::graphdriver::Paths;
use std::collections::{BTreeSet, HashSet};
use std::path::PathBuf;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};

/// Image deletes in flight at once. The daemon takes its own locks per
/// image; independent chains delete in parallel.
pub const CONCURRENCY: usize = 4;

/// What removing leftovers while the daemon runs needs.
pub struct LiveLeftovers<'a> {
    /// The filesystem remover, without trash (the daemon may look at any
    /// moment; a move into the trash is a removal it sees the same way).
    pub files: Offline<'a>,
    /// Paths an API object or a store uses now, read right before the
    /// leftovers step (see [`crate::engine::inuse`]).
    pub in_use: crate::engine::inuse::InUse,
    pub grace: i64,
    pub now: i64,
}

pub struct Live<'a> {
    engine: &'a Engine,
    /// The daemon's lists when the run started: every item is checked
    /// against them before its call.
    view: View,
    /// Containers this run removes: they no longer hold their images.
    going: HashSet<ContainerId>,
    /// Images this run removes.
    planned: HashSet<ImageId>,
    /// The root, when readable: a planned layer whose layerdb entry is gone
    /// afterwards was deleted, even when no answer named it.
    paths: Option<&'a Paths>,
    /// Remove the anonymous volumes of removed containers (`docker rm -v`).
    container_volumes: bool,
    deleted: Mutex<BTreeSet<String>>,
    steps: AtomicU64,
    leftovers: Option<LiveLeftovers<'a>>,
}

impl<'a> Live<'a> {
    pub fn new(
        engine: &'a Engine,
        plan: &Plan,
        paths: Option<&'a Paths>,
        container_volumes: bool,
        leftovers: Option<LiveLeftovers<'a>>,
    ) -> Result<Self, StepError> {
        let view = View::read(engine).map_err(|e| api_err(engine, e))?;
        Ok(Live {
            engine,
            view,
            going: plan.containers.iter().map(|c| c.id.clone()).collect(),
            planned: plan.images.iter().map(|i| i.id).collect(),
            paths,
            container_volumes,
            deleted: Mutex::new(BTreeSet::new()),
            steps: AtomicU64::new(0),
            leftovers,
        })
    }

    fn step(&self) {
        self.steps.fetch_add(1, Ordering::SeqCst);
    }

    fn record(&self, d: &crate::engine::Deleted) {
        let mut set = self.deleted.lock().unwrap_or_else(|p| p.into_inner());
        set.extend(d.deleted.iter().cloned());
    }

    /// Why an image may not go now, by the lists read at the start.
    fn image_in_use(&self, s: &ImageStep) -> Option<Done> {
        let id = s.image.id;
        let Some(api) = self.view.images.get(&id) else {
            return Some(Done::Gone);
        };
        let planned: BTreeSet<String> = s.refs.iter().map(|r| r.reference.clone()).collect();
        if api.refs != planned {
            return Some(Done::Skipped(format!(
                "its references changed since the plan: now [{}]",
                api.refs.iter().cloned().collect::<Vec<_>>().join(", ")
            )));
        }
        let user = self
            .view
            .containers
            .iter()
            .find(|(cid, c)| c.image == Some(id) && !self.going.contains(*cid));
        user.map(|(_, c)| Done::Skipped(format!("container {} uses it now", c.name)))
    }

    /// Whether the daemon's own `PruneChildren` may follow this image's
    /// removal: every untagged ancestor it could take (up to the first one
    /// with a reference) is planned too. It then removes them in the same
    /// call, checking at that moment that each has no reference, child or
    /// container, as `docker image prune` does, which saves a lookup and a
    /// call per parent.
    fn daemon_may_prune_parents(&self, id: &ImageId) -> bool {
        let mut cur = self.view.images.get(id).and_then(|i| i.parent);
        let mut hops = 0;
        while let Some(p) = cur {
            let Some(parent) = self.view.images.get(&p) else {
                return true;
            };
            if !parent.refs.is_empty() {
                return true;
            }
            hops += 1;
            if !self.planned.contains(&p) || hops > self.view.images.len() {
                return false;
            }
            cur = parent.parent;
        }
        true
    }

    /// One image: its references by name, then (if the daemon still has
    /// it, untagged) by ID.
    async fn remove_one(&self, s: &ImageStep<'_>) -> Result<Done, StepError> {
        let id = s.image.id.to_string();
        if self.was_deleted(&id) {
            return Ok(Done::Removed); // with a child, by the daemon's PruneChildren
        }
        if let Some(d) = self.image_in_use(s) {
            return Ok(d);
        }
        let noprune = !self.daemon_may_prune_parents(&s.image.id);
        for r in &s.refs {
            self.step();
            match self.engine.delete_image(&r.reference, noprune).await {
                Ok(d) => {
                    self.record(&d);
                    if d.deleted.contains(&id) {
                        return Ok(Done::Removed);
                    }
                }
                Err(e) => match conflict_or_gone(&e) {
                    Some(Done::Gone) => {}
                    Some(d) => return Ok(d),
                    None => return Err(api_err(self.engine, e)),
                },
            }
        }
        // Untagged now, or never tagged: by ID, but only while the daemon
        // lists no reference (by ID it would take a lone new tag along).
        match self.engine.find_image(&id).await {
            Ok(None) => {
                return Ok(if s.refs.is_empty() {
                    Done::Gone
                } else {
                    Done::Removed
                });
            }
            Ok(Some(i)) => {
                let refs: Vec<String> = i
                    .repo_tags
                    .iter()
                    .flatten()
                    .chain(i.repo_digests.iter().flatten())
                    .cloned()
                    .collect();
                if !refs.is_empty() {
                    return Ok(Done::Skipped(format!(
                        "it was tagged since the plan: {}",
                        refs.join(", ")
                    )));
                }
            }
            Err(e) => return Err(api_err(self.engine, e)),
        }
        self.step();
        match self.engine.delete_image(&id, noprune).await {
            Ok(d) => {
                self.record(&d);
                Ok(Done::Removed)
            }
            Err(e) => conflict_or_gone(&e).ok_or_else(|| api_err(self.engine, e)),
        }
    }

    fn was_deleted(&self, id: &str) -> bool {
        let set = self.deleted.lock().unwrap_or_else(|p| p.into_inner());
        set.contains(id)
    }
}

/// 409 is "in use now", 404 "already gone"; anything else fails the item.
fn conflict_or_gone(e: &EngineError) -> Option<Done> {
    match e {
        EngineError::Status {
            status: 409,
            message,
            ..
        } => Some(Done::Skipped(format!("in use now: {message}"))),
        EngineError::Status { status: 404, .. } => Some(Done::Gone),
        _ => None,
    }
}

fn api_err(engine: &Engine, e: EngineError) -> StepError {
    StepError::new(PathBuf::from(engine.host().to_string()), e)
}

fn no_files(engine: &Engine, what: &str) -> StepError {
    StepError::new(
        PathBuf::from(engine.host().to_string()),
        format!("{what} cannot be removed while the daemon runs; run offline"),
    )
}

impl Executor for Live<'_> {
    fn style(&self) -> Style {
        Style::Daemon
    }

    fn mode(&self) -> &'static str {
        "live"
    }

    fn remove_container(&self, c: &PlanContainer) -> Result<Done, StepError> {
        let Some(api) = self.view.containers.get(&c.id) else {
            return Ok(Done::Gone);
        };
        if api.is_active() {
            return Ok(Done::Skipped(format!("it is {} now", api.state)));
        }
        self.step();
        match self
            .engine
            .remove_container(&c.id.0, self.container_volumes)
        {
            Ok(()) => Ok(Done::Removed),
            Err(e) => conflict_or_gone(&e).ok_or_else(|| api_err(self.engine, e)),
        }
    }

    fn untag(&self, refs: &[PlanRef]) -> Result<Vec<Done>, StepError> {
        let calls = refs
            .iter()
            .map(|r| async move {
                self.step();
                match self.engine.delete_image(&r.reference, true).await {
                    Ok(d) => {
                        self.record(&d);
                        Ok(Done::Removed)
                    }
                    Err(e) => conflict_or_gone(&e).ok_or_else(|| api_err(self.engine, e)),
                }
            })
            .collect();
        // A reference that could not go is reported, not fatal: the image
        // keeps it and stays, which is what it does anyway.
        self.engine
            .run_all(calls, 1)
            .into_iter()
            .map(|r| r.or_else(|e| Ok(Done::Skipped(e.error))))
            .collect()
    }

    fn remove_images(&self, batch: &[ImageStep]) -> Vec<Result<Done, StepError>> {
        let calls = batch.iter().map(|s| self.remove_one(s)).collect();
        self.engine.run_all(calls, CONCURRENCY)
    }

    fn remove_mount(&self, _: &PlanMount) -> Result<(), StepError> {
        Err(no_files(self.engine, "a RW layer no container owns"))
    }

    fn detach_layer(&self, _: &PlanLayer) -> Result<Detached, StepError> {
        Err(no_files(self.engine, "a layer"))
    }

    fn detached_all(&self) -> Result<(), StepError> {
        Ok(())
    }

    fn purge_layer(&self, _: &PlanLayer, _: &Detached) -> Result<(), StepError> {
        Err(no_files(self.engine, "a layer"))
    }

    fn layers_released(&self, plan: &Plan) -> HashSet<ChainId> {
        let named = self.deleted.lock().unwrap_or_else(|p| p.into_inner());
        plan.layers
            .iter()
            .filter(|l| {
                named.contains(&l.chain_id.to_string())
                    || self
                        .paths
                        .is_some_and(|p| std::fs::symlink_metadata(p.layer(&l.chain_id)).is_err())
            })
            .map(|l| l.chain_id)
            .collect()
    }

    fn prune_build_cache(&self, b: &PlanBuildCache) -> Result<(u64, u64), StepError> {
        self.step();
        let until = b.until.map(|s| format!("{s}s"));
        self.engine
            .prune_build(b.all, until.as_deref(), b.keep_bytes)
            .map(|(ids, bytes)| (ids.len() as u64, bytes))
            .map_err(|e| api_err(self.engine, e))
    }

    fn remove_volume(&self, v: &PlanVolume) -> Result<Done, StepError> {
        self.step();
        match self.engine.remove_volume(&v.name) {
            Ok(()) => Ok(Done::Removed),
            Err(e) => conflict_or_gone(&e).ok_or_else(|| api_err(self.engine, e)),
        }
    }

    fn remove_leftover(&self, o: &PlanOrphan) -> Result<Done, StepError> {
        let Some(l) = &self.leftovers else {
            return Err(no_files(self.engine, "a leftover"));
        };
        if let Some(why) = l.in_use.why_not(l.files.paths(), o, l.now, l.grace) {
            return Ok(Done::Skipped(why));
        }
        l.files.remove_leftover_files(o).map(|_| Done::Removed)
    }

    fn steps(&self) -> u64 {
        self.steps.load(Ordering::SeqCst) + self.leftovers.as_ref().map_or(0, |l| l.files.steps())
    }

    fn close(self) -> Result<Option<String>, StepError> {
        Ok(None)
    }
}
