//! Is a dockerd alive on this data root, and keeping one from starting while
//! dockgc changes it (moby `pkg/pidfile/pidfile.go`; the bbolt flocks of
//! `daemon/volume/service/store.go`; live-restore in `daemon/daemon.go` `restore`).
//!
//! Docker has no lock of its own on the data root. What it does hold while it
//! runs is bbolt's exclusive `flock` on `<root>/volumes/metadata.db`, taken
//! with `LOCK_NB` and a 1 s retry before any image data is touched (Engine ≥
//! 24). [`guard`] holds that same lock for the whole run, so a dockerd that
//! starts meanwhile (for example through `docker.socket` activation) gives up
//! at volume-store init. Because the lock only exists once dockerd has run on
//! the root, [`guard`] also looks for a live `dockerd` process whose effective
//! data root is this root, and locks the root directory itself against a
//! second dockgc.
//!
//! Nothing here connects to `docker.sock`: with socket activation, connecting
//! would start the very daemon we are checking for.
//!
//! The parsing helpers ([`parse_dockerd_args`], [`data_root_from_daemon_json`],
//! [`parse_mountinfo`], [`parse_proc_locks`] and a few smaller ones) are pure;
//! everything that reads `/proc` is kept apart from them.

use std::ffi::OsString;
use std::fs::{self, File, TryLockError};
use std::io;
use std::os::unix::ffi::{OsStrExt, OsStringExt};
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

/// How to stop the daemon; every [`Busy`] message ends with it.
const STOP_HINT: &str = "stop it with `systemctl stop docker.socket docker.service` \
     (the socket re-activates dockerd), or kill the private dockerd";

/// Why a root may not be changed now.
#[derive(Debug, thiserror::Error)]
pub enum Busy {
    /// A dockerd is alive on this root. `pid` is 0 when unknown; `how` says
    /// how it was found: `"pid file /var/run/docker.pid"`, `"process scan"`
    /// or `"holds <root>/volumes/metadata.db"`.
    #[error("{} is running on this data root ({how}); {stop}", daemon_name(*.pid), stop = STOP_HINT)]
    DaemonRunning { pid: u32, how: String },
    /// Another dockgc run holds the root lock.
    #[error(
        "another dockgc run holds the lock on {path}; wait for it to finish. \
         dockerd must stay stopped as well: {stop}",
        stop = STOP_HINT
    )]
    LockHeld { path: PathBuf },
    /// The check itself failed.
    #[error(
        "cannot tell whether dockerd is running on this data root: {path}: {cause}; \
         make sure it is stopped: {stop}",
        stop = STOP_HINT
    )]
    Io { path: PathBuf, cause: io::Error },
}

impl Busy {
    /// The message for a sentence that has named `root` already
    /// ("refusing to prune <root>: ..."): where the lock or the failed check
    /// is the root itself, it is not named a second time.
    pub fn after_root(&self, root: &Path) -> String {
        match self {
            Busy::LockHeld { path } if path == root => format!(
                "another dockgc run holds its lock; wait for it to finish. \
                 dockerd must stay stopped as well: {STOP_HINT}"
            ),
            Busy::Io { path, cause } if path == root => format!(
                "cannot tell whether dockerd is running on it: {cause}; \
                 make sure it is stopped: {STOP_HINT}"
            ),
            other => other.to_string(),
        }
    }
}

fn daemon_name(pid: u32) -> String {
    if pid == 0 {
        "a dockerd (pid unknown)".to_string()
    } else {
        format!("dockerd (pid {pid})")
    }
}

fn io_err(path: &Path) -> impl FnOnce(io::Error) -> Busy + '_ {
    move |cause| Busy::Io {
        path: path.to_path_buf(),
        cause,
    }
}

/// Held for a whole mutating run; dropping it releases the locks.
#[derive(Debug)]
pub struct RootGuard {
    root: PathBuf,
    /// `flock(LOCK_EX)` on the root directory: one dockgc at a time.
    _root_lock: Flock,
    /// `flock(LOCK_EX)` on `<root>/volumes/metadata.db`, when it exists: a
    /// dockerd starting meanwhile fails at volume-store init.
    volumes_lock: Option<Flock>,
}

/// A held `flock`, released explicitly when dropped. Closing the descriptor
/// alone is not enough: a child process forked meanwhile (by any thread)
/// shares the open file description until its `exec`, and with it the lock.
#[derive(Debug)]
struct Flock(File);

impl Drop for Flock {
    fn drop(&mut self) {
        let _ = self.0.unlock();
    }
}

impl RootGuard {
    /// The canonical path of the guarded root.
    pub fn root(&self) -> &Path {
        &self.root
    }

    /// Whether `<root>/volumes/metadata.db` existed and is held.
    pub fn holds_volume_db(&self) -> bool {
        self.volumes_lock.is_some()
    }
}

/// The lock one dockgc run at a time holds on a root a live daemon runs on
/// (the live executor's runs; the daemon keeps its own locks).
#[derive(Debug)]
pub struct RunLock {
    _lock: Flock,
}

/// `flock(LOCK_EX|LOCK_NB)` on `<root>` only → [`Busy::LockHeld`] if
/// another dockgc holds it.
pub fn run_lock(root: &Path) -> Result<RunLock, Busy> {
    let target = Target::new(root)?;
    let f = File::open(&target.path).map_err(io_err(&target.path))?;
    match f.try_lock() {
        Ok(()) => Ok(RunLock { _lock: Flock(f) }),
        Err(TryLockError::WouldBlock) => Err(Busy::LockHeld { path: target.path }),
        Err(TryLockError::Error(e)) => Err(io_err(&target.path)(e)),
    }
}

/// Refuses if a dockerd is alive on this root, then takes the locks:
/// 1. `flock(LOCK_EX|LOCK_NB)` on `<root>` itself (a directory fd) →
///    [`Busy::LockHeld`] if another dockgc holds it;
/// 2. `flock(LOCK_EX|LOCK_NB)` on `<root>/volumes/metadata.db` if it exists →
///    [`Busy::DaemonRunning`] (how = `"holds …"`) if it would block; held for
///    the whole run, so a dockerd (Engine ≥ 24) starting meanwhile fails at
///    volume-store init;
/// 3. liveness, as in [`daemon_alive`]: a live `dockerd` process whose
///    effective data root is this root.
///
/// The locks are taken before the liveness scan so that no daemon can slip in
/// between the two; on refusal they are released again.
pub fn guard(root: &Path) -> Result<RootGuard, Busy> {
    let target = Target::new(root)?;
    let root_lock = File::open(&target.path).map_err(io_err(&target.path))?;
    match root_lock.try_lock() {
        Ok(()) => {}
        Err(TryLockError::WouldBlock) => {
            return Err(Busy::LockHeld {
                path: target.path.clone(),
            });
        }
        Err(TryLockError::Error(e)) => return Err(io_err(&target.path)(e)),
    }
    let root_lock = Flock(root_lock);

    let db = volume_db(&target.path);
    let volumes_lock = match File::open(&db) {
        Ok(f) => match f.try_lock() {
            Ok(()) => Some(Flock(f)),
            Err(TryLockError::WouldBlock) => {
                let me = std::process::id();
                let holders = lock_holders(&db);
                // Prefer another process; our own pid means this process
                // opened and locked the file elsewhere.
                let pid = holders
                    .iter()
                    .copied()
                    .find(|&p| p != me)
                    .or_else(|| holders.first().copied())
                    .unwrap_or(0);
                return Err(Busy::DaemonRunning {
                    pid,
                    how: format!("holds {}", db.display()),
                });
            }
            Err(TryLockError::Error(e)) => return Err(io_err(&db)(e)),
        },
        Err(e) if e.kind() == io::ErrorKind::NotFound => None,
        Err(e) => return Err(io_err(&db)(e)),
    };

    if let Some(busy) = liveness(&target) {
        return Err(busy);
    }
    Ok(RootGuard {
        root: target.path,
        _root_lock: root_lock,
        volumes_lock,
    })
}

