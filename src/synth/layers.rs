//! Image layers and the crash leftovers that are layers too: the driver
//! dir with its extracted `diff/`, and the layerdb entry (moby
//! `daemon/internal/layer/filestore.go`: `diff`, `size`, `cache-id`,
//! `parent`, `tar-split.json.gz`).

use super::extract::Extract;
use super::fs::Ctx;
use super::plan::{LayerKind, Plan};
use super::rng::{Rng, STREAM_EXTRA, STREAM_LAYER};
use crate::ids::{ChainId, DiffId};
use rayon::prelude::*;
use std::io;
use std::path::PathBuf;

#[derive(Debug, Clone)]
pub(super) struct LayerDone {
    pub(super) diff: DiffId,
    pub(super) chain: ChainId,
    pub(super) size: u64,
    /// The layerdb directory actually written (`-removing` and write-set names too).
    pub(super) db_name: String,
}

/// Level by level (a child's chain ID needs its parent's), each level in parallel.
pub(super) fn write_layers(ctx: &Ctx, plan: &Plan) -> io::Result<Vec<Option<LayerDone>>> {
    let mut done: Vec<Option<LayerDone>> = vec![None; plan.layers.len()];
    for level in &plan.levels {
        let out: Vec<(u32, LayerDone)> = level
            .par_iter()
            .map(|&i| {
                let parent_chain = plan.layers[i as usize]
                    .parent
                    .map(|p| done[p as usize].as_ref().expect("parent written").chain);
                write_layer(ctx, plan, i, parent_chain).map(|d| (i, d))
            })
            .collect::<io::Result<_>>()?;
        for (i, d) in out {
            done[i as usize] = Some(d);
        }
    }
    Ok(done)
}

fn write_layer(
    ctx: &Ctx,
    plan: &Plan,
    idx: u32,
    parent_chain: Option<ChainId>,
) -> io::Result<LayerDone> {
    let diff_dir = write_driver_dir(ctx, plan, idx)?;
    let (diff, tar_split, size) = extract_contents(ctx, plan, idx, diff_dir)?;
    let chain = ChainId::child(parent_chain.as_ref(), &diff);
    let written = Written {
        diff,
        chain,
        parent_chain,
        size,
        tar_split,
    };
    let db_name = write_entry(ctx, plan, idx, &written)?;
    Ok(LayerDone {
        diff,
        chain,
        size,
        db_name,
    })
}

/// overlay2's dir for the layer, `committed` when something sits on it.
fn write_driver_dir(ctx: &Ctx, plan: &Plan, idx: u32) -> io::Result<PathBuf> {
    let lp = &plan.layers[idx as usize];
    let cache_id = &plan.cache_ids[idx as usize];
    let lower = lp.parent.map(|p| plan.lower_from(p));
    let diff_dir = ctx.driver_dir(cache_id, &plan.links[idx as usize], lower.as_deref())?;
    if lp.committed {
        ctx.commit(cache_id)?;
    }
    Ok(diff_dir)
}

