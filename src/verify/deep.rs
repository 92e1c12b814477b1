//! Deep verification of one layer: exact tar stream reassembly, as
//! `docker save` does it (moby `daemon/internal/layer/layer_store.go`
//! `getTarStream`, vbatts/tar-split `tar/asm/assemble.go`).
//!
//! The layer's tar stream is rebuilt the way Docker's `TarStream` does it —
//! Segments from `tar-split.json.gz`, file bodies from the layer's own
//! `diff/` — and fed to sha256, while each body is also checked
//! against its CRC-64. No overlay is mounted. [`verify_layer`] only hashes;
//! [`stream_layer`] also writes the stream to an `io::Write` as it is hashed
//! (`dockgc save`), on the same code path: the sink is a type parameter, and
//! `verify_layer` passes `io::Sink`, whose writes compile to nothing.
//!
//! Files are resolved inside `diff/` one component at a time with
//! `openat(O_NOFOLLOW)`, so no symlink is ever followed and no `..` can leave
//! the root; the final component is `fstatat`-ed first and only opened when it
//! is a regular file (a device node is never opened).
//!
//! Outcomes, in order of precedence:
//! * `Damaged`: the first file that is missing, of the wrong type or length,
//!   or whose CRC differs; after it, the rest of the tar-split is still walked
//!   but only `fstatat`-ed (cheap) to count further missing/wrong files, and
//!   nothing more is hashed. Or every file matched and the stream still
//!   hashes to something else than the diff ID.
//! * `TarSplit`: `tar-split.json.gz` is missing, unreadable gzip or malformed.
//! * `Unverifiable`: Docker's own reassembly would read something else
//!   than this layer's `diff/`, or produce a different stream. Hashing stops
//!   at the first such entry; later bodies are still CRC-checked so real
//!   damage is found. See [`verify_layer`] for the cases.
use crate::ids::{ChainId, DiffId, hex};
use crate::verify::layerfiles::metacopy;
pub(crate) use crate::verify::layerfiles::{LayerFiles, Problem, clean_beneath};
use crate::verify::tarsplit::{self, Entry, FileEntry, display_name};
use sha2::{Digest as _, Sha256};
use std::cell::RefCell;
use std::fs::File;
use std::io::{self, ErrorKind, Read, Write};
use std::os::fd::AsFd;
use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};

#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
#[serde(tag = "outcome", rename_all = "kebab-case")]
pub enum Outcome {
    /// The rebuilt stream hashes to the layer's diff ID.
    Verified,
    /// A file is missing, truncated, changed or of the wrong type, or the stream
    /// hashes to something else. `file` is the tar entry name when one is at fault.
    Damaged {
        file: Option<String>,
        message: String,
    },
    /// `tar-split.json.gz` is missing or malformed.
    TarSplit { message: String },
    /// The layer cannot be checked offline; never counted as passed.
    Unverifiable { reason: String },
}

#[derive(Debug, Clone, serde::Serialize)]
pub struct LayerCheck {
    pub chain_id: ChainId,
    pub outcome: Outcome,
    /// Bytes fed to sha256 (the whole stream as far as it got).
    pub bytes: u64,
    /// File entries with a body that were read and CRC-checked.
    pub files: u64,
}

/// Size of the reusable read buffer (one per thread).
pub const BUF_SIZE: usize = 1 << 20;

/// sha256 and CRC are run over the buffer in slices of this size, so the
/// second pass reads from L1/L2 instead of memory.
const CHUNK: usize = 64 << 10;

/// Progress is published in steps of this many bytes (fewer shared writes).
const PROGRESS_STEP: u64 = 4 << 20;

thread_local! {
    static BUF: RefCell<Vec<u8>> = const { RefCell::new(Vec::new()) };
}

/// Verifies one layer. `layer_dir` is `layerdb/sha256/<chain hex>`, `diff_dir`
/// is `<home>/<cache-id>/diff`. `hashed` is bumped as bytes are hashed, for progress.
///
/// `hashed` counts every byte read for the check: the stream bytes fed to
/// sha256 and, after an unverifiable entry, file bodies read for their CRC
/// only. `LayerCheck::bytes` counts the sha256 bytes only.
///
/// Unverifiable (never counted as passed), each naming the entry:
/// * a GNU sparse entry (typeflag `S` in its header, or `GNU.sparse.*` PAX
///   records before it): tar-split records the logical size, so Docker's
///   rebuilt stream differs from the original;
/// * a size > 0 entry whose header type carries no data (hard link, symlink,
///   device, directory, FIFO): Docker would copy some other file's bytes;
/// * a name that leaves the layer root through `..`, or whose path goes
///   through a symlink inside the layer (Docker follows it the host way);
/// * a file whose length or CRC differs but that carries an overlay
///   `metacopy` xattr (`trusted.` or `user.`): a metadata-only copy-up whose
///   data is in a lower layer;
/// * a missing file in a BuildKit layer (cache-id not 64 hex: its `diff/` is
///   the build's upper directory), under a directory with an overlay
///   `redirect` xattr, or under `.wh..wh.plnk/` (never extracted by the naive
///   diff path);
/// * a file that cannot be read for lack of permission.
pub fn verify_layer(
    chain_id: ChainId,
    diff_id: &DiffId,
    layer_dir: &Path,
    diff_dir: &Path,
    hashed: &AtomicU64,
) -> LayerCheck {
    match stream_layer(
        chain_id,
        diff_id,
        layer_dir,
        diff_dir,
        hashed,
        &mut io::sink(),
    ) {
        Ok(c) => c,
        Err(_) => unreachable!("io::Sink never fails"),
    }
}

