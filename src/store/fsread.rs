//! Small-file reads shared by the area readers. They return the error text a
//! person needs; callers turn it into an `Anomaly` naming the file.
//!
//! A store is hundreds of thousands of tiny files, so the cost is system
//! calls: each file is read relative to an open directory (`openat`: one
//! lookup instead of the whole path's), with no `fstat` for a size hint and
//! no read to find its end (a short read of a regular file is its end), into
//! a reused buffer.

use rustix::fs::{AtFlags, FileType, Mode, OFlags};
use rustix::io::Errno;
use std::cell::RefCell;
use std::collections::HashMap;
use std::ffi::OsString;
use std::io::{self, ErrorKind};
use std::mem::MaybeUninit;
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::os::unix::ffi::OsStringExt;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Condvar, Mutex};

/// An open directory and its path (for messages).
#[derive(Debug)]
pub struct Dir {
    fd: OwnedFd,
    path: PathBuf,
}

impl Dir {
    pub fn open(path: &Path) -> io::Result<Dir> {
        let fd = rustix::fs::open(
            path,
            OFlags::RDONLY | OFlags::DIRECTORY | OFlags::CLOEXEC,
            Mode::empty(),
        )?;
        Ok(Dir {
            fd,
            path: path.to_path_buf(),
        })
    }

    pub fn fd(&self) -> BorrowedFd<'_> {
        self.fd.as_fd()
    }

    /// Its entries, sorted (reads the directory: call once).
    pub fn list(&self) -> io::Result<Listing> {
        let mut names = Vec::new();
        each_entry(self.fd(), |name, kind| {
            let kind = match kind {
                FileType::Unknown => stat_kind(self.fd(), name),
                k => k,
            };
            names.push((name.to_vec(), kind == FileType::Directory));
            Ok(())
        })?;
        Ok(Listing::from_raw(names))
    }

    /// The files of its entry `name` (a subdirectory), read relative to it.
    pub fn entry<'a>(&'a self, name: &'a str) -> EntryFiles<'a> {
        EntryFiles {
            at: Some(self.fd()),
            base: &self.path,
            prefix: name,
        }
    }
}

/// Calls `f` with the name and `d_type` of every entry of the open
/// directory `fd` but `.` and `..` (getdents64 into a reused buffer).
pub fn each_entry(
    fd: BorrowedFd<'_>,
    mut f: impl FnMut(&[u8], FileType) -> io::Result<()>,
) -> io::Result<()> {
    thread_local! {
        static DENTS: RefCell<Vec<MaybeUninit<u8>>> =
            RefCell::new(vec![MaybeUninit::uninit(); 32 << 10]);
    }
    DENTS.with(|b| {
        // A nested listing (a callback that lists) gets a buffer of its own.
        let mut own;
        let mut guard = b.try_borrow_mut();
        let buf: &mut [MaybeUninit<u8>] = match guard.as_deref_mut() {
            Ok(b) => b,
            Err(_) => {
                own = vec![MaybeUninit::uninit(); 32 << 10];
                &mut own
            }
        };
        let mut dir = rustix::fs::RawDir::new(fd, buf);
        while let Some(e) = dir.next() {
            let e = e?;
            let name = e.file_name().to_bytes();
            if name == b"." || name == b".." {
                continue;
            }
            f(name, e.file_type())?;
        }
        Ok(())
    })
}

/// The type of `name` in `at`, not following a symlink (for file systems
/// whose listings give no `d_type`).
fn stat_kind(at: BorrowedFd<'_>, name: &[u8]) -> FileType {
    rustix::fs::statat(at, name, AtFlags::SYMLINK_NOFOLLOW)
        .map_or(FileType::Unknown, |st| FileType::from_raw_mode(st.st_mode))
}

