//! Tar headers and streams, byte for byte as Go's `archive/tar` writes them.
//!
//! Docker's layer tars are written by Go (moby `pkg/archive` over Go's
//! `tar.Writer`), and a layer's DiffID is the sha256 of that exact stream, so
//! a synthetic layer or a test layer is only faithful if every byte is. The
//! upstream code this follows (go `src/archive/tar/`):
//!
//! * `writer.go` `Writer.templateV7Plus`: the fields of every header;
//! * `writer.go` `Writer.writeRawFile`: the pseudo-entries (GNU `L`/`K`,
//!   PAX `x`): mode, ids and mtime 0, no owner names, no device fields;
//! * `writer.go` `Writer.writeGNUHeader`, `Writer.writePAXHeader`,
//!   `Writer.Close` (two zero blocks);
//! * `format.go` `block.setFormat` (magic, version, checksum as six octal
//!   digits, NUL, space) and `block.computeChecksum`;
//! * `strconv.go` `formatter.formatString`, `formatOctal`, `formatNumeric`
//!   (base-256 for GNU) and `formatPAXRecord` (the self-counting length).
//!
//! A header's fields are given as they go into the block: [`Header::fits`]
//! says whether they do without an extension header (Go's USTAR), and
//! [`Writer`] adds the GNU or PAX extensions when asked.

use std::io;

/// Tar block size.
pub const BLOCK: u64 = 512;

/// Two zero blocks: the end of an archive (Go's `Writer.Close`). Also the
/// source of padding: `&END[..padding(n)]`.
pub const END: [u8; 1024] = [0; 1024];

/// Zero bytes that pad a body of `size` bytes to a whole block.
pub fn padding(size: u64) -> usize {
    ((BLOCK - size % BLOCK) % BLOCK) as usize
}

/// Typeflags (go `archive/tar` `common.go`: `TypeReg`, ...).
pub mod flag {
    pub const REG: u8 = b'0';
    pub const LINK: u8 = b'1';
    pub const SYMLINK: u8 = b'2';
    pub const CHAR: u8 = b'3';
    pub const BLOCK: u8 = b'4';
    pub const DIR: u8 = b'5';
    pub const FIFO: u8 = b'6';
    /// PAX records for the next entry.
    pub const PAX: u8 = b'x';
    pub const GNU_LONG_NAME: u8 = b'L';
    pub const GNU_LONG_LINK: u8 = b'K';
    pub const GNU_SPARSE: u8 = b'S';
}

/// Which magic a header carries (go `format.go` `block.setFormat`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Format {
    /// `ustar\0` + `00`: Go's USTAR and PAX formats. Numbers are octal only.
    #[default]
    Ustar,
    /// `ustar  \0`: Go's GNU format. A number too big for octal goes base-256.
    Gnu,
}

/// The fields of one header block.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Header<'a> {
    /// Bytes as they go into the archive (a directory's with its trailing `/`).
    pub name: &'a [u8],
    /// Typeflag, one of [`flag`] (or any byte, for tests of odd archives).
    pub flag: u8,
    /// As Docker writes it: permission bits plus the `S_IF*` type bits.
    pub mode: u32,
    pub uid: u64,
    pub gid: u64,
    /// Body length in the header (header-only types may claim any).
    pub size: u64,
    /// Seconds since the epoch.
    pub mtime: i64,
    /// Symlink target or hard link target.
    pub link: &'a [u8],
    pub uname: &'a [u8],
    pub gname: &'a [u8],
    /// Device major and minor. `templateV7Plus` always writes both (zeros
    /// for anything but a device); `None` leaves the fields NUL, as the
    /// pseudo-entries of `writeRawFile` do.
    pub devices: Option<(u64, u64)>,
    pub format: Format,
}

impl<'a> Header<'a> {
    /// A header as Go's `templateV7Plus` fills it from a `tar.Header` with
    /// only `Name` and `Typeflag` set: mode, ids, size and mtime 0, no owner
    /// names, device fields 0, ustar magic.
    pub fn new(name: &'a [u8], flag: u8) -> Self {
        Header {
            name,
            flag,
            mode: 0,
            uid: 0,
            gid: 0,
            size: 0,
            mtime: 0,
            link: b"",
            uname: b"",
            gname: b"",
            devices: Some((0, 0)),
            format: Format::Ustar,
        }
    }

