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

pub mod live;
pub mod mode;
pub mod offline;
pub mod trash;
mod validate;

pub use live::{Live, LiveLeftovers};
pub use offline::{Fault, Offline, Options};
pub use validate::{validate, validate_live};

use crate::graph::Graph;
use crate::ids::{ChainId, ImageId};
use crate::plan::{
    Plan, PlanBuildCache, PlanContainer, PlanImage, PlanLayer, PlanMount, PlanOrphan, PlanRef,
    PlanVolume, Reclaim,
};
use rayon::prelude::*;
use serde::Serialize;
use std::collections::{HashMap, HashSet};
use std::path::PathBuf;

#[derive(Debug, Default, Serialize)]
pub struct Outcome {
    /// Which executor ran: `offline` (the filesystem) or `live` (the daemon's API).
    pub mode: &'static str,
    pub removed: Counts,
    /// Bytes reclaimed per category, for what was done: offline as the plan
    /// measured it; live, the layers the daemon deleted and the build cache
    /// bytes it reports.
    pub reclaimed: Reclaim,
    /// The plan's estimate for the same items, to compare with `reclaimed`.
    pub estimated: Reclaim,
    /// Items left alone because they are in use now (a container or a tag
    /// appeared since the plan), or that the daemon kept; not failures.
    pub skipped: Vec<Skip>,
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
    pub containers: u64,
    pub build_cache_records: u64,
    pub volumes: u64,
    /// Items already gone when their turn came (done, by someone else).
    pub already_gone: u64,
}

#[derive(Debug, Serialize)]
pub struct Failure {
    pub item: String,
    pub path: PathBuf,
    pub error: String,
}

#[derive(Debug, Serialize)]
pub struct Skip {
    pub item: String,
    pub reason: String,
}

impl Outcome {
    pub fn complete(&self) -> bool {
        self.failures.is_empty()
    }

    /// A run that could not start.
    pub fn failed(mode: &'static str, item: &str, e: StepError) -> Outcome {
        let mut out = Outcome {
            mode,
            ..Outcome::default()
        };
        fail(&mut out, item.to_string(), e);
        out
    }
}

/// Why one step failed, and on what (a path, or an API call).
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

/// How one item ended, when it did not fail.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Done {
    Removed,
    /// It was already gone: done, by someone else.
    Gone,
    /// Left alone, with the reason: it is in use now.
    Skipped(String),
}

/// A layer taken out of the daemon's view, waiting for its data to go.
pub struct Detached {
    /// Where the layer's entry is now (offline: its `-removing` name).
    pub entry: PathBuf,
}

/// Who removes an image's references and layers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Style {
    /// dockgc does every step: references all at once first (one file
    /// rewritten once), then images, RW layers, layers.
    Files,
    /// A daemon: references go with their image (it refuses to take the
    /// last tag of an image a container uses, so a skipped image keeps its
    /// tags), and it releases the layers itself.
    Daemon,
}

/// An image and the plan's references to it, removed together by a daemon.
pub struct ImageStep<'p> {
    pub image: &'p PlanImage,
    pub refs: Vec<&'p PlanRef>,
}

/// Performs the steps of a plan on one kind of store. Every method changes
/// one item; [`run`] decides the order and what a failure keeps.
pub trait Executor: Sync {
    fn style(&self) -> Style;
    /// The word reports use: `offline` or `live`.
    fn mode(&self) -> &'static str;
    /// Removes one stopped container and its RW layers.
    fn remove_container(&self, c: &PlanContainer) -> Result<Done, StepError>;
    /// Removes references. [`Style::Files`]: every reference of the plan,
    /// all or nothing. [`Style::Daemon`]: those of images that stay
    /// (untagged only).
    fn untag(&self, refs: &[PlanRef]) -> Result<Vec<Done>, StepError>;
    /// Removes images that do not depend on each other (their planned
    /// children are gone), with their references for [`Style::Daemon`];
    /// one answer per step, in order.
    fn remove_images(&self, batch: &[ImageStep]) -> Vec<Result<Done, StepError>>;
    /// Removes one RW layer no container owns.
    fn remove_mount(&self, m: &PlanMount) -> Result<(), StepError>;
    /// Takes a layer out of the daemon's view; after this, a crash leaves a
    /// deletion the daemon or the next run finishes.
    fn detach_layer(&self, l: &PlanLayer) -> Result<Detached, StepError>;
    /// Called once after the last detach and before the first purge.
    fn detached_all(&self) -> Result<(), StepError>;
    /// Removes a detached layer's data. Independent of every other layer.
    fn purge_layer(&self, l: &PlanLayer, d: &Detached) -> Result<(), StepError>;
    /// [`Style::Daemon`]: which planned layers the daemon deleted.
    fn layers_released(&self, plan: &Plan) -> HashSet<ChainId>;
    /// Prunes the build cache; returns the records deleted and the bytes
    /// the store reports freeing.
    fn prune_build_cache(&self, b: &PlanBuildCache) -> Result<(u64, u64), StepError>;
    fn remove_volume(&self, v: &PlanVolume) -> Result<Done, StepError>;
    fn remove_leftover(&self, o: &PlanOrphan) -> Result<Done, StepError>;
    /// Changes made so far.
    fn steps(&self) -> u64;
    /// Ends the run: returns its trash entry, if it has one.
    fn close(self) -> Result<Option<String>, StepError>;
}