/// The same liveness test without taking locks (for dry runs and reports):
/// `Some(reason)` if a daemon is alive on root.
///
/// Besides the process and pid-file scan it reads `/proc/locks`: a lock on
/// `<root>/volumes/metadata.db` held by another process is reported as
/// [`Busy::DaemonRunning`], unless that process also locks the root directory
/// (another dockgc's [`guard`]), which is [`Busy::LockHeld`], as is a lock on
/// the root directory alone. Locks held by this process are ignored, so a
/// caller holding a [`RootGuard`] may still ask.
pub fn daemon_alive(root: &Path) -> Option<Busy> {
    let target = match Target::new(root) {
        Ok(t) => t,
        Err(busy) => return Some(busy),
    };
    if let Some(busy) = liveness(&target) {
        return Some(busy);
    }
    let locks = match fs::read("/proc/locks") {
        Ok(text) => parse_proc_locks(&text),
        Err(e) => return Some(io_err(Path::new("/proc/locks"))(e)),
    };
    let me = std::process::id();
    let others = |path: &Path| -> Vec<u32> {
        let Ok(md) = fs::metadata(path) else {
            return Vec::new();
        };
        let mut pids: Vec<u32> = locks
            .iter()
            .filter(|l| l.is_file(md.dev(), md.ino()) && l.pid != i64::from(me))
            .map(|l| u32::try_from(l.pid).unwrap_or(0))
            .collect();
        pids.sort_unstable();
        pids.dedup();
        pids
    };
    let root_holders = others(&target.path);
    let db = volume_db(&target.path);
    if let Some(&pid) = others(&db).first() {
        if pid != 0 && root_holders.contains(&pid) {
            return Some(Busy::LockHeld { path: target.path });
        }
        return Some(Busy::DaemonRunning {
            pid,
            how: format!("holds {}", db.display()),
        });
    }
    if !root_holders.is_empty() {
        return Some(Busy::LockHeld { path: target.path });
    }
    None
}

/// Mount points at or below `root`, from `/proc/self/mountinfo` (octal
/// escapes like `\040` decoded), sorted. Nothing under these may be deleted
/// (live-restore containers keep overlays mounted while dockerd is down).
pub fn mounts_below(root: &Path) -> io::Result<Vec<PathBuf>> {
    mounts_below_in(root, &fs::read("/proc/self/mountinfo")?)
}

/// [`mounts_below`] of a mountinfo text, and the overlay option paths of
/// every overlay mount ([`overlay_option_paths`]): what is in use now.
pub fn mounted_now() -> io::Result<(Vec<PathBuf>, Vec<PathBuf>)> {
    let text = fs::read("/proc/self/mountinfo")?;
    Ok((parse_mountinfo(&text), overlay_option_paths(&text)))
}

fn mounts_below_in(root: &Path, text: &[u8]) -> io::Result<Vec<PathBuf>> {
    let root = root.canonicalize()?;
    let mut out: Vec<PathBuf> = parse_mountinfo(text)
        .into_iter()
        .filter(|m| m.starts_with(&root))
        .collect();
    out.sort();
    out.dedup();
    Ok(out)
}

// ---------------------------------------------------------------------------
// The root we are asked about.

/// A root, canonicalized, with its identity on disk.
struct Target {
    path: PathBuf,
    dev: u64,
    ino: u64,
}

impl Target {
    fn new(root: &Path) -> Result<Target, Busy> {
        let path = root.canonicalize().map_err(io_err(root))?;
        let md = fs::metadata(&path).map_err(io_err(&path))?;
        Ok(Target {
            dev: md.dev(),
            ino: md.ino(),
            path,
        })
    }

    /// Whether `p` is this root: same inode, or the same canonical path.
    fn is(&self, p: &Path) -> bool {
        if let Ok(md) = fs::metadata(p)
            && md.dev() == self.dev
            && md.ino() == self.ino
        {
            return true;
        }
        p.canonicalize().is_ok_and(|c| c == self.path)
    }
}

fn volume_db(root: &Path) -> PathBuf {
    super::paths::DockerRoot::new(root).volume_db()
}

/// Pids holding (not waiting for) a lock on `path`, from `/proc/locks`.
fn lock_holders(path: &Path) -> Vec<u32> {
    let (Ok(md), Ok(text)) = (fs::metadata(path), fs::read("/proc/locks")) else {
        return Vec::new();
    };
    parse_proc_locks(&text)
        .into_iter()
        .filter(|l| l.is_file(md.dev(), md.ino()))
        .filter_map(|l| u32::try_from(l.pid).ok().filter(|&p| p != 0))
        .collect()
}

// ---------------------------------------------------------------------------
// Liveness: pid files and the process scan.

/// The pid files dockerd writes by default: rootful, and rootless in the
/// caller's `$XDG_RUNTIME_DIR`.
fn pid_files() -> Vec<PathBuf> {
    let mut v = vec![
        PathBuf::from("/var/run/docker.pid"),
        PathBuf::from("/run/docker.pid"),
    ];
    if let Some(dir) = std::env::var_os("XDG_RUNTIME_DIR").filter(|d| !d.is_empty()) {
        v.push(Path::new(&dir).join("docker.pid"));
    }
    v
}

enum Match {
    No,
    Yes,
    /// A live dockerd whose data root cannot be determined: treated as busy.
    Unknown(String),
}

fn liveness(target: &Target) -> Option<Busy> {
    match find_dockerd(target) {
        Err(busy) => Some(busy),
        Ok(None) => None,
        Ok(Some((pid, how, Match::Unknown(why)))) => Some(Busy::DaemonRunning {
            pid,
            how: format!("{how}; its data root cannot be determined ({why})"),
        }),
        Ok(Some((pid, how, _))) => Some(Busy::DaemonRunning { pid, how }),
    }
}

/// A dockerd that may be running on `target` (pid files first, then the
/// process scan), with how it was found: the first whose data root is
/// `target` ([`Match::Yes`]), else the first whose data root is unknown.
fn find_dockerd(target: &Target) -> Result<Option<(u32, String, Match)>, Busy> {
    let mut unknown = None;
    let mut consider = |pid: u32, how: &dyn Fn() -> String| match check_pid(pid, target) {
        Match::No => None,
        Match::Yes => Some((pid, how(), Match::Yes)),
        m @ Match::Unknown(_) => {
            if unknown.is_none() {
                unknown = Some((pid, how(), m));
            }
            None
        }
    };
    for pf in pid_files() {
        // A missing or unreadable pid file proves nothing; the scan follows.
        let Some(pid) = fs::read(&pf).ok().and_then(|t| parse_pid_file(&t)) else {
            continue;
        };
        if let Some(found) = consider(pid, &|| format!("pid file {}", pf.display())) {
            return Ok(Some(found));
        }
    }
    let me = std::process::id();
    let dir = fs::read_dir("/proc").map_err(io_err(Path::new("/proc")))?;
    for entry in dir.flatten() {
        let Some(pid) = entry
            .file_name()
            .to_str()
            .and_then(|s| s.parse::<u32>().ok())
        else {
            continue;
        };
        if pid == me {
            continue;
        }
        if let Some(found) = consider(pid, &|| "process scan".to_string()) {
            return Ok(Some(found));
        }
    }
    Ok(unknown)
}