    /// A pseudo-entry as Go's `writeRawFile` writes it: only name, typeflag
    /// and size; mode, ids and mtime 0; no owner names or device fields.
    fn raw(name: &'a [u8], flag: u8, size: u64, format: Format) -> Self {
        Header {
            size,
            devices: None,
            format,
            ..Header::new(name, flag)
        }
    }

    pub fn mode(mut self, mode: u32) -> Self {
        self.mode = mode;
        self
    }

    pub fn size(mut self, size: u64) -> Self {
        self.size = size;
        self
    }

    pub fn mtime(mut self, mtime: i64) -> Self {
        self.mtime = mtime;
        self
    }

    pub fn ids(mut self, uid: u64, gid: u64) -> Self {
        self.uid = uid;
        self.gid = gid;
        self
    }

    /// `Uname` and `Gname` (Docker's layer tars say `root` for uid 0).
    pub fn owner_names(mut self, uname: &'a [u8], gname: &'a [u8]) -> Self {
        self.uname = uname;
        self.gname = gname;
        self
    }

    pub fn link(mut self, link: &'a [u8]) -> Self {
        self.link = link;
        self
    }

    pub fn devices(mut self, devices: Option<(u64, u64)>) -> Self {
        self.devices = devices;
        self
    }

    pub fn format(mut self, format: Format) -> Self {
        self.format = format;
        self
    }

    /// Every field fits its slot without an extension header (what Go's
    /// `Header.allowedFormats` checks before it picks USTAR).
    pub fn fits(&self) -> io::Result<()> {
        let gnu = self.format == Format::Gnu;
        let strings = [
            ("name", self.name, 100),
            ("link name", self.link, 100),
            ("uname", self.uname, 32),
            ("gname", self.gname, 32),
        ];
        for (what, v, len) in strings {
            if v.len() > len {
                return Err(too_long(what, self.name));
            }
        }
        let (major, minor) = self.devices.unwrap_or((0, 0));
        let numbers = [
            ("mode", i128::from(self.mode), 8),
            ("uid", i128::from(self.uid), 8),
            ("gid", i128::from(self.gid), 8),
            ("size", i128::from(self.size), 12),
            ("mtime", i128::from(self.mtime), 12),
            ("device major", i128::from(major), 8),
            ("device minor", i128::from(minor), 8),
        ];
        for (what, v, len) in numbers {
            if !(fits_octal(len, v) || gnu && fits_base256(len, v)) {
                return Err(too_long(what, self.name));
            }
        }
        Ok(())
    }

    /// The 512-byte block. A field too long for its slot is cut (and a number
    /// written 0) as Go does when an extension header carries the full value;
    /// call [`Header::fits`] first where there is none.
    pub fn encode(&self) -> [u8; 512] {
        let mut b = [0u8; 512];
        let num = match self.format {
            Format::Ustar => format_octal,
            Format::Gnu => format_numeric,
        };
        format_string(&mut b[0..100], self.name);
        num(&mut b[100..108], i128::from(self.mode));
        num(&mut b[108..116], i128::from(self.uid));
        num(&mut b[116..124], i128::from(self.gid));
        num(&mut b[124..136], i128::from(self.size));
        num(&mut b[136..148], i128::from(self.mtime));
        b[156] = self.flag;
        format_string(&mut b[157..257], self.link);
        format_string(&mut b[265..297], self.uname);
        format_string(&mut b[297..329], self.gname);
        if let Some((major, minor)) = self.devices {
            num(&mut b[329..337], i128::from(major));
            num(&mut b[337..345], i128::from(minor));
        }
        set_format(&mut b, self.format);
        b
    }
}

fn too_long(what: &str, name: &[u8]) -> io::Error {
    io::Error::new(
        io::ErrorKind::InvalidInput,
        format!(
            "tar header of {:?}: {what} does not fit its field",
            String::from_utf8_lossy(name)
        ),
    )
}

