//! Streaming reader of `tar-split.json.gz` (vbatts/tar-split
//! `tar/storage/entry.go`, `packer.go`, `getter.go`).
//!
//! The file is one gzip stream (read as multi-member, like Go's `gzip.Reader`)
//! of newline-delimited JSON objects `{type, name?, name_raw?, size?, payload,
//! position}`. [`Reader::next_entry`] yields one [`Entry`] at a time, borrowing
//! reusable buffers, so a layer of any size is read in constant memory.
//!
//! Every malformed input is a [`TarSplitError`] naming the 1-based line; the
//! reader never panics. Memory is bounded: a line may be at most [`MAX_LINE`]
//! bytes (Go's tar reader caps PAX and GNU long-name data at 1 MiB, and
//! tar-split cuts trailing data into 1 MiB Segments, so real lines stay under
//! ~3 MiB), and `size` is only a number to compare with, never allocated.
//!
//! Differences from Go's `storage.NewJSONUnpacker`, all on input Docker never
//! writes: one object per line (blank lines are skipped), an unknown `type` is
//! an error instead of being ignored, a size > 0 File needs an 8-byte CRC and a
//! name, and a negative size is an error. Like Go, duplicate File names
//! (compared after `filepath.Clean`) are rejected.

use base64::Engine as _;
use base64::engine::{GeneralPurpose, GeneralPurposeConfig};
use flate2::bufread::MultiGzDecoder;
use serde::Deserialize;
use std::borrow::Cow;
use std::collections::HashSet;
use std::fmt;
use std::hash::{BuildHasher, Hasher};
use std::io::{self, BufRead, BufReader, ErrorKind, Read};

/// Longest accepted JSON line (decompressed), newline included.
pub const MAX_LINE: usize = 32 << 20;

/// `type` of a File entry: a tar entry whose body is not stored.
pub const FILE_TYPE: i64 = 1;
/// `type` of a Segment entry: raw archive bytes.
pub const SEGMENT_TYPE: i64 = 2;

/// Go's `base64.StdEncoding` as `encoding/json` uses it for `[]byte`:
/// standard alphabet, padding required, non-zero trailing bits tolerated.
const GO_STD: GeneralPurpose = GeneralPurpose::new(
    &base64::alphabet::STANDARD,
    GeneralPurposeConfig::new().with_decode_allow_trailing_bits(true),
);

/// What is wrong with a tar-split stream, and on which (1-based) line. The
/// causes are said in the messages, so they are not `source()`s as well.
#[derive(Debug, thiserror::Error)]
pub enum TarSplitError {
    #[error("line {line}: not valid gzip data: {cause}")]
    Gzip { line: u64, cause: io::Error },
    #[error("line {line}: read error: {cause}")]
    Io { line: u64, cause: io::Error },
    #[error("line {line}: longer than {max} bytes (no newline found)")]
    LineTooLong { line: u64, max: usize },
    #[error("line {line}: bad JSON: {cause}")]
    Json { line: u64, cause: serde_json::Error },
    #[error("line {line}: unknown entry type {kind} (1 = file, 2 = segment)")]
    UnknownType { line: u64, kind: i64 },
    #[error("line {line}: bad base64 in `{field}`: {cause}")]
    Base64 {
        line: u64,
        field: &'static str,
        cause: base64::DecodeError,
    },
    #[error("line {line}: CRC payload of {name} is {len} bytes, not 8")]
    CrcLength { line: u64, name: String, len: usize },
    #[error("line {line}: file {name} has size {size} but no CRC payload")]
    MissingPayload { line: u64, name: String, size: u64 },
    #[error("line {line}: file entry of size {size} has no name")]
    MissingName { line: u64, size: u64 },
    #[error("line {line}: file {name} has negative size {size}")]
    NegativeSize { line: u64, name: String, size: i64 },
    #[error("line {line}: duplicate path {name} (tar-split never stores duplicates)")]
    DuplicatePath { line: u64, name: String },
}

impl TarSplitError {
    /// The 1-based line the error was found on.
    pub fn line(&self) -> u64 {
        use TarSplitError::*;
        match self {
            Gzip { line, .. }
            | Io { line, .. }
            | LineTooLong { line, .. }
            | Json { line, .. }
            | UnknownType { line, .. }
            | Base64 { line, .. }
            | CrcLength { line, .. }
            | MissingPayload { line, .. }
            | MissingName { line, .. }
            | NegativeSize { line, .. }
            | DuplicatePath { line, .. } => *line,
        }
    }
}