/// What failed or was skipped, so what it holds stays.
#[derive(Default)]
struct Stays<'p> {
    images: HashSet<ImageId>,
    mounts: HashSet<&'p str>,
}

/// Runs `plan` through `x`: containers, then images (and their layers),
/// then build cache, volumes and leftovers, as `docker system prune` orders
/// them.
pub fn run<E: Executor>(g: &Graph, plan: &Plan, x: E) -> Outcome {
    let mut out = Outcome {
        mode: x.mode(),
        ..Outcome::default()
    };
    let mut stays = Stays::default();
    containers(plan, &x, &mut out, &mut stays);
    match x.style() {
        Style::Files => {
            if references(plan, &x, &mut out) {
                images(g, plan, &x, &mut out, &mut stays);
                mounts(plan, &x, &mut out, &mut stays);
                layers(g, plan, &x, &stays, &mut out);
                leftovers(plan, &x, &mut out);
            }
        }
        Style::Daemon => {
            untag_only(plan, &x, &mut out);
            images(g, plan, &x, &mut out, &mut stays);
            released_layers(plan, &x, &mut out);
            leftovers(plan, &x, &mut out);
        }
    }
    build_cache(plan, &x, &mut out);
    volumes(plan, &x, &mut out);
    out.steps = x.steps();
    out.reclaimed.sum();
    out.estimated.sum();
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

fn skip(out: &mut Outcome, item: String, reason: String) {
    out.skipped.push(Skip { item, reason });
}

/// Step 0: stopped containers; one that stays keeps its image and RW layers.
fn containers<'p>(plan: &'p Plan, x: &impl Executor, out: &mut Outcome, stays: &mut Stays<'p>) {
    for c in &plan.containers {
        let item = format!("container {}", c.name);
        let kept = match x.remove_container(c) {
            Ok(Done::Removed) => {
                out.removed.containers += 1;
                out.reclaimed.containers += c.bytes;
                out.estimated.containers += c.bytes;
                false
            }
            Ok(Done::Gone) => {
                out.removed.already_gone += 1;
                false
            }
            Ok(Done::Skipped(why)) => {
                skip(out, item, why);
                true
            }
            Err(e) => {
                fail(out, item, e);
                true
            }
        };
        if kept {
            stays.images.extend(c.image);
            stays
                .mounts
                .extend(c.mounts.iter().map(|m| m.name.as_str()));
        }
    }
}

/// Step 1 ([`Style::Files`]). False when nothing else may run: the images
/// would stay referenced.
fn references(plan: &Plan, x: &impl Executor, out: &mut Outcome) -> bool {
    if plan.references.is_empty() {
        return true;
    }
    match x.untag(&plan.references) {
        Ok(_) => {
            out.removed.references = plan.references.len() as u64;
            true
        }
        Err(e) => {
            fail(out, "repositories.json".into(), e);
            false
        }
    }
}

/// [`Style::Daemon`]: the references of images that stay (tagged parents
/// whose children stay lose their tags, as `docker image prune -a` does).
fn untag_only(plan: &Plan, x: &impl Executor, out: &mut Outcome) {
    let removed: HashSet<ImageId> = plan.images.iter().map(|i| i.id).collect();
    let refs: Vec<PlanRef> = plan
        .references
        .iter()
        .filter(|r| !removed.contains(&r.image))
        .cloned()
        .collect();
    if refs.is_empty() {
        return;
    }
    match x.untag(&refs) {
        Ok(done) => {
            for (r, d) in refs.iter().zip(done) {
                match d {
                    Done::Removed => out.removed.references += 1,
                    Done::Gone => out.removed.already_gone += 1,
                    Done::Skipped(why) => skip(out, format!("reference {}", r.reference), why),
                }
            }
        }
        Err(e) => fail(out, "references".into(), e),
    }
}