/// Magic, version and checksum (go `format.go` `block.setFormat`).
fn set_format(b: &mut [u8; 512], format: Format) {
    match format {
        Format::Ustar => b[257..265].copy_from_slice(b"ustar\x0000"),
        Format::Gnu => b[257..265].copy_from_slice(b"ustar  \x00"),
    }
    // `computeChecksum`: the unsigned sum with the checksum field as spaces.
    b[148..156].fill(b' ');
    let sum: i128 = b.iter().map(|&c| i128::from(c)).sum();
    format_octal(&mut b[148..155], sum);
    b[155] = b' ';
}

/// go `strconv.go` `formatter.formatString`: copy, NUL-terminate when
/// shorter, and never leave a cut name ending in `/` (readers would take a
/// file for a directory).
fn format_string(field: &mut [u8], s: &[u8]) {
    let n = s.len().min(field.len());
    field[..n].copy_from_slice(&s[..n]);
    if s.len() < field.len() {
        field[s.len()] = 0;
    }
    if s.len() > field.len() && field[field.len() - 1] == b'/' {
        let kept = s[..field.len()]
            .iter()
            .rposition(|&c| c != b'/')
            .map_or(0, |i| i + 1);
        field[kept] = 0;
    }
}

fn fits_octal(len: usize, v: i128) -> bool {
    v >= 0 && v < 1i128 << (3 * (len - 1))
}

fn fits_base256(len: usize, v: i128) -> bool {
    let bits = 8 * (len - 1);
    bits >= 64 || (-(1i128 << bits)..1i128 << bits).contains(&v)
}

/// go `strconv.go` `formatter.formatOctal`: zero-padded digits and a NUL;
/// a value that does not fit is written as 0.
fn format_octal(field: &mut [u8], v: i128) {
    let digits = field.len() - 1;
    let v = if fits_octal(field.len(), v) { v } else { 0 };
    field[..digits].copy_from_slice(format!("{v:0digits$o}").as_bytes());
    field[digits] = 0;
}

/// go `strconv.go` `formatter.formatNumeric`: octal when it fits, else
/// base-256 (two's complement, high bit set).
fn format_numeric(field: &mut [u8], v: i128) {
    if fits_octal(field.len(), v) || !fits_base256(field.len(), v) {
        return format_octal(field, v);
    }
    let bytes = v.to_be_bytes();
    field.copy_from_slice(&bytes[bytes.len() - field.len()..]);
    field[0] |= 0x80;
}

/// One PAX record, `"<len> <key>=<value>\n"`, where `<len>` counts the
/// whole record including its own digits (go `strconv.go` `formatPAXRecord`).
pub fn pax_record(key: &[u8], value: &[u8]) -> Vec<u8> {
    let rest = key.len() + value.len() + 3; // ' ', '=', '\n'
    let guess = rest + rest.to_string().len();
    // Adding the digits can add a digit (98 + 2 = 100): then count again.
    let len = guess.to_string().len() + rest;
    let mut r = len.to_string().into_bytes();
    r.push(b' ');
    r.extend_from_slice(key);
    r.push(b'=');
    r.extend_from_slice(value);
    r.push(b'\n');
    r
}

/// go `strings.go` `toASCII`: names of PAX headers drop non-ASCII and NUL.
fn to_ascii(s: &[u8]) -> Vec<u8> {
    s.iter().copied().filter(|&c| c != 0 && c < 0x80).collect()
}

/// A tar stream built in memory, entry by entry, as Go's `tar.Writer`
/// writes it.
#[derive(Debug, Default, Clone)]
pub struct Writer {
    buf: Vec<u8>,
}

impl Writer {
    pub fn new() -> Self {
        Writer::default()
    }

    /// The bytes so far (no end-of-archive blocks).
    pub fn as_bytes(&self) -> &[u8] {
        &self.buf
    }

    /// A header block whose fields all fit (Go's USTAR path), then `body`
    /// and its padding.
    pub fn entry(&mut self, h: &Header<'_>, body: &[u8]) -> io::Result<()> {
        h.fits()?;
        self.buf.extend_from_slice(&h.encode());
        self.data(body);
        Ok(())
    }

