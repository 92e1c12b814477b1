//! The filesystem executor: changes a data root directly, with the daemon
//! stopped, in the crash-safe order of [`super::run`]. Each step mirrors the
//! daemon's own code: `repositories.json` rewritten atomically; an image's
//! metadata dir, then its config (moby `daemon/internal/image/fs.go`
//! `Delete`); a RW layer's dirs, then its layerdb entry
//! (`layer_store.go` `ReleaseRWLayer`); a layer renamed to
//! `<hex>-<64hex>-removing`, then its driver dir and `l/` link, then the
//! renamed entry (`deleteLayer`). `--trash` moves instead of deleting,
//! journalled first, so `trash restore` can give everything back.

use super::trash::TrashWriter;
use super::{Detached, Done, Executor, ImageStep, StepError, Style};
use crate::ids::ChainId;
use crate::leftovers::OrphanKind;
use crate::plan::{
    Plan, PlanBuildCache, PlanContainer, PlanImage, PlanLayer, PlanMount, PlanOrphan, PlanRef,
    PlanVolume,
};
use crate::store::graphdriver::Paths;
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

/// The filesystem executor. It counts and performs every filesystem change,
/// so a test can make any one of them fail or kill the process there.
pub struct Offline<'a> {
    paths: &'a Paths,
    fault: Option<Fault>,
    /// Shared by the threads of the parallel phase; the trash journal too.
    steps: AtomicU64,
    trash: Option<Mutex<TrashWriter>>,
    mounts: &'a [PathBuf],
}

impl<'a> Offline<'a> {
    /// With `--trash`, the trash entry is made (and journalled) first.
    pub fn new(paths: &'a Paths, plan: &Plan, o: &'a Options) -> Result<Self, StepError> {
        let trash = if o.trash {
            let t = TrashWriter::create(paths.root(), plan)
                .map_err(|e| StepError::new(paths.root().join(super::trash::TRASH_DIR), e))?;
            Some(Mutex::new(t))
        } else {
            None
        };
        Ok(Offline {
            paths,
            fault: o.fault,
            steps: AtomicU64::new(0),
            trash,
            mounts: &o.mounts,
        })
    }

