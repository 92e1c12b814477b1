//! A data root as today's hosts have them, written by a real daemon: images
//! built with BuildKit (Debian's `/usr/bin/docker` with `DOCKER_BUILDKIT=1`
//! drives the 20.10 daemon's embedded BuildKit), build cache of every kind,
//! volumes, several log drivers, and an image force-removed under a stopped
//! container. The daemon's own answers are captured just before it stops.

use super::*;

/// See the module doc.
pub struct Modern {
    /// The data root (daemon stopped).
    pub root: PathBuf,
    /// GET /system/df, taken after a first df: the daemon's df updates
    /// BuildKit's usage counts of cache mounts as it answers, so only a
    /// second answer describes the root as it is left.
    pub system_df: Value,
    /// GET /images/json?all=1.
    pub images_json_all: Value,
    /// GET /containers/json?all=1&size=1.
    pub containers_json: Value,
    /// GET /volumes.
    pub volumes_json: Value,
    /// `docker system df` and `docker system df -v` as the CLI prints them.
    pub system_df_cli: String,
    pub system_df_cli_v: String,
    /// Tag → image ID.
    pub tags: BTreeMap<String, String>,
    /// Container name → ID.
    pub containers: BTreeMap<String, String>,
    /// The image `docker rmi -f` removed while the stopped container
    /// `orphaned` still uses it.
    pub force_removed: String,
    pub build_secs: f64,
    _dir: PathBuf,
}

static MODERN: OnceLock<Result<Option<Modern>, String>> = OnceLock::new();

/// The modern scenario, built once per test binary; `None` if skipped.
pub fn scenario_modern() -> Option<&'static Modern> {
    let r = MODERN.get_or_init(|| {
        std::panic::catch_unwind(build_modern).map_err(|p| {
            p.downcast_ref::<String>()
                .cloned()
                .or_else(|| p.downcast_ref::<&str>().map(|s| s.to_string()))
                .unwrap_or_else(|| "unknown panic".into())
        })
    });
    match r {
        Ok(s) => s.as_ref(),
        Err(e) => panic!("building the modern real-daemon scenario failed: {e}"),
    }
}

impl Daemon {
    /// The docker CLI with BuildKit on (Debian's 20.10 CLI drives it).
    pub fn docker_bk_output(&self, args: &[&str]) -> Output {
        let mut c = self.docker_cmd(args);
        c.env("DOCKER_BUILDKIT", "1");
        c.output()
            .unwrap_or_else(|e| panic!("cannot run docker {args:?}: {e}"))
    }

    pub fn docker_bk(&self, args: &[&str]) -> String {
        let out = self.docker_bk_output(args);
        if !out.status.success() {
            panic!(
                "DOCKER_BUILDKIT=1 docker {args:?} failed ({}):\nstderr: {}\n--- daemon log tail ---\n{}",
                out.status,
                String::from_utf8_lossy(&out.stderr),
                tail(&self.log, 20)
            );
        }
        String::from_utf8(out.stdout).expect("docker stdout is UTF-8")
    }

    /// A BuildKit build of `dockerfile` in `ctx`; `extra` flags before the context.
    pub fn build_bk(&self, ctx: &Path, tag: &str, dockerfile: &str, extra: &[&str]) -> String {
        write(&ctx.join("Dockerfile"), dockerfile);
        let mut args = vec!["build", "--network", "none", "-q", "-t", tag];
        args.extend_from_slice(extra);
        args.push(ctx.to_str().unwrap());
        self.docker_bk(&args).trim().to_string()
    }

    /// `/system/df` as the root is left: the first call may still update
    /// BuildKit's usage counts (it takes views of cache mounts), the second
    /// answers from the updated metadata.
    pub fn settled_df(&self) -> Value {
        let _ = self.api("/system/df");
        self.api("/system/df")
    }
}

