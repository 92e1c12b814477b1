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
pub use layout::Layout;
pub use snapshot::*;

use std::path::Path;

/// What to read beyond what every command needs, and how.
#[derive(Debug, Clone, Default)]
pub struct LoadOptions {
    /// Each driver dir's `lower` file (for verify's driver-dir check).
    pub lower: bool,
    /// The storage driver to read (`--driver`), over the daemon's configured
    /// one and its prior-driver scan.
    pub driver: Option<String>,
}

/// Reads the whole root, everything included.
pub fn load(root: &Path) -> Result<Snapshot, StoreError> {
    load_with(
        root,
        LoadOptions {
            lower: true,
            driver: None,
        },
    )
}

/// Reads the root with the source its layout calls for: the driver given,
/// else the daemon's configured one ([`daemon::configured_driver`]), else
/// the one the daemon's prior-driver scan picks.
pub fn load_with(root: &Path, opts: LoadOptions) -> Result<Snapshot, StoreError> {
    let layout = detect(root, &opts)?;
    Ok(load_layout(root, layout, &opts))
}

/// Which store `root` is and its driver, as [`load_with`] decides it.
pub fn detect(root: &Path, opts: &LoadOptions) -> Result<Layout, StoreError> {
    let configured = match &opts.driver {
        Some(d) => Some(daemon::ConfiguredDriver {
            name: d.clone(),
            source: "--driver".into(),
        }),
        None => daemon::configured_driver(root),
    };
    layout::detect(root, configured.as_ref())
}

/// Reads the root as the store `layout` detected.
pub fn load_layout(root: &Path, layout: Layout, opts: &LoadOptions) -> Snapshot {
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
    snap
}
