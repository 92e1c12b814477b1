//! Opening the files of one layer's `diff/` by tar name, for `verify
//! --deep`, `save` and `export` (§9.6): every path is resolved below the
//! root one component at a time with `openat(O_NOFOLLOW)`, so no symlink is
//! followed and no `..` leaves the root; the last component is `fstatat`-ed
//! first and only opened when it is a regular file (a device node is never
//! opened). What is wrong is classified as damage or as unverifiable. The
//! system calls go through rustix.

use crate::verify::tarsplit::display_name;
use rustix::fs::{AtFlags, FileType, Mode, OFlags, Stat};
use rustix::io::Errno;
use std::ffi::CStr;
use std::io::{self, ErrorKind};
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::path::Path;

/// What is wrong with one file entry.
pub(crate) enum Problem {
    Damaged(String),
    Unverifiable(String),
}

/// Opens the files of one layer's `diff/` by tar name, the way deep
/// verification does (§9.6): resolved below the root one component at a
/// time with `openat(O_NOFOLLOW)`, the last one `fstatat`-ed first and only
/// opened when it is a regular file; what is wrong is classified as damage
/// or as unverifiable. Also used by `dockgc export` to read file bodies.
pub(crate) struct LayerFiles<'a> {
    layer_dir: &'a Path,
    diff_dir: &'a Path,
    /// `diff/`, opened at the first file with a body.
    root: Option<Result<OwnedFd, io::Error>>,
    /// Open directories below the root: (component, fd), outermost first.
    dirs: Vec<(Vec<u8>, OwnedFd)>,
    buildkit: Option<bool>,
}

impl<'a> LayerFiles<'a> {
    /// `layer_dir` is `layerdb/sha256/<chain hex>` (its `cache-id` tells a
    /// BuildKit layer), `diff_dir` the layer's `<home>/<cache-id>/diff`.
    pub(crate) fn new(layer_dir: &'a Path, diff_dir: &'a Path) -> Self {
        LayerFiles {
            layer_dir,
            diff_dir,
            root: None,
            dirs: Vec::new(),
            buildkit: None,
        }
    }

    /// Opens the body of the tar entry `name` recorded with `size` bytes:
    /// a regular file of exactly that length below `diff/`.
    pub(crate) fn open_body(&mut self, name: &[u8], size: u64) -> Result<OwnedFd, Problem> {
        let Some(comps) = clean_beneath(name) else {
            return Err(Problem::Unverifiable(
                "name leaves the layer root through `..`".into(),
            ));
        };
        let (fd, disk_size) = self.open_file(&comps)?;
        if disk_size != size {
            if let Some(p) = metacopy(fd.as_fd()) {
                return Err(p);
            }
            return Err(Problem::Damaged(if disk_size < size {
                format!("truncated: {disk_size} bytes on disk, {size} recorded")
            } else {
                format!("longer than recorded: {disk_size} bytes on disk, {size} recorded")
            }));
        }
        Ok(fd)
    }

    fn is_buildkit(&mut self) -> bool {
        *self.buildkit.get_or_insert_with(|| {
            let id = std::fs::read_to_string(self.layer_dir.join("cache-id"))
                .ok()
                .map(|s| s.trim().to_string())
                .or_else(|| {
                    self.diff_dir
                        .parent()
                        .and_then(Path::file_name)
                        .map(|n| n.to_string_lossy().into_owned())
                })
                .unwrap_or_default();
            !(id.len() == 64 && id.bytes().all(|c| matches!(c, b'0'..=b'9' | b'a'..=b'f')))
        })
    }

    fn root_fd(&mut self) -> Result<(), Problem> {
        let dir = self.diff_dir;
        let root = self.root.get_or_insert_with(|| {
            rustix::fs::open(
                dir,
                OFlags::RDONLY | OFlags::DIRECTORY | OFlags::CLOEXEC,
                Mode::empty(),
            )
            .map_err(io::Error::from)
        });
        match root {
            Ok(_) => Ok(()),
            Err(e) if e.kind() == ErrorKind::PermissionDenied => Err(Problem::Unverifiable(
                format!("cannot read {}: {e}", dir.display()),
            )),
            Err(e) => Err(Problem::Damaged(format!(
                "missing: cannot open the layer's {}: {e}",
                dir.display()
            ))),
        }
    }

