//! What is in use right now, for removing leftovers while the daemon runs.
//!
//! A leftover planned a moment ago may have been claimed since: `docker
//! load` creates a driver dir before its layerdb entry, a build registers
//! snapshots, a container mounts its layers. So right before the leftovers
//! step the store is read again, every image and container is inspected for
//! the driver dirs its `GraphDriver` data names, and each leftover is
//! checked once more just before it goes: still a leftover, named by no API
//! object, not mounted or used by a mount, and unchanged (mtime and ctime:
//! a rename changes only the latter) for the whole grace period.

use super::Engine;
use crate::graph::Graph;
use crate::leftovers::{self, OrphanKind};
use crate::plan::PlanOrphan;
use crate::store::graphdriver::Paths;
use std::collections::HashSet;
use std::ffi::OsStr;
use std::path::{Component, Path, PathBuf};

/// Inspections in flight at once.
const INSPECT_CONCURRENCY: usize = 8;

pub struct InUse {
    /// Leftovers of the store as read again (absolute paths).
    still_leftover: HashSet<PathBuf>,
    /// Driver dirs the daemon's `GraphDriver` data names for any image or container.
    api_dirs: HashSet<String>,
}

/// The driver dir names in `GraphDriver.Data` values: every path component
/// after the driver's own directory (`…/overlay2/<dir>/diff`).
fn dirs_named(value: &str, driver: &str, out: &mut HashSet<String>) {
    for p in value.split(':') {
        let mut parts = Path::new(p).components();
        while let Some(c) = parts.next() {
            if c == Component::Normal(OsStr::new(driver))
                && let Some(Component::Normal(d)) = parts.next()
            {
                out.insert(d.to_string_lossy().into_owned());
                break;
            }
        }
    }
}

impl InUse {
    pub fn read(engine: &Engine, paths: &Paths) -> Result<InUse, String> {
        let root = paths.root();
        let snap = crate::store::load_with(
            root,
            crate::store::LoadOptions {
                lower: false,
                driver: Some(paths.driver().to_string()),
                share: None,
            },
        )
        .map_err(|e| format!("reading the root again: {e}"))?;
        let g = Graph::build(&snap);
        let still_leftover = leftovers::collect(&g).into_iter().map(|l| l.path).collect();
        let view = super::view::View::read(engine).map_err(|e| e.to_string())?;
        let mut api_dirs = HashSet::new();
        let images: Vec<String> = view.images.keys().map(|i| i.to_string()).collect();
        let calls = images.iter().map(|id| engine.find_image(id)).collect();
        for r in engine.run_all(calls, INSPECT_CONCURRENCY) {
            if let Some(gd) = r.map_err(|e| e.to_string())?.and_then(|i| i.graph_driver) {
                for v in gd.data.values() {
                    dirs_named(v, paths.driver(), &mut api_dirs);
                }
            }
        }
        let containers: Vec<String> = view.containers.keys().map(|c| c.0.clone()).collect();
        let calls = containers
            .iter()
            .map(|id| engine.find_container(id))
            .collect();
        for r in engine.run_all(calls, INSPECT_CONCURRENCY) {
            if let Some(gd) = r.map_err(|e| e.to_string())?.and_then(|c| c.graph_driver) {
                for v in gd.data.values() {
                    dirs_named(v, paths.driver(), &mut api_dirs);
                }
            }
        }
        Ok(InUse {
            still_leftover,
            api_dirs,
        })
    }

    /// Why `o` must stay now; `None` when it may go.
    pub fn why_not(&self, paths: &Paths, o: &PlanOrphan, now: i64, grace: i64) -> Option<String> {
        let p = paths.root().join(&o.path);
        if !self.still_leftover.contains(&p) {
            return Some("something references it now".into());
        }
        let dir = match o.kind {
            OrphanKind::DriverDir | OrphanKind::Probe => {
                o.path.file_name().map(|n| n.to_string_lossy().into_owned())
            }
            OrphanKind::PendingRemoval => o.steps.cache_dir.clone(),
            _ => None,
        };
        if let Some(d) = &dir
            && self.api_dirs.contains(d)
        {
            return Some("the daemon's GraphDriver data names it".into());
        }
        if let Some(why) = mounted(paths, &p, dir.as_deref()) {
            return Some(why);
        }
        let changed = changed_at(&p)?;
        if now - changed < grace {
            return Some(format!(
                "changed {} ago, within the grace period",
                crate::units::human_duration(now - changed)
            ));
        }
        None
    }
}

/// The later of mtime and ctime; `None` when it is gone already.
fn changed_at(p: &Path) -> Option<i64> {
    use std::os::unix::fs::MetadataExt;
    let m = std::fs::symlink_metadata(p).ok()?;
    Some(m.mtime().max(m.ctime()))
}

/// Whether a mount sits at or below `p`, or an overlay mount uses `dir`.
fn mounted(paths: &Paths, p: &Path, dir: Option<&str>) -> Option<String> {
    let (points, options) = match crate::store::daemon::mounted_now() {
        Ok(m) => m,
        Err(e) => return Some(format!("cannot read /proc/self/mountinfo: {e}")),
    };
    if let Some(m) = points.iter().find(|m| m.starts_with(p)) {
        return Some(format!("{} is mounted", m.display()));
    }
    let dir = dir?;
    let home = paths.home();
    for o in options {
        // `l/<link>` is relative to the driver home; follow the link.
        let abs = if o.is_relative() { home.join(&o) } else { o };
        // Links point at `../<dir>/diff`, from `l/`: that is `<home>/<dir>/diff`.
        let target = std::fs::read_link(&abs)
            .ok()
            .map(|t| t.strip_prefix("..").map_or(t.clone(), |r| home.join(r)));
        let mut named = HashSet::new();
        for q in std::iter::once(&abs).chain(target.as_ref()) {
            dirs_named(&q.to_string_lossy(), paths.driver(), &mut named);
        }
        if named.contains(dir) {
            return Some(format!("an overlay mount uses {}", abs.display()));
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn driver_dirs_in_graphdriver_data() {
        let mut s = HashSet::new();
        dirs_named(
            "/var/lib/docker/overlay2/aaa/diff:/var/lib/docker/overlay2/bbb-init/diff",
            "overlay2",
            &mut s,
        );
        dirs_named("/var/lib/docker/overlay2/ccc/merged", "overlay2", &mut s);
        dirs_named("/elsewhere/x/diff", "overlay2", &mut s);
        let mut v: Vec<_> = s.into_iter().collect();
        v.sort();
        assert_eq!(v, ["aaa", "bbb-init", "ccc"]);
    }
}