    /// Go's `writeGNUHeader`: an `L` pseudo-entry for a name over 100 bytes,
    /// a `K` one for such a link name (any bytes, NUL-terminated), then the
    /// header with GNU magic and cut fields, then `body`.
    pub fn gnu_entry(&mut self, h: &Header<'_>, body: &[u8]) {
        for (flag, long) in [(flag::GNU_LONG_NAME, h.name), (flag::GNU_LONG_LINK, h.link)] {
            if long.len() > 100 {
                let data = [long, b"\0"].concat();
                self.raw_file(b"././@LongLink", flag, &data, Format::Gnu);
            }
        }
        let main = h.clone().format(Format::Gnu);
        self.buf.extend_from_slice(&main.encode());
        self.data(body);
    }

    /// Go's `writePAXHeader`: an `x` pseudo-entry with `records` (sorted by
    /// key, as Go writes them) named after `h.name`, then the header with
    /// ustar magic, non-ASCII dropped from name and link and fields cut, then
    /// `body`. The caller picks the records (`path`, `mtime`, ...).
    pub fn pax_entry(&mut self, h: &Header<'_>, records: &[(&str, &[u8])], body: &[u8]) {
        self.pax(h.name, records);
        let (name, link) = (to_ascii(h.name), to_ascii(h.link));
        let main = Header {
            name: &name,
            link: &link,
            ..h.clone()
        }
        .format(Format::Ustar);
        self.buf.extend_from_slice(&main.encode());
        self.data(body);
    }

    /// The `x` pseudo-entry alone, named `<dir>/PaxHeaders.0/<base>` after
    /// `real_name` (for an entry whose header is written separately, e.g. a
    /// PAX sparse file's `GNUSparseFile.0/` name).
    pub fn pax(&mut self, real_name: &[u8], records: &[(&str, &[u8])]) {
        let mut sorted = records.to_vec();
        sorted.sort_by_key(|(k, _)| *k);
        let data: Vec<u8> = sorted
            .iter()
            .flat_map(|(k, v)| pax_record(k.as_bytes(), v))
            .collect();
        self.raw_file(&pax_header_name(real_name), flag::PAX, &data, Format::Ustar);
    }

    /// Bytes as they are: a hand-made or deliberately broken block.
    pub fn raw(&mut self, bytes: &[u8]) {
        self.buf.extend_from_slice(bytes);
    }

    /// A body and the zeros that pad it to a whole block.
    pub fn data(&mut self, body: &[u8]) {
        self.buf.extend_from_slice(body);
        self.buf
            .extend_from_slice(&END[..padding(body.len() as u64)]);
    }

    /// Go's `writeRawFile`: a pseudo-entry named (ASCII only, at most 100
    /// bytes, no trailing `/`) `name`, carrying `data`.
    fn raw_file(&mut self, name: &[u8], flag: u8, data: &[u8], format: Format) {
        let mut name = to_ascii(name);
        name.truncate(100);
        while name.last() == Some(&b'/') {
            name.pop();
        }
        let h = Header::raw(&name, flag, data.len() as u64, format);
        self.buf.extend_from_slice(&h.encode());
        self.data(data);
    }

    /// The stream with Go's two end-of-archive blocks, then `extra_blocks`
    /// more zero blocks (what writers that pad to a record size leave; they
    /// are part of a layer's DiffID all the same).
    pub fn finish(mut self, extra_blocks: usize) -> Vec<u8> {
        self.buf.extend_from_slice(&END);
        let extra = extra_blocks * BLOCK as usize;
        self.buf.resize(self.buf.len() + extra, 0);
        self.buf
    }
}

