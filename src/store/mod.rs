//! Reading a data root into a [`Snapshot`]. `layout` decides which store a
//! root is; the store's source module reads it. Everything here only reads;
//! every malformed item becomes an [`Anomaly`], and only a root that is not
//! a readable root of a store dockgc handles is an error.

pub mod containerd;
mod containers;
pub mod daemon;
mod error;
pub(crate) mod fsread;
pub mod graphdriver;
mod layout;
pub mod paths;
mod snapshot;
mod volumes;

pub use error::StoreError;
pub use fsread::{GiveUpOnDrop, SharedListings};
pub use graphdriver::{parse_size, parse_time};
pub use layout::Layout;
pub use snapshot::*;

use std::path::{Path, PathBuf};

/// What to read beyond what every command needs, and how.
#[derive(Debug, Clone, Default)]
pub struct LoadOptions {
    /// Each driver dir's `lower` file (for verify's driver-dir check).
    pub lower: bool,
    /// The storage driver to read (`--driver`), over the daemon's configured
    /// one and its prior-driver scan.
    pub driver: Option<String>,
    /// Listings to hand to a disk walk running meanwhile.
    pub share: Option<std::sync::Arc<fsread::SharedListings>>,
}

/// Reads the whole root, everything included.
pub fn load(root: &Path) -> Result<Snapshot, StoreError> {
    load_with(
        root,
        LoadOptions {
            lower: true,
            driver: None,
            share: None,
        },
    )
}

/// Reads the root with the source its layout calls for: the driver given,
/// else the daemon's configured one ([`daemon::configured_driver`]), else
/// the one the daemon's prior-driver scan picks.
/// A containerd store is refused here (`StoreError::ContainerdStore`):
/// commands that handle one call [`open`].
pub fn load_with(root: &Path, opts: LoadOptions) -> Result<Snapshot, StoreError> {
    let layout = detect(root, &opts)?;
    Ok(load_layout(root, layout, &opts))
}

/// Which store `root` is and its driver, as [`load_with`] decides it.
pub fn detect(root: &Path, opts: &LoadOptions) -> Result<Layout, StoreError> {
    layout::detect(root, configured(root, opts).as_ref())
}

/// Reads the root as the store `layout` detected.
pub fn load_layout(root: &Path, layout: Layout, opts: &LoadOptions) -> Snapshot {
    let docker = paths::DockerRoot::new(root);
    let (mut snap, (volumes, anomalies)) = rayon::join(
        || graphdriver::read(root, layout, opts),
        || volumes::read(&docker, opts.share.as_deref()),
    );
    snap.volumes = volumes;
    if !anomalies.is_empty() {
        snap.anomalies.extend(anomalies);
        snap.anomalies
            .sort_by(|a, b| (&a.path, a.kind).cmp(&(&b.path, b.kind)));
    }
    snap
}

/// The driver given with `--driver`, else the daemon's configured one.
fn configured(root: &Path, opts: &LoadOptions) -> Option<daemon::ConfiguredDriver> {
    match &opts.driver {
        Some(d) => Some(daemon::ConfiguredDriver {
            name: d.clone(),
            source: "--driver".into(),
        }),
        None => daemon::configured_driver(root),
    }
}

/// Where a containerd store is and what of it to report.
#[derive(Debug, Clone, Default)]
pub struct ContainerdOptions {
    /// `--containerd-root`: read this containerd root, whatever `root` is.
    pub root: Option<PathBuf>,
    /// `--namespace`: a namespace, or `all`; default `moby`.
    pub namespace: Option<String>,
}

/// Whether `root` is a containerd store (a containerd root, or a Docker
/// root in containerd mode), without reading it.
pub fn is_containerd(root: &Path) -> bool {
    matches!(
        layout::detect_store(root, configured(root, &LoadOptions::default()).as_ref()),
        Ok(layout::Store::Containerd { .. })
    )
}

/// Reads whatever store `root` is: a graphdriver root, a Docker root in
/// containerd mode (then the containerd root serving it), or a containerd
/// root itself; `--containerd-root` overrides the search.
pub fn open(
    root: &Path,
    ctrd: &ContainerdOptions,
    opts: LoadOptions,
) -> Result<Snapshot, StoreError> {
    let scope = match ctrd.namespace.as_deref() {
        None => containerd::Scope::One(containerd::MOBY.into()),
        Some("all") => containerd::Scope::All,
        Some(ns) => containerd::Scope::One(ns.into()),
    };
    let read = |croot: PathBuf, docker_root: Option<PathBuf>| {
        containerd::read(&containerd::Options {
            root: croot,
            docker_root,
            scope: scope.clone(),
            walk_active: true,
            check_dirs: opts.lower,
        })
        .map_err(StoreError::from)
    };
    let store = layout::detect_store(root, configured(root, &opts).as_ref());
    if let Some(croot) = &ctrd.root {
        // The Docker root counts only if it is one in containerd mode.
        let docker =
            matches!(store, Ok(layout::Store::Containerd { .. })).then(|| root.to_path_buf());
        return read(croot.clone(), docker);
    }
    match store? {
        layout::Store::Graphdriver => load_with(root, opts),
        layout::Store::Containerd { docker_root: None } => read(root.to_path_buf(), None),
        layout::Store::Containerd {
            docker_root: Some(d),
        } => read(containerd::root_for_docker(&d), Some(d)),
    }
}
