//! Which executor may change a store now, and why: the one place that
//! decides. Today the filesystem executor runs only while no daemon is alive
//! on the root, holding the root's locks for the whole run; otherwise the
//! run is refused with the reason.

use crate::store::daemon::{self, Busy, RootGuard};
use std::path::Path;

/// How a prune may change the store.
pub enum Mode {
    /// The daemon is stopped: the filesystem executor, holding the root.
    Offline(RootGuard),
}

impl Mode {
    /// The word reports and metrics use.
    pub fn name(&self) -> &'static str {
        match self {
            Mode::Offline(_) => "offline",
        }
    }
}

/// Why no executor may run.
#[derive(Debug)]
pub struct Refusal {
    pub why: Busy,
}

impl std::fmt::Display for Refusal {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        self.why.fmt(f)
    }
}

/// The mode for a real run on `root`.
pub fn choose(root: &Path) -> Result<Mode, Refusal> {
    daemon::guard(root)
        .map(Mode::Offline)
        .map_err(|why| Refusal { why })
}

/// For a dry run, which changes nothing: why a real run would be refused now.
pub fn would_refuse(root: &Path) -> Option<Busy> {
    daemon::daemon_alive(root)
}

/// Why a containerd store is never pruned offline: dockgc does not write
/// containerd's metadata (its own API is the only safe writer: a prune
/// edits meta.db, the metastores and the content store together, under
/// the locks containerd holds). With a live Docker 29 daemon the Engine
/// API path applies; otherwise these commands do it.
#[derive(Debug)]
pub struct ContainerdRefusal {
    pub root: std::path::PathBuf,
    pub namespace: String,
}

impl std::fmt::Display for ContainerdRefusal {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "refusing to prune the containerd store at {}: dockgc never writes containerd's \
             metadata. Prune through containerd instead: `docker image prune` (Docker 29, \
             namespace moby), `nerdctl image prune` (nerdctl, namespace default), \
             `crictl rmi --prune` (Kubernetes, namespace k8s.io), and `ctr -n {} content \
             prune references` for content nothing references. `dockgc prune --dry-run` lists \
             what containerd's next garbage collection deletes.",
            self.root.display(),
            self.namespace
        )
    }
}

/// The mode for a real run on a containerd store: none offline, ever.
pub fn choose_containerd(root: &Path, namespace: &str) -> Result<Mode, ContainerdRefusal> {
    Err(ContainerdRefusal {
        root: root.to_path_buf(),
        namespace: namespace.to_string(),
    })
}
