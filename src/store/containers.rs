//! `containers/<id>/config.v2.json` and the files its log driver wrote
//! (moby `daemon/container/container.go`, `daemon/logger`).

use super::fsread::{
    EntryFiles, Listing, SharedListings, list_dir_opt_shared, open_listed_claiming,
};
use super::paths::{DockerRoot, is_container_log, is_log_dir};
use super::{Anomaly, AnomalyKind, Container, ContainerState};
use crate::ids::{ContainerId, ImageId};
use rayon::prelude::*;
use serde::Deserialize;
use std::collections::{BTreeMap, HashMap};
use std::fs;
use std::path::{Path, PathBuf};

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
struct RawContainer {
    #[serde(rename = "ID")]
    id: Option<String>,
    name: Option<String>,
    image: Option<String>,
    config: Option<RawConfig>,
    driver: Option<String>,
    created: Option<String>,
    state: Option<RawState>,
    mount_points: Option<HashMap<String, RawMountPoint>>,
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
struct RawConfig {
    image: Option<String>,
    labels: Option<BTreeMap<String, String>>,
}

#[derive(Deserialize, Default)]
#[serde(rename_all = "PascalCase")]
struct RawState {
    #[serde(default)]
    running: bool,
    #[serde(default)]
    paused: bool,
    #[serde(default)]
    restarting: bool,
    #[serde(default)]
    dead: bool,
    #[serde(default)]
    pid: i64,
    #[serde(default)]
    exit_code: i64,
    started_at: Option<String>,
    finished_at: Option<String>,
}

#[derive(Deserialize)]
struct RawMountPoint {
    #[serde(rename = "Type")]
    kind: Option<String>,
    #[serde(rename = "Name")]
    name: Option<String>,
    #[serde(rename = "Driver")]
    driver: Option<String>,
    #[serde(rename = "ID")]
    id: Option<String>,
    #[serde(rename = "Spec")]
    spec: Option<RawSpec>,
}

#[derive(Deserialize)]
struct RawSpec {
    #[serde(rename = "Source")]
    source: Option<String>,
}

/// The container's config, in its directory (moby `container.go` `ConfigPath`).
const CONFIG_FILE: &str = "config.v2.json";

/// Go's zero `time.Time`, which the daemon writes for "never".
const ZERO_TIME: &str = "0001-01-01T00:00:00Z";

/// Containers, the anomalies met, and the container dirs that did not load.
pub fn read(
    root: &DockerRoot,
    share: Option<&SharedListings>,
) -> (BTreeMap<ContainerId, Container>, Vec<Anomaly>, Vec<PathBuf>) {
    let containers_dir = root.containers();
    // Each container's directory is listed for its logs: claimed too.
    let below = |l: &Listing| {
        l.names
            .iter()
            .zip(&l.is_dir)
            .filter(|(_, d)| **d)
            .map(|(n, _)| containers_dir.join(n))
            .collect()
    };
    let results = match open_listed_claiming(&containers_dir, share, below) {
        Ok((listing, dir)) => Ok(listing
            .names
            .par_iter()
            .map(|n| {
                let files = dir.entry(n);
                let c = read_one(&files, n, || log_bytes(&files.path(), share));
                // Not a container, or one whose config does not load: its
                // directory was not listed for logs.
                if let Some(s) = share {
                    s.give_up(&files.path());
                }
                (n.clone(), c)
            })
            .collect()),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(Vec::new()),
        Err(e) => Err(e.to_string()),
    };
    assemble(root, results)
}

/// What was read of `containers/`: each entry's container (by name, in
/// order), or why it could not be listed.
pub type Read = Result<Vec<(String, Result<Option<Container>, Anomaly>)>, String>;

/// The containers, anomalies and unresolved dirs of what was read.
pub fn assemble(
    root: &DockerRoot,
    results: Read,
) -> (BTreeMap<ContainerId, Container>, Vec<Anomaly>, Vec<PathBuf>) {
    let containers_dir = root.containers();
    let mut anomalies = Vec::new();
    let mut unresolved = Vec::new();
    let results = results.unwrap_or_else(|e| {
        anomalies.push(Anomaly {
            kind: AnomalyKind::Unreadable,
            path: containers_dir.clone(),
            message: format!("cannot list containers: {e}"),
        });
        unresolved.push(containers_dir.clone());
        Vec::new()
    });
    let mut out = BTreeMap::new();
    for (name, r) in results {
        match r {
            Ok(Some(c)) => {
                out.insert(c.id.clone(), c);
            }
            Ok(None) => {}
            Err(a) => {
                unresolved.push(containers_dir.join(name));
                anomalies.push(a);
            }
        }
    }
    (out, anomalies, unresolved)
}

thread_local! {
    /// `config.v2.json` is read into this buffer and parsed from it.
    static CONFIG: std::cell::RefCell<Vec<u8>> = const { std::cell::RefCell::new(Vec::new()) };
}

/// The container of entry `name` of `containers/` (`files` reads inside
/// it), `None` for a name that is no container ID; `log_bytes` measures
/// its logs once it loads.
pub fn read_one(
    files: &EntryFiles<'_>,
    name: &str,
    log_bytes: impl FnOnce() -> u64,
) -> Result<Option<Container>, Anomaly> {
    CONFIG.with(|b| match b.try_borrow_mut() {
        Ok(mut buf) => parse_one(files, name, log_bytes, &mut buf),
        Err(_) => parse_one(files, name, log_bytes, &mut Vec::new()),
    })
}

fn parse_one(
    files: &EntryFiles<'_>,
    name: &str,
    log_bytes: impl FnOnce() -> u64,
    bytes: &mut Vec<u8>,
) -> Result<Option<Container>, Anomaly> {
    let Some(id) = ContainerId::parse(name) else {
        return Ok(None); // not a container directory; the daemon skips it too
    };
    let bad = |message: String| Anomaly {
        kind: AnomalyKind::Container,
        path: files.file(CONFIG_FILE),
        message,
    };
    match files.read(CONFIG_FILE, bytes) {
        Ok(true) => {}
        Ok(false) => return Err(bad("missing; the daemon cannot load this container".into())),
        Err(e) => return Err(bad(format!("cannot read: {e}"))),
    }
    let mut raw: RawContainer =
        serde_json::from_slice(bytes).map_err(|e| bad(format!("invalid JSON: {e}")))?;
    if raw.id.as_deref() != Some(name) {
        return Err(bad(format!(
            "ID {:?} does not match the directory name; the daemon cannot load this container",
            raw.id.unwrap_or_default()
        )));
    }
    let image = match raw.image.as_deref() {
        None | Some("") => None,
        Some(s) => Some(ImageId::parse(s).map_err(|e| bad(format!("Image: {e}")))?),
    };
    let st = raw.state.unwrap_or_default();
    let started_at = st.started_at.filter(|s| s != ZERO_TIME);
    let finished_at = st.finished_at.filter(|s| s != ZERO_TIME);
    let state = ContainerState {
        running: st.running,
        paused: st.paused,
        restarting: st.restarting,
        dead: st.dead,
        pid: st.pid,
        exit_code: st.exit_code,
        pid_alive: st.pid > 0 && Path::new(&format!("/proc/{}", st.pid)).exists(),
        has_started: started_at.is_some(),
    };
    let mount_points: Vec<RawMountPoint> =
        raw.mount_points.unwrap_or_default().into_values().collect();
    // A mount point with a driver holds a reference on the volume of its
    // name; bind mounts have none (moby `daemon/mounts.go`
    // `prepareMountPoints`, `daemon/volumes.go` `lazyInitializeVolume`).
    let mut volumes: Vec<String> = mount_points
        .iter()
        .filter(|m| m.driver.as_deref().is_some_and(|d| !d.is_empty()))
        .filter_map(|m| m.name.clone().filter(|n| !n.is_empty()))
        .collect();
    volumes.sort();
    volumes.dedup();
    let mut image_mounts: Vec<(ImageId, String)> = mount_points
        .into_iter()
        .filter(|m| m.kind.as_deref() == Some("image"))
        .filter_map(|m| {
            let src = m.spec.and_then(|s| s.source)?;
            Some((ImageId::parse(&src).ok()?, m.id.unwrap_or_default()))
        })
        .collect();
    image_mounts.sort();
    Ok(Some(Container {
        log_bytes: log_bytes(),
        volumes,
        id,
        name: raw
            .name
            .map(|n| n.trim_start_matches('/').to_string())
            .unwrap_or_default(),
        image,
        labels: raw
            .config
            .as_mut()
            .and_then(|c| c.labels.take())
            .unwrap_or_default(),
        config_image: raw.config.and_then(|c| c.image),
        driver: raw.driver,
        state,
        created: raw.created,
        started_at,
        finished_at,
        image_mounts,
    }))
}

/// Apparent bytes of the log files in a container's directory
/// ([`is_container_log`]), those inside `local-logs/` included, listed
/// through `share` (a concurrent `df --disk` walk takes the listings).
fn log_bytes(dir: &Path, share: Option<&SharedListings>) -> u64 {
    let size = |p: &Path| fs::symlink_metadata(p).ok();
    let files = |d: &Path| -> u64 {
        let Ok(l) = list_dir_opt_shared(d, share) else {
            return 0;
        };
        (l.names.iter())
            .filter_map(|n| size(&d.join(n)))
            .filter(|m| m.is_file())
            .map(|m| m.len())
            .sum()
    };
    // The log driver's directory is listed next: claimed with this one.
    let below = |l: &Listing| {
        (l.names.iter().zip(&l.is_dir))
            .filter(|(n, d)| **d && is_log_dir(n.as_ref()))
            .map(|(n, _)| dir.join(n))
            .collect()
    };
    let Ok((l, _)) = open_listed_claiming(dir, share, below) else {
        return 0;
    };
    (l.names.iter())
        .filter(|n| is_container_log(n.as_ref()))
        .map(|n| match size(&dir.join(n)) {
            Some(m) if m.is_file() => m.len(),
            Some(m) if m.is_dir() && is_log_dir(n.as_ref()) => files(&dir.join(n)),
            _ => 0,
        })
        .sum()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_state_image_mounts_and_logs() {
        let t = tempfile::tempdir().unwrap();
        let id = "c".repeat(64);
        let img = format!("sha256:{}", "a".repeat(64));
        let dir = t.path().join("r/containers").join(&id);
        fs::create_dir_all(&dir).unwrap();
        fs::write(
            dir.join("config.v2.json"),
            format!(
                r#"{{"ID":"{id}","Name":"/web","Image":"{img}","Config":{{"Image":"web:1"}},"Driver":"overlay2",
                "State":{{"Running":false,"Pid":0,"ExitCode":3,"StartedAt":"2024-01-01T00:00:00Z","FinishedAt":"2024-01-02T00:00:00Z"}},
                "MountPoints":{{"/data":{{"Type":"image","ID":"{m}","Spec":{{"Source":"{img}"}}}},"/v":{{"Type":"volume"}},
                  "/a":{{"Type":"volume","Name":"vol1","Driver":"local"}},"/b":{{"Type":"volume","Name":"vol1","Driver":"local"}},
                  "/bind":{{"Type":"bind","Source":"/srv","Name":"","Driver":""}}}}}}
"#,
                m = "e".repeat(64)
            ),
        )
        .unwrap();
        fs::write(dir.join(format!("{id}-json.log")), "x".repeat(100)).unwrap();
        fs::write(dir.join(format!("{id}-json.log.1")), "x".repeat(20)).unwrap();
        fs::write(dir.join(format!("{id}-json.log.2.gz")), "x".repeat(3)).unwrap();
        fs::create_dir(dir.join("local-logs")).unwrap();
        fs::write(dir.join("local-logs/container.log"), "x".repeat(1000)).unwrap();
        fs::write(dir.join("local-logs/container.log.1.gz"), "x".repeat(7)).unwrap();
        fs::write(dir.join("container-cached.log"), "x".repeat(50)).unwrap();
        fs::write(dir.join("hostconfig.json"), "{}").unwrap();
        fs::create_dir_all(t.path().join("r/containers/not-a-container")).unwrap();

