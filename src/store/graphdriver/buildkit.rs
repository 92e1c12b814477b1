//! BuildKit's databases in a graphdriver root, read with the bbolt crate:
//! the cache records (`buildkit/metadata_v2.db`, BuildKit
//! `cache/metadata/metadata.go`), moby's snapshot adapter
//! (`buildkit/snapshots.db`, moby `daemon/internal/builder-next/adapters/snapshot/snapshot.go`)
//! and blob sizes (`buildkit/containerdmeta.db`). Only live records count:
//! bbolt keeps deleted records' bytes in freed pages, which a page walk never
//! reaches.
//!
//! When a database cannot be parsed, the old conservative rule stands in:
//! any driver dir name or chain ID that occurs as a byte substring of
//! `snapshots.db` is BuildKit's (stale bytes can only add names, never hide
//! one), and BuildKit's state is reported as unknown.

use super::Paths;
use crate::ids::ChainId;
use serde::Serialize;
use std::collections::{BTreeMap, HashMap, HashSet};
use std::path::Path;

/// Everything dockgc knows of BuildKit in this root.
#[derive(Debug, Clone, Default, Serialize)]
pub struct Buildkit {
    /// `<root>/buildkit` exists.
    pub present: bool,
    pub status: BuildkitStatus,
    /// A dockerd holds the databases (a flock on `metadata_v2.db`): BuildKit
    /// may be building now, so which records are in use is unknown.
    pub live: bool,
    /// `snapshots.db`: one bucket per snapshot key.
    pub snapshots: BTreeMap<String, SnapshotRecord>,
    /// `metadata_v2.db` `_main`: one bucket per cache record.
    pub records: BTreeMap<String, CacheRecord>,
    /// `containerdmeta.db` `v1/buildkit/content/blob/<digest>/size`, read
    /// only when some record has a blob.
    pub blob_sizes: HashMap<String, i64>,
    /// With [`BuildkitStatus::Unreadable`]: names found by the substring rule.
    pub referenced_names: Vec<String>,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
#[serde(tag = "status", rename_all = "kebab-case")]
pub enum BuildkitStatus {
    /// No `buildkit/` directory, or no databases in it.
    #[default]
    Absent,
    /// Every database was read.
    Read,
    /// A database could not be read; `why` names it. BuildKit's records are
    /// unknown: whatever its `snapshots.db` names is kept.
    Unreadable { why: String },
}

/// A `snapshots.db` bucket (the moby adapter's schema).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct SnapshotRecord {
    /// The parent snapshot key (`parent`, set by `Prepare`); `Some("")` for none.
    pub parent: Option<String>,
    /// The driver dir now holding this snapshot's data (`committed`).
    pub committed: Option<String>,
    /// This key's dir holds another name's data (`iscommitted`).
    pub iscommitted: bool,
    /// The layerdb layer this snapshot became (`chainid`, set by `EnsureLayer`).
    pub chainid: Option<ChainId>,
    /// The adapter's cached usage (`size`).
    pub size: Option<i64>,
}

/// A `metadata_v2.db` record: the fields `/system/df` derives its answer from.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct CacheRecord {
    pub created_ns: Option<i64>,
    pub last_used_ns: Option<i64>,
    pub usage_count: Option<i64>,
    /// `snapshot.size`; −1 means unknown.
    pub size: Option<i64>,
    pub record_type: Option<String>,
    pub description: Option<String>,
    pub parent: Option<String>,
    /// `snapshot.committed`: an immutable record.
    pub committed: bool,
    /// `cache.equalMutable`: this immutable is a twin of that mutable record.
    pub equal_mutable: Option<String>,
    /// `cache.snapshot`: the snapshot key when it is not the record ID.
    pub snapshot: Option<String>,
    pub deleted: bool,
    pub blob_only: bool,
    pub blob: Option<String>,
}

impl SnapshotRecord {
    /// A driver dir of this key's own (created by `Prepare`).
    pub fn has_own_dir(&self) -> bool {
        self.parent.is_some() || self.iscommitted
    }
}

