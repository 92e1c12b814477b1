//! Shared helpers for integration tests: the `dockgc` binary, a private real
//! Docker daemon, a whole-tree hash, and a scenario data root written by a
//! real daemon (Engine 20.10 from Debian's `docker.io`).
//!
//! Real-daemon tests skip (loudly, on stderr) when they cannot start a daemon,
//! unless `DOCKGC_REQUIRE_DOCKER` or `CI` is set: then they panic with the
//! reason and the tail of the daemon log.
#![allow(dead_code)]

use std::collections::BTreeMap;
use std::ffi::CString;
use std::fs;
use std::io::{Read, Write};
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::{FileTypeExt, MetadataExt};
use std::os::unix::net::UnixStream;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::sync::{Mutex, OnceLock};
use std::time::{Duration, Instant};

use dockgc::ids::hex;
use dockgc::tarfmt::{self, Header, flag};
use serde_json::Value;
use sha2::{Digest, Sha256};
use tempfile::TempDir;

mod buildcache;
mod containerd;
pub mod drivers;
mod modern;
mod prune;
mod volumes;
#[allow(unused_imports)] // only the BuildKit tests use these
pub use buildcache::*;
#[allow(unused_imports)]
pub use containerd::*;
#[allow(unused_imports)]
pub use modern::*;
#[allow(unused_imports)] // only the prune tests use these
pub use prune::*;

/// Command for the `dockgc` binary built by cargo for this test run. The
/// environment's `DOCKER_HOST` would name a daemon for dockgc: never the
/// test's unless it says so.
pub fn dockgc() -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_dockgc"));
    c.env_remove("DOCKER_HOST");
    c
}

/// True when real-daemon tests must fail instead of skipping.
pub fn docker_required() -> bool {
    let set = |k: &str| {
        std::env::var(k)
            .map(|v| !v.is_empty() && v != "0" && !v.eq_ignore_ascii_case("false"))
            .unwrap_or(false)
    };
    set("DOCKGC_REQUIRE_DOCKER") || set("CI")
}

/// `sha256:<hex>` of bytes.
pub fn sha256_digest(bytes: &[u8]) -> String {
    format!("sha256:{}", hex(&Sha256::digest(bytes)))
}

fn tail(path: &Path, lines: usize) -> String {
    match fs::read_to_string(path) {
        Ok(s) => {
            let v: Vec<&str> = s.lines().collect();
            v[v.len().saturating_sub(lines)..].join("\n")
        }
        Err(e) => format!("(no daemon log at {}: {e})", path.display()),
    }
}

/// Skip or fail, per `docker_required()`.
fn unavailable<T>(reason: &str, log: Option<&Path>) -> Option<T> {
    let log_tail = log.map(|l| tail(l, 40)).unwrap_or_default();
    if docker_required() {
        panic!(
            "real Docker daemon required (DOCKGC_REQUIRE_DOCKER or CI is set) but unavailable: \
             {reason}\n--- daemon log tail ---\n{log_tail}"
        );
    }
    // Straight to the stderr handle: libtest captures `eprintln!` of passing tests.
    let _ = writeln!(
        std::io::stderr(),
        "\n*** SKIPPED: real-Docker test skipped: {reason}. \
         Set DOCKGC_REQUIRE_DOCKER=1 to make this a failure. ***\n{log_tail}"
    );
    None
}

fn search_path(name: &str, extra: &[&str]) -> Option<PathBuf> {
    let path = std::env::var_os("PATH").unwrap_or_default();
    std::env::split_paths(&path)
        .chain(extra.iter().map(PathBuf::from))
        .map(|d| d.join(name))
        .find(|p| {
            fs::metadata(p)
                .map(|m| m.is_file() && m.mode() & 0o111 != 0)
                .unwrap_or(false)
        })
}

const SYS_DIRS: &[&str] = &["/usr/sbin", "/usr/bin", "/sbin", "/bin", "/usr/local/bin"];

fn daemon_path_env() -> std::ffi::OsString {
    let mut dirs: Vec<PathBuf> =
        std::env::split_paths(&std::env::var_os("PATH").unwrap_or_default()).collect();
    for d in SYS_DIRS {
        if !dirs.iter().any(|x| x == Path::new(d)) {
            dirs.push(PathBuf::from(d));
        }
    }
    std::env::join_paths(dirs).expect("PATH")
}

/// A private `dockerd` on a data root of the test's own.
pub struct Daemon {
    pub root: PathBuf,
    pub sock: PathBuf,
    /// Short directory holding the socket, pid file, exec root and log.
    pub run_dir: PathBuf,
    pub log: PathBuf,
    pidfile: PathBuf,
    docker_bin: PathBuf,
    config_dir: PathBuf,
    child: Option<Child>,
    _run_tmp: TempDir,
}

impl Daemon {
    /// Start `dockerd` on `root`; `None` (after a loud SKIPPED message) if
    /// impossible and not required.
    pub fn start(root: &Path) -> Option<Daemon> {
        Daemon::start_with(root, &[])
    }

