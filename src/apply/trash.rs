//! `--trash`: instead of deleting, prune moves everything into
//! `<root>/dockgc-trash/<id>/` on the same filesystem, journalling each move
//! before it happens. `restore` moves it all back in reverse order and resets
//! the times of every directory it touched, so the store is byte-identical.

use crate::plan::Plan;
use serde::{Deserialize, Serialize};
use std::fs::{self, File, OpenOptions};
use std::io::{self, BufRead, Write};
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

/// Not a graph-driver name, so the daemon's prior-driver scan ignores it.
pub const TRASH_DIR: &str = "dockgc-trash";

#[derive(Debug, Clone, Copy, Serialize, Deserialize, PartialEq, Eq)]
pub struct Times {
    pub atime: (i64, i64),
    pub mtime: (i64, i64),
}

impl Times {
    fn of(m: &fs::Metadata) -> Times {
        Times {
            atime: (m.atime(), m.atime_nsec()),
            mtime: (m.mtime(), m.mtime_nsec()),
        }
    }

    /// Gives `p` (not following a symlink) these times back.
    fn set(&self, p: &Path) -> io::Result<()> {
        use rustix::fs::{AtFlags, CWD, Timespec, Timestamps, utimensat};
        let ts = |(tv_sec, tv_nsec): (i64, i64)| Timespec { tv_sec, tv_nsec };
        let times = Timestamps {
            last_access: ts(self.atime),
            last_modification: ts(self.mtime),
        };
        Ok(utimensat(CWD, p, &times, AtFlags::SYMLINK_NOFOLLOW)?)
    }
}

/// One journal line: `from` (relative to the root) was moved to `to`
/// (relative to the trash entry), or linked there when `copy`.
#[derive(Debug, Serialize, Deserialize)]
struct Move {
    from: PathBuf,
    to: PathBuf,
    #[serde(default)]
    copy: bool,
    times: Option<Times>,
}

#[derive(Debug, Serialize, Deserialize)]
pub struct Meta {
    pub id: String,
    pub created: String,
    pub created_unix: i64,
    /// Bytes the plan expected to reclaim.
    pub bytes: u64,
    /// Times of the store directories the run could touch, restored last.
    dirs: Vec<(PathBuf, Times)>,
}

pub struct TrashWriter {
    pub id: String,
    dir: PathBuf,
    journal: File,
    n: u64,
}

impl TrashWriter {
    pub fn create(root: &Path, plan: &Plan) -> io::Result<TrashWriter> {
        let dirs: Vec<(PathBuf, Times)> = crate::store::graphdriver::Paths::new(root, &plan.driver)
            .touched_dirs()
            .into_iter()
            .filter_map(|d| {
                fs::symlink_metadata(root.join(&d))
                    .ok()
                    .map(|m| (d, Times::of(&m)))
            })
            .collect();
        let now = jiff::Timestamp::now();
        let id = format!("{}-{}", now.strftime("%Y%m%dT%H%M%SZ"), std::process::id());
        let base = root.join(TRASH_DIR);
        fs::create_dir_all(&base)?;
        let dir = base.join(&id);
        fs::create_dir(&dir)?;
        fs::create_dir(dir.join("items"))?;
        let meta = Meta {
            id: id.clone(),
            created: now.to_string(),
            created_unix: now.as_second(),
            bytes: plan.reclaim.total,
            dirs,
        };
        fs::write(
            dir.join("meta.json"),
            serde_json::to_vec_pretty(&meta).map_err(io::Error::other)?,
        )?;
        let journal = OpenOptions::new()
            .create(true)
            .append(true)
            .open(dir.join("journal"))?;
        journal.sync_all()?;
        File::open(&base)?.sync_all()?;
        Ok(TrashWriter {
            id,
            dir,
            journal,
            n: 0,
        })
    }

    fn record(&mut self, m: &Move) -> io::Result<()> {
        let mut line = serde_json::to_vec(m).map_err(io::Error::other)?;
        line.push(b'\n');
        self.journal.write_all(&line)?;
        self.journal.sync_data()
    }

    /// Journals, then moves `p` into the trash.
    pub fn move_in(&mut self, root: &Path, p: &Path) -> io::Result<()> {
        self.n += 1;
        let to = PathBuf::from("items").join(self.n.to_string());
        let times = fs::symlink_metadata(p).ok().map(|m| Times::of(&m));
        self.record(&Move {
            from: p.strip_prefix(root).unwrap_or(p).to_path_buf(),
            to: to.clone(),
            copy: false,
            times,
        })?;
        fs::rename(p, self.dir.join(to))
    }