/// Whether `pid` is a live dockerd on `target`.
fn check_pid(pid: u32, target: &Target) -> Match {
    let proc = PathBuf::from(format!("/proc/{pid}"));
    // Any failure to read comm or stat means the process is gone.
    let Ok(comm) = fs::read(proc.join("comm")) else {
        return Match::No;
    };
    if comm.trim_ascii_end() != b"dockerd" {
        return Match::No;
    }
    match fs::read(proc.join("stat"))
        .ok()
        .and_then(|s| parse_stat_state(&s))
    {
        Some(b'Z' | b'X') | None => return Match::No,
        Some(_) => {}
    }
    match dockerd_root(pid) {
        // Only an exiting process has an empty command line (its memory is
        // already released, before it turns zombie): a daemon on its way out
        // holds nothing dockgc must wait for.
        Err(why) if why == EXITING => Match::No,
        Ok(paths) => {
            if paths.iter().any(|p| target.is(p)) {
                Match::Yes
            } else {
                Match::No
            }
        }
        // It may have exited while we looked.
        Err(_) if !proc.exists() => Match::No,
        Err(why) => Match::Unknown(why),
    }
}

/// Why a dockerd's settings cannot be read: it is exiting (empty
/// `/proc/<pid>/cmdline`).
const EXITING: &str = "the process is exiting (empty command line)";

/// Paths (as seen from here) naming the effective data root of dockerd
/// `pid`: its flag, else `data-root` from the daemon.json it uses, else the
/// default. Paths are looked up through `/proc/<pid>/root` and
/// `/proc/<pid>/cwd`, so a dockerd in another mount namespace is judged by its
/// own view; when those are not accessible the plain absolute path is used.
fn dockerd_root(pid: u32) -> Result<Vec<PathBuf>, String> {
    let proc = PathBuf::from(format!("/proc/{pid}"));
    let cmdline = fs::read(proc.join("cmdline"))
        .map_err(|e| format!("cannot read {}: {e}", proc.join("cmdline").display()))?;
    let args = split_nul(&cmdline);
    if args.is_empty() {
        return Err(EXITING.to_string());
    }
    let flags = parse_dockerd_args(&args);
    if let Some(root) = &flags.data_root {
        return Ok(in_namespace(pid, root));
    }

    let env = fs::read(proc.join("environ"))
        .map(|e| split_nul(&e))
        .unwrap_or_default();
    let rootless = env_get(&env, "ROOTLESSKIT_STATE_DIR").is_some();
    if let Some((config, text)) = dockerd_config(pid, &flags, &env)?
        && let Some(root) =
            data_root_from_daemon_json(&text).map_err(|e| format!("{}: {e}", config.display()))?
    {
        return Ok(in_namespace(pid, &root));
    }
    let default = if rootless {
        xdg_dir(&env, "XDG_DATA_HOME", ".local/share")?.join("docker")
    } else {
        PathBuf::from("/var/lib/docker")
    };
    Ok(in_namespace(pid, &default))
}

/// The daemon.json dockerd `pid` reads, and its text: `--config-file`, else
/// the default (rootless: under `$XDG_CONFIG_HOME`). `None` when the default
/// file does not exist (dockerd runs without one).
fn dockerd_config(
    pid: u32,
    flags: &DockerdFlags,
    env: &[OsString],
) -> Result<Option<(PathBuf, Vec<u8>)>, String> {
    let rootless = env_get(env, "ROOTLESSKIT_STATE_DIR").is_some();
    let explicit = flags.config_file.is_some();
    let config = match &flags.config_file {
        Some(c) => c.clone(),
        None if rootless => xdg_dir(env, "XDG_CONFIG_HOME", ".config")?
            .join("docker")
            .join("daemon.json"),
        None => PathBuf::from(SYSTEM_DAEMON_JSON),
    };
    match read_in_namespace(pid, &config) {
        Ok(text) => Ok(Some((config, text))),
        // dockerd refuses to start without an explicitly named config file,
        // so that one was removed after it started: its content is unknown.
        Err(e) if e.kind() == io::ErrorKind::NotFound && !explicit => Ok(None),
        Err(e) => Err(format!("cannot read {}: {e}", config.display())),
    }
}

/// Where a dockerd listens for the Engine API.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Listeners {
    /// Its `-H` flags, else `hosts` of its daemon.json, as written
    /// (`unix:///p`, `tcp://h:p`, `fd://`); empty when it uses its default.
    pub hosts: Vec<String>,
    /// Its default socket (`/var/run/docker.sock`, or
    /// `$XDG_RUNTIME_DIR/docker.sock` when rootless).
    pub default_socket: PathBuf,
    /// Prefix for its unix socket paths as seen from here
    /// (`/proc/<pid>/root` when that is readable, else empty).
    pub seen_from: PathBuf,
}

/// The Engine API listeners of dockerd `pid` (moby `cmd/dockerd/daemon.go`
/// `loadListeners`; `hosts` in daemon.json is the same option as `-H`).
pub fn dockerd_listeners(pid: u32) -> Result<Listeners, String> {
    let proc = PathBuf::from(format!("/proc/{pid}"));
    let cmdline = fs::read(proc.join("cmdline"))
        .map_err(|e| format!("cannot read {}: {e}", proc.join("cmdline").display()))?;
    let args = split_nul(&cmdline);
    if args.is_empty() {
        // Guessing the default socket here would name another daemon.
        return Err(format!("dockerd {pid}: {EXITING}"));
    }
    let flags = parse_dockerd_args(&args);
    let env = fs::read(proc.join("environ"))
        .map(|e| split_nul(&e))
        .unwrap_or_default();
    let mut hosts = flags.hosts.clone();
    if hosts.is_empty()
        && let Some((path, text)) = dockerd_config(pid, &flags, &env)?
    {
        hosts = hosts_from_daemon_json(&text).map_err(|e| format!("{}: {e}", path.display()))?;
    }
    let default_socket = if env_get(&env, "ROOTLESSKIT_STATE_DIR").is_some() {
        let run = env_get(&env, "XDG_RUNTIME_DIR")
            .filter(|v| !v.is_empty())
            .ok_or("a rootless dockerd without XDG_RUNTIME_DIR")?;
        PathBuf::from(run).join("docker.sock")
    } else {
        PathBuf::from("/var/run/docker.sock")
    };
    // A daemon in another mount namespace is reached through its root; one
    // that shares ours by the plain path, which reads better in messages.
    let via_root = proc.join("root");
    let same = |a: &fs::Metadata, b: &fs::Metadata| a.dev() == b.dev() && a.ino() == b.ino();
    let seen_from = match (fs::metadata(via_root.join(".")), fs::metadata("/")) {
        (Ok(theirs), Ok(ours)) if !same(&theirs, &ours) => via_root,
        _ => PathBuf::new(),
    };
    Ok(Listeners {
        hosts,
        default_socket,
        seen_from,
    })
}

/// `$var`, else `$HOME/<fallback>`, from a process environment.
fn xdg_dir(env: &[OsString], var: &str, fallback: &str) -> Result<PathBuf, String> {
    if let Some(v) = env_get(env, var).filter(|v| !v.is_empty()) {
        return Ok(PathBuf::from(v));
    }
    match env_get(env, "HOME").filter(|v| !v.is_empty()) {
        Some(home) => Ok(PathBuf::from(home).join(fallback)),
        None => Err(format!("rootless dockerd without ${var} or $HOME")),
    }
}

/// Where `p`, as dockerd `pid` names it, is reachable from here: through its
/// cwd or root, and, for an absolute path, the path itself as a fallback.
fn in_namespace(pid: u32, p: &Path) -> Vec<PathBuf> {
    let proc = PathBuf::from(format!("/proc/{pid}"));
    match p.strip_prefix("/") {
        Ok(rel) => {
            let via_root = proc.join("root").join(rel);
            // Without access to /proc/<pid>/root (not root, other user), the
            // plain path is the best we have.
            match fs::metadata(&via_root) {
                Err(e) if e.kind() == io::ErrorKind::PermissionDenied => vec![p.to_path_buf()],
                _ => vec![via_root],
            }
        }
        Err(_) => vec![proc.join("cwd").join(p)],
    }
}

