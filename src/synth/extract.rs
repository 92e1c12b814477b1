//! A layer's entries written into its `diff/` exactly as Docker's untar
//! leaves them, while the same entries go into the tar stream and its
//! tar-split (moby `pkg/archive` `createTarFile` for the files; Go's
//! `archive/tar` via [`crate::tarfmt`] for the headers).

use super::fs::{Ctx, set_mtime};
use super::tarsplit::TarSplit;
use crate::ids::DiffId;
use crate::tarfmt::{Header, flag};
use std::fs::{self, File};
use std::io;
use std::path::PathBuf;

pub(super) struct Extract<'a> {
    ctx: &'a Ctx,
    diff: PathBuf,
    ts: TarSplit,
    /// `directory.Size` of what is extracted so far.
    size: u64,
    mtime: i64,
    dirs: Vec<PathBuf>,
}

impl<'a> Extract<'a> {
    pub(super) fn new(ctx: &'a Ctx, diff: PathBuf, mtime: i64, legacy: bool) -> Self {
        Extract {
            ctx,
            diff,
            ts: TarSplit::new(legacy),
            size: 0,
            mtime,
            dirs: Vec::new(),
        }
    }

    /// A header as Docker's layer tars have it: owned by root, with the
    /// owner names and (zero) device numbers Go writes, in ustar form.
    fn header(
        &self,
        name: &str,
        flag: u8,
        mode: u32,
        size: u64,
        link: &str,
    ) -> io::Result<[u8; 512]> {
        let h = Header::new(name.as_bytes(), flag)
            .mode(mode)
            .size(size)
            .mtime(self.mtime.max(0))
            .link(link.as_bytes())
            .owner_names(b"root", b"root");
        h.fits()?;
        Ok(h.encode())
    }

    pub(super) fn dir(&mut self, name: &str) -> io::Result<()> {
        let h = self.header(name, flag::DIR, 0o40755, 0, "")?;
        self.ts.entry(&h, name, &[]);
        let path = self.diff.join(name.trim_end_matches('/'));
        self.ctx.dir(&path, 0o755)?;
        self.dirs.push(path);
        Ok(())
    }

    pub(super) fn file(&mut self, name: &str, perm: u32, body: &[u8]) -> io::Result<()> {
        let size = body.len() as u64;
        let h = self.header(name, flag::REG, 0o100000 | perm, size, "")?;
        self.ts.entry(&h, name, body);
        let f = self.ctx.open(&self.diff.join(name), body, perm)?;
        set_mtime(&f, self.mtime)?;
        self.size += size;
        Ok(())
    }

    pub(super) fn symlink(&mut self, name: &str, target: &str) -> io::Result<()> {
        let h = self.header(name, flag::SYMLINK, 0o120777, 0, target)?;
        self.ts.entry(&h, name, &[]);
        std::os::unix::fs::symlink(target, self.diff.join(name))?;
        self.size += target.len() as u64;
        Ok(())
    }

    /// A hard link to an earlier entry: same inode, so it adds nothing to the size.
    pub(super) fn hardlink(&mut self, name: &str, target: &str) -> io::Result<()> {
        let h = self.header(name, flag::LINK, 0o100644, 0, target)?;
        self.ts.entry(&h, name, &[]);
        fs::hard_link(self.diff.join(target), self.diff.join(name))
    }

    /// Directory mtimes last (creating entries changes them), like Docker's
    /// untar. Returns the DiffID, `tar-split.json.gz` and the size.
    pub(super) fn finish(self) -> io::Result<(DiffId, Vec<u8>, u64)> {
        for d in self.dirs.iter().rev() {
            set_mtime(&File::open(d)?, self.mtime)?;
        }
        let (diff, gz) = self.ts.finish()?;
        Ok((diff, gz, self.size))
    }
}