/// The layer's files: `srv/<n>/` (`var/<n>/` for leftovers) with
/// `files_per_layer` files of random bytes, a hard link on every fifth
/// layer and a symlink on every third.
fn extract_contents(
    ctx: &Ctx,
    plan: &Plan,
    idx: u32,
    diff_dir: PathBuf,
) -> io::Result<(DiffId, Vec<u8>, u64)> {
    let lp = &plan.layers[idx as usize];
    let mut rng = Rng::new(plan.seed, STREAM_LAYER, u64::from(idx) | 1 << 40);
    let mut x = Extract::new(ctx, diff_dir, lp.created, plan.legacy_tar_split);
    let top = match lp.kind {
        LayerKind::Image | LayerKind::Held => "srv",
        _ => "var",
    };
    let dir = format!("{top}/{}", lp.number);
    x.dir(&format!("{top}/"))?;
    x.dir(&format!("{dir}/"))?;
    let mut body = Vec::new();
    for j in 0..plan.files_per_layer {
        let fb = plan.file_bytes;
        let len = if fb == 0 {
            0
        } else {
            fb / 2 + rng.index(fb + 1)
        };
        body.clear();
        let head = format!("synth layer {} file {j}\n", lp.number);
        body.extend_from_slice(&head.as_bytes()[..head.len().min(len)]);
        let start = body.len();
        body.resize(len, 0);
        rng.fill(&mut body[start..]);
        let perm = if j % 4 == 3 { 0o755 } else { 0o644 };
        x.file(&format!("{dir}/f{j}.bin"), perm, &body)?;
    }
    if plan.files_per_layer > 0 {
        if lp.number.is_multiple_of(5) {
            x.hardlink(&format!("{dir}/f0.link"), &format!("{dir}/f0.bin"))?;
        }
        if lp.number.is_multiple_of(3) {
            x.symlink(&format!("{dir}/current"), "f0.bin")?;
        }
    }
    x.finish()
}

/// What extracting a layer gave.
struct Written {
    diff: DiffId,
    chain: ChainId,
    parent_chain: Option<ChainId>,
    size: u64,
    tar_split: Vec<u8>,
}

/// The layerdb entry: under its chain ID, under a `-removing` name, or as a
/// write-set (no `parent` yet); orphans have none. Returns the entry's
/// directory name ("" for none).
fn write_entry(ctx: &Ctx, plan: &Plan, idx: u32, w: &Written) -> io::Result<String> {
    let lp = &plan.layers[idx as usize];
    let p = &ctx.paths;
    let mut meta_rng = Rng::new(plan.seed, STREAM_EXTRA, u64::from(idx));
    let entry = match lp.kind {
        LayerKind::Image | LayerKind::Held => p.layer_entry(&w.chain),
        LayerKind::Removing => p.removing_entry(&w.chain, &meta_rng.hex64()),
        LayerKind::WriteSet => p.write_set(&(meta_rng.next() as u32).to_string()),
        LayerKind::Orphan => return Ok(String::new()),
    };
    let db_name = entry
        .dir()
        .file_name()
        .unwrap_or_default()
        .to_string_lossy()
        .into_owned();
    ctx.dir(entry.dir(), 0o700)?;
    ctx.file(&entry.tar_split(), &w.tar_split, 0o644)?;
    ctx.file(&entry.diff(), w.diff.to_string().as_bytes(), 0o644)?;
    ctx.file(&entry.size(), w.size.to_string().as_bytes(), 0o644)?;
    let cache_id = &plan.cache_ids[idx as usize];
    ctx.file(&entry.cache_id(), cache_id.as_bytes(), 0o644)?;
    if let (Some(parent), false) = (w.parent_chain, lp.kind == LayerKind::WriteSet) {
        ctx.file(&entry.parent(), parent.to_string().as_bytes(), 0o644)?;
    }
    Ok(db_name)
}

#[cfg(test)]
mod tests {
    use super::super::SynthSpec;
    use super::super::testutil::{directory_size, make_root, mode, read, reassemble};
    use crate::ids::{ChainId, DiffId, Digest};
    use std::collections::BTreeSet;
    use std::fs;
    use std::path::{Path, PathBuf};

