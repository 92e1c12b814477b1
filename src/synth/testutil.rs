//! Helpers for the tests of the generated roots. The tests spell the
//! layout out literally: they check the format itself, not that the writer
//! agrees with `Paths`.

use super::{SynthReport, SynthSpec, generate};
use base64::Engine as _;
use std::collections::{BTreeSet, HashSet};
use std::fs::{self, File};
use std::io::Read;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

pub(super) fn read(p: &Path) -> String {
    fs::read_to_string(p).unwrap_or_else(|e| panic!("{}: {e}", p.display()))
}

pub(super) fn mode(p: &Path) -> u32 {
    fs::symlink_metadata(p).unwrap().mode() & 0o7777
}

/// Docker's `directory.Size`: apparent sizes of non-directories with
/// size > 0 (symlinks count their target length), each inode once.
pub(super) fn directory_size(dir: &Path) -> u64 {
    fn walk(d: &Path, seen: &mut HashSet<u64>, total: &mut u64) {
        for e in fs::read_dir(d).unwrap() {
            let p = e.unwrap().path();
            let m = fs::symlink_metadata(&p).unwrap();
            if m.is_dir() {
                walk(&p, seen, total);
            } else if m.len() > 0 && seen.insert(m.ino()) {
                *total += m.len();
            }
        }
    }
    let mut seen = HashSet::new();
    let mut total = 0;
    walk(dir, &mut seen, &mut total);
    total
}

/// tar-split's `WriteOutputTarStream` with a path file getter rooted at
/// `diff/`: Segments verbatim, size > 0 files from disk with a CRC check.
/// Returns the stream and the parsed lines.
pub(super) fn reassemble(tar_split_gz: &Path, diff: &Path) -> (Vec<u8>, Vec<serde_json::Value>) {
    let mut json = String::new();
    flate2::read::GzDecoder::new(File::open(tar_split_gz).unwrap())
        .read_to_string(&mut json)
        .unwrap();
    let b64 = base64::engine::general_purpose::STANDARD;
    let mut out = Vec::new();
    let mut lines = Vec::new();
    for (k, line) in json.split_terminator('\n').enumerate() {
        let v: serde_json::Value = serde_json::from_str(line).unwrap();
        assert_eq!(v["position"], k as u64, "position counts every entry");
        match v["type"].as_u64().unwrap() {
            2 => out.extend(b64.decode(v["payload"].as_str().unwrap()).unwrap()),
            1 => {
                let size = v.get("size").and_then(|s| s.as_u64()).unwrap_or(0);
                if size == 0 {
                    assert!(v["payload"].is_null(), "size 0 → payload null: {line}");
                    lines.push(v);
                    continue;
                }
                let name = v["name"].as_str().unwrap();
                let body = fs::read(diff.join(name)).unwrap();
                let mut crc = crc_fast::Digest::new(crc_fast::CrcAlgorithm::Crc64GoIso);
                crc.update(&body);
                let want = b64.decode(v["payload"].as_str().unwrap()).unwrap();
                assert_eq!(want, crc.finalize().to_be_bytes(), "CRC of {name}");
                assert_eq!(body.len() as u64, size);
                out.extend(body);
            }
            t => panic!("unknown tar-split entry type {t}"),
        }
        lines.push(v);
    }
    (out, lines)
}

pub(super) fn make_root(spec: &SynthSpec) -> (tempfile::TempDir, PathBuf, SynthReport) {
    let tmp = tempfile::tempdir().unwrap();
    let root = tmp.path().join("docker");
    let report = generate(&root, spec).unwrap();
    (tmp, root, report)
}

/// The image IDs (hex) in `imagedb/content/sha256`.
pub(super) fn image_ids(root: &Path) -> BTreeSet<String> {
    fs::read_dir(root.join("image/overlay2/imagedb/content/sha256"))
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .collect()
}