/// A static-busybox root filesystem tar, imported as `base:1`.
pub fn import_base(d: &Daemon, work: &Path) {
    let busybox = find_static_busybox();
    let rootfs = work.join("rootfs");
    fs::create_dir_all(rootfs.join("bin")).unwrap();
    fs::copy(&busybox, rootfs.join("bin/busybox")).unwrap();
    for applet in [
        "sh", "ls", "cat", "rm", "mkdir", "ln", "sleep", "echo", "touch", "dd", "true", "false",
        "seq", "head", "cp", "mv", "test", "[",
    ] {
        std::os::unix::fs::symlink("busybox", rootfs.join("bin").join(applet)).unwrap();
    }
    write(
        &rootfs.join("etc/passwd"),
        "root:x:0:0:root:/root:/bin/sh\n",
    );
    write(&rootfs.join("etc/group"), "root:x:0:\n");
    fs::create_dir_all(rootfs.join("tmp")).unwrap();
    let tar = work.join("base.tar");
    run(Command::new("tar")
        .args(["--numeric-owner", "--owner=0", "--group=0", "-C"])
        .arg(&rootfs)
        .arg("-cf")
        .arg(&tar)
        .arg("."));
    d.docker(&["import", tar.to_str().unwrap(), "base:1"]);
}

/// BuildKit builds: a multi-stage build with a cache mount and `COPY
/// --from`, a `--target` build of its first stage, a `--no-cache` rebuild
/// whose first layer equals the first build's (BuildKit then stacks the new
/// layer on its own copy of the parent dir), a second cache mount shared
/// across builds, and a failed build.
pub fn add_buildkit_builds(d: &Daemon, work: &Path) {
    let ctx = work.join("ctx-bk");
    write(&ctx.join("src/a.txt"), "alpha\n".repeat(300));
    write(&ctx.join("src/b.bin"), pattern(32 * 1024, 3));
    write(&ctx.join("keep.txt"), "kept\n");
    let multi = "FROM base:1 AS builder\n\
         RUN --mount=type=cache,id=bk-cache,target=/cache \
             dd if=/dev/zero of=/cache/blob bs=1024 count=40 2>/dev/null && mkdir -p /out && echo built > /out/result\n\
         COPY src /src\n\
         RUN cat /src/a.txt > /out/a-copy && rm /src/b.bin\n\
         FROM base:1\n\
         COPY --from=builder /out /app\n\
         COPY keep.txt /app/keep.txt\n\
         RUN rm /bin/seq && mkdir -p /data && echo data > /data/d\n\
         LABEL org.example.builder=buildkit\n";
    d.build_bk(&ctx, "bk:1", multi, &[]);
    d.build_bk(&ctx, "bk-builder:1", multi, &["--target", "builder"]);

    let rebuild = work.join("ctx-rebuild");
    write(&rebuild.join("first.txt"), "the same first layer\n");
    // The second layer differs each time (a fresh UUID), the first does not.
    let df = "FROM base:1\nCOPY first.txt /first.txt\nRUN cat /proc/sys/kernel/random/uuid > /second.txt\n";
    d.build_bk(&rebuild, "rebuild:1", df, &[]);
    // Same first layer again, built anew: equal diff ID, BuildKit's own dirs.
    d.build_bk(&rebuild, "rebuild:2", df, &["--no-cache"]);

    let shared = work.join("ctx-shared");
    fs::create_dir_all(&shared).unwrap();
    d.build_bk(
        &shared,
        "shared:1",
        "FROM base:1\nRUN --mount=type=cache,id=shared,target=/c,sharing=locked \
         echo x >> /c/log && cp /c/log /log-copy\n",
        &[],
    );

    let failing = work.join("ctx-fail");
    write(&failing.join("x.txt"), "x\n");
    write(
        &failing.join("Dockerfile"),
        "FROM base:1\nCOPY x.txt /x.txt\nRUN echo before-failure > /f && false\n",
    );
    let out = d.docker_bk_output(&[
        "build",
        "--network",
        "none",
        "-t",
        "fails:1",
        failing.to_str().unwrap(),
    ]);
    assert!(!out.status.success(), "the failing build must fail");
}