impl Buildkit {
    /// The driver dir holding a snapshot's data (the adapter's
    /// `getGraphDriverID`): its `committed` dir, or the key's own dir; for a
    /// chain ID, that layer's cache-id.
    pub fn dir_of<'a>(
        &'a self,
        key: &'a str,
        cache_ids: &'a BTreeMap<ChainId, crate::ids::CacheId>,
    ) -> Option<&'a str> {
        if let Some(c) = key.strip_prefix("sha256:").and_then(ChainId::from_hex) {
            return cache_ids.get(&c).map(|d| d.0.as_str());
        }
        match self.snapshots.get(key) {
            Some(s) => Some(s.committed.as_deref().unwrap_or(key)),
            None => None,
        }
    }

    /// A record's snapshot key: `cache.snapshot`, or for a twin its
    /// mutable's key, else the record ID (BuildKit `cache/refs.go` `getSnapshotID`).
    pub fn snapshot_key<'a>(&'a self, id: &'a str) -> &'a str {
        let Some(r) = self.records.get(id) else {
            return id;
        };
        if let Some(s) = r.snapshot.as_deref() {
            return s;
        }
        match r.equal_mutable.as_deref() {
            Some(m) if m != id => self
                .records
                .get(m)
                .map_or(m, |mr| mr.snapshot.as_deref().unwrap_or(m)),
            _ => id,
        }
    }

    /// The layer a snapshot key is (a `sha256:` key) or became (`chainid`).
    pub fn layer_of(&self, key: &str) -> Option<ChainId> {
        if let Some(c) = key.strip_prefix("sha256:").and_then(ChainId::from_hex) {
            return Some(c);
        }
        self.snapshots.get(key).and_then(|s| s.chainid)
    }
}

/// Reads `buildkit/` of a root. `candidates` gives the driver dir names and
/// chain IDs the substring rule asks about if a database cannot be parsed
/// (only then: they are tens of thousands of strings).
pub fn read(paths: &Paths, candidates: impl FnOnce() -> Vec<String>) -> Buildkit {
    let dir = paths.docker().buildkit();
    let mut bk = Buildkit {
        present: dir.is_dir(),
        ..Buildkit::default()
    };
    let snapshots_db = dir.join("snapshots.db");
    let metadata_db = dir.join("metadata_v2.db");
    if !snapshots_db.exists() && !metadata_db.exists() {
        return bk;
    }
    bk.live = matches!(
        bbolt::probe_lock(&metadata_db),
        Ok(bbolt::LockProbe::HeldExclusive)
    );
    match read_databases(&dir, &snapshots_db, &metadata_db) {
        Ok((snapshots, records, blob_sizes)) => {
            bk.status = BuildkitStatus::Read;
            bk.snapshots = snapshots;
            bk.records = records;
            bk.blob_sizes = blob_sizes;
        }
        Err(why) => {
            bk.status = BuildkitStatus::Unreadable { why };
            bk.referenced_names = substring_names(&snapshots_db, candidates);
        }
    }
    bk
}

type Databases = (
    BTreeMap<String, SnapshotRecord>,
    BTreeMap<String, CacheRecord>,
    HashMap<String, i64>,
);

fn read_databases(
    dir: &Path,
    snapshots_db: &Path,
    metadata_db: &Path,
) -> Result<Databases, String> {
    let snapshots = match open_opt(snapshots_db)? {
        Some(db) => read_snapshots(&db),
        None => BTreeMap::new(),
    };
    let records = match open_opt(metadata_db)? {
        Some(db) => read_records(&db)?,
        None => BTreeMap::new(),
    };
    // Only records with a blob (`cache.blob`) need it: none in the
    // graphdriver roots seen (moby's puller hands BuildKit descriptors
    // without a digest), while the file keeps a lease of two pages for every
    // record (16 MB for 2,000 records). So it is read only then, and a
    // damaged file costs those sizes, not the whole reading.
    let blob_sizes = if records.values().any(|r| r.blob.is_some()) {
        match open_opt(&dir.join("containerdmeta.db")) {
            Ok(Some(db)) => read_blob_sizes(&db),
            _ => HashMap::new(),
        }
    } else {
        HashMap::new()
    };
    Ok((snapshots, records, blob_sizes))
}

fn open_opt(path: &Path) -> Result<Option<bbolt::Db>, String> {
    if !path.exists() {
        return Ok(None);
    }
    bbolt::Db::open(path).map(Some).map_err(|e| e.to_string())
}

fn text(b: &[u8]) -> Option<String> {
    std::str::from_utf8(b).ok().map(str::to_string)
}

fn read_snapshots(db: &bbolt::Db) -> BTreeMap<String, SnapshotRecord> {
    let mut out = BTreeMap::new();
    for (key, b) in db.root().buckets() {
        let Some(key) = text(key) else { continue };
        let s = SnapshotRecord {
            parent: b.get("parent").and_then(text),
            committed: b.get("committed").and_then(text).filter(|s| !s.is_empty()),
            iscommitted: b.get("iscommitted").is_some(),
            chainid: b
                .get("chainid")
                .and_then(text)
                .and_then(|s| ChainId::parse(&s).ok()),
            size: b
                .get("size")
                .and_then(text)
                .and_then(|s| s.trim().parse().ok()),
        };
        out.insert(key, s);
    }
    out
}