        let (cs, a, _) = read(&DockerRoot::new(&t.path().join("r")), None);
        assert!(a.is_empty(), "{a:?}");
        let c = cs.values().next().unwrap();
        assert_eq!(c.name, "web");
        assert_eq!(c.state.word(), "exited");
        assert_eq!(c.state.exit_code, 3);
        assert!(!c.state.is_active());
        assert_eq!(c.log_bytes, 100 + 20 + 3 + 1000 + 7 + 50);
        assert_eq!(c.volumes, vec!["vol1".to_string()]);
        assert_eq!(c.image_mounts.len(), 1);
        assert_eq!(c.config_image.as_deref(), Some("web:1"));
    }

    #[test]
    fn never_started_is_created_and_bad_json_is_an_anomaly() {
        let t = tempfile::tempdir().unwrap();
        let id = "d".repeat(64);
        let dir = t.path().join("r/containers").join(&id);
        fs::create_dir_all(&dir).unwrap();
        fs::write(
            dir.join("config.v2.json"),
            format!(r#"{{"ID":"{id}","State":{{"StartedAt":"0001-01-01T00:00:00Z"}}}}"#),
        )
        .unwrap();
        let (cs, _, _) = read(&DockerRoot::new(&t.path().join("r")), None);
        assert_eq!(cs.values().next().unwrap().state.word(), "created");

        fs::write(dir.join("config.v2.json"), "{\"ID\":").unwrap();
        let (cs, a, _) = read(&DockerRoot::new(&t.path().join("r")), None);
        assert!(cs.is_empty());
        assert_eq!(a[0].path, dir.join("config.v2.json"));
    }
}
