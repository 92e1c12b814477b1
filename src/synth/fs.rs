//! Writing files and directories with exact modes, whatever the umask.

use super::DRIVER;
use crate::store::graphdriver::Paths;
use std::fs::{self, DirBuilder, File, FileTimes, OpenOptions, Permissions};
use std::io::{self, Write};
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, UNIX_EPOCH};

pub(super) struct Ctx {
    /// The layout of the root being written (absolute).
    pub(super) paths: Paths,
    /// Bits the process umask clears; a chmod is needed only when a mode has any.
    umask: u32,
    bytes: AtomicU64,
}

impl Ctx {
    /// Creates `root` (0710, as dockerd does) if missing, and the store's
    /// empty directories.
    pub(super) fn new(root: &Path) -> io::Result<Ctx> {
        let umask = current_umask();
        if !root.exists() {
            fs::create_dir_all(root)?;
            fs::set_permissions(root, Permissions::from_mode(0o710))?;
        }
        let root = std::path::absolute(root)?;
        let ctx = Ctx {
            paths: Paths::new(&root, DRIVER),
            umask,
            bytes: AtomicU64::new(0),
        };
        ctx.skeleton()?;
        Ok(ctx)
    }

    /// The directories a fresh dockerd 20.10 has, with its modes: imagedb
    /// and layerdb 0700 (`os.MkdirAll(root, 0o700)` in moby
    /// `daemon/internal/image/fs.go` and `daemon/internal/layer/filestore.go`),
    /// layerdb's `sha256/`, `mounts/` and `tmp/` 0755, the driver home 0710
    /// with `l/` 0700 (`daemon/graphdriver/overlay2/overlay.go` `Init`), and
    /// `containers/` 0710 (`daemon/daemon.go` `NewDaemon`).
    fn skeleton(&self) -> io::Result<()> {
        let p = &self.paths;
        self.dir_all(&p.image_configs(), 0o700)?;
        self.dir_all(&p.image_metadata_dir(), 0o700)?;
        self.dir(&p.layerdb(), 0o700)?;
        for d in [p.layers_dir(), p.mounts_dir(), p.layerdb_tmp()] {
            self.dir(&d, 0o755)?;
        }
        self.dir(&p.home(), 0o710)?;
        self.dir(&p.links_dir(), 0o700)?;
        self.dir(&p.docker().containers(), 0o710)
    }

    /// Go's `os.MkdirAll`: the missing ancestors too, each with `mode`.
    fn dir_all(&self, path: &Path, mode: u32) -> io::Result<()> {
        if path.is_dir() {
            return Ok(());
        }
        if let Some(parent) = path.parent() {
            self.dir_all(parent, mode)?;
        }
        self.dir(path, mode)
    }

    pub(super) fn dir(&self, path: &Path, mode: u32) -> io::Result<()> {
        DirBuilder::new().mode(mode).create(path)?;
        if mode & self.umask != 0 {
            fs::set_permissions(path, Permissions::from_mode(mode))?;
        }
        Ok(())
    }

    /// A new file holding `data`, left open (to set its times).
    pub(super) fn open(&self, path: &Path, data: &[u8], mode: u32) -> io::Result<File> {
        let mut f = OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(mode)
            .open(path)?;
        f.write_all(data)?;
        if mode & self.umask != 0 {
            f.set_permissions(Permissions::from_mode(mode))?;
        }
        self.bytes.fetch_add(data.len() as u64, Ordering::Relaxed);
        Ok(f)
    }

    pub(super) fn file(&self, path: &Path, data: &[u8], mode: u32) -> io::Result<()> {
        self.open(path, data, mode).map(drop)
    }

    /// overlay2 `create()` (moby `daemon/graphdriver/overlay2/overlay.go`):
    /// `<id>/`, `diff/`, `link`, `l/<link>`, and for a child `work/` and
    /// `lower`. Returns the `diff/` path.
    pub(super) fn driver_dir(
        &self,
        id: &str,
        link: &str,
        lower: Option<&str>,
    ) -> io::Result<PathBuf> {
        let p = &self.paths;
        self.dir(&p.dir(id), 0o710)?;
        let diff = p.diff(id);
        self.dir(&diff, 0o755)?;
        std::os::unix::fs::symlink(Paths::link_target(id), p.link(link))?;
        self.file(&p.link_file(id), link.as_bytes(), 0o644)?;
        if let Some(lower) = lower {
            self.dir(&p.work_dir(id), 0o700)?;
            self.file(&p.lower_file(id), lower.as_bytes(), 0o644)?;
        }
        Ok(diff)
    }

    /// The driver dir `id` has a child: overlay2 writes `committed` (empty, 0600).
    pub(super) fn commit(&self, id: &str) -> io::Result<()> {
        self.file(&self.paths.committed_file(id), b"", 0o600)
    }

    /// Bytes of every regular file written so far.
    pub(super) fn bytes_written(&self) -> u64 {
        self.bytes.load(Ordering::Relaxed)
    }
}

/// The process umask, read without changing it (Linux ≥ 4.7 shows it in
/// /proc). When unknown, assume every bit is masked, so every mode is set explicitly.
fn current_umask() -> u32 {
    fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find_map(|l| l.strip_prefix("Umask:"))
                .and_then(|v| u32::from_str_radix(v.trim(), 8).ok())
        })
        .unwrap_or(0o777)
}

pub(super) fn set_mtime(file: &File, secs: i64) -> io::Result<()> {
    let t = UNIX_EPOCH + Duration::from_secs(secs.max(0) as u64);
    file.set_times(FileTimes::new().set_accessed(t).set_modified(t))
}