/// Step 2, children first, in waves of images whose planned children are
/// done; an image whose child stays, or whose container stays, stays too.
fn images(g: &Graph, plan: &Plan, x: &impl Executor, out: &mut Outcome, stays: &mut Stays) {
    let planned: HashSet<ImageId> = plan.images.iter().map(|i| i.id).collect();
    let mut pending: HashMap<ImageId, usize> = HashMap::new();
    for i in &plan.images {
        let n = g
            .children
            .get(&i.id)
            .map_or(0, |ch| ch.iter().filter(|c| planned.contains(c)).count());
        pending.insert(i.id, n);
    }
    let parent = |id: &ImageId| {
        g.snap
            .images
            .get(id)
            .and_then(|i| i.parent)
            .filter(|p| planned.contains(p))
    };
    let mut refs: HashMap<ImageId, Vec<&PlanRef>> = HashMap::new();
    for r in &plan.references {
        refs.entry(r.image).or_default().push(r);
    }
    let mut left: Vec<&PlanImage> = plan.images.iter().collect();
    while !left.is_empty() {
        let (ready, rest): (Vec<&PlanImage>, Vec<&PlanImage>) =
            left.into_iter().partition(|i| pending[&i.id] == 0);
        left = rest;
        if ready.is_empty() {
            // Cannot happen with a tree; never loop on damaged parent links.
            for i in left.drain(..) {
                fail(
                    out,
                    format!("image {}", i.id),
                    StepError::new(
                        g.gd.paths.image_config(&i.id),
                        "its parent links form a cycle",
                    ),
                );
            }
            break;
        }
        // Every image of this wave is settled after it: their parents may go next.
        let settled: Vec<ImageId> = ready.iter().map(|i| i.id).collect();
        let mut steps = Vec::new();
        for i in ready {
            let blocked = if stays.images.contains(&i.id) {
                Some("a container that stays uses it".to_string())
            } else {
                g.children
                    .get(&i.id)
                    .and_then(|ch| ch.iter().find(|c| stays.images.contains(c)))
                    .map(|c| format!("its child image {} stays", c.short()))
            };
            match blocked {
                Some(why) => {
                    stays.images.insert(i.id);
                    skip(out, format!("image {}", i.id), why);
                }
                None => steps.push(ImageStep {
                    image: i,
                    refs: refs.get(&i.id).cloned().unwrap_or_default(),
                }),
            }
        }
        let results = if steps.is_empty() {
            Vec::new()
        } else {
            x.remove_images(&steps)
        };
        for (s, r) in steps.iter().zip(results) {
            let i = s.image;
            let item = format!("image {}", i.id);
            match r {
                Ok(Done::Removed) => {
                    out.removed.images += 1;
                    out.reclaimed.images += i.config_bytes;
                    out.estimated.images += i.config_bytes;
                    if x.style() == Style::Daemon {
                        out.removed.references += s.refs.len() as u64;
                    }
                }
                Ok(Done::Gone) => out.removed.already_gone += 1,
                Ok(Done::Skipped(why)) => {
                    stays.images.insert(i.id);
                    skip(out, item, why);
                }
                Err(e) => {
                    stays.images.insert(i.id);
                    fail(out, item, e);
                }
            }
        }
        for id in settled {
            if let Some(p) = parent(&id) {
                pending.entry(p).and_modify(|n| *n = n.saturating_sub(1));
            }
        }
    }
}

/// Step 3 ([`Style::Files`]); the RW layers that stay are recorded.
fn mounts<'p>(plan: &'p Plan, x: &impl Executor, out: &mut Outcome, stays: &mut Stays<'p>) {
    for m in &plan.mounts {
        match x.remove_mount(m) {
            Ok(()) => {
                out.removed.mounts += 1;
                out.reclaimed.mounts += m.bytes;
                out.estimated.mounts += m.bytes;
            }
            Err(e) => {
                stays.mounts.insert(m.name.as_str());
                fail(out, format!("mount {}", m.name), e);
            }
        }
    }
}

/// Step 4 ([`Style::Files`]): detach, then purge in parallel.
fn layers(g: &Graph, plan: &Plan, x: &impl Executor, stays: &Stays, out: &mut Outcome) {
    // What a failed image or mount still holds stays.
    let freed = (!stays.images.is_empty() || !stays.mounts.is_empty())
        .then(|| crate::plan::frees(g, plan, &stays.images, &stays.mounts));
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
                out.estimated.layers += l.size;
            }
            Err(e) => fail(out, format!("layer {}", l.chain_id), e),
        }
    }
}