/// Reads the regular file `rel` (relative to `at`) into `buf`, replacing
/// its contents: `Ok(false)` when there is no such file. A short read ends
/// it: a regular file returns less than asked only at its end.
pub fn read_at(at: BorrowedFd<'_>, rel: &[u8], buf: &mut Vec<u8>) -> io::Result<bool> {
    buf.clear();
    let fd = match rustix::fs::openat(
        at,
        rel,
        OFlags::RDONLY | OFlags::CLOEXEC | OFlags::NOCTTY,
        Mode::empty(),
    ) {
        Ok(fd) => fd,
        Err(Errno::NOENT) => return Ok(false),
        Err(e) => return Err(e.into()),
    };
    if buf.capacity() < 512 {
        buf.reserve(512);
    }
    loop {
        let want = buf.capacity() - buf.len();
        let got = match rustix::io::read(&fd, rustix::buffer::spare_capacity(buf)) {
            Ok(n) => n,
            Err(Errno::INTR) => continue,
            Err(e) => return Err(e.into()),
        };
        if got < want {
            return Ok(true);
        }
        buf.reserve(buf.capacity());
    }
}

/// The file's bytes, `Ok(None)` if it does not exist, `Err(text)` otherwise.
pub fn read_opt(path: &Path) -> Result<Option<Vec<u8>>, String> {
    let mut buf = Vec::new();
    match read_at(
        rustix::fs::CWD,
        path.as_os_str().as_encoded_bytes(),
        &mut buf,
    ) {
        Ok(true) => Ok(Some(buf)),
        Ok(false) => Ok(None),
        Err(e) => Err(e.to_string()),
    }
}

/// What a file that must be text but is not is called.
pub const NOT_UTF8: &str = "not UTF-8 text";

/// The file as text, `Ok(None)` if it does not exist, `Err(text)` otherwise.
pub fn read_text_opt(path: &Path) -> Result<Option<String>, String> {
    match read_opt(path)? {
        None => Ok(None),
        Some(b) => String::from_utf8(b)
            .map(Some)
            .map_err(|_| NOT_UTF8.to_string()),
    }
}

/// A directory's entries, sorted by name; non-UTF-8 names are returned
/// separately so they can be reported instead of silently dropped.
#[derive(Debug, Default)]
pub struct Listing {
    pub names: Vec<String>,
    /// Whether each entry of `names` is a real directory (not a symlink to one),
    /// from the directory listing itself, so no extra stat is needed.
    pub is_dir: Vec<bool>,
    pub odd_names: Vec<OsString>,
}

impl Listing {
    /// From raw names and whether each is a directory, in any order.
    pub fn from_raw(raw: Vec<(Vec<u8>, bool)>) -> Listing {
        let mut entries = Vec::with_capacity(raw.len());
        let mut odd_names = Vec::new();
        for (name, is_dir) in raw {
            match String::from_utf8(name) {
                Ok(s) => entries.push((s, is_dir)),
                Err(e) => odd_names.push(OsString::from_vec(e.into_bytes())),
            }
        }
        entries.sort_unstable();
        odd_names.sort();
        let (names, is_dir) = entries.into_iter().unzip();
        Listing {
            names,
            is_dir,
            odd_names,
        }
    }
}

/// Listings the metadata loader hands to a disk walk running at the same
/// time (`df --disk`), so that no directory is listed twice: the loader
/// claims its directories before the walk starts, and the walk, reaching a
/// claimed one, waits for the loader's listing instead of listing it again.
/// A claim the loader gives up (the directory is missing or unreadable, or
/// the load ended) sends the walk back to listing it itself.
#[derive(Debug, Default)]
pub struct SharedListings {
    slots: Mutex<HashMap<PathBuf, Slot>>,
    changed: Condvar,
}

#[derive(Debug)]
enum Slot {
    Claimed,
    Listed(Arc<Listing>),
}

impl SharedListings {
    /// Listings of `dirs` to come from the loader.
    pub fn claim(dirs: impl IntoIterator<Item = PathBuf>) -> SharedListings {
        SharedListings {
            slots: Mutex::new(dirs.into_iter().map(|d| (d, Slot::Claimed)).collect()),
            changed: Condvar::new(),
        }
    }