    /// Every layerdb entry is named by its chain ID, its `size` is its
    /// `diff/`'s, its tar-split reassembles with `diff/` to its DiffID, and
    /// its driver dir is what overlay2 `create()` makes.
    #[test]
    fn demo_layer_entries_reassemble_to_their_diff_ids() {
        let spec = SynthSpec::demo();
        let (_tmp, root, report) = make_root(&spec);
        let sha = root.join("image/overlay2/layerdb/sha256");
        let (mut layers, mut removing) = (0, 0);
        let mut cache_ids = BTreeSet::new();
        for e in fs::read_dir(&sha).unwrap() {
            let e = e.unwrap();
            let name = e.file_name().into_string().unwrap();
            assert_eq!(mode(&e.path()), 0o700);
            if name.ends_with("-removing") {
                removing += 1;
                check_removing(&root, &name, &e.path());
                continue;
            }
            layers += 1;
            let cache = check_entry(&root, &name, &e.path());
            assert!(cache_ids.insert(cache), "cache-id shared");
        }
        assert_eq!(layers, report.layers);
        assert_eq!(removing, spec.removing);
        assert_eq!(
            report.layers_size,
            report.layer_list.iter().map(|l| l.size).sum::<u64>()
        );
        for im in &report.image_list {
            let sum: u64 = im
                .chain
                .iter()
                .map(|c| {
                    read(&sha.join(c.hex()).join("size"))
                        .parse::<u64>()
                        .unwrap()
                })
                .sum();
            assert_eq!(sum, im.size);
        }
    }

    /// `<chain hex>-<64 hex>-removing`, still owning its driver dir.
    fn check_removing(root: &Path, name: &str, dir: &Path) {
        let hexes: Vec<&str> = name.split('-').collect();
        assert_eq!(hexes.len(), 3);
        assert!(crate::ids::is_hex64(hexes[0]) && crate::ids::is_hex64(hexes[1]));
        let cache = read(&dir.join("cache-id"));
        assert!(root.join("overlay2").join(cache).join("diff").is_dir());
    }

    /// One image layer's entry and driver dir; returns its cache ID.
    fn check_entry(root: &Path, name: &str, dir: &Path) -> String {
        let sha = root.join("image/overlay2/layerdb/sha256");
        let diff = DiffId::parse(&read(&dir.join("diff"))).unwrap();
        let parent = dir
            .join("parent")
            .exists()
            .then(|| ChainId::parse(&read(&dir.join("parent"))).unwrap());
        if let Some(p) = parent {
            assert!(sha.join(p.hex()).is_dir());
        }
        assert_eq!(ChainId::child(parent.as_ref(), &diff).hex(), name);
        let cache = read(&dir.join("cache-id"));
        let ddir = root.join("overlay2").join(&cache);
        let size: u64 = read(&dir.join("size")).parse().unwrap();
        assert_eq!(size, directory_size(&ddir.join("diff")), "size of {name}");
        let (stream, lines) = reassemble(&dir.join("tar-split.json.gz"), &ddir.join("diff"));
        assert_eq!(Digest::of_bytes(&stream), diff.0, "reassembled {name}");
        assert_eq!(&stream[stream.len() - 1024..], &[0u8; 1024][..]);
        let last = lines.last().unwrap();
        assert_eq!(last["payload"], "", "legacy trailing empty Segment");
        // The stream is a tar archive whose entries are the File entries.
        let mut ar = tar::Archive::new(&stream[..]);
        let names: Vec<String> = ar
            .entries()
            .unwrap()
            .map(|en| String::from_utf8(en.unwrap().path_bytes().to_vec()).unwrap())
            .collect();
        let files: Vec<String> = lines
            .iter()
            .filter(|l| l["type"] == 1)
            .map(|l| l["name"].as_str().unwrap().to_string())
            .collect();
        assert_eq!(names, files);
        for f in ["diff", "size", "cache-id", "tar-split.json.gz"] {
            assert_eq!(mode(&dir.join(f)), 0o644);
        }
        check_driver_dir(root, &ddir, parent);
        cache
    }