fn read_in_namespace(pid: u32, p: &Path) -> io::Result<Vec<u8>> {
    let mut last = io::Error::from(io::ErrorKind::NotFound);
    for candidate in in_namespace(pid, p) {
        match fs::read(&candidate) {
            Ok(t) => return Ok(t),
            Err(e) => last = e,
        }
    }
    Err(last)
}

fn env_get(env: &[OsString], key: &str) -> Option<OsString> {
    env.iter().rev().find_map(|kv| {
        let b = kv.as_bytes();
        let rest = b.strip_prefix(key.as_bytes())?.strip_prefix(b"=")?;
        Some(OsString::from_vec(rest.to_vec()))
    })
}

// ---------------------------------------------------------------------------
// The storage driver a daemon is configured with.

/// The daemon.json of the system's dockerd.
const SYSTEM_DAEMON_JSON: &str = "/etc/docker/daemon.json";

/// A storage driver set by the user or a daemon's configuration, and where
/// it was found, for messages (`"--driver"`, `"--storage-driver of dockerd
/// (pid 42)"`, `"storage-driver in /etc/docker/daemon.json"`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfiguredDriver {
    pub name: String,
    pub source: String,
}

/// The storage driver the daemon of `root` is configured with, as dockerd
/// takes it (moby `daemon/daemon.go` `NewDaemon`: `$DOCKER_DRIVER`, else
/// the `storage-driver` setting, from `-s`/`--storage-driver` or daemon.json).
///
/// * A live dockerd on `root`: its `$DOCKER_DRIVER`, `-s`, or
///   `storage-driver` in the daemon.json it reads (`--config-file`).
/// * Otherwise `/etc/docker/daemon.json`, if the data root it sets
///   (`data-root`, default `/var/lib/docker`) is `root`.
///
/// `None`: nothing configured that dockgc can see; the daemon then scans for
/// prior state. A daemon.json that cannot be read or parsed counts as
/// configuring nothing (dockerd would not start with it).
pub fn configured_driver(root: &Path) -> Option<ConfiguredDriver> {
    configured_driver_in(root, Path::new(SYSTEM_DAEMON_JSON))
}

fn configured_driver_in(root: &Path, system_json: &Path) -> Option<ConfiguredDriver> {
    let target = Target::new(root).ok()?;
    if let Ok(Some((pid, _, Match::Yes))) = find_dockerd(&target) {
        // The running daemon's own settings decide, whatever the files say.
        return live_driver(pid);
    }
    let text = fs::read(system_json).ok()?;
    let data_root = data_root_from_daemon_json(&text)
        .ok()?
        .unwrap_or_else(|| PathBuf::from("/var/lib/docker"));
    if !target.is(&data_root) {
        return None;
    }
    storage_driver_from_daemon_json(&text)
        .ok()?
        .map(|name| ConfiguredDriver {
            name,
            source: format!("storage-driver in {}", system_json.display()),
        })
}

/// The storage driver of live dockerd `pid`.
fn live_driver(pid: u32) -> Option<ConfiguredDriver> {
    let proc = PathBuf::from(format!("/proc/{pid}"));
    let args = split_nul(&fs::read(proc.join("cmdline")).ok()?);
    let env = fs::read(proc.join("environ"))
        .map(|e| split_nul(&e))
        .unwrap_or_default();
    let found = |name: OsString, how: &str| {
        Some(ConfiguredDriver {
            name: name.to_string_lossy().into_owned(),
            source: format!("{how} of dockerd (pid {pid})"),
        })
    };
    if let Some(d) = env_get(&env, "DOCKER_DRIVER").filter(|d| !d.is_empty()) {
        return found(d, "$DOCKER_DRIVER");
    }
    let flags = parse_dockerd_args(&args);
    if let Some(d) = flags.storage_driver.clone().filter(|d| !d.is_empty()) {
        return found(d, "--storage-driver");
    }
    let (config, text) = dockerd_config(pid, &flags, &env).ok()??;
    storage_driver_from_daemon_json(&text)
        .ok()?
        .map(|name| ConfiguredDriver {
            name,
            source: format!(
                "storage-driver in {} of dockerd (pid {pid})",
                config.display()
            ),
        })
}

// ---------------------------------------------------------------------------
// Pure parsing helpers.

/// The dockerd flags that decide its data root and storage driver.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct DockerdFlags {
    /// `--data-root X`, `--data-root=X`, `--graph X`, `-g X` (last wins).
    pub data_root: Option<PathBuf>,
    /// `--config-file X` / `--config-file=X` (last wins).
    pub config_file: Option<PathBuf>,
    /// `--storage-driver X`, `-s X` (last wins).
    pub storage_driver: Option<OsString>,
    /// `-H X`, `--host X`, `--host=X`, in order (every one is listened on).
    pub hosts: Vec<String>,
}

/// dockerd's short flags that take no value (may be combined: `-Dg /x`).
const SHORT_BOOL: &[u8] = b"Dvh";
/// dockerd's short flags that take a value (`-g X`, `-g=X`, `-gX`).
const SHORT_VALUE: &[u8] = b"bgGHlps";

/// Reads the data-root, config-file and storage-driver flags from a dockerd command line
/// (`args[0]` is the program), with pflag's rules: long flags as `--f X` or
/// `--f=X`, short flags as `-g X`, `-g=X`, `-gX` or combined after boolean
/// shorts, the last occurrence wins, and `--` ends the flags.
pub fn parse_dockerd_args(args: &[OsString]) -> DockerdFlags {
    let mut out = DockerdFlags::default();
    let mut i = 1;
    while i < args.len() {
        let a = args[i].as_bytes();
        i += 1;
        if a == b"--" {
            break;
        }
        if let Some(long) = a.strip_prefix(b"--") {
            let (name, inline) = match long.iter().position(|&b| b == b'=') {
                Some(p) => (&long[..p], Some(&long[p + 1..])),
                None => (long, None),
            };
            let mut driver = None;
            let mut host = None;
            let slot = match name {
                b"data-root" | b"graph" => &mut out.data_root,
                b"config-file" => &mut out.config_file,
                b"storage-driver" => &mut driver,
                b"host" => &mut host,
                _ => continue,
            };
            let value = match inline {
                Some(v) => v,
                None => match args.get(i) {
                    Some(v) => {
                        i += 1;
                        v.as_bytes()
                    }
                    None => break,
                },
            };
            *slot = Some(path_of(value));
            if let Some(d) = driver {
                out.storage_driver = Some(d.into_os_string());
            }
            if let Some(h) = host {
                out.hosts.push(h.to_string_lossy().into_owned());
            }
        } else if let Some(shorts) = a.strip_prefix(b"-") {
            for (j, &c) in shorts.iter().enumerate() {
                if SHORT_BOOL.contains(&c) {
                    continue;
                }
                if SHORT_VALUE.contains(&c) {
                    let rest = &shorts[j + 1..];
                    let value = if rest.is_empty() {
                        match args.get(i) {
                            Some(v) => {
                                i += 1;
                                v.as_bytes()
                            }
                            None => break,
                        }
                    } else {
                        rest.strip_prefix(b"=").unwrap_or(rest)
                    };
                    match c {
                        b'g' => out.data_root = Some(path_of(value)),
                        b's' => out.storage_driver = Some(path_of(value).into_os_string()),
                        b'H' => out.hosts.push(String::from_utf8_lossy(value).into_owned()),
                        _ => {}
                    }
                }
                // A value flag consumed the rest; an unknown one ends the group.
                break;
            }
        }
    }
    out
}

fn path_of(b: &[u8]) -> PathBuf {
    PathBuf::from(OsString::from_vec(b.to_vec()))
}

