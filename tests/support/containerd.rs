//! A private real containerd as the judge (Debian's `containerd` and
//! `runc`): its own config.toml with root, state and socket under a temp
//! dir, the CRI plugin and unused snapshotters off, a high GC mutation
//! threshold so building a scenario collects nothing by itself. It is
//! stopped by the pid it was started with, never by name.
//!
//! [`ctrd_scenario`] builds a root the way today's hosts have them:
//! images sharing a static-busybox base in `moby` (Docker 29), `k8s.io`
//! (the CRI triple of names) and `default` (nerdctl), extra tags, a
//! `moby-dangling@` image, a multi-platform OCI index, a container with
//! written data, a leased active snapshot, a kept view, an ingest
//! leftover, an unreferenced blob and a collectable prepare/commit pair,
//! with containerd's own figures recorded just before it stops.
//! [`gc_oracle`] boots containerd on a copy of a stopped root and reports
//! what its startup garbage collection removed.

use super::*;
use std::collections::BTreeSet;

/// Skip or fail, per `docker_required()`, naming containerd.
fn ctrd_unavailable<T>(reason: &str, log: Option<&Path>) -> Option<T> {
    let log_tail = log.map(|l| tail(l, 40)).unwrap_or_default();
    if docker_required() {
        panic!(
            "real containerd required (DOCKGC_REQUIRE_DOCKER or CI is set) but unavailable: \
             {reason}\n--- containerd log tail ---\n{log_tail}"
        );
    }
    let _ = writeln!(
        std::io::stderr(),
        "\n*** SKIPPED: real-containerd test skipped: {reason}. \
         Set DOCKGC_REQUIRE_DOCKER=1 to make this a failure. ***\n{log_tail}"
    );
    None
}

/// A private containerd.
pub struct Ctrd {
    pub dir: PathBuf,
    pub root: PathBuf,
    pub sock: PathBuf,
    pub log: PathBuf,
    child: Option<Child>,
}