/// A stopped container on an image that `docker rmi -f` then removes: the
/// container keeps its RW layer and the layers below; it still starts.
pub fn add_force_removed(d: &Daemon, work: &Path) -> String {
    let ctx = work.join("ctx-gone");
    write(&ctx.join("g.txt"), "gone soon\n");
    let id = d.build_bk(
        &ctx,
        "gone:1",
        "FROM base:1\nCOPY g.txt /g.txt\nRUN echo more > /more.txt\n",
        &[],
    );
    d.docker(&[
        "create",
        "--network",
        "none",
        "--name",
        "orphaned",
        "gone:1",
        "cat",
        "/g.txt",
    ]);
    d.docker(&["rmi", "-f", "gone:1"]);
    id
}

fn build_modern() -> Option<Modern> {
    let t0 = Instant::now();
    let dir = tempfile::Builder::new()
        .prefix("dockgc-modern")
        .tempdir()
        .expect("tempdir")
        .keep();
    CLEANUP.lock().unwrap().push(dir.clone());
    register_cleanup();
    let root = dir.join("root");
    let work = dir.join("work");
    let d = Daemon::start(&root)?;
    import_base(&d, &work);
    add_buildkit_builds(&d, &work);
    let force_removed = add_force_removed(&d, &work);
    super::volumes::add_volumes_and_logs(&d, &work);

    let system_df = d.settled_df();
    let images_json_all = d.api("/images/json?all=1");
    let containers_json = d.api("/containers/json?all=1&size=1");
    let volumes_json = d.api("/volumes");
    let system_df_cli = d.docker(&["system", "df"]);
    let system_df_cli_v = d.docker(&["system", "df", "-v"]);
    let tags = tags_of(&images_json_all);
    let containers = names_of(&containers_json);
    d.stop();
    assert_nothing_mounted(&root);
    let build_secs = t0.elapsed().as_secs_f64();
    let _ = writeln!(
        std::io::stderr(),
        "scenario: built the modern root {} in {build_secs:.1} s",
        root.display()
    );
    Some(Modern {
        root,
        system_df,
        images_json_all,
        containers_json,
        volumes_json,
        system_df_cli,
        system_df_cli_v,
        tags,
        containers,
        force_removed,
        build_secs,
        _dir: dir,
    })
}

/// Tag → image ID, from `/images/json`.
pub fn tags_of(images_json: &Value) -> BTreeMap<String, String> {
    let mut tags = BTreeMap::new();
    for img in images_json.as_array().expect("images json array") {
        let id = img["Id"].as_str().unwrap().to_string();
        for t in img["RepoTags"].as_array().into_iter().flatten() {
            let t = t.as_str().unwrap();
            if t != "<none>:<none>" {
                tags.insert(t.to_string(), id.clone());
            }
        }
    }
    tags
}

/// Container name → ID, from `/containers/json`.
pub fn names_of(containers_json: &Value) -> BTreeMap<String, String> {
    let mut out = BTreeMap::new();
    for c in containers_json.as_array().expect("containers json array") {
        let id = c["Id"].as_str().unwrap().to_string();
        for n in c["Names"].as_array().into_iter().flatten() {
            out.insert(
                n.as_str().unwrap().trim_start_matches('/').to_string(),
                id.clone(),
            );
        }
    }
    out
}

/// Nothing may stay mounted under a stopped daemon's root.
pub fn assert_nothing_mounted(root: &Path) {
    let mounts = fs::read_to_string("/proc/self/mountinfo").unwrap_or_default();
    let root_s = root.to_str().unwrap();
    let left: Vec<&str> = mounts.lines().filter(|l| l.contains(root_s)).collect();
    assert!(left.is_empty(), "mounts left under {root_s}: {left:#?}");
}
