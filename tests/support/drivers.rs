//! A root that two storage drivers wrote, as on a host that once ran
//! `dockerd -s vfs` (Docker-in-Docker often does) and later a plain daemon:
//! a first daemon with `-s vfs` imports and builds images, runs a container
//! on a named volume and stops; a second, started without a driver, chooses
//! overlay2 (its prior-driver scan skips vfs state), imports and builds
//! again, runs a container on the same volume and a new one, and stops. Its
//! answers are captured just before it stops.

use super::*;

/// See the module doc.
pub struct TwoDrivers {
    /// The data root (daemon stopped): non-empty `vfs/`, `image/vfs/`,
    /// `overlay2/` and `image/overlay2/`.
    pub root: PathBuf,
    /// `docker info` `Driver` of the second, plain daemon.
    pub plain_driver: String,
    /// GET /system/df of the plain daemon.
    pub system_df: Value,
    /// GET /images/json?all=1 of the plain daemon.
    pub images_json_all: Value,
    /// GET /containers/json?all=1&size=1 of the plain daemon.
    pub containers_json: Value,
    /// The container the vfs daemon created (the plain daemon does not restore it).
    pub vfs_container: String,
    _dir: PathBuf,
}

static TWO_DRIVERS: OnceLock<Result<Option<TwoDrivers>, String>> = OnceLock::new();

/// The two-driver root, built once per test binary; `None` if skipped.
pub fn scenario_two_drivers() -> Option<&'static TwoDrivers> {
    let r = TWO_DRIVERS.get_or_init(|| {
        std::panic::catch_unwind(build).map_err(|p| {
            p.downcast_ref::<String>()
                .cloned()
                .or_else(|| p.downcast_ref::<&str>().map(|s| s.to_string()))
                .unwrap_or_else(|| "unknown panic".into())
        })
    });
    match r {
        Ok(s) => s.as_ref(),
        Err(e) => panic!("building the two-driver real-daemon scenario failed: {e}"),
    }
}

/// A one-`RUN` legacy build on `from`, tagged `tag`.
fn build_on(d: &Daemon, ctx: &Path, from: &str, tag: &str, text: &str) {
    write(
        &ctx.join("Dockerfile"),
        format!("FROM {from}\nRUN echo {text} > /built.txt\n"),
    );
    d.docker(&[
        "build",
        "--network",
        "none",
        "-q",
        "-t",
        tag,
        ctx.to_str().unwrap(),
    ]);
}

fn build() -> Option<TwoDrivers> {
    let dir = tempfile::Builder::new()
        .prefix("dockgc-drivers")
        .tempdir()
        .expect("tempdir")
        .keep();
    CLEANUP.lock().unwrap().push(dir.clone());
    register_cleanup();
    let root = dir.join("root");
    let work = dir.join("work");

    let d = Daemon::start_with(&root, &["-s", "vfs"])?;
    let info = d.api("/info");
    assert_eq!(info["Driver"], "vfs", "the first daemon runs vfs");
    import_base(&d, &work.join("vfs"));
    build_on(&d, &work.join("ctx-vfs"), "base:1", "vfs-app:1", "vfs");
    d.docker(&[
        "run",
        "--network",
        "none",
        "--name",
        "vfs-ctr",
        "-v",
        "shared-vol:/d",
        "vfs-app:1",
        "sh",
        "-c",
        "echo from-vfs > /d/vfs.txt",
    ]);
    let vfs_container = d
        .docker(&["inspect", "-f", "{{.Id}}", "vfs-ctr"])
        .trim()
        .to_string();
    d.stop();
    assert_nothing_mounted(&root);

    let d = Daemon::start(&root)?;
    let plain_driver = d.api("/info")["Driver"]
        .as_str()
        .unwrap_or_default()
        .to_string();
    import_base(&d, &work.join("overlay2"));
    build_on(&d, &work.join("ctx-ov"), "base:1", "ov-app:1", "overlay2");
    d.docker(&[
        "run",
        "--network",
        "none",
        "--name",
        "ov-ctr",
        "-v",
        "shared-vol:/d",
        "-v",
        "ov-vol:/e",
        "ov-app:1",
        "sh",
        "-c",
        "echo from-overlay2 > /d/ov.txt; dd if=/dev/zero of=/e/blob bs=1024 count=7 2>/dev/null",
    ]);
    let system_df = d.api("/system/df");
    let images_json_all = d.api("/images/json?all=1");
    let containers_json = d.api("/containers/json?all=1&size=1");
    d.stop();
    assert_nothing_mounted(&root);
    Some(TwoDrivers {
        root,
        plain_driver,
        system_df,
        images_json_all,
        containers_json,
        vfs_container,
        _dir: dir,
    })
}

/// Starts a dockerd on `root` with `extra` flags that must refuse to start;
/// returns its log. `None` (after a loud SKIPPED message) if no daemon can
/// be run here and none is required. Panics if it starts.
pub fn dockerd_refuses(root: &Path, extra: &[&str]) -> Option<String> {
    if unsafe { libc::geteuid() } != 0 {
        return unavailable("not running as root (dockerd needs root)", None);
    }
    let Some(dockerd) = search_path("dockerd", SYS_DIRS) else {
        return unavailable("no dockerd binary (apt-get install docker.io)", None);
    };
    let run = tempfile::Builder::new()
        .prefix("dgc")
        .suffix(".run")
        .tempdir_in("/tmp")
        .expect("run dir");
    let log = run.path().join("dockerd.log");
    let logf = fs::File::create(&log).expect("create daemon log");
    let mut child = Command::new(&dockerd)
        .arg("--data-root")
        .arg(root)
        .arg("--exec-root")
        .arg(run.path().join("exec"))
        .arg("-H")
        .arg(format!(
            "unix://{}",
            run.path().join("docker.sock").display()
        ))
        .arg("--pidfile")
        .arg(run.path().join("docker.pid"))
        .args(["--iptables=false", "--ip6tables=false", "--bridge=none"])
        .args(extra)
        .env("PATH", daemon_path_env())
        .stdin(Stdio::null())
        .stdout(logf.try_clone().expect("dup log"))
        .stderr(logf)
        .spawn()
        .unwrap_or_else(|e| panic!("cannot spawn {}: {e}", dockerd.display()));
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        if let Some(st) = child.try_wait().expect("wait for dockerd") {
            assert!(!st.success(), "dockerd exited 0 on {}", root.display());
            return Some(fs::read_to_string(&log).unwrap_or_default());
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            panic!(
                "dockerd started on {} but should have refused:\n{}",
                root.display(),
                tail(&log, 40)
            );
        }
        std::thread::sleep(Duration::from_millis(100));
    }
}
