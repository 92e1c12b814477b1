//! The writer's files are accepted by real Go bbolt: a private dockerd
//! (Debian docker.io 20.10) started on a data root whose `volumes/metadata.db`
//! was generated here must list exactly the generated volumes, and the file
//! it then commits to must read back here.
//!
//! Needs root and dockerd; skipped without them unless DOCKGC_REQUIRE_DOCKER
//! is set (CI sets it), then it fails instead.

use std::collections::BTreeSet;
use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

use bbolt::Db;
use bbolt::build::{Options, Tree, image};
use serde_json::Value;

fn find(name: &str) -> Option<PathBuf> {
    [
        "/usr/sbin",
        "/usr/bin",
        "/usr/local/sbin",
        "/usr/local/bin",
        "/sbin",
        "/bin",
    ]
    .iter()
    .map(|d| Path::new(d).join(name))
    .find(|p| p.is_file())
}

fn skip(reason: &str) -> bool {
    if std::env::var_os("DOCKGC_REQUIRE_DOCKER").is_some() {
        panic!("real dockerd required: {reason}");
    }
    eprintln!("skipped: {reason}");
    true
}

struct Daemon {
    child: Child,
    sock: PathBuf,
    pidfile: PathBuf,
    log: PathBuf,
    docker: PathBuf,
}

impl Daemon {
    fn start(root: &Path, run: &Path, dockerd: &Path, docker: PathBuf) -> Daemon {
        fs::create_dir_all(run.join("exec")).unwrap();
        let sock = run.join("docker.sock");
        let pidfile = run.join("docker.pid");
        let log = run.join("dockerd.log");
        // setsid(1): the daemon gets its own session, away from the test's
        // terminal and process group.
        let child = Command::new("setsid")
            .arg(dockerd)
            .arg("--data-root")
            .arg(root)
            .arg("--exec-root")
            .arg(run.join("exec"))
            .arg("-H")
            .arg(format!("unix://{}", sock.display()))
            .arg("--pidfile")
            .arg(&pidfile)
            .args(["--iptables=false", "--ip6tables=false", "--bridge=none"])
            .stdin(Stdio::null())
            .stdout(fs::File::create(&log).unwrap())
            .stderr(fs::File::create(run.join("dockerd.err")).unwrap())
            .spawn()
            .expect("start dockerd");
        let d = Daemon {
            child,
            sock,
            pidfile,
            log,
            docker,
        };
        let deadline = Instant::now() + Duration::from_secs(60);
        while !d.docker(&["version"]).status.success() {
            assert!(
                Instant::now() < deadline,
                "dockerd did not answer: {}",
                d.log_tail()
            );
            std::thread::sleep(Duration::from_millis(250));
        }
        d
    }

    fn log_tail(&self) -> String {
        let err = fs::read_to_string(self.log.with_file_name("dockerd.err")).unwrap_or_default();
        err.lines().rev().take(20).collect::<Vec<_>>().join("\n")
    }

    fn docker(&self, args: &[&str]) -> Output {
        Command::new(&self.docker)
            .env("DOCKER_HOST", format!("unix://{}", self.sock.display()))
            .args(args)
            .output()
            .unwrap()
    }