/// One entry, borrowing the reader's buffers until the next call.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Entry<'a> {
    /// Raw archive bytes (headers, padding, end blocks), to be copied as is.
    Segment(&'a [u8]),
    /// A tar entry whose body is read from the layer's files.
    File(FileEntry<'a>),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FileEntry<'a> {
    /// Raw name bytes: `name_raw` when present, else `name` (may start with
    /// `./` or `/`, exactly as in the tar header).
    pub name: &'a [u8],
    /// Body length (`hdr.Size`); 0 for directories, links, devices, whiteouts.
    pub size: u64,
    /// CRC-64/GO-ISO of the body when `size > 0` (stored big-endian).
    pub crc: Option<u64>,
    /// 1-based line of this entry.
    pub line: u64,
}

/// An owned copy of an [`Entry`] (tests, tools).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum OwnedEntry {
    Segment(Vec<u8>),
    File {
        name: Vec<u8>,
        size: u64,
        crc: Option<u64>,
    },
}

impl Entry<'_> {
    pub fn to_owned_entry(&self) -> OwnedEntry {
        match *self {
            Entry::Segment(b) => OwnedEntry::Segment(b.to_vec()),
            Entry::File(f) => OwnedEntry::File {
                name: f.name.to_vec(),
                size: f.size,
                crc: f.crc,
            },
        }
    }
}

/// Streaming reader over a gzip-compressed tar-split.
pub struct Reader<R: Read> {
    inner: BufReader<MultiGzDecoder<BufReader<R>>>,
    line: Vec<u8>,
    line_no: u64,
    max_line: usize,
    payload: Vec<u8>,
    name: Vec<u8>,
    /// 128-bit hashes of `filepath.Clean(name)` of every File so far.
    seen: HashSet<u128>,
    keys: (std::hash::RandomState, std::hash::RandomState),
    started: bool,
    done: bool,
}

impl<R: Read> Reader<R> {
    /// Wraps a reader of the gzip file (no I/O happens until the first entry).
    pub fn new(gz: R) -> Self {
        Reader {
            inner: BufReader::with_capacity(
                256 << 10,
                MultiGzDecoder::new(BufReader::with_capacity(64 << 10, gz)),
            ),
            line: Vec::with_capacity(4096),
            line_no: 0,
            max_line: MAX_LINE,
            payload: Vec::with_capacity(4096),
            name: Vec::with_capacity(256),
            seen: HashSet::new(),
            keys: Default::default(),
            started: false,
            done: false,
        }
    }

    /// Lowers the longest accepted line (default [`MAX_LINE`]).
    pub fn with_max_line(mut self, max: usize) -> Self {
        self.max_line = max.min(MAX_LINE);
        self
    }

    /// Lines read so far (the line of the last entry returned).
    pub fn line(&self) -> u64 {
        self.line_no
    }

