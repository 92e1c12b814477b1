//! Re-validating a saved plan (`apply FILE`) against the store as it is now:
//! every item must still be what the plan saw, and still be free to go.

use crate::graph::Graph;
use crate::ids::{ChainId, ContainerId, ImageId};
use crate::leftovers::OrphanKind;
use crate::plan::Plan;
use std::collections::HashSet;
use std::fs;

/// Why a saved plan cannot be applied through a live daemon: only a plan
/// for another store. Item by item the daemon decides (a conflict is a
/// skip, a 404 is done), so what changed since the plan is skipped there,
/// not refused here.
pub fn validate_live(g: &Graph, plan: &Plan) -> Result<(), Vec<String>> {
    let mut errs = Vec::new();
    if same_store(g, plan, &mut errs) {
        Ok(())
    } else {
        Err(errs)
    }
}

/// Why a saved plan cannot be applied to the store as it is now.
pub fn validate(g: &Graph, plan: &Plan) -> Result<(), Vec<String>> {
    let mut errs = Vec::new();
    if !same_store(g, plan, &mut errs) {
        return Err(errs);
    }
    references(g, plan, &mut errs);
    containers(g, plan, &mut errs);
    images(g, plan, &mut errs);
    // From the API alone there are no layer entries, driver dirs or
    // leftovers to compare: the daemon checks its own layers.
    if g.snap.source == crate::store::Source::Disk {
        layers(g, plan, &mut errs);
        mounts(g, plan, &mut errs);
        orphans(g, plan, &mut errs);
    }
    if errs.is_empty() { Ok(()) } else { Err(errs) }
}

/// The plan's version, root and driver; false when nothing else is comparable.
fn same_store(g: &Graph, plan: &Plan, errs: &mut Vec<String>) -> bool {
    let snap = g.snap;
    if plan.version != crate::plan::PLAN_VERSION {
        errs.push(format!(
            "plan version {} is not {}",
            plan.version,
            crate::plan::PLAN_VERSION
        ));
    }
    let same_root = fs::canonicalize(&plan.root).ok() == fs::canonicalize(&snap.root).ok();
    if !same_root || plan.driver != snap.driver() {
        errs.push(format!(
            "the plan is for {} ({}), not {} ({})",
            plan.root.display(),
            plan.driver,
            snap.root.display(),
            snap.driver()
        ));
        return false;
    }
    true
}

/// Each container still exists, with the same image, and is still stopped.
fn containers(g: &Graph, plan: &Plan, errs: &mut Vec<String>) {
    for c in &plan.containers {
        match g.snap.containers.get(&c.id) {
            None => {} // gone already: nothing to do, not a conflict
            Some(now) if now.state.is_active() || now.state.pid_alive => {
                errs.push(format!("container {} is {} now", c.name, now.state.word()))
            }
            Some(now) if now.image != c.image => errs.push(format!("container {} changed", c.name)),
            Some(_) => {}
        }
    }
}

fn references(g: &Graph, plan: &Plan, errs: &mut Vec<String>) {
    for r in &plan.references {
        if !g
            .snap
            .refs
            .iter()
            .any(|x| x.reference == r.reference && x.image == r.image)
        {
            errs.push(format!(
                "reference {} no longer names {}",
                r.reference,
                r.image.short()
            ));
        }
    }
}

/// Each image still exists, has no new user or child, and the same references.
fn images(g: &Graph, plan: &Plan, errs: &mut Vec<String>) {
    let images: HashSet<ImageId> = plan.images.iter().map(|i| i.id).collect();
    for i in &plan.images {
        if !g.snap.images.contains_key(&i.id) {
            errs.push(format!("image {} no longer exists", i.id.short()));
        }
        let going: HashSet<&ContainerId> = plan.containers.iter().map(|c| &c.id).collect();
        if g.image_users
            .get(&i.id)
            .is_some_and(|u| u.iter().any(|c| !going.contains(c)))
        {
            errs.push(format!("image {} is now used by a container", i.id.short()));
        }
        if let Some(ch) = g.children.get(&i.id)
            && ch.iter().any(|c| !images.contains(c))
        {
            errs.push(format!(
                "image {} now has a child image that stays",
                i.id.short()
            ));
        }
        let refs_now: HashSet<&str> = g.refs(&i.id).map(|r| r.reference.as_str()).collect();
        let refs_planned: HashSet<&str> = plan
            .references
            .iter()
            .filter(|r| r.image == i.id)
            .map(|r| r.reference.as_str())
            .collect();
        if refs_now != refs_planned {
            errs.push(format!("image {}'s references changed", i.id.short()));
        }
    }
}

/// Each layer is unchanged, still freed by what the plan removes (the holds
/// of the store now), and has no child that stays.
fn layers(g: &Graph, plan: &Plan, errs: &mut Vec<String>) {
    let snap = g.snap;
    let freed = crate::plan::frees(g, plan, &HashSet::new(), &HashSet::new());
    let layers: HashSet<ChainId> = plan.layers.iter().map(|l| l.chain_id).collect();
    for l in &plan.layers {
        match snap.layers.get(&l.chain_id) {
            None => errs.push(format!("layer {} no longer exists", l.chain_id.short())),
            Some(now)
                if now.diff_id != l.diff_id
                    || g.gd.cache_id(&l.chain_id) != Some(&l.data.cache_id)
                    || now.parent != l.parent
                    || now.size != l.size =>
            {
                errs.push(format!("layer {} changed", l.chain_id.short()))
            }
            Some(_) => {}
        }
        if !freed.contains(&l.chain_id) {
            errs.push(format!("layer {} is now in use", l.chain_id.short()));
        }
    }
    for l in snap.layers.values() {
        if let Some(p) = l.parent
            && layers.contains(&p)
            && !layers.contains(&l.chain_id)
        {
            errs.push(format!(
                "layer {} now has a child layer that stays",
                p.short()
            ));
        }
    }
}

fn mounts(g: &Graph, plan: &Plan, errs: &mut Vec<String>) {
    for m in &plan.mounts {
        match g.gd.mounts.get(&m.name) {
            Some(now)
                if now.mount_id == m.dirs.mount_id
                    && now.init_id == m.dirs.init_id
                    && !g.mount_owners.contains_key(m.name.as_str()) => {}
            _ => errs.push(format!("mount {} changed or is now owned", m.name)),
        }
    }
}

/// Each leftover is untouched since (same mtime) and, for a dir, still nobody's.
fn orphans(g: &Graph, plan: &Plan, errs: &mut Vec<String>) {
    for o in &plan.orphans {
        let p = g.snap.root.join(&o.path);
        let m = fs::symlink_metadata(&p).map(|m| {
            use std::os::unix::fs::MetadataExt;
            m.mtime()
        });
        if m.ok() != Some(o.mtime) {
            errs.push(format!(
                "{} changed since the plan was made",
                o.path.display()
            ));
            continue;
        }
        if o.kind == OrphanKind::DriverDir {
            let name = o
                .path
                .file_name()
                .map(|n| n.to_string_lossy().into_owned())
                .unwrap_or_default();
            if g.dir_roles.get(name.as_str()) != Some(&crate::graph::DirRole::Orphan) {
                errs.push(format!("{} is now referenced", o.path.display()));
            }
        }
    }
}
