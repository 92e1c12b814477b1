//! Executing a Plan: the only code that changes a store.
//!
//! [`run`] walks the plan in the daemon's own order and keeps its dependency
//! rules; an [`Executor`] performs each step on one kind of store. The order
//! (moby `daemon/images/image_delete.go`, `daemon/internal/image/store.go`
//! `Delete`, `daemon/internal/layer/layer_store.go` `deleteLayer` and
//! `ReleaseRWLayer`):
//!
//! 1. references, all at once: no reference may ever name a removed image;
//! 2. images, children first: a parent whose child could not go stays;
//! 3. RW layers no container owns: they hold their parent layers;
//! 4. layers, children first, in two phases: every layer is first detached
//!    (taken out of the daemon's view, crash-safe), then its data purged,
//!    in parallel; a layer something that failed still holds stays, and so
//!    does a parent whose child could not be detached;
//! 5. leftovers.
//!
//! A crash at any step leaves only states the daemon tolerates, and running
//! the plan again finishes the job. The filesystem executor ([`offline`])
//! works with the daemon stopped; [`mode`] says which executor may run.

pub mod mode;
pub mod offline;
pub mod trash;
mod validate;

pub use offline::{Fault, Offline, Options};
pub use validate::validate;

use crate::graph::Graph;
use crate::ids::{ChainId, ImageId};
use crate::plan::{Plan, PlanImage, PlanLayer, PlanMount, PlanOrphan, PlanRef, Reclaim};
use rayon::prelude::*;
use serde::Serialize;
use std::collections::HashSet;
use std::path::PathBuf;

#[derive(Debug, Default, Serialize)]
pub struct Outcome {
    pub removed: Counts,
    /// Bytes reclaimed per category (as the plan measured them), for what was done.
    pub reclaimed: Reclaim,
    pub failures: Vec<Failure>,
    /// Set with `--trash`: `dockgc trash restore ID` undoes the run.
    pub trash_id: Option<String>,
    /// Changes made to the store.
    pub steps: u64,
}

#[derive(Debug, Default, Serialize)]
pub struct Counts {
    pub references: u64,
    pub images: u64,
    pub layers: u64,
    pub mounts: u64,
    pub orphans: u64,
}

#[derive(Debug, Serialize)]
pub struct Failure {
    pub item: String,
    pub path: PathBuf,
    pub error: String,
}

impl Outcome {
    pub fn complete(&self) -> bool {
        self.failures.is_empty()
    }
}

/// Why one step failed, and on what.
#[derive(Debug)]
pub struct StepError {
    pub path: PathBuf,
    pub error: String,
}

impl StepError {
    pub fn new(path: impl Into<PathBuf>, error: impl std::fmt::Display) -> Self {
        StepError {
            path: path.into(),
            error: error.to_string(),
        }
    }
}

/// A layer taken out of the daemon's view, waiting for its data to go.
pub struct Detached {
    /// Where the layer's entry is now (offline: its `-removing` name).
    pub entry: PathBuf,
}

/// Performs the steps of a plan on one kind of store. Every method changes
/// one item; [`run`] decides the order and what a failure keeps.
pub trait Executor: Sync {
    /// Removes every reference of the plan, all or nothing.
    fn untag(&self, refs: &[PlanRef]) -> Result<(), StepError>;
    /// Removes one image (its metadata, then its config).
    fn remove_image(&self, img: &PlanImage) -> Result<(), StepError>;
    /// Removes one RW layer no container owns.
    fn remove_mount(&self, m: &PlanMount) -> Result<(), StepError>;
    /// Takes a layer out of the daemon's view; after this, a crash leaves a
    /// deletion the daemon or the next run finishes.
    fn detach_layer(&self, l: &PlanLayer) -> Result<Detached, StepError>;
    /// Called once after the last detach and before the first purge.
    fn detached_all(&self) -> Result<(), StepError>;
    /// Removes a detached layer's data. Independent of every other layer.
    fn purge_layer(&self, l: &PlanLayer, d: &Detached) -> Result<(), StepError>;
    fn remove_leftover(&self, o: &PlanOrphan) -> Result<(), StepError>;
    /// Changes made so far.
    fn steps(&self) -> u64;
    /// Ends the run: returns its trash entry, if it has one.
    fn close(self) -> Result<Option<String>, StepError>;
}

/// Runs `plan` through `x`.
pub fn run<E: Executor>(g: &Graph, plan: &Plan, x: E) -> Outcome {
    let mut out = Outcome::default();
    if references(plan, &x, &mut out) {
        let failed_images = images(g, plan, &x, &mut out);
        let failed_mounts = mounts(plan, &x, &mut out);
        layers(g, plan, &x, &failed_images, &failed_mounts, &mut out);
        leftovers(plan, &x, &mut out);
    }
    out.steps = x.steps();
    out.reclaimed.total =
        out.reclaimed.images + out.reclaimed.layers + out.reclaimed.mounts + out.reclaimed.orphans;
    match x.close() {
        Ok(id) => out.trash_id = id,
        Err(e) => fail(&mut out, "trash".into(), e),
    }
    out
}