/// [`verify_layer`], also writing the rebuilt stream to `sink` as it is
/// hashed. Only a stream that is still whole goes to the sink: after the
/// first damaged or unverifiable entry nothing more is written (the outcome
/// then is not `Verified`, and the caller must discard what it got). So
/// when the outcome is `Verified`, `sink` received exactly the
/// `LayerCheck::bytes` bytes whose sha256 is the diff ID — but that is only
/// known at the end: the caller must not use the output before.
///
/// `Err` is an error of the sink (the first one; nothing more is read after
/// it), never of the layer.
pub fn stream_layer<W: Write>(
    chain_id: ChainId,
    diff_id: &DiffId,
    layer_dir: &Path,
    diff_dir: &Path,
    hashed: &AtomicU64,
    sink: &mut W,
) -> io::Result<LayerCheck> {
    BUF.with_borrow_mut(|buf| {
        if buf.len() < BUF_SIZE {
            buf.resize(BUF_SIZE, 0);
        }
        let mut v = Verifier::new(layer_dir, diff_dir, hashed, buf, sink);
        let outcome = v.run(diff_id);
        v.flush_progress();
        if let Some(e) = v.sink_err.take() {
            return Err(e);
        }
        Ok(LayerCheck {
            chain_id,
            outcome,
            bytes: v.bytes,
            files: v.files,
        })
    })
}

/// Opens `<layer_dir>/tar-split.json.gz`, or the outcome that its absence
/// or unreadability means (the same messages wherever it is opened).
pub(crate) fn open_tar_split(layer_dir: &Path) -> Result<File, Outcome> {
    match File::open(layer_dir.join("tar-split.json.gz")) {
        Ok(f) => Ok(f),
        Err(e) if e.kind() == ErrorKind::NotFound => Err(Outcome::TarSplit {
            message: "tar-split.json.gz is missing".into(),
        }),
        Err(e) if e.kind() == ErrorKind::PermissionDenied => Err(Outcome::Unverifiable {
            reason: format!("cannot read tar-split.json.gz: {e}"),
        }),
        Err(e) => Err(Outcome::TarSplit {
            message: format!("cannot open tar-split.json.gz: {e}"),
        }),
    }
}

/// The length of the stream [`stream_layer`] rebuilds, from the tar-split
/// alone (Segment lengths plus recorded file sizes): what a `Verified`
/// stream is long, known before its files are read. A tar-split that cannot
/// be read is the same `TarSplit` (or `Unverifiable`) outcome
/// [`verify_layer`] gives.
pub fn stream_len(layer_dir: &Path) -> Result<u64, Outcome> {
    let mut reader = tarsplit::Reader::new(open_tar_split(layer_dir)?);
    let (mut len, mut entries) = (0u64, 0u64);
    loop {
        match reader.next_entry() {
            Ok(Some(Entry::Segment(b))) => len += b.len() as u64,
            Ok(Some(Entry::File(f))) => len += f.size,
            Ok(None) => break,
            Err(e) => {
                return Err(Outcome::TarSplit {
                    message: format!("tar-split.json.gz {e}"),
                });
            }
        }
        entries += 1;
    }
    if entries == 0 {
        return Err(Outcome::TarSplit {
            message: "tar-split.json.gz has no entries".into(),
        });
    }
    Ok(len)
}

/// How much work a file entry still gets.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Mode {
    /// Body into sha256 and CRC.
    Full,
    /// After an unverifiable entry: CRC only (the stream hash is moot).
    CrcOnly,
    /// After damage: existence, type and length only.
    StatOnly,
}

struct Verifier<'a, W: Write> {
    layer_dir: &'a Path,
    hashed: &'a AtomicU64,
    buf: &'a mut [u8],
    sink: &'a mut W,
    /// The sink's first error; the run stops at it.
    sink_err: Option<io::Error>,
    sha: Sha256,
    crc: crc_fast::Digest,
    mode: Mode,
    bytes: u64,
    files: u64,
    unreported: u64,
    diff_files: LayerFiles<'a>,
    /// Last (up to) 512 Segment bytes since the previous File: its header.
    tail: Vec<u8>,
    /// A `GNU.sparse.*` PAX record was seen since the previous File.
    pax_sparse: bool,
    damaged: Option<(String, String)>,
    more_damaged: u64,
    unverifiable: Option<String>,
    more_unverifiable: u64,
}

impl<'a, W: Write> Verifier<'a, W> {
    fn new(
        layer_dir: &'a Path,
        diff_dir: &'a Path,
        hashed: &'a AtomicU64,
        buf: &'a mut [u8],
        sink: &'a mut W,
    ) -> Self {
        Verifier {
            layer_dir,
            hashed,
            buf,
            sink,
            sink_err: None,
            sha: Sha256::new(),
            crc: crc_fast::Digest::new(crc_fast::CrcAlgorithm::Crc64GoIso),
            mode: Mode::Full,
            bytes: 0,
            files: 0,
            unreported: 0,
            diff_files: LayerFiles::new(layer_dir, diff_dir),
            tail: Vec::with_capacity(1024),
            pax_sparse: false,
            damaged: None,
            more_damaged: 0,
            unverifiable: None,
            more_unverifiable: 0,
        }
    }

    /// Passes stream bytes on to the sink; false (and the error kept) when
    /// it fails.
    #[inline]
    fn emit(&mut self, b: &[u8]) -> bool {
        match self.sink.write_all(b) {
            Ok(()) => true,
            Err(e) => {
                self.sink_err = Some(e);
                false
            }
        }
    }

