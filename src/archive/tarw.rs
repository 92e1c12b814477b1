//! Writing tar headers: the outer archive of `save` and the flattened
//! filesystem of `export`.
//!
//! A header is ustar when everything fits; a name or link target over 100
//! bytes gets a GNU `L`/`K` long-name entry (any bytes, unlike PAX `path`,
//! which readers expect to be UTF-8), a number that does not fit its octal
//! field is written base-256 (GNU), and extended attributes travel as PAX
//! `SCHILY.xattr.*` records. Go's `archive/tar` (so `docker load` and
//! `docker import`), GNU tar, bsdtar and the `tar` crate read all of these.

//!
//! The header blocks themselves are [`crate::tarfmt`]'s, the one encoder of
//! the crate; this module only decides which blocks a member needs.

use crate::tarfmt::{self, Format};
pub use crate::tarfmt::{BLOCK, END, padding};

/// Bytes a member with a body of `size` takes in an archive whose header
/// is one block (names of at most 100 bytes, no extended attributes).
pub fn member_len(size: u64) -> u64 {
    BLOCK + size + padding(size) as u64
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    File,
    HardLink,
    Symlink,
    Char,
    Block,
    Dir,
    Fifo,
}

impl Kind {
    fn flag(self) -> u8 {
        match self {
            Kind::File => b'0',
            Kind::HardLink => b'1',
            Kind::Symlink => b'2',
            Kind::Char => b'3',
            Kind::Block => b'4',
            Kind::Dir => b'5',
            Kind::Fifo => b'6',
        }
    }
}

/// One member's header fields.
#[derive(Clone, Debug)]
pub struct Header<'a> {
    /// The member name as it goes into the archive (a directory's with its
    /// trailing `/`).
    pub name: &'a [u8],
    pub kind: Kind,
    /// Body length (0 for everything but regular files).
    pub size: u64,
    /// Permission bits, setuid, setgid and sticky (`& 0o7777`).
    pub mode: u32,
    pub uid: u64,
    pub gid: u64,
    /// Seconds since the epoch.
    pub mtime: i64,
    /// Symlink target or hard link target name.
    pub link: &'a [u8],
    /// Device major and minor (character and block devices).
    pub dev: (u64, u64),
    /// Extended attributes (name, value).
    pub xattrs: &'a [(Vec<u8>, Vec<u8>)],
}

impl<'a> Header<'a> {
    /// A regular file or directory owned by root, as the outer archive of
    /// `save` holds them.
    pub fn plain(name: &'a [u8], kind: Kind, size: u64, mtime: i64) -> Self {
        Header {
            name,
            kind,
            size,
            mode: if kind == Kind::Dir { 0o755 } else { 0o644 },
            uid: 0,
            gid: 0,
            mtime,
            link: b"",
            dev: (0, 0),
            xattrs: &[],
        }
    }
}

/// Appends the header block(s) of `h` to `out`: PAX and GNU long-name
/// entries as needed, then the member's own header. The body (and its
/// padding) is the caller's.
pub fn write_header(h: &Header<'_>, out: &mut Vec<u8>) {
    // With a GNU long-name entry before it, the header says GNU too.
    let mut gnu = false;
    if !h.xattrs.is_empty() {
        let mut recs = Vec::new();
        for (k, v) in h.xattrs {
            pax_record(&mut recs, &[b"SCHILY.xattr.", k.as_slice()].concat(), v);
        }
        let mut pax_name = b"PaxHeaders.0/".to_vec();
        let base = h.name.rsplit(|&c| c == b'/').find(|c| !c.is_empty());
        pax_name.extend_from_slice(&base.unwrap_or(b"x")[..base.map_or(1, |b| b.len().min(80))]);
        let (block, _) = block(
            &pax_name,
            b'x',
            recs.len() as u64,
            0o644,
            0,
            0,
            0,
            b"",
            (0, 0),
            false,
        );
        out.extend_from_slice(&block);
        body(out, &recs);
    }
    if h.name.len() > 100 {
        long_name(out, b'L', h.name);
        gnu = true;
    }
    if h.link.len() > 100 {
        long_name(out, b'K', h.link);
        gnu = true;
    }
    let (block, _) = block(
        &h.name[..h.name.len().min(100)],
        h.kind.flag(),
        h.size,
        h.mode & 0o7777,
        h.uid,
        h.gid,
        h.mtime,
        &h.link[..h.link.len().min(100)],
        h.dev,
        gnu,
    );
    out.extend_from_slice(&block);
}

/// A GNU long name (`L`) or long link (`K`) entry carrying `long`.
fn long_name(out: &mut Vec<u8>, flag: u8, long: &[u8]) {
    let mut data = long.to_vec();
    data.push(0);
    let (b, _) = block(
        b"././@LongLink",
        flag,
        data.len() as u64,
        0o644,
        0,
        0,
        0,
        b"",
        (0, 0),
        true,
    );
    out.extend_from_slice(&b);
    body(out, &data);
}

fn body(out: &mut Vec<u8>, data: &[u8]) {
    out.extend_from_slice(data);
    out.resize(out.len() + padding(data.len() as u64), 0);
}