    /// [`Daemon::start`] with extra dockerd flags (`-s vfs`, `--config-file X`).
    pub fn start_with(root: &Path, extra: &[&str]) -> Option<Daemon> {
        if unsafe { libc::geteuid() } != 0 {
            return unavailable("not running as root (dockerd needs root)", None);
        }
        let Some(dockerd) = search_path("dockerd", SYS_DIRS) else {
            return unavailable("no dockerd binary (apt-get install docker.io)", None);
        };
        // Prefer the CLI shipped next to dockerd (same version), then any.
        let docker_bin = [
            dockerd.parent().map(|d| d.join("docker")),
            Some(PathBuf::from("/usr/bin/docker")),
        ]
        .into_iter()
        .flatten()
        .find(|p| p.is_file())
        .or_else(|| search_path("docker", SYS_DIRS));
        let Some(docker_bin) = docker_bin else {
            return unavailable("no docker CLI binary", None);
        };
        if let Err(e) = fs::create_dir_all(root) {
            return unavailable(&format!("cannot create {}: {e}", root.display()), None);
        }
        // Unix socket paths are limited to 108 bytes: keep the run dir short.
        let run_tmp = match tempfile::Builder::new()
            .prefix("dgc")
            .suffix(".run")
            .tempdir_in("/tmp")
        {
            Ok(t) => t,
            Err(e) => return unavailable(&format!("cannot create run dir: {e}"), None),
        };
        let run_dir = run_tmp.path().to_path_buf();
        let sock = run_dir.join("docker.sock");
        let pidfile = run_dir.join("docker.pid");
        let log = run_dir.join("dockerd.log");
        let config_dir = run_dir.join("cli-config");
        fs::create_dir_all(&config_dir).expect("create cli config dir");
        let logf = fs::File::create(&log).expect("create daemon log");
        let mut cmd = Command::new(&dockerd);
        cmd.arg("--data-root")
            .arg(root)
            .arg("--exec-root")
            .arg(run_dir.join("exec"))
            .arg("-H")
            .arg(format!("unix://{}", sock.display()))
            .arg("--pidfile")
            .arg(&pidfile)
            .args(["--iptables=false", "--ip6tables=false", "--bridge=none"])
            .args(extra)
            .env("PATH", daemon_path_env())
            .stdin(Stdio::null())
            .stdout(logf.try_clone().expect("dup log"))
            .stderr(logf);
        // Own session, like `setsid dockerd ...`, without a fork (so the child
        // we hold is dockerd itself and we can reap it).
        unsafe {
            cmd.pre_exec(|| {
                if libc::setsid() < 0 {
                    return Err(std::io::Error::last_os_error());
                }
                Ok(())
            });
        }
        let child = match cmd.spawn() {
            Ok(c) => c,
            Err(e) => {
                return unavailable(&format!("cannot spawn {}: {e}", dockerd.display()), None);
            }
        };
        let mut d = Daemon {
            root: root.to_path_buf(),
            sock,
            run_dir,
            log,
            pidfile,
            docker_bin,
            config_dir,
            child: Some(child),
            _run_tmp: run_tmp,
        };
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            if let Some(st) = d
                .child
                .as_mut()
                .unwrap()
                .try_wait()
                .expect("try_wait dockerd")
            {
                d.child = None;
                let log = d.log.clone();
                let reason = format!("dockerd exited during startup with {st}");
                // Keep the log readable until the message is printed.
                return unavailable(&reason, Some(&log));
            }
            if let Ok(body) = d.request("/_ping")
                && body.trim() == "OK"
            {
                return Some(d);
            }
            if Instant::now() > deadline {
                let log = d.log.clone();
                let msg = tail(&log, 40);
                let _ = d.shutdown();
                return unavailable(
                    &format!("dockerd did not answer on its socket within 30 s\n{msg}"),
                    None,
                );
            }
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    fn docker_cmd(&self, args: &[&str]) -> Command {
        let mut c = Command::new(&self.docker_bin);
        c.args(args)
            .env("DOCKER_HOST", format!("unix://{}", self.sock.display()))
            .env("DOCKER_CONFIG", &self.config_dir)
            // Legacy builder: it leaves intermediate images and needs no BuildKit.
            .env("DOCKER_BUILDKIT", "0")
            .env("DOCKER_CLI_HINTS", "false")
            .env_remove("DOCKER_CONTEXT")
            .env_remove("DOCKER_TLS_VERIFY")
            .env_remove("DOCKER_CERT_PATH")
            .stdin(Stdio::null());
        c
    }

    /// Run the docker CLI against this daemon (with `DOCKER_BUILDKIT=0`).
    pub fn docker_output(&self, args: &[&str]) -> Output {
        self.docker_cmd(args)
            .output()
            .unwrap_or_else(|e| panic!("cannot run {} {args:?}: {e}", self.docker_bin.display()))
    }

    /// Run the docker CLI; panic with its stderr on failure; return stdout.
    pub fn docker(&self, args: &[&str]) -> String {
        let out = self.docker_output(args);
        if !out.status.success() {
            panic!(
                "docker {args:?} failed ({}):\nstderr: {}\nstdout: {}\n--- daemon log tail ---\n{}",
                out.status,
                String::from_utf8_lossy(&out.stderr),
                String::from_utf8_lossy(&out.stdout),
                tail(&self.log, 20)
            );
        }
        String::from_utf8(out.stdout).expect("docker stdout is UTF-8")
    }

    /// Minimal HTTP/1.0 GET over the unix socket; body on 2xx.
    fn request(&self, path: &str) -> Result<String, String> {
        let mut s = UnixStream::connect(&self.sock).map_err(|e| e.to_string())?;
        s.set_read_timeout(Some(Duration::from_secs(300))).ok();
        write!(s, "GET {path} HTTP/1.0\r\nHost: docker\r\n\r\n").map_err(|e| e.to_string())?;
        let mut raw = Vec::new();
        s.read_to_end(&mut raw).map_err(|e| e.to_string())?;
        let split = raw
            .windows(4)
            .position(|w| w == b"\r\n\r\n")
            .ok_or("no HTTP header end")?;
        let head = String::from_utf8_lossy(&raw[..split]).to_string();
        let mut body = raw[split + 4..].to_vec();
        let status: u32 = head
            .split_whitespace()
            .nth(1)
            .and_then(|s| s.parse().ok())
            .ok_or_else(|| format!("bad status line: {head}"))?;
        if head
            .to_ascii_lowercase()
            .contains("transfer-encoding: chunked")
        {
            body = dechunk(&body)?;
        }
        let body = String::from_utf8(body).map_err(|e| e.to_string())?;
        if !(200..300).contains(&status) {
            return Err(format!("GET {path}: HTTP {status}: {body}"));
        }
        Ok(body)
    }

    /// GET `path` from the Engine API on the unix socket, parsed as JSON.
    pub fn api(&self, path: &str) -> Value {
        let body = self
            .request(path)
            .unwrap_or_else(|e| panic!("API GET {path}: {e}"));
        serde_json::from_str(&body)
            .unwrap_or_else(|e| panic!("API GET {path}: bad JSON {e}: {body}"))
    }

    fn pid(&self) -> Option<i32> {
        fs::read_to_string(&self.pidfile)
            .ok()
            .and_then(|s| s.trim().parse().ok())
            .or_else(|| self.child.as_ref().map(|c| c.id() as i32))
    }

    /// SIGTERM, wait up to 60 s. Returns an error text if it had to SIGKILL.
    fn shutdown(&mut self) -> Result<(), String> {
        let Some(mut child) = self.child.take() else {
            return Ok(());
        };
        let pid = self.pid().unwrap_or(child.id() as i32);
        unsafe {
            libc::kill(pid, libc::SIGTERM);
        }
        let deadline = Instant::now() + Duration::from_secs(60);
        while Instant::now() < deadline {
            match child.try_wait() {
                Ok(Some(_)) => return Ok(()),
                Ok(None) => std::thread::sleep(Duration::from_millis(50)),
                Err(e) => return Err(format!("waiting for dockerd: {e}")),
            }
        }
        // dockerd is a session and process-group leader (setsid): kill its group.
        unsafe {
            libc::kill(-(child.id() as i32), libc::SIGKILL);
        }
        let _ = child.kill();
        let _ = child.wait();
        Err(format!(
            "dockerd (pid {pid}) did not exit within 60 s of SIGTERM; killed\n{}",
            tail(&self.log, 40)
        ))
    }

    /// Stop the daemon (SIGTERM to the pid in its pid file, wait for exit).
    /// Panics if it does not exit within 60 s.
    pub fn stop(mut self) {
        if let Err(e) = self.shutdown() {
            panic!("{e}");
        }
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        if let Err(e) = self.shutdown() {
            eprintln!("Daemon drop: {e}");
        }
    }
}

fn dechunk(mut b: &[u8]) -> Result<Vec<u8>, String> {
    let mut out = Vec::new();
    loop {
        let nl = b.windows(2).position(|w| w == b"\r\n").ok_or("bad chunk")?;
        let size_str = String::from_utf8_lossy(&b[..nl]);
        let size = usize::from_str_radix(size_str.split(';').next().unwrap().trim(), 16)
            .map_err(|e| e.to_string())?;
        b = &b[nl + 2..];
        if size == 0 {
            return Ok(out);
        }
        out.extend_from_slice(b.get(..size).ok_or("short chunk")?);
        b = b.get(size + 2..).ok_or("short chunk")?;
    }
}

// ---------------------------------------------------------------------------
// Tree hash

/// One letter per file type, as `ls -l` shows it (`?` for anything else).
pub fn file_kind(ft: &fs::FileType) -> &'static str {
    if ft.is_dir() {
        "d"
    } else if ft.is_file() {
        "f"
    } else if ft.is_symlink() {
        "l"
    } else if ft.is_char_device() {
        "c"
    } else if ft.is_block_device() {
        "b"
    } else if ft.is_fifo() {
        "p"
    } else if ft.is_socket() {
        "s"
    } else {
        "?"
    }
}