/// `{"value": <raw JSON>, "index": ...}`; an empty value is a cleared key.
#[derive(serde::Deserialize)]
struct Stored<'a> {
    #[serde(borrow)]
    value: &'a serde_json::value::RawValue,
}

fn read_records(db: &bbolt::Db) -> Result<BTreeMap<String, CacheRecord>, String> {
    let Some(main) = db.bucket("_main") else {
        return Ok(BTreeMap::new());
    };
    let mut out = BTreeMap::new();
    for (id, b) in main.buckets() {
        let Some(id) = text(id) else { continue };
        let field = |k: &str| -> Option<&str> {
            let raw = b.get(k).filter(|v| !v.is_empty())?;
            serde_json::from_slice::<Stored>(raw)
                .ok()
                .map(|s| s.value.get())
        };
        let int = |k| field(k).and_then(|v| v.parse::<i64>().ok());
        let string = |k| field(k).and_then(|v| serde_json::from_str::<String>(v).ok());
        let flag = |k| {
            field(k)
                .and_then(|v| v.parse::<bool>().ok())
                .unwrap_or(false)
        };
        out.insert(
            id,
            CacheRecord {
                created_ns: int("cache.createdAt"),
                last_used_ns: int("cache.lastUsedAt"),
                usage_count: int("cache.usageCount"),
                size: int("snapshot.size"),
                record_type: string("cache.recordType"),
                description: string("cache.description"),
                parent: string("cache.parent").filter(|s| !s.is_empty()),
                committed: flag("snapshot.committed"),
                equal_mutable: string("cache.equalMutable").filter(|s| !s.is_empty()),
                snapshot: string("cache.snapshot").filter(|s| !s.is_empty()),
                deleted: flag("cache.deleted"),
                blob_only: flag("cache.blobonly"),
                blob: string("cache.blob").filter(|s| !s.is_empty()),
            },
        );
    }
    Ok(out)
}

/// Go's `binary.PutVarint`: zig-zag, then base 128.
fn varint(b: &[u8]) -> Option<i64> {
    let mut u: u64 = 0;
    for (i, byte) in b.iter().enumerate().take(10) {
        u |= u64::from(byte & 0x7f) << (7 * i);
        if byte & 0x80 == 0 {
            return Some(((u >> 1) as i64) ^ -((u & 1) as i64));
        }
    }
    None
}

fn read_blob_sizes(db: &bbolt::Db) -> HashMap<String, i64> {
    let Some(blobs) = db.bucket_path(["v1", "buildkit", "content", "blob"]) else {
        return HashMap::new();
    };
    blobs
        .buckets()
        .filter_map(|(d, b)| Some((text(d)?, varint(b.get("size")?)?)))
        .collect()
}

/// The substring rule, for a `snapshots.db` that cannot be parsed.
fn substring_names(db: &Path, candidates: impl FnOnce() -> Vec<String>) -> Vec<String> {
    let Ok(bytes) = std::fs::read(db) else {
        return Vec::new();
    };
    let idx = SubstringIndex::new(&bytes);
    let mut names: Vec<String> = candidates()
        .into_iter()
        .filter(|c| idx.contains(c))
        .collect();
    names.sort();
    names.dedup();
    names
}

/// Answers "does this 25- or 64-char name occur in the bytes?" in O(1) after
/// one pass: every window of those lengths inside runs of name characters is
/// indexed. Other lengths fall back to a linear search.
struct SubstringIndex<'b> {
    bytes: &'b [u8],
    windows: HashSet<&'b [u8]>,
}

const INDEXED: [usize; 2] = [25, 64];

impl<'b> SubstringIndex<'b> {
    fn new(bytes: &'b [u8]) -> Self {
        let mut windows = HashSet::new();
        let is_name = |c: u8| c.is_ascii_alphanumeric() || c == b'-';
        let mut i = 0;
        while i < bytes.len() {
            if !is_name(bytes[i]) {
                i += 1;
                continue;
            }
            let start = i;
            while i < bytes.len() && is_name(bytes[i]) {
                i += 1;
            }
            let run = &bytes[start..i];
            for w in INDEXED {
                if run.len() >= w {
                    windows.extend(run.windows(w));
                }
            }
        }
        SubstringIndex { bytes, windows }
    }