    /// The next entry, `Ok(None)` at the end of the stream. After an error,
    /// every further call returns `Ok(None)`.
    pub fn next_entry(&mut self) -> Result<Option<Entry<'_>>, TarSplitError> {
        if self.done {
            return Ok(None);
        }
        match self.advance() {
            Ok(Some(k)) => Ok(Some(self.entry(k))),
            Ok(None) => {
                self.done = true;
                Ok(None)
            }
            Err(e) => {
                self.done = true;
                Err(e)
            }
        }
    }

    /// Reads and decodes the next non-blank line into the buffers; returns
    /// what kind of entry it holds.
    fn advance(&mut self) -> Result<Option<Kind>, TarSplitError> {
        if !self.started {
            self.started = true;
            self.refuse_empty_file()?;
        }
        loop {
            if !self.read_line()? {
                return Ok(None);
            }
            if self.line.trim_ascii().is_empty() {
                continue;
            }
            // The line buffer is lent out while the decoders fill the others,
            // and given back (with its capacity) whatever they return.
            let buf = std::mem::take(&mut self.line);
            let r = self.decode_line(buf.trim_ascii());
            self.line = buf;
            return r.map(Some);
        }
    }

    fn decode_line(&mut self, text: &[u8]) -> Result<Kind, TarSplitError> {
        let line = self.line_no;
        let raw: Raw<'_> =
            serde_json::from_slice(text).map_err(|cause| TarSplitError::Json { line, cause })?;
        match raw.kind {
            SEGMENT_TYPE => {
                self.payload.clear();
                if let Some(p) = &raw.payload {
                    decode(p.0.as_bytes(), &mut self.payload, line, "payload")?;
                }
                Ok(Kind::Segment)
            }
            FILE_TYPE => self.file(&raw, line),
            kind => Err(TarSplitError::UnknownType { line, kind }),
        }
    }

    /// flate2 reads an empty file as an empty stream; Go's gzip reader (and
    /// so Docker) fails on it.
    fn refuse_empty_file(&mut self) -> Result<(), TarSplitError> {
        let empty = self
            .inner
            .get_mut()
            .get_mut()
            .fill_buf()
            .map_err(|e| io_error(1, e))?
            .is_empty();
        if empty {
            return Err(TarSplitError::Gzip {
                line: 1,
                cause: io::Error::new(ErrorKind::UnexpectedEof, "empty file"),
            });
        }
        Ok(())
    }

    /// A File line: its name (`name_raw` wins), size, CRC, and no duplicate.
    fn file(&mut self, raw: &Raw<'_>, line: u64) -> Result<Kind, TarSplitError> {
        self.name.clear();
        match (&raw.name_raw, &raw.name) {
            (Some(r), _) if !r.0.is_empty() => {
                decode(r.0.as_bytes(), &mut self.name, line, "name_raw")?
            }
            (_, Some(n)) => self.name.extend_from_slice(n.0.as_bytes()),
            _ => {}
        }
        let size = raw.size.unwrap_or(0);
        if size < 0 {
            return Err(TarSplitError::NegativeSize {
                line,
                name: display_name(&self.name),
                size,
            });
        }
        let size = size as u64;
        let crc = if size > 0 {
            Some(self.crc(raw, line, size)?)
        } else {
            if let Some(p) = &raw.payload {
                // Ignored for size 0, but Go would still fail to decode it.
                self.payload.clear();
                decode(p.0.as_bytes(), &mut self.payload, line, "payload")?;
            }
            None
        };
        let key = self.clean_key();
        if !self.seen.insert(key) {
            return Err(TarSplitError::DuplicatePath {
                line,
                name: display_name(&self.name),
            });
        }
        Ok(Kind::File { size, crc })
    }

    /// The CRC-64 of a File with a body: 8 bytes, base64 in `payload`.
    fn crc(&mut self, raw: &Raw<'_>, line: u64, size: u64) -> Result<u64, TarSplitError> {
        if self.name.is_empty() {
            return Err(TarSplitError::MissingName { line, size });
        }
        let Some(p) = &raw.payload else {
            return Err(TarSplitError::MissingPayload {
                line,
                name: display_name(&self.name),
                size,
            });
        };
        // A CRC is 12 base64 characters; anything much longer is wrong
        // anyway and is not worth decoding in full.
        let b = p.0.as_bytes();
        let len = if b.len() > 64 {
            b.len() / 4 * 3
        } else {
            self.payload.clear();
            decode(b, &mut self.payload, line, "payload")?;
            self.payload.len()
        };
        if len != 8 {
            return Err(TarSplitError::CrcLength {
                line,
                name: display_name(&self.name),
                len,
            });
        }
        let mut sum = [0u8; 8];
        sum.copy_from_slice(&self.payload);
        Ok(u64::from_be_bytes(sum))
    }

    fn entry(&self, k: Kind) -> Entry<'_> {
        match k {
            Kind::Segment => Entry::Segment(&self.payload),
            Kind::File { size, crc } => Entry::File(FileEntry {
                name: &self.name,
                size,
                crc,
                line: self.line_no,
            }),
        }
    }

    fn clean_key(&self) -> u128 {
        let clean = go_clean(&self.name);
        let mut a = self.keys.0.build_hasher();
        let mut b = self.keys.1.build_hasher();
        a.write(&clean);
        b.write(&clean);
        (u128::from(a.finish()) << 64) | u128::from(b.finish())
    }

    /// Reads one line (up to and including `\n`) into `self.line`; false at
    /// the end of the stream with nothing read.
    fn read_line(&mut self) -> Result<bool, TarSplitError> {
        self.line.clear();
        self.line_no += 1;
        let line = self.line_no;
        loop {
            let buf = match self.inner.fill_buf() {
                Ok(b) => b,
                Err(e) if e.kind() == ErrorKind::Interrupted => continue,
                Err(e) => return Err(io_error(line, e)),
            };
            if buf.is_empty() {
                return Ok(!self.line.is_empty());
            }
            let (take, found) = match memchr(b'\n', buf) {
                Some(i) => (i + 1, true),
                None => (buf.len(), false),
            };
            if self.line.len() + take > self.max_line {
                return Err(TarSplitError::LineTooLong {
                    line,
                    max: self.max_line,
                });
            }
            self.line.extend_from_slice(&buf[..take]);
            self.inner.consume(take);
            if found {
                return Ok(true);
            }
        }
    }
}

