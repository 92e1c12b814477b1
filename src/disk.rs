//! Walking real bytes on disk: Docker's own `directory.Size` (apparent bytes),
//! and the parallel allocated-bytes walk behind `df --disk`.

use std::collections::HashSet;
use std::ffi::OsStr;
use std::fs::{self, Metadata};
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};

/// `directory.Size` (daemon/internal/directory): the sum of `st_size` of every
/// non-directory entry with size > 0, each inode once, symlinks not followed.
/// This is what Docker reports as a container's `SizeRw`. A missing directory is 0.
pub fn docker_size(dir: &Path) -> u64 {
    let mut seen = HashSet::new();
    let mut total = 0u64;
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        let Ok(rd) = fs::read_dir(&d) else { continue };
        for e in rd.flatten() {
            let Ok(m) = e.metadata() else { continue };
            if m.is_dir() {
                stack.push(e.path());
                continue;
            }
            if m.len() == 0 {
                continue;
            }
            // Only a file with several names can be met twice.
            if m.nlink() > 1 && !seen.insert((m.dev(), m.ino())) {
                continue;
            }
            total += m.len();
        }
    }
    total
}

/// Allocated bytes and distinct inodes of a tree, as containerd measures a
/// snapshot (continuity `fs/du_unix.go` `diskUsage`, which `ctr snapshots
/// usage` prints): `st_blocks * 512` once per `(st_dev, st_ino)` over `dir`
/// itself and everything below it, symlinks not followed, mounts not
/// avoided. Any error aborts the walk, as it does there.
pub fn disk_usage(dir: &Path) -> std::io::Result<(u64, u64)> {
    let mut seen = HashSet::new();
    let mut size = 0u64;
    let mut stack = vec![dir.to_path_buf()];
    while let Some(p) = stack.pop() {
        let m = fs::symlink_metadata(&p)?;
        if seen.insert((m.dev(), m.ino())) {
            size += m.blocks() * 512;
        }
        if m.is_dir() {
            for e in fs::read_dir(&p)? {
                stack.push(e?.path());
            }
        }
    }
    Ok((size, seen.len() as u64))
}

/// [`disk_usage`]'s bytes, 0 when the tree cannot be walked.
pub fn allocated_bytes(dir: &Path) -> u64 {
    disk_usage(dir).map_or(0, |u| u.0)
}

/// Size and free space of the filesystem holding a path (`statvfs`).
#[derive(Debug, Clone, Copy, serde::Serialize)]
pub struct FsStats {
    pub total: u64,
    /// Free to an unprivileged user (`f_bavail`), as `df` shows it.
    pub available: u64,
}

pub fn fs_stats(path: &Path) -> std::io::Result<FsStats> {
    let st = rustix::fs::statvfs(path)?;
    Ok(FsStats {
        total: st.f_blocks * st.f_frsize,
        available: st.f_bavail * st.f_frsize,
    })
}

/// Live counters a caller may display while a walk runs.
#[derive(Default)]
pub struct Progress {
    pub entries: AtomicU64,
    pub bytes: AtomicU64,
}

/// Decides the category of each entry from its parent's category and its name;
/// categories are small integers indexing `Totals::by_category`.
pub trait Classifier: Sync {
    fn root_category(&self) -> usize;
    fn child_category(&self, parent: usize, depth: usize, name: &OsStr, is_dir: bool) -> usize;
    fn categories(&self) -> usize;
}

#[derive(Debug, Clone, Default)]
pub struct Totals {
    /// Allocated bytes (`st_blocks * 512`) per category.
    pub by_category: Vec<u64>,
    pub entries: u64,
    pub total_bytes: u64,
    /// Directories that could not be read, and entries on other filesystems skipped.
    pub errors: Vec<(PathBuf, String)>,
    pub other_fs: Vec<PathBuf>,
}

/// Most categories a classifier may use.
pub const MAX_CATEGORIES: usize = 24;