    fn run(&mut self, diff_id: &DiffId) -> Outcome {
        let f = match open_tar_split(self.layer_dir) {
            Ok(f) => f,
            Err(o) => return o,
        };
        let mut reader = tarsplit::Reader::new(f);
        let mut entries = 0u64;
        loop {
            let entry = match reader.next_entry() {
                Ok(Some(e)) => e,
                Ok(None) => break,
                // Damage already found is the more useful answer.
                Err(_) if self.damaged.is_some() => break,
                Err(e) => {
                    return Outcome::TarSplit {
                        message: format!("tar-split.json.gz {e}"),
                    };
                }
            };
            entries += 1;
            match entry {
                Entry::Segment(b) => self.segment(b),
                Entry::File(f) => {
                    if f.size > 0 {
                        self.file(&f);
                    }
                    self.tail.clear();
                    self.pax_sparse = false;
                }
            }
            if self.sink_err.is_some() {
                // The outcome is moot: the caller reports the sink's error.
                return Outcome::Verified;
            }
        }

        if let Some((file, mut message)) = self.damaged.take() {
            if self.more_damaged > 0 {
                message.push_str(&format!(
                    "; {} more damaged file{} (missing, wrong type or wrong length; \
                     contents after the first damage were not read)",
                    self.more_damaged,
                    if self.more_damaged == 1 { "" } else { "s" }
                ));
            }
            return Outcome::Damaged {
                file: Some(file),
                message,
            };
        }
        if let Some(mut reason) = self.unverifiable.take() {
            if self.more_unverifiable > 0 {
                reason.push_str(&format!(
                    " (and {} more such entr{})",
                    self.more_unverifiable,
                    if self.more_unverifiable == 1 {
                        "y"
                    } else {
                        "ies"
                    }
                ));
            }
            return Outcome::Unverifiable { reason };
        }
        if entries == 0 {
            return Outcome::TarSplit {
                message: "tar-split.json.gz has no entries".into(),
            };
        }
        let sum: [u8; 32] = std::mem::take(&mut self.sha).finalize().into();
        let got = hex(&sum);
        if got == diff_id.hex() {
            Outcome::Verified
        } else {
            Outcome::Damaged {
                file: None,
                message: format!(
                    "stream hashes to sha256:{got}, not the diff ID {diff_id} \
                     (all {} file bodies match their CRC: the tar headers in \
                     tar-split.json.gz or the diff ID changed)",
                    self.files
                ),
            }
        }
    }

    fn segment(&mut self, b: &[u8]) {
        if self.mode == Mode::Full {
            self.sha.update(b);
            if !self.emit(b) {
                return;
            }
            self.bytes += b.len() as u64;
            self.progress(b.len() as u64);
        }
        if b.len() >= 512 {
            self.tail.clear();
            self.tail.extend_from_slice(&b[b.len() - 512..]);
        } else {
            self.tail.extend_from_slice(b);
            if self.tail.len() > 512 {
                self.tail.drain(..self.tail.len() - 512);
            }
        }
        if has_sparse_record(b) {
            self.pax_sparse = true;
        }
    }

    fn progress(&mut self, n: u64) {
        self.unreported += n;
        if self.unreported >= PROGRESS_STEP {
            self.flush_progress();
        }
    }

    fn flush_progress(&mut self) {
        if self.unreported > 0 {
            self.hashed.fetch_add(self.unreported, Ordering::Relaxed);
            self.unreported = 0;
        }
    }

    /// A File entry with a body.
    fn file(&mut self, f: &FileEntry<'_>) {
        let problem = match self.header_problem(f.size) {
            Some(p) => Some(p),
            None => self.check_body(f),
        };
        match problem {
            None => {}
            Some(Problem::Damaged(msg)) => {
                if self.damaged.is_none() {
                    self.damaged = Some((display_name(f.name), msg));
                } else {
                    self.more_damaged += 1;
                }
                self.mode = Mode::StatOnly;
            }
            Some(Problem::Unverifiable(why)) => {
                if self.unverifiable.is_none() {
                    self.unverifiable = Some(format!("{}: {why}", display_name(f.name)));
                } else {
                    self.more_unverifiable += 1;
                }
                if self.mode == Mode::Full {
                    self.mode = Mode::CrcOnly;
                }
            }
        }
    }

    /// The entry's own tar header (the last 512 Segment bytes before it)
    /// says its body cannot be rebuilt from a plain file.
    fn header_problem(&self, size: u64) -> Option<Problem> {
        if self.pax_sparse {
            return Some(Problem::Unverifiable(
                "GNU sparse file (PAX GNU.sparse records): tar-split keeps the \
                 logical size, Docker's rebuilt stream differs"
                    .into(),
            ));
        }
        let h: &[u8; 512] = self.tail.as_slice().try_into().ok()?;
        if !header_checksum_ok(h) {
            return None;
        }
        let kind = match h[156] {
            b'S' => {
                return Some(Problem::Unverifiable(
                    "GNU sparse file (typeflag S): tar-split keeps the logical \
                     size, Docker's rebuilt stream differs"
                        .into(),
                ));
            }
            b'1' => "hard link",
            b'2' => "symlink",
            b'3' => "character device",
            b'4' => "block device",
            b'5' => "directory",
            b'6' => "FIFO",
            _ => return None,
        };
        Some(Problem::Unverifiable(format!(
            "tar {kind} entry with header size {size}: it has no data in the \
             archive, Docker would copy a file's bytes in its place"
        )))
    }

