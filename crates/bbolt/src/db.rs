//! A whole bbolt file held in memory, validated at open.

use std::fs::File;
use std::io::{self, Read, Seek, SeekFrom};
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::time::Duration;

use crate::bucket::Bucket;
use crate::check::{self, CheckReport};
use crate::error::{Damage, Error};
use crate::meta::{self, Meta};
use crate::page::{self, Node};
use crate::walk::{Stats, Walker};

/// Bytes read for the meta pages before the page size is known: two 64 KiB
/// pages, the largest page size seen in practice.
const HEAD_PROBE: usize = 128 * 1024;

/// A validated, read-only bbolt file.
pub struct Db {
    file: PathBuf,
    data: Vec<u8>,
    meta: Meta,
    reached: Vec<u64>,
    stats: Stats,
}

/// How `Db::open_with` retries while a writer commits under it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Retry {
    /// Reads of the whole file before giving up with `Error::Unstable`.
    pub attempts: u32,
    /// Pause between attempts.
    pub pause: Duration,
}

impl Default for Retry {
    fn default() -> Self {
        Retry {
            attempts: 20,
            pause: Duration::from_millis(25),
        }
    }
}

struct Parsed {
    meta: Meta,
    reached: Vec<u64>,
    stats: Stats,
}

impl Db {
    /// Reads and validates the file at `path` without locking it, retrying
    /// while a writer commits (see [`Db::open_with`]).
    pub fn open(path: impl AsRef<Path>) -> Result<Db, Error> {
        Db::open_with(path, Retry::default())
    }

    /// Reads the file whole, re-reads its meta pages, validates the copy, and
    /// accepts it only if both meta pages were byte-identical before, in and
    /// after the whole read. A committing writer never rewrites pages
    /// reachable from the newest meta until its *second* commit after it, and
    /// each commit rewrites a meta page, so unchanged metas mean the copy is
    /// one consistent snapshot. Otherwise it retries; a file that fails
    /// validation twice while unchanged is reported as damaged.
    pub fn open_with(path: impl AsRef<Path>, retry: Retry) -> Result<Db, Error> {
        let path = path.as_ref();
        let io_err = |source| Error::Io {
            file: path.to_path_buf(),
            source,
        };
        let mut file = File::open(path).map_err(io_err)?;
        let attempts = retry.attempts.max(1);
        let mut damaged_before = false;
        for attempt in 1..=attempts {
            if attempt > 1 {
                std::thread::sleep(retry.pause);
            }
            let before = read_head(&file, HEAD_PROBE).map_err(io_err)?;
            let data = read_all(&mut file).map_err(io_err)?;
            // Re-read at once, before parsing: the copy is what must be one
            // snapshot, and a short window means fewer needless retries.
            let after = read_head(&file, HEAD_PROBE).map_err(io_err)?;
            let parsed = parse(&data, path);
            // Only the meta pages must match: an in-flight commit may write
            // free pages anywhere else.
            let head = match &parsed {
                Ok(p) => 2 * p.meta.page_size as usize,
                Err(_) => HEAD_PROBE,
            };
            let n = head.min(data.len());
            let stable = before.get(..n) == data.get(..n) && after.get(..n) == data.get(..n);
            match parsed {
                Ok(p) if stable => return Ok(Db::assemble(path.to_path_buf(), data, p)),
                Err(e) if stable => {
                    if damaged_before {
                        return Err(e);
                    }
                    damaged_before = true;
                }
                _ => damaged_before = false,
            }
        }
        Err(Error::Unstable {
            file: path.to_path_buf(),
            attempts,
        })
    }

    /// Validates a file image already in memory; `name` is used in errors.
    pub fn from_bytes(data: Vec<u8>, name: impl Into<PathBuf>) -> Result<Db, Error> {
        let name = name.into();
        let parsed = parse(&data, &name)?;
        Ok(Db::assemble(name, data, parsed))
    }

    fn assemble(file: PathBuf, data: Vec<u8>, p: Parsed) -> Db {
        Db {
            file,
            data,
            meta: p.meta,
            reached: p.reached,
            stats: p.stats,
        }
    }

    /// The path (or name) given at open.
    pub fn file(&self) -> &Path {
        &self.file
    }