/// The data root a daemon.json sets: `data-root`, else the older `graph`;
/// `None` if neither is set (or empty). Errors if the text is not a JSON
/// object or the key is not a string, as dockerd itself would refuse it.
pub fn data_root_from_daemon_json(text: &[u8]) -> Result<Option<PathBuf>, String> {
    let v: serde_json::Value =
        serde_json::from_slice(text).map_err(|e| format!("invalid JSON: {e}"))?;
    let obj = v
        .as_object()
        .ok_or_else(|| "not a JSON object".to_string())?;
    for key in ["data-root", "graph"] {
        match obj.get(key) {
            None => {}
            Some(serde_json::Value::String(s)) if s.is_empty() => {}
            Some(serde_json::Value::String(s)) => return Ok(Some(PathBuf::from(s))),
            Some(other) => return Err(format!("{key:?} is not a string: {other}")),
        }
    }
    Ok(None)
}

/// The storage driver a daemon.json sets (`storage-driver`), `None` if unset
/// or empty; errors as [`data_root_from_daemon_json`].
pub fn storage_driver_from_daemon_json(text: &[u8]) -> Result<Option<String>, String> {
    let v: serde_json::Value =
        serde_json::from_slice(text).map_err(|e| format!("invalid JSON: {e}"))?;
    let obj = v
        .as_object()
        .ok_or_else(|| "not a JSON object".to_string())?;
    match obj.get("storage-driver") {
        None => Ok(None),
        Some(serde_json::Value::String(s)) if s.is_empty() => Ok(None),
        Some(serde_json::Value::String(s)) => Ok(Some(s.clone())),
        Some(other) => Err(format!("\"storage-driver\" is not a string: {other}")),
    }
}

/// `hosts` of a daemon.json: the listeners dockerd uses when no `-H` is given.
pub fn hosts_from_daemon_json(text: &[u8]) -> Result<Vec<String>, String> {
    let v: serde_json::Value =
        serde_json::from_slice(text).map_err(|e| format!("invalid JSON: {e}"))?;
    let obj = v
        .as_object()
        .ok_or_else(|| "not a JSON object".to_string())?;
    match obj.get("hosts") {
        None | Some(serde_json::Value::Null) => Ok(Vec::new()),
        Some(serde_json::Value::Array(a)) => a
            .iter()
            .map(|h| {
                h.as_str()
                    .map(str::to_string)
                    .ok_or_else(|| format!("\"hosts\" has a value that is not a string: {h}"))
            })
            .collect(),
        Some(other) => Err(format!("\"hosts\" is not a list: {other}")),
    }
}

/// Mount points (field 5) of `/proc/<pid>/mountinfo` text, octal escapes
/// decoded, in file order.
pub fn parse_mountinfo(text: &[u8]) -> Vec<PathBuf> {
    text.split(|&b| b == b'\n')
        .filter_map(|line| line.split(|&b| b == b' ').nth(4))
        .filter(|m| m.starts_with(b"/"))
        .map(|m| path_of(&unescape_octal(m)))
        .collect()
}

/// The paths overlay mounts name in their options (`lowerdir`, `upperdir`,
/// `workdir`; lower dirs split on `:`), octal escapes decoded, as written:
/// absolute, or relative to the driver home (`l/<link>`) when dockerd
/// mounted from there to fit a long lower chain into one page.
pub fn overlay_option_paths(text: &[u8]) -> Vec<PathBuf> {
    let mut out = Vec::new();
    for line in text.split(|&b| b == b'\n') {
        let Some(sep) = memchr::memmem::find(line, b" - ") else {
            continue;
        };
        let mut tail = line[sep + 3..].split(|&b| b == b' ');
        if tail.next() != Some(b"overlay".as_slice()) {
            continue;
        }
        let Some(opts) = tail.nth(1) else { continue };
        for opt in opts.split(|&b| b == b',') {
            let Some(eq) = opt.iter().position(|&b| b == b'=') else {
                continue;
            };
            if !matches!(&opt[..eq], b"lowerdir" | b"upperdir" | b"workdir") {
                continue;
            }
            out.extend(
                opt[eq + 1..]
                    .split(|&b| b == b':')
                    .filter(|p| !p.is_empty())
                    .map(|p| path_of(&unescape_octal(p))),
            );
        }
    }
    out
}

/// Decodes the kernel's `\ooo` escapes (space, tab, newline, backslash);
/// anything else is kept as is.
pub fn unescape_octal(s: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(s.len());
    let mut i = 0;
    while i < s.len() {
        if s[i] == b'\\'
            && i + 4 <= s.len()
            && s[i + 1..i + 4].iter().all(|c| (b'0'..=b'7').contains(c))
        {
            let v = s[i + 1..i + 4]
                .iter()
                .fold(0u32, |acc, c| acc * 8 + u32::from(c - b'0'));
            if let Ok(b) = u8::try_from(v) {
                out.push(b);
                i += 4;
                continue;
            }
        }
        out.push(s[i]);
        i += 1;
    }
    out
}

/// One held lock from `/proc/locks`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ProcLock {
    /// The locking process (-1 or 0 when the kernel does not say).
    pub pid: i64,
    pub major: u32,
    pub minor: u32,
    pub ino: u64,
}

impl ProcLock {
    /// Whether this lock is on the file with `st_dev` `dev` and inode `ino`.
    pub fn is_file(&self, dev: u64, ino: u64) -> bool {
        self.ino == ino && self.major == dev_major(dev) && self.minor == dev_minor(dev)
    }
}

/// Held locks in `/proc/locks` text (`1: FLOCK  ADVISORY  WRITE 1234
/// fe:00:5398705 0 EOF`); waiters (`1: -> FLOCK …`) are skipped.
pub fn parse_proc_locks(text: &[u8]) -> Vec<ProcLock> {
    let mut out = Vec::new();
    for line in text.split(|&b| b == b'\n') {
        let toks: Vec<&[u8]> = line
            .split(|b| b.is_ascii_whitespace())
            .filter(|t| !t.is_empty())
            .collect();
        if toks.get(1) == Some(&&b"->"[..]) {
            continue;
        }
        let Some(k) = toks.iter().position(|t| parse_lock_dev(t).is_some()) else {
            continue;
        };
        let (Some((major, minor, ino)), Some(pid)) = (
            parse_lock_dev(toks[k]),
            k.checked_sub(1)
                .and_then(|p| std::str::from_utf8(toks[p]).ok())
                .and_then(|s| s.parse::<i64>().ok()),
        ) else {
            continue;
        };
        out.push(ProcLock {
            pid,
            major,
            minor,
            ino,
        });
    }
    out
}

/// `maj:min:ino`, major and minor in hex, inode in decimal.
fn parse_lock_dev(t: &[u8]) -> Option<(u32, u32, u64)> {
    let s = std::str::from_utf8(t).ok()?;
    let mut it = s.split(':');
    let (maj, min, ino) = (it.next()?, it.next()?, it.next()?);
    if it.next().is_some() {
        return None;
    }
    Some((
        u32::from_str_radix(maj, 16).ok()?,
        u32::from_str_radix(min, 16).ok()?,
        ino.parse().ok()?,
    ))
}

/// glibc's `gnu_dev_major`.
pub fn dev_major(dev: u64) -> u32 {
    (((dev >> 8) & 0xfff) | ((dev >> 32) & !0xfff)) as u32
}

/// glibc's `gnu_dev_minor`.
pub fn dev_minor(dev: u64) -> u32 {
    ((dev & 0xff) | ((dev >> 12) & !0xff)) as u32
}

/// A pid file's pid: decimal, surrounding whitespace allowed, not 0.
pub fn parse_pid_file(text: &[u8]) -> Option<u32> {
    std::str::from_utf8(text.trim_ascii())
        .ok()?
        .parse()
        .ok()
        .filter(|&p| p != 0)
}

