//! The storage driver chosen as the daemon chooses it, against real daemons
//! (`support::drivers`): a root that once ran `dockerd -s vfs` and then a
//! plain daemon reads as overlay2 and agrees with that daemon's df; a root
//! with two scanned drivers is refused as the daemon refuses it; a
//! configured driver (a live dockerd's `-s` or `--config-file`, or
//! `--driver`) wins. Skips (loudly) without a daemon unless
//! `DOCKGC_REQUIRE_DOCKER` or `CI` is set.

mod support;

use std::collections::BTreeSet;
use std::fs;
use std::path::Path;
use std::process::Output;

use serde_json::Value;
use support::drivers::*;
use support::*;

macro_rules! two_drivers_or_skip {
    () => {
        match scenario_two_drivers() {
            Some(s) => s,
            None => return,
        }
    };
}

fn dockgc_in(root: &Path, args: &[&str]) -> Output {
    let out = dockgc()
        .arg("--root")
        .arg(root)
        .args(args)
        .output()
        .expect("run dockgc");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.code() != Some(101) && !stderr.contains("panicked at"),
        "dockgc {args:?} panicked:\n{stderr}"
    );
    out
}

fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

fn df_json(root: &Path, extra: &[&str]) -> Value {
    let mut args: Vec<&str> = extra.to_vec();
    args.extend(["df", "--format", "json"]);
    let out = dockgc_in(root, &args);
    assert_eq!(
        out.status.code(),
        Some(0),
        "dockgc {args:?}: {}",
        stderr(&out)
    );
    serde_json::from_slice(&out.stdout).expect("df JSON")
}

fn ids(v: &Value, key: &str, field: &str) -> BTreeSet<String> {
    v[key]
        .as_array()
        .unwrap_or_else(|| panic!("{key} in {v:#}"))
        .iter()
        .map(|x| x[field].as_str().unwrap().to_string())
        .collect()
}

/// df agrees with the daemon's `/system/df`: listed images with their
/// sizes, LayersSize, containers with SizeRw, volumes with links and sizes.
fn assert_df_is_the_daemons(j: &Value, system_df: &Value) {
    assert_eq!(j["driver"], "overlay2");
    let listed: Vec<&Value> = j["images"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|i| i["listed"] == true)
        .collect();
    let mine: BTreeSet<(String, u64)> = listed
        .iter()
        .map(|i| {
            (
                i["id"].as_str().unwrap().into(),
                i["size"].as_u64().unwrap(),
            )
        })
        .collect();
    let theirs: BTreeSet<(String, u64)> = system_df["Images"]
        .as_array()
        .unwrap()
        .iter()
        .map(|i| {
            (
                i["Id"].as_str().unwrap().into(),
                i["Size"].as_u64().unwrap(),
            )
        })
        .collect();
    assert_eq!(mine, theirs, "images (id, size)");
    assert_eq!(j["layers_size"], system_df["LayersSize"]);
    let mine: BTreeSet<(String, u64)> = j["containers"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| {
            (
                c["id"].as_str().unwrap().into(),
                c["size_rw"].as_u64().unwrap(),
            )
        })
        .collect();
    let theirs: BTreeSet<(String, u64)> = system_df["Containers"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| {
            (
                c["Id"].as_str().unwrap().into(),
                c["SizeRw"].as_u64().unwrap_or(0),
            )
        })
        .collect();
    assert_eq!(mine, theirs, "containers (id, SizeRw)");
    let mine: BTreeSet<(String, u64, u64)> = j["volumes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| {
            (
                v["name"].as_str().unwrap().into(),
                v["links"].as_u64().unwrap(),
                v["size"].as_u64().unwrap(),
            )
        })
        .collect();
    let theirs: BTreeSet<(String, u64, u64)> = system_df["Volumes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| {
            (
                v["Name"].as_str().unwrap().into(),
                v["UsageData"]["RefCount"].as_u64().unwrap(),
                v["UsageData"]["Size"].as_u64().unwrap(),
            )
        })
        .collect();
    assert_eq!(mine, theirs, "volumes (name, links, size)");
}

