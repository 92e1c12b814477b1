//! Executes a Plan: the only code that changes a data root.
//!
//! Order mirrors the daemon's own (format doc §2.5, §3.7, §13, §14): rewrite
//! `repositories.json` atomically; remove image metadata, then configs; orphan
//! mounts; then layers in three phases (rename every planned layerdb entry to
//! `-removing` and fsync the directory; remove driver dirs and `l/` links;
//! remove the renamed entries); then leftovers. A crash at any step leaves
//! only states the daemon tolerates, and running prune again finishes the job.

use crate::graph::Graph;
use crate::ids::{ChainId, ImageId};
use crate::plan::{Plan, Reclaim};
use crate::store::graphdriver::Paths;
use crate::trash::TrashWriter;
use crate::usage::OrphanKind;
use rayon::prelude::*;
use serde::Serialize;
use std::collections::HashSet;
use std::fs;
use std::io::{self, Write};
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};

/// Test hook: make the Nth filesystem change fail, or kill the process there.
#[derive(Debug, Clone, Copy)]
pub struct Fault {
    pub at: u64,
    pub abort: bool,
}

impl Fault {
    /// `DOCKGC_TEST_FAULT=N` (fail) or `N:abort` (die like `kill -9`).
    pub fn from_env() -> Option<Fault> {
        let v = std::env::var("DOCKGC_TEST_FAULT").ok()?;
        let (n, mode) = v.split_once(':').unwrap_or((&v, "fail"));
        Some(Fault {
            at: n.parse().ok()?,
            abort: mode == "abort",
        })
    }
}

pub struct Options {
    /// Move into `<root>/dockgc-trash/<id>/` instead of deleting.
    pub trash: bool,
    pub fault: Option<Fault>,
    /// Mount points at or below the root; nothing at or above them is removed.
    pub mounts: Vec<PathBuf>,
}