impl<R: Read> fmt::Debug for Reader<R> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Reader")
            .field("line", &self.line_no)
            .finish_non_exhaustive()
    }
}

#[derive(Clone, Copy)]
enum Kind {
    Segment,
    File { size: u64, crc: Option<u64> },
}

/// First position of `c` in `buf` (the memchr crate's vectorized search).
fn memchr(c: u8, buf: &[u8]) -> Option<usize> {
    memchr::memchr(c, buf)
}

/// Corrupt or truncated compressed data is a gzip error; anything else (EIO
/// from the disk, permissions) is a read error.
/// Base64 as Go's `encoding/json` writes `[]byte`, into `out`.
fn decode(
    b: &[u8],
    out: &mut Vec<u8>,
    line: u64,
    field: &'static str,
) -> Result<(), TarSplitError> {
    GO_STD
        .decode_vec(b, out)
        .map_err(|cause| TarSplitError::Base64 { line, field, cause })
}

fn io_error(line: u64, e: io::Error) -> TarSplitError {
    match e.kind() {
        ErrorKind::InvalidData | ErrorKind::InvalidInput | ErrorKind::UnexpectedEof => {
            TarSplitError::Gzip { line, cause: e }
        }
        _ => TarSplitError::Io { line, cause: e },
    }
}

/// One JSON line. Unknown keys (`position` included) are ignored, as Go does.
#[derive(Deserialize)]
struct Raw<'a> {
    #[serde(rename = "type")]
    kind: i64,
    #[serde(default, borrow)]
    name: Option<Str<'a>>,
    #[serde(default, borrow)]
    name_raw: Option<Str<'a>>,
    #[serde(default)]
    size: Option<i64>,
    #[serde(default, borrow)]
    payload: Option<Str<'a>>,
}

/// A JSON string borrowed from the line when it has no escapes.
struct Str<'a>(Cow<'a, str>);

impl<'de: 'a, 'a> Deserialize<'de> for Str<'a> {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> serde::de::Visitor<'de> for V {
            type Value = Cow<'de, str>;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a string")
            }
            fn visit_borrowed_str<E>(self, v: &'de str) -> Result<Self::Value, E> {
                Ok(Cow::Borrowed(v))
            }
            fn visit_str<E>(self, v: &str) -> Result<Self::Value, E> {
                Ok(Cow::Owned(v.to_owned()))
            }
            fn visit_string<E>(self, v: String) -> Result<Self::Value, E> {
                Ok(Cow::Owned(v))
            }
        }
        d.deserialize_str(V).map(Str)
    }
}

/// A name for messages: UTF-8 as is, other bytes as `\xNN`.
pub fn display_name(name: &[u8]) -> String {
    let mut s = String::with_capacity(name.len());
    for chunk in name.utf8_chunks() {
        s.push_str(chunk.valid());
        for b in chunk.invalid() {
            s.push_str(&format!("\\x{b:02x}"));
        }
    }
    s
}

/// Go's `filepath.Clean` on Unix, bytewise (the key of tar-split's
/// duplicate-name check).
pub fn go_clean(path: &[u8]) -> Vec<u8> {
    if path.is_empty() {
        return b".".to_vec();
    }
    let rooted = path[0] == b'/';
    let mut parts: Vec<&[u8]> = Vec::new();
    // Number of leading `..` in `parts` that cannot be cancelled (relative only).
    let mut fixed = 0;
    for comp in path.split(|&c| c == b'/') {
        match comp {
            b"" | b"." => {}
            b".." => {
                if parts.len() > fixed {
                    parts.pop();
                } else if !rooted {
                    parts.push(comp);
                    fixed += 1;
                }
            }
            _ => parts.push(comp),
        }
    }
    let mut out = Vec::with_capacity(path.len());
    if rooted {
        out.push(b'/');
    }
    for (i, p) in parts.iter().enumerate() {
        if i > 0 {
            out.push(b'/');
        }
        out.extend_from_slice(p);
    }
    if out.is_empty() {
        out.push(b'.');
    }
    out
}