    /// The meta page in use.
    pub fn meta(&self) -> Meta {
        self.meta
    }

    pub fn txid(&self) -> u64 {
        self.meta.txid
    }

    pub fn page_size(&self) -> u32 {
        self.meta.page_size
    }

    /// Counts from the validating walk.
    pub fn stats(&self) -> Stats {
        self.stats
    }

    /// The file's bytes as read.
    pub fn as_bytes(&self) -> &[u8] {
        &self.data
    }

    /// The top-level bucket (its entries are the file's buckets).
    pub fn root(&self) -> Bucket<'_> {
        Bucket::root_of(self)
    }

    /// Shortcut for `root().bucket(name)`.
    pub fn bucket(&self, name: impl AsRef<[u8]>) -> Option<Bucket<'_>> {
        self.root().bucket(name)
    }

    /// Shortcut for `root().bucket_path(path)`.
    pub fn bucket_path<I>(&self, path: I) -> Option<Bucket<'_>>
    where
        I: IntoIterator,
        I::Item: AsRef<[u8]>,
    {
        self.root().bucket_path(path)
    }

    /// Integrity check beyond what open validates: the freelist is sound and
    /// lists no reachable page. Unreachable pages that are not free (leaks,
    /// harmless to readers) are reported, not refused.
    pub fn check(&self) -> Result<CheckReport, Error> {
        check::run(&self.data, &self.meta, &self.reached, self.stats.pages).map_err(|f| {
            Error::Corrupt {
                file: self.file.clone(),
                page: f.page,
                damage: f.damage,
            }
        })
    }

    /// A page reached by the validating walk.
    pub(crate) fn node(&self, id: u64) -> Option<Node<'_>> {
        let ps = self.meta.page_size as usize;
        let off = usize::try_from(id).ok()?.checked_mul(ps)?;
        let h = page::header(self.data.get(off..)?)?;
        let end = (h.overflow as usize + 1)
            .checked_mul(ps)?
            .checked_add(off)?;
        Node::parse(self.data.get(off..end)?, &h).ok()
    }
}

impl std::fmt::Debug for Db {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Db")
            .field("file", &self.file)
            .field("meta", &self.meta)
            .field("stats", &self.stats)
            .finish()
    }
}

fn parse(data: &[u8], file: &Path) -> Result<Parsed, Error> {
    let meta = match meta::choose(meta::read_slots(data)) {
        Ok(m) => m,
        Err((r0, r1)) => {
            if r0.swapped || r1.swapped {
                return Err(Error::ByteSwapped {
                    file: file.to_path_buf(),
                });
            }
            return Err(Error::NoValidMeta {
                file: file.to_path_buf(),
                meta0: Box::new(r0.damage),
                meta1: Box::new(r1.damage),
            });
        }
    };
    let corrupt = |page, damage| Error::Corrupt {
        file: file.to_path_buf(),
        page,
        damage,
    };
    let need = meta.high_water_mark.checked_mul(u64::from(meta.page_size));
    if need.is_none_or(|n| n > data.len() as u64) {
        return Err(corrupt(
            u64::from(meta.slot),
            Damage::FileTooShort {
                high_water_mark: meta.high_water_mark,
                page_size: meta.page_size,
                len: data.len() as u64,
            },
        ));
    }
    let mut w = Walker::new(data, meta.page_size, meta.high_water_mark, meta.slot);
    w.bucket(meta.root).map_err(|f| corrupt(f.page, f.damage))?;
    Ok(Parsed {
        meta,
        reached: w.reached,
        stats: w.stats,
    })
}

fn read_head(file: &File, len: usize) -> io::Result<Vec<u8>> {
    let mut buf = vec![0; len];
    let mut n = 0;
    while n < len {
        match file.read_at(&mut buf[n..], n as u64) {
            Ok(0) => break,
            Ok(k) => n += k,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    buf.truncate(n);
    Ok(buf)
}

fn read_all(file: &mut File) -> io::Result<Vec<u8>> {
    let len = file.metadata()?.len();
    file.seek(SeekFrom::Start(0))?;
    let mut buf = Vec::with_capacity(usize::try_from(len).unwrap_or(0));
    file.read_to_end(&mut buf)?;
    Ok(buf)
}