struct Acc {
    alloc: [u64; MAX_CATEGORIES],
    entries: u64,
    /// Files with several links: resolved once all threads are merged, since a
    /// per-thread set would count an inode once per thread.
    multi: Vec<(u64, u64, u64, usize)>,
    errors: Vec<(PathBuf, String)>,
    other_fs: Vec<PathBuf>,
}

impl Acc {
    fn new() -> Self {
        Acc {
            alloc: [0; MAX_CATEGORIES],
            entries: 0,
            multi: Vec::new(),
            errors: Vec::new(),
            other_fs: Vec::new(),
        }
    }
    fn add(&mut self, m: &Metadata, cat: usize) {
        self.entries += 1;
        let bytes = m.blocks() * 512;
        if !m.is_dir() && m.nlink() > 1 {
            self.multi.push((m.dev(), m.ino(), bytes, cat));
        } else {
            self.alloc[cat] += bytes;
        }
    }
    fn merge(&mut self, o: Acc) {
        for (a, b) in self.alloc.iter_mut().zip(o.alloc) {
            *a += b;
        }
        self.entries += o.entries;
        self.multi.extend(o.multi);
        self.errors.extend(o.errors);
        self.other_fs.extend(o.other_fs);
    }
}

struct Walk<'a, C> {
    classifier: &'a C,
    /// One accumulator per pool thread: uncontended, merged at the end.
    slots: Vec<Mutex<Acc>>,
    progress: &'a Progress,
    dev: u64,
}

impl<C: Classifier> Walk<'_, C> {
    fn slot(&self) -> std::sync::MutexGuard<'_, Acc> {
        let i = rayon::current_thread_index().unwrap_or(0) % self.slots.len();
        self.slots[i].lock().unwrap_or_else(|p| p.into_inner())
    }

    fn visit<'s>(&'s self, s: &rayon::Scope<'s>, dir: PathBuf, cat: usize, depth: usize) {
        let rd = match fs::read_dir(&dir) {
            Ok(rd) => rd,
            Err(e) => {
                self.slot().errors.push((dir, e.to_string()));
                return;
            }
        };
        let (mut entries, mut bytes) = (0u64, 0u64);
        for e in rd {
            let e = match e {
                Ok(e) => e,
                Err(err) => {
                    self.slot().errors.push((dir.clone(), err.to_string()));
                    break;
                }
            };
            let m = match e.metadata() {
                Ok(m) => m,
                Err(err) => {
                    self.slot().errors.push((e.path(), err.to_string()));
                    continue;
                }
            };
            if m.dev() != self.dev {
                self.slot().other_fs.push(e.path());
                continue;
            }
            let child = self
                .classifier
                .child_category(cat, depth + 1, &e.file_name(), m.is_dir());
            self.slot().add(&m, child);
            entries += 1;
            bytes += m.blocks() * 512;
            if m.is_dir() {
                let p = e.path();
                s.spawn(move |s| self.visit(s, p, child, depth + 1));
            }
        }
        self.progress.entries.fetch_add(entries, Ordering::Relaxed);
        self.progress.bytes.fetch_add(bytes, Ordering::Relaxed);
    }
}

