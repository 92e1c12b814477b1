//! Reading a data root into a [`Snapshot`]. One file per on-disk area.
//! Everything here only reads; every malformed item becomes an [`Anomaly`],
//! and only a root that is not a readable graphdriver root is an error.

mod buildkit;
mod containers;
pub mod daemon;
mod error;
mod fsread;
mod imagedb;
mod layerdb;
mod layout;
mod model;
mod overlay2;
mod refs;

pub use error::StoreError;
pub use imagedb::parse_time;
pub use layerdb::parse_size;
pub use model::*;

use std::path::Path;

/// What to read beyond what every command needs.
#[derive(Debug, Clone, Copy)]
pub struct LoadOptions {
    /// Each driver dir's `lower` file (for verify's driver-dir check).
    pub lower: bool,
}

/// Reads the whole root, everything included.
pub fn load(root: &Path) -> Result<Snapshot, StoreError> {
    load_with(root, LoadOptions { lower: true })
}

/// Reads the root. The independent areas are read concurrently; each
/// area reader parallelises over its own entries.
pub fn load_with(root: &Path, opts: LoadOptions) -> Result<Snapshot, StoreError> {
    let layout = layout::detect(root)?;
    let image_dir = root.join("image").join(&layout.driver);

    let ((refs, images), (ldb, (containers, home))) = rayon::join(
        || {
            rayon::join(
                || refs::read(&image_dir.join("repositories.json")),
                || imagedb::read(&image_dir.join("imagedb")),
            )
        },
        || {
            rayon::join(
                || layerdb::read(&image_dir.join("layerdb")),
                || {
                    rayon::join(
                        || containers::read(&root.join("containers")),
                        || overlay2::read(&root.join(&layout.driver), opts.lower),
                    )
                },
            )
        },
    );

    let candidates = home
        .dirs
        .keys()
        .map(String::as_str)
        .chain(ldb.layers.values().map(|l| l.cache_id.0.as_str()));
    let chain_hex: Vec<String> = ldb.layers.keys().map(|c| c.hex()).collect();
    let buildkit = buildkit::read(root, candidates.chain(chain_hex.iter().map(String::as_str)));

    let mut anomalies = Vec::new();
    let mut unresolved = ldb.unresolved;
    unresolved.extend(containers.2);
    unresolved.sort();
    anomalies.extend(refs.1);
    anomalies.extend(images.1);
    anomalies.extend(ldb.anomalies);
    anomalies.extend(containers.1);
    anomalies.extend(home.anomalies);
    anomalies.sort_by(|a, b| (&a.path, a.kind).cmp(&(&b.path, b.kind)));

    Ok(Snapshot {
        root: root.to_path_buf(),
        driver: layout.driver,
        engine_id_present: layout.engine_id_present,
        refs: refs.0,
        images: images.0,
        layers: ldb.layers,
        mounts: ldb.mounts,
        containers: containers.0,
        driver_dirs: home.dirs,
        links: home.links,
        removing: ldb.removing,
        broken_layers: ldb.broken,
        write_sets: ldb.write_sets,
        buildkit,
        anomalies,
        unresolved,
    })
}