    fn contains(&self, name: &str) -> bool {
        let n = name.as_bytes();
        if INDEXED.contains(&n.len()) {
            return self.windows.contains(n);
        }
        !n.is_empty() && memchr::memmem::find(self.bytes, n).is_some()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use bbolt::build::{Options, Tree, image};

    fn root_with(dbs: &[(&str, Vec<u8>)]) -> (tempfile::TempDir, Paths) {
        let t = tempfile::tempdir().unwrap();
        let paths = Paths::new(t.path(), "overlay2");
        let dir = paths.docker().buildkit();
        std::fs::create_dir_all(&dir).unwrap();
        for (name, bytes) in dbs {
            std::fs::write(dir.join(name), bytes).unwrap();
        }
        (t, paths)
    }

    fn tree(buckets: &[(&str, &[(&str, &str)])]) -> Tree {
        let mut t = Tree::new();
        for (name, kvs) in buckets {
            let b = t.bucket(name.as_bytes());
            for (k, v) in *kvs {
                b.put(k.as_bytes(), v.as_bytes());
            }
        }
        t
    }

    #[test]
    fn reads_live_buckets_only() {
        let chain = format!("sha256:{}", "a".repeat(64));
        let snaps = tree(&[
            (
                "k2x9v0q8w7e6r5t4y3u2i1o0p",
                &[("parent", ""), ("size", "12")],
            ),
            (
                "jlp5zud55vwwigvf9t9ye2qnt",
                &[
                    ("chainid", &chain),
                    ("committed", "wgez9iy0vrvn0musprczqcu8l"),
                ],
            ),
        ]);
        let mut meta = Tree::new();
        meta.bucket(b"_main".as_slice())
            .bucket(b"jlp5zud55vwwigvf9t9ye2qnt".as_slice())
            .put(
                b"cache.createdAt".as_slice(),
                br#"{"value":1796114004468967233}"#.as_slice(),
            )
            .put(
                b"cache.description".as_slice(),
                br#"{"value":"fileop target"}"#.as_slice(),
            )
            .put(
                b"snapshot.committed".as_slice(),
                br#"{"value":true}"#.as_slice(),
            )
            .put(b"cache.equalMutable".as_slice(), b"".as_slice());
        let o = Options::default();
        let (_t, paths) = root_with(&[
            ("snapshots.db", image(&snaps, &o).unwrap()),
            ("metadata_v2.db", image(&meta, &o).unwrap()),
        ]);
        let bk = read(&paths, Vec::new);
        assert_eq!(bk.status, BuildkitStatus::Read);
        assert_eq!(bk.snapshots.len(), 2);
        let s = &bk.snapshots["jlp5zud55vwwigvf9t9ye2qnt"];
        assert_eq!(s.chainid.unwrap().to_string(), chain);
        assert!(!s.has_own_dir());
        assert!(bk.snapshots["k2x9v0q8w7e6r5t4y3u2i1o0p"].has_own_dir());
        let r = &bk.records["jlp5zud55vwwigvf9t9ye2qnt"];
        assert!(r.committed);
        assert_eq!(r.created_ns, Some(1796114004468967233));
        assert_eq!(r.description.as_deref(), Some("fileop target"));
        assert_eq!(r.equal_mutable, None, "an empty value is a cleared key");
    }

    #[test]
    fn a_damaged_database_falls_back_to_the_substring_rule() {
        let key = "k2x9v0q8w7e6r5t4y3u2i1o0p";
        let mut db = b"\x00\x01not bbolt at all ".to_vec();
        db.extend_from_slice(key.as_bytes());
        let (_t, paths) = root_with(&[("snapshots.db", db)]);
        let bk = read(&paths, || {
            vec![key.to_string(), "zzzzzzzzzzzzzzzzzzzzzzzzz".to_string()]
        });
        match &bk.status {
            BuildkitStatus::Unreadable { why } => assert!(why.contains("snapshots.db"), "{why}"),
            s => panic!("{s:?}"),
        }
        assert_eq!(bk.referenced_names, vec![key.to_string()]);
    }

    #[test]
    fn varints_are_go_zigzag() {
        assert_eq!(varint(&[0xd6, 0x06]), Some(427));
        assert_eq!(varint(&[0x80, 0xc0, 0xf4, 0x01]), Some(2_002_944));
        assert_eq!(varint(&[0x06]), Some(3));
        assert_eq!(varint(&[0x80]), None);
    }

    #[test]
    fn absent_buildkit() {
        let t = tempfile::tempdir().unwrap();
        let bk = read(&Paths::new(t.path(), "overlay2"), Vec::new);
        assert!(!bk.present);
        assert_eq!(bk.status, BuildkitStatus::Absent);
    }
}
