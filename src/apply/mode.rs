//! Which executor may change a store now, and why: the one place that
//! decides.
//!
//! * Offline: no daemon is alive on the root. The filesystem executor runs,
//!   holding the root's locks for the whole run, so no dockerd can start
//!   meanwhile. This is the mode that works when the disk is full or the
//!   daemon will not start.
//! * Live: a dockerd is alive on the root, or the user named one (`--host`,
//!   `DOCKER_HOST`). The plan runs through its Engine API, so its memory
//!   stays true. Without a name the address is the live daemon's own
//!   socket; nothing ever connects when no daemon is alive, because with
//!   socket activation a connection starts one.
//!
//! A live daemon whose data root is this root, readable here, with its
//! images in the graphdriver store, lets the plan come from the disk
//! (cross-checked against the API); otherwise it comes from the API alone.

use crate::engine::{Engine, EngineError, Host};
use crate::store::daemon::{self, Busy, RootGuard, RunLock};
use std::path::Path;

/// What the user asked for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Want {
    /// Live when a daemon is alive (or named), else offline.
    #[default]
    Auto,
    Offline,
    Live,
}

/// How a prune may change the store.
pub enum Mode {
    /// The daemon is stopped: the filesystem executor, holding the root
    /// (a dry run holds nothing).
    Offline(Option<RootGuard>),
    /// Through a running daemon (boxed: a connection is large, and one
    /// mode is made per run).
    Live(Box<LiveTarget>),
}

pub struct LiveTarget {
    pub engine: Engine,
    /// The root is this daemon's, readable, and holds its images: the plan
    /// comes from the disk, and a real run holds the root's dockgc lock.
    /// `Err`: the plan comes from the API alone, for this reason.
    pub disk: Result<Option<RunLock>, String>,
}

impl Mode {
    /// The word reports and metrics use.
    pub fn name(&self) -> &'static str {
        match self {
            Mode::Offline(_) => "offline",
            Mode::Live(_) => "live",
        }
    }
}

/// Why no executor may run.
#[derive(Debug, thiserror::Error)]
pub enum Refusal {
    #[error("{0}")]
    Busy(Busy),
    #[error("--live: no dockerd is alive on {0}; start it, or name one with --host")]
    NoDaemon(String),
    #[error("{0}")]
    Unreachable(EngineError),
    #[error("cannot find the daemon's socket: {0}; name it with --host")]
    NoSocket(String),
}

impl Refusal {
    /// The message after "refusing to <what> <root>: ", not naming the root
    /// again.
    pub fn after_root(&self, root: &Path) -> String {
        match self {
            Refusal::Busy(b) => b.after_root(root),
            Refusal::NoDaemon(_) => {
                "--live: no dockerd is alive on it; start it, or name one with --host".into()
            }
            other => other.to_string(),
        }
    }
}

/// The mode for a real run on `root`, its locks taken.
pub fn choose(root: &Path, want: Want, host: Option<&Host>) -> Result<Mode, Refusal> {
    decide(root, want, host, true)
}

/// The mode a real run would use now, for a dry run: the same rules, no
/// locks taken (a held lock would stop a starting dockerd).
pub fn look(root: &Path, want: Want, host: Option<&Host>) -> Result<Mode, Refusal> {
    decide(root, want, host, false)
}

fn offline(root: &Path, lock: bool) -> Result<Mode, Refusal> {
    if lock {
        return daemon::guard(root)
            .map(|g| Mode::Offline(Some(g)))
            .map_err(Refusal::Busy);
    }
    match daemon::daemon_alive(root) {
        Some(b) => Err(Refusal::Busy(b)),
        None => Ok(Mode::Offline(None)),
    }
}

