use std::fmt;
use std::io;
use std::path::{Path, PathBuf};

/// Why a file could not be read. Every variant names the file; damage also
/// names the page where it was found.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    #[error("{}: {source}", file.display())]
    Io {
        file: PathBuf,
        #[source]
        source: io::Error,
    },
    /// A structural error found at `page` (for meta problems: the meta slot).
    #[error("{}: page {page}: {damage}", file.display())]
    Corrupt {
        file: PathBuf,
        page: u64,
        damage: Damage,
    },
    /// Neither meta page is valid. `meta1` describes the slot at the page size
    /// of meta 0, or the failed probe when meta 0 gave no page size.
    #[error("{}: not a usable bbolt file: meta page 0: {meta0}; meta page 1: {meta1}", file.display())]
    NoValidMeta {
        file: PathBuf,
        meta0: Box<Damage>,
        meta1: Box<Damage>,
    },
    /// The file was written on a big-endian host (the format is host order).
    #[error("{}: byte-swapped (big-endian) bbolt file; only little-endian files can be read", file.display())]
    ByteSwapped { file: PathBuf },
    /// The meta pages kept changing while the file was read: a writer is
    /// committing faster than the file can be read consistently.
    #[error("{}: file changed while being read ({attempts} attempts); try again later", file.display())]
    Unstable { file: PathBuf, attempts: u32 },
}

impl Error {
    /// The file the error is about.
    pub fn file(&self) -> &Path {
        match self {
            Error::Io { file, .. }
            | Error::Corrupt { file, .. }
            | Error::NoValidMeta { file, .. }
            | Error::ByteSwapped { file }
            | Error::Unstable { file, .. } => file,
        }
    }

    /// The page where damage was found, if the error is about one page.
    pub fn page(&self) -> Option<u64> {
        match self {
            Error::Corrupt { page, .. } => Some(*page),
            _ => None,
        }
    }

    /// The damage, for `Corrupt`.
    pub fn damage(&self) -> Option<&Damage> {
        match self {
            Error::Corrupt { damage, .. } => Some(damage),
            _ => None,
        }
    }
}

/// What is wrong at a page.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum Damage {
    /// The file is shorter than a meta page needs.
    TooShort {
        len: u64,
    },
    BadMagic {
        found: u32,
    },
    BadVersion {
        found: u32,
    },
    BadChecksum {
        stored: u64,
        computed: u64,
    },
    BadPageSize {
        found: u32,
    },
    /// Meta 0 is unusable and no meta 1 was found at any probed offset.
    NoMetaFound,
    /// The meta's high-water mark needs more bytes than the file has.
    FileTooShort {
        high_water_mark: u64,
        page_size: u32,
        len: u64,
    },
    /// A page id outside `2..high_water_mark`.
    PageOutOfRange {
        id: u64,
        high_water_mark: u64,
    },
    /// The page's overflow run ends at or past the high-water mark.
    OverflowOutOfRange {
        overflow: u32,
        high_water_mark: u64,
    },
    /// The page header's id is not the id that was followed to it.
    WrongHeaderId {
        found: u64,
    },
    BadFlags {
        flags: u16,
        expected: &'static str,
    },
    /// `count` elements of 16 bytes do not fit in the page span.
    ElementsOutsidePage {
        count: u16,
        span: usize,
    },
    /// An element's key or value lies (partly) outside the page span.
    DataOutsidePage {
        index: usize,
        what: &'static str,
        start: u64,
        end: u64,
        span: usize,
    },
    EmptyBranch,
    /// Keys are not in strictly ascending byte order, or a key lies outside
    /// the range its branch element promises.
    KeyOrder {
        index: usize,
    },
    /// The page (or a page of its overflow run) was already reached: a cycle
    /// or a page shared by two parents.
    ReachedTwice,
    TooDeep {
        depth: usize,
    },
    /// A nested bucket's value is shorter than its 16-byte header.
    BucketValueTooShort {
        index: usize,
        len: usize,
    },
    /// An inline bucket's value is too short to hold a page header.
    InlineTooShort {
        index: usize,
        len: usize,
    },
    /// Damage inside the inline bucket stored at element `index`.
    InInlineBucket {
        index: usize,
        inner: Box<Damage>,
    },
    /// More elements were visited than the file has room for: element data
    /// overlaps (only a damaged file can do that).
    TooManyElements,
    /// A freelist entry outside `2..high_water_mark`.
    FreeIdOutOfRange {
        id: u64,
    },
    /// A page id listed twice in the freelist.
    FreeIdDuplicate {
        id: u64,
    },
    /// A page both reachable from the root and listed as free.
    FreeButReachable {
        id: u64,
    },
}

impl fmt::Display for Damage {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        use Damage::*;
        match self {
            TooShort { len } => write!(f, "file of {len} bytes is too short for a meta page"),
            BadMagic { found } => write!(f, "bad magic {found:#010x} (want 0xed0cdaed)"),
            BadVersion { found } => write!(f, "unsupported format version {found} (want 2)"),
            BadChecksum { stored, computed } => {
                write!(
                    f,
                    "meta checksum {stored:#018x} does not match contents ({computed:#018x})"
                )
            }
            BadPageSize { found } => write!(f, "implausible page size {found}"),
            NoMetaFound => write!(f, "no valid meta page at any probed offset"),
            FileTooShort {
                high_water_mark,
                page_size,
                len,
            } => write!(
                f,
                "high-water mark of {high_water_mark} pages of {page_size} bytes needs more than the file's {len} bytes"
            ),
            PageOutOfRange {
                id,
                high_water_mark,
            } => {
                write!(
                    f,
                    "page id {id} outside 2..{high_water_mark} (the high-water mark)"
                )
            }
            OverflowOutOfRange {
                overflow,
                high_water_mark,
            } => write!(
                f,
                "{overflow} overflow pages run past the high-water mark {high_water_mark}"
            ),
            WrongHeaderId { found } => write!(f, "page header says id {found}"),
            BadFlags { flags, expected } => {
                write!(f, "page flags {flags:#06x}, expected {expected}")
            }
            ElementsOutsidePage { count, span } => {
                write!(
                    f,
                    "{count} elements do not fit in a page span of {span} bytes"
                )
            }
            DataOutsidePage {
                index,
                what,
                start,
                end,
                span,
            } => write!(
                f,
                "element {index}: {what} at bytes {start}..{end} outside the page span of {span} bytes"
            ),
            EmptyBranch => write!(f, "branch page without elements"),
            KeyOrder { index } => write!(f, "element {index}: key out of order"),
            ReachedTwice => write!(f, "page reached twice (cycle or shared page)"),
            TooDeep { depth } => write!(f, "tree deeper than {depth} levels"),
            BucketValueTooShort { index, len } => {
                write!(
                    f,
                    "element {index}: bucket value of {len} bytes is shorter than its header"
                )
            }
            InlineTooShort { index, len } => {
                write!(
                    f,
                    "element {index}: inline bucket value of {len} bytes cannot hold a page"
                )
            }
            InInlineBucket { index, inner } => {
                write!(f, "inline bucket at element {index}: {inner}")
            }
            TooManyElements => write!(
                f,
                "more elements than the file can hold (overlapping element data)"
            ),
            FreeIdOutOfRange { id } => {
                write!(f, "freelist lists page {id}, outside the used pages")
            }
            FreeIdDuplicate { id } => write!(f, "freelist lists page {id} twice"),
            FreeButReachable { id } => write!(f, "page {id} is reachable and also listed as free"),
        }
    }
}