fn fail(out: &mut Outcome, item: String, e: StepError) {
    out.failures.push(Failure {
        item,
        path: e.path,
        error: e.error,
    });
}

/// Step 1. False when nothing else may run: the images would stay referenced.
fn references(plan: &Plan, x: &impl Executor, out: &mut Outcome) -> bool {
    if plan.references.is_empty() {
        return true;
    }
    match x.untag(&plan.references) {
        Ok(()) => {
            out.removed.references = plan.references.len() as u64;
            true
        }
        Err(e) => {
            fail(out, "repositories.json".into(), e);
            false
        }
    }
}

/// Step 2, children first; returns the images that stay.
fn images(g: &Graph, plan: &Plan, x: &impl Executor, out: &mut Outcome) -> HashSet<ImageId> {
    let mut failed: HashSet<ImageId> = HashSet::new();
    for i in &plan.images {
        if let Some(c) = g
            .children
            .get(&i.id)
            .and_then(|ch| ch.iter().find(|c| failed.contains(c)))
        {
            failed.insert(i.id);
            let e = StepError::new(
                g.gd.paths.image_config(&i.id),
                format!("its child image {} could not be removed", c.short()),
            );
            fail(out, format!("image {}", i.id), e);
            continue;
        }
        match x.remove_image(i) {
            Ok(()) => {
                out.removed.images += 1;
                out.reclaimed.images += i.config_bytes;
            }
            Err(e) => {
                failed.insert(i.id);
                fail(out, format!("image {}", i.id), e);
            }
        }
    }
    failed
}

/// Step 3; returns the RW layers that stay.
fn mounts<'p>(plan: &'p Plan, x: &impl Executor, out: &mut Outcome) -> HashSet<&'p str> {
    let mut failed = HashSet::new();
    for m in &plan.mounts {
        match x.remove_mount(m) {
            Ok(()) => {
                out.removed.mounts += 1;
                out.reclaimed.mounts += m.bytes;
            }
            Err(e) => {
                failed.insert(m.name.as_str());
                fail(out, format!("mount {}", m.name), e);
            }
        }
    }
    failed
}

/// Step 4: detach, then purge in parallel.
fn layers(
    g: &Graph,
    plan: &Plan,
    x: &impl Executor,
    failed_images: &HashSet<ImageId>,
    failed_mounts: &HashSet<&str>,
    out: &mut Outcome,
) {
    // What a failed image or mount still holds stays.
    let freed = (!failed_images.is_empty() || !failed_mounts.is_empty())
        .then(|| crate::plan::frees(g, plan, failed_images, failed_mounts));
    let held = |c: &ChainId| freed.as_ref().is_some_and(|f| !f.contains(c));
    let mut detached: Vec<(&PlanLayer, Detached)> = Vec::new();
    // Children come first; a layer whose child stays must stay too: the
    // child holds a reference on it.
    let mut must_stay: HashSet<ChainId> = HashSet::new();
    for l in &plan.layers {
        if held(&l.chain_id) || must_stay.contains(&l.chain_id) {
            must_stay.extend(l.parent);
            continue;
        }
        match x.detach_layer(l) {
            Ok(d) => detached.push((l, d)),
            Err(e) => {
                must_stay.extend(l.parent);
                fail(out, format!("layer {}", l.chain_id), e);
            }
        }
    }
    if detached.is_empty() {
        return;
    }
    if let Err(e) = x.detached_all() {
        fail(out, "layerdb".into(), e);
    }
    // Every detached layer is out of the daemon's view: they are
    // independent now, and deleting trees is where the time goes.
    let done: Vec<(&PlanLayer, Result<(), StepError>)> = detached
        .into_par_iter()
        .map(|(l, d)| (l, x.purge_layer(l, &d)))
        .collect();
    for (l, r) in done {
        match r {
            Ok(()) => {
                out.removed.layers += 1;
                out.reclaimed.layers += l.size;
            }
            Err(e) => fail(out, format!("layer {}", l.chain_id), e),
        }
    }
}

/// Step 5.
fn leftovers(plan: &Plan, x: &impl Executor, out: &mut Outcome) {
    for o in &plan.orphans {
        match x.remove_leftover(o) {
            Ok(()) => {
                out.removed.orphans += 1;
                out.reclaimed.orphans += o.bytes;
            }
            Err(e) => fail(out, format!("{:?} orphan", o.kind), e),
        }
    }
}

/// Runs `plan` on the data root with the filesystem executor.
pub fn apply(g: &Graph, plan: &Plan, o: &Options) -> Outcome {
    match Offline::new(&g.gd.paths, plan, o) {
        Ok(x) => run(g, plan, x),
        Err(e) => {
            let mut out = Outcome::default();
            fail(&mut out, "trash".into(), e);
            out
        }
    }
}
