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
use super::{Detached, Executor, StepError};
use crate::leftovers::OrphanKind;
use crate::plan::{Plan, PlanImage, PlanLayer, PlanMount, PlanOrphan, PlanRef};
use crate::store::graphdriver::Paths;
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

impl Executor for Offline<'_> {
    fn untag(&self, refs: &[PlanRef]) -> Result<(), StepError> {
        let p = self.paths.repositories_json();
        rewrite_refs(self, &p, refs).map_err(|e| StepError::new(&p, e))
    }

    fn remove_image(&self, i: &PlanImage) -> Result<(), StepError> {
        let meta = self.paths.image_metadata(&i.id);
        let content = self.paths.image_config(&i.id);
        self.remove(&meta)
            .and_then(|_| self.remove(&content))
            .map_err(|e| StepError::new(&content, e))
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
        let r = if l.data.keep_dir {
            Ok(())
        } else {
            self.remove_link(&l.data.cache_id.0)
                .and_then(|_| self.remove(&dir))
        };
        r.and_then(|_| self.remove(&d.entry))
            .map_err(|e| StepError::new(&dir, e))
    }

    fn remove_leftover(&self, o: &PlanOrphan) -> Result<(), StepError> {
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