    /// Opens `comps` (cleaned, relative) below the root without following
    /// symlinks; returns the open file and its size.
    fn open_file(&mut self, comps: &[&[u8]]) -> Result<(OwnedFd, u64), Problem> {
        let Some((last, parents)) = comps.split_last() else {
            return Err(Problem::Damaged(
                "names the layer root, a directory, not a regular file".into(),
            ));
        };
        self.root_fd()?;
        // Reuse the open directories this path shares with the previous one.
        let keep = self
            .dirs
            .iter()
            .zip(parents.iter())
            .take_while(|((have, _), want)| have.as_slice() == **want)
            .count();
        self.dirs.truncate(keep);
        for (i, comp) in parents.iter().enumerate().skip(keep) {
            let dir = OFlags::RDONLY | OFlags::DIRECTORY | OFlags::NOFOLLOW;
            match open_at(self.top_fd(), comp, dir) {
                Ok(fd) => self.dirs.push((comp.to_vec(), fd)),
                Err(e) => return Err(self.diagnose(comps, i, e)),
            }
        }
        let st = match stat_at(self.top_fd(), last) {
            Ok(st) => st,
            Err(e) => return Err(self.diagnose(comps, parents.len(), e)),
        };
        let kind = FileType::from_raw_mode(st.st_mode);
        if kind != FileType::RegularFile {
            return Err(Problem::Damaged(format!(
                "is a {}, not a regular file",
                kind_name(kind)
            )));
        }
        let file = OFlags::RDONLY | OFlags::NOFOLLOW | OFlags::NONBLOCK | OFlags::NOCTTY;
        match open_at(self.top_fd(), last, file) {
            Ok(fd) => Ok((fd, st.st_size as u64)),
            Err(e) => Err(self.diagnose(comps, parents.len(), e)),
        }
    }

    /// The innermost open directory; `None` before the root is open.
    fn top_fd(&self) -> Option<BorrowedFd<'_>> {
        match self.dirs.last() {
            Some((_, fd)) => Some(fd.as_fd()),
            None => match &self.root {
                Some(Ok(fd)) => Some(fd.as_fd()),
                _ => None,
            },
        }
    }

    /// Why component `i` of `comps` could not be opened (the directories
    /// before it are open on `self.dirs`).
    fn diagnose(&mut self, comps: &[&[u8]], i: usize, e: io::Error) -> Problem {
        let here = display_name(&comps[..=i].join(&b'/'));
        let is_last = i + 1 == comps.len();
        let code = e.raw_os_error();
        let is = |errno: Errno| code == Some(errno.raw_os_error());
        if is(Errno::ACCESS) || is(Errno::PERM) {
            return Problem::Unverifiable(format!("cannot read {here}: {e}"));
        }
        if is(Errno::NOENT) {
            return self.missing(comps, if is_last { None } else { Some(here) });
        }
        // Not a directory, a symlink (ELOOP), or something odd: look at it.
        let kind = stat_at(self.top_fd(), comps[i]).map(|st| FileType::from_raw_mode(st.st_mode));
        match kind {
            Ok(FileType::Symlink) => {
                if is_last {
                    Problem::Damaged("is a symlink, not a regular file".into())
                } else {
                    Problem::Unverifiable(format!(
                        "path component {here} is a symlink; Docker would follow \
                         it (possibly out of the layer), it is not followed offline"
                    ))
                }
            }
            Ok(k) if !is_last && k != FileType::Directory => Problem::Damaged(format!(
                "missing: {here} is a {}, not a directory",
                kind_name(k)
            )),
            Ok(k) if is_last && k != FileType::RegularFile => {
                Problem::Damaged(format!("is a {}, not a regular file", kind_name(k)))
            }
            Err(e2) if e2.raw_os_error() == Some(Errno::NOENT.raw_os_error()) => {
                self.missing(comps, (!is_last).then_some(here))
            }
            _ => Problem::Damaged(format!("cannot open {here}: {e}")),
        }
    }

    /// A missing file: damage, unless the layer's `diff/` is not expected to
    /// hold it.
    fn missing(&mut self, comps: &[&[u8]], missing_dir: Option<String>) -> Problem {
        if comps.iter().any(|c| c.starts_with(b".wh..wh.plnk")) {
            return Problem::Unverifiable(
                "missing; entries under .wh..wh.plnk/ are not extracted on naive-diff hosts".into(),
            );
        }
        if self.is_buildkit() {
            return Problem::Unverifiable(
                "missing from a BuildKit layer: its diff/ is the build's upper \
                 directory, where the file may live only in a lower layer \
                 (overlay redirect_dir)"
                    .into(),
            );
        }
        let mut path = Vec::new();
        for (i, (name, fd)) in self.dirs.iter().enumerate() {
            if i > 0 {
                path.push(b'/');
            }
            path.extend_from_slice(name);
            if has_xattr(
                fd.as_fd(),
                &[c"trusted.overlay.redirect", c"user.overlay.redirect"],
            ) {
                return Problem::Unverifiable(format!(
                    "missing; directory {} has an overlay redirect xattr, the \
                     file lives in a lower layer",
                    display_name(&path)
                ));
            }
        }
        Problem::Damaged(match missing_dir {
            Some(d) => format!("missing (no directory {d})"),
            None => "missing".into(),
        })
    }
}