/// [`Style::Daemon`]: the daemon deleted layers with their images; count
/// what it really deleted, and say which planned ones it kept.
fn released_layers(plan: &Plan, x: &impl Executor, out: &mut Outcome) {
    let gone = x.layers_released(plan);
    for l in &plan.layers {
        if gone.contains(&l.chain_id) {
            out.removed.layers += 1;
            out.reclaimed.layers += l.size;
            out.estimated.layers += l.size;
        } else {
            skip(
                out,
                format!("layer {}", l.chain_id),
                "the daemon kept it: something it knows still uses it".into(),
            );
        }
    }
}

fn build_cache(plan: &Plan, x: &impl Executor, out: &mut Outcome) {
    let Some(b) = &plan.build_cache else { return };
    match x.prune_build_cache(b) {
        Ok((records, bytes)) => {
            out.removed.build_cache_records += records;
            out.reclaimed.build_cache += bytes;
            out.estimated.build_cache += b.bytes;
        }
        Err(e) => fail(out, "build cache".into(), e),
    }
}

fn volumes(plan: &Plan, x: &impl Executor, out: &mut Outcome) {
    for v in &plan.volumes {
        let item = format!("volume {}", v.name);
        match x.remove_volume(v) {
            Ok(Done::Removed) => {
                out.removed.volumes += 1;
                out.reclaimed.volumes += v.bytes.unwrap_or(0);
                out.estimated.volumes += v.bytes.unwrap_or(0);
            }
            Ok(Done::Gone) => out.removed.already_gone += 1,
            Ok(Done::Skipped(why)) => skip(out, item, why),
            Err(e) => fail(out, item, e),
        }
    }
}

/// Step 5.
fn leftovers(plan: &Plan, x: &impl Executor, out: &mut Outcome) {
    for o in &plan.orphans {
        let item = format!("{:?} orphan {}", o.kind, o.path.display());
        match x.remove_leftover(o) {
            Ok(Done::Removed) => {
                out.removed.orphans += 1;
                out.reclaimed.orphans += o.bytes;
                out.estimated.orphans += o.bytes;
            }
            Ok(Done::Gone) => out.removed.already_gone += 1,
            Ok(Done::Skipped(why)) => skip(out, item, why),
            Err(e) => fail(out, item, e),
        }
    }
}

