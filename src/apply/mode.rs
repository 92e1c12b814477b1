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
