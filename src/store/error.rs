//! Errors that stop a scan before it starts: the root is not something we read.
//! Everything found *inside* a readable root is an `Anomaly` instead.

use std::path::PathBuf;

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("{path}: cannot read the data root: {cause}")]
    Unreadable {
        path: PathBuf,
        /// Said in the message, so not a `source()` too (it would print twice).
        cause: std::io::Error,
    },
    #[error("{path}: not a Docker data root (no image/<driver>/ directory)")]
    NotDockerRoot { path: PathBuf },
    #[error(
        "{path}: this root uses the containerd image store; `df`, `verify` and `prune \
         --dry-run` read it (with --containerd-root DIR if containerd's root is not \
         /var/lib/containerd or <root>/containerd/daemon), other commands do not"
    )]
    ContainerdStore { path: PathBuf },
    #[error(transparent)]
    Containerd(#[from] super::containerd::OpenError),
    /// `why`: how the driver was chosen (configured where, or found how).
    #[error("{path}: graph driver {driver:?} ({why}) is not supported (dockgc handles overlay2)")]
    UnsupportedDriver {
        path: PathBuf,
        driver: String,
        why: String,
    },
    #[error(
        "{path}: several graph drivers have state here ({drivers}) and none is configured; \
         dockerd refuses to start on such a root (\"contains several valid graphdrivers ... \
         Please cleanup or explicitly choose storage driver (-s <DRIVER>)\"); configure the \
         daemon's storage-driver, or pass --driver NAME to read one of them"
    )]
    AmbiguousDriver { path: PathBuf, drivers: String },
    #[error("{path}: this is the parent of a user-namespace remapped root; pass --root {remapped}")]
    UsernsParent { path: PathBuf, remapped: PathBuf },
    #[error(
        "{path}: this looks like a rootless Docker data root (~/.local/share/docker), \
         which dockgc does not handle yet"
    )]
    Rootless { path: PathBuf },
}