/// Every extended attribute of `path` (not following a symlink), sorted.
pub fn xattrs(path: &Path) -> Vec<(Vec<u8>, Vec<u8>)> {
    let c = CString::new(path.as_os_str().as_bytes()).expect("path without NUL");
    let mut names = vec![0u8; 4096];
    let n = unsafe { libc::llistxattr(c.as_ptr(), names.as_mut_ptr().cast(), names.len()) };
    if n <= 0 {
        return Vec::new();
    }
    names.truncate(n as usize);
    let mut out = Vec::new();
    for name in names.split(|&b| b == 0).filter(|n| !n.is_empty()) {
        let cn = CString::new(name).unwrap();
        let mut val = vec![0u8; 65536];
        let m =
            unsafe { libc::lgetxattr(c.as_ptr(), cn.as_ptr(), val.as_mut_ptr().cast(), val.len()) };
        val.truncate(m.max(0) as usize);
        out.push((name.to_vec(), val));
    }
    out.sort();
    out
}

fn hash_entry(h: &mut Sha256, root: &Path, path: &Path, with_ctime: bool) {
    let rel = path.strip_prefix(root).unwrap_or(path);
    h.update(b"\0P");
    h.update(rel.as_os_str().as_bytes());
    let md = match fs::symlink_metadata(path) {
        Ok(m) => m,
        Err(e) => {
            h.update(format!("\0ERR {e}").as_bytes());
            return;
        }
    };
    let ft = md.file_type();
    let kind = file_kind(&ft);
    // No atime. ctime and ino are included: a write-then-restore still shows.
    // (`with_ctime` false: for restores, which can put back everything but ctime.)
    let ctime = if with_ctime {
        (md.ctime(), md.ctime_nsec())
    } else {
        (0, 0)
    };
    h.update(
        format!(
            "\0{kind} mode={:o} uid={} gid={} size={} mtime={}.{} ctime={}.{} ino={} nlink={} rdev={}",
            md.mode(),
            md.uid(),
            md.gid(),
            md.size(),
            md.mtime(),
            md.mtime_nsec(),
            ctime.0,
            ctime.1,
            md.ino(),
            md.nlink(),
            md.rdev()
        )
        .as_bytes(),
    );
    for (k, v) in xattrs(path) {
        h.update(b"\0X");
        h.update(&k);
        h.update(b"=");
        h.update(&v);
    }
    if ft.is_symlink() {
        let t = fs::read_link(path).map(|t| t.into_os_string());
        h.update(b"\0L");
        match t {
            Ok(t) => h.update(t.as_bytes()),
            Err(e) => h.update(format!("ERR {e}").as_bytes()),
        }
    } else if ft.is_file() {
        h.update(b"\0C");
        match fs::File::open(path) {
            Ok(mut f) => {
                let mut buf = vec![0u8; 1 << 16];
                loop {
                    match f.read(&mut buf) {
                        Ok(0) => break,
                        Ok(n) => h.update(&buf[..n]),
                        Err(e) => {
                            h.update(format!("ERR {e}").as_bytes());
                            break;
                        }
                    }
                }
            }
            Err(e) => h.update(format!("ERR {e}").as_bytes()),
        }
    } else if ft.is_dir() {
        match fs::read_dir(path) {
            Ok(rd) => {
                let mut names: Vec<_> = rd.filter_map(|e| e.ok()).map(|e| e.file_name()).collect();
                names.sort();
                for n in names {
                    hash_entry(h, root, &path.join(n), with_ctime);
                }
            }
            Err(e) => h.update(format!("\0ERR {e}").as_bytes()),
        }
    }
}

/// Hash of a whole tree: for every entry its relative path, type, mode, uid,
/// gid, size, mtime, ctime, inode, link count, rdev, xattrs, symlink target
/// and file contents (not atime). Symlinks are not followed.
pub fn tree_hash(root: &Path) -> String {
    let mut h = Sha256::new();
    hash_entry(&mut h, root, root, true);
    hex(&h.finalize())
}

/// `tree_hash` without ctime, which no tool can set back: what "restored
/// byte-identical" can mean (contents, modes, owners, mtimes, inodes, link
/// counts, xattrs, symlink targets).
#[allow(dead_code)]
pub fn tree_hash_restorable(root: &Path) -> String {
    let mut h = Sha256::new();
    hash_entry(&mut h, root, root, false);
    hex(&h.finalize())
}

/// Copy a data root with `cp -a` (keeps xattrs, whiteout devices, hard links,
/// owners, times) into a fresh temp dir; the copy is at `.path()`.
pub fn copy_root(src: &Path) -> TempDir {
    let dst = tempfile::Builder::new()
        .prefix("dockgc-copy")
        .tempdir()
        .expect("tempdir");
    let mut from = src.as_os_str().to_owned();
    from.push("/.");
    let out = Command::new("cp")
        .arg("-a")
        .arg(&from)
        .arg(dst.path())
        .output()
        .expect("run cp -a");
    assert!(
        out.status.success(),
        "cp -a {} {} failed: {}",
        src.display(),
        dst.path().display(),
        String::from_utf8_lossy(&out.stderr)
    );
    dst
}

// ---------------------------------------------------------------------------
// Scenario