fn non_empty(p: &Path) -> bool {
    fs::read_dir(p).is_ok_and(|mut d| d.next().is_some())
}

#[test]
fn a_root_that_ran_vfs_then_a_plain_daemon_reads_as_overlay2() {
    let sc = two_drivers_or_skip!();
    assert_eq!(
        sc.plain_driver, "overlay2",
        "the plain daemon chose overlay2"
    );
    for d in ["vfs", "image/vfs", "overlay2", "image/overlay2"] {
        assert!(non_empty(&sc.root.join(d)), "{d} has state");
    }
    let j = df_json(&sc.root, &[]);
    assert_df_is_the_daemons(&j, &sc.system_df);
    // The vfs daemon's container is not the plain daemon's (it restores only
    // its driver's containers), nor are its links on the shared volume.
    assert!(!ids(&j, "containers", "id").contains(&sc.vfs_container));
    let shared = j["volumes"]
        .as_array()
        .unwrap()
        .iter()
        .find(|v| v["name"] == "shared-vol")
        .expect("shared-vol");
    assert_eq!(shared["links"], 1);
    assert!(j["anomalies"].as_array().unwrap().is_empty(), "{j:#}");
    // verify finds nothing wrong with what the plain daemon uses.
    let out = dockgc_in(&sc.root, &["verify"]);
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}{}",
        stderr(&out),
        String::from_utf8_lossy(&out.stdout)
    );
}

#[test]
fn driver_flag_overrides_the_choice() {
    let sc = two_drivers_or_skip!();
    let out = dockgc_in(&sc.root, &["--driver", "vfs", "df"]);
    assert_eq!(out.status.code(), Some(2));
    let e = stderr(&out);
    assert!(
        e.contains("\"vfs\"") && e.contains("configured: --driver") && e.contains("not supported"),
        "{e}"
    );
    let j = df_json(&sc.root, &["--driver", "overlay2"]);
    assert_df_is_the_daemons(&j, &sc.system_df);
}

#[test]
fn several_drivers_are_refused_as_the_daemon_refuses_and_a_configured_one_wins() {
    let sc = two_drivers_or_skip!();
    let copy = copy_root(&sc.root);
    let root = copy.path();
    fs::create_dir_all(root.join("fuse-overlayfs/leftover")).unwrap();

    let refused = |why: &str| {
        let out = dockgc_in(root, &["df"]);
        assert_eq!(out.status.code(), Some(2), "{why}: {}", stderr(&out));
        let e = stderr(&out);
        assert!(
            e.contains("overlay2, fuse-overlayfs")
                && e.contains("-s <DRIVER>")
                && e.contains(&root.display().to_string()),
            "{why}: {e}"
        );
    };
    refused("stopped");
    // The daemon refuses too, for the same reason.
    let Some(log) = dockerd_refuses(root, &[]) else {
        return;
    };
    assert!(log.contains("contains several valid graphdrivers"), "{log}");
    // A driver given to dockgc reads it.
    assert_df_is_the_daemons(&df_json(root, &["--driver", "overlay2"]), &sc.system_df);

    // A live dockerd started with -s overlay2: dockgc finds its driver.
    let Some(d) = Daemon::start_with(root, &["-s", "overlay2"]) else {
        return;
    };
    let j = df_json(root, &[]);
    assert_df_is_the_daemons(&j, &d.api("/system/df"));
    d.stop();
    refused("after -s overlay2 stopped");

    // ... and one whose --config-file sets storage-driver.
    let cfg = tempfile::NamedTempFile::new().unwrap();
    fs::write(cfg.path(), r#"{"storage-driver": "overlay2"}"#).unwrap();
    let Some(d) = Daemon::start_with(root, &["--config-file", cfg.path().to_str().unwrap()]) else {
        return;
    };
    let j = df_json(root, &[]);
    assert_df_is_the_daemons(&j, &d.api("/system/df"));
    d.stop();
    refused("after --config-file stopped");
}