    fn slots(&self) -> std::sync::MutexGuard<'_, HashMap<PathBuf, Slot>> {
        self.slots.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn is_claimed(&self, path: &Path) -> bool {
        matches!(self.slots().get(path), Some(Slot::Claimed))
    }

    /// Hands over the listing of `path`, first claiming `below` (dirs in
    /// it the loader lists too: the walk cannot reach them before this).
    fn publish(&self, path: &Path, listing: Arc<Listing>, below: Vec<PathBuf>) {
        let mut slots = self.slots();
        for d in below {
            slots.entry(d).or_insert(Slot::Claimed);
        }
        if let Some(slot) = slots.get_mut(path) {
            *slot = Slot::Listed(listing);
        }
        drop(slots);
        self.changed.notify_all();
    }

    /// Gives up the claim of `path` if it is not listed yet: the walk
    /// lists it itself.
    pub fn give_up(&self, path: &Path) {
        let mut slots = self.slots();
        if matches!(slots.get(path), Some(Slot::Claimed)) {
            slots.remove(path);
        }
        drop(slots);
        self.changed.notify_all();
    }

    /// Gives up every claim not yet listed: the load is over.
    pub fn give_up_all(&self) {
        self.slots().retain(|_, s| matches!(s, Slot::Listed(_)));
        self.changed.notify_all();
    }

    /// For the walk: the loader's listing of `path`, waited for if it is
    /// still to come; `None` when the walk must list it itself.
    pub fn take(&self, path: &Path) -> Option<Arc<Listing>> {
        let mut slots = self.slots();
        loop {
            match slots.remove(path) {
                None => return None,
                Some(Slot::Listed(l)) => return Some(l),
                Some(Slot::Claimed) => {
                    slots.insert(path.to_path_buf(), Slot::Claimed);
                    slots = self.changed.wait(slots).unwrap_or_else(|p| p.into_inner());
                }
            }
        }
    }
}

/// Gives up the claims still open when dropped: a load that ends, even by
/// a panic, never leaves the walk waiting.
pub struct GiveUpOnDrop<'a>(pub &'a SharedListings);

impl Drop for GiveUpOnDrop<'_> {
    fn drop(&mut self) {
        self.0.give_up_all();
    }
}

/// Opens and lists `path`, handing the listing to a walk that waits for
/// it (see [`SharedListings`]).
pub fn open_listed(path: &Path, share: Option<&SharedListings>) -> io::Result<(Arc<Listing>, Dir)> {
    open_listed_claiming(path, share, |_| Vec::new())
}

/// [`open_listed`], claiming the subdirectories `below` names (of the
/// listing) that the loader lists next.
pub fn open_listed_claiming(
    path: &Path,
    share: Option<&SharedListings>,
    below: impl FnOnce(&Listing) -> Vec<PathBuf>,
) -> io::Result<(Arc<Listing>, Dir)> {
    let share = share.filter(|s| s.is_claimed(path));
    let listed = Dir::open(path).and_then(|d| Ok((Arc::new(d.list()?), d)));
    if let Some(s) = share {
        match &listed {
            Ok((l, _)) => s.publish(path, Arc::clone(l), below(l)),
            Err(_) => s.give_up(path),
        }
    }
    listed
}

/// [`open_listed`] where a missing directory is an empty listing.
pub fn list_dir_opt_shared(
    path: &Path,
    share: Option<&SharedListings>,
) -> io::Result<Arc<Listing>> {
    match open_listed(path, share) {
        Ok((l, _)) => Ok(l),
        Err(e) if e.kind() == ErrorKind::NotFound => Ok(Arc::default()),
        Err(e) => Err(e),
    }
}

pub fn list_dir(path: &Path) -> io::Result<Listing> {
    Dir::open(path)?.list()
}

/// Like `list_dir`, but a missing directory is an empty listing.
pub fn list_dir_opt(path: &Path) -> io::Result<Listing> {
    match list_dir(path) {
        Err(e) if e.kind() == ErrorKind::NotFound => Ok(Listing::default()),
        other => other,
    }
}