    /// overlay2 `create()`: link, l/ symlink, lower = l/<parent link>:<parent lower>.
    fn check_driver_dir(root: &Path, ddir: &Path, parent: Option<ChainId>) {
        let home = root.join("overlay2");
        let cache = ddir.file_name().unwrap().to_str().unwrap();
        assert_eq!(mode(ddir), 0o710);
        let link = read(&ddir.join("link"));
        assert_eq!(link.len(), 26);
        assert!(
            link.bytes()
                .all(|c| c.is_ascii_uppercase() || (b'2'..=b'7').contains(&c))
        );
        assert_eq!(
            fs::read_link(home.join("l").join(&link)).unwrap(),
            PathBuf::from(format!("../{cache}/diff"))
        );
        match parent {
            None => {
                assert!(!ddir.join("lower").exists() && !ddir.join("work").exists());
            }
            Some(p) => {
                let pdir = root.join("image/overlay2/layerdb/sha256").join(p.hex());
                let pcache = home.join(read(&pdir.join("cache-id")));
                let mut want = format!("l/{}", read(&pcache.join("link")));
                if pcache.join("lower").exists() {
                    want = format!("{want}:{}", read(&pcache.join("lower")));
                }
                assert_eq!(read(&ddir.join("lower")), want);
                assert!(pcache.join("committed").is_file());
                assert_eq!(mode(&ddir.join("work")), 0o700);
            }
        }
    }

    /// Every l/ link resolves to a directory's diff/, every directory has
    /// one and its `lower` resolves; the dirs nothing names are exactly the
    /// reported orphans (write-set layers among them).
    #[test]
    fn demo_links_lowers_and_leftovers() {
        let spec = SynthSpec::demo();
        let (_tmp, root, report) = make_root(&spec);
        let home = root.join("overlay2");
        let sha = root.join("image/overlay2/layerdb/sha256");
        let mut links = BTreeSet::new();
        for e in fs::read_dir(home.join("l")).unwrap() {
            let e = e.unwrap();
            assert!(e.path().join(".").is_dir(), "dangling l/ link");
            links.insert(e.file_name().into_string().unwrap());
        }
        let dirs: Vec<String> = fs::read_dir(&home)
            .unwrap()
            .map(|e| e.unwrap().file_name().into_string().unwrap())
            .filter(|n| n != "l")
            .collect();
        for name in &dirs {
            assert!(links.contains(&read(&home.join(name).join("link"))));
            if let Ok(lower) = fs::read_to_string(home.join(name).join("lower")) {
                for part in lower.split(':') {
                    assert!(home.join(part).join(".").is_dir(), "{name}: lower {part}");
                }
            }
        }
        assert_eq!(links.len(), dirs.len());
        // Entries own their driver dirs, `-removing` ones still too.
        let owned: BTreeSet<String> = fs::read_dir(&sha)
            .unwrap()
            .map(|e| read(&e.unwrap().path().join("cache-id")))
            .collect();
        let unreferenced: BTreeSet<String> = dirs
            .into_iter()
            .filter(|n| !owned.contains(n))
            .filter(|n| {
                !report
                    .container_list
                    .iter()
                    .any(|c| n.starts_with(&c.mount_id))
            })
            .collect();
        assert_eq!(
            unreferenced,
            report.orphan_dirs.iter().cloned().collect::<BTreeSet<_>>()
        );
        assert_eq!(unreferenced.len(), spec.orphan_dirs + spec.write_sets);

        let ws: Vec<String> = fs::read_dir(root.join("image/overlay2/layerdb/tmp"))
            .unwrap()
            .map(|e| e.unwrap().file_name().into_string().unwrap())
            .collect();
        assert_eq!(ws.len(), spec.write_sets);
        assert!(ws.iter().all(|w| w.starts_with("write-set-")));
    }

    #[test]
    fn modern_tar_split_has_no_trailing_empty_segment() {
        let mut spec = SynthSpec::demo();
        spec.legacy_tar_split = false;
        spec.containers = 0;
        let (_tmp, root, report) = make_root(&spec);
        let l = &report.layer_list[0];
        let dir = root
            .join("image/overlay2/layerdb/sha256")
            .join(l.chain_id.hex());
        let diff = root.join("overlay2").join(&l.cache_id).join("diff");
        let (stream, lines) = reassemble(&dir.join("tar-split.json.gz"), &diff);
        assert_eq!(Digest::of_bytes(&stream), l.diff_id.0);
        assert_eq!(lines.last().unwrap()["type"], 2);
        assert_ne!(lines.last().unwrap()["payload"], "");
    }
}