/// Runs `plan` on the data root with the filesystem executor.
pub fn apply(g: &Graph, plan: &Plan, o: &Options) -> Outcome {
    match Offline::new(&g.gd.paths, plan, o) {
        Ok(x) => run(g, plan, x),
        Err(e) => Outcome::failed("offline", "trash", e),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::graph::tests::*;
    use std::sync::Mutex;

    /// A daemon-style executor that records its calls and skips what it is told.
    struct Fake {
        calls: Mutex<Vec<String>>,
        skip: HashSet<ImageId>,
        waves: Mutex<Vec<usize>>,
    }

    // By reference, so a test can look at the calls after `run` consumed it.
    impl Executor for &Fake {
        fn style(&self) -> Style {
            Style::Daemon
        }
        fn mode(&self) -> &'static str {
            "live"
        }
        fn remove_container(&self, c: &PlanContainer) -> Result<Done, StepError> {
            self.calls
                .lock()
                .unwrap()
                .push(format!("container {}", c.name));
            Ok(Done::Removed)
        }
        fn untag(&self, refs: &[PlanRef]) -> Result<Vec<Done>, StepError> {
            let mut calls = self.calls.lock().unwrap();
            calls.extend(refs.iter().map(|r| format!("untag {}", r.reference)));
            Ok(vec![Done::Removed; refs.len()])
        }
        fn remove_images(&self, batch: &[ImageStep]) -> Vec<Result<Done, StepError>> {
            self.waves.lock().unwrap().push(batch.len());
            batch
                .iter()
                .map(|s| {
                    self.calls
                        .lock()
                        .unwrap()
                        .push(format!("image {}", s.image.id.short()));
                    if self.skip.contains(&s.image.id) {
                        Ok(Done::Skipped("in use now".into()))
                    } else {
                        Ok(Done::Removed)
                    }
                })
                .collect()
        }
        fn remove_mount(&self, _: &PlanMount) -> Result<(), StepError> {
            unreachable!("a daemon removes no mount")
        }
        fn detach_layer(&self, _: &PlanLayer) -> Result<Detached, StepError> {
            unreachable!("a daemon releases layers itself")
        }
        fn detached_all(&self) -> Result<(), StepError> {
            Ok(())
        }
        fn purge_layer(&self, _: &PlanLayer, _: &Detached) -> Result<(), StepError> {
            unreachable!()
        }
        fn layers_released(&self, plan: &Plan) -> HashSet<ChainId> {
            plan.layers.iter().map(|l| l.chain_id).collect()
        }
        fn prune_build_cache(&self, _: &PlanBuildCache) -> Result<(u64, u64), StepError> {
            Ok((0, 0))
        }
        fn remove_volume(&self, _: &PlanVolume) -> Result<Done, StepError> {
            Ok(Done::Removed)
        }
        fn remove_leftover(&self, _: &PlanOrphan) -> Result<Done, StepError> {
            Ok(Done::Removed)
        }
        fn steps(&self) -> u64 {
            0
        }
        fn close(self) -> Result<Option<String>, StepError> {
            Ok(None)
        }
    }

    fn fake(skip: &[ImageId]) -> Fake {
        Fake {
            calls: Mutex::new(Vec::new()),
            skip: skip.iter().copied().collect(),
            waves: Mutex::new(Vec::new()),
        }
    }

    /// base ← mid ← {a, b}, and an unrelated c: with -a every one goes.
    fn tree() -> (crate::store::Snapshot, [ImageId; 5]) {
        let mut s = empty_snapshot();
        let base = add_image(&mut s, &[1], 10, None);
        let mid = add_image(&mut s, &[1, 2], 10, Some(base));
        let a = add_image(&mut s, &[1, 2, 3], 10, Some(mid));
        let b = add_image(&mut s, &[1, 2, 4], 10, Some(mid));
        let c = add_image(&mut s, &[9], 10, None);
        tag(&mut s, "a:1", a);
        tag(&mut s, "b:1", b);
        tag(&mut s, "c:1", c);
        (s, [base, mid, a, b, c])
    }

    fn plan_all(g: &Graph) -> Plan {
        let sel = crate::policy::select(g, &crate::policy::Options::all(0));
        crate::plan::build(
            g,
            &sel,
            &crate::plan::OrphanOptions {
                enabled: false,
                grace: 0,
                now: 0,
                live: true,
            },
            String::new(),
        )
    }

    #[test]
    fn a_daemon_gets_independent_images_together_children_first() {
        let (s, [base, mid, a, b, c]) = tree();
        let g = Graph::build(&s);
        let plan = plan_all(&g);
        let x = fake(&[]);
        let out = run(&g, &plan, &x);
        assert!(out.complete() && out.skipped.is_empty(), "{out:?}");
        assert_eq!(out.removed.images, 5);
        assert_eq!(out.removed.references, 3, "references go with their images");
        assert_eq!(out.mode, "live");
        let calls = x.calls.lock().unwrap();
        let pos = |id: &ImageId| {
            calls
                .iter()
                .position(|c| *c == format!("image {}", id.short()))
                .unwrap()
        };
        assert!(pos(&a) < pos(&mid) && pos(&b) < pos(&mid) && pos(&mid) < pos(&base));
        assert!(pos(&c) < pos(&mid), "independent of the tree: first wave");
    }

    #[test]
    fn a_skipped_child_keeps_its_parents_and_nothing_fails() {
        let (s, [base, mid, a, _b, c]) = tree();
        let g = Graph::build(&s);
        let plan = plan_all(&g);
        let x = fake(&[a]);
        let out = run(&g, &plan, &x);
        assert!(out.complete(), "a skip is not a failure: {out:?}");
        let skipped: Vec<&str> = out.skipped.iter().map(|s| s.item.as_str()).collect();
        for id in [a, mid, base] {
            assert!(
                skipped.contains(&format!("image {id}").as_str()),
                "{id} stays: {skipped:?}"
            );
        }
        assert!(!skipped.contains(&format!("image {c}").as_str()));
        assert_eq!(out.removed.images, 2, "b and c");
    }

    #[test]
    fn waves_follow_the_tree() {
        let (s, _) = tree();
        let g = Graph::build(&s);
        let plan = plan_all(&g);
        let x = fake(&[]);
        // Wave 1: a, b, c (leaves); wave 2: mid; wave 3: base.
        run(&g, &plan, &x);
        let waves = x.waves.lock().unwrap().clone();
        assert_eq!(waves, [3, 1, 1]);
    }
}
