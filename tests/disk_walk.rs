//! `df --disk`'s one walk on a generated root made awkward on purpose: files
//! hard-linked across categories, and another file system mounted below the
//! root. The walk must still add up to `du -x -s -B1`, charge each inode
//! once (to the first category holding a name for it), and name the mount
//! instead of counting it.

mod support;

use serde_json::Value;
use std::fs;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::process::Command;

fn df_disk(root: &Path) -> Value {
    let out = support::dockgc()
        .arg("--root")
        .arg(root)
        .args(["df", "--disk", "--format", "json"])
        .output()
        .expect("run dockgc");
    assert!(
        out.status.success(),
        "dockgc df --disk: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).expect("df --disk JSON")
}

fn category(disk: &Value, name: &str) -> u64 {
    disk["categories"]
        .as_array()
        .expect("categories")
        .iter()
        .find(|c| c["name"] == name)
        .and_then(|c| c["bytes"].as_u64())
        .unwrap_or_else(|| panic!("no category {name}: {disk:#}"))
}

/// `du -x -s -B1 root`: one file system, each inode once.
fn du(root: &Path) -> u64 {
    let out = Command::new("du")
        .args(["-x", "-s", "-B1"])
        .arg(root)
        .output()
        .expect("run du");
    assert!(out.status.success(), "du: {out:?}");
    String::from_utf8_lossy(&out.stdout)
        .split_whitespace()
        .next()
        .and_then(|n| n.parse().ok())
        .expect("du's total")
}

/// A regular file of an image layer's `diff/` (the generated root has one
/// per layer).
fn a_layer_file(root: &Path) -> PathBuf {
    let mut dirs: Vec<PathBuf> = fs::read_dir(root.join("overlay2"))
        .unwrap()
        .map(|e| e.unwrap().path().join("diff"))
        .filter(|d| d.is_dir())
        .collect();
    dirs.sort();
    for d in dirs {
        for e in walkdir(&d) {
            if fs::symlink_metadata(&e).is_ok_and(|m| m.is_file() && m.len() > 0) {
                return e;
            }
        }
    }
    panic!("no layer file under {}", root.display());
}

fn walkdir(d: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    let mut stack = vec![d.to_path_buf()];
    while let Some(p) = stack.pop() {
        for e in fs::read_dir(&p).unwrap() {
            let p = e.unwrap().path();
            if fs::symlink_metadata(&p).unwrap().is_dir() {
                stack.push(p);
            } else {
                out.push(p);
            }
        }
    }
    out.sort();
    out
}

/// Mounts a small tmpfs at `dir`, unmounted on drop.
struct Tmpfs(PathBuf);

impl Tmpfs {
    fn mount(dir: &Path) -> Option<Tmpfs> {
        let out = Command::new("mount")
            .args(["-t", "tmpfs", "-o", "size=4m", "tmpfs"])
            .arg(dir)
            .output()
            .expect("run mount");
        if out.status.success() {
            return Some(Tmpfs(dir.to_path_buf()));
        }
        let why = String::from_utf8_lossy(&out.stderr);
        assert!(
            !support::docker_required(),
            "cannot mount a tmpfs (CI runs as root): {why}"
        );
        eprintln!("SKIPPED: cannot mount a tmpfs here: {why}");
        None
    }
}

impl Drop for Tmpfs {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg(&self.0).status();
    }
}

#[test]
fn one_walk_charges_hard_links_once_and_names_other_file_systems() {
    let t = tempfile::tempdir().unwrap();
    let root = t.path().join("root");
    dockgc::synth::generate(&root, &dockgc::synth::SynthSpec::demo()).unwrap();
    let before = df_disk(&root)["disk"].clone();
    assert_eq!(
        before["total_bytes"].as_u64(),
        Some(du(&root)),
        "{before:#}"
    );

    // A layer file with a name in a volume and in a container's directory
    // too, made big enough that counting it twice would show.
    let file = a_layer_file(&root);
    fs::write(&file, vec![7u8; 256 << 10]).unwrap();
    let before = df_disk(&root)["disk"].clone();
    let vol = root.join("volumes/linked/_data");
    fs::create_dir_all(&vol).unwrap();
    fs::hard_link(&file, vol.join("same-inode")).unwrap();
    let container = fs::read_dir(root.join("containers"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .find(|p| p.is_dir())
        .expect("a container dir");
    fs::hard_link(&file, container.join("same-inode")).unwrap();
    // Another file system below the root, with bytes of its own.
    let mnt = root.join("volumes/mounted/_data");
    fs::create_dir_all(&mnt).unwrap();
    let Some(_tmpfs) = Tmpfs::mount(&mnt) else {
        return;
    };
    fs::write(mnt.join("elsewhere"), vec![1u8; 1 << 20]).unwrap();

    let after = df_disk(&root)["disk"].clone();
    let total = after["total_bytes"].as_u64().unwrap();
    assert_eq!(total, du(&root), "total != du -x -s -B1: {after:#}");
    let sum: u64 = after["categories"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["bytes"].as_u64().unwrap())
        .sum();
    assert_eq!(sum, total, "categories do not add up: {after:#}");
    // The inode stays with the image layers; the volumes row gains only
    // the new directories on this file system (`volumes` itself, as the
    // demo root has none, `linked`, `linked/_data` and `mounted`), not the
    // mount point, whose tmpfs is another file system.
    assert!(!before_had_volumes(&before), "{before:#}");
    let dir_bytes: u64 = [
        "volumes",
        "volumes/linked",
        "volumes/linked/_data",
        "volumes/mounted",
    ]
    .iter()
    .map(|d| fs::symlink_metadata(root.join(d)).unwrap().blocks() * 512)
    .sum();
    assert_eq!(
        category(&after, "image-layers"),
        category(&before, "image-layers"),
        "the hard-linked layer file moved category: {after:#}"
    );
    assert_eq!(category(&after, "volumes"), dir_bytes, "volumes: {after:#}");
    // Nothing else moved: the container gained a name, not bytes.
    for c in [
        "image-metadata",
        "container-rw",
        "logs",
        "build-cache",
        "orphans",
        "other",
    ] {
        assert_eq!(category(&after, c), category(&before, c), "{c}: {after:#}");
    }
    assert_eq!(
        after["other_filesystems"],
        serde_json::json!([mnt]),
        "the tmpfs is named, not counted: {after:#}"
    );
}

fn before_had_volumes(before: &Value) -> bool {
    before["categories"]
        .as_array()
        .unwrap()
        .iter()
        .any(|c| c["name"] == "volumes" && c["bytes"].as_u64() > Some(0))
}
