//! Reading a data root into a [`Snapshot`]. `layout` decides which store a
//! root is; the store's source module reads it. Everything here only reads;
//! every malformed item becomes an [`Anomaly`], and only a root that is not
//! a readable root of a store dockgc handles is an error.

mod containers;
pub mod daemon;
mod error;
mod fsread;
pub mod graphdriver;
mod layout;
pub mod paths;
mod snapshot;
mod volumes;

pub use error::StoreError;
pub use graphdriver::{parse_size, parse_time};
pub use snapshot::*;

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

/// Reads the root with the source its layout calls for, and its volumes.
pub fn load_with(root: &Path, opts: LoadOptions) -> Result<Snapshot, StoreError> {
    let layout = layout::detect(root)?;
    let docker = paths::DockerRoot::new(root);
    let (mut snap, (volumes, anomalies)) = rayon::join(
        || graphdriver::read(root, layout, opts),
        || volumes::read(&docker),
    );
    snap.volumes = volumes;
    if !anomalies.is_empty() {
        snap.anomalies.extend(anomalies);
        snap.anomalies
            .sort_by(|a, b| (&a.path, a.kind).cmp(&(&b.path, b.kind)));
    }
    Ok(snap)
}
