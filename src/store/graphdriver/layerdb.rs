//! `image/<driver>/layerdb`: read-only layers, RW mounts, and leftovers of
//! interrupted transactions
//! (moby `daemon/internal/layer/filestore.go`, `layer_store.go`).

use super::{BrokenLayer, Mount, Paths, RemovingLayer};
use crate::ids::{CacheId, ChainId, DiffId, DirName, MountId, is_hex64};
use crate::store::fsread::{
    EntryFiles, NOT_UTF8, SharedListings, list_dir_opt_shared, open_listed,
};
use crate::store::{Anomaly, AnomalyKind, Layer};
use rayon::prelude::*;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

pub struct LayerDb {
    pub layers: BTreeMap<ChainId, Layer>,
    pub cache_ids: BTreeMap<ChainId, CacheId>,
    pub removing: Vec<RemovingLayer>,
    pub broken: Vec<BrokenLayer>,
    pub write_sets: Vec<PathBuf>,
    pub mounts: BTreeMap<String, Mount>,
    pub anomalies: Vec<Anomaly>,
    /// Mounts and layers whose driver dirs could not be determined.
    pub unresolved: Vec<PathBuf>,
}

pub fn read(paths: &Paths, share: Option<&SharedListings>) -> LayerDb {
    let sha = paths.layers_dir();
    let entries = match open_listed(&sha, share) {
        Ok((listing, dir)) => Ok(listing
            .names
            .par_iter()
            .zip(listing.is_dir.par_iter())
            .map(|(n, is_dir)| read_entry(&dir.entry(n), n, *is_dir))
            .collect()),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(Vec::new()),
        Err(e) => Err(e.to_string()),
    };
    let tmp = paths.layerdb_tmp();
    let write_sets = list_dir_opt_shared(&tmp, share)
        .map(|l| l.names.clone())
        .map_err(|e| e.to_string());
    let mounts_dir = paths.mounts_dir();
    let mounts = match open_listed(&mounts_dir, share) {
        Ok((listing, dir)) => Ok(listing
            .names
            .par_iter()
            .map(|n| {
                let m = read_mount(&dir.entry(n), n);
                (n.clone(), m)
            })
            .collect()),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(Vec::new()),
        Err(e) => Err(e.to_string()),
    };
    assemble(paths, entries, write_sets, mounts)
}

/// Each entry of `layerdb/mounts` (by name, in order), or why it could not
/// be listed.
pub type MountsRead = Result<Vec<(String, Result<Mount, Anomaly>)>, String>;

/// What was read of `layerdb`, however it was read: the entries of
/// `sha256/` in name order, the names in `tmp/`, each mount (by name, in
/// order) or why a listing failed.
pub fn assemble(
    paths: &Paths,
    entries: Result<Vec<Entry>, String>,
    tmp_names: Result<Vec<String>, String>,
    mounts_read: MountsRead,
) -> LayerDb {
    let mut anomalies = Vec::new();
    let mut unresolved = Vec::new();
    let entries = entries.unwrap_or_else(|e| {
        anomalies.push(unreadable(
            &paths.layers_dir(),
            format!("cannot list layers: {e}; the daemon will not start"),
        ));
        Vec::new()
    });
    // The maps are collected from these, not inserted into one by one: a
    // map built from an iterator packs its nodes full, where in-order
    // inserts leave each about 60% used (30,000 layers on big hosts).
    let mut layers = Vec::new();
    let mut cache_ids = Vec::new();
    let mut removing = Vec::new();
    let mut broken = Vec::new();
    for r in entries {
        match r {
            Entry::Layer(l, cache_id) => {
                cache_ids.push((l.chain_id, cache_id));
                layers.push((l.chain_id, l));
            }
            Entry::Removing(r) => removing.push(r),
            Entry::Bad(a) => anomalies.push(a),
            Entry::Broken(b, a) => {
                broken.push(b);
                anomalies.push(a);
            }
            Entry::Ignored => {}
        }
    }

    let tmp = paths.layerdb_tmp();
    let write_sets = match tmp_names {
        Ok(names) => names
            .into_iter()
            .filter(|n| n.starts_with("write-set-"))
            .map(|n| tmp.join(n))
            .collect(),
        Err(e) => {
            anomalies.push(unreadable(&tmp, e));
            Vec::new()
        }
    };

    let mounts_dir = paths.mounts_dir();
    let mut mounts = Vec::new();
    match mounts_read {
        Ok(read) => {
            for (name, m) in read {
                match m {
                    Ok(m) => mounts.push((name, m)),
                    Err(a) => {
                        unresolved.push(mounts_dir.join(&name));
                        anomalies.push(a);
                    }
                }
            }
        }
        Err(e) => {
            unresolved.push(mounts_dir.clone());
            anomalies.push(unreadable(
                &mounts_dir,
                format!("cannot list mounts: {e}; the daemon will not start"),
            ))
        }
    }
    unresolved.extend(
        broken
            .iter()
            .filter(|b: &&BrokenLayer| b.cache_id.is_none())
            .map(|b| b.path.clone()),
    );
    LayerDb {
        layers: layers.into_iter().collect(),
        cache_ids: cache_ids.into_iter().collect(),
        removing,
        broken,
        write_sets,
        mounts: mounts.into_iter().collect(),
        anomalies,
        unresolved,
    }
}