    /// Keeps the current version of a file that is about to be replaced.
    pub fn keep_copy(&mut self, root: &Path, p: &Path) -> io::Result<()> {
        self.n += 1;
        let to = PathBuf::from("items").join(self.n.to_string());
        self.record(&Move {
            from: p.strip_prefix(root).unwrap_or(p).to_path_buf(),
            to: to.clone(),
            copy: true,
            times: None,
        })?;
        fs::hard_link(p, self.dir.join(to))
    }

    pub fn close(self) -> io::Result<()> {
        self.journal.sync_all()
    }
}

#[derive(Debug, Serialize)]
pub struct Entry {
    pub id: String,
    pub created: String,
    pub items: u64,
    pub bytes: u64,
}

fn read_meta(dir: &Path) -> io::Result<Meta> {
    let p = dir.join("meta.json");
    serde_json::from_slice(&fs::read(&p)?)
        .map_err(|e| io::Error::other(format!("{}: {e}", p.display())))
}

fn read_journal(dir: &Path) -> io::Result<Vec<Move>> {
    let p = dir.join("journal");
    let f = File::open(&p)?;
    let mut out = Vec::new();
    for (i, line) in io::BufReader::new(f).lines().enumerate() {
        let line = line?;
        if line.is_empty() {
            continue;
        }
        match serde_json::from_str(&line) {
            Ok(m) => out.push(m),
            // A torn last line: the crash came before that move happened.
            Err(_) if i > 0 => break,
            Err(e) => {
                return Err(io::Error::other(format!(
                    "{}: line {}: {e}",
                    p.display(),
                    i + 1
                )));
            }
        }
    }
    Ok(out)
}

pub fn list(root: &Path) -> io::Result<Vec<Entry>> {
    let base = root.join(TRASH_DIR);
    let mut out = Vec::new();
    let rd = match fs::read_dir(&base) {
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(out),
        other => other?,
    };
    for e in rd.flatten() {
        let dir = e.path();
        let meta = read_meta(&dir)?;
        let items = read_journal(&dir).map_or(0, |j| j.len() as u64);
        out.push(Entry {
            id: meta.id,
            created: meta.created,
            items,
            bytes: meta.bytes,
        });
    }
    out.sort_by(|a, b| a.id.cmp(&b.id));
    Ok(out)
}

fn entry_dir(root: &Path, id: &str) -> io::Result<PathBuf> {
    if id.is_empty() || id.contains('/') || id.starts_with('.') {
        return Err(io::Error::other(format!("{id:?} is not a trash ID")));
    }
    let dir = root.join(TRASH_DIR).join(id);
    if !dir.join("meta.json").is_file() {
        return Err(io::Error::other(format!(
            "{}: no such trash entry",
            dir.display()
        )));
    }
    Ok(dir)
}

/// Moves everything of one run back, newest move first, then resets the
/// times of the directories involved and removes the entry.
pub fn restore(root: &Path, id: &str) -> io::Result<u64> {
    let dir = entry_dir(root, id)?;
    let meta = read_meta(&dir)?;
    let moves = read_journal(&dir)?;
    let mut n = 0;
    for m in moves.iter().rev() {
        let src = dir.join(&m.to);
        let dst = root.join(&m.from);
        if fs::symlink_metadata(&src).is_err() {
            continue; // journalled, but the crash came before the move
        }
        if !m.copy && fs::symlink_metadata(&dst).is_ok() {
            return Err(io::Error::other(format!(
                "{} exists again; not overwriting it (restore stopped, {n} items back)",
                dst.display()
            )));
        }
        fs::rename(&src, &dst)?;
        if let Some(t) = &m.times {
            t.set(&dst)?;
        }
        n += 1;
    }
    fs::remove_dir_all(&dir)?;
    let base = root.join(TRASH_DIR);
    if fs::read_dir(&base)
        .map(|mut r| r.next().is_none())
        .unwrap_or(false)
    {
        fs::remove_dir(&base)?;
    }
    // Deepest first, the root last: setting a child's times does not touch its parent's.
    for (d, t) in meta.dirs.iter().rev() {
        let p = root.join(d);
        if p.exists() {
            t.set(&p)?;
        }
    }
    Ok(n)
}

/// Deletes trash entries, all or those older than `older_than` seconds.
pub fn empty(root: &Path, older_than: Option<i64>, now: i64) -> io::Result<Vec<String>> {
    let mut gone = Vec::new();
    for e in list(root)? {
        let dir = entry_dir(root, &e.id)?;
        let meta = read_meta(&dir)?;
        if older_than.is_none_or(|age| now - meta.created_unix >= age) {
            fs::remove_dir_all(&dir)?;
            gone.push(e.id);
        }
    }
    let base = root.join(TRASH_DIR);
    if fs::read_dir(&base)
        .map(|mut r| r.next().is_none())
        .unwrap_or(false)
    {
        fs::remove_dir(&base)?;
    }
    Ok(gone)
}