    fn check_body(&mut self, f: &FileEntry<'_>) -> Option<Problem> {
        let fd = match self.diff_files.open_body(f.name, f.size) {
            Ok(fd) => fd,
            Err(p) => return Some(p),
        };
        if self.mode == Mode::StatOnly {
            return None;
        }
        let want = f.crc.unwrap_or(0);
        let mut file = File::from(fd);
        if f.size >= 8 << 20 {
            // Only a hint for read-ahead: the read is right without it.
            let _ = rustix::fs::fadvise(&file, 0, None, rustix::fs::Advice::Sequential);
        }
        self.crc.reset();
        let hash = self.mode == Mode::Full;
        let mut left = f.size;
        while left > 0 {
            let cap = self
                .buf
                .len()
                .min(usize::try_from(left).unwrap_or(usize::MAX));
            let n = match file.read(&mut self.buf[..cap]) {
                Ok(0) => {
                    return Some(Problem::Damaged(format!(
                        "truncated while being read: {} of {} bytes",
                        f.size - left,
                        f.size
                    )));
                }
                Ok(n) => n,
                Err(e) if e.kind() == ErrorKind::Interrupted => continue,
                Err(e) => return Some(Problem::Damaged(format!("read error: {e}"))),
            };
            for c in self.buf[..n].chunks(CHUNK) {
                if hash {
                    self.sha.update(c);
                }
                self.crc.update(c);
            }
            if hash {
                if let Err(e) = self.sink.write_all(&self.buf[..n]) {
                    self.sink_err = Some(e);
                    return None;
                }
                self.bytes += n as u64;
            }
            self.progress(n as u64);
            left -= n as u64;
        }
        self.files += 1;
        if self.crc.finalize() != want {
            if let Some(p) = metacopy(file.as_fd()) {
                return Some(p);
            }
            return Some(Problem::Damaged("content differs (CRC)".into()));
        }
        None
    }
}

/// The header checksum (octal at 148..156, computed with that field as
/// spaces) matches, unsigned or signed as Go accepts.
fn header_checksum_ok(h: &[u8; 512]) -> bool {
    let field = &h[148..156];
    let digits = field
        .iter()
        .skip_while(|&&c| c == b' ' || c == 0)
        .take_while(|&&c| (b'0'..=b'7').contains(&c));
    let mut want: i64 = 0;
    let mut any = false;
    for &c in digits {
        want = want.saturating_mul(8).saturating_add(i64::from(c - b'0'));
        any = true;
    }
    if !any {
        return false;
    }
    // Plain sums over the block (vectorized), then the field swapped for spaces.
    let unsigned: i64 = h.iter().map(|&b| i64::from(b)).sum::<i64>()
        - field.iter().map(|&b| i64::from(b)).sum::<i64>()
        + 8 * 32;
    if want == unsigned {
        return true;
    }
    let signed: i64 = h.iter().map(|&b| i64::from(b as i8)).sum::<i64>()
        - field.iter().map(|&b| i64::from(b as i8)).sum::<i64>()
        + 8 * 32;
    want == signed
}

/// A PAX record `<len> GNU.sparse.<key>=...` in raw Segment bytes.
fn has_sparse_record(b: &[u8]) -> bool {
    const KEY: &[u8] = b" GNU.sparse.";
    let mut from = 0;
    while let Some(off) = find(&b[from..], KEY) {
        let at = from + off;
        if at >= 1 && b[at - 1].is_ascii_digit() {
            return true;
        }
        from = at + 1;
    }
    false
}

