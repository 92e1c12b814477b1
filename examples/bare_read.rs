//! Benchmark anchor: the least work that reads the same metadata `dockgc df`
//! reads. It lists imagedb, layerdb, mounts, containers and the overlay2 home
//! and reads every small file in them in parallel, with no parsing or model.
//! `dockgc df` is measured against this (README, "Performance").
//!
//! `cargo run --release --example bare_read -- ROOT`

use rayon::prelude::*;
use std::fs;
use std::path::{Path, PathBuf};
use std::time::Instant;

fn files_in(dir: &Path) -> Vec<PathBuf> {
    fs::read_dir(dir)
        .map(|rd| rd.flatten().map(|e| e.path()).collect())
        .unwrap_or_default()
}

fn main() {
    let root = PathBuf::from(std::env::args().nth(1).expect("usage: bare_read ROOT"));
    let t = Instant::now();
    let img = root.join("image/overlay2");
    let mut bytes = fs::read(img.join("repositories.json")).map_or(0, |b| b.len());
    // config files, and the three metadata files of each image
    let configs = files_in(&img.join("imagedb/content/sha256"));
    bytes += configs
        .par_iter()
        .map(|p| {
            let meta = img
                .join("imagedb/metadata/sha256")
                .join(p.file_name().unwrap());
            fs::read(p).map_or(0, |b| b.len())
                + ["parent", "lastUpdated", "builtLocally"]
                    .iter()
                    .map(|k| fs::read(meta.join(k)).map_or(0, |b| b.len()))
                    .sum::<usize>()
        })
        .sum::<usize>();
    // the layer files
    let layers = files_in(&img.join("layerdb/sha256"));
    bytes += layers
        .par_iter()
        .map(|d| {
            ["diff", "size", "cache-id", "parent"]
                .iter()
                .map(|k| fs::read(d.join(k)).map_or(0, |b| b.len()))
                .sum::<usize>()
        })
        .sum::<usize>();
    let mounts = files_in(&img.join("layerdb/mounts"));
    bytes += mounts
        .par_iter()
        .map(|d| {
            ["mount-id", "init-id", "parent"]
                .iter()
                .map(|k| fs::read(d.join(k)).map_or(0, |b| b.len()))
                .sum::<usize>()
        })
        .sum::<usize>();
    let containers = files_in(&root.join("containers"));
    bytes += containers
        .par_iter()
        .map(|d| fs::read(d.join("config.v2.json")).map_or(0, |b| b.len()))
        .sum::<usize>();
    // each driver dir: its link and diff/ (df reads no lower); each l/ link
    let dirs = files_in(&root.join("overlay2"));
    bytes += dirs
        .par_iter()
        .map(|d| {
            let _ = fs::symlink_metadata(d.join("diff"));
            fs::read(d.join("link")).map_or(0, |b| b.len())
        })
        .sum::<usize>();
    let links = files_in(&root.join("overlay2/l"));
    links.par_iter().for_each(|l| {
        let _ = fs::read_link(l);
    });
    println!(
        "bare_read: {} configs, {} layers, {} driver dirs, {} links, {} bytes in {:.3}s",
        configs.len(),
        layers.len(),
        dirs.len(),
        links.len(),
        bytes,
        t.elapsed().as_secs_f64()
    );
}