/// `path.Join(dir, "PaxHeaders.0", file)` of go `writePAXHeader`.
fn pax_header_name(real_name: &[u8]) -> Vec<u8> {
    let trimmed = match real_name.iter().rposition(|&c| c != b'/') {
        Some(i) => &real_name[..=i],
        None => real_name,
    };
    let (dir, file) = match trimmed.iter().rposition(|&c| c == b'/') {
        Some(i) => (&trimmed[..i], &trimmed[i + 1..]),
        None => (&b""[..], trimmed),
    };
    let mut out = Vec::with_capacity(real_name.len() + 13);
    if !dir.is_empty() {
        out.extend_from_slice(dir);
        out.push(b'/');
    }
    out.extend_from_slice(b"PaxHeaders.0");
    if !file.is_empty() {
        out.push(b'/');
        out.extend_from_slice(file);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn checksum_ok(h: &[u8; 512]) -> bool {
        let sum: u32 = h
            .iter()
            .enumerate()
            .map(|(i, &b)| {
                if (148..156).contains(&i) {
                    32
                } else {
                    u32::from(b)
                }
            })
            .sum();
        h[148..154] == *format!("{sum:06o}").as_bytes() && h[154..156] == [0, b' ']
    }

    /// Field layout as Go writes it for Docker's layers (compared with a
    /// header written by dockerd 20.10).
    #[test]
    fn a_docker_layer_header() {
        let h = Header::new(b"etc/df", flag::REG)
            .mode(0o100644)
            .size(84)
            .mtime(1_795_703_282)
            .owner_names(b"root", b"root");
        h.fits().unwrap();
        let b = h.encode();
        assert_eq!(&b[..7], b"etc/df\0");
        assert_eq!(&b[100..108], b"0100644\0");
        assert_eq!(&b[108..124], b"0000000\x000000000\0");
        assert_eq!(&b[124..136], b"00000000124\0");
        assert_eq!(&b[136..148], b"15302040762\0");
        assert_eq!(b[156], b'0');
        assert_eq!(&b[257..265], b"ustar\x0000");
        assert_eq!(&b[265..270], b"root\0");
        assert_eq!(&b[297..302], b"root\0");
        assert_eq!(&b[329..345], b"0000000\x000000000\0");
        assert!(checksum_ok(&b));
        assert!(b[345..].iter().all(|&c| c == 0));
    }

    /// The `tar` crate reads what this writes, field by field.
    #[test]
    fn the_tar_crate_agrees() {
        let b = Header::new(b"a/link", flag::SYMLINK)
            .mode(0o120777)
            .mtime(1_600_000_000)
            .ids(1234, 5678)
            .owner_names(b"user", b"group")
            .link(b"../target")
            .encode();
        let t = tar::Header::from_byte_slice(&b);
        assert_eq!(t.path_bytes().as_ref(), b"a/link");
        assert_eq!(t.entry_type(), tar::EntryType::Symlink);
        assert_eq!(t.mode().unwrap(), 0o120777);
        assert_eq!((t.uid().unwrap(), t.gid().unwrap()), (1234, 5678));
        assert_eq!(t.mtime().unwrap(), 1_600_000_000);
        assert_eq!(t.link_name_bytes().unwrap().as_ref(), b"../target");
        assert_eq!(t.username().unwrap(), Some("user"));
        assert_eq!(t.groupname().unwrap(), Some("group"));
        assert_eq!(t.cksum().unwrap(), {
            let mut c = b;
            c[148..156].fill(b' ');
            c.iter().map(|&x| u32::from(x)).sum::<u32>()
        });
    }

    #[test]
    fn what_does_not_fit() {
        let long = [b'n'; 101];
        assert!(Header::new(&long, flag::REG).fits().is_err());
        assert!(Header::new(&long[..100], flag::REG).fits().is_ok());
        let big = Header::new(b"big", flag::REG).size(8 << 30);
        assert!(big.fits().is_err(), "ustar sizes stop below 8 GiB");
        assert!(big.clone().format(Format::Gnu).fits().is_ok());
        // Base-256 as Go and GNU tar write it.
        let b = big.format(Format::Gnu).encode();
        assert_eq!(&b[124..136], &[0x80, 0, 0, 0, 0, 0, 0, 2, 0, 0, 0, 0]);
        let neg = Header::new(b"old", flag::REG).mtime(-1).format(Format::Gnu);
        assert_eq!(&neg.encode()[136..148], &[0xff; 12]);
        assert!(Header::new(b"old", flag::REG).mtime(-1).fits().is_err());
        // A cut name never ends in '/'.
        let mut dirs = b"d/".repeat(50);
        dirs.extend_from_slice(b"x");
        let b = Header::new(&dirs, flag::REG).encode();
        assert_eq!(&b[..99], &dirs[..99]);
        assert_eq!(b[99], 0);
    }

    #[test]
    fn pax_records_count_themselves() {
        assert_eq!(pax_record(b"path", b"a"), b"9 path=a\n");
        assert_eq!(pax_record(b"k", b"vvvv"), b"9 k=vvvv\n");
        // 98 bytes and two digits make 100, which needs three.
        let r = pax_record(b"k", &[b'v'; 94]);
        assert!(r.starts_with(b"101 k=v") && r.len() == 101);
        for n in 0..300 {
            let r = pax_record(b"key", &vec![b'v'; n]);
            let len: usize = std::str::from_utf8(&r[..r.iter().position(|&c| c == b' ').unwrap()])
                .unwrap()
                .parse()
                .unwrap();
            assert_eq!(len, r.len(), "value of {n} bytes");
        }
    }

    #[test]
    fn gnu_long_names_and_pax_records_as_go_writes_them() {
        let name = [b"d/".as_slice(), &[0xff; 120]].concat();
        let link = vec![b'l'; 150];
        let mut w = Writer::new();
        let h = Header::new(&name, flag::LINK).link(&link).mtime(7);
        w.gnu_entry(&h, b"");
        w.pax_entry(
            &Header::new(b"caf\xc3\xa9/x", flag::REG).size(3),
            &[("path", b"caf\xc3\xa9/x"), ("mtime", b"7.5")],
            b"abc",
        );
        let out = w.finish(1);
        assert_eq!(out.len(), 512 * (2 + 2 + 1 + 2 + 2 + 2 + 1));
        let block = |i: usize| -> [u8; 512] { out[i * 512..(i + 1) * 512].try_into().unwrap() };
        // L: writeRawFile's minimal header, then the name and a NUL.
        let l = block(0);
        assert_eq!(&l[..14], b"././@LongLink\0");
        assert_eq!(l[156], b'L');
        assert_eq!(&l[100..108], b"0000000\0");
        assert_eq!(
            &l[124..136],
            format!("{:011o}\0", name.len() + 1).as_bytes()
        );
        assert_eq!(&l[257..265], b"ustar  \0");
        assert!(l[265..345].iter().all(|&c| c == 0), "no owner, no devices");
        assert!(checksum_ok(&l));
        assert_eq!(&out[512..512 + name.len()], &name[..]);
        assert_eq!(out[512 + name.len()], 0);
        assert_eq!(block(2)[156], b'K');
        let main = block(4);
        assert_eq!(&main[..100], &name[..100]);
        assert_eq!(&main[157..257], &link[..100]);
        assert_eq!(&main[257..265], b"ustar  \0");
        assert!(checksum_ok(&main));
        // x: named dir/PaxHeaders.0/base, records sorted by key.
        let x = block(5);
        assert_eq!(&x[..20], b"caf/PaxHeaders.0/x\0\0");
        assert_eq!(x[156], b'x');
        assert_eq!(&x[257..265], b"ustar\x0000");
        let recs = b"13 mtime=7.5\n16 path=caf\xc3\xa9/x\n";
        assert_eq!(&out[6 * 512..6 * 512 + recs.len()], recs);
        let pax_main = block(7);
        assert_eq!(&pax_main[..6], b"caf/x\0", "non-ASCII dropped");
        let t = tar::Archive::new(&out[..]).entries().unwrap().count();
        assert_eq!(t, 2, "the tar crate sees two entries");
        assert!(out[out.len() - 1536..].iter().all(|&c| c == 0));
    }

    #[test]
    fn pax_header_names() {
        assert_eq!(pax_header_name(b"a/b/c"), b"a/b/PaxHeaders.0/c");
        assert_eq!(pax_header_name(b"c"), b"PaxHeaders.0/c");
        assert_eq!(pax_header_name(b"a/dir/"), b"a/PaxHeaders.0/dir");
    }

    #[test]
    fn padding_and_end() {
        assert_eq!(padding(0), 0);
        assert_eq!(padding(1), 511);
        assert_eq!(padding(512), 0);
        let mut w = Writer::new();
        w.entry(&Header::new(b"f", flag::REG).size(5), b"hello")
            .unwrap();
        assert_eq!(w.as_bytes().len(), 1024);
        assert_eq!(w.finish(3).len(), 1024 + 1024 + 3 * 512);
    }
}