/// CRC-64/GO-ISO of `data`, as tar-split stores it (before big-endian encoding).
pub fn crc64(data: &[u8]) -> u64 {
    let mut d = crc_fast::Digest::new(crc_fast::CrcAlgorithm::Crc64GoIso);
    d.update(data);
    d.finalize()
}

/// Reads a whole tar-split into owned entries (tests and small tools).
pub fn read_all<R: Read>(gz: R) -> Result<Vec<OwnedEntry>, TarSplitError> {
    let mut r = Reader::new(gz);
    let mut out = Vec::new();
    while let Some(e) = r.next_entry()? {
        out.push(e.to_owned_entry());
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use flate2::Compression;
    use flate2::write::GzEncoder;
    use std::io::Write;

    fn gz(text: &[u8]) -> Vec<u8> {
        let mut e = GzEncoder::new(Vec::new(), Compression::default());
        e.write_all(text).unwrap();
        e.finish().unwrap()
    }

    fn parse(text: &str) -> Result<Vec<OwnedEntry>, TarSplitError> {
        read_all(&gz(text.as_bytes())[..])
    }

    #[test]
    fn crc_test_vectors() {
        let sum = crc64(b"imma hurr til I derp");
        assert_eq!(sum.to_be_bytes(), [2, 116, 164, 177, 171, 236, 107, 78]);
        assert_eq!(
            base64::engine::general_purpose::STANDARD.encode(sum.to_be_bytes()),
            "AnSksavsa04="
        );
        assert_eq!(
            crc64("café con leche, por favor".as_bytes()).to_be_bytes(),
            [126, 72, 89, 239, 230, 252, 160, 187]
        );
        assert_eq!(crc64(b"123456789"), 0xB909_56C7_75A4_1001);
    }

    #[test]
    fn parses_the_doc_example() {
        let text = "{\"type\":2,\"payload\":\"aGVhZGVy\",\"position\":0}\n\
                    {\"type\":1,\"name\":\"./hurr.txt\",\"size\":20,\"payload\":\"AnSksavsa04=\",\"position\":1}\n\
                    {\"type\":1,\"name\":\"dir/\",\"payload\":null,\"position\":2}\n\
                    {\"type\":2,\"payload\":\"\",\"position\":3}\n";
        let got = parse(text).unwrap();
        assert_eq!(
            got,
            vec![
                OwnedEntry::Segment(b"header".to_vec()),
                OwnedEntry::File {
                    name: b"./hurr.txt".to_vec(),
                    size: 20,
                    crc: Some(crc64(b"imma hurr til I derp")),
                },
                OwnedEntry::File {
                    name: b"dir/".to_vec(),
                    size: 0,
                    crc: None,
                },
                OwnedEntry::Segment(Vec::new()),
            ]
        );
    }

    #[test]
    fn name_raw_wins_and_escapes_decode() {
        // "caf\xe9" is not UTF-8; Go stores it in name_raw.
        let raw = base64::engine::general_purpose::STANDARD.encode(b"caf\xe9");
        let text = format!(
            "{{\"type\":1,\"name\":\"ignored\",\"name_raw\":\"{raw}\",\"payload\":null,\"position\":0}}\n\
             {{\"type\":1,\"name\":\"a\\u003cb\\u003e\\u0026\",\"payload\":null,\"position\":1}}\n"
        );
        let got = parse(&text).unwrap();
        assert_eq!(
            got[0],
            OwnedEntry::File {
                name: b"caf\xe9".to_vec(),
                size: 0,
                crc: None
            }
        );
        assert_eq!(
            got[1],
            OwnedEntry::File {
                name: b"a<b>&".to_vec(),
                size: 0,
                crc: None
            }
        );
        assert_eq!(display_name(b"caf\xe9"), "caf\\xe9");
    }

    #[test]
    fn no_trailing_newline_and_blank_lines() {
        let got =
            parse("\n{\"type\":2,\"payload\":\"AA==\"}\n\n{\"type\":2,\"payload\":null}").unwrap();
        assert_eq!(
            got,
            vec![OwnedEntry::Segment(vec![0]), OwnedEntry::Segment(vec![])]
        );
    }

    #[test]
    fn errors_name_the_line() {
        let ok = "{\"type\":2,\"payload\":\"\"}\n";
        let cases: Vec<(String, &str)> = vec![
            (
                format!("{ok}{{\"type\":2,\"payload\":\"\"\n"),
                "line 2: bad JSON",
            ),
            (
                format!("{ok}{{\"type\":3,\"payload\":null}}\n"),
                "line 2: unknown entry type 3",
            ),
            (
                format!("{ok}{{\"type\":2,\"payload\":\"!!!\"}}\n"),
                "line 2: bad base64 in `payload`",
            ),
            (
                format!("{ok}{{\"type\":1,\"name_raw\":\"%%\",\"payload\":null}}\n"),
                "line 2: bad base64 in `name_raw`",
            ),
            (
                format!("{ok}{{\"type\":1,\"name\":\"a\",\"size\":3,\"payload\":\"AAAA\"}}\n"),
                "line 2: CRC payload of a is 3 bytes, not 8",
            ),
            (
                format!("{ok}{{\"type\":1,\"name\":\"a\",\"size\":3,\"payload\":null}}\n"),
                "line 2: file a has size 3 but no CRC payload",
            ),
            (
                format!("{ok}{{\"type\":1,\"name\":\"a\",\"size\":-1,\"payload\":null}}\n"),
                "line 2: file a has negative size -1",
            ),
            (
                format!("{ok}{{\"type\":1,\"size\":1,\"payload\":\"AnSksavsa04=\"}}\n"),
                "line 2: file entry of size 1 has no name",
            ),
            (
                format!(
                    "{ok}{{\"type\":1,\"name\":\"./a/\",\"payload\":null}}\n{{\"type\":1,\"name\":\"a\",\"payload\":null}}\n"
                ),
                "line 3: duplicate path a",
            ),
        ];
        for (text, want) in cases {
            let err = parse(&text).unwrap_err();
            let msg = err.to_string();
            assert!(msg.starts_with(want), "{msg:?} should start with {want:?}");
        }
        // A huge CRC payload is rejected without decoding it.
        let big = "A".repeat(4000);
        let err = parse(&format!(
            "{{\"type\":1,\"name\":\"a\",\"size\":3,\"payload\":\"{big}\"}}\n"
        ))
        .unwrap_err();
        assert!(
            matches!(err, TarSplitError::CrcLength { line: 1, .. }),
            "{err}"
        );
    }

    #[test]
    fn gzip_errors() {
        let e = read_all(&b""[..]).unwrap_err();
        assert!(matches!(e, TarSplitError::Gzip { line: 1, .. }), "{e}");
        let e = read_all(&b"{\"type\":2}\n"[..]).unwrap_err();
        assert!(matches!(e, TarSplitError::Gzip { line: 1, .. }), "{e}");
        let mut g = gz(b"{\"type\":2,\"payload\":\"\"}\n{\"type\":2,\"payload\":\"\"}\n");
        g.truncate(g.len() - 6);
        let e = read_all(&g[..]).unwrap_err();
        assert!(matches!(e, TarSplitError::Gzip { .. }), "{e}");
        // After an error the reader stays finished.
        let mut r = Reader::new(&b"junk"[..]);
        assert!(r.next_entry().is_err());
        assert!(matches!(r.next_entry(), Ok(None)));
    }

    #[test]
    fn long_lines_are_bounded() {
        // A gzip bomb of one endless line stops at the limit.
        let mut e = GzEncoder::new(Vec::new(), Compression::fast());
        let chunk = vec![b' '; 1 << 20];
        for _ in 0..3 {
            e.write_all(&chunk).unwrap();
        }
        let g = e.finish().unwrap();
        let mut r = Reader::new(&g[..]).with_max_line(2 << 20);
        let err = r.next_entry().unwrap_err();
        assert!(
            matches!(err, TarSplitError::LineTooLong { line: 1, max } if max == 2 << 20),
            "{err}"
        );
    }

    #[test]
    fn multi_member_gzip() {
        let mut g = gz(b"{\"type\":2,\"payload\":\"AQ==\"}\n");
        g.extend(gz(b"{\"type\":2,\"payload\":\"Ag==\"}\n"));
        assert_eq!(
            read_all(&g[..]).unwrap(),
            vec![OwnedEntry::Segment(vec![1]), OwnedEntry::Segment(vec![2])]
        );
    }

    #[test]
    fn go_clean_matches_filepath_clean() {
        for (i, o) in [
            ("", "."),
            (".", "."),
            ("./", "."),
            ("a/", "a"),
            ("./a//b/./c/", "a/b/c"),
            ("/a/../..", "/"),
            ("a/../../b", "../b"),
            ("../..", "../.."),
            ("/", "/"),
            ("a/b/..", "a"),
        ] {
            assert_eq!(go_clean(i.as_bytes()), o.as_bytes(), "{i:?}");
        }
    }
}