/// Walks `root` in parallel on one filesystem, like `du -x -s -B1`: every
/// entry's allocated blocks, each hard-linked inode once (charged to the
/// lowest category that holds a link to it), the root itself included.
pub fn walk_allocated<C: Classifier>(
    root: &Path,
    classifier: &C,
    progress: &Progress,
) -> std::io::Result<Totals> {
    let root_meta = fs::symlink_metadata(root)?;
    let n = classifier.categories();
    assert!(n <= MAX_CATEGORIES, "at most {MAX_CATEGORIES} categories");
    // Warm caches gain nothing past the core count; cold ones want requests in
    // flight while the disk seeks. Twice the cores is the measured compromise.
    let threads = 2 * std::thread::available_parallelism().map_or(2, |n| n.get());
    let pool = rayon::ThreadPoolBuilder::new()
        .num_threads(threads)
        .build()
        .map_err(std::io::Error::other)?;
    let walk = Walk {
        classifier,
        slots: (0..threads).map(|_| Mutex::new(Acc::new())).collect(),
        progress,
        dev: root_meta.dev(),
    };
    let root_cat = classifier.root_category();
    walk.slots[0]
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .add(&root_meta, root_cat);
    pool.scope(|s| walk.visit(s, root.to_path_buf(), root_cat, 0));

    let mut acc = Acc::new();
    for slot in walk.slots {
        acc.merge(slot.into_inner().unwrap_or_else(|p| p.into_inner()));
    }
    acc.multi.sort_unstable();
    let mut last: Option<(u64, u64)> = None;
    for (d, ino, bytes, cat) in std::mem::take(&mut acc.multi) {
        if last != Some((d, ino)) {
            acc.alloc[cat] += bytes;
            last = Some((d, ino));
        }
    }
    acc.errors.sort();
    acc.other_fs.sort();
    Ok(Totals {
        total_bytes: acc.alloc.iter().sum(),
        by_category: acc.alloc[..n].to_vec(),
        entries: acc.entries,
        errors: acc.errors,
        other_fs: acc.other_fs,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    struct ByTopName;
    impl Classifier for ByTopName {
        fn root_category(&self) -> usize {
            0
        }
        fn child_category(&self, parent: usize, depth: usize, name: &OsStr, _: bool) -> usize {
            if depth == 1 && name == "b" { 1 } else { parent }
        }
        fn categories(&self) -> usize {
            2
        }
    }

    #[test]
    fn docker_size_counts_apparent_bytes_once_per_inode() {
        let t = tempfile::tempdir().unwrap();
        let d = t.path();
        fs::create_dir_all(d.join("x/y")).unwrap();
        fs::write(d.join("x/a"), vec![1u8; 1000]).unwrap();
        fs::write(d.join("x/y/b"), vec![1u8; 24]).unwrap();
        fs::write(d.join("empty"), b"").unwrap();
        fs::hard_link(d.join("x/a"), d.join("x/y/a2")).unwrap();
        std::os::unix::fs::symlink("x/a", d.join("sl")).unwrap();
        assert_eq!(docker_size(d), 1000 + 24 + 3);
        assert_eq!(docker_size(&d.join("missing")), 0);
    }

    #[test]
    fn allocated_walk_matches_du_and_dedupes_links() {
        let t = tempfile::tempdir().unwrap();
        let d = t.path();
        fs::create_dir_all(d.join("a/deep")).unwrap();
        fs::create_dir_all(d.join("b")).unwrap();
        fs::write(d.join("a/deep/f"), vec![7u8; 100_000]).unwrap();
        fs::write(d.join("b/g"), vec![7u8; 5000]).unwrap();
        fs::hard_link(d.join("a/deep/f"), d.join("b/f2")).unwrap();
        let p = Progress::default();
        let tot = walk_allocated(d, &ByTopName, &p).unwrap();
        let du = std::process::Command::new("du")
            .args(["-s", "-B1"])
            .arg(d)
            .output()
            .unwrap();
        let du: u64 = String::from_utf8_lossy(&du.stdout)
            .split_whitespace()
            .next()
            .unwrap()
            .parse()
            .unwrap();
        assert_eq!(tot.total_bytes, du);
        assert_eq!(tot.by_category.iter().sum::<u64>(), du);
        // the shared inode is charged once, to the lower category (0 = a/)
        let f_blocks = fs::metadata(d.join("a/deep/f")).unwrap().blocks() * 512;
        assert!(tot.by_category[0] >= f_blocks);
        assert!(tot.by_category[1] < f_blocks);
        assert_eq!(tot.entries, 7);
        assert!(tot.errors.is_empty());
    }
}