impl Ctrd {
    /// Starts containerd with `root` as its root, config and state under
    /// `dir`. `None` (after a loud SKIPPED message) when it cannot run.
    pub fn start(dir: &Path, root: &Path, debug: bool) -> Option<Ctrd> {
        let is_root = fs::metadata("/proc/self")
            .map(|m| m.uid() == 0)
            .unwrap_or(false);
        if !is_root {
            return ctrd_unavailable("not running as root (containerd needs root)", None);
        }
        for bin in ["containerd", "ctr", "runc"] {
            if search_path(bin, SYS_DIRS).is_none() {
                return ctrd_unavailable(
                    &format!("no {bin} binary (apt-get install containerd runc)"),
                    None,
                );
            }
        }
        fs::create_dir_all(dir).unwrap();
        fs::create_dir_all(root).unwrap();
        let state = dir.join("state");
        let sock = state.join("containerd.sock");
        let log = dir.join("containerd.log");
        fs::write(
            dir.join("config.toml"),
            format!(
                "version = 2\nroot = \"{root}\"\nstate = \"{state}\"\n\
                 disabled_plugins = [\"io.containerd.grpc.v1.cri\", \
                 \"io.containerd.snapshotter.v1.btrfs\", \"io.containerd.snapshotter.v1.zfs\", \
                 \"io.containerd.snapshotter.v1.devmapper\", \"io.containerd.snapshotter.v1.aufs\"]\n\
                 [grpc]\n  address = \"{sock}\"\n\
                 [debug]\n  level = \"{level}\"\n\
                 [plugins.\"io.containerd.gc.v1.scheduler\"]\n  mutation_threshold = 100000\n",
                root = root.display(),
                state = state.display(),
                sock = sock.display(),
                level = if debug { "debug" } else { "info" },
            ),
        )
        .unwrap();
        let logf = fs::File::create(&log).unwrap();
        let child = match Command::new(search_path("containerd", SYS_DIRS).unwrap())
            .arg("--config")
            .arg(dir.join("config.toml"))
            .env("PATH", daemon_path_env())
            .stdin(Stdio::null())
            .stdout(logf.try_clone().unwrap())
            .stderr(logf)
            .spawn()
        {
            Ok(c) => c,
            Err(e) => return ctrd_unavailable(&format!("cannot spawn containerd: {e}"), None),
        };
        let mut c = Ctrd {
            dir: dir.to_path_buf(),
            root: root.to_path_buf(),
            sock,
            log,
            child: Some(child),
        };
        let t0 = Instant::now();
        while t0.elapsed() < Duration::from_secs(20) {
            if c.ctr_output("default", &["version"]).status.success() {
                return Some(c);
            }
            if let Some(ch) = c.child.as_mut()
                && let Ok(Some(st)) = ch.try_wait()
            {
                c.child = None;
                return ctrd_unavailable(&format!("containerd exited: {st}"), Some(&c.log));
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        let log = c.log.clone();
        c.stop();
        ctrd_unavailable("containerd did not answer within 20 s", Some(&log))
    }

    pub fn ctr_output(&self, ns: &str, args: &[&str]) -> Output {
        Command::new(search_path("ctr", SYS_DIRS).unwrap())
            .arg("--address")
            .arg(&self.sock)
            .args(["-n", ns])
            .args(args)
            .env("PATH", daemon_path_env())
            .stdin(Stdio::null())
            .output()
            .unwrap_or_else(|e| panic!("cannot run ctr {args:?}: {e}"))
    }

    /// `ctr -n NS ARGS`, which must succeed; its stdout.
    pub fn ctr(&self, ns: &str, args: &[&str]) -> String {
        let out = self.ctr_output(ns, args);
        if !out.status.success() {
            panic!(
                "ctr -n {ns} {args:?} failed ({}):\nstderr: {}\n--- containerd log tail ---\n{}",
                out.status,
                String::from_utf8_lossy(&out.stderr),
                tail(&self.log, 20)
            );
        }
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    /// `ctr` with bytes on stdin.
    pub fn ctr_stdin(&self, ns: &str, args: &[&str], input: &[u8]) -> Output {
        let mut child = Command::new(search_path("ctr", SYS_DIRS).unwrap())
            .arg("--address")
            .arg(&self.sock)
            .args(["-n", ns])
            .args(args)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("spawn ctr");
        if let Some(mut i) = child.stdin.take() {
            let _ = i.write_all(input);
        }
        child.wait_with_output().expect("ctr")
    }

    /// SIGTERM to the pid started here, then wait (SIGKILL after 20 s).
    pub fn stop(&mut self) {
        let Some(mut child) = self.child.take() else {
            return;
        };
        let pid = child.id().to_string();
        let _ = Command::new("kill").args(["-TERM", &pid]).status();
        let t0 = Instant::now();
        loop {
            if let Ok(Some(_)) = child.try_wait() {
                break;
            }
            if t0.elapsed() > Duration::from_secs(20) {
                let _ = child.kill();
                let _ = child.wait();
                break;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

impl Drop for Ctrd {
    fn drop(&mut self) {
        self.stop();
    }
}

// ---------------------------------------------------------------------------
// Images written here: docker-archive and OCI layout tars with gzip layers.

fn gzip(b: &[u8]) -> Vec<u8> {
    let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    e.write_all(b).unwrap();
    e.finish().unwrap()
}

/// A layer: (uncompressed tar, gzip of it).
pub struct TestLayer {
    pub tar: Vec<u8>,
    pub gz: Vec<u8>,
}

impl TestLayer {
    fn new(tar: Vec<u8>) -> TestLayer {
        TestLayer {
            gz: gzip(&tar),
            tar,
        }
    }
    pub fn diff_id(&self) -> String {
        sha256_digest(&self.tar)
    }
}

/// The base: a static busybox and links to it.
fn base_layer() -> TestLayer {
    let bb = fs::read(find_static_busybox()).unwrap();
    let mut b = tar::Builder::new(Vec::new());
    tar_special(&mut b, "bin/", tar::EntryType::Directory, "");
    tar_file(&mut b, "bin/busybox", &bb, 0o755);
    for l in ["sh", "echo", "cat", "dd", "ln", "ls", "rm", "true"] {
        tar_special(
            &mut b,
            &format!("bin/{l}"),
            tar::EntryType::Symlink,
            "busybox",
        );
    }
    tar_special(&mut b, "tmp/", tar::EntryType::Directory, "");
    TestLayer::new(b.into_inner().unwrap())
}

/// An application layer: a 200,000-byte file, a hard link to it and 64 KiB of zeros.
fn app_layer() -> TestLayer {
    let mut b = tar::Builder::new(Vec::new());
    tar_special(&mut b, "app/", tar::EntryType::Directory, "");
    tar_file(&mut b, "app/readme", b"app layer\n", 0o644);
    tar_file(&mut b, "app/data", &pattern(200_000, 7), 0o644);
    tar_special(&mut b, "app/data-link", tar::EntryType::Link, "app/data");
    tar_file(&mut b, "app/zeros", &vec![0u8; 65536], 0o644);
    TestLayer::new(b.into_inner().unwrap())
}

/// A second application layer that deletes `app/readme` (a whiteout).
fn app2_layer() -> TestLayer {
    let mut b = tar::Builder::new(Vec::new());
    tar_special(&mut b, "app/", tar::EntryType::Directory, "");
    tar_file(&mut b, "app/.wh.readme", b"", 0o644);
    tar_file(&mut b, "app/v2", &pattern(30_000, 9), 0o644);
    TestLayer::new(b.into_inner().unwrap())
}

fn tool_layer() -> TestLayer {
    let mut b = tar::Builder::new(Vec::new());
    tar_special(&mut b, "opt/", tar::EntryType::Directory, "");
    tar_file(&mut b, "opt/tool", &pattern(450_000, 3), 0o755);
    TestLayer::new(b.into_inner().unwrap())
}

fn small_layer(name: &str, body: &[u8]) -> TestLayer {
    let mut b = tar::Builder::new(Vec::new());
    tar_file(&mut b, name, body, 0o644);
    TestLayer::new(b.into_inner().unwrap())
}

fn config_json(arch: &str, layers: &[&TestLayer], created: &str) -> Vec<u8> {
    let diffs: Vec<String> = layers.iter().map(|l| l.diff_id()).collect();
    serde_json::to_vec(&serde_json::json!({
        "architecture": arch,
        "os": "linux",
        "created": created,
        "config": {"Cmd": ["/bin/sh"], "Labels": {"org.example.test": "dockgc"}},
        "rootfs": {"type": "layers", "diff_ids": diffs},
        "history": diffs.iter().map(|_| serde_json::json!({"created": created})).collect::<Vec<_>>(),
    }))
    .unwrap()
}

/// A docker-archive (`docker save` format) with gzip layers.
fn docker_archive(dir: &Path, name: &str, images: &[(&str, Vec<&TestLayer>, &str)]) -> PathBuf {
    let tree = dir.join(name);
    let mut manifest = Vec::new();
    for (tag, layers, created) in images {
        let mut paths = Vec::new();
        for l in layers {
            let h = sha256_digest(&l.gz)
                .trim_start_matches("sha256:")
                .to_string();
            write(&tree.join(&h).join("layer.tar"), &l.gz);
            paths.push(format!("{h}/layer.tar"));
        }
        let cfg = config_json("amd64", layers, created);
        let cname = format!("{}.json", sha256_digest(&cfg).trim_start_matches("sha256:"));
        write(&tree.join(&cname), &cfg);
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

/// An OCI layout with one index: linux/amd64, linux/arm64/v8 and an
/// attestation manifest, as BuildKit pushes multi-platform images.
fn oci_index_archive(dir: &Path, name: &str, base: &TestLayer) -> PathBuf {
    let tree = dir.join(name);
    let put = |b: &[u8]| -> (String, usize) {
        let d = sha256_digest(b);
        write(
            &tree
                .join("blobs/sha256")
                .join(d.trim_start_matches("sha256:")),
            b,
        );
        (d, b.len())
    };
    let manifest = |arch: &str, layers: &[&TestLayer]| -> (String, usize) {
        let cfg = config_json(arch, layers, "2024-05-06T07:08:09Z");
        let (cd, cs) = put(&cfg);
        let ls: Vec<serde_json::Value> = layers
            .iter()
            .map(|l| {
                let (d, s) = put(&l.gz);
                serde_json::json!({"mediaType": "application/vnd.oci.image.layer.v1.tar+gzip", "digest": d, "size": s})
            })
            .collect();
        put(&serde_json::to_vec(&serde_json::json!({
            "schemaVersion": 2,
            "mediaType": "application/vnd.oci.image.manifest.v1+json",
            "config": {"mediaType": "application/vnd.oci.image.config.v1+json", "digest": cd, "size": cs},
            "layers": ls,
        }))
        .unwrap())
    };
    let amd = manifest("amd64", &[base, &small_layer("multi-amd64", b"amd64\n")]);
    let arm = manifest("arm64", &[&small_layer("multi-arm64", b"arm64\n")]);
    let (ed, es) = put(b"{}");
    let att = put(&serde_json::to_vec(&serde_json::json!({
        "schemaVersion": 2,
        "mediaType": "application/vnd.oci.image.manifest.v1+json",
        "config": {"mediaType": "application/vnd.oci.image.config.v1+json", "digest": ed, "size": es},
        "layers": [],
    }))
    .unwrap());
    let mt = "application/vnd.oci.image.manifest.v1+json";
    let idx = put(&serde_json::to_vec(&serde_json::json!({
        "schemaVersion": 2,
        "mediaType": "application/vnd.oci.image.index.v1+json",
        "manifests": [
            {"mediaType": mt, "digest": amd.0, "size": amd.1, "platform": {"os": "linux", "architecture": "amd64"}},
            {"mediaType": mt, "digest": arm.0, "size": arm.1, "platform": {"os": "linux", "architecture": "arm64", "variant": "v8"}},
            {"mediaType": mt, "digest": att.0, "size": att.1, "platform": {"os": "unknown", "architecture": "unknown"},
             "annotations": {"vnd.docker.reference.type": "attestation-manifest", "vnd.docker.reference.digest": amd.0}},
        ],
    }))
    .unwrap());
    write(
        &tree.join("index.json"),
        serde_json::to_vec(&serde_json::json!({
            "schemaVersion": 2,
            "manifests": [{"mediaType": "application/vnd.oci.image.index.v1+json", "digest": idx.0, "size": idx.1,
                "annotations": {"io.containerd.image.name": MULTI, "org.opencontainers.image.ref.name": "1"}}],
        }))
        .unwrap(),
    );
    write(
        &tree.join("oci-layout"),
        br#"{"imageLayoutVersion":"1.0.0"}"#,
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

pub const APP1: &str = "docker.io/library/app:1";
pub const APP2: &str = "docker.io/library/app:2";
pub const APP_LATEST: &str = "docker.io/library/app:latest";
pub const BB1: &str = "docker.io/library/bb:1";
pub const TOOL1: &str = "docker.io/library/tool:1";
pub const MULTI: &str = "docker.io/library/multi:1";
pub const NAMESPACES: [&str; 3] = ["default", "k8s.io", "moby"];

// ---------------------------------------------------------------------------
// What containerd reports, parsed from `ctr`.

/// containerd's own view of one namespace.
#[derive(Debug, Clone, Default)]
pub struct NsJudge {
    /// `ctr snapshots usage -b`: key → (size, inodes).
    pub usage: BTreeMap<String, (u64, u64)>,
    /// `ctr snapshots ls`: key → (parent, kind).
    pub snapshots: BTreeMap<String, (String, String)>,
    /// `ctr images ls`: name → (target digest, SIZE as printed).
    pub images: BTreeMap<String, (String, String)>,
    /// `ctr content ls` digests.
    pub content: BTreeSet<String>,
    /// `ctr leases ls` ids.
    pub leases: BTreeSet<String>,
    /// `ctr content active` refs.
    pub ingests: BTreeSet<String>,
}

fn rows(text: &str) -> impl Iterator<Item = Vec<&str>> {
    text.lines()
        .skip(1)
        .map(|l| l.split_whitespace().collect::<Vec<_>>())
        .filter(|t| !t.is_empty())
}

/// Everything `ctr` says about a namespace.
pub fn judge(c: &Ctrd, ns: &str) -> NsJudge {
    let mut j = NsJudge::default();
    for t in rows(&c.ctr(ns, &["snapshots", "usage", "-b"])) {
        j.usage
            .insert(t[0].into(), (t[1].parse().unwrap(), t[2].parse().unwrap()));
    }
    for t in rows(&c.ctr(ns, &["snapshots", "ls"])) {
        let (parent, kind) = if t.len() >= 3 {
            (t[1], t[2])
        } else {
            ("", t[1])
        };
        j.snapshots
            .insert(t[0].into(), (parent.into(), kind.into()));
    }
    for t in rows(&c.ctr(ns, &["images", "ls"])) {
        j.images
            .insert(t[0].into(), (t[2].into(), format!("{} {}", t[3], t[4])));
    }
    j.content = rows(&c.ctr(ns, &["content", "ls"]))
        .map(|t| t[0].to_string())
        .collect();
    j.leases = rows(&c.ctr(ns, &["leases", "ls"]))
        .map(|t| t[0].to_string())
        .collect();
    j.ingests = rows(&c.ctr(ns, &["content", "active"]))
        .map(|t| t[0].to_string())
        .collect();
    j
}

/// `ctr`'s size format: binary units, one decimal (`pkg/progress`
/// `Bytes.String`: go-units `CustomSize("%02.1f %s", size, 1024, ...)`).
pub fn ctr_size(bytes: u64) -> String {
    const U: [&str; 9] = ["B", "KiB", "MiB", "GiB", "TiB", "PiB", "EiB", "ZiB", "YiB"];
    let mut v = bytes as f64;
    let mut i = 0;
    while v >= 1024.0 && i < U.len() - 1 {
        v /= 1024.0;
        i += 1;
    }
    format!("{v:02.1} {}", U[i])
}

// ---------------------------------------------------------------------------
// The scenario.

pub struct CtrdScenario {
    /// The containerd root, daemon stopped.
    pub root: PathBuf,
    /// containerd's figures per namespace, taken just before it stopped.
    pub judge: BTreeMap<String, NsJudge>,
    /// `dockgc df --format json --namespace all` while containerd ran.
    pub live_df: Value,
    /// Target digests by name (moby).
    pub targets: BTreeMap<String, String>,
    /// The config digest of app:1 (k8s.io's third name).
    pub app1_config: String,
    /// The lease of the RW mount and its snapshot key.
    pub rw_key: String,
    /// The unreferenced blob's digest.
    pub unreferenced: String,
    pub build_secs: f64,
    _dir: PathBuf,
}

static CTRD: OnceLock<Result<Option<CtrdScenario>, String>> = OnceLock::new();

/// The containerd scenario, built once per test binary; `None` if skipped.
pub fn ctrd_scenario() -> Option<&'static CtrdScenario> {
    let r = CTRD.get_or_init(|| {
        std::panic::catch_unwind(build_ctrd).map_err(|p| {
            p.downcast_ref::<String>()
                .cloned()
                .or_else(|| p.downcast_ref::<&str>().map(|s| s.to_string()))
                .unwrap_or_else(|| "unknown panic".into())
        })
    });
    match r {
        Ok(s) => s.as_ref(),
        Err(e) => panic!("building the containerd scenario failed: {e}"),
    }
}

fn target_of(c: &Ctrd, ns: &str, name: &str) -> String {
    rows(&c.ctr(ns, &["images", "ls"]))
        .find(|t| t[0] == name)
        .map(|t| t[2].to_string())
        .unwrap_or_else(|| panic!("{ns}: no image {name}"))
}

fn build_ctrd() -> Option<CtrdScenario> {
    let t0 = Instant::now();
    register_cleanup();
    let dir = tempfile::Builder::new()
        .prefix("dgc-ctrd")
        .tempdir_in("/tmp")
        .unwrap()
        .keep();
    CLEANUP.lock().unwrap().push(dir.clone());
    let root = dir.join("root");
    let work = dir.join("work");
    fs::create_dir_all(&work).unwrap();
    let mut c = Ctrd::start(&dir.join("daemon"), &root, false)?;

    let (base, app, app2, tool) = (base_layer(), app_layer(), app2_layer(), tool_layer());
    let apps = docker_archive(
        &work,
        "apps",
        &[
            (APP1, vec![&base, &app], "2024-01-02T03:04:05Z"),
            (APP2, vec![&base, &app, &app2], "2024-02-03T04:05:06Z"),
        ],
    );
    let bb = docker_archive(&work, "bb", &[(BB1, vec![&base], "2023-06-07T08:09:10Z")]);
    let tool_a = docker_archive(
        &work,
        "tool",
        &[(TOOL1, vec![&base, &tool], "2024-03-04T05:06:07Z")],
    );
    let multi = oci_index_archive(&work, "multi", &base);
    let p = |x: &Path| x.to_str().unwrap().to_string();

    // 1. moby, as Docker 29 keeps it: tags, a dangling name, an index.
    for a in [&apps, &bb, &tool_a, &multi] {
        c.ctr("moby", &["images", "import", &p(a)]);
    }
    c.ctr("moby", &["images", "tag", APP2, APP_LATEST]);
    let tool_target = target_of(&c, "moby", TOOL1);
    let dangling = format!("moby-dangling@{tool_target}");
    c.ctr("moby", &["images", "tag", TOOL1, &dangling]);
    c.ctr("moby", &["images", "rm", TOOL1]);

    // 2. k8s.io: the CRI's three names per image, labelled managed.
    c.ctr("k8s.io", &["images", "import", &p(&apps)]);
    let app1_target = target_of(&c, "k8s.io", APP1);
    let cfg_json = c.ctr("k8s.io", &["content", "get", &app1_target]);
    let manifest: Value = serde_json::from_str(&cfg_json).unwrap();
    let app1_config = manifest["config"]["digest"].as_str().unwrap().to_string();
    let repo_digest = format!("docker.io/library/app@{app1_target}");
    c.ctr("k8s.io", &["images", "tag", APP1, &repo_digest]);
    c.ctr("k8s.io", &["images", "tag", APP1, &app1_config]);
    for n in [APP1, repo_digest.as_str(), app1_config.as_str()] {
        c.ctr(
            "k8s.io",
            &["images", "label", n, "io.cri-containerd.image=managed"],
        );
    }

    // 3. default: nerdctl's namespace.
    c.ctr("default", &["images", "import", &p(&bb)]);

    // 4. A container with data written in its RW snapshot.
    c.ctr(
        "moby",
        &[
            "run", "--net-host", APP1, "ctr1", "/bin/sh", "-c",
            "echo written > /data.txt; dd if=/dev/zero of=/zeros bs=1k count=100 2>/dev/null; ln /data.txt /data-link",
        ],
    );

    // 5. An active snapshot held by a lease (ctr's RW mount), with a file.
    let mnt = dir.join("rwmount");
    fs::create_dir_all(&mnt).unwrap();
    c.ctr("moby", &["images", "mount", "--rw", APP2, &p(&mnt)]);
    fs::write(mnt.join("written-by-mount"), pattern(10_000, 5)).unwrap();
    c.ctr("moby", &["images", "unmount", &p(&mnt)]);
    let rw_key = p(&mnt);

    // Deletions above schedule collections; let them pass before making
    // what a collection would take.
    std::thread::sleep(Duration::from_millis(1500));

    // 6. The collectable pair: commit (`ctr` labels it gc.root; the commit
    // removes the active key, so wait for that collection), prepare on
    // top, then drop the gc.root label (an empty labels bucket stays).
    let top = {
        let j = judge(&c, "moby");
        let chain: Vec<&String> = j
            .snapshots
            .keys()
            .filter(|k| k.starts_with("sha256:"))
            .collect();
        assert!(!chain.is_empty());
        // app:1's top is the parent of ctr1.
        j.snapshots["ctr1"].0.clone()
    };
    c.ctr("moby", &["snapshots", "prepare", "c0ffee-init-key", &top]);
    c.ctr(
        "moby",
        &["snapshots", "commit", "c0ffee-init", "c0ffee-init-key"],
    );
    std::thread::sleep(Duration::from_millis(1500));
    // 7. A kept view.
    c.ctr("moby", &["snapshots", "view", "view1", &top]);
    c.ctr(
        "moby",
        &[
            "snapshots",
            "label",
            "view1",
            "containerd.io/gc.root=kept-view",
        ],
    );
    // 8. An ingest leftover and an unreferenced blob.
    let out = c.ctr_stdin(
        "moby",
        &[
            "content",
            "ingest",
            "--expected-size",
            "100000",
            "upload-leftover-1",
        ],
        &pattern(4096, 1),
    );
    assert!(!out.status.success(), "a short ingest must fail");
    let body = b"nothing refers to this blob\n";
    let out = c.ctr_stdin("moby", &["content", "ingest", "small-1"], body);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let unreferenced = sha256_digest(body);
    // `ctr snapshots prepare` and `commit` both label gc.root; clearing
    // them is no deletion, so no collection runs before the stop.
    c.ctr("moby", &["snapshots", "prepare", "c0ffee", "c0ffee-init"]);
    for k in ["c0ffee", "c0ffee-init"] {
        c.ctr("moby", &["snapshots", "label", k, "containerd.io/gc.root="]);
    }

    // 9. containerd's figures, and dockgc reading the live root.
    let judge: BTreeMap<String, NsJudge> = NAMESPACES
        .iter()
        .map(|ns| (ns.to_string(), judge(&c, ns)))
        .collect();
    assert!(
        judge["moby"].snapshots.contains_key("c0ffee"),
        "the pair was collected too early"
    );
    assert!(
        judge["moby"].content.contains(&unreferenced),
        "small-1 was collected too early"
    );
    let live = dockgc()
        .arg("--containerd-root")
        .arg(&root)
        .args(["--namespace", "all", "df", "--format", "json"])
        .output()
        .unwrap();
    assert!(
        live.status.success(),
        "df on the live root: {}",
        String::from_utf8_lossy(&live.stderr)
    );
    let live_df: Value = serde_json::from_slice(&live.stdout).unwrap();
    let targets = judge["moby"]
        .images
        .iter()
        .map(|(n, (d, _))| (n.clone(), d.clone()))
        .collect();
    c.stop();
    let mounts = fs::read_to_string("/proc/self/mountinfo").unwrap_or_default();
    let left: Vec<&str> = mounts
        .lines()
        .filter(|l| l.contains(root.to_str().unwrap()))
        .collect();
    assert!(left.is_empty(), "mounts left under the root: {left:#?}");
    let build_secs = t0.elapsed().as_secs_f64();
    let _ = writeln!(
        std::io::stderr(),
        "containerd scenario: built {} in {build_secs:.1} s",
        root.display()
    );
    Some(CtrdScenario {
        root,
        judge,
        live_df,
        targets,
        app1_config,
        rw_key,
        unreferenced,
        build_secs,
        _dir: dir,
    })
}

// ---------------------------------------------------------------------------
// The GC oracle.

/// What containerd's startup collection removed from a copy of a root.
#[derive(Debug, Default)]
pub struct Removed {
    /// (kind, "ns/id") of records: `snapshot-record` (`ns/snapshotter/key`),
    /// `blob-record`, `lease`, `ingest-record`, `image`.
    pub records: BTreeSet<(String, String)>,
    /// Paths relative to the root of removed blob files, ingest dirs and
    /// snapshot dirs.
    pub paths: BTreeSet<PathBuf>,
    pub log: String,
}

/// Blob files, ingest dirs and snapshot dirs of a root, relative.
pub fn store_paths(root: &Path) -> BTreeSet<PathBuf> {
    let mut out = BTreeSet::new();
    let mut list = |rel: &str| {
        if let Ok(rd) = fs::read_dir(root.join(rel)) {
            for e in rd.flatten() {
                out.insert(Path::new(rel).join(e.file_name()));
            }
        }
    };
    list("io.containerd.content.v1.content/blobs/sha256");
    list("io.containerd.content.v1.content/ingest");
    list("io.containerd.snapshotter.v1.overlayfs/snapshots");
    list("io.containerd.snapshotter.v1.native/snapshots");
    out
}

fn records(j: &BTreeMap<String, NsJudge>) -> BTreeSet<(String, String)> {
    let mut out = BTreeSet::new();
    for (ns, j) in j {
        for k in j.snapshots.keys() {
            out.insert(("snapshot-record".into(), format!("{ns}/overlayfs/{k}")));
        }
        for d in &j.content {
            out.insert(("blob-record".into(), format!("{ns}/{d}")));
        }
        for l in &j.leases {
            out.insert(("lease".into(), format!("{ns}/{l}")));
        }
        for i in &j.ingests {
            out.insert(("ingest-record".into(), format!("{ns}/{i}")));
        }
        for n in j.images.keys() {
            out.insert(("image".into(), format!("{ns}/{n}")));
        }
    }
    out
}

/// Copies `root`, boots containerd on the copy until its startup GC ran,
/// and reports what went. `before` is containerd's view of `root`.
pub fn gc_oracle(root: &Path, before: &BTreeMap<String, NsJudge>) -> Option<Removed> {
    let copy = copy_root(root);
    let paths_before = store_paths(copy.path());
    let dir = tempfile::Builder::new()
        .prefix("dgc-orc")
        .tempdir_in("/tmp")
        .unwrap();
    let mut c = Ctrd::start(dir.path(), copy.path(), true)?;
    // The scheduler collects about 100 ms after start (`startup_delay`).
    let t0 = Instant::now();
    while t0.elapsed() < Duration::from_secs(10) {
        if fs::read_to_string(&c.log)
            .unwrap_or_default()
            .contains("garbage collected")
        {
            break;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    std::thread::sleep(Duration::from_millis(300));
    let after: BTreeMap<String, NsJudge> = before
        .keys()
        .map(|ns| (ns.clone(), judge(&c, ns)))
        .collect();
    c.stop();
    let log = fs::read_to_string(&c.log).unwrap_or_default();
    let paths_after = store_paths(copy.path());
    Some(Removed {
        records: records(before)
            .difference(&records(&after))
            .cloned()
            .collect(),
        paths: paths_before.difference(&paths_after).cloned().collect(),
        log,
    })
}

// ---------------------------------------------------------------------------
// bbolt files rewritten for damage tests (copies only).

/// A bucket as a writer tree, values and sequences included.
pub fn bolt_tree(b: bbolt::Bucket<'_>) -> bbolt::build::Tree {
    let mut t = bbolt::build::Tree::new();
    t.set_sequence(b.sequence());
    for (k, e) in b.iter() {
        match e {
            bbolt::Entry::Value(v) => {
                t.put(k, v);
            }
            bbolt::Entry::Bucket(c) => {
                t.entries
                    .insert(k.to_vec(), bbolt::build::Node::Bucket(bolt_tree(c)));
            }
        }
    }
    t
}

/// Reads a bbolt file, lets `edit` change its tree, and writes it back.
pub fn rewrite_bolt(path: &Path, edit: impl FnOnce(&mut bbolt::build::Tree)) {
    let db = bbolt::Db::open(path).unwrap();
    let mut t = bolt_tree(db.root());
    edit(&mut t);
    let img = bbolt::build::image(
        &t,
        &bbolt::build::Options {
            page_size: db.page_size(),
            txid: db.txid() + 1,
            first_page: 2,
        },
    )
    .unwrap();
    fs::write(path, img).unwrap();
}

/// The sub-tree at `path` of a writer tree.
pub fn tree_at<'t>(t: &'t mut bbolt::build::Tree, path: &[&str]) -> &'t mut bbolt::build::Tree {
    let mut cur = t;
    for p in path {
        cur = match cur.entries.get_mut(p.as_bytes()) {
            Some(bbolt::build::Node::Bucket(b)) => b,
            _ => panic!("no bucket {p} in {path:?}"),
        };
    }
    cur
}

// ---------------------------------------------------------------------------
// A root whose containerd unpacks into the native snapshotter.

/// A stopped root whose images (app:1 and app:2 over a shared base, in
/// `default`) were unpacked by containerd into `native`, plus a container
/// with written data; and `ctr snapshots --snapshotter native` on it.
pub struct NativeScenario {
    pub root: PathBuf,
    pub judge: NsJudge,
    _dir: tempfile::TempDir,
}

pub fn native_scenario() -> Option<NativeScenario> {
    let dir = tempfile::Builder::new()
        .prefix("dgc-ctrd-native")
        .tempdir_in("/tmp")
        .unwrap();
    let root = dir.path().join("root");
    let work = dir.path().join("work");
    fs::create_dir_all(&work).unwrap();
    let mut c = Ctrd::start(&dir.path().join("daemon"), &root, false)?;
    let (base, app, app2) = (base_layer(), app_layer(), app2_layer());
    let apps = docker_archive(
        &work,
        "apps",
        &[
            (APP1, vec![&base, &app], "2024-01-02T03:04:05Z"),
            (APP2, vec![&base, &app, &app2], "2024-02-03T04:05:06Z"),
        ],
    );
    let ns = "default";
    let sn = ["--snapshotter", "native"];
    c.ctr(
        ns,
        &["images", "import", sn[0], sn[1], apps.to_str().unwrap()],
    );
    c.ctr(
        ns,
        &[
            "run",
            sn[0],
            sn[1],
            "--net-host",
            APP1,
            "nat1",
            "/bin/sh",
            "-c",
            "dd if=/dev/zero of=/zeros bs=1k count=50 2>/dev/null",
        ],
    );
    let mut j = NsJudge::default();
    for t in rows(&c.ctr(ns, &["snapshots", sn[0], sn[1], "usage", "-b"])) {
        j.usage
            .insert(t[0].into(), (t[1].parse().unwrap(), t[2].parse().unwrap()));
    }
    for t in rows(&c.ctr(ns, &["snapshots", sn[0], sn[1], "ls"])) {
        let (parent, kind) = if t.len() >= 3 {
            (t[1], t[2])
        } else {
            ("", t[1])
        };
        j.snapshots
            .insert(t[0].into(), (parent.into(), kind.into()));
    }
    for t in rows(&c.ctr(ns, &["images", "ls"])) {
        j.images
            .insert(t[0].into(), (t[2].into(), format!("{} {}", t[3], t[4])));
    }
    let overlay = rows(&c.ctr(ns, &["snapshots", "usage", "-b"])).count();
    assert_eq!(overlay, 0, "nothing may be unpacked into overlayfs here");
    c.stop();
    Some(NativeScenario {
        root,
        judge: j,
        _dir: dir,
    })
}