fn decide(root: &Path, want: Want, host: Option<&Host>, lock: bool) -> Result<Mode, Refusal> {
    if want == Want::Offline {
        return offline(root, lock);
    }
    let alive = daemon::daemon_alive(root);
    let named = host;
    let host = match (host, alive) {
        (_, Some(b @ Busy::LockHeld { .. })) => return Err(Refusal::Busy(b)),
        // A root that cannot be examined (absent or unreadable here: a
        // remote, rootless or Desktop daemon's) says nothing about the
        // daemon the user named: plan from its API alone.
        (Some(h), Some(Busy::Io { .. })) => h.clone(),
        (None, Some(b @ Busy::Io { .. })) => return Err(Refusal::Busy(b)),
        (Some(h), _) => h.clone(),
        (None, Some(Busy::DaemonRunning { pid, .. })) => match discover(pid) {
            Ok(h) => h,
            Err(_) if daemon::daemon_alive(root).is_none() => return no_daemon(root, want, lock),
            Err(e) => return Err(e),
        },
        (None, None) => return no_daemon(root, want, lock),
    };
    let engine = match Engine::connect(&host) {
        Ok(e) => e,
        // The daemon found alive may have stopped since (a restart, a
        // shutdown under way): with no daemon named, what is true now
        // decides.
        Err(_) if named.is_none() && daemon::daemon_alive(root).is_none() => {
            return no_daemon(root, want, lock);
        }
        Err(e) => return Err(Refusal::Unreachable(e)),
    };
    let disk = match disk_usable(&engine, root) {
        Ok(ours) if lock => Ok(Some(daemon::run_lock(&ours).map_err(Refusal::Busy)?)),
        Ok(_) => Ok(None),
        Err(why) => Err(why),
    };
    Ok(Mode::Live(Box::new(LiveTarget { engine, disk })))
}

/// No daemon is alive on `root` and none was named: offline, unless the
/// user asked for a daemon.
fn no_daemon(root: &Path, want: Want, lock: bool) -> Result<Mode, Refusal> {
    match want {
        Want::Live => Err(Refusal::NoDaemon(root.display().to_string())),
        _ => offline(root, lock),
    }
}

/// The address of dockerd `pid` (0: unknown, the default socket).
fn discover(pid: u32) -> Result<Host, Refusal> {
    if pid == 0 {
        return Ok(Host::Unix("/var/run/docker.sock".into()));
    }
    let l = daemon::dockerd_listeners(pid).map_err(Refusal::NoSocket)?;
    crate::engine::host::of_listeners(&l).map_err(Refusal::NoSocket)
}

/// Whether the plan may come from `root`: it is the daemon's root, as far
/// as both sides can tell, readable here, and the daemon keeps its images
/// in the graphdriver store there.
fn disk_usable(engine: &Engine, root: &Path) -> Result<std::path::PathBuf, String> {
    let info = &engine.info;
    if info.containerd_store {
        return Err(format!(
            "the daemon keeps its images in containerd ({}), not in {}",
            info.driver,
            root.display()
        ));
    }
    let ours = std::fs::canonicalize(root)
        .map_err(|e| format!("{} is not readable here: {e}", root.display()))?;
    let same = match &info.root_dir {
        Some(theirs) => std::fs::canonicalize(theirs).ok().as_deref() == Some(ours.as_path()),
        None => false,
    };
    if !same {
        return Err(format!(
            "the daemon's data root is {}, not {}",
            info.root_dir
                .as_deref()
                .map_or("unknown".into(), |p| p.display().to_string()),
            ours.display()
        ));
    }
    // Reading the store needs its image metadata; a root we cannot list is
    // the daemon's but not ours to read.
    std::fs::read_dir(ours.join("image"))
        .map_err(|e| format!("{}: {e}", ours.join("image").display()))?;
    Ok(ours)
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

/// The mode for a real run on a containerd store: never offline. A dockerd
/// alive on the (Docker) root, or named with `--host`, prunes through its
/// Engine API, planned from the API alone (the disk is not its graphdriver
/// store); otherwise the run is refused with the commands that work.
/// `docker_root` is the Docker root in containerd mode this containerd
/// serves, if any: only its dockerd may prune these images.
pub fn choose_containerd(
    containerd_root: &Path,
    docker_root: Option<&Path>,
    namespace: &str,
    want: Want,
    host: Option<&Host>,
) -> Result<Mode, ContainerdRefusal> {
    if let Some(root) = docker_root
        && want != Want::Offline
    {
        // Only look for a daemon when one runs or is named: `decide` would
        // otherwise take the offline locks.
        let alive = matches!(daemon::daemon_alive(root), Some(Busy::DaemonRunning { .. }));
        if (alive || host.is_some())
            && let Ok(m @ Mode::Live(_)) = decide(root, want, host, true)
        {
            return Ok(m);
        }
    }
    Err(ContainerdRefusal {
        root: containerd_root.to_path_buf(),
        namespace: namespace.to_string(),
    })
}
