//! Integration tests of `dockgc save` and `dockgc export` against a data root
//! written by a real Docker daemon, judged by real daemons.
//!
//! The root is a copy of `support::scenario_exotic()` (legacy builds with
//! whiteouts, opaque dirs, hard links and symlinks, images loaded from a
//! 2019-dated archive, one untagged, and two loaded images over layers full
//! of tar edge cases: GNU and PAX long names, non-UTF-8 names, hard links,
//! fifos, setuid files, padding after the end of archive), to which the
//! fixture adds a multi-stage BuildKit build (`COPY --from`, a `RUN` that
//! deletes files and replaces a directory), an image whose `WORKDIR` is in no
//! layer (`docker commit --change`), and a loaded image whose second layer
//! puts files below the first layer's symlinks. While its daemon runs the
//! fixture records the daemon's truth: every image's ID, tags and diff IDs,
//! and `docker export` of `docker create` of every image. Then the daemon
//! stops, and everything dockgc does happens on the stopped root:
//!
//! * `save` in every format (docker-archive, OCI, gzip, to a file and to
//!   stdout) is `docker load`-ed into a fresh daemon, which must show the
//!   same IDs, tags and diff IDs, `docker save` each image again and run a
//!   container from each; the OCI layout is also checked structurally and
//!   imported (and unpacked, so every diff ID is checked) by a private
//!   containerd 1.6;
//! * `export` (tar and `--dir`) is compared member by member with `docker
//!   export`;
//! * damage (a flipped byte, a missing tar-split) fails with the file named
//!   and nothing left at `-o FILE`; bad input exits 2;
//! * the root's whole-tree hash is the same after all of it.
//!
//! Skips (loudly) without a usable dockerd unless `DOCKGC_REQUIRE_DOCKER` or
//! `CI` is set.

mod support;

use std::collections::{BTreeMap, BTreeSet};
use std::ffi::OsStr;
use std::fs;
use std::io::Read;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::{FileTypeExt, MetadataExt};
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::sync::OnceLock;

use dockgc::ids::hex;
use serde_json::Value;
use sha2::{Digest, Sha256};
use support::*;

// ---------------------------------------------------------------------------
// The fixture

/// What the daemon said about one image before it stopped.
#[derive(Clone, Debug)]
struct Truth {
    id: String,
    tags: BTreeSet<String>,
    diff_ids: Vec<String>,
    /// Has the scenario's static busybox (`true` runs).
    runs: bool,
    /// `docker export` of `docker create` of it.
    export: PathBuf,
}

struct Fixture {
    root: PathBuf,
    /// Image name as the tests refer to it → truth.
    images: BTreeMap<String, Truth>,
    /// The references `save` is given, and the tags each image should get.
    save_refs: Vec<String>,
    _dir: tempfile::TempDir,
}

static FIXTURE: OnceLock<Result<Option<Fixture>, String>> = OnceLock::new();

macro_rules! fixture_or_skip {
    () => {
        match fixture() {
            Some(f) => f,
            None => return,
        }
    };
}

fn fixture() -> Option<&'static Fixture> {
    let r = FIXTURE.get_or_init(|| {
        std::panic::catch_unwind(build_fixture).map_err(|p| {
            p.downcast_ref::<String>()
                .cloned()
                .or_else(|| p.downcast_ref::<&str>().map(|s| s.to_string()))
                .unwrap_or_else(|| "unknown panic".into())
        })
    });
    match r {
        Ok(f) => f.as_ref(),
        Err(e) => panic!("building the save fixture failed: {e}"),
    }
}

const BUILDKIT_DOCKERFILE: &str = "\
FROM base:1 AS stage
RUN mkdir -p /out/sub /out/keep && echo built > /out/sub/file && ln /out/sub/file /out/hard \\
 && ln -s sub/file /out/sym && dd if=/dev/zero of=/out/keep/zero bs=1024 count=64 2>/dev/null
FROM app:1
COPY --from=stage /out /bk
RUN rm -rf /data/dir /data/hard1 /bin/seq && mkdir /data/dir && echo bk > /data/dir/bk.txt \\
 && echo more >> /data/b.bin
LABEL org.example.builder=buildkit
";

/// A two-layer image whose second layer puts files below the first one's
/// symlinks (one absolute, out of any root, one climbing with `..`). The
/// daemon extracts each layer into its own directory, so in the merged view
/// those names are directories; nothing may ever be written through them.
fn escape_layers(target: &Path) -> Vec<Vec<u8>> {
    let mut b = tar::Builder::new(Vec::new());
    let mut h = tar::Header::new_gnu();
    h.set_entry_type(tar::EntryType::Symlink);
    h.set_size(0);
    h.set_mode(0o777);
    h.set_mtime(1_600_000_000);
    b.append_link(&mut h, "esc-abs", target).unwrap();
    let mut h = tar::Header::new_gnu();
    h.set_entry_type(tar::EntryType::Symlink);
    h.set_size(0);
    h.set_mode(0o777);
    h.set_mtime(1_600_000_000);
    b.append_link(&mut h, "esc-rel", "../../../../../../../../../../tmp")
        .unwrap();
    let l1 = b.into_inner().unwrap();
    let mut b = tar::Builder::new(Vec::new());
    for name in ["esc-abs/evil.txt", "esc-rel/evil.txt"] {
        let mut h = tar::Header::new_gnu();
        h.set_entry_type(tar::EntryType::Regular);
        h.set_size(5);
        h.set_mode(0o644);
        h.set_mtime(1_600_000_000);
        b.append_data(&mut h, name, &b"evil\n"[..]).unwrap();
    }
    let l2 = b.into_inner().unwrap();
    vec![l1, l2]
}

/// Where the escape image's absolute symlink points: must stay empty.
fn escape_target() -> PathBuf {
    PathBuf::from(format!("/tmp/dockgc-save-escape-{}", std::process::id()))
}