pub enum Entry {
    Layer(Layer, CacheId),
    Removing(RemovingLayer),
    Bad(Anomaly),
    Broken(BrokenLayer, Anomaly),
    Ignored,
}

/// One entry of `layerdb/sha256`, from its name and whether it is a real
/// directory; `files` reads the files inside it, each at most once.
pub fn read_entry(files: &EntryFiles<'_>, name: &str, is_dir: bool) -> Entry {
    if let Some(chain_id) = ChainId::from_hex(name) {
        // The daemon lists only real directories (a symlink is skipped).
        if !is_dir {
            return Entry::Bad(Anomaly {
                kind: AnomalyKind::Loop,
                path: files.path(),
                message:
                    "layer entry is not a directory (a symlink or file); the daemon ignores it"
                        .into(),
            });
        }
        let mut cache = None;
        return match read_layer_with(files, chain_id, &mut cache) {
            Ok((l, cache_id)) => Entry::Layer(l, cache_id),
            Err(a) => {
                let cache = cache.unwrap_or_else(|| files.read_text("cache-id"));
                Entry::Broken(
                    BrokenLayer {
                        path: files.path(),
                        chain_id,
                        cache_id: cache_id_of(cache),
                    },
                    a,
                )
            }
        };
    }
    if let Some(rest) = name.strip_suffix("-removing") {
        let chain_hex = rest.split('-').next().unwrap_or("");
        if is_hex64(chain_hex) {
            return Entry::Removing(RemovingLayer {
                path: files.path(),
                chain_hex: chain_hex.to_string(),
                cache_id: cache_id_of(files.read_text("cache-id")),
            });
        }
    }
    Entry::Ignored
}

/// A `cache-id` that names a dir, however damaged the rest of its entry is.
fn cache_id_of(read: Result<Option<String>, String>) -> Option<CacheId> {
    read.ok()
        .flatten()
        .map(|s| s.trim().into())
        .filter(|s: &DirName| !s.is_empty())
        .map(CacheId)
}

