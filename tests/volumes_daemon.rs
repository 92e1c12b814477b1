//! Volumes and logs against a root a real daemon wrote (`support::scenario_modern`):
//! the daemon's `/system/df`, `docker system df [-v]` and the files on disk
//! are the judges. Skips (loudly) without a daemon unless `DOCKGC_REQUIRE_DOCKER`
//! or `CI` is set.

mod support;

use std::collections::{BTreeMap, BTreeSet};
use std::fs;
use std::os::unix::fs::MetadataExt;
use std::path::Path;
use std::process::{Command, Output};

use serde_json::Value;
use support::*;

macro_rules! modern_or_skip {
    () => {
        match scenario_modern() {
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

fn df_json(root: &Path, extra: &[&str]) -> Value {
    let mut args = vec!["df", "--format", "json"];
    args.extend_from_slice(extra);
    let out = dockgc_in(root, &args);
    assert_eq!(
        out.status.code(),
        Some(0),
        "dockgc {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).expect("df JSON")
}

fn text(out: &Output) -> String {
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn row<'a>(j: &'a Value, kind: &str) -> &'a Value {
    j["summary"]
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["type"] == kind)
        .unwrap_or_else(|| panic!("no summary row {kind}: {j:#}"))
}

/// dockgc's `volumes[]` by name.
fn dockgc_volumes(j: &Value) -> BTreeMap<String, &Value> {
    j["volumes"]
        .as_array()
        .expect("volumes[]")
        .iter()
        .map(|v| (v["name"].as_str().unwrap().to_string(), v))
        .collect()
}

/// The daemon's `/system/df` `Volumes` by name.
fn daemon_volumes(system_df: &Value) -> BTreeMap<String, &Value> {
    system_df["Volumes"]
        .as_array()
        .expect("Volumes")
        .iter()
        .map(|v| (v["Name"].as_str().unwrap().to_string(), v))
        .collect()
}

/// Every volume, field by field, equals what the daemon's df reported.
fn assert_volumes_match(j: &Value, system_df: &Value) {
    let mine = dockgc_volumes(j);
    let theirs = daemon_volumes(system_df);
    assert_eq!(
        mine.keys().collect::<Vec<_>>(),
        theirs.keys().collect::<Vec<_>>(),
        "the volumes /system/df lists"
    );
    let mut bad = Vec::new();
    for (name, d) in &theirs {
        let m = mine[name];
        let size = d["UsageData"]["Size"].as_i64().unwrap();
        let want_size = if size < 0 {
            Value::Null
        } else {
            Value::from(size)
        };
        for (field, got, want) in [
            ("links", &m["links"], &d["UsageData"]["RefCount"]),
            ("size", &m["size"], &want_size),
            ("driver", &m["driver"], &d["Driver"]),
            ("labels", &m["labels"], &d["Labels"]),
        ] {
            if got != want {
                bad.push(format!("{name}.{field}: dockgc {got}, daemon {want}"));
            }
        }
    }
    assert!(bad.is_empty(), "volume mismatches:\n  {}", bad.join("\n  "));

    // The Local Volumes row, totalled as the CLI (<= 28) does.
    let vols: Vec<&&Value> = theirs.values().collect();
    let size_of = |v: &Value| v["UsageData"]["Size"].as_i64().unwrap();
    let refs = |v: &Value| v["UsageData"]["RefCount"].as_i64().unwrap();
    let r = row(j, "volumes");
    assert_eq!(r["total"], vols.len() as u64);
    assert_eq!(
        r["active"],
        vols.iter().filter(|v| refs(v) > 0).count() as u64
    );
    let size: i64 = vols.iter().map(|v| size_of(v)).filter(|s| *s >= 0).sum();
    assert_eq!(r["size"], size);
    let reclaimable: i64 = vols
        .iter()
        .filter(|v| refs(v) == 0)
        .map(|v| size_of(v))
        .filter(|s| *s >= 0)
        .sum();
    assert_eq!(r["reclaimable"], reclaimable);
}

#[test]
fn every_volume_and_the_local_volumes_row_equal_system_df() {
    let m = modern_or_skip!();
    let j = df_json(&m.root, &[]);
    assert_volumes_match(&j, &m.system_df);
    let mine = dockgc_volumes(&j);
    // The scenario has what it promises: in use twice, unused, sizes > 0.
    assert_eq!(
        mine["data1"]["links"], 2,
        "a running and a stopped container"
    );
    assert_eq!(mine["dangling1"]["links"], 0);
    assert!(mine["data1"]["size"].as_u64().unwrap() > 120 * 1024);
    assert!(mine.len() > 80, "the bulk volumes are listed");
    // `Labels` as stored: {} from `docker volume create`, null from --mount.
    assert_eq!(mine["dangling1"]["labels"], serde_json::json!({}));
    assert!(mine["data3"]["labels"].is_null());
    assert_eq!(
        mine["long-label"]["labels"]["long"].as_str().map(str::len),
        Some(9 * 1024)
    );
}

#[test]
fn volumes_with_options_are_left_out_as_the_daemon_does() {
    let m = modern_or_skip!();
    let j = df_json(&m.root, &[]);
    let listed_by_volume_ls: BTreeSet<&str> = m.volumes_json["Volumes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v["Name"].as_str().unwrap())
        .collect();
    assert!(
        listed_by_volume_ls.contains("tmpvol"),
        "the daemon has tmpvol"
    );
    assert!(!daemon_volumes(&m.system_df).contains_key("tmpvol"));
    assert!(!dockgc_volumes(&j).contains_key("tmpvol"));
}

#[test]
fn anonymous_and_named_volumes() {
    let m = modern_or_skip!();
    let j = df_json(&m.root, &[]);
    let mine = dockgc_volumes(&j);
    // The daemon's own record of an anonymous volume: vol-stopped's `-v /anon`.
    let stopped = m
        .containers_json
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["Names"][0] == "/vol-stopped")
        .expect("vol-stopped");
    let anon_mount = stopped["Mounts"]
        .as_array()
        .unwrap()
        .iter()
        .find(|mt| mt["Destination"] == "/anon")
        .expect("the /anon mount");
    let anon = anon_mount["Name"].as_str().unwrap();
    assert_eq!(mine[anon]["anonymous"], true, "{anon}");
    assert_eq!(mine[anon]["links"], 1);
    let anonymous: BTreeSet<&str> = mine
        .iter()
        .filter(|(_, v)| v["anonymous"] == true)
        .map(|(n, _)| n.as_str())
        .collect();
    // vol-stopped's and the one `docker rm` left behind (no links).
    assert_eq!(anonymous.len(), 2, "{anonymous:?}");
    let left = anonymous.iter().find(|n| **n != anon).unwrap();
    assert_eq!(mine[*left]["links"], 0);
    for named in [
        "data1",
        "dangling1",
        "data3",
        "links",
        "long-label",
        "bulk-00",
    ] {
        assert_eq!(mine[named]["anonymous"], false, "{named}");
    }

    // `df -v`: the section as the CLI prints it, plus KIND.
    let out = dockgc_in(&m.root, &["df", "-v"]);
    assert_eq!(out.status.code(), Some(0));
    let t = text(&out);
    let section = t
        .split("Local Volumes space usage:")
        .nth(1)
        .expect("a volumes section")
        .split("\n\n")
        .nth(1)
        .unwrap();
    let header: Vec<&str> = section
        .lines()
        .next()
        .unwrap()
        .split("  ")
        .filter(|s| !s.is_empty())
        .map(str::trim)
        .collect();
    assert_eq!(header, vec!["VOLUME NAME", "LINKS", "SIZE", "KIND"]);
    let line = section
        .lines()
        .find(|l| l.starts_with(anon))
        .expect("the anonymous volume's line");
    assert!(line.trim_end().ends_with("anonymous"), "{line}");
    let line = section.lines().find(|l| l.starts_with("data1 ")).unwrap();
    assert!(line.trim_end().ends_with("named"), "{line}");
}

/// Fields of the line of `text` whose first column is `title`.
fn line_fields(text: &str, title: &str) -> Vec<String> {
    let line = text
        .lines()
        .find(|l| l.starts_with(title))
        .unwrap_or_else(|| panic!("no {title:?} line in:\n{text}"));
    line[title.len()..]
        .split_whitespace()
        .map(str::to_string)
        .collect()
}

#[test]
fn table_rows_are_what_docker_system_df_prints() {
    let m = modern_or_skip!();
    let out = dockgc_in(&m.root, &["df"]);
    assert_eq!(out.status.code(), Some(0));
    let t = text(&out);
    assert_eq!(
        line_fields(&t, "Local Volumes"),
        line_fields(&m.system_df_cli, "Local Volumes"),
        "dockgc:\n{t}\ndocker system df:\n{}",
        m.system_df_cli
    );
    // `df -v`: every volume's LINKS and SIZE as `docker system df -v` prints them.
    let out = dockgc_in(&m.root, &["df", "-v"]);
    let mine = text(&out);
    let section = |t: &str| -> BTreeMap<String, Vec<String>> {
        t.split("Local Volumes space usage:")
            .nth(1)
            .unwrap()
            .split("\n\n")
            .nth(1)
            .unwrap()
            .lines()
            .skip(1)
            .map(|l| {
                let f: Vec<String> = l.split_whitespace().map(str::to_string).collect();
                (f[0].clone(), f[1..3].to_vec())
            })
            .collect()
    };
    assert_eq!(section(&mine), section(&m.system_df_cli_v));
}

#[test]
fn metadata_db_has_branch_and_overflow_pages() {
    let m = modern_or_skip!();
    let db = bbolt::Db::open(m.root.join("volumes/metadata.db")).expect("metadata.db");
    let st = db.stats();
    assert!(st.branch_pages > 0, "{st:?}");
    assert!(st.overflow_pages > 0, "{st:?}");
}

/// What the log drivers wrote in a container's directory, found here by
/// their own names: (apparent bytes, allocated bytes, files).
fn log_files(dir: &Path, id: &str) -> (u64, u64, Vec<String>) {
    let mut out = (0, 0, Vec::new());
    let add = |out: &mut (u64, u64, Vec<String>), p: &Path| {
        let md = fs::symlink_metadata(p).unwrap();
        if md.is_file() {
            out.0 += md.len();
            out.1 += md.blocks() * 512;
            out.2
                .push(p.file_name().unwrap().to_string_lossy().into_owned());
        }
    };
    for e in fs::read_dir(dir).unwrap().flatten() {
        let n = e.file_name().to_string_lossy().into_owned();
        if n.starts_with(&format!("{id}-json.log")) || n.starts_with("container-cached.log") {
            add(&mut out, &e.path());
        } else if n == "local-logs" {
            // The directory's own blocks are the logs' too.
            out.1 += fs::symlink_metadata(e.path()).unwrap().blocks() * 512;
            for f in fs::read_dir(e.path()).unwrap().flatten() {
                add(&mut out, &f.path());
            }
        }
    }
    out
}

fn du(root: &Path) -> u64 {
    let out = Command::new("du")
        .args(["-s", "-B1"])
        .arg(root)
        .output()
        .expect("du");
    assert!(out.status.success());
    String::from_utf8_lossy(&out.stdout)
        .split_whitespace()
        .next()
        .unwrap()
        .parse()
        .unwrap()
}

#[test]
fn logs_of_every_driver_count_in_the_row_and_on_disk() {
    let m = modern_or_skip!();
    let j = df_json(&m.root, &["--disk"]);
    let mine: BTreeMap<&str, &Value> = j["containers"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| (c["id"].as_str().unwrap(), c))
        .collect();
    let mut apparent = 0;
    let mut allocated = 0;
    let mut per_name = BTreeMap::new();
    for (name, id) in &m.containers {
        let (a, b, files) = log_files(&m.root.join("containers").join(id), id);
        assert_eq!(mine[id.as_str()]["log_bytes"], a, "{name}: {files:?}");
        apparent += a;
        allocated += b;
        per_name.insert(name.as_str(), (a, files));
    }
    // Each driver as the scenario set it up.
    let files = |n: &str| per_name[n].1.join(" ");
    assert!(
        per_name["log-json"].0 > 0 && files("log-json").contains(".gz"),
        "{}",
        files("log-json")
    );
    assert!(
        per_name["log-local"].0 > 90_000,
        "{:?}",
        per_name["log-local"]
    );
    assert!(
        files("log-local-rot").contains("container.log.1.gz"),
        "{}",
        files("log-local-rot")
    );
    assert!(
        files("log-syslog").contains("container-cached.log"),
        "{}",
        files("log-syslog")
    );
    assert_eq!(per_name["log-none"].0, 0, "{}", files("log-none"));

    let logs = row(&j, "logs");
    assert_eq!(logs["size"], apparent);
    assert_eq!(
        logs["total"],
        per_name.values().filter(|(a, _)| *a > 0).count() as u64
    );
    let cats: BTreeMap<&str, u64> = j["disk"]["categories"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| (c["name"].as_str().unwrap(), c["bytes"].as_u64().unwrap()))
        .collect();
    assert_eq!(cats["logs"], allocated, "{cats:?}");
    let total = du(&m.root);
    assert_eq!(j["disk"]["total_bytes"], total);
    assert_eq!(cats.values().sum::<u64>(), total, "{cats:?}");
}

/// A way to damage a file's bytes.
type Damage = Box<dyn Fn(&mut Vec<u8>)>;

/// A copy of the modern root whose `metadata.db` `damage` changed.
fn damaged(m: &Modern, damage: impl Fn(&mut Vec<u8>)) -> tempfile::TempDir {
    let copy = copy_root(&m.root);
    let db = copy.path().join("volumes/metadata.db");
    let mut bytes = fs::read(&db).unwrap();
    damage(&mut bytes);
    fs::write(&db, bytes).unwrap();
    copy
}

#[test]
fn damaged_metadata_db_is_an_anomaly_naming_the_file_and_df_still_runs() {
    let m = modern_or_skip!();
    let good = fs::read(m.root.join("volumes/metadata.db")).unwrap();
    let meta = bbolt::Db::from_bytes(good.clone(), "metadata.db")
        .unwrap()
        .meta();
    let page = meta.root * u64::from(meta.page_size);
    let cases: Vec<(&str, Damage, &str)> = vec![
        (
            "truncated",
            Box::new(|b: &mut Vec<u8>| b.truncate(100)),
            "bytes",
        ),
        (
            "zeroed metas",
            Box::new(|b: &mut Vec<u8>| b[..8192].fill(0)),
            "meta page 0",
        ),
        (
            "damaged root page",
            Box::new(move |b: &mut Vec<u8>| {
                let p = page as usize;
                b[p + 8..p + 10].copy_from_slice(&0x7777u16.to_le_bytes());
            }),
            "page ",
        ),
    ];
    let want: BTreeSet<String> = daemon_volumes(&m.system_df).keys().cloned().collect();
    for (what, damage, says) in &cases {
        let copy = damaged(m, damage);
        let db = copy.path().join("volumes/metadata.db");
        let j = df_json(copy.path(), &[]);
        let anomalies: Vec<&Value> = j["anomalies"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|a| a["kind"] == "volumes")
            .collect();
        assert_eq!(anomalies.len(), 1, "{what}: {j:#}");
        assert_eq!(anomalies[0]["path"], db.to_str().unwrap(), "{what}");
        let msg = anomalies[0]["message"].as_str().unwrap();
        assert!(msg.contains(says), "{what}: {msg}");
        // The volumes are still there, from their directories (tmpvol's
        // options from its opts.json), labels unknown.
        let got: BTreeSet<String> = dockgc_volumes(&j).keys().cloned().collect();
        assert_eq!(got, want, "{what}");
        assert!(dockgc_volumes(&j).values().all(|v| v["labels"].is_null()));
        // The table says there is a problem; verify names the file.
        let out = dockgc_in(copy.path(), &["df"]);
        assert_eq!(out.status.code(), Some(0), "{what}");
        assert!(text(&out).contains("problem(s) found"), "{what}");
        let out = dockgc_in(copy.path(), &["verify", "--format", "json"]);
        let v: Value = serde_json::from_slice(&out.stdout).unwrap();
        assert!(
            v["findings"]
                .as_array()
                .unwrap()
                .iter()
                .any(|f| f["path"] == db.to_str().unwrap()),
            "{what}: {v:#}"
        );
    }
}

#[test]
fn prune_never_touches_volumes() {
    let m = modern_or_skip!();
    let copy = copy_root(&m.root);
    let vols = copy.path().join("volumes");
    let before = tree_hash(&vols);
    let out = dockgc_in(
        copy.path(),
        &["prune", "-a", "--orphans", "--grace", "0s", "--yes"],
    );
    assert!(
        matches!(out.status.code(), Some(0 | 1)),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(tree_hash(&vols), before, "prune changed volumes/");
    // Still the daemon's volumes, with their links.
    assert_volumes_match(&df_json(copy.path(), &[]), &m.system_df);
}

#[test]
fn volume_metrics_pass_promtool_and_equal_the_row() {
    let m = modern_or_skip!();
    let out = dockgc_in(&m.root, &["df", "--format", "prometheus"]);
    assert_eq!(out.status.code(), Some(0));
    let t = text(&out);
    let j = df_json(&m.root, &[]);
    let r = row(&j, "volumes");
    let sample = |name: &str| -> f64 {
        t.lines()
            .find_map(|l| l.strip_prefix(name).map(|v| v.trim().parse().unwrap()))
            .unwrap_or_else(|| panic!("no {name} in:\n{t}"))
    };
    assert_eq!(
        sample("dockgc_objects{type=\"volumes\",store=\"graphdriver\"}"),
        r["total"].as_f64().unwrap()
    );
    assert_eq!(
        sample("dockgc_active_objects{type=\"volumes\",store=\"graphdriver\"}"),
        r["active"].as_f64().unwrap()
    );
    assert_eq!(
        sample("dockgc_size_bytes{type=\"volumes\",store=\"graphdriver\"}"),
        r["size"].as_f64().unwrap()
    );
    assert_eq!(
        sample("dockgc_reclaimable_bytes{type=\"volumes\",store=\"graphdriver\"}"),
        r["reclaimable"].as_f64().unwrap()
    );
    assert_eq!(
        sample("dockgc_volumes{kind=\"anonymous\",store=\"graphdriver\"}"),
        2.0
    );
    assert_eq!(
        sample("dockgc_volumes{kind=\"anonymous\",store=\"graphdriver\"}")
            + sample("dockgc_volumes{kind=\"named\",store=\"graphdriver\"}"),
        r["total"].as_f64().unwrap()
    );
    assert_eq!(
        sample("dockgc_volume_bytes{kind=\"anonymous\",store=\"graphdriver\"}")
            + sample("dockgc_volume_bytes{kind=\"named\",store=\"graphdriver\"}"),
        r["size"].as_f64().unwrap()
    );
    assert_eq!(
        sample("dockgc_volume_unused_bytes{kind=\"anonymous\",store=\"graphdriver\"}")
            + sample("dockgc_volume_unused_bytes{kind=\"named\",store=\"graphdriver\"}"),
        r["reclaimable"].as_f64().unwrap()
    );
    let promtool = Command::new("promtool").arg("--version").output();
    if promtool.is_err() {
        assert!(
            !docker_required(),
            "promtool is missing (Debian's prometheus package)"
        );
        eprintln!("SKIPPED: promtool lint (promtool not installed)");
        return;
    }
    let mut child = Command::new("promtool")
        .args(["check", "metrics"])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    use std::io::Write;
    child.stdin.take().unwrap().write_all(t.as_bytes()).unwrap();
    let res = child.wait_with_output().unwrap();
    let said = format!(
        "{}{}",
        String::from_utf8_lossy(&res.stdout),
        String::from_utf8_lossy(&res.stderr)
    );
    assert!(
        res.status.success() && said.trim().is_empty(),
        "promtool: {said}\n{t}"
    );
}

#[test]
fn a_volume_without_data_dir_is_sized_as_the_daemon_does() {
    let m = modern_or_skip!();
    let copy = copy_root(&m.root);
    fs::remove_dir_all(copy.path().join("volumes/dangling1/_data")).unwrap();
    fs::remove_dir_all(copy.path().join("volumes/links/_data")).unwrap();
    let j = df_json(copy.path(), &[]);
    let mine = dockgc_volumes(&j);
    assert!(
        mine["dangling1"]["size"].is_null(),
        "{:#}",
        mine["dangling1"]
    );
    // The daemon, restarted on the copy, reports -1 for them and the row
    // leaves them out.
    let Some(d) = Daemon::start(copy.path()) else {
        return;
    };
    let system_df = d.settled_df();
    d.stop();
    let theirs = daemon_volumes(&system_df);
    assert_eq!(theirs["dangling1"]["UsageData"]["Size"], -1);
    assert_eq!(theirs["links"]["UsageData"]["Size"], -1);
    assert_volumes_match(&j, &system_df);
    let out = dockgc_in(copy.path(), &["df", "-v"]);
    let t = text(&out);
    let line = t.lines().find(|l| l.starts_with("links ")).unwrap();
    assert!(line.contains("N/A"), "{line}");
}