/// A length or CRC mismatch explained by a metadata-only copy-up.
pub(crate) fn metacopy(fd: BorrowedFd<'_>) -> Option<Problem> {
    has_xattr(fd, &[c"trusted.overlay.metacopy", c"user.overlay.metacopy"]).then(|| {
        Problem::Unverifiable(
            "overlay metacopy file (metadata-only copy-up): its data is in a lower layer".into(),
        )
    })
}

fn has_xattr(fd: BorrowedFd<'_>, names: &[&CStr]) -> bool {
    names
        .iter()
        .any(|n| rustix::fs::fgetxattr_query(fd, *n).is_ok())
}

fn kind_name(kind: FileType) -> &'static str {
    match kind {
        FileType::Directory => "directory",
        FileType::Symlink => "symlink",
        FileType::CharacterDevice => "character device (an overlay whiteout if 0:0)",
        FileType::BlockDevice => "block device",
        FileType::Fifo => "FIFO",
        FileType::Socket => "socket",
        FileType::RegularFile => "regular file",
        _ => "file of unknown type",
    }
}

/// `openat(at, comp, flags | O_CLOEXEC)`; `at` is `None` before the root is open.
fn open_at(at: Option<BorrowedFd<'_>>, comp: &[u8], flags: OFlags) -> io::Result<OwnedFd> {
    let at = at.ok_or_else(not_open)?;
    Ok(rustix::fs::openat(
        at,
        c_name(comp)?,
        flags | OFlags::CLOEXEC,
        Mode::empty(),
    )?)
}

/// `fstatat(at, comp, AT_SYMLINK_NOFOLLOW)`.
fn stat_at(at: Option<BorrowedFd<'_>>, comp: &[u8]) -> io::Result<Stat> {
    let at = at.ok_or_else(not_open)?;
    Ok(rustix::fs::statat(
        at,
        c_name(comp)?,
        AtFlags::SYMLINK_NOFOLLOW,
    )?)
}

fn not_open() -> io::Error {
    io::Error::other("the layer's diff/ is not open")
}

/// A tar name component as the system call's argument: a name with a NUL
/// byte cannot exist on disk, and says so rather than `EINVAL`.
fn c_name(comp: &[u8]) -> io::Result<&[u8]> {
    if comp.contains(&0) {
        return Err(io::Error::new(
            ErrorKind::InvalidInput,
            "name contains a NUL byte",
        ));
    }
    Ok(comp)
}

/// The components of `name` below the root (`filepath.Join(root, name)`
/// lexically), or `None` when `..` climbs above it.
pub(crate) fn clean_beneath(name: &[u8]) -> Option<Vec<&[u8]>> {
    let mut out: Vec<&[u8]> = Vec::with_capacity(8);
    for comp in name.split(|&c| c == b'/') {
        match comp {
            b"" | b"." => {}
            b".." => {
                out.pop()?;
            }
            _ => out.push(comp),
        }
    }
    Some(out)
}