/// The state letter of `/proc/<pid>/stat` (after the parenthesised comm,
/// which may itself contain `)` and spaces).
pub fn parse_stat_state(stat: &[u8]) -> Option<u8> {
    let close = stat.iter().rposition(|&b| b == b')')?;
    stat.get(close + 1..)?
        .iter()
        .copied()
        .find(|b| !b.is_ascii_whitespace())
}

/// NUL-separated fields (`/proc/<pid>/cmdline`, `environ`); a trailing NUL
/// does not make an empty last field.
pub fn split_nul(b: &[u8]) -> Vec<OsString> {
    let b = b.strip_suffix(b"\0").unwrap_or(b);
    if b.is_empty() {
        return Vec::new();
    }
    b.split(|&c| c == 0)
        .map(|f| OsString::from_vec(f.to_vec()))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::{BufRead, BufReader, Write};
    use std::process::{Command, Stdio};
    use std::time::{Duration, Instant};

    fn args(v: &[&str]) -> Vec<OsString> {
        v.iter().map(OsString::from).collect()
    }

    fn root_of(v: &[&str]) -> Option<PathBuf> {
        parse_dockerd_args(&args(v)).data_root
    }

    #[test]
    fn host_flags_accumulate() {
        let f = parse_dockerd_args(&args(&[
            "dockerd",
            "-H",
            "unix:///a.sock",
            "--host=tcp://0.0.0.0:2375",
            "-Hfd://",
            "--host",
            "unix:///b.sock",
            "-D",
        ]));
        assert_eq!(
            f.hosts,
            [
                "unix:///a.sock",
                "tcp://0.0.0.0:2375",
                "fd://",
                "unix:///b.sock"
            ]
        );
        assert_eq!(
            hosts_from_daemon_json(br#"{"hosts": ["unix:///x.sock", "tcp://1.2.3.4:2375"]}"#)
                .unwrap(),
            ["unix:///x.sock", "tcp://1.2.3.4:2375"]
        );
        assert!(hosts_from_daemon_json(br#"{}"#).unwrap().is_empty());
        assert!(hosts_from_daemon_json(br#"{"hosts": "unix:///x"}"#).is_err());
    }

    #[test]
    fn args_data_root_forms() {
        assert_eq!(root_of(&["dockerd"]), None);
        assert_eq!(
            root_of(&["dockerd", "--data-root", "/x"]),
            Some("/x".into())
        );
        assert_eq!(
            root_of(&["dockerd", "--data-root=/x y"]),
            Some("/x y".into())
        );
        assert_eq!(root_of(&["dockerd", "--graph", "/g"]), Some("/g".into()));
        assert_eq!(root_of(&["dockerd", "--graph=/g"]), Some("/g".into()));
        assert_eq!(root_of(&["dockerd", "-g", "/g"]), Some("/g".into()));
        assert_eq!(root_of(&["dockerd", "-g=/g"]), Some("/g".into()));
        assert_eq!(root_of(&["dockerd", "-g/g"]), Some("/g".into()));
        assert_eq!(root_of(&["dockerd", "-Dg", "/g"]), Some("/g".into()));
        assert_eq!(root_of(&["dockerd", "-D", "-g", "/g"]), Some("/g".into()));
        // Relative roots are kept relative (resolved against the cwd later).
        assert_eq!(
            root_of(&["dockerd", "--data-root", "rel"]),
            Some("rel".into())
        );
    }

    #[test]
    fn args_last_wins_and_other_flags() {
        assert_eq!(
            root_of(&[
                "dockerd",
                "--data-root",
                "/a",
                "-H",
                "unix:///s",
                "--data-root=/b"
            ]),
            Some("/b".into())
        );
        // A value short flag eats the rest of its argument: not -g.
        assert_eq!(root_of(&["dockerd", "-Hg", "/x"]), None);
        assert_eq!(root_of(&["dockerd", "-pg"]), None);
        // Similar long names are not ours.
        assert_eq!(root_of(&["dockerd", "--data-root-x", "/x"]), None);
        assert_eq!(root_of(&["dockerd", "--exec-root", "/x"]), None);
        // `--` ends the flags; a flag without its value is ignored.
        assert_eq!(root_of(&["dockerd", "--", "--data-root", "/x"]), None);
        assert_eq!(root_of(&["dockerd", "--data-root"]), None);
        assert_eq!(root_of(&["dockerd", "-g"]), None);
        // argv[0] is not a flag.
        assert_eq!(root_of(&["--data-root=/x"]), None);
    }

    #[test]
    fn args_config_file_and_non_utf8() {
        let f = parse_dockerd_args(&args(&[
            "/usr/sbin/dockerd",
            "--config-file",
            "/etc/d.json",
            "--data-root=/r",
        ]));
        assert_eq!(f.config_file, Some("/etc/d.json".into()));
        assert_eq!(f.data_root, Some("/r".into()));
        let f = parse_dockerd_args(&args(&["dockerd", "--config-file=c.json"]));
        assert_eq!(f.config_file, Some("c.json".into()));
        assert_eq!(f.data_root, None);

        let raw = split_nul(b"dockerd\0--data-root\0/d\xffr\0");
        assert_eq!(
            parse_dockerd_args(&raw).data_root,
            Some(path_of(b"/d\xffr"))
        );
    }

    #[test]
    fn args_storage_driver() {
        let d = |v: &[&str]| parse_dockerd_args(&args(v)).storage_driver;
        assert_eq!(d(&["dockerd", "-s", "vfs"]), Some("vfs".into()));
        assert_eq!(d(&["dockerd", "-svfs"]), Some("vfs".into()));
        assert_eq!(d(&["dockerd", "-Ds=vfs"]), Some("vfs".into()));
        assert_eq!(
            d(&["dockerd", "--storage-driver", "vfs"]),
            Some("vfs".into())
        );
        assert_eq!(
            d(&["dockerd", "--storage-driver=vfs", "-s", "overlay2"]),
            Some("overlay2".into())
        );
        assert_eq!(d(&["dockerd", "--storage-opt", "x=y"]), None);
        assert_eq!(d(&["dockerd", "--", "-s", "vfs"]), None);
        let f = parse_dockerd_args(&args(&["dockerd", "-s", "vfs", "--data-root", "/r"]));
        assert_eq!(f.data_root, Some("/r".into()));
    }

    #[test]
    fn daemon_json_storage_driver() {
        let d = |s: &str| storage_driver_from_daemon_json(s.as_bytes());
        assert_eq!(d(r#"{"storage-driver": "vfs"}"#), Ok(Some("vfs".into())));
        assert_eq!(d(r#"{"storage-driver": ""}"#), Ok(None));
        assert_eq!(d(r#"{"data-root": "/x"}"#), Ok(None));
        assert!(d(r#"{"storage-driver": 1}"#).is_err());
        assert!(d("[").is_err());
    }

    #[test]
    fn system_daemon_json_configures_only_its_own_root() {
        let t = tempfile::tempdir().unwrap();
        let root = t.path().join("root");
        let other = t.path().join("other");
        fs::create_dir_all(&root).unwrap();
        fs::create_dir_all(&other).unwrap();
        let json = t.path().join("daemon.json");
        fs::write(
            &json,
            format!(
                r#"{{"data-root": "{}", "storage-driver": "vfs"}}"#,
                root.display()
            ),
        )
        .unwrap();
        let c = configured_driver_in(&root, &json).expect("configured");
        assert_eq!(c.name, "vfs");
        assert!(
            c.source.contains(&json.display().to_string()),
            "{}",
            c.source
        );
        assert_eq!(configured_driver_in(&other, &json), None);
        // Without `data-root` it configures /var/lib/docker only.
        fs::write(&json, r#"{"storage-driver": "vfs"}"#).unwrap();
        assert_eq!(configured_driver_in(&root, &json), None);
        // Unreadable, invalid or silent files configure nothing.
        fs::write(&json, "{").unwrap();
        assert_eq!(configured_driver_in(&root, &json), None);
        assert_eq!(
            configured_driver_in(&root, &t.path().join("none.json")),
            None
        );
    }

    #[test]
    fn nul_fields() {
        assert_eq!(split_nul(b""), Vec::<OsString>::new());
        assert_eq!(split_nul(b"\0"), Vec::<OsString>::new());
        assert_eq!(split_nul(b"\0\0"), args(&["", ""]));
        assert_eq!(split_nul(b"a\0b\0"), args(&["a", "b"]));
        assert_eq!(split_nul(b"a\0\0b"), args(&["a", "", "b"]));
        let env = split_nul(b"HOME=/h\0XDG_DATA_HOME=/d\0HOMEX=1\0");
        assert_eq!(env_get(&env, "HOME"), Some("/h".into()));
        assert_eq!(env_get(&env, "XDG_DATA_HOME"), Some("/d".into()));
        assert_eq!(env_get(&env, "XDG"), None);
        assert_eq!(
            xdg_dir(&env, "XDG_CONFIG_HOME", ".config").unwrap(),
            PathBuf::from("/h/.config")
        );
        assert_eq!(
            xdg_dir(&env, "XDG_DATA_HOME", ".local/share").unwrap(),
            PathBuf::from("/d")
        );
        assert!(xdg_dir(&[], "XDG_DATA_HOME", ".local/share").is_err());
    }

    #[test]
    fn daemon_json_data_root() {
        let d = |s: &str| data_root_from_daemon_json(s.as_bytes());
        assert_eq!(
            d(r#"{"data-root": "/srv/docker"}"#),
            Ok(Some("/srv/docker".into()))
        );
        assert_eq!(d(r#"{"graph": "/old"}"#), Ok(Some("/old".into())));
        assert_eq!(
            d(r#"{"graph": "/old", "data-root": "/new"}"#),
            Ok(Some("/new".into()))
        );
        assert_eq!(
            d(r#"{"debug": true, "storage-driver": "overlay2"}"#),
            Ok(None)
        );
        assert_eq!(d("{}"), Ok(None));
        assert_eq!(d(r#"{"data-root": ""}"#), Ok(None));
        assert!(d(r#"{"data-root": 5}"#).is_err());
        assert!(d("[]").is_err());
        assert!(d("").is_err());
        assert!(d("{\"data-root\": ").is_err());
    }

    #[test]
    fn mountinfo_lines() {
        let text = b"22 27 0:21 / /proc rw,relatime - proc proc rw\n\
            27 1 254:0 / / rw,relatime - ext4 /dev/vda rw\n\
            90 27 0:50 / /var/lib/docker/overlay2/abc/merged rw - overlay overlay rw,lowerdir=/a\\040b\n\
            91 27 0:51 / /var/lib/docker/containers/x\\040y/mounts/shm rw - tmpfs shm rw\n\
            92 27 0:52 / /a\\011tab\\012nl\\134bs rw - tmpfs t rw\n\
            \n\
            garbage\n";
        let m = parse_mountinfo(text);
        assert_eq!(
            m,
            vec![
                PathBuf::from("/proc"),
                PathBuf::from("/"),
                PathBuf::from("/var/lib/docker/overlay2/abc/merged"),
                PathBuf::from("/var/lib/docker/containers/x y/mounts/shm"),
                PathBuf::from("/a\ttab\nnl\\bs"),
            ]
        );
        let o = overlay_option_paths(
            b"90 27 0:50 / /m rw - overlay overlay rw,lowerdir=l/AB:l/CD,upperdir=/r/x/diff,workdir=/r/x/work,index=off\n\
              91 27 0:51 / /n rw - tmpfs shm rw,lowerdir=/no\n\
              92 27 0:52 / /o rw - overlay overlay rw,lowerdir=/r/a\\040b/diff\n",
        );
        assert_eq!(
            o,
            ["l/AB", "l/CD", "/r/x/diff", "/r/x/work", "/r/a b/diff"]
                .map(PathBuf::from)
                .to_vec()
        );
    }

    #[test]
    fn octal_escapes() {
        assert_eq!(unescape_octal(b"a\\040b"), b"a b");
        assert_eq!(unescape_octal(b"\\134"), b"\\");
        assert_eq!(unescape_octal(b"\\0401"), b" 1");
        // Not an escape: kept as is.
        assert_eq!(unescape_octal(b"a\\04"), b"a\\04");
        assert_eq!(unescape_octal(b"a\\xyz"), b"a\\xyz");
        assert_eq!(unescape_octal(b"\\777"), b"\\777");
        assert_eq!(unescape_octal(b"\\"), b"\\");
    }

    #[test]
    fn proc_locks_lines() {
        let text = b"1: FLOCK  ADVISORY  WRITE 5529 fe:00:5398705 0 EOF\n\
            1: -> FLOCK  ADVISORY  WRITE 6000 fe:00:5398705 0 EOF\n\
            2: POSIX  ADVISORY  READ 77 103:0a:12 0 EOF\n\
            3: OFDLCK ADVISORY  WRITE -1 00:1a:9 0 EOF\n\
            4: LEASE  ACTIVE    READ 12 08:01:33 0 EOF\n\
            junk\n";
        assert_eq!(
            parse_proc_locks(text),
            vec![
                ProcLock {
                    pid: 5529,
                    major: 0xfe,
                    minor: 0,
                    ino: 5398705
                },
                ProcLock {
                    pid: 77,
                    major: 0x103,
                    minor: 0x0a,
                    ino: 12
                },
                ProcLock {
                    pid: -1,
                    major: 0,
                    minor: 0x1a,
                    ino: 9
                },
                ProcLock {
                    pid: 12,
                    major: 8,
                    minor: 1,
                    ino: 33
                },
            ]
        );
    }

    #[test]
    fn dev_numbers() {
        // makedev(254, 0), makedev(8, 17), makedev(259, 300)
        let mk = |ma: u64, mi: u64| {
            ((ma & 0xfff) << 8) | ((ma & !0xfff) << 32) | (mi & 0xff) | ((mi & !0xff) << 12)
        };
        for (ma, mi) in [(254, 0), (8, 17), (259, 300), (4095, 1 << 19)] {
            let d = mk(ma, mi);
            assert_eq!((dev_major(d), dev_minor(d)), (ma as u32, mi as u32));
        }
        let l = ProcLock {
            pid: 1,
            major: 8,
            minor: 17,
            ino: 4,
        };
        assert!(l.is_file(mk(8, 17), 4));
        assert!(!l.is_file(mk(8, 17), 5));
        assert!(!l.is_file(mk(8, 16), 4));
    }

    #[test]
    fn pid_file_and_stat() {
        assert_eq!(parse_pid_file(b"1234"), Some(1234));
        assert_eq!(parse_pid_file(b" 1234\n"), Some(1234));
        assert_eq!(parse_pid_file(b"0"), None);
        assert_eq!(parse_pid_file(b""), None);
        assert_eq!(parse_pid_file(b"-5"), None);
        assert_eq!(parse_pid_file(b"12 34"), None);
        assert_eq!(parse_stat_state(b"42 (dockerd) S 1 42"), Some(b'S'));
        assert_eq!(parse_stat_state(b"42 (a) b) (c) Z 1"), Some(b'Z'));
        assert_eq!(parse_stat_state(b"42 (x"), None);
        assert_eq!(parse_stat_state(b"42 (x)"), None);
    }

    #[test]
    fn messages_end_with_stop_hint() {
        let all = [
            Busy::DaemonRunning {
                pid: 7,
                how: "process scan".into(),
            },
            Busy::DaemonRunning {
                pid: 0,
                how: "holds /r/volumes/metadata.db".into(),
            },
            Busy::LockHeld { path: "/r".into() },
            Busy::Io {
                path: "/proc".into(),
                cause: io::Error::from(io::ErrorKind::PermissionDenied),
            },
        ];
        for b in &all {
            let s = b.to_string();
            assert!(s.ends_with("or kill the private dockerd"), "{s}");
            assert!(
                s.contains("systemctl stop docker.socket docker.service"),
                "{s}"
            );
        }
        assert!(all[0].to_string().starts_with("dockerd (pid 7) is running"));
        assert!(all[1].to_string().contains("pid unknown"));
        assert!(all[2].to_string().contains("/r"));
    }

    /// A temp root with `volumes/metadata.db`.
    fn temp_root() -> tempfile::TempDir {
        let t = tempfile::tempdir().unwrap();
        fs::create_dir(t.path().join("volumes")).unwrap();
        fs::write(volume_db(t.path()), b"").unwrap();
        t
    }

    #[test]
    fn guard_and_second_guard() {
        let t = temp_root();
        assert!(daemon_alive(t.path()).is_none());
        let g = guard(t.path()).expect("first guard");
        assert_eq!(g.root(), t.path().canonicalize().unwrap());
        assert!(g.holds_volume_db());
        // Our own locks do not count for daemon_alive.
        assert!(daemon_alive(t.path()).is_none());
        match guard(t.path()) {
            Err(Busy::LockHeld { path }) => assert_eq!(path, g.root()),
            other => panic!("expected LockHeld, got {other:?}"),
        }
        // Through another spelling of the same root.
        let spelled = t.path().join("volumes").join("..");
        assert!(matches!(guard(&spelled), Err(Busy::LockHeld { .. })));
        drop(g);
        let g = guard(t.path()).expect("guard after drop");
        drop(g);
    }

    #[test]
    fn guard_without_volume_db() {
        let t = tempfile::tempdir().unwrap();
        let g = guard(t.path()).expect("guard");
        assert!(!g.holds_volume_db());
    }

    #[test]
    fn guard_missing_root_is_io() {
        let t = tempfile::tempdir().unwrap();
        let missing = t.path().join("nope");
        assert!(matches!(guard(&missing), Err(Busy::Io { .. })));
        assert!(matches!(daemon_alive(&missing), Some(Busy::Io { .. })));
    }

    #[test]
    fn volume_db_locked_in_process() {
        let t = temp_root();
        // flock locks belong to the open file description: a second open in
        // this process conflicts.
        let held = File::open(volume_db(t.path())).unwrap();
        held.try_lock().unwrap();
        match guard(t.path()) {
            Err(Busy::DaemonRunning { pid, how }) => {
                assert_eq!(pid, std::process::id());
                assert_eq!(
                    how,
                    format!(
                        "holds {}",
                        volume_db(&t.path().canonicalize().unwrap()).display()
                    )
                );
            }
            other => panic!("expected DaemonRunning, got {other:?}"),
        }
        // The refused guard released the root lock again.
        drop(held);
        guard(t.path()).expect("guard after unlock");
    }

    #[test]
    fn volume_db_locked_by_other_process() {
        let t = temp_root();
        let db = volume_db(t.path());
        // `flock -x FILE cat`: flock takes the lock, its child cat keeps the
        // fd until stdin closes.
        let mut child = match Command::new("flock")
            .arg("-x")
            .arg(&db)
            .arg("sh")
            .arg("-c")
            .arg("echo locked; exec cat")
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .spawn()
        {
            Ok(c) => c,
            Err(e) => {
                eprintln!("SKIPPED volume_db_locked_by_other_process: no flock(1): {e}");
                return;
            }
        };
        let mut line = String::new();
        BufReader::new(child.stdout.take().unwrap())
            .read_line(&mut line)
            .unwrap();
        assert_eq!(line.trim(), "locked");
        let flock_pid = child.id();

        match daemon_alive(t.path()) {
            Some(Busy::DaemonRunning { pid, how }) => {
                assert_eq!(pid, flock_pid);
                assert!(how.starts_with("holds "), "{how}");
            }
            other => panic!("expected DaemonRunning, got {other:?}"),
        }
        match guard(t.path()) {
            Err(Busy::DaemonRunning { pid, how }) => {
                assert_eq!(pid, flock_pid);
                assert!(how.ends_with("volumes/metadata.db"), "{how}");
            }
            other => panic!("expected DaemonRunning, got {other:?}"),
        }

        let mut stdin = child.stdin.take().unwrap();
        stdin.flush().unwrap();
        drop(stdin);
        child.wait().unwrap();
        let deadline = Instant::now() + Duration::from_secs(5);
        while daemon_alive(t.path()).is_some() {
            assert!(Instant::now() < deadline, "lock not released");
            std::thread::sleep(Duration::from_millis(20));
        }
        guard(t.path()).expect("guard after flock exits");
    }

    /// A process named dockerd on `root`: alive while it runs; once it has
    /// exited (a zombie, command line empty) it holds nothing, and its
    /// listeners are not guessed.
    #[test]
    fn an_exited_dockerd_is_not_alive() {
        let t = temp_root();
        let bin = t.path().join("dockerd");
        fs::copy("/bin/cat", &bin).unwrap();
        let root = t.path().canonicalize().unwrap();
        // With POSIXLY_CORRECT the flags after `-` are file names to cat:
        // it blocks reading stdin, then fails on them and exits.
        let mut child = Command::new(&bin)
            .arg("-")
            .arg("--data-root")
            .arg(&root)
            .arg("-H")
            .arg("unix:///x/d.sock")
            .env("POSIXLY_CORRECT", "1")
            .stdin(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .unwrap_or_else(|e| panic!("run {}: {e}", bin.display()));
        let pid = child.id();
        let deadline = Instant::now() + Duration::from_secs(5);
        while !fs::read(format!("/proc/{pid}/cmdline")).is_ok_and(|c| c.ends_with(b"d.sock\0")) {
            assert!(Instant::now() < deadline, "dockerd {pid} did not start");
            std::thread::sleep(Duration::from_millis(10));
        }
        match daemon_alive(&root) {
            Some(Busy::DaemonRunning { pid: p, .. }) => assert_eq!(p, pid),
            other => panic!("expected DaemonRunning, got {other:?}"),
        }
        assert_eq!(dockerd_listeners(pid).unwrap().hosts, ["unix:///x/d.sock"]);
        drop(child.stdin.take());
        let state = || {
            fs::read(format!("/proc/{pid}/stat"))
                .ok()
                .and_then(|s| parse_stat_state(&s))
        };
        while state() != Some(b'Z') {
            assert!(Instant::now() < deadline, "dockerd {pid} did not exit");
            std::thread::sleep(Duration::from_millis(10));
        }
        assert_eq!(
            fs::read(format!("/proc/{pid}/cmdline")).unwrap(),
            b"",
            "a zombie's command line"
        );
        assert!(daemon_alive(&root).is_none(), "{:?}", daemon_alive(&root));
        let err = dockerd_listeners(pid).expect_err("listeners of an exited dockerd");
        assert!(err.contains("exiting"), "{err}");
        child.wait().unwrap();
    }

    #[test]
    fn mounts_below_slash() {
        let m = mounts_below(Path::new("/")).unwrap();
        assert!(
            m.contains(&PathBuf::from("/")) || m.contains(&PathBuf::from("/proc")),
            "{m:?}"
        );
        let proc = mounts_below(Path::new("/proc")).unwrap();
        assert_eq!(proc.first(), Some(&PathBuf::from("/proc")), "{proc:?}");
        // A fresh temp dir has nothing mounted under it.
        let t = tempfile::tempdir().unwrap();
        assert_eq!(mounts_below(t.path()).unwrap(), Vec::<PathBuf>::new());
    }
}