/// A data root written by a real daemon, plus the daemon's own answers about it
/// captured before the daemon was stopped.
pub struct Scenario {
    /// The data root (daemon stopped).
    pub root: PathBuf,
    /// GET /system/df.
    pub system_df: Value,
    /// `docker images -a --no-trunc -q`, sorted, deduplicated.
    pub images_all: Vec<String>,
    /// `docker images --no-trunc -q` (no -a), sorted, deduplicated.
    pub images_listed: Vec<String>,
    /// GET /images/json?all=1.
    pub images_json_all: Value,
    /// GET /containers/json?all=1&size=1.
    pub containers_json: Value,
    /// `docker version` server version, e.g. "20.10.24+dfsg1".
    pub server_version: String,
    /// Tag (as the daemon prints it, e.g. "app:1") → image ID.
    pub tags: BTreeMap<String, String>,
    /// Container name (no leading '/') → container ID.
    pub containers: BTreeMap<String, String>,
    /// The image that lost its tag `dang:1` when it was rebuilt.
    pub dangling_image: String,
    /// Seconds spent building the scenario.
    pub build_secs: f64,
    /// `docker info` `DriverStatus` (e.g. `[["Native Overlay Diff","true"], ...]`).
    pub driver_status: Value,
    _dir: PathBuf,
}

static SCENARIO: OnceLock<Result<Option<Scenario>, String>> = OnceLock::new();
static SCENARIO_EXOTIC: OnceLock<Result<Option<Scenario>, String>> = OnceLock::new();
static CLEANUP: Mutex<Vec<PathBuf>> = Mutex::new(Vec::new());

extern "C" fn cleanup_at_exit() {
    if let Ok(dirs) = CLEANUP.lock() {
        for d in dirs.iter() {
            let _ = fs::remove_dir_all(d);
        }
    }
}

/// Removes the scenario dirs when the test binary exits.
fn register_cleanup() {
    static REGISTER: std::sync::Once = std::sync::Once::new();
    REGISTER.call_once(|| unsafe {
        libc::atexit(cleanup_at_exit);
    });
}

/// The scenario, built once per test binary. `None` if skipped (no daemon).
/// If building failed once, every caller panics with that first failure.
pub fn scenario() -> Option<&'static Scenario> {
    scenario_in(&SCENARIO, None)
}

/// The scenario of [`scenario`] plus the images of [`add_exotic`] (two loaded
/// images over two layers full of tar edge cases, and a container on the top
/// one), built once per test binary. `scenario()` is unchanged; a test binary
/// that uses only this one builds only this one.
pub fn scenario_exotic() -> Option<&'static Scenario> {
    scenario_in(&SCENARIO_EXOTIC, Some(add_exotic))
}

fn scenario_in(
    cell: &'static OnceLock<Result<Option<Scenario>, String>>,
    extra: Option<fn(&Daemon, &Path)>,
) -> Option<&'static Scenario> {
    let r = cell.get_or_init(|| {
        std::panic::catch_unwind(|| build_scenario(extra)).map_err(|p| {
            p.downcast_ref::<String>()
                .cloned()
                .or_else(|| p.downcast_ref::<&str>().map(|s| s.to_string()))
                .unwrap_or_else(|| "unknown panic".into())
        })
    });
    match r {
        Ok(s) => s.as_ref(),
        Err(e) => panic!("building the real-daemon scenario failed: {e}"),
    }
}

fn find_static_busybox() -> PathBuf {
    for p in ["/bin/busybox", "/usr/bin/busybox"] {
        if let Ok(bytes) = fs::read(p) {
            let head = &bytes[..bytes.len().min(8192)];
            let dynamic = head.windows(7).any(|w| w == b"ld-linu" || w == b"ld-musl");
            if !dynamic {
                return PathBuf::from(p);
            }
        }
    }
    panic!("no static busybox found (apt-get install busybox-static)")
}

fn write(path: &Path, data: impl AsRef<[u8]>) {
    if let Some(p) = path.parent() {
        fs::create_dir_all(p).unwrap();
    }
    fs::write(path, data).unwrap_or_else(|e| panic!("write {}: {e}", path.display()));
}

fn pattern(len: usize, seed: u8) -> Vec<u8> {
    (0..len)
        .map(|i| (i as u32).wrapping_mul(2654435761).to_le_bytes()[2] ^ seed)
        .collect()
}