    pub fn paths(&self) -> &Paths {
        self.paths
    }

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
            return t.move_in(self.paths.root(), p);
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
    fn remove_link(&self, dir: &str) -> io::Result<()> {
        let paths = self.paths;
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
/// temp file, fsync, mode 0600, rename, fsync of the directory. The daemon
/// refuses to start on a malformed reference store (moby
/// `daemon/internal/refstore/store.go`), so it is never written in place.
fn rewrite_refs(x: &Offline, path: &Path, refs: &[PlanRef]) -> io::Result<()> {
    let bytes = fs::read(path)?;
    let mut v: serde_json::Value = serde_json::from_slice(&bytes)
        .map_err(|e| io::Error::other(format!("{}: invalid JSON: {e}", path.display())))?;
    if let Some(repos) = v.get_mut("Repositories").and_then(|r| r.as_object_mut()) {
        for r in refs {
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
        t.keep_copy(x.paths.root(), path)?;
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

/// Sets `"Dead":true` in a container's `config.v2.json`, the daemon's
/// first step of a removal (moby `daemon/delete.go`: `SetDead`, then
/// `CheckpointTo`): a crash after it leaves a dead container the daemon
/// still registers and lets the user remove. The file is patched in its
/// `State` object only, written atomically like the daemon writes it.
fn checkpoint_dead(x: &Offline, path: &Path) -> io::Result<()> {
    let bytes = fs::read(path)?;
    let patched = mark_dead(&bytes).ok_or_else(|| {
        io::Error::other(format!(
            "{}: no \"State\" object with \"Dead\" to set",
            path.display()
        ))
    })?;
    let Some(patched) = patched else {
        return Ok(()); // already dead
    };
    x.step()?;
    if let Some(mut t) = x.trash() {
        t.keep_copy(x.paths.root(), path)?;
    }
    let dir = path.parent().unwrap_or(Path::new("."));
    let mut tmp = tempfile::Builder::new()
        .prefix(".tmp-config.v2.json")
        .tempfile_in(dir)?;
    tmp.write_all(&patched)?;
    tmp.as_file().sync_all()?;
    {
        use std::os::unix::fs::PermissionsExt;
        fs::set_permissions(tmp.path(), fs::Permissions::from_mode(0o600))?;
    }
    tmp.persist(path).map_err(|e| e.error)?;
    x.fsync_dir(dir)
}

/// The config with `State.Dead` set: `None` if there is no such field,
/// `Some(None)` if it is set already.
fn mark_dead(bytes: &[u8]) -> Option<Option<Vec<u8>>> {
    let v: serde_json::Value = serde_json::from_slice(bytes).ok()?;
    match v.get("State")?.get("Dead")? {
        serde_json::Value::Bool(true) => return Some(None),
        serde_json::Value::Bool(false) => {}
        _ => return None,
    }
    // Patch the bytes rather than re-encode: every other field stays as
    // the daemon wrote it. Go's encoder writes `"Dead":false` once, in State.
    let state = memchr::memmem::find(bytes, b"\"State\":{")?;
    let at = state + memchr::memmem::find(&bytes[state..], b"\"Dead\":false")?;
    let mut out = Vec::with_capacity(bytes.len());
    out.extend_from_slice(&bytes[..at]);
    out.extend_from_slice(b"\"Dead\":true");
    out.extend_from_slice(&bytes[at + b"\"Dead\":false".len()..]);
    Some(Some(out))
}

impl Offline<'_> {
    fn remove_image(&self, i: &PlanImage) -> Result<(), StepError> {
        let meta = self.paths.image_metadata(&i.id);
        let content = self.paths.image_config(&i.id);
        self.remove(&meta)
            .and_then(|_| self.remove(&content))
            .map_err(|e| StepError::new(&content, e))
    }
}

impl Executor for Offline<'_> {
    fn style(&self) -> Style {
        Style::Files
    }

    fn mode(&self) -> &'static str {
        "offline"
    }

    /// The daemon's order: dead checkpoint, RW layers (dirs, then layerdb
    /// entry), then the container's directory.
    fn remove_container(&self, c: &PlanContainer) -> Result<Done, StepError> {
        let dir = self.paths.docker().container(&c.id.0);
        if fs::symlink_metadata(&dir).is_err() {
            return Ok(Done::Gone);
        }
        let cfg = self.paths.docker().container_config(&c.id);
        checkpoint_dead(self, &cfg).map_err(|e| StepError::new(&cfg, e))?;
        for m in &c.mounts {
            self.remove_mount(m)?;
        }
        self.remove(&dir).map_err(|e| StepError::new(&dir, e))?;
        Ok(Done::Removed)
    }

    fn untag(&self, refs: &[PlanRef]) -> Result<Vec<Done>, StepError> {
        let p = self.paths.repositories_json();
        rewrite_refs(self, &p, refs).map_err(|e| StepError::new(&p, e))?;
        Ok(vec![Done::Removed; refs.len()])
    }

    fn remove_images(&self, batch: &[ImageStep]) -> Vec<Result<Done, StepError>> {
        batch
            .iter()
            .map(|s| self.remove_image(s.image).map(|_| Done::Removed))
            .collect()
    }

    fn remove_mount(&self, m: &PlanMount) -> Result<(), StepError> {
        let mdir = self.paths.mount(&m.name);
        let dirs = std::iter::once(&m.dirs.mount_id).chain(m.dirs.init_id.as_ref());
        let mut r = Ok(());
        for d in dirs {
            r = r
                .and_then(|_| self.remove_link(&d.0))
                .and_then(|_| self.remove(&self.paths.dir(&d.0)));
        }
        r.and_then(|_| self.remove(&mdir))
            .map_err(|e| StepError::new(&mdir, e))
    }

    fn detach_layer(&self, l: &PlanLayer) -> Result<Detached, StepError> {
        let from = self.paths.layer(&l.chain_id);
        let r = if self.trash.is_some() {
            self.remove(&from).map(|_| from.clone())
        } else {
            let to = self.paths.removing_layer(&l.chain_id, &random_hex());
            self.rename(&from, &to).map(|_| to)
        };
        r.map(|entry| Detached { entry })
            .map_err(|e| StepError::new(&from, e))
    }

    fn detached_all(&self) -> Result<(), StepError> {
        let dir = self.paths.layers_dir();
        self.fsync_dir(&dir).map_err(|e| StepError::new(&dir, e))
    }

    /// The driver dir and `l/` link, then the renamed entry (left for the
    /// daemon's Cleanup or the next run if the driver dir could not go).
    fn purge_layer(&self, l: &PlanLayer, d: &Detached) -> Result<(), StepError> {
        let dir = self.paths.dir(&l.data.cache_id.0);
        let name = &l.data.cache_id.0;
        if !l.data.keep_dir && (name.is_empty() || name.contains('/') || name == "l") {
            // Never the driver home or its links: a plan from the API alone names no dir.
            return Err(StepError::new(
                &dir,
                "the plan names no driver dir for this layer",
            ));
        }
        let r = if l.data.keep_dir {
            Ok(())
        } else {
            self.remove_link(&l.data.cache_id.0)
                .and_then(|_| self.remove(&dir))
        };
        r.and_then(|_| self.remove(&d.entry))
            .map_err(|e| StepError::new(&dir, e))
    }

    fn layers_released(&self, _: &Plan) -> HashSet<ChainId> {
        HashSet::new() // this executor removes layers itself
    }

    fn prune_build_cache(&self, _: &PlanBuildCache) -> Result<(u64, u64), StepError> {
        Err(StepError::new(
            self.paths.docker().buildkit(),
            "BuildKit's databases are never written offline; prune the build cache live",
        ))
    }

    fn remove_volume(&self, v: &PlanVolume) -> Result<Done, StepError> {
        Err(StepError::new(
            self.paths.docker().volumes().join(&v.name),
            "volumes are removed only through the daemon; run live",
        ))
    }

    fn remove_leftover(&self, o: &PlanOrphan) -> Result<Done, StepError> {
        self.remove_leftover_files(o).map(|_| Done::Removed)
    }

    fn steps(&self) -> u64 {
        self.steps.load(Ordering::SeqCst)
    }

    fn close(self) -> Result<Option<String>, StepError> {
        let Some(t) = self.trash else { return Ok(None) };
        let t = t.into_inner().unwrap_or_else(|p| p.into_inner());
        let id = t.id.clone();
        t.close()
            .map(|_| Some(id))
            .map_err(|e| StepError::new(self.paths.root().join(super::trash::TRASH_DIR), e))
    }
}

impl Offline<'_> {
    /// A leftover's files, with its `l/` link or the driver dir it names.
    pub(super) fn remove_leftover_files(&self, o: &PlanOrphan) -> Result<(), StepError> {
        let p = self.paths.root().join(&o.path);
        let r = match o.kind {
            OrphanKind::DriverDir | OrphanKind::Probe => {
                let name = o
                    .path
                    .file_name()
                    .map(|n| n.to_string_lossy().into_owned())
                    .unwrap_or_default();
                self.remove_link(&name).and_then(|_| self.remove(&p))
            }
            OrphanKind::PendingRemoval => {
                let cache = match &o.steps.cache_dir {
                    Some(c) => self
                        .remove_link(c)
                        .and_then(|_| self.remove(&self.paths.dir(c))),
                    None => Ok(()),
                };
                cache.and_then(|_| self.remove(&p))
            }
            OrphanKind::DanglingLink => {
                if fs::metadata(&p).is_err() {
                    self.remove(&p)
                } else {
                    Ok(()) // it resolves again: leave it
                }
            }
            _ => self.remove(&p),
        };
        r.map_err(|e| StepError::new(&p, e))
    }
}