#[derive(Debug, Default, Serialize)]
pub struct Outcome {
    pub removed: Counts,
    /// Bytes reclaimed per category (as the plan measured them), for what was done.
    pub reclaimed: Reclaim,
    pub failures: Vec<Failure>,
    /// Set with `--trash`: `dockgc trash restore ID` undoes the run.
    pub trash_id: Option<String>,
    /// Filesystem changes made.
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

/// Why a saved plan cannot be applied to the store as it is now.
pub fn validate(g: &Graph, plan: &Plan) -> Result<(), Vec<String>> {
    let snap = g.snap;
    let mut errs = Vec::new();
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
        return Err(errs);
    }
    for r in &plan.references {
        if !snap
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
    let images: HashSet<ImageId> = plan.images.iter().map(|i| i.id).collect();
    for i in &plan.images {
        if !snap.images.contains_key(&i.id) {
            errs.push(format!("image {} no longer exists", i.id.short()));
        }
        if g.used_by_containers.contains(&i.id) {
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
    let freed = crate::plan::frees(g, plan, &HashSet::new(), &HashSet::new());
    let layers: HashSet<ChainId> = plan.layers.iter().map(|l| l.chain_id).collect();
    for l in &plan.layers {
        match snap.layers.get(&l.chain_id) {
            None => errs.push(format!("layer {} no longer exists", l.chain_id.short())),
            Some(now)
                if now.diff_id != l.diff_id
                    || g.gd.cache_id(&l.chain_id) != Some(&l.cache_id)
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
    let owners = &g.mount_owners;
    for m in &plan.mounts {
        match g.gd.mounts.get(&m.name) {
            Some(now)
                if now.mount_id == m.mount_id
                    && now.init_id == m.init_id
                    && !owners.contains_key(m.name.as_str()) => {}
            _ => errs.push(format!("mount {} changed or is now owned", m.name)),
        }
    }
    for o in &plan.orphans {
        let p = snap.root.join(&o.path);
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
    if errs.is_empty() { Ok(()) } else { Err(errs) }
}

/// Counts and performs every filesystem change, so a test can make any one
/// of them fail or kill the process there.
struct Exec<'a> {
    root: &'a Path,
    fault: Option<Fault>,
    /// Shared by the threads of the parallel phase; the trash journal too.
    steps: AtomicU64,
    trash: Option<Mutex<TrashWriter>>,
    mounts: &'a [PathBuf],
}

impl Exec<'_> {
    fn step(&self) -> io::Result<()> {
        let n = self.steps.fetch_add(1, Ordering::SeqCst) + 1;
        if let Some(f) = self.fault
            && f.at == n
        {
            if f.abort {
                std::process::abort();
            }
            return Err(io::Error::other(format!("injected fault at step {n}")));
        }
        Ok(())
    }

    fn trash(&self) -> Option<std::sync::MutexGuard<'_, TrashWriter>> {
        self.trash
            .as_ref()
            .map(|t| t.lock().unwrap_or_else(|p| p.into_inner()))
    }

    fn check_unmounted(&self, p: &Path) -> io::Result<()> {
        if let Some(m) = self.mounts.iter().find(|m| m.starts_with(p)) {
            return Err(io::Error::other(format!(
                "{} is mounted; not removed",
                m.display()
            )));
        }
        Ok(())
    }

    /// Removes (or moves to the trash) a file or a whole tree. A missing path is done.
    fn remove(&self, p: &Path) -> io::Result<()> {
        let meta = match fs::symlink_metadata(p) {
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(()),
            other => other?,
        };
        self.check_unmounted(p)?;
        self.step()?;
        if let Some(mut t) = self.trash() {
            return t.move_in(self.root, p);
        }
        if meta.is_dir() {
            fs::remove_dir_all(p)
        } else {
            fs::remove_file(p)
        }
    }

    fn rename(&self, from: &Path, to: &Path) -> io::Result<()> {
        self.step()?;
        fs::rename(from, to)
    }

    fn fsync_dir(&self, dir: &Path) -> io::Result<()> {
        fs::File::open(dir)?.sync_all()
    }

    /// `l/<link>` of a driver dir, only if it really points back at that dir.
    fn remove_link(&self, paths: &Paths, dir: &str) -> io::Result<()> {
        let Ok(link) = fs::read_to_string(paths.link_file(dir)) else {
            return Ok(());
        };
        let link = link.trim();
        if link.is_empty() || link.contains('/') {
            return Ok(()); // moby PR#36158: an empty link once removed all of l/
        }
        let lp = paths.link(link);
        match fs::read_link(&lp) {
            Ok(t) if t == Paths::link_target(dir) => self.remove(&lp),
            _ => Ok(()),
        }
    }
}

/// 64 random hex characters, as the daemon names `-removing` entries.
fn random_hex() -> String {
    let mut b = [0u8; 32];
    match fs::File::open("/dev/urandom").and_then(|mut f| io::Read::read_exact(&mut f, &mut b)) {
        Ok(()) => crate::ids::hex(&b),
        Err(_) => {
            let t = std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map_or(0, |d| d.as_nanos());
            crate::ids::Digest::of_bytes(format!("{t}-{}", std::process::id()).as_bytes()).hex()
        }
    }
}

/// Writes `repositories.json` without the planned references: same-directory
/// temp file, fsync, mode 0600, rename, fsync of the directory (invariant 2).
fn rewrite_refs(x: &Exec, path: &Path, plan: &Plan) -> io::Result<()> {
    let bytes = fs::read(path)?;
    let mut v: serde_json::Value = serde_json::from_slice(&bytes)
        .map_err(|e| io::Error::other(format!("{}: invalid JSON: {e}", path.display())))?;
    if let Some(repos) = v.get_mut("Repositories").and_then(|r| r.as_object_mut()) {
        for r in &plan.references {
            if let Some(entries) = repos.get_mut(&r.repository).and_then(|e| e.as_object_mut())
                && entries.get(&r.reference).and_then(|i| i.as_str())
                    == Some(r.image.to_string().as_str())
            {
                entries.remove(&r.reference);
            }
        }
        repos.retain(|_, e| e.as_object().is_none_or(|o| !o.is_empty()));
    }
    // serde_json's map is ordered: keys come out sorted, as Go's json.Marshal writes them.
    let out = serde_json::to_vec(&v).map_err(io::Error::other)?;
    let dir = path.parent().unwrap_or(Path::new("."));
    x.step()?;
    if let Some(mut t) = x.trash() {
        t.keep_copy(x.root, path)?;
    }
    let mut tmp = tempfile::Builder::new()
        .prefix(".tmp-repositories.json")
        .tempfile_in(dir)?;
    tmp.write_all(&out)?;
    tmp.as_file().sync_all()?;
    {
        use std::os::unix::fs::PermissionsExt;
        fs::set_permissions(tmp.path(), fs::Permissions::from_mode(0o600))?;
    }
    tmp.persist(path).map_err(|e| e.error)?;
    x.fsync_dir(dir)
}

pub fn apply(g: &Graph, plan: &Plan, o: &Options) -> Outcome {
    let snap = g.snap;
    let root = snap.root.as_path();
    let paths = &g.gd.paths;
    let mut out = Outcome::default();
    let trash = if o.trash {
        match TrashWriter::create(root, plan) {
            Ok(t) => Some(t),
            Err(e) => {
                out.failures.push(Failure {
                    item: "trash".into(),
                    path: root.join(crate::trash::TRASH_DIR),
                    error: e.to_string(),
                });
                return out;
            }
        }
    } else {
        None
    };
    out.trash_id = trash.as_ref().map(|t| t.id.clone());
    let x = Exec {
        root,
        fault: o.fault,
        steps: AtomicU64::new(0),
        trash: trash.map(Mutex::new),
        mounts: &o.mounts,
    };
    let fail = |out: &mut Outcome, item: String, path: &Path, e: io::Error| {
        out.failures.push(Failure {
            item,
            path: path.to_path_buf(),
            error: e.to_string(),
        })
    };

    // 1. References first: no reference may ever name a removed image.
    if !plan.references.is_empty() {
        let p = paths.repositories_json();
        match rewrite_refs(&x, &p, plan) {
            Ok(()) => out.removed.references = plan.references.len() as u64,
            Err(e) => {
                // Nothing else is safe: the images would be left referenced.
                fail(&mut out, "repositories.json".into(), &p, e);
                out.steps = x.steps.load(Ordering::SeqCst);
                return finish(x, out);
            }
        }
    }

    // 2. Images: metadata, then the config (the daemon's order).
    let mut failed_images: HashSet<ImageId> = HashSet::new();
    for i in &plan.images {
        // Children come first; a parent whose child could not go must stay.
        if let Some(ch) = g.children.get(&i.id)
            && let Some(c) = ch.iter().find(|c| failed_images.contains(c))
        {
            failed_images.insert(i.id);
            let e = io::Error::other(format!(
                "its child image {} could not be removed",
                c.short()
            ));
            fail(
                &mut out,
                format!("image {}", i.id),
                &paths.image_config(&i.id),
                e,
            );
            continue;
        }
        let meta = paths.image_metadata(&i.id);
        let content = paths.image_config(&i.id);
        let r = x.remove(&meta).and_then(|_| x.remove(&content));
        match r {
            Ok(()) => {
                out.removed.images += 1;
                out.reclaimed.images += i.config_bytes;
            }
            Err(e) => {
                failed_images.insert(i.id);
                fail(&mut out, format!("image {}", i.id), &content, e);
            }
        }
    }

    // 3. Orphan mounts before layers: they hold references on their parents.
    let mut failed_mounts = HashSet::new();
    for m in &plan.mounts {
        let mdir = paths.mount(&m.name);
        let mut r = x
            .remove_link(paths, &m.mount_id.0)
            .and_then(|_| x.remove(&paths.dir(&m.mount_id.0)));
        if let Some(i) = &m.init_id {
            r = r
                .and_then(|_| x.remove_link(paths, &i.0))
                .and_then(|_| x.remove(&paths.dir(&i.0)));
        }
        match r.and_then(|_| x.remove(&mdir)) {
            Ok(()) => {
                out.removed.mounts += 1;
                out.reclaimed.mounts += m.bytes;
            }
            Err(e) => {
                failed_mounts.insert(m.name.as_str());
                fail(&mut out, format!("mount {}", m.name), &mdir, e);
            }
        }
    }

    // 4. Layers still held by something that failed to go stay too.
    let freed = (!failed_images.is_empty() || !failed_mounts.is_empty())
        .then(|| crate::plan::frees(g, plan, &failed_images, &failed_mounts));
    let held = |c: &ChainId| freed.as_ref().is_some_and(|f| !f.contains(c));
    let layerdb = paths.layers_dir();
    // 4a. Every planned entry disappears from the daemon's view at once.
    let mut renamed: Vec<(&crate::plan::PlanLayer, PathBuf)> = Vec::new();
    // Children come first; a layer whose child stays must stay too (§3.6).
    let mut must_stay: HashSet<ChainId> = HashSet::new();
    for l in &plan.layers {
        if held(&l.chain_id) || must_stay.contains(&l.chain_id) {
            must_stay.extend(l.parent);
            continue;
        }
        let from = paths.layer(&l.chain_id);
        let r = if x.trash.is_some() {
            x.remove(&from).map(|_| from.clone())
        } else {
            let to = paths.removing_layer(&l.chain_id, &random_hex());
            x.rename(&from, &to).map(|_| to)
        };
        match r {
            Ok(p) => renamed.push((l, p)),
            Err(e) => {
                must_stay.extend(l.parent);
                fail(&mut out, format!("layer {}", l.chain_id), &from, e)
            }
        }
    }
    if !renamed.is_empty()
        && let Err(e) = x.fsync_dir(&layerdb)
    {
        fail(&mut out, "layerdb".into(), &layerdb, e);
    }
    // 4b. Driver data; 4c. the renamed entries (left for the daemon's Cleanup
    // or the next run if the driver dir could not go). Every entry is already
    // out of the daemon's view, so the layers are independent: in parallel,
    // which is where the time goes (deleting trees).
    let done: Vec<(&crate::plan::PlanLayer, PathBuf, io::Result<()>)> = renamed
        .into_par_iter()
        .map(|(l, removing)| {
            let dir = paths.dir(&l.cache_id.0);
            let r = if l.keep_driver_dir {
                Ok(())
            } else {
                x.remove_link(paths, &l.cache_id.0)
                    .and_then(|_| x.remove(&dir))
            };
            let r = r.and_then(|_| x.remove(&removing));
            (l, dir, r)
        })
        .collect();
    for (l, dir, r) in done {
        match r {
            Ok(()) => {
                out.removed.layers += 1;
                out.reclaimed.layers += l.size;
            }
            Err(e) => fail(&mut out, format!("layer {}", l.chain_id), &dir, e),
        }
    }

    // 5. Leftovers.
    for orphan in &plan.orphans {
        let p = root.join(&orphan.path);
        let r = match orphan.kind {
            OrphanKind::DriverDir | OrphanKind::Probe => {
                let name = orphan
                    .path
                    .file_name()
                    .map(|n| n.to_string_lossy().into_owned())
                    .unwrap_or_default();
                x.remove_link(paths, &name).and_then(|_| x.remove(&p))
            }
            OrphanKind::PendingRemoval => {
                let cache = match &orphan.cache_dir {
                    Some(c) => x
                        .remove_link(paths, c)
                        .and_then(|_| x.remove(&paths.dir(c))),
                    None => Ok(()),
                };
                cache.and_then(|_| x.remove(&p))
            }
            OrphanKind::DanglingLink => {
                if fs::metadata(&p).is_err() {
                    x.remove(&p)
                } else {
                    Ok(()) // it resolves again: leave it
                }
            }
            _ => x.remove(&p),
        };
        match r {
            Ok(()) => {
                out.removed.orphans += 1;
                out.reclaimed.orphans += orphan.bytes;
            }
            Err(e) => fail(&mut out, format!("{:?} orphan", orphan.kind), &p, e),
        }
    }
    out.steps = x.steps.load(Ordering::SeqCst);
    finish(x, out)
}

fn finish(x: Exec, mut out: Outcome) -> Outcome {
    out.reclaimed.total =
        out.reclaimed.images + out.reclaimed.layers + out.reclaimed.mounts + out.reclaimed.orphans;
    if let Some(t) = x.trash
        && let Err(e) = t.into_inner().unwrap_or_else(|p| p.into_inner()).close()
    {
        out.failures.push(Failure {
            item: "trash".into(),
            path: x.root.join(crate::trash::TRASH_DIR),
            error: e.to_string(),
        });
    }
    out
}