/// Reads one layer with the daemon's own tolerance (`filestore.go`): `diff`,
/// `cache-id` and `parent` are trimmed; `size` is not, so a trailing newline
/// makes the layer (and every layer above it) unloadable. What `cache-id`
/// held is left in `cache` once it was read (a broken layer still claims its dir).
fn read_layer_with(
    files: &EntryFiles<'_>,
    chain_id: ChainId,
    cache: &mut Option<Result<Option<String>, String>>,
) -> Result<(Layer, CacheId), Anomaly> {
    let bad = |file: &str, message: String| Anomaly {
        kind: AnomalyKind::LayerFiles,
        path: files.file(file),
        message,
    };
    let missing = |file: &str| bad(file, "missing; the daemon cannot load this layer".into());
    let mut buf = Vec::new();
    // Each file as text in `buf`, or the anomaly of a missing or unreadable one.
    let text = |file: &str, buf: &mut Vec<u8>| -> Result<Option<()>, Anomaly> {
        match files.read(file, buf) {
            Ok(false) => Ok(None),
            Ok(true) if std::str::from_utf8(buf).is_err() => Err(bad(file, NOT_UTF8.into())),
            Ok(true) => Ok(Some(())),
            Err(e) => Err(bad(file, e)),
        }
    };
    text("diff", &mut buf)?.ok_or_else(|| missing("diff"))?;
    let diff_id = DiffId::parse(utf8(&buf).trim()).map_err(|e| bad("diff", e.to_string()))?;
    text("size", &mut buf)?.ok_or_else(|| missing("size"))?;
    let size = parse_size(utf8(&buf)).map_err(|m| bad("size", m))?;
    let cache_read = files.read_text("cache-id");
    let cache_text = match &cache_read {
        Ok(Some(s)) => Ok(s.trim().to_string()),
        Ok(None) => Err(missing("cache-id")),
        Err(e) => Err(bad("cache-id", e.clone())),
    };
    *cache = Some(cache_read);
    let cache = cache_text?;
    if cache.is_empty() {
        return Err(bad(
            "cache-id",
            "empty; the daemon cannot load this layer".into(),
        ));
    }
    let parent = match text("parent", &mut buf)? {
        None => None,
        Some(()) => {
            Some(ChainId::parse(utf8(&buf).trim()).map_err(|e| bad("parent", e.to_string()))?)
        }
    };
    Ok((
        Layer {
            chain_id,
            diff_id,
            size,
            parent,
        },
        CacheId(cache.into()),
    ))
}

/// `buf` as text: checked by the reader already.
fn utf8(buf: &[u8]) -> &str {
    std::str::from_utf8(buf).unwrap_or_default()
}

/// Go's `strconv.ParseInt(s, 10, 64)` with no trimming, negative sizes rejected.
pub fn parse_size(s: &str) -> Result<u64, String> {
    if s.ends_with('\n') || s.ends_with(' ') || s.starts_with(' ') {
        return Err(format!(
            "{s:?} has surrounding whitespace; the daemon does not trim it and cannot load this layer"
        ));
    }
    let digits = s.strip_prefix('+').unwrap_or(s);
    if digits.is_empty() || !digits.bytes().all(|c| c.is_ascii_digit()) {
        return Err(format!("{s:?} is not a decimal size"));
    }
    digits
        .parse::<u64>()
        .ok()
        .filter(|n| *n <= i64::MAX as u64)
        .ok_or_else(|| format!("{s:?} does not fit in int64"))
}

/// One `layerdb/mounts/<name>` entry; `files` reads the files inside it.
pub fn read_mount(files: &EntryFiles<'_>, name: &str) -> Result<Mount, Anomaly> {
    let bad = |file: &str, message: String| Anomaly {
        kind: AnomalyKind::Mount,
        path: files.file(file),
        message,
    };
    let mount_id = match files.read_text("mount-id") {
        Ok(Some(s)) => MountId::parse(s.trim()).ok_or_else(|| {
            bad(
                "mount-id",
                format!("{s:?} is not a valid mount ID; the daemon cannot load this mount"),
            )
        })?,
        Ok(None) => {
            return Err(bad(
                "mount-id",
                "missing; the daemon cannot load this mount".into(),
            ));
        }
        Err(e) => return Err(bad("mount-id", e)),
    };
    let init_id = match files.read_text("init-id") {
        Ok(None) => None,
        Ok(Some(s)) if s.trim().is_empty() => None,
        Ok(Some(s)) => Some(
            MountId::parse(s.trim())
                .ok_or_else(|| bad("init-id", format!("{s:?} is not a valid init ID")))?,
        ),
        Err(e) => return Err(bad("init-id", e)),
    };
    let parent = match files.read_text("parent") {
        Ok(None) => None,
        Ok(Some(s)) if s.trim().is_empty() => None,
        Ok(Some(s)) => Some(ChainId::parse(s.trim()).map_err(|e| bad("parent", e.to_string()))?),
        Err(e) => return Err(bad("parent", e)),
    };
    Ok(Mount {
        name: name.to_string(),
        mount_id,
        init_id,
        parent,
    })
}