/// The files of one store entry (a layer's, a mount's, an image's metadata
/// directory), read by name relative to an open directory: the entry's
/// parent (`<entry>/<file>`), or the entry itself.
#[derive(Clone, Copy)]
pub struct EntryFiles<'a> {
    /// `None`: read by path.
    at: Option<BorrowedFd<'a>>,
    /// The path of `at` (or of the entry, by path), for messages.
    base: &'a Path,
    /// `<entry>` below `at`, or empty when `at` is the entry.
    prefix: &'a str,
}

impl<'a> EntryFiles<'a> {
    /// The entry at `path`, by path (no open directory to read it from).
    pub fn by_path(path: &'a Path) -> Self {
        EntryFiles {
            at: None,
            base: path,
            prefix: "",
        }
    }

    /// The entry's path (built when a message or a record needs it).
    pub fn path(&self) -> PathBuf {
        if self.prefix.is_empty() {
            self.base.to_path_buf()
        } else {
            self.base.join(self.prefix)
        }
    }

    /// The path of its file `name`, for messages.
    pub fn file(&self, name: &str) -> PathBuf {
        self.path().join(name)
    }

    /// Calls `f` with the directory to open relative to and the name of
    /// file `name` there: `<prefix>/<name>` below `at`, or its whole path.
    fn with_rel<T>(&self, name: &str, f: impl FnOnce(BorrowedFd<'_>, &[u8]) -> T) -> T {
        let Some(at) = self.at else {
            let p = self.base.join(name);
            return f(rustix::fs::CWD, p.as_os_str().as_encoded_bytes());
        };
        if self.prefix.is_empty() {
            return f(at, name.as_bytes());
        }
        let mut rel = [0u8; 256];
        let n = self.prefix.len() + 1 + name.len();
        if n > rel.len() {
            return f(at, format!("{}/{name}", self.prefix).as_bytes());
        }
        rel[..self.prefix.len()].copy_from_slice(self.prefix.as_bytes());
        rel[self.prefix.len()] = b'/';
        rel[self.prefix.len() + 1..n].copy_from_slice(name.as_bytes());
        f(at, &rel[..n])
    }

    /// Reads its file `name` into `buf`: `Ok(false)` if missing.
    pub fn read(&self, name: &str, buf: &mut Vec<u8>) -> Result<bool, String> {
        self.with_rel(name, |at, rel| read_at(at, rel, buf))
            .map_err(|e| e.to_string())
    }

    /// Its file `name` as bytes, `Ok(None)` if missing.
    pub fn read_opt(&self, name: &str) -> Result<Option<Vec<u8>>, String> {
        let mut buf = Vec::new();
        Ok(self.read(name, &mut buf)?.then_some(buf))
    }

    /// Its file `name` as UTF-8 text, `Ok(None)` if missing.
    pub fn read_text(&self, name: &str) -> Result<Option<String>, String> {
        match self.read_opt(name)? {
            None => Ok(None),
            // The read reserved at least 512 bytes; texts kept in the
            // snapshot (`lastUpdated`, links) are a few dozen, and 10,000s
            // of them would otherwise hold megabytes of spare capacity.
            Some(mut b) => {
                b.shrink_to_fit();
                String::from_utf8(b)
                    .map(Some)
                    .map_err(|_| NOT_UTF8.to_string())
            }
        }
    }

    /// Whether its entry `name` is a real directory (a symlink is not).
    pub fn is_dir(&self, name: &str) -> bool {
        self.with_rel(name, |at, rel| {
            rustix::fs::statat(at, rel, AtFlags::SYMLINK_NOFOLLOW)
                .is_ok_and(|st| FileType::from_raw_mode(st.st_mode) == FileType::Directory)
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::fs;

    #[test]
    fn reads_small_and_large_files_and_tells_missing_from_errors() {
        let t = tempfile::tempdir().unwrap();
        let d = t.path();
        fs::write(d.join("small"), b"abc").unwrap();
        let big: Vec<u8> = (0..100_000u32).map(|i| i as u8).collect();
        fs::write(d.join("big"), &big).unwrap();
        fs::write(d.join("empty"), b"").unwrap();
        fs::create_dir(d.join("sub")).unwrap();
        assert_eq!(read_opt(&d.join("small")).unwrap().unwrap(), b"abc");
        assert_eq!(read_opt(&d.join("big")).unwrap().unwrap(), big);
        assert_eq!(read_opt(&d.join("empty")).unwrap().unwrap(), b"");
        assert_eq!(read_opt(&d.join("missing")).unwrap(), None);
        // The same text as std::fs::read gives.
        let std_err = fs::read(d.join("sub")).unwrap_err().to_string();
        assert_eq!(read_opt(&d.join("sub")).unwrap_err(), std_err);
        let std_err = fs::read(d.join("small/x")).unwrap_err().to_string();
        assert_eq!(read_opt(&d.join("small/x")).unwrap_err(), std_err);
    }

    #[test]
    fn entry_files_read_relative_to_the_parent_or_by_path() {
        let t = tempfile::tempdir().unwrap();
        let d = t.path();
        fs::create_dir_all(d.join("e/diff")).unwrap();
        fs::write(d.join("e/size"), b"42").unwrap();
        fs::write(d.join("e/bad"), [0xffu8, 0xfe]).unwrap();
        let parent = Dir::open(d).unwrap();
        let path = d.join("e");
        let e = parent.entry("e");
        assert_eq!(e.path(), path);
        assert_eq!(e.read_text("size").unwrap().as_deref(), Some("42"));
        assert_eq!(e.read_text("parent").unwrap(), None);
        assert_eq!(e.read_text("bad").unwrap_err(), "not UTF-8 text");
        assert!(e.is_dir("diff") && !e.is_dir("size") && !e.is_dir("none"));
        assert_eq!(e.file("size"), d.join("e/size"));

        let b = EntryFiles::by_path(&path);
        assert_eq!(b.read_text("size").unwrap().as_deref(), Some("42"));
        assert!(b.is_dir("diff"));
    }

    #[test]
    fn shared_listings_hand_over_once_and_give_up_only_claims() {
        let t = tempfile::tempdir().unwrap();
        let d = t.path();
        fs::create_dir(d.join("listed")).unwrap();
        fs::write(d.join("listed/f"), b"").unwrap();
        let share = SharedListings::claim([d.join("listed"), d.join("claimed"), d.join("gone")]);
        let (l, _) = open_listed(&d.join("listed"), Some(&share)).unwrap();
        assert_eq!(l.names, ["f"]);
        // Giving up a listed directory keeps its listing for the walk.
        share.give_up(&d.join("listed"));
        assert_eq!(share.take(&d.join("listed")).unwrap().names, ["f"]);
        // Taken once: a second walker (none does) would list it itself.
        assert!(share.take(&d.join("listed")).is_none());
        // A directory the load cannot list is given up, not waited for.
        assert!(open_listed(&d.join("gone"), Some(&share)).is_err());
        assert!(share.take(&d.join("gone")).is_none());
        share.give_up(&d.join("claimed"));
        assert!(share.take(&d.join("claimed")).is_none());
        // Not claimed at all: nothing to wait for.
        assert!(share.take(&d.join("other")).is_none());
    }

    #[test]
    fn listings_are_sorted_with_odd_names_apart() {
        use std::os::unix::ffi::OsStrExt;
        let t = tempfile::tempdir().unwrap();
        let d = t.path();
        for n in ["b", "a", "c"] {
            fs::write(d.join(n), b"").unwrap();
        }
        fs::create_dir(d.join("dir")).unwrap();
        fs::write(d.join(std::ffi::OsStr::from_bytes(b"odd\xff")), b"").unwrap();
        let l = list_dir(d).unwrap();
        assert_eq!(l.names, ["a", "b", "c", "dir"]);
        assert_eq!(l.is_dir, [false, false, false, true]);
        assert_eq!(l.odd_names.len(), 1);
        assert!(list_dir_opt(&d.join("none")).unwrap().names.is_empty());
    }
}