fn build_fixture() -> Option<Fixture> {
    let sc = scenario_exotic()?;
    let dir = tempfile::Builder::new()
        .prefix("dockgc-save-fixture")
        .tempdir()
        .unwrap();
    // The copy is made inside our own temp dir (cp -a into it).
    let copy = copy_root(&sc.root);
    let root = dir.path().join("root");
    fs::rename(copy.path(), &root).unwrap_or_else(|_| {
        let out = Command::new("cp")
            .arg("-a")
            .arg(copy.path())
            .arg(&root)
            .output()
            .unwrap();
        assert!(out.status.success());
    });
    let d = Daemon::start(&root)?;

    // A multi-stage BuildKit build.
    let ctx = dir.path().join("bk-ctx");
    fs::create_dir_all(&ctx).unwrap();
    fs::write(ctx.join("Dockerfile"), BUILDKIT_DOCKERFILE).unwrap();
    let cli_config = dir.path().join("cli");
    fs::create_dir_all(&cli_config).unwrap();
    let out = Command::new("/usr/bin/docker")
        .env("DOCKER_HOST", format!("unix://{}", d.sock.display()))
        .env("DOCKER_CONFIG", &cli_config)
        .env("DOCKER_BUILDKIT", "1")
        .args(["build", "--network", "none", "-t", "bk:1"])
        .arg(&ctx)
        .stdin(Stdio::null())
        .output()
        .expect("run docker build");
    assert!(
        out.status.success(),
        "BuildKit build failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );

    // A WORKDIR no layer has: `docker create` makes it.
    let c = d.docker(&["create", "--network", "none", "base:1", "true"]);
    d.docker(&[
        "commit",
        "--change",
        "WORKDIR /nowhere/deep",
        c.trim(),
        "wd:1",
    ]);
    d.docker(&["rm", c.trim()]);

    // Files below symlinks of a lower layer.
    let work = dir.path().join("work");
    fs::create_dir_all(&work).unwrap();
    let archive = write_image_archive(
        &work,
        "escape",
        &[("escape:1", escape_layers(&escape_target()))],
    );
    d.docker(&["load", "-i", archive.to_str().unwrap()]);

    // The daemon's truth.
    let images_json = d.api("/images/json?all=1");
    let untagged = images_json
        .as_array()
        .unwrap()
        .iter()
        .find(|i| i["Labels"]["org.example.untagged"] == "yes")
        .expect("the untagged loaded image")["Id"]
        .as_str()
        .unwrap()
        .to_string();
    let names: &[(&str, bool)] = &[
        ("base:1", true),
        ("app:1", true),
        ("child:1", true),
        ("solo:1", true),
        ("bk:1", true),
        ("wd:1", true),
        ("loaded:2019", false),
        ("loaded:2020", false),
        (&untagged, false),
        (EXOTIC_1, false),
        (EXOTIC_2, false),
        ("escape:1", false),
    ];
    let exports = dir.path().join("exports");
    fs::create_dir_all(&exports).unwrap();
    let mut images = BTreeMap::new();
    for (i, (name, runs)) in names.iter().enumerate() {
        let v: Value = serde_json::from_str(&d.docker(&["image", "inspect", name])).unwrap();
        let v = &v[0];
        let tags = v["RepoTags"]
            .as_array()
            .unwrap()
            .iter()
            .map(|t| t.as_str().unwrap().to_string())
            .collect();
        let diff_ids = v["RootFS"]["Layers"]
            .as_array()
            .unwrap()
            .iter()
            .map(|t| t.as_str().unwrap().to_string())
            .collect();
        let c = d.docker(&["create", "--network", "none", name, "/x"]);
        let export = exports.join(format!("{i}.tar"));
        d.docker(&["export", "-o", export.to_str().unwrap(), c.trim()]);
        d.docker(&["rm", c.trim()]);
        images.insert(
            name.to_string(),
            Truth {
                id: v["Id"].as_str().unwrap().to_string(),
                tags,
                diff_ids,
                runs: *runs,
                export,
            },
        );
    }
    d.stop();
    // Every tag each image has, by every way to name it.
    let mut save_refs: Vec<String> = [
        "base:1",
        "app:1",
        "app",
        "example.com/team/app:v1",
        "child:1",
        "solo:1",
        "bk:1",
        "wd:1",
        "loaded:2019",
        "vintage/app:old",
        "loaded:2020",
        EXOTIC_1,
        EXOTIC_2,
        "escape:1",
    ]
    .iter()
    .map(|s| s.to_string())
    .collect();
    save_refs.push(untagged[7..19].to_string()); // a short ID: no tag
    Some(Fixture {
        root,
        images,
        save_refs,
        _dir: dir,
    })
}

impl Fixture {
    fn truth(&self, name: &str) -> &Truth {
        self.images
            .get(name)
            .unwrap_or_else(|| panic!("no image {name} in the fixture"))
    }

    /// What a loaded archive of `save_refs` must hold: image ID → tags. An
    /// image named by tag gets that tag (`app` is `app:latest`); by ID, none.
    fn expected(&self) -> BTreeMap<String, BTreeSet<String>> {
        let mut want: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
        for t in self.images.values() {
            want.entry(t.id.clone()).or_default();
        }
        let app = &self.truth("app:1").id;
        for (r, id) in [
            ("base:1", &self.truth("base:1").id),
            ("app:1", app),
            ("app:latest", app),
            ("example.com/team/app:v1", app),
            ("child:1", &self.truth("child:1").id),
            ("solo:1", &self.truth("solo:1").id),
            ("bk:1", &self.truth("bk:1").id),
            ("wd:1", &self.truth("wd:1").id),
            ("loaded:2019", &self.truth("loaded:2019").id),
            ("vintage/app:old", &self.truth("loaded:2019").id),
            ("loaded:2020", &self.truth("loaded:2020").id),
            (EXOTIC_1, &self.truth(EXOTIC_1).id),
            (EXOTIC_2, &self.truth(EXOTIC_2).id),
            ("escape:1", &self.truth("escape:1").id),
        ] {
            want.get_mut(id).unwrap().insert(r.to_string());
        }
        want
    }
}

// ---------------------------------------------------------------------------
// Helpers

fn run_dockgc(root: &Path, args: &[&OsStr]) -> Output {
    dockgc()
        .arg("--root")
        .arg(root)
        .args(args)
        .stdin(Stdio::null())
        .output()
        .expect("run dockgc")
}

fn os<S: AsRef<OsStr> + ?Sized>(s: &S) -> &OsStr {
    s.as_ref()
}

fn describe(out: &Output) -> String {
    format!(
        "status: {}\nstderr:\n{}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    )
}

/// `dockgc save REFS... -o FILE EXTRA...`, which must succeed.
fn save_to(f: &Fixture, file: &Path, extra: &[&str]) {
    let mut args: Vec<&OsStr> = vec![os("save")];
    args.extend(f.save_refs.iter().map(os));
    args.extend([os("-o"), file.as_os_str()]);
    args.extend(extra.iter().map(os));
    let out = run_dockgc(&f.root, &args);
    assert!(
        out.status.success(),
        "dockgc save failed\n{}",
        describe(&out)
    );
    assert!(!out.stderr.windows(8).any(|w| w == b"panicked"));
}

/// Nothing but `keep` in `dir` (no temporary file left behind).
fn only_files(dir: &Path) -> BTreeSet<String> {
    fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect()
}

/// Loads `archive` into a fresh daemon and checks every image: ID, tags,
/// diff IDs; `docker save` of each succeeds; a container of each is created
/// and its filesystem equals the original daemon's; `true` runs in those
/// with a shell.
fn load_and_judge(f: &Fixture, archive: &Path, label: &str) {
    let t = tempfile::tempdir().unwrap();
    let Some(d) = Daemon::start(&t.path().join("root")) else {
        return;
    };
    let out = d.docker_output(&["load", "-i", archive.to_str().unwrap()]);
    assert!(
        out.status.success(),
        "{label}: docker load failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let want = f.expected();
    let implicit = implicit_dirs(archive);
    let listed: BTreeSet<String> = d
        .docker(&["images", "-a", "-q", "--no-trunc"])
        .lines()
        .map(str::to_string)
        .collect();
    assert_eq!(
        listed,
        want.keys().cloned().collect(),
        "{label}: loaded images"
    );
    for truth in f.images.values() {
        let v: Value = serde_json::from_str(&d.docker(&["image", "inspect", &truth.id])).unwrap();
        let v = &v[0];
        assert_eq!(v["Id"].as_str().unwrap(), truth.id, "{label}");
        let tags: BTreeSet<String> = v["RepoTags"]
            .as_array()
            .unwrap()
            .iter()
            .map(|t| t.as_str().unwrap().to_string())
            .collect();
        assert_eq!(tags, want[&truth.id], "{label}: tags of {}", truth.id);
        let diffs: Vec<String> = v["RootFS"]["Layers"]
            .as_array()
            .unwrap()
            .iter()
            .map(|t| t.as_str().unwrap().to_string())
            .collect();
        assert_eq!(diffs, truth.diff_ids, "{label}: diff IDs of {}", truth.id);
        // The daemon rebuilds every layer through its tar-split and checks
        // its diff ID.
        let saved = d.docker_output(&["save", &truth.id]);
        assert!(
            saved.status.success() && saved.stdout.len() > 1024,
            "{label}: docker save {} on the new daemon: {}",
            truth.id,
            String::from_utf8_lossy(&saved.stderr)
        );
        let c = d.docker(&["create", "--network", "none", &truth.id, "/x"]);
        let e = t.path().join("export.tar");
        d.docker(&["export", "-o", e.to_str().unwrap(), c.trim()]);
        d.docker(&["rm", c.trim()]);
        let implicit: Vec<&str> = implicit.iter().map(String::as_str).collect();
        let diffs = compare(&tar_members(&truth.export), &tar_members(&e), &implicit);
        assert!(
            diffs.is_empty(),
            "{label}: the filesystem of {} differs after the round trip:\n{}",
            truth.id,
            diffs.join("\n")
        );
        if truth.runs {
            let r = d.docker_output(&["run", "--rm", "--network", "none", &truth.id, "true"]);
            assert!(
                r.status.success(),
                "{label}: docker run {} true: {}",
                truth.id,
                String::from_utf8_lossy(&r.stderr)
            );
        }
    }
    d.stop();
}

/// Directories no layer tar of `archive` lists, only their contents: the
/// daemon creates them when it extracts the layer, dated then, so their
/// times are new after every load.
fn implicit_dirs(archive: &Path) -> BTreeSet<String> {
    let mut explicit = BTreeSet::new();
    let mut parents = BTreeSet::new();
    let mut ar = tar::Archive::new(fs::File::open(archive).unwrap());
    for e in ar.entries().unwrap() {
        let mut e = e.unwrap();
        let mut b = Vec::new();
        e.read_to_end(&mut b).unwrap();
        if b.starts_with(&[0x1f, 0x8b]) {
            let mut raw = Vec::new();
            flate2::read::GzDecoder::new(b.as_slice())
                .read_to_end(&mut raw)
                .unwrap();
            b = raw;
        }
        // Configs and manifests are not tars; only layers parse.
        let mut inner = tar::Archive::new(b.as_slice());
        let Ok(entries) = inner.entries() else {
            continue;
        };
        for l in entries {
            let Ok(l) = l else { break };
            let n = norm(&l.path_bytes());
            if l.header().entry_type().is_dir() {
                explicit.insert(n.clone());
            }
            let mut p = n.as_slice();
            while let Some(i) = p.iter().rposition(|&c| c == b'/') {
                p = &p[..i];
                parents.insert(p.to_vec());
            }
        }
    }
    parents
        .difference(&explicit)
        .map(|p| String::from_utf8_lossy(p).into_owned())
        .collect()
}

// ---------------------------------------------------------------------------
// Comparing file trees

/// One member of a tar or one entry of a directory tree.
#[derive(Clone, Debug, PartialEq, Eq)]
struct M {
    kind: char,
    mode: u32,
    uid: u64,
    gid: u64,
    /// sha256 of the contents (regular files and hard links).
    content: String,
    /// Symlink target, or hard link target.
    link: Vec<u8>,
    dev: (u64, u64),
    mtime: i64,
    xattrs: Vec<(Vec<u8>, Vec<u8>)>,
}

fn sha(b: &[u8]) -> String {
    hex(&Sha256::digest(b))
}

fn norm(name: &[u8]) -> Vec<u8> {
    let n = name.strip_prefix(b"./").unwrap_or(name);
    let n = n.strip_prefix(b"/").unwrap_or(n);
    n.strip_suffix(b"/").unwrap_or(n).to_vec()
}

/// Every member of a tar by normalized name; a hard link carries its
/// target's name and contents.
fn tar_members(path: &Path) -> BTreeMap<Vec<u8>, M> {
    let mut a = tar::Archive::new(fs::File::open(path).unwrap());
    let mut out: BTreeMap<Vec<u8>, M> = BTreeMap::new();
    for e in a.entries().unwrap() {
        let mut e = e.unwrap();
        let h = e.header().clone();
        let name = norm(&e.path_bytes());
        let link = e.link_name_bytes().map(|l| l.to_vec()).unwrap_or_default();
        let mut xattrs = Vec::new();
        if let Some(p) = e.pax_extensions().unwrap() {
            for r in p {
                let r = r.unwrap();
                if let Some(k) = r.key_bytes().strip_prefix(b"SCHILY.xattr.") {
                    xattrs.push((k.to_vec(), r.value_bytes().to_vec()));
                }
            }
        }
        xattrs.sort();
        let mut body = Vec::new();
        e.read_to_end(&mut body).unwrap();
        let kind = match h.entry_type() {
            tar::EntryType::Regular | tar::EntryType::Continuous => 'f',
            tar::EntryType::Directory => 'd',
            tar::EntryType::Symlink => 'l',
            tar::EntryType::Link => 'h',
            tar::EntryType::Char => 'c',
            tar::EntryType::Block => 'b',
            tar::EntryType::Fifo => 'p',
            t => panic!("unexpected member type {t:?} in {}", path.display()),
        };
        let (link, content) = if kind == 'h' {
            let target = norm(&link);
            let c = out
                .get(&target)
                .unwrap_or_else(|| panic!("hard link to a later member in {}", path.display()))
                .content
                .clone();
            (target, c)
        } else if kind == 'f' {
            (link, sha(&body))
        } else {
            (link, String::new())
        };
        out.insert(
            name,
            M {
                kind,
                mode: h.mode().unwrap() & 0o7777,
                uid: h.uid().unwrap(),
                gid: h.gid().unwrap(),
                content,
                link,
                dev: (
                    h.device_major().ok().flatten().unwrap_or(0) as u64,
                    h.device_minor().ok().flatten().unwrap_or(0) as u64,
                ),
                mtime: h.mtime().unwrap() as i64,
                xattrs,
            },
        );
    }
    out
}

/// Member names and order of a tar.
fn tar_order(path: &Path) -> Vec<Vec<u8>> {
    let mut a = tar::Archive::new(fs::File::open(path).unwrap());
    a.entries()
        .unwrap()
        .map(|e| norm(&e.unwrap().path_bytes()))
        .collect()
}

/// Every entry below `root` by relative path, as `tar_members` describes
/// tar members: of the names sharing an inode, the first in walk order is
/// the file and the others are hard links to it, as `docker export` writes.
fn dir_members(root: &Path) -> BTreeMap<Vec<u8>, M> {
    let mut out = BTreeMap::new();
    let mut first: BTreeMap<(u64, u64), Vec<u8>> = BTreeMap::new();
    fn walk(
        root: &Path,
        dir: &Path,
        out: &mut BTreeMap<Vec<u8>, M>,
        first: &mut BTreeMap<(u64, u64), Vec<u8>>,
    ) {
        let mut names: Vec<_> = fs::read_dir(dir)
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        names.sort_by(|a, b| a.as_bytes().cmp(b.as_bytes()));
        for n in names {
            let p = dir.join(&n);
            let rel = p
                .strip_prefix(root)
                .unwrap()
                .as_os_str()
                .as_bytes()
                .to_vec();
            let md = fs::symlink_metadata(&p).unwrap();
            let ft = md.file_type();
            let mut m = M {
                kind: file_kind(&ft).chars().next().unwrap(),
                mode: md.mode() & 0o7777,
                uid: u64::from(md.uid()),
                gid: u64::from(md.gid()),
                content: String::new(),
                link: Vec::new(),
                dev: (0, 0),
                mtime: md.mtime(),
                xattrs: xattrs(&p),
            };
            if ft.is_file() {
                m.content = sha(&fs::read(&p).unwrap());
            } else if ft.is_symlink() {
                m.link = fs::read_link(&p).unwrap().as_os_str().as_bytes().to_vec();
            } else if ft.is_char_device() || ft.is_block_device() {
                let r = md.rdev();
                m.dev = (libc::major(r) as u64, libc::minor(r) as u64);
            }
            if !ft.is_dir() && md.nlink() > 1 {
                match first.get(&(md.dev(), md.ino())) {
                    Some(f) => {
                        m.kind = 'h';
                        m.link = f.clone();
                    }
                    None => {
                        first.insert((md.dev(), md.ino()), rel.clone());
                    }
                }
            }
            out.insert(rel, m);
            if ft.is_dir() {
                walk(root, &p, out, first);
            }
        }
    }
    walk(root, root, &mut out, &mut first);
    out
}

/// What the daemon makes at `docker create` (dated then): never compared by time.
const CREATED_BY_DOCKER: &[&str] = &[
    ".dockerenv",
    "dev",
    "dev/console",
    "dev/pts",
    "dev/shm",
    "etc",
    "etc/hostname",
    "etc/hosts",
    "etc/mtab",
    "etc/resolv.conf",
    "proc",
    "sys",
    "nowhere",
    "nowhere/deep",
];

/// Differences between two member maps, readable; `ignore_time` adds names
/// whose mtimes are not compared.
fn compare(
    want: &BTreeMap<Vec<u8>, M>,
    got: &BTreeMap<Vec<u8>, M>,
    ignore_time: &[&str],
) -> Vec<String> {
    let show = |n: &[u8]| String::from_utf8_lossy(n).into_owned();
    let mut d = Vec::new();
    for (n, w) in want {
        match got.get(n) {
            None => d.push(format!("missing: {}", show(n))),
            Some(g) => {
                let skip_time = CREATED_BY_DOCKER
                    .iter()
                    .chain(ignore_time)
                    .any(|s| s.as_bytes() == n.as_slice());
                let mut g = g.clone();
                if skip_time {
                    g.mtime = w.mtime;
                }
                if &g != w {
                    d.push(format!("differs: {}\n  want {w:?}\n  got  {g:?}", show(n)));
                }
            }
        }
    }
    for n in got.keys().filter(|n| !want.contains_key(*n)) {
        d.push(format!("extra: {}", show(n)));
    }
    d
}

fn export_tar(f: &Fixture, image: &str, extra: &[&str]) -> (tempfile::TempDir, PathBuf) {
    let t = tempfile::tempdir().unwrap();
    let p = t.path().join("export.tar");
    let mut args = vec![os("export"), os(image), os("-o"), p.as_os_str()];
    args.extend(extra.iter().map(os));
    let out = run_dockgc(&f.root, &args);
    assert!(
        out.status.success(),
        "dockgc export {image}\n{}",
        describe(&out)
    );
    (t, p)
}

// ---------------------------------------------------------------------------
// save

#[test]
fn save_docker_archive_loads_into_a_fresh_daemon() {
    let f = fixture_or_skip!();
    let before = tree_hash(&f.root);
    let t = tempfile::tempdir().unwrap();
    let a = t.path().join("images.tar");
    save_to(f, &a, &[]);
    assert_eq!(
        only_files(t.path()),
        BTreeSet::from(["images.tar".to_string()])
    );

    // The layout docker load of 20.10 reads; each layer file is the exact
    // stream of its diff ID, each shared layer once.
    let mut names = Vec::new();
    let mut layer_digests = BTreeSet::new();
    let mut ar = tar::Archive::new(fs::File::open(&a).unwrap());
    for e in ar.entries().unwrap() {
        let mut e = e.unwrap();
        let name = String::from_utf8(e.path_bytes().to_vec()).unwrap();
        if name.ends_with("/layer.tar") {
            let mut b = Vec::new();
            e.read_to_end(&mut b).unwrap();
            let d = sha(&b);
            assert_eq!(
                name,
                format!("{d}/layer.tar"),
                "a layer file is named by its diff ID"
            );
            layer_digests.insert(format!("sha256:{d}"));
        }
        names.push(name);
    }
    let all_diffs: BTreeSet<String> = f.images.values().flat_map(|t| t.diff_ids.clone()).collect();
    assert_eq!(layer_digests, all_diffs, "every layer, once");
    assert_eq!(
        names.iter().filter(|n| n.ends_with("/layer.tar")).count(),
        all_diffs.len()
    );
    for m in ["manifest.json", "repositories"] {
        assert!(names.iter().any(|n| n == m), "{m} in {names:?}");
    }
    for t in f.images.values() {
        assert!(names.contains(&format!("{}.json", &t.id[7..])));
    }

    // The same images give the same bytes, to a file or to stdout.
    let again = t.path().join("again.tar");
    save_to(f, &again, &[]);
    assert_eq!(
        fs::read(&a).unwrap(),
        fs::read(&again).unwrap(),
        "reproducible"
    );
    let mut args: Vec<&OsStr> = vec![os("save")];
    args.extend(f.save_refs.iter().map(os));
    args.extend([os("-o"), os("-")]);
    let out = run_dockgc(&f.root, &args);
    assert!(out.status.success(), "{}", describe(&out));
    assert_eq!(
        out.stdout,
        fs::read(&a).unwrap(),
        "stdout holds the same archive"
    );

    assert_eq!(tree_hash(&f.root), before, "save wrote to the data root");
    load_and_judge(f, &a, "docker-archive");
}

#[test]
fn save_gzip_to_stdout_loads_into_a_fresh_daemon() {
    let f = fixture_or_skip!();
    let t = tempfile::tempdir().unwrap();
    let a = t.path().join("images.tar");
    let mut args: Vec<&OsStr> = vec![os("save")];
    args.extend(f.save_refs.iter().map(os));
    args.extend([os("-o"), os("-"), os("--gzip-level"), os("1")]);
    let out = run_dockgc(&f.root, &args);
    assert!(out.status.success(), "{}", describe(&out));
    fs::write(&a, &out.stdout).unwrap();
    let names = tar_order(&a);
    assert!(
        names.iter().any(|n| n.ends_with(b"/layer.tar.gz")),
        "gzip layer files"
    );
    // Each layer file is gzip, and decompresses to the stream of its diff ID.
    let mut ar = tar::Archive::new(fs::File::open(&a).unwrap());
    for e in ar.entries().unwrap() {
        let e = e.unwrap();
        let name = String::from_utf8(e.path_bytes().to_vec()).unwrap();
        if let Some(d) = name.strip_suffix("/layer.tar.gz") {
            let mut b = Vec::new();
            flate2::read::GzDecoder::new(e).read_to_end(&mut b).unwrap();
            assert_eq!(sha(&b), d, "{name}");
        }
    }
    load_and_judge(f, &a, "docker-archive gzip");
}

/// Checks an OCI layout tar as the image spec has it; returns the blobs.
fn check_oci(path: &Path, gzip: bool) -> BTreeMap<String, Vec<u8>> {
    let mut files: BTreeMap<String, Vec<u8>> = BTreeMap::new();
    let mut ar = tar::Archive::new(fs::File::open(path).unwrap());
    for e in ar.entries().unwrap() {
        let mut e = e.unwrap();
        let name = String::from_utf8(e.path_bytes().to_vec()).unwrap();
        let mut b = Vec::new();
        e.read_to_end(&mut b).unwrap();
        files.insert(name, b);
    }
    let json = |n: &str| -> Value {
        serde_json::from_slice(files.get(n).unwrap_or_else(|| panic!("{n} missing"))).unwrap()
    };
    assert_eq!(
        json("oci-layout"),
        serde_json::json!({"imageLayoutVersion": "1.0.0"})
    );
    // Every blob is named by its digest.
    for (n, b) in &files {
        if let Some(h) = n.strip_prefix("blobs/sha256/").filter(|h| !h.is_empty()) {
            assert_eq!(sha(b), h, "blob {n}");
        }
    }
    let blob = |d: &Value| -> &Vec<u8> {
        let d = d.as_str().unwrap();
        files
            .get(&format!(
                "blobs/sha256/{}",
                d.strip_prefix("sha256:").unwrap()
            ))
            .unwrap_or_else(|| panic!("blob {d} missing"))
    };
    let index = json("index.json");
    assert_eq!(index["schemaVersion"], 2);
    assert_eq!(
        index["mediaType"],
        "application/vnd.oci.image.index.v1+json"
    );
    let manifests = index["manifests"].as_array().unwrap();
    assert!(!manifests.is_empty());
    for m in manifests {
        assert_eq!(m["mediaType"], "application/vnd.oci.image.manifest.v1+json");
        let mb = blob(&m["digest"]);
        assert_eq!(m["size"].as_u64().unwrap(), mb.len() as u64);
        assert_eq!(m["platform"]["os"], "linux");
        if let Some(a) = m["annotations"].as_object() {
            let name = a["io.containerd.image.name"].as_str().unwrap();
            let tag = a["org.opencontainers.image.ref.name"].as_str().unwrap();
            assert!(name.ends_with(&format!(":{tag}")), "{name} / {tag}");
            assert!(name.contains('/') && name.split('/').next().unwrap().contains('.'));
        }
        let man: Value = serde_json::from_slice(mb).unwrap();
        assert_eq!(man["schemaVersion"], 2);
        assert_eq!(
            man["mediaType"],
            "application/vnd.oci.image.manifest.v1+json"
        );
        assert_eq!(
            man["config"]["mediaType"],
            "application/vnd.oci.image.config.v1+json"
        );
        let cb = blob(&man["config"]["digest"]);
        assert_eq!(man["config"]["size"].as_u64().unwrap(), cb.len() as u64);
        let config: Value = serde_json::from_slice(cb).unwrap();
        let diff_ids = config["rootfs"]["diff_ids"].as_array().unwrap();
        let layers = man["layers"].as_array().unwrap();
        assert_eq!(layers.len(), diff_ids.len());
        for (l, d) in layers.iter().zip(diff_ids) {
            let lb = blob(&l["digest"]);
            assert_eq!(l["size"].as_u64().unwrap(), lb.len() as u64);
            if gzip {
                assert_eq!(
                    l["mediaType"],
                    "application/vnd.oci.image.layer.v1.tar+gzip"
                );
                let mut raw = Vec::new();
                flate2::read::GzDecoder::new(lb.as_slice())
                    .read_to_end(&mut raw)
                    .unwrap();
                assert_eq!(format!("sha256:{}", sha(&raw)), d.as_str().unwrap());
            } else {
                assert_eq!(l["mediaType"], "application/vnd.oci.image.layer.v1.tar");
                assert_eq!(
                    &l["digest"], d,
                    "an uncompressed layer's digest is its diff ID"
                );
            }
        }
    }
    // manifest.json points into blobs/ (what docker load of 20.10 reads).
    for item in json("manifest.json").as_array().unwrap() {
        assert!(files.contains_key(item["Config"].as_str().unwrap()));
        for l in item["Layers"].as_array().unwrap() {
            assert!(files.contains_key(l.as_str().unwrap()), "{l}");
        }
    }
    files
}

#[test]
fn save_oci_is_a_valid_layout_that_docker_20_10_loads() {
    let f = fixture_or_skip!();
    let before = tree_hash(&f.root);
    let t = tempfile::tempdir().unwrap();
    let a = t.path().join("oci.tar");
    save_to(f, &a, &["--format", "oci"]);
    let files = check_oci(&a, false);
    let index: Value = serde_json::from_slice(&files["index.json"]).unwrap();
    // One descriptor per tag, and one for the untagged image.
    let want = f.expected();
    let descriptors = index["manifests"].as_array().unwrap().len();
    let tags: usize = want.values().map(|t| t.len().max(1)).sum();
    assert_eq!(descriptors, tags);
    assert_eq!(tree_hash(&f.root), before, "save wrote to the data root");
    load_and_judge(f, &a, "oci");
}

/// A private containerd 1.6 on a temp root and socket, with its own state dir,
/// so the test never touches a system containerd.
struct Containerd {
    dir: tempfile::TempDir,
    child: std::process::Child,
}

impl Containerd {
    fn start() -> Option<Containerd> {
        if Command::new("containerd")
            .arg("--version")
            .output()
            .is_err()
        {
            assert!(!docker_required(), "containerd is not installed");
            eprintln!("SKIPPED: no containerd");
            return None;
        }
        let dir = tempfile::Builder::new()
            .prefix("dgc-ctd")
            .tempdir_in("/tmp")
            .unwrap();
        let p = dir.path();
        fs::write(
            p.join("config.toml"),
            format!(
                "version = 2\nroot = \"{0}/root\"\nstate = \"{0}/state\"\n\
                 disabled_plugins = [\"io.containerd.grpc.v1.cri\", \"io.containerd.snapshotter.v1.btrfs\", \
                 \"io.containerd.snapshotter.v1.zfs\", \"io.containerd.snapshotter.v1.devmapper\", \
                 \"io.containerd.snapshotter.v1.aufs\"]\n\
                 [grpc]\n  address = \"{0}/state/containerd.sock\"\n\
                 [plugins.\"io.containerd.gc.v1.scheduler\"]\n  mutation_threshold = 100000\n",
                p.display()
            ),
        )
        .unwrap();
        let log = fs::File::create(p.join("log")).unwrap();
        let child = Command::new("containerd")
            .arg("--config")
            .arg(p.join("config.toml"))
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .stdin(Stdio::null())
            .spawn()
            .expect("spawn containerd");
        let c = Containerd { dir, child };
        for _ in 0..100 {
            if c.ctr(&["version"]).status.success() {
                return Some(c);
            }
            std::thread::sleep(std::time::Duration::from_millis(100));
        }
        panic!(
            "containerd did not start: {}",
            fs::read_to_string(c.dir.path().join("log")).unwrap_or_default()
        );
    }

    fn ctr(&self, args: &[&str]) -> Output {
        Command::new("ctr")
            .arg("--address")
            .arg(self.dir.path().join("state/containerd.sock"))
            .args(["-n", "test"])
            .args(args)
            .stdin(Stdio::null())
            .output()
            .expect("run ctr")
    }
}

impl Drop for Containerd {
    fn drop(&mut self) {
        // Only the daemon this test started, by its pid.
        unsafe {
            libc::kill(self.child.id() as i32, libc::SIGTERM);
        }
        let _ = self.child.wait();
    }
}

#[test]
fn save_oci_gzip_imports_into_containerd_and_docker() {
    let f = fixture_or_skip!();
    let t = tempfile::tempdir().unwrap();
    let plain = t.path().join("oci.tar");
    let gz = t.path().join("oci-gz.tar");
    save_to(f, &plain, &["--format", "oci"]);
    save_to(f, &gz, &["--format", "oci", "--gzip"]);
    check_oci(&gz, true);
    if let Some(c) = Containerd::start() {
        for a in [&plain, &gz] {
            let out = c.ctr(&["images", "import", "--all-platforms", a.to_str().unwrap()]);
            assert!(
                out.status.success(),
                "ctr images import {}: {}",
                a.display(),
                String::from_utf8_lossy(&out.stderr)
            );
        }
        let list = String::from_utf8(c.ctr(&["images", "ls", "-q"]).stdout).unwrap();
        let snaps = String::from_utf8(c.ctr(&["snapshots", "ls"]).stdout).unwrap();
        for (name, truth) in &f.images {
            for tag in &truth.tags {
                let (repo, t) = tag.rsplit_once(':').unwrap();
                let full = if repo.contains('.') && repo.contains('/') {
                    format!("{repo}:{t}")
                } else if repo.contains('/') {
                    format!("docker.io/{repo}:{t}")
                } else {
                    format!("docker.io/library/{repo}:{t}")
                };
                assert!(list.lines().any(|l| l == full), "{full} not in {list}");
                let check = c.ctr(&["images", "check", &format!("name=={full}")]);
                let s = String::from_utf8_lossy(&check.stdout);
                assert!(s.contains("complete"), "{full}: {s}");
            }
            // Unpacking checked every diff ID; the snapshots are the chain.
            let mut chain = String::new();
            for d in &truth.diff_ids {
                chain = if chain.is_empty() {
                    d.clone()
                } else {
                    sha256_digest(format!("{chain} {d}").as_bytes())
                };
                if !truth.tags.is_empty() {
                    assert!(
                        snaps.contains(&chain),
                        "{name}: snapshot {chain} missing:\n{snaps}"
                    );
                }
            }
        }
    }
    load_and_judge(f, &gz, "oci gzip");
}

// ---------------------------------------------------------------------------
// export

#[test]
fn export_tar_equals_docker_export() {
    let f = fixture_or_skip!();
    let before = tree_hash(&f.root);
    for (name, truth) in &f.images {
        let (_t, p) = export_tar(f, &truth.id, &[]);
        let want = tar_members(&truth.export);
        let got = tar_members(&p);
        let d = compare(&want, &got, &[]);
        assert!(
            d.is_empty(),
            "export of {name} differs from docker export:\n{}",
            d.join("\n")
        );
        // docker export's order too: each directory's entries by name, depth first.
        assert_eq!(
            tar_order(&p),
            tar_order(&truth.export),
            "member order of {name}"
        );
    }
    assert_eq!(tree_hash(&f.root), before, "export wrote to the data root");
}

#[test]
fn export_dir_equals_docker_export() {
    let f = fixture_or_skip!();
    let before = tree_hash(&f.root);
    for name in ["app:1", "bk:1", EXOTIC_2, "loaded:2020", "escape:1", "wd:1"] {
        let truth = f.truth(name);
        let t = tempfile::tempdir().unwrap();
        let dir = t.path().join("rootfs");
        let out = run_dockgc(
            &f.root,
            &[os("export"), os(name), os("--dir"), dir.as_os_str()],
        );
        assert!(
            out.status.success(),
            "export {name} --dir\n{}",
            describe(&out)
        );
        let d = compare(&tar_members(&truth.export), &dir_members(&dir), &[]);
        assert!(
            d.is_empty(),
            "--dir of {name} differs from docker export:\n{}",
            d.join("\n")
        );
    }
    let target = escape_target();
    assert!(
        !target.exists() || fs::read_dir(&target).unwrap().next().is_none(),
        "export wrote through a symlink"
    );
    assert!(
        !Path::new("/tmp/evil.txt").exists(),
        "export wrote through a symlink"
    );
    assert_eq!(tree_hash(&f.root), before, "export wrote to the data root");
}

#[test]
fn export_image_only_leaves_out_the_container_files() {
    let f = fixture_or_skip!();
    let truth = f.truth("wd:1");
    let (_t, p) = export_tar(f, "wd:1", &["--image-only"]);
    let got = tar_members(&p);
    for n in [
        ".dockerenv",
        "etc/hosts",
        "etc/mtab",
        "dev/console",
        "proc",
        "nowhere",
    ] {
        assert!(
            !got.contains_key(n.as_bytes()),
            "{n} in an --image-only export"
        );
    }
    // Everything else is the image's, as docker export has it (the
    // directories the daemon re-dates aside).
    let want = tar_members(&truth.export);
    for (n, m) in &got {
        let w = want
            .get(n)
            .unwrap_or_else(|| panic!("{} not in docker export", String::from_utf8_lossy(n)));
        if !["etc", "dev"].contains(&String::from_utf8_lossy(n).as_ref()) {
            assert_eq!(m, w, "{}", String::from_utf8_lossy(n));
        }
    }
}

// ---------------------------------------------------------------------------
// damage and bad input

/// The layer directory (`overlay2/<cache-id>/diff`) holding `file` in the
/// chain of `image`, and the layerdb dir of that layer.
fn layer_with(root: &Path, diff_ids: &[String], file: &str) -> (PathBuf, PathBuf) {
    let mut chain = String::new();
    for d in diff_ids {
        chain = if chain.is_empty() {
            d.clone()
        } else {
            sha256_digest(format!("{chain} {d}").as_bytes())
        };
        let db = root
            .join("image/overlay2/layerdb/sha256")
            .join(chain.trim_start_matches("sha256:"));
        let cache = fs::read_to_string(db.join("cache-id")).unwrap();
        let diff = root.join("overlay2").join(cache.trim()).join("diff");
        if diff.join(file).is_file() {
            return (diff, db);
        }
    }
    panic!("no layer has {file}");
}

fn flip_byte(p: &Path) {
    let mut b = fs::read(p).unwrap();
    let mid = b.len() / 2;
    b[mid] ^= 0x55;
    fs::write(p, b).unwrap();
}

/// Every way to save `image` fails with exit 1 and a message holding
/// `needles`, and leaves nothing in the output directory.
fn save_fails(root: &Path, image: &str, needles: &[&str]) {
    for extra in [
        &[][..],
        &["--format", "oci"],
        &["--gzip"],
        &["--format", "oci", "--gzip"],
    ] {
        let t = tempfile::tempdir().unwrap();
        let p = t.path().join("out.tar");
        let mut args = vec![os("save"), os(image), os("-o"), p.as_os_str()];
        args.extend(extra.iter().map(os));
        let out = run_dockgc(root, &args);
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(1), "{extra:?}\n{}", describe(&out));
        for n in needles {
            assert!(err.contains(n), "{extra:?}: {n:?} not in\n{err}");
        }
        assert!(err.contains("nothing was written"), "{err}");
        assert!(
            only_files(t.path()).is_empty(),
            "{extra:?}: left {:?}",
            only_files(t.path())
        );
    }
    // To stdout: a nonzero exit, and no end-of-archive.
    let out = run_dockgc(root, &[os("save"), os(image), os("-o"), os("-")]);
    assert_eq!(out.status.code(), Some(1), "{}", describe(&out));
    assert!(String::from_utf8_lossy(&out.stderr).contains("incomplete"));
}

#[test]
fn damage_fails_save_and_export_naming_the_file() {
    let f = fixture_or_skip!();
    let copy = copy_root(&f.root);
    let app = f.truth("app:1");
    let (diff, db) = layer_with(copy.path(), &app.diff_ids, "data/b.bin");
    flip_byte(&diff.join("data/b.bin"));
    let chain = format!("sha256:{}", db.file_name().unwrap().to_string_lossy());
    let file = diff.join("data/b.bin");
    save_fails(
        copy.path(),
        "app:1",
        &[
            &chain,
            "layer-content",
            &file.to_string_lossy(),
            "content differs (CRC)",
        ],
    );
    // An image not built on the damaged layer still saves.
    let t = tempfile::tempdir().unwrap();
    let ok = run_dockgc(
        copy.path(),
        &[
            os("save"),
            os(EXOTIC_2),
            os("-o"),
            t.path().join("x.tar").as_os_str(),
        ],
    );
    assert!(ok.status.success(), "{}", describe(&ok));
    // export reads the damaged file's body too.
    let p = t.path().join("e.tar");
    let out = run_dockgc(
        copy.path(),
        &[os("export"), os("app:1"), os("-o"), p.as_os_str()],
    );
    assert_eq!(out.status.code(), Some(1), "{}", describe(&out));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("data/b.bin") && err.contains("content differs (CRC)"),
        "{err}"
    );
    assert!(!p.exists());
    let dir = t.path().join("rootfs");
    let out = run_dockgc(
        copy.path(),
        &[os("export"), os("app:1"), os("--dir"), dir.as_os_str()],
    );
    assert_eq!(out.status.code(), Some(1), "{}", describe(&out));
    assert!(
        !dir.exists(),
        "a failed --dir export removes the directory it made"
    );
}

#[test]
fn missing_tar_split_fails_save_naming_it() {
    let f = fixture_or_skip!();
    let copy = copy_root(&f.root);
    let truth = f.truth("loaded:2020");
    let (_diff, db) = layer_with(copy.path(), &truth.diff_ids, "srv/data.bin");
    let ts = db.join("tar-split.json.gz");
    fs::remove_file(&ts).unwrap();
    save_fails(
        copy.path(),
        "loaded:2020",
        &[
            "tar-split",
            &ts.to_string_lossy(),
            "tar-split.json.gz is missing",
        ],
    );
}

#[test]
fn bad_input_exits_2() {
    let f = fixture_or_skip!();
    let t = tempfile::tempdir().unwrap();
    let out_file = t.path().join("out.tar");
    let cases: Vec<(Vec<&OsStr>, &str)> = vec![
        (
            vec![os("save"), os("nope:1"), os("-o"), out_file.as_os_str()],
            "no image matches",
        ),
        (
            vec![
                os("save"),
                os("app:1"),
                os("nope:2"),
                os("-o"),
                out_file.as_os_str(),
            ],
            "no image matches",
        ),
        (
            vec![
                os("save"),
                os("app:1"),
                os("-o"),
                os("/nonexistent-dir/out.tar"),
            ],
            "/nonexistent-dir",
        ),
        (
            vec![os("save"), os("app:1"), os("-o"), t.path().as_os_str()],
            "is a directory",
        ),
        (
            vec![
                os("save"),
                os("app:1"),
                os("-o"),
                out_file.as_os_str(),
                os("--gzip-level"),
                os("0"),
            ],
            "0",
        ),
        (
            vec![os("export"), os("nope:1"), os("-o"), out_file.as_os_str()],
            "no image matches",
        ),
        (
            vec![
                os("export"),
                os("app:1"),
                os("-o"),
                os("/nonexistent-dir/x.tar"),
            ],
            "/nonexistent-dir",
        ),
        (
            vec![
                os("export"),
                os("app:1"),
                os("--dir"),
                os("/nonexistent-dir/x"),
            ],
            "/nonexistent-dir",
        ),
        (vec![os("export"), os("app:1")], "required"),
    ];
    for (args, needle) in &cases {
        let out = run_dockgc(&f.root, args);
        assert_eq!(out.status.code(), Some(2), "{args:?}\n{}", describe(&out));
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(err.contains(needle), "{args:?}: {needle:?} not in {err}");
        assert!(!out_file.exists());
    }
    // A non-empty directory is refused and left alone.
    let dir = t.path().join("full");
    fs::create_dir(&dir).unwrap();
    fs::write(dir.join("keep"), b"mine").unwrap();
    let out = run_dockgc(
        &f.root,
        &[os("export"), os("app:1"), os("--dir"), dir.as_os_str()],
    );
    assert_eq!(out.status.code(), Some(2), "{}", describe(&out));
    assert!(String::from_utf8_lossy(&out.stderr).contains("is not empty"));
    assert_eq!(only_files(&dir), BTreeSet::from(["keep".to_string()]));
    assert_eq!(fs::read(dir.join("keep")).unwrap(), b"mine");
    // An existing empty directory is used.
    let empty = t.path().join("empty");
    fs::create_dir(&empty).unwrap();
    let out = run_dockgc(
        &f.root,
        &[os("export"), os("base:1"), os("--dir"), empty.as_os_str()],
    );
    assert!(out.status.success(), "{}", describe(&out));
    assert!(empty.join("bin/busybox").is_file());
}