fn unreadable(path: &Path, message: String) -> Anomaly {
    Anomaly {
        kind: AnomalyKind::Unreadable,
        path: path.to_path_buf(),
        message,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::fs;

    /// A root's paths and its layerdb dir.
    fn setup(t: &tempfile::TempDir) -> (Paths, PathBuf) {
        let p = Paths::new(&t.path().join("r"), "overlay2");
        let ldb = p.layerdb();
        fs::create_dir_all(&ldb).unwrap();
        (p, ldb)
    }

    const D: &str = "sha256:5f70bf18a086007016e948b04aed3b82103a36bea41755b6cddfaf10ace3c6ef";

    fn layer_dir(root: &Path, files: &[(&str, &str)]) -> PathBuf {
        let dir = root.join("sha256").join(&D[7..]);
        fs::create_dir_all(&dir).unwrap();
        for (f, c) in files {
            fs::write(dir.join(f), c).unwrap();
        }
        dir
    }

    #[test]
    fn size_is_strict_like_the_daemon() {
        assert_eq!(parse_size("1234"), Ok(1234));
        assert_eq!(parse_size("0"), Ok(0));
        assert!(parse_size("1234\n").unwrap_err().contains("whitespace"));
        assert!(parse_size("-1").is_err());
        assert!(parse_size("").is_err());
        assert!(parse_size("12a").is_err());
        assert!(parse_size("99999999999999999999").is_err());
    }

    #[test]
    fn reads_a_layer_and_leftovers() {
        let t = tempfile::tempdir().unwrap();
        let (p, ldb) = setup(&t);
        layer_dir(
            &ldb,
            &[
                ("diff", &format!("{D}\n")),
                ("size", "42"),
                ("cache-id", "abc\n"),
            ],
        );
        let rm =
            &ldb.join("sha256")
                .join(format!("{}-{}-removing", "c".repeat(64), "d".repeat(64)));
        fs::create_dir_all(rm).unwrap();
        fs::write(rm.join("cache-id"), "zzz").unwrap();
        fs::create_dir_all(ldb.join("tmp/write-set-123")).unwrap();
        let mnt = &ldb.join("mounts").join("e".repeat(64));
        fs::create_dir_all(mnt).unwrap();
        fs::write(mnt.join("mount-id"), "f".repeat(64)).unwrap();
        fs::write(mnt.join("init-id"), format!("{}-init", "f".repeat(64))).unwrap();
        fs::write(mnt.join("parent"), D).unwrap();

        let db = read(&p, None);
        assert!(db.anomalies.is_empty(), "{:?}", db.anomalies);
        let l = db.layers.values().next().unwrap();
        assert_eq!(l.size, 42);
        assert_eq!(db.cache_ids[&l.chain_id].0, "abc");
        assert_eq!(l.parent, None);
        assert_eq!(db.removing.len(), 1);
        assert_eq!(db.removing[0].cache_id.as_ref().unwrap().0, "zzz");
        assert_eq!(db.write_sets.len(), 1);
        let m = &db.mounts[&"e".repeat(64)];
        assert!(m.init_id.is_some() && m.parent.is_some());
    }

    #[test]
    fn broken_layers_name_the_file() {
        let t = tempfile::tempdir().unwrap();
        let (p, ldb) = setup(&t);
        let dir = layer_dir(&ldb, &[("diff", D), ("size", "42\n"), ("cache-id", "abc")]);
        let db = read(&p, None);
        assert!(db.layers.is_empty());
        assert_eq!(db.anomalies[0].path, dir.join("size"));

        fs::write(dir.join("size"), "42").unwrap();
        fs::remove_file(dir.join("cache-id")).unwrap();
        let db = read(&p, None);
        assert_eq!(db.anomalies[0].path, dir.join("cache-id"));
        assert!(db.anomalies[0].message.contains("missing"));

        fs::write(dir.join("cache-id"), "abc").unwrap();
        fs::remove_file(dir.join("diff")).unwrap();
        let db = read(&p, None);
        assert_eq!(db.anomalies[0].path, dir.join("diff"));
    }

    #[test]
    fn bad_mount_ids_are_anomalies() {
        let t = tempfile::tempdir().unwrap();
        let (p, ldb) = setup(&t);
        let mnt = &ldb.join("mounts").join("x");
        fs::create_dir_all(mnt).unwrap();
        fs::write(mnt.join("mount-id"), "not-an-id").unwrap();
        let db = read(&p, None);
        assert!(db.mounts.is_empty());
        assert_eq!(db.anomalies[0].kind, AnomalyKind::Mount);
    }
}
