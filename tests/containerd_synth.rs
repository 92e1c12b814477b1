//! The generated containerd root of the benchmark (1,000 images over 3,000
//! snapshots, tests/support/containerd_synth.rs) is in containerd's exact
//! format: a real containerd 1.6 started on it lists every image complete
//! and unpacked, every snapshot with the usage dockgc reports, every blob,
//! and its startup garbage collection removes nothing, as dockgc predicts.
//! So the benchmark's figures carry over to real roots.

mod support;

#[path = "support/containerd_synth.rs"]
mod containerd_synth;

use serde_json::Value;
use std::collections::{BTreeMap, BTreeSet};
use support::*;

#[test]
fn a_real_containerd_accepts_the_generated_root() {
    let dir = tempfile::Builder::new()
        .prefix("dgc-syn")
        .tempdir_in("/tmp")
        .unwrap();
    let root = dir.path().join("root");
    let counts = containerd_synth::generate(&root, 1000);
    assert_eq!(
        (counts.images, counts.snapshots, counts.blobs),
        (1000, 3000, 5000)
    );

    // dockgc first, on the stopped root.
    let out = dockgc()
        .arg("--containerd-root")
        .arg(&root)
        .args(["df", "--format", "json"])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let v: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["images"].as_array().unwrap().len(), 1000);
    assert_eq!(v["collectable"], serde_json::json!([]));
    assert_eq!(v["orphans"], serde_json::json!([]));
    let mine: BTreeMap<String, (u64, u64)> = v["snapshots"]
        .as_array()
        .unwrap()
        .iter()
        .map(|x| {
            (
                x["key"].as_str().unwrap().to_string(),
                (x["size"].as_u64().unwrap(), x["inodes"].as_u64().unwrap()),
            )
        })
        .collect();
    let verify = dockgc()
        .arg("--containerd-root")
        .arg(&root)
        .args(["verify", "--deep", "--format", "json"])
        .output()
        .unwrap();
    let vv: Value = serde_json::from_slice(&verify.stdout).unwrap();
    assert_eq!(vv["findings"], serde_json::json!([]), "{vv:#}");

    let paths_before = store_paths(&root);
    let Some(mut c) = Ctrd::start(&dir.path().join("daemon"), &root, true) else {
        return;
    };
    let t0 = std::time::Instant::now();
    while t0.elapsed() < std::time::Duration::from_secs(10)
        && !std::fs::read_to_string(&c.log)
            .unwrap_or_default()
            .contains("garbage collected")
    {
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    let j = judge(&c, "moby");
    let check = c.ctr("moby", &["images", "check"]);
    c.stop();
    assert_eq!(j.images.len(), 1100, "1,000 images, 100 with a second tag");
    assert_eq!(j.usage, mine, "ctr snapshots usage -b");
    assert_eq!(j.content.len(), 5000);
    let complete = check
        .lines()
        .skip(1)
        .filter(|l| l.contains("complete") && l.trim_end().ends_with("true"))
        .count();
    assert_eq!(
        complete, 1100,
        "every image complete and unpacked:\n{check}"
    );
    let blobs: BTreeSet<String> = v["blobs"]
        .as_array()
        .unwrap()
        .iter()
        .map(|b| b["digest"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(blobs, j.content);
    assert_eq!(
        store_paths(&root),
        paths_before,
        "the startup GC removed something"
    );
}