/// First position of `needle` in `hay` (memchr's vectorized `memmem`).
fn find(hay: &[u8], needle: &[u8]) -> Option<usize> {
    memchr::memmem::find(hay, needle)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::synth::{SynthSpec, generate};
    use crate::verify::tarsplit::{OwnedEntry, read_all};
    use base64::Engine as _;
    use flate2::Compression;
    use flate2::write::GzEncoder;
    use std::ffi::CStr;
    use std::fs;
    use std::io::Write;
    use std::os::unix::ffi::OsStrExt;
    use std::path::PathBuf;

    struct Layer {
        chain: ChainId,
        diff: DiffId,
        db: PathBuf,
        data: PathBuf,
    }

    fn layers(root: &Path) -> Vec<Layer> {
        let db = root.join("image/overlay2/layerdb/sha256");
        let mut out = Vec::new();
        for e in fs::read_dir(&db).unwrap() {
            let e = e.unwrap();
            let name = e.file_name().to_string_lossy().into_owned();
            let Some(chain) = ChainId::from_hex(&name) else {
                continue;
            };
            let dir = e.path();
            let diff = DiffId::parse(fs::read_to_string(dir.join("diff")).unwrap().trim()).unwrap();
            let cache = fs::read_to_string(dir.join("cache-id")).unwrap();
            out.push(Layer {
                chain,
                diff,
                data: root.join("overlay2").join(cache.trim()).join("diff"),
                db: dir,
            });
        }
        out.sort_by_key(|l| l.chain);
        out
    }

    fn check(l: &Layer) -> LayerCheck {
        verify_layer(l.chain, &l.diff, &l.db, &l.data, &AtomicU64::new(0))
    }

    fn demo() -> (tempfile::TempDir, Vec<Layer>) {
        let t = tempfile::tempdir().unwrap();
        generate(t.path(), &SynthSpec::demo()).unwrap();
        let ls = layers(t.path());
        assert!(ls.len() >= 5);
        (t, ls)
    }

    /// Bodies (name, size) of a layer's tar-split, in order.
    fn bodies(l: &Layer) -> Vec<(String, u64)> {
        read_all(File::open(l.db.join("tar-split.json.gz")).unwrap())
            .unwrap()
            .into_iter()
            .filter_map(|e| match e {
                OwnedEntry::File { name, size, .. } if size > 0 => {
                    Some((String::from_utf8(name).unwrap(), size))
                }
                _ => None,
            })
            .collect()
    }

    /// A layer with a file body and its name (a file not hard-linked).
    fn victim(ls: &[Layer]) -> (&Layer, String) {
        for l in ls {
            if let Some((n, _)) = bodies(l).into_iter().find(|(n, _)| n.ends_with("f1.bin")) {
                return (l, n);
            }
        }
        panic!("no layer with f1.bin");
    }

    fn damaged(c: &LayerCheck) -> (Option<String>, String) {
        match &c.outcome {
            Outcome::Damaged { file, message } => (file.clone(), message.clone()),
            o => panic!("expected Damaged, got {o:?}"),
        }
    }

    #[test]
    fn generated_root_verifies() {
        let (_t, ls) = demo();
        let hashed = AtomicU64::new(0);
        let mut total = 0;
        for l in &ls {
            let c = verify_layer(l.chain, &l.diff, &l.db, &l.data, &hashed);
            assert_eq!(c.outcome, Outcome::Verified, "layer {}", l.chain);
            assert!(c.files >= 1);
            total += c.bytes;
        }
        assert_eq!(hashed.load(Ordering::Relaxed), total);
    }

    #[test]
    fn stream_layer_writes_exactly_the_hashed_stream() {
        let (_t, ls) = demo();
        for l in &ls {
            let mut out = Vec::new();
            let c = stream_layer(
                l.chain,
                &l.diff,
                &l.db,
                &l.data,
                &AtomicU64::new(0),
                &mut out,
            )
            .unwrap();
            assert_eq!(c.outcome, Outcome::Verified);
            assert_eq!(out.len() as u64, c.bytes);
            assert_eq!(stream_len(&l.db).ok(), Some(c.bytes));
            let got = DiffId(crate::ids::Digest::of_bytes(&out));
            assert_eq!(got, l.diff, "layer {}", l.chain);
            // The sink gets what a tar reader reads back as the layer.
            let n = tar::Archive::new(out.as_slice()).entries().unwrap().count();
            assert!(n >= 1);
        }
    }

    #[test]
    fn stream_layer_stops_at_damage_and_at_sink_errors() {
        let (_t, ls) = demo();
        let (l, name) = victim(&ls);
        let full = stream_len(&l.db).unwrap();
        let p = l.data.join(&name);
        let mut body = fs::read(&p).unwrap();
        body[0] ^= 1;
        fs::write(&p, &body).unwrap();
        let mut out = Vec::new();
        let c = stream_layer(
            l.chain,
            &l.diff,
            &l.db,
            &l.data,
            &AtomicU64::new(0),
            &mut out,
        )
        .unwrap();
        assert!(matches!(c.outcome, Outcome::Damaged { .. }));
        assert!(
            (out.len() as u64) < full,
            "nothing after the damage is written"
        );

        struct Full(usize);
        impl Write for Full {
            fn write(&mut self, b: &[u8]) -> io::Result<usize> {
                if self.0 < b.len() {
                    return Err(io::Error::new(ErrorKind::StorageFull, "disk full"));
                }
                self.0 -= b.len();
                Ok(b.len())
            }
            fn flush(&mut self) -> io::Result<()> {
                Ok(())
            }
        }
        let other = ls.iter().find(|x| x.chain != l.chain).unwrap();
        let e = stream_layer(
            other.chain,
            &other.diff,
            &other.db,
            &other.data,
            &AtomicU64::new(0),
            &mut Full(700),
        )
        .unwrap_err();
        assert_eq!(e.kind(), ErrorKind::StorageFull);
    }

    #[test]
    fn stream_len_reports_tar_split_problems_as_verify_does() {
        let (_t, ls) = demo();
        let l = &ls[0];
        fs::remove_file(l.db.join("tar-split.json.gz")).unwrap();
        assert_eq!(
            stream_len(&l.db),
            Err(Outcome::TarSplit {
                message: "tar-split.json.gz is missing".into()
            })
        );
        assert_eq!(Err(check(l).outcome), stream_len(&l.db));
    }

    #[test]
    fn deleted_file_is_missing() {
        let (_t, ls) = demo();
        let (l, name) = victim(&ls);
        fs::remove_file(l.data.join(&name)).unwrap();
        let (file, msg) = damaged(&check(l));
        assert_eq!(file.as_deref(), Some(name.as_str()));
        assert_eq!(msg, "missing");
    }

    #[test]
    fn truncated_and_longer_files() {
        let (_t, ls) = demo();
        let (l, name) = victim(&ls);
        let p = l.data.join(&name);
        let body = fs::read(&p).unwrap();
        fs::write(&p, &body[..body.len() - 1]).unwrap();
        let (file, msg) = damaged(&check(l));
        assert_eq!(file.as_deref(), Some(name.as_str()));
        assert!(msg.starts_with("truncated:"), "{msg}");

        let mut longer = body.clone();
        longer.push(b'x');
        fs::write(&p, &longer).unwrap();
        let (file, msg) = damaged(&check(l));
        assert_eq!(file.as_deref(), Some(name.as_str()));
        assert!(msg.starts_with("longer than recorded:"), "{msg}");

        fs::write(&p, &body).unwrap();
        assert_eq!(check(l).outcome, Outcome::Verified);
    }

    #[test]
    fn flipped_byte_fails_the_crc() {
        let (_t, ls) = demo();
        let (l, name) = victim(&ls);
        let p = l.data.join(&name);
        let mut body = fs::read(&p).unwrap();
        let mid = body.len() / 2;
        body[mid] ^= 0x20;
        fs::write(&p, &body).unwrap();
        let (file, msg) = damaged(&check(l));
        assert_eq!(file.as_deref(), Some(name.as_str()));
        assert_eq!(msg, "content differs (CRC)");
    }

    #[test]
    fn directory_in_place_of_a_file() {
        let (_t, ls) = demo();
        let (l, name) = victim(&ls);
        let p = l.data.join(&name);
        fs::remove_file(&p).unwrap();
        fs::create_dir(&p).unwrap();
        let (file, msg) = damaged(&check(l));
        assert_eq!(file.as_deref(), Some(name.as_str()));
        assert_eq!(msg, "is a directory, not a regular file");
    }

    #[test]
    fn further_damage_is_counted() {
        let (_t, ls) = demo();
        let l = ls.iter().find(|l| bodies(l).len() >= 3).unwrap();
        let b = bodies(l);
        fs::remove_file(l.data.join(&b[1].0)).unwrap();
        fs::remove_file(l.data.join(&b[2].0)).unwrap();
        let (file, msg) = damaged(&check(l));
        assert_eq!(file.as_deref(), Some(b[1].0.as_str()));
        assert!(
            msg.starts_with("missing; 1 more damaged file (missing,"),
            "{msg}"
        );
    }

    fn rewrite_tar_split(l: &Layer, edit: impl FnOnce(&mut Vec<u8>)) {
        let p = l.db.join("tar-split.json.gz");
        let mut text = Vec::new();
        flate2::read::MultiGzDecoder::new(File::open(&p).unwrap())
            .read_to_end(&mut text)
            .unwrap();
        edit(&mut text);
        fs::write(&p, gz(&text)).unwrap();
    }

    fn gz(text: &[u8]) -> Vec<u8> {
        let mut e = GzEncoder::new(Vec::new(), Compression::default());
        e.write_all(text).unwrap();
        e.finish().unwrap()
    }

    #[test]
    fn corrupt_segment_changes_the_stream_hash() {
        let (_t, ls) = demo();
        let l = &ls[0];
        // Change one byte of the first header's mtime field via the JSON text.
        rewrite_tar_split(l, |text| {
            let end = text.iter().position(|&c| c == b'\n').unwrap();
            let line: serde_json::Value = serde_json::from_slice(&text[..end]).unwrap();
            let b64 = line["payload"].as_str().unwrap();
            let mut seg = base64::engine::general_purpose::STANDARD
                .decode(b64)
                .unwrap();
            seg[140] ^= 1;
            let new = format!(
                "{{\"type\":2,\"payload\":\"{}\",\"position\":0}}",
                base64::engine::general_purpose::STANDARD.encode(&seg)
            );
            text.splice(..end, new.into_bytes());
        });
        let (file, msg) = damaged(&check(l));
        assert_eq!(file, None);
        assert!(msg.starts_with("stream hashes to sha256:"), "{msg}");
        assert!(
            msg.contains(&format!("not the diff ID {}", l.diff)),
            "{msg}"
        );
    }

    fn tar_split_error(c: &LayerCheck) -> String {
        match &c.outcome {
            Outcome::TarSplit { message } => message.clone(),
            o => panic!("expected TarSplit, got {o:?}"),
        }
    }

    #[test]
    fn tar_split_problems() {
        let (_t, ls) = demo();
        let l = &ls[0];
        let p = l.db.join("tar-split.json.gz");
        let good = fs::read(&p).unwrap();

        fs::remove_file(&p).unwrap();
        assert_eq!(tar_split_error(&check(l)), "tar-split.json.gz is missing");

        fs::write(&p, &good[..good.len() / 2]).unwrap();
        let m = tar_split_error(&check(l));
        assert!(m.contains("not valid gzip data"), "{m}");

        fs::write(&p, b"plain text").unwrap();
        let m = tar_split_error(&check(l));
        assert!(
            m.starts_with("tar-split.json.gz line 1: not valid gzip data"),
            "{m}"
        );

        fs::write(&p, gz(b"{\"type\":2,\"payload\":\"\"}\n{\"type\":2,\n")).unwrap();
        let m = tar_split_error(&check(l));
        assert!(m.starts_with("tar-split.json.gz line 2: bad JSON"), "{m}");

        fs::write(&p, gz(b"{\"type\":2,\"payload\":\"A*==\"}\n")).unwrap();
        let m = tar_split_error(&check(l));
        assert!(
            m.starts_with("tar-split.json.gz line 1: bad base64 in `payload`"),
            "{m}"
        );

        fs::write(
            &p,
            gz(b"{\"type\":1,\"name\":\"x\",\"size\":5,\"payload\":\"AAAAAAA=\"}\n"),
        )
        .unwrap();
        let m = tar_split_error(&check(l));
        assert_eq!(
            m,
            "tar-split.json.gz line 1: CRC payload of x is 5 bytes, not 8"
        );

        fs::write(&p, gz(b"")).unwrap();
        assert_eq!(
            tar_split_error(&check(l)),
            "tar-split.json.gz has no entries"
        );
    }

    // ---- hand-made layers -------------------------------------------------

    /// A layer written by hand: (name bytes, body) regular files after a
    /// directory entry per parent; returns (layer_dir, diff_dir, diff id).
    struct Made {
        _t: tempfile::TempDir,
        db: PathBuf,
        data: PathBuf,
        diff: DiffId,
    }

    enum E<'a> {
        Dir(&'a [u8]),
        File(&'a [u8], &'a [u8]),
        /// A file entry with a raw header typeflag, size and no data.
        HeaderOnly(&'a [u8], u8, u64),
        /// Raw bytes (e.g. a PAX header) glued before the next header.
        Raw(Vec<u8>),
    }

    fn header(name: &[u8], flag: u8, size: u64) -> [u8; 512] {
        crate::tarfmt::Header::new(name, flag)
            .mode(0o644)
            .size(size)
            .mtime(1_600_000_000)
            .encode()
    }

    fn make(entries: &[E<'_>], cache_id: &str) -> Made {
        let t = tempfile::tempdir().unwrap();
        let db = t.path().join("layer");
        let data = t.path().join(cache_id).join("diff");
        fs::create_dir_all(&db).unwrap();
        fs::create_dir_all(&data).unwrap();
        fs::write(db.join("cache-id"), cache_id).unwrap();
        let mut sha = Sha256::new();
        let mut json = String::new();
        let mut pending: Vec<u8> = Vec::new();
        let b64 = |b: &[u8]| base64::engine::general_purpose::STANDARD.encode(b);
        let line =
            |json: &mut String, pending: &mut Vec<u8>, file: Option<(&[u8], u64, Option<u64>)>| {
                json.push_str(&format!(
                    "{{\"type\":2,\"payload\":\"{}\"}}\n",
                    b64(pending)
                ));
                pending.clear();
                if let Some((name, size, crc)) = file {
                    let name_part = match std::str::from_utf8(name) {
                        Ok(s) => format!("\"name\":{}", serde_json::to_string(s).unwrap()),
                        Err(_) => format!("\"name_raw\":\"{}\"", b64(name)),
                    };
                    let payload = match crc {
                        Some(c) => format!("\"{}\"", b64(&c.to_be_bytes())),
                        None => "null".into(),
                    };
                    let size = if size > 0 {
                        format!(",\"size\":{size}")
                    } else {
                        String::new()
                    };
                    json.push_str(&format!(
                        "{{\"type\":1,{name_part}{size},\"payload\":{payload}}}\n"
                    ));
                }
            };
        for e in entries {
            match e {
                E::Raw(b) => {
                    sha.update(b);
                    pending.extend_from_slice(b);
                }
                E::Dir(n) => {
                    let h = header(n, b'5', 0);
                    sha.update(h);
                    pending.extend_from_slice(&h);
                    line(&mut json, &mut pending, Some((n, 0, None)));
                    fs::create_dir_all(data.join(std::ffi::OsStr::from_bytes(n))).unwrap();
                }
                E::File(n, body) => {
                    let h = header(n, b'0', body.len() as u64);
                    sha.update(h);
                    pending.extend_from_slice(&h);
                    line(
                        &mut json,
                        &mut pending,
                        Some((n, body.len() as u64, Some(tarsplit::crc64(body)))),
                    );
                    sha.update(body);
                    let pad = (512 - body.len() % 512) % 512;
                    sha.update(vec![0u8; pad]);
                    pending.extend(std::iter::repeat_n(0, pad));
                    let rel = n.strip_prefix(b"/").unwrap_or(n);
                    let p = data.join(std::ffi::OsStr::from_bytes(rel));
                    if !n.windows(2).any(|w| w == b"..") {
                        fs::write(p, body).unwrap();
                    }
                }
                E::HeaderOnly(n, flag, size) => {
                    let h = header(n, *flag, *size);
                    sha.update(h);
                    pending.extend_from_slice(&h);
                    line(
                        &mut json,
                        &mut pending,
                        Some((n, *size, Some(tarsplit::crc64(b"")))),
                    );
                }
            }
        }
        sha.update([0u8; 1024]);
        pending.extend_from_slice(&[0; 1024]);
        line(&mut json, &mut pending, None);
        fs::write(db.join("tar-split.json.gz"), gz(json.as_bytes())).unwrap();
        let diff = DiffId(crate::ids::Digest::from_bytes(sha.finalize().into()));
        Made {
            _t: t,
            db,
            data,
            diff,
        }
    }

    const PULLED: &str = "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef";
    const BUILDKIT: &str = "k3j5q8x1m2n4p6r7s9t0u1v2w";

    fn run(m: &Made) -> Outcome {
        let chain = ChainId(m.diff.0);
        verify_layer(chain, &m.diff, &m.db, &m.data, &AtomicU64::new(0)).outcome
    }

    fn unverifiable(o: Outcome) -> String {
        match o {
            Outcome::Unverifiable { reason } => reason,
            o => panic!("expected Unverifiable, got {o:?}"),
        }
    }

    #[test]
    fn hand_made_layer_verifies_with_non_utf8_names() {
        let m = make(
            &[
                E::Dir(b"d/"),
                E::File(b"d/caf\xe9.txt", b"imma hurr til I derp"),
                E::File(b"./d/x<y>&z", &[7u8; 1500]),
                E::File(b"/abs", b"rooted names are joined below the root"),
            ],
            PULLED,
        );
        assert_eq!(run(&m), Outcome::Verified);
        fs::write(
            m.data.join(std::ffi::OsStr::from_bytes(b"d/caf\xe9.txt")),
            b"imma hurr til I derP",
        )
        .unwrap();
        match run(&m) {
            Outcome::Damaged { file, message } => {
                assert_eq!(file.as_deref(), Some("d/caf\\xe9.txt"));
                assert_eq!(message, "content differs (CRC)");
            }
            o => panic!("{o:?}"),
        }
    }

    #[test]
    fn escaping_name_is_unverifiable() {
        let m = make(&[E::File(b"a/../../etc/passwd", b"root:x:0:0")], PULLED);
        let r = unverifiable(run(&m));
        assert!(
            r.starts_with("a/../../etc/passwd: name leaves the layer root"),
            "{r}"
        );
    }

    fn set_xattr(p: &Path, name: &CStr, value: &[u8]) -> bool {
        rustix::fs::setxattr(p, name, value, rustix::fs::XattrFlags::empty()).is_ok()
    }

    #[test]
    fn metacopy_file_is_unverifiable() {
        let m = make(&[E::Dir(b"d/"), E::File(b"d/big", &[1u8; 4096])], BUILDKIT);
        let p = m.data.join("d/big");
        fs::write(&p, b"").unwrap();
        if !set_xattr(&p, c"user.overlay.metacopy", b"") {
            eprintln!("SKIPPED: filesystem without user xattrs");
            return;
        }
        let r = unverifiable(run(&m));
        assert!(r.starts_with("d/big: overlay metacopy file"), "{r}");
        // Same size, no data (sparse): CRC differs, still unverifiable.
        File::options()
            .write(true)
            .open(&p)
            .unwrap()
            .set_len(4096)
            .unwrap();
        let r = unverifiable(run(&m));
        assert!(r.starts_with("d/big: overlay metacopy file"), "{r}");
    }

    #[test]
    fn missing_file_in_buildkit_layer_or_under_redirect() {
        let m = make(&[E::Dir(b"d/"), E::File(b"d/f", b"data")], BUILDKIT);
        fs::remove_file(m.data.join("d/f")).unwrap();
        let r = unverifiable(run(&m));
        assert!(r.starts_with("d/f: missing from a BuildKit layer"), "{r}");

        let m = make(&[E::Dir(b"d/"), E::File(b"d/f", b"data")], PULLED);
        fs::remove_file(m.data.join("d/f")).unwrap();
        assert!(matches!(run(&m), Outcome::Damaged { .. }));
        if set_xattr(&m.data.join("d"), c"user.overlay.redirect", b"/old") {
            let r = unverifiable(run(&m));
            assert!(
                r.starts_with("d/f: missing; directory d has an overlay redirect"),
                "{r}"
            );
        }
    }

    #[test]
    fn symlinks_are_never_followed() {
        let m = make(
            &[
                E::Dir(b"d/"),
                E::File(b"d/f", b"data"),
                E::File(b"g", b"more"),
            ],
            PULLED,
        );
        let outside = m._t.path().join("outside");
        fs::create_dir(&outside).unwrap();
        fs::write(outside.join("f"), b"data").unwrap();
        fs::write(outside.join("g"), b"more").unwrap();
        // Final component a symlink: damaged.
        fs::remove_file(m.data.join("g")).unwrap();
        std::os::unix::fs::symlink(outside.join("g"), m.data.join("g")).unwrap();
        match run(&m) {
            Outcome::Damaged { file, message } => {
                assert_eq!(file.as_deref(), Some("g"));
                assert_eq!(message, "is a symlink, not a regular file");
            }
            o => panic!("{o:?}"),
        }
        // A directory component that is a symlink: unverifiable.
        fs::remove_file(m.data.join("g")).unwrap();
        fs::write(m.data.join("g"), b"more").unwrap();
        fs::remove_dir_all(m.data.join("d")).unwrap();
        std::os::unix::fs::symlink(&outside, m.data.join("d")).unwrap();
        let r = unverifiable(run(&m));
        assert!(r.starts_with("d/f: path component d is a symlink"), "{r}");
    }

    #[test]
    fn sparse_and_header_only_entries_are_unverifiable() {
        let m = make(&[E::HeaderOnly(b"sparse", b'S', 100)], PULLED);
        let r = unverifiable(run(&m));
        assert!(r.starts_with("sparse: GNU sparse file (typeflag S)"), "{r}");

        let m = make(
            &[E::File(b"t", b"x"), E::HeaderOnly(b"link", b'1', 1)],
            PULLED,
        );
        let r = unverifiable(run(&m));
        assert!(
            r.starts_with("link: tar hard link entry with header size 1"),
            "{r}"
        );

        let rec = b"22 GNU.sparse.major=1\n";
        let mut pax = header(b"PaxHeaders/s", b'x', rec.len() as u64).to_vec();
        pax.extend_from_slice(rec);
        pax.resize(1024, 0);
        let m = make(
            &[E::Raw(pax), E::File(b"s", b"abc"), E::File(b"later", b"zz")],
            PULLED,
        );
        fs::write(m.data.join("later"), b"zy").unwrap();
        // Damage after an unverifiable entry is still found.
        match run(&m) {
            Outcome::Damaged { file, message } => {
                assert_eq!(file.as_deref(), Some("later"));
                assert_eq!(message, "content differs (CRC)");
            }
            o => panic!("{o:?}"),
        }
        fs::write(m.data.join("later"), b"zz").unwrap();
        let r = unverifiable(run(&m));
        assert!(r.starts_with("s: GNU sparse file (PAX"), "{r}");
    }

    #[test]
    fn character_device_whiteout_in_place_of_a_file() {
        let m = make(&[E::File(b"f", b"data")], PULLED);
        fs::remove_file(m.data.join("f")).unwrap();
        // A FIFO stands in for any non-regular node (mknod of a device needs root).
        rustix::fs::mknodat(
            rustix::fs::CWD,
            m.data.join("f"),
            rustix::fs::FileType::Fifo,
            rustix::fs::Mode::from_raw_mode(0o644),
            0,
        )
        .unwrap();
        match run(&m) {
            Outcome::Damaged { file, message } => {
                assert_eq!(file.as_deref(), Some("f"));
                assert_eq!(message, "is a FIFO, not a regular file");
            }
            o => panic!("{o:?}"),
        }
    }

    #[test]
    fn helpers() {
        assert_eq!(clean_beneath(b"./a//b/../c/"), Some(vec![&b"a"[..], b"c"]));
        assert_eq!(clean_beneath(b"/x"), Some(vec![&b"x"[..]]));
        assert_eq!(clean_beneath(b"a/../.."), None);
        assert!(has_sparse_record(b"\0\0\n22 GNU.sparse.size=9\n"));
        assert!(!has_sparse_record(b"path=GNU.sparse.txt"));
        assert!(header_checksum_ok(&header(b"x", b'0', 1)));
        let mut h = header(b"x", b'0', 1);
        h[0] = b'y';
        assert!(!header_checksum_ok(&h));
    }
}
