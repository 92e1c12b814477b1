//! `store::daemon` against a real private dockerd: the liveness test sees it
//! while it runs and not after it stops, and a held guard keeps a new dockerd
//! from starting on the root.
//!
//! Skips (loudly) when no daemon can be started, unless `DOCKGC_REQUIRE_DOCKER`
//! or `CI` is set.

mod support;

use std::fs;
use std::os::unix::process::CommandExt;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use dockgc::store::daemon::{Busy, daemon_alive, guard};

#[test]
fn daemon_alive_while_dockerd_runs_and_guard_blocks_a_new_one() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let root = tmp.path().join("docker");
    let Some(d) = support::Daemon::start(&root) else {
        return;
    };

    let seen = match daemon_alive(&root) {
        Some(Busy::DaemonRunning { pid, how }) => {
            assert_eq!(how, "process scan");
            pid
        }
        other => panic!("expected DaemonRunning while dockerd runs, got {other:?}"),
    };
    assert_eq!(
        fs::read(format!("/proc/{seen}/comm")).unwrap(),
        b"dockerd\n"
    );
    // Another spelling of the same root.
    let link = tmp.path().join("link");
    std::os::unix::fs::symlink(&root, &link).unwrap();
    assert!(matches!(
        daemon_alive(&link),
        Some(Busy::DaemonRunning { pid, .. }) if pid == seen
    ));
    // guard() meets bbolt's lock on volumes/metadata.db first.
    match guard(&root) {
        Err(Busy::DaemonRunning { pid, how }) => {
            assert_eq!(pid, seen);
            assert!(
                how.starts_with("holds ") && how.ends_with("volumes/metadata.db"),
                "{how}"
            );
        }
        other => panic!("expected DaemonRunning from guard, got {other:?}"),
    }
    // A sibling root is not busy.
    let other = tmp.path().join("other");
    fs::create_dir(&other).unwrap();
    assert!(daemon_alive(&other).is_none());

    d.stop();
    assert!(
        daemon_alive(&root).is_none(),
        "still alive after stop: {:?}",
        daemon_alive(&root)
    );
    let g = guard(&root).expect("guard after stop");
    assert!(g.holds_volume_db());

    // While the guard is held, a dockerd starting on the root gives up at
    // volume-store init instead of running.
    refused_start(&root);
    drop(g);
}

/// Starts dockerd on `root` and expects it to exit with an error within 60 s.
fn refused_start(root: &Path) {
    let Some(dockerd) = [
        "/usr/sbin/dockerd",
        "/usr/bin/dockerd",
        "/usr/local/bin/dockerd",
    ]
    .into_iter()
    .find(|p| Path::new(p).is_file()) else {
        return;
    };
    let run = tempfile::Builder::new()
        .prefix("dgc")
        .suffix(".run")
        .tempdir_in("/tmp")
        .unwrap();
    let log_path = run.path().join("dockerd.log");
    let log = fs::File::create(&log_path).unwrap();
    let path = format!(
        "{}:/usr/sbin:/usr/bin:/sbin:/bin:/usr/local/bin",
        std::env::var("PATH").unwrap_or_default()
    );
    let mut cmd = Command::new(dockerd);
    cmd.arg("--data-root")
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
        .env("PATH", path)
        .stdin(Stdio::null())
        .stdout(log.try_clone().unwrap())
        .stderr(log);
    unsafe {
        cmd.pre_exec(|| {
            if libc::setsid() < 0 {
                return Err(std::io::Error::last_os_error());
            }
            Ok(())
        });
    }
    let mut child = cmd.spawn().expect("spawn dockerd");
    let deadline = Instant::now() + Duration::from_secs(60);
    let status = loop {
        if let Some(st) = child.try_wait().unwrap() {
            break Some(st);
        }
        if Instant::now() > deadline {
            // Our own child is a session leader: end its group.
            unsafe {
                libc::kill(-(child.id() as i32), libc::SIGKILL);
            }
            let _ = child.wait();
            break None;
        }
        std::thread::sleep(Duration::from_millis(100));
    };
    let text = fs::read_to_string(&log_path).unwrap_or_default();
    let status = status.unwrap_or_else(|| {
        panic!("dockerd kept running although the guard holds volumes/metadata.db:\n{text}")
    });
    assert!(!status.success(), "dockerd exited with {status}:\n{text}");
    assert!(
        text.contains("error while opening volume store metadata database"),
        "dockerd failed for another reason:\n{text}"
    );
}