    fn ok(&self, args: &[&str]) -> String {
        let out = self.docker(args);
        assert!(
            out.status.success(),
            "docker {args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8(out.stdout).unwrap()
    }

    /// SIGTERM to the pid in the pidfile, then wait for the exit.
    fn stop(mut self) {
        let pid = fs::read_to_string(&self.pidfile)
            .unwrap_or_default()
            .trim()
            .to_owned();
        if !pid.is_empty() {
            let _ = Command::new("kill").args(["-TERM", &pid]).status();
        }
        let deadline = Instant::now() + Duration::from_secs(30);
        while self.child.try_wait().unwrap().is_none() {
            assert!(Instant::now() < deadline, "dockerd did not stop");
            std::thread::sleep(Duration::from_millis(100));
        }
    }
}

fn volume(name: &str, labels: Value) -> Vec<u8> {
    serde_json::to_vec(
        &serde_json::json!({"Name": name, "Driver": "local", "Labels": labels, "Options": null}),
    )
    .unwrap()
}

#[test]
fn dockerd_lists_the_volumes_of_a_generated_metadata_db() {
    let Some(dockerd) = find("dockerd") else {
        skip("no dockerd");
        return;
    };
    let Some(docker) = find("docker") else {
        skip("no docker CLI");
        return;
    };
    if !fs::read_to_string("/proc/self/status")
        .unwrap()
        .lines()
        .any(|l| l.starts_with("Uid:\t0\t"))
    {
        skip("not root");
        return;
    }
    let tmp = tempfile::Builder::new()
        .prefix("bbolt-dockerd")
        .tempdir()
        .unwrap();
    let root = tmp.path().join("root");
    let volumes = root.join("volumes");
    fs::create_dir_all(&volumes).unwrap();

    // 200 volumes (branch pages), one with a 10 KB label (overflow pages).
    let mut tree = Tree::new();
    let bucket = tree.bucket("volumes");
    let mut want = BTreeSet::new();
    for i in 0..200 {
        let name = format!("gen-{i:03}");
        let labels = if i == 7 {
            serde_json::json!({"big": "y".repeat(10_000)})
        } else {
            serde_json::json!({"i": i.to_string()})
        };
        bucket.put(name.clone(), volume(&name, labels));
        fs::create_dir_all(volumes.join(&name).join("_data")).unwrap();
        want.insert(name);
    }
    let img = image(
        &tree,
        &Options {
            txid: 12,
            ..Options::default()
        },
    )
    .unwrap();
    let stats = Db::from_bytes(img.clone(), "generated").unwrap().stats();
    assert!(
        stats.branch_pages > 0 && stats.overflow_pages > 0,
        "{stats:?}"
    );
    let db_path = volumes.join("metadata.db");
    fs::write(&db_path, &img).unwrap();

    let daemon = Daemon::start(&root, &tmp.path().join("run"), &dockerd, docker);
    let listed: BTreeSet<String> = daemon
        .ok(&["volume", "ls", "--format", "{{.Name}}"])
        .lines()
        .map(str::to_owned)
        .collect();
    let inspect: Value =
        serde_json::from_str(&daemon.ok(&["volume", "inspect", "gen-007", "gen-150"])).unwrap();
    // A commit by Go bbolt on top of the generated file.
    daemon.ok(&["volume", "create", "--label", "by=dockerd", "added"]);
    assert_eq!(
        bbolt::probe_lock(&db_path).unwrap(),
        bbolt::LockProbe::HeldExclusive
    );
    let live = Db::open(&db_path).expect("read while dockerd holds it");
    daemon.stop();

    assert_eq!(listed, want, "dockerd lists exactly the generated volumes");
    assert_eq!(
        inspect[0]["Labels"]["big"].as_str().map(str::len),
        Some(10_000)
    );
    assert_eq!(inspect[1]["Labels"]["i"], "150");

    let db = Db::open(&db_path).unwrap();
    assert!(db.txid() > 12, "dockerd committed");
    assert!(db.check().unwrap().leaked.is_empty());
    let vols = db.bucket("volumes").unwrap();
    let mut after: BTreeSet<String> = want.clone();
    after.insert("added".into());
    let names: BTreeSet<String> = vols
        .iter()
        .map(|(k, _)| String::from_utf8(k.to_vec()).unwrap())
        .collect();
    assert_eq!(names, after);
    let added: Value = serde_json::from_slice(vols.get("added").unwrap()).unwrap();
    assert_eq!(added["Labels"]["by"], "dockerd");
    let v150: Value = serde_json::from_slice(vols.get("gen-150").unwrap()).unwrap();
    assert_eq!(
        (v150["Name"].as_str(), v150["Labels"]["i"].as_str()),
        (Some("gen-150"), Some("150"))
    );
    assert!(live.bucket("volumes").unwrap().get("added").is_some());
    assert_eq!(bbolt::probe_lock(&db_path).unwrap(), bbolt::LockProbe::Free);
}