/// `"<len> <key>=<value>\n"`, where `<len>` counts the whole record.
fn pax_record(out: &mut Vec<u8>, key: &[u8], value: &[u8]) {
    out.extend_from_slice(&tarfmt::pax_record(key, value));
}

/// One header block; GNU when asked (a long-name entry precedes it) or when
/// a number needs base-256, else ustar; device numbers only for devices.
#[allow(clippy::too_many_arguments)]
fn block(
    name: &[u8],
    flag: u8,
    size: u64,
    mode: u32,
    uid: u64,
    gid: u64,
    mtime: i64,
    link: &[u8],
    dev: (u64, u64),
    gnu: bool,
) -> ([u8; 512], bool) {
    let h = tarfmt::Header::new(name, flag)
        .size(size)
        .mode(mode)
        .ids(uid, gid)
        .mtime(mtime)
        .link(link)
        .devices(matches!(flag, b'3' | b'4').then_some(dev));
    let big = h.fits().is_err();
    let format = if gnu || big {
        Format::Gnu
    } else {
        Format::Ustar
    };
    (h.format(format).encode(), big)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Read;

    /// A member as the `tar` crate reads it back.
    struct Back {
        name: Vec<u8>,
        flag: u8,
        size: u64,
        mode: u32,
        uid: u64,
        link: Vec<u8>,
        pax: Vec<(String, Vec<u8>)>,
    }

    fn read_back(bytes: &[u8]) -> Vec<Back> {
        let mut a = tar::Archive::new(bytes);
        let mut out = Vec::new();
        for e in a.entries().unwrap() {
            let mut e = e.unwrap();
            let mut pax = Vec::new();
            if let Some(p) = e.pax_extensions().unwrap() {
                for r in p {
                    let r = r.unwrap();
                    pax.push((r.key().unwrap().to_string(), r.value_bytes().to_vec()));
                }
            }
            let h = e.header().clone();
            let name = e.path_bytes().to_vec();
            let link = e.link_name_bytes().map(|l| l.to_vec()).unwrap_or_default();
            let mut body = Vec::new();
            e.read_to_end(&mut body).unwrap();
            out.push(Back {
                name,
                flag: h.entry_type().as_byte(),
                size: body.len() as u64,
                mode: h.mode().unwrap(),
                uid: h.uid().unwrap(),
                link,
                pax,
            });
        }
        out
    }

    #[test]
    fn long_names_links_xattrs_and_big_numbers_read_back() {
        let long: Vec<u8> = [&b"d/"[..], &[0xffu8; 150][..], b".bin"].concat();
        let target = vec![b't'; 180];
        let xattrs = vec![(b"security.capability".to_vec(), vec![1, 0, 0, 2])];
        let mut out = Vec::new();
        let mut h = Header::plain(&long, Kind::File, 3, 1_600_000_000);
        h.mode = 0o4755;
        h.uid = 5_000_000; // > 7 octal digits: base-256
        h.xattrs = &xattrs;
        write_header(&h, &mut out);
        out.extend_from_slice(b"abc");
        out.resize(out.len() + padding(3), 0);
        let mut l = Header::plain(b"sym", Kind::Symlink, 0, 1);
        l.link = &target;
        write_header(&l, &mut out);
        write_header(&Header::plain(b"dir/", Kind::Dir, 0, 2), &mut out);
        out.extend_from_slice(&END);
        let got = read_back(&out);
        assert_eq!(got.len(), 3);
        assert_eq!(got[0].name, long);
        assert_eq!(
            (got[0].flag, got[0].size, got[0].mode, got[0].uid),
            (b'0', 3, 0o4755, 5_000_000)
        );
        assert_eq!(
            got[0].pax,
            vec![("SCHILY.xattr.security.capability".into(), vec![1, 0, 0, 2])]
        );
        assert_eq!((got[1].flag, got[1].link.clone()), (b'2', target));
        assert_eq!(
            (got[2].name.clone(), got[2].flag, got[2].mode),
            (b"dir/".to_vec(), b'5', 0o755)
        );
    }

    #[test]
    fn plain_headers_are_ustar_and_one_block() {
        let mut out = Vec::new();
        write_header(
            &Header::plain(b"manifest.json", Kind::File, 10, 0),
            &mut out,
        );
        assert_eq!(out.len(), 512);
        assert_eq!(&out[257..265], b"ustar\x0000");
        assert_eq!(member_len(10), 1024);
        assert_eq!(member_len(512), 1024);
        assert_eq!(member_len(0), 512);
        let mut big = Vec::new();
        write_header(&Header::plain(b"x", Kind::File, 9 << 30, 0), &mut big);
        assert_eq!(big.len(), 512);
        assert_eq!(&big[257..265], b"ustar  \0");
        assert_eq!(tar::Header::from_byte_slice(&big).size().unwrap(), 9 << 30);
    }

    #[test]
    fn pax_record_lengths_count_themselves() {
        let mut r = Vec::new();
        pax_record(&mut r, b"k", b"v");
        assert_eq!(r, b"6 k=v\n");
        let mut r = Vec::new();
        pax_record(&mut r, b"key", &[b'x'; 95]);
        assert_eq!(&r[..4], b"104 ");
        assert_eq!(r.len(), 104);
    }
}