fn run(cmd: &mut Command) {
    let out = cmd.output().unwrap_or_else(|e| panic!("{cmd:?}: {e}"));
    assert!(
        out.status.success(),
        "{cmd:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// Append a regular file entry to a tar.
fn tar_file(b: &mut tar::Builder<Vec<u8>>, path: &str, data: &[u8], mode: u32) {
    let mut h = tar::Header::new_gnu();
    h.set_entry_type(tar::EntryType::Regular);
    h.set_size(data.len() as u64);
    h.set_mode(mode);
    h.set_mtime(1_560_000_000);
    h.set_uid(0);
    h.set_gid(0);
    b.append_data(&mut h, path, data).unwrap();
}

fn tar_special(b: &mut tar::Builder<Vec<u8>>, path: &str, kind: tar::EntryType, target: &str) {
    let mut h = tar::Header::new_gnu();
    h.set_entry_type(kind);
    h.set_size(0);
    h.set_mode(if kind == tar::EntryType::Directory {
        0o755
    } else {
        0o777
    });
    h.set_mtime(1_560_000_000);
    if kind == tar::EntryType::Directory {
        b.append_data(&mut h, path, &[][..]).unwrap();
    } else {
        b.append_link(&mut h, path, target).unwrap();
    }
}

/// Write a `docker save`-format archive with three images over two layers.
fn write_save_archive(dir: &Path) -> PathBuf {
    // Layer 1: base of all loaded images.
    let mut b = tar::Builder::new(Vec::new());
    tar_special(&mut b, "etc/", tar::EntryType::Directory, "");
    tar_file(&mut b, "etc/motd", b"welcome to 2019\n", 0o644);
    tar_file(&mut b, "etc/os-release", b"ID=vintage\n", 0o644);
    tar_special(&mut b, "opt/", tar::EntryType::Directory, "");
    tar_special(&mut b, "opt/keep/", tar::EntryType::Directory, "");
    tar_file(&mut b, "opt/keep/one.txt", &pattern(3000, 1), 0o644);
    tar_file(&mut b, "opt/keep/two.txt", &pattern(5000, 2), 0o600);
    tar_file(&mut b, "opt/empty", b"", 0o644);
    tar_special(
        &mut b,
        "opt/one-link",
        tar::EntryType::Link,
        "opt/keep/one.txt",
    );
    tar_special(
        &mut b,
        "opt/one-sym",
        tar::EntryType::Symlink,
        "keep/one.txt",
    );
    tar_special(&mut b, "usr/", tar::EntryType::Directory, "");
    tar_special(&mut b, "usr/share/", tar::EntryType::Directory, "");
    tar_file(&mut b, "usr/share/blob.bin", &pattern(40_000, 3), 0o644);
    tar_special(&mut b, "srv/", tar::EntryType::Directory, "");
    let l1 = b.into_inner().unwrap();

    // Layer 2: whiteout, opaque dir, new data.
    let mut b = tar::Builder::new(Vec::new());
    tar_special(&mut b, "etc/", tar::EntryType::Directory, "");
    tar_file(&mut b, "etc/.wh.motd", b"", 0o644);
    tar_special(&mut b, "opt/", tar::EntryType::Directory, "");
    tar_special(&mut b, "opt/keep/", tar::EntryType::Directory, "");
    tar_file(&mut b, "opt/keep/.wh..wh..opq", b"", 0o644);
    tar_file(&mut b, "opt/keep/fresh.txt", b"fresh\n", 0o644);
    tar_special(&mut b, "srv/", tar::EntryType::Directory, "");
    tar_file(&mut b, "srv/data.bin", &pattern(12_000, 4), 0o644);
    let l2 = b.into_inner().unwrap();

    let d1 = sha256_digest(&l1);
    let d2 = sha256_digest(&l2);
    let h1 = d1.trim_start_matches("sha256:").to_string();
    let h2 = d2.trim_start_matches("sha256:").to_string();
    let tree = dir.join("save");
    write(&tree.join(&h1).join("layer.tar"), &l1);
    write(&tree.join(&h2).join("layer.tar"), &l2);

    let config = |created: &str, labels: Value, diffs: &[&str]| -> (String, Vec<u8>) {
        let history: Vec<Value> = diffs
            .iter()
            .map(|_| serde_json::json!({"created": created, "created_by": "dockgc test"}))
            .collect();
        let v = serde_json::json!({
            "architecture": "amd64",
            "os": "linux",
            "created": created,
            "config": {"Labels": labels, "Cmd": ["sh"], "Env": ["PATH=/bin"]},
            "rootfs": {"type": "layers", "diff_ids": diffs},
            "history": history,
        });
        let bytes = serde_json::to_vec(&v).unwrap();
        let name = format!(
            "{}.json",
            sha256_digest(&bytes).trim_start_matches("sha256:")
        );
        write(&tree.join(&name), &bytes);
        (name, bytes)
    };
    let (c2019, _) = config(
        "2019-06-01T12:00:00Z",
        serde_json::json!({"org.example.vintage": "2019", "org.example.team": "qa"}),
        &[&d1],
    );
    let (c2020, _) = config(
        "2020-01-15T08:30:00Z",
        serde_json::json!({"org.example.vintage": "2020"}),
        &[&d1, &d2],
    );
    let (c2018, _) = config(
        "2018-03-03T03:03:03Z",
        serde_json::json!({"org.example.untagged": "yes"}),
        &[&d1],
    );
    let l1p = format!("{h1}/layer.tar");
    let l2p = format!("{h2}/layer.tar");
    let manifest = serde_json::json!([
        {"Config": c2019, "RepoTags": ["loaded:2019", "vintage/app:old"], "Layers": [l1p]},
        {"Config": c2020, "RepoTags": ["loaded:2020"], "Layers": [l1p, l2p]},
        {"Config": c2018, "RepoTags": null, "Layers": [l1p]},
    ]);
    write(
        &tree.join("manifest.json"),
        serde_json::to_vec(&manifest).unwrap(),
    );
    let archive = dir.join("save.tar");
    run(Command::new("tar")
        .arg("-C")
        .arg(&tree)
        .arg("-cf")
        .arg(&archive)
        .arg("."));
    archive
}

fn build(d: &Daemon, ctx: &Path, tag: &str, dockerfile: &str) -> String {
    write(&ctx.join("Dockerfile"), dockerfile);
    let c = ctx.to_str().unwrap();
    d.docker(&["build", "--network", "none", "-q", "-t", tag, c])
        .trim()
        .to_string()
}

fn sorted_lines(s: &str) -> Vec<String> {
    let mut v: Vec<String> = s
        .lines()
        .map(|l| l.trim().to_string())
        .filter(|l| !l.is_empty())
        .collect();
    v.sort();
    v.dedup();
    v
}

fn build_scenario(extra: Option<fn(&Daemon, &Path)>) -> Option<Scenario> {
    let t0 = Instant::now();
    let tmp = tempfile::Builder::new()
        .prefix("dockgc-scenario")
        .tempdir()
        .expect("tempdir");
    let dir = tmp.keep();
    CLEANUP.lock().unwrap().push(dir.clone());
    register_cleanup();
    let root = dir.join("root");
    let work = dir.join("work");
    let d = Daemon::start(&root)?;

    // 1. Base image: a static busybox rootfs, imported.
    let busybox = find_static_busybox();
    let rootfs = work.join("rootfs");
    fs::create_dir_all(rootfs.join("bin")).unwrap();
    fs::copy(&busybox, rootfs.join("bin/busybox")).unwrap();
    for applet in [
        "sh", "ls", "cat", "rm", "mkdir", "ln", "sleep", "echo", "touch", "dd", "printf", "true",
        "seq", "head", "sync", "test", "[",
    ] {
        std::os::unix::fs::symlink("busybox", rootfs.join("bin").join(applet)).unwrap();
    }
    write(
        &rootfs.join("etc/passwd"),
        "root:x:0:0:root:/root:/bin/sh\n",
    );
    write(&rootfs.join("etc/group"), "root:x:0:\n");
    write(&rootfs.join("etc/empty.conf"), "");
    fs::create_dir_all(rootfs.join("tmp")).unwrap();
    fs::create_dir_all(rootfs.join("root")).unwrap();
    let base_tar = work.join("base.tar");
    run(Command::new("tar")
        .args(["--numeric-owner", "--owner=0", "--group=0", "-C"])
        .arg(&rootfs)
        .arg("-cf")
        .arg(&base_tar)
        .arg("."));
    d.docker(&["import", base_tar.to_str().unwrap(), "base:1"]);

    // 2. Multi-layer legacy builds.
    let app = work.join("ctx-app");
    write(&app.join("data/a.txt"), "alpha\n".repeat(200));
    write(&app.join("data/b.bin"), pattern(64 * 1024, 7));
    write(&app.join("data/empty"), "");
    write(&app.join("data/remove-me.txt"), "to be whited out\n");
    write(&app.join("data/dir/old1.txt"), "old one\n");
    write(&app.join("data/dir/old2.txt"), pattern(2000, 9));
    write(&app.join("data/hard1"), "hard linked\n");
    fs::hard_link(app.join("data/hard1"), app.join("data/hard2")).unwrap();
    std::os::unix::fs::symlink("a.txt", app.join("data/sym")).unwrap();
    build(
        &d,
        &app,
        "app:1",
        "FROM base:1\n\
         COPY data /data\n\
         RUN rm /data/remove-me.txt && ln /data/a.txt /data/a-hard && ln -s /data/b.bin /data/b-sym && touch /data/empty2\n\
         RUN rm -rf /data/dir && mkdir /data/dir && echo replaced > /data/dir/new.txt\n\
         LABEL org.example.role=app\n",
    );
    d.docker(&["tag", "app:1", "app:latest"]);
    d.docker(&["tag", "app:1", "example.com/team/app:v1"]);

    let solo = work.join("ctx-solo");
    write(&solo.join("big.bin"), pattern(128 * 1024, 11));
    build(
        &d,
        &solo,
        "solo:1",
        "FROM base:1\n\
         COPY big.bin /opt/big.bin\n\
         RUN dd if=/dev/zero of=/opt/zero.bin bs=1024 count=32 && rm /bin/seq\n\
         RUN echo solo > /opt/solo.txt\n",
    );

    let child = work.join("ctx-child");
    fs::create_dir_all(&child).unwrap();
    build(
        &d,
        &child,
        "child:1",
        "FROM app:1\nRUN echo child > /data/child.txt && rm /data/b.bin\n",
    );

    // A dangling image: rebuild a tag with other content.
    let dang = work.join("ctx-dang");
    fs::create_dir_all(&dang).unwrap();
    let dangling_image = build(
        &d,
        &dang,
        "dang:1",
        "FROM base:1\nRUN echo one > /dang.txt\n",
    );
    build(
        &d,
        &dang,
        "dang:1",
        "FROM base:1\nRUN echo two-two > /dang.txt\n",
    );

    // 3. Loaded images (docker save format written here).
    let archive = write_save_archive(&work);
    d.docker(&["load", "-i", archive.to_str().unwrap()]);

    // 4. Containers, with data in their RW layers.
    d.docker(&[
        "run",
        "-d",
        "--network",
        "none",
        "--stop-timeout",
        "1",
        "--name",
        "running",
        "app:1",
        "sleep",
        "3600",
    ]);
    d.docker(&[
        "exec",
        "running",
        "sh",
        "-c",
        "mkdir /run-data && dd if=/dev/zero of=/run-data/blob bs=1024 count=24 2>/dev/null && echo x > /data/a.txt",
    ]);
    d.docker(&[
        "run",
        "--network",
        "none",
        "--name",
        "exited",
        "child:1",
        "sh",
        "-c",
        "i=0; while [ $i -lt 200 ]; do echo log line $i; i=$((i+1)); done; \
         dd if=/dev/zero of=/data/out.bin bs=1024 count=48 2>/dev/null; \
         echo more >> /data/a.txt; rm /data/empty; echo to-stderr >&2",
    ]);
    // Non-zero exit: an exited container in another state.
    let failed = d.docker_output(&[
        "run",
        "--network",
        "none",
        "--name",
        "failed",
        "base:1",
        "sh",
        "-c",
        "echo failing; echo data > /failed.txt; exit 3",
    ]);
    assert_eq!(
        failed.status.code(),
        Some(3),
        "container 'failed' should exit 3"
    );
    d.docker(&[
        "create",
        "--network",
        "none",
        "--name",
        "created",
        "loaded:2020",
        "sh",
    ]);
    write(&work.join("cp/notes.txt"), pattern(9000, 5));
    let cp_src = work.join("cp/notes.txt");
    d.docker(&["cp", cp_src.to_str().unwrap(), "created:/srv/notes.txt"]);

    if let Some(extra) = extra {
        extra(&d, &work);
    }

    // 5. The daemon's truth, captured while it runs.
    let system_df = d.api("/system/df");
    let images_all = sorted_lines(&d.docker(&["images", "-a", "--no-trunc", "-q"]));
    let images_listed = sorted_lines(&d.docker(&["images", "--no-trunc", "-q"]));
    let images_json_all = d.api("/images/json?all=1");
    let containers_json = d.api("/containers/json?all=1&size=1");
    let driver_status: Value = serde_json::from_str(
        d.docker(&["info", "--format", "{{json .DriverStatus}}"])
            .trim(),
    )
    .unwrap_or(Value::Null);
    let server_version = d
        .docker(&["version", "--format", "{{.Server.Version}}"])
        .trim()
        .to_string();
    let mut tags = BTreeMap::new();
    for img in images_json_all.as_array().expect("images json array") {
        let id = img["Id"].as_str().unwrap().to_string();
        for t in img["RepoTags"].as_array().into_iter().flatten() {
            let t = t.as_str().unwrap();
            if t != "<none>:<none>" {
                tags.insert(t.to_string(), id.clone());
            }
        }
    }
    let mut containers = BTreeMap::new();
    for c in containers_json.as_array().expect("containers json array") {
        let id = c["Id"].as_str().unwrap().to_string();
        for n in c["Names"].as_array().into_iter().flatten() {
            containers.insert(
                n.as_str().unwrap().trim_start_matches('/').to_string(),
                id.clone(),
            );
        }
    }

    // 6. Stop the daemon; nothing may stay mounted under the root.
    d.stop();
    let mounts = fs::read_to_string("/proc/self/mountinfo").unwrap_or_default();
    let root_s = root.to_str().unwrap();
    let left: Vec<&str> = mounts.lines().filter(|l| l.contains(root_s)).collect();
    assert!(left.is_empty(), "mounts left under {root_s}: {left:#?}");

    let build_secs = t0.elapsed().as_secs_f64();
    let _ = writeln!(
        std::io::stderr(),
        "scenario: built {} in {build_secs:.1} s (dockerd {server_version}; {} images, {} containers)",
        root.display(),
        images_all.len(),
        containers.len()
    );
    Some(Scenario {
        root,
        system_df,
        images_all,
        images_listed,
        images_json_all,
        containers_json,
        server_version,
        tags,
        containers,
        dangling_image,
        build_secs,
        driver_status,
        _dir: dir,
    })
}

// ---------------------------------------------------------------------------
// Exotic layers: tar edge cases, written byte by byte (see `scenario_exotic`).

/// Tag of the one-layer exotic image (layer X1).
pub const EXOTIC_1: &str = "exotic:1";
/// Tag of the two-layer exotic image (X1 and X2).
pub const EXOTIC_2: &str = "exotic:2";
/// Name of the container created on `exotic:2`.
pub const EXOTIC_CONTAINER: &str = "exotic-c";

/// X1: a regular file whose name needs a GNU long-name (`L`) header. Whited out in X2.
pub fn exotic_gnu_long() -> Vec<u8> {
    format!("exotic/gnu-long-name-{}.txt", "g".repeat(130)).into_bytes()
}
/// X1: a regular file whose path (> 200 bytes) is carried by a PAX `path` record.
pub fn exotic_pax_long() -> Vec<u8> {
    format!(
        "exotic/pax/{}/{}/pax-long-file.bin",
        "p".repeat(90),
        "q".repeat(90)
    )
    .into_bytes()
}
/// X1: a regular file with a non-UTF-8 name (tar-split stores it as `name_raw`).
pub const EXOTIC_RAW: &[u8] = b"exotic/raw-\xff\xfe-name.dat";
/// X1: a non-UTF-8 file whited out in X2.
pub const EXOTIC_RAW_GONE: &[u8] = b"exotic/raw-\xff-gone.dat";
/// X1: a directory with a non-UTF-8 name, made opaque in X2.
pub const EXOTIC_RAW_DIR: &[u8] = b"exotic/d\xe9j\xe0";
/// X1: JSON-escaped characters and UTF-8 in a name.
pub const EXOTIC_HTML: &str = "exotic/a<b>&c caf\u{e9}.txt";
/// X1: a newline in a name.
pub const EXOTIC_NEWLINE: &str = "exotic/new\nline.txt";
/// X1: a 1.5 MiB file.
pub const EXOTIC_BIG: &str = "exotic/big.bin";
/// X1: the target of two hard links (and replaced by new content in X2).
pub const EXOTIC_HL_TARGET: &str = "exotic/hl-target";
/// X1: an entry named `./exotic/dot-prefixed.txt` in the tar.
pub const EXOTIC_DOT: &str = "exotic/dot-prefixed.txt";
/// X1: an entry named `exotic/sub/../cleaned.txt` in the tar (lands here).
pub const EXOTIC_CLEANED: &str = "exotic/cleaned.txt";
/// X1: setuid, owned by 1234:5678.
pub const EXOTIC_SUID: &str = "exotic/suid.bin";
/// X2: a regular file whose path is carried by a PAX `path` record.
pub fn exotic_x2_pax_long() -> Vec<u8> {
    format!("exotic/x2/{}/x2-long.bin", "r".repeat(120)).into_bytes()
}
/// X2: a non-UTF-8 name longer than 100 bytes (GNU long name, `name_raw`).
pub fn exotic_x2_raw_long() -> Vec<u8> {
    let mut v = b"exotic/x2/".to_vec();
    for _ in 0..60 {
        v.extend_from_slice(b"\xf0\xf1");
    }
    v.extend_from_slice(b".bin");
    v
}

const MTIME: i64 = 1_560_000_000;

/// A member of a test layer: mtime `MTIME`, owned by `uid:uid` under the
/// names Docker's tars give (`root` for 0).
fn member<'a>(name: &'a [u8], kind: u8, mode: u32, uid: u64, link: &'a [u8]) -> Header<'a> {
    let owner: &[u8] = if uid == 0 { b"root" } else { b"user" };
    Header::new(name, kind)
        .mode(mode)
        .ids(uid, uid)
        .mtime(MTIME)
        .owner_names(owner, owner)
        .link(link)
}

/// Appends a member with `data` as its body; a name or link name over 100
/// bytes goes GNU (`L`/`K` long-name entries, any bytes).
fn put(t: &mut tarfmt::Writer, h: Header<'_>, data: &[u8]) {
    let h = h.size(data.len() as u64);
    if h.fits().is_ok() {
        t.entry(&h, data).unwrap();
    } else {
        t.gnu_entry(&h, data);
    }
}

fn file(t: &mut tarfmt::Writer, name: &[u8], data: &[u8]) {
    put(t, member(name, flag::REG, 0o644, 0, b""), data);
}

fn dir(t: &mut tarfmt::Writer, name: &[u8]) {
    put(t, member(name, flag::DIR, 0o755, 0, b""), b"");
}

/// A header-only member (link, symlink, fifo) or a file of another owner.
fn special(t: &mut tarfmt::Writer, name: &[u8], kind: u8, mode: u32, uid: u64, link: &[u8]) {
    put(t, member(name, kind, mode, uid, link), b"");
}

/// A regular file whose path (and `extra` records) travel in a PAX header.
fn pax_file(t: &mut tarfmt::Writer, name: &[u8], data: &[u8], extra: &[(&str, &[u8])]) {
    let mut records = vec![("path", name)];
    records.extend_from_slice(extra);
    let h = member(name, flag::REG, 0o644, 0, b"").size(data.len() as u64);
    t.pax_entry(&h, &records, data);
}

fn cat(a: &[u8], b: &[u8]) -> Vec<u8> {
    [a, b].concat()
}

/// Layer X1: long names (GNU and PAX), non-UTF-8 names, JSON-escaped names,
/// `./` and `..` in names, hard links (one to a long name), symlinks (relative,
/// absolute, dangling, long target), empty files and dirs, a fifo, a setuid
/// file of another owner, implicit parent dirs, a 1.5 MiB file.
pub fn exotic_layer_1() -> Vec<u8> {
    let mut t = tarfmt::Writer::new();
    dir(&mut t, b"exotic/");
    file(&mut t, b"exotic/plain.txt", b"plain\n");
    file(&mut t, &exotic_gnu_long(), &pattern(4000, 21));
    pax_file(
        &mut t,
        &exotic_pax_long(),
        &pattern(5000, 22),
        &[("mtime", b"1560000000.123456789")],
    );
    file(&mut t, EXOTIC_RAW, &pattern(3000, 23));
    file(&mut t, EXOTIC_RAW_GONE, b"gone in X2\n");
    dir(&mut t, &cat(EXOTIC_RAW_DIR, b"/"));
    file(&mut t, &cat(EXOTIC_RAW_DIR, b"/inner.txt"), b"inner\n");
    file(
        &mut t,
        &cat(EXOTIC_RAW_DIR, b"/inner2.bin"),
        &pattern(700, 24),
    );
    file(&mut t, EXOTIC_HTML.as_bytes(), b"html <&>\n");
    file(&mut t, EXOTIC_NEWLINE.as_bytes(), b"newline\n");
    file(&mut t, format!("./{EXOTIC_DOT}").as_bytes(), b"dot\n");
    file(&mut t, b"exotic/sub/../cleaned.txt", b"cleaned\n");
    file(&mut t, EXOTIC_BIG.as_bytes(), &pattern(1536 * 1024, 25));
    file(&mut t, EXOTIC_HL_TARGET.as_bytes(), &b"hl v1\n".repeat(50));
    let hl_target = EXOTIC_HL_TARGET.as_bytes();
    special(&mut t, b"exotic/hl-1", flag::LINK, 0o644, 0, hl_target);
    special(&mut t, b"exotic/hl-2", flag::LINK, 0o644, 0, hl_target);
    let long = exotic_gnu_long();
    special(&mut t, b"exotic/hl-to-long", flag::LINK, 0o644, 0, &long);
    special(
        &mut t,
        b"exotic/sym-rel",
        flag::SYMLINK,
        0o777,
        0,
        b"plain.txt",
    );
    special(
        &mut t,
        b"exotic/sym-abs",
        flag::SYMLINK,
        0o777,
        0,
        b"/etc/passwd",
    );
    let dangling = b"nowhere/at/all";
    special(
        &mut t,
        b"exotic/sym-dangling",
        flag::SYMLINK,
        0o777,
        0,
        dangling,
    );
    let long_target = format!("../exotic/{}", "t".repeat(150));
    let long_target = long_target.as_bytes();
    special(
        &mut t,
        b"exotic/sym-long",
        flag::SYMLINK,
        0o777,
        0,
        long_target,
    );
    file(&mut t, b"exotic/empty-1", b"");
    dir(&mut t, b"exotic/empty-dir/");
    special(&mut t, b"exotic/fifo", flag::FIFO, 0o644, 0, b"");
    let suid = member(EXOTIC_SUID.as_bytes(), flag::REG, 0o4755, 1234, b"");
    put(&mut t, suid, &pattern(900, 26));
    file(
        &mut t,
        b"exotic/implicit/deep/file.txt",
        b"implicit parents\n",
    );
    dir(&mut t, b"exotic/opq/");
    file(&mut t, b"exotic/opq/old-a.txt", b"old a\n");
    file(&mut t, b"exotic/opq/old-b.txt", b"old b\n");
    t.finish(0)
}

/// Layer X2: whiteouts of a GNU-long-named and a non-UTF-8 file, opaque dirs
/// (one with a non-UTF-8 name), a rewritten hard-link target, a PAX long name,
/// a long non-UTF-8 name, and 18 blocks of padding after the end of archive.
pub fn exotic_layer_2() -> Vec<u8> {
    let mut t = tarfmt::Writer::new();
    dir(&mut t, b"exotic/");
    let gnu = exotic_gnu_long();
    let base = &gnu[b"exotic/".len()..];
    file(&mut t, &cat(b"exotic/.wh.", base), b"");
    let raw_gone = &EXOTIC_RAW_GONE[b"exotic/".len()..];
    file(&mut t, &cat(b"exotic/.wh.", raw_gone), b"");
    dir(&mut t, b"exotic/opq/");
    file(&mut t, b"exotic/opq/.wh..wh..opq", b"");
    file(&mut t, b"exotic/opq/new.txt", b"new after opaque\n");
    dir(&mut t, &cat(EXOTIC_RAW_DIR, b"/"));
    file(&mut t, &cat(EXOTIC_RAW_DIR, b"/.wh..wh..opq"), b"");
    file(
        &mut t,
        &cat(EXOTIC_RAW_DIR, b"/after-opq.txt"),
        b"after opaque\n",
    );
    file(&mut t, EXOTIC_HL_TARGET.as_bytes(), b"hl v2, rewritten\n");
    pax_file(&mut t, &exotic_x2_pax_long(), &pattern(7000, 27), &[]);
    file(&mut t, &exotic_x2_raw_long(), &pattern(2000, 28));
    t.finish(18)
}

/// A PAX 1.0 sparse file (`GNU.sparse.*` records, what GNU tar `--sparse`
/// writes) of 1 MiB logical size with 8 KiB of data, between two plain files.
/// The daemon loads it (expanded, with holes), but its tar-split records the
/// expanded body (vbatts/tar-split `tar/asm/disassemble.go` packs what Go's
/// `tar.Reader` reads, holes filled in), so `docker save`
/// (`tar/asm/assemble.go` `WriteOutputTarStream`) cannot rebuild the stream.
pub fn sparse_layer() -> Vec<u8> {
    let mut t = tarfmt::Writer::new();
    dir(&mut t, b"sparse/");
    file(&mut t, b"sparse/plain.txt", b"next to a sparse file\n");
    let real: u64 = 1024 * 1024;
    let chunks = [(0u64, pattern(4096, 31)), (524_288u64, pattern(4096, 32))];
    let mut map = format!("{}\n", chunks.len());
    for (off, d) in &chunks {
        map.push_str(&format!("{off}\n{}\n", d.len()));
    }
    let mut body = map.into_bytes();
    body.resize(body.len().div_ceil(512) * 512, 0);
    for (_, d) in &chunks {
        body.extend_from_slice(d);
    }
    let realsize = real.to_string();
    t.pax(
        b"sparse/holes.bin",
        &[
            ("GNU.sparse.major", b"1"),
            ("GNU.sparse.minor", b"0"),
            ("GNU.sparse.name", b"sparse/holes.bin"),
            ("GNU.sparse.realsize", realsize.as_bytes()),
        ],
    );
    let holes = member(
        b"sparse/GNUSparseFile.0/holes.bin",
        flag::REG,
        0o644,
        0,
        b"",
    );
    put(&mut t, holes, &body);
    file(&mut t, b"sparse/after.txt", b"after the sparse file\n");
    t.finish(0)
}

/// Writes a `docker save`-format archive under `dir` with one image per
/// `(tag, layers)` (layers bottom first) and returns its path.
pub fn write_image_archive(dir: &Path, name: &str, images: &[(&str, Vec<Vec<u8>>)]) -> PathBuf {
    let tree = dir.join(name);
    let mut manifest = Vec::new();
    for (tag, layers) in images {
        let mut diffs = Vec::new();
        let mut paths = Vec::new();
        for l in layers {
            let d = sha256_digest(l);
            let h = d.trim_start_matches("sha256:").to_string();
            write(&tree.join(&h).join("layer.tar"), l);
            paths.push(format!("{h}/layer.tar"));
            diffs.push(d);
        }
        let history: Vec<Value> = diffs
            .iter()
            .map(|_| serde_json::json!({"created": "2021-02-03T04:05:06Z", "created_by": "dockgc test"}))
            .collect();
        let cfg = serde_json::json!({
            "architecture": "amd64",
            "os": "linux",
            "created": "2021-02-03T04:05:06Z",
            "config": {"Labels": {"org.example.archive": *tag}, "Cmd": ["/none"]},
            "rootfs": {"type": "layers", "diff_ids": diffs},
            "history": history,
        });
        let bytes = serde_json::to_vec(&cfg).unwrap();
        let cname = format!(
            "{}.json",
            sha256_digest(&bytes).trim_start_matches("sha256:")
        );
        write(&tree.join(&cname), &bytes);
        manifest.push(serde_json::json!({"Config": cname, "RepoTags": [tag], "Layers": paths}));
    }
    write(
        &tree.join("manifest.json"),
        serde_json::to_vec(&manifest).unwrap(),
    );
    let archive = dir.join(format!("{name}.tar"));
    run(Command::new("tar")
        .arg("-C")
        .arg(&tree)
        .arg("-cf")
        .arg(&archive)
        .arg("."));
    archive
}

/// Loads `exotic:1` (X1) and `exotic:2` (X1, X2) from a `docker save`-format
/// archive and creates the container `exotic-c` on `exotic:2`.
pub fn add_exotic(d: &Daemon, work: &Path) {
    let (l1, l2) = (exotic_layer_1(), exotic_layer_2());
    let archive = write_image_archive(
        work,
        "exotic-save",
        &[(EXOTIC_1, vec![l1.clone()]), (EXOTIC_2, vec![l1, l2])],
    );
    d.docker(&["load", "-i", archive.to_str().unwrap()]);
    d.docker(&[
        "create",
        "--network",
        "none",
        "--name",
        EXOTIC_CONTAINER,
        EXOTIC_2,
    ]);
}
