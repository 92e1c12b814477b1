//! Which layout a root has. Layouts dockgc does not handle are named, not guessed at.

use super::StoreError;
use super::daemon::ConfiguredDriver as Configured;
use super::paths::DockerRoot;
use std::fs;
use std::path::{Path, PathBuf};

/// The drivers whose prior state the daemon looks for when none is
/// configured, in its priority order (moby `daemon/graphdriver/driver.go`
/// `New` and `scanPriorDrivers`, priorities in `driver_linux.go`). `vfs` is
/// never chosen from its state ("don't use vfs even if there is state
/// present").
const SCANNED: &[&str] = &["overlay2", "fuse-overlayfs", "btrfs", "zfs"];

/// Drivers the scan skips: `vfs`, and drivers current engines no longer
/// have (`aufs`, `overlay`, `devicemapper`). Their state alone means a daemon
/// configured for them wrote the root.
const NOT_SCANNED: &[&str] = &["vfs", "aufs", "overlay", "devicemapper"];

/// The layout `detect` established.
pub struct Layout {
    pub driver: String,
    pub engine_id_present: bool,
}

/// What the daemon's driver choice looks at in a root.
#[derive(Debug, Default)]
struct Evidence {
    /// `image/<d>/` directories, sorted.
    image_dirs: Vec<String>,
    /// Drivers whose home `<root>/<d>` holds state.
    with_state: Vec<String>,
    /// Traces of the containerd image store.
    containerd_traces: bool,
}

/// The decision, before it becomes a [`Layout`] or a [`StoreError`].
#[derive(Debug, PartialEq, Eq)]
enum Choice {
    /// Read with this driver; `why` says how it was chosen.
    Driver {
        name: String,
        why: String,
    },
    /// Several scanned drivers have state and none is configured.
    Ambiguous(Vec<String>),
    /// Only a driver the scan skips has state.
    OnlyUnscanned(String),
    Containerd,
}

/// The daemon's driver choice (moby `daemon/daemon.go` `NewDaemon`,
/// `daemon/graphdriver/driver.go` `New`): a configured driver wins; else the
/// one scanned driver with prior state; several refuse the start; with none,
/// a fresh store of the first driver that works (overlay2 on the hosts
/// dockgc is for).
fn decide(configured: Option<&Configured>, ev: &Evidence) -> Choice {
    if let Some(c) = configured {
        return Choice::Driver {
            name: c.name.clone(),
            why: format!("configured: {}", c.source),
        };
    }
    let has = |d: &str| ev.with_state.iter().any(|s| s == d);
    let prior: Vec<&str> = SCANNED.iter().copied().filter(|d| has(d)).collect();
    match prior.as_slice() {
        [one] => {
            return Choice::Driver {
                name: one.to_string(),
                why: "the driver with prior state".into(),
            };
        }
        [] => {}
        many => return Choice::Ambiguous(many.iter().map(|d| d.to_string()).collect()),
    }
    // Engine 29 stays on the graphdriver only with prior state of a scanned
    // driver (`daemon/image_store_choice.go`), vfs state not included.
    if ev.containerd_traces {
        return Choice::Containerd;
    }
    if let Some(d) = NOT_SCANNED.iter().find(|d| has(d)) {
        return Choice::OnlyUnscanned(d.to_string());
    }
    // A fresh root whose daemon never created a layer: image/<d>/ alone.
    let known = SCANNED.iter().chain(NOT_SCANNED);
    let name = known
        .filter(|d| ev.image_dirs.iter().any(|i| i == *d))
        .map(|d| d.to_string())
        .next()
        .or_else(|| ev.image_dirs.first().cloned())
        .unwrap_or_else(|| "overlay2".into());
    Choice::Driver {
        name,
        why: "a fresh store".into(),
    }
}

/// Which store and driver `root` has. `configured` is the driver the user
/// or the daemon's configuration names (see [`super::daemon::configured_driver`]).
pub fn detect(root: &Path, configured: Option<&Configured>) -> Result<Layout, StoreError> {
    let meta = fs::metadata(root).map_err(|cause| StoreError::Unreadable {
        path: root.to_path_buf(),
        cause,
    })?;
    if !meta.is_dir() {
        return Err(StoreError::Unreadable {
            path: root.to_path_buf(),
            cause: std::io::Error::other("not a directory"),
        });
    }
    fs::read_dir(root).map_err(|cause| StoreError::Unreadable {
        path: root.to_path_buf(),
        cause,
    })?;
    if is_rootless_default(root) {
        return Err(StoreError::Rootless {
            path: root.to_path_buf(),
        });
    }

    let docker = DockerRoot::new(root);
    let image_dir = docker.image_root();
    let mut image_dirs: Vec<String> = match fs::read_dir(&image_dir) {
        Ok(rd) => rd
            .filter_map(|e| e.ok())
            .filter(|e| e.file_type().map(|t| t.is_dir()).unwrap_or(false))
            .filter_map(|e| e.file_name().into_string().ok())
            .collect(),
        Err(_) => Vec::new(),
    };
    image_dirs.sort();

    // containerd-store roots keep no image/<driver>/ but have these traces (moby
    // `daemon/image_store_choice.go`, `daemon/snapshotter/mount.go`).
    let containerd_traces =
        image_dir.join("identity-cache.db").exists() || docker.containerd_rootfs().exists();

    if image_dirs.is_empty() {
        if containerd_traces {
            return Err(StoreError::ContainerdStore {
                path: root.to_path_buf(),
            });
        }
        if let Some(remapped) = userns_child(root) {
            return Err(StoreError::UsernsParent {
                path: root.to_path_buf(),
                remapped,
            });
        }
        return Err(StoreError::NotDockerRoot {
            path: root.to_path_buf(),
        });
    }

    let with_state = SCANNED
        .iter()
        .chain(NOT_SCANNED)
        .filter(|d| has_state(&root.join(d)))
        .map(|d| d.to_string())
        .collect();
    let ev = Evidence {
        image_dirs,
        with_state,
        containerd_traces,
    };
    let path = root.to_path_buf();
    match decide(configured, &ev) {
        Choice::Driver { name, .. } if name == "overlay2" => Ok(Layout {
            driver: name,
            engine_id_present: docker.engine_id().exists(),
        }),
        Choice::Driver { name, why } => {
            let known = SCANNED.contains(&name.as_str()) || NOT_SCANNED.contains(&name.as_str());
            Err(StoreError::UnsupportedDriver {
                path,
                driver: if known {
                    name
                } else {
                    format!("{name} (unknown)")
                },
                why,
            })
        }
        Choice::OnlyUnscanned(name) => Err(StoreError::UnsupportedDriver {
            path,
            why: format!(
                "the only driver with state here; a daemon uses it only when configured to \
                 (dockerd -s {name}), and without that starts an empty overlay2 store, \
                 which --driver overlay2 reads"
            ),
            driver: name,
        }),
        Choice::Ambiguous(drivers) => Err(StoreError::AmbiguousDriver {
            path,
            drivers: drivers.join(", "),
        }),
        Choice::Containerd => Err(StoreError::ContainerdStore { path }),
    }
}

/// Which store a root is.
pub enum Store {
    /// A graphdriver root ([`detect`] says which driver).
    Graphdriver,
    /// A containerd store: a Docker root in containerd mode (`docker_root`),
    /// or a containerd root itself (`None`).
    Containerd { docker_root: Option<PathBuf> },
}

/// [`detect`], with a containerd store returned instead of refused.
pub fn detect_store(root: &Path, configured: Option<&Configured>) -> Result<Store, StoreError> {
    if super::containerd::paths::is_containerd_root(root) {
        return Ok(Store::Containerd { docker_root: None });
    }
    match detect(root, configured) {
        Err(StoreError::ContainerdStore { path }) => Ok(Store::Containerd {
            docker_root: Some(path),
        }),
        other => other.map(|_| Store::Graphdriver),
    }
}

/// Prior state as the daemon sees it (`driver.go` `scanPriorDrivers` and
/// `isEmptyDir`): the entry exists and is not a readable empty directory.
fn has_state(p: &Path) -> bool {
    if fs::metadata(p).is_err() {
        return false;
    }
    !fs::read_dir(p).is_ok_and(|mut rd| rd.next().is_none())
}

/// `--userns-remap` roots live in `<root>/<uid>.<gid>` (`setupRemappedRoot`).
fn userns_child(root: &Path) -> Option<PathBuf> {
    let rd = fs::read_dir(root).ok()?;
    rd.filter_map(|e| e.ok())
        .filter(|e| {
            let n = e.file_name();
            let n = n.to_string_lossy();
            let mut parts = n.split('.');
            matches!((parts.next(), parts.next(), parts.next()),
                (Some(a), Some(b), None) if !a.is_empty() && !b.is_empty()
                    && a.bytes().all(|c| c.is_ascii_digit()) && b.bytes().all(|c| c.is_ascii_digit()))
        })
        .map(|e| e.path())
        .find(|p| DockerRoot::new(p).image_root().is_dir())
}

fn is_rootless_default(root: &Path) -> bool {
    let s = root.to_string_lossy();
    s.trim_end_matches('/').ends_with(".local/share/docker")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn detect(p: &Path) -> Result<Layout, StoreError> {
        super::detect(p, None)
    }

    fn ev(image_dirs: &[&str], with_state: &[&str]) -> Evidence {
        Evidence {
            image_dirs: image_dirs.iter().map(|s| s.to_string()).collect(),
            with_state: with_state.iter().map(|s| s.to_string()).collect(),
            containerd_traces: false,
        }
    }

    fn conf(name: &str) -> Configured {
        Configured {
            name: name.into(),
            source: "--driver".into(),
        }
    }

    fn driver(c: Choice) -> String {
        match c {
            Choice::Driver { name, .. } => name,
            other => panic!("{other:?}"),
        }
    }

    /// The daemon's choice, row by row (`daemon/graphdriver/driver.go` `New`).
    #[test]
    fn decision_table() {
        // A plain daemon after `dockerd -s vfs`: vfs state is skipped.
        let vfs_then_plain = ev(&["overlay2", "vfs"], &["overlay2", "vfs"]);
        assert_eq!(driver(decide(None, &vfs_then_plain)), "overlay2");
        // Prior state decides even without image/<d>/.
        assert_eq!(
            driver(decide(None, &ev(&["vfs"], &["overlay2", "vfs"]))),
            "overlay2"
        );
        // Two scanned drivers with state: the daemon refuses to start.
        assert_eq!(
            decide(None, &ev(&["overlay2"], &["overlay2", "fuse-overlayfs"])),
            Choice::Ambiguous(vec!["overlay2".into(), "fuse-overlayfs".into()])
        );
        assert_eq!(
            decide(None, &ev(&["overlay2", "btrfs"], &["btrfs", "zfs", "vfs"])),
            Choice::Ambiguous(vec!["btrfs".into(), "zfs".into()])
        );
        // ... unless a driver is configured, which wins over any state.
        let both = ev(&["overlay2"], &["overlay2", "fuse-overlayfs"]);
        assert_eq!(driver(decide(Some(&conf("overlay2")), &both)), "overlay2");
        assert_eq!(driver(decide(Some(&conf("vfs")), &vfs_then_plain)), "vfs");
        assert_eq!(
            driver(decide(Some(&conf("overlay2")), &ev(&["vfs"], &["vfs"]))),
            "overlay2"
        );
        // One other scanned driver: that one (refused later as unsupported).
        assert_eq!(
            driver(decide(None, &ev(&["btrfs"], &["btrfs", "vfs"]))),
            "btrfs"
        );
        // Only vfs (or a driver current engines lack) has state.
        assert_eq!(
            decide(None, &ev(&["vfs"], &["vfs"])),
            Choice::OnlyUnscanned("vfs".into())
        );
        assert_eq!(
            decide(None, &ev(&["aufs"], &["aufs"])),
            Choice::OnlyUnscanned("aufs".into())
        );
        // Legacy state beside overlay2's does not stop today's daemons.
        assert_eq!(
            driver(decide(
                None,
                &ev(&["overlay2", "aufs"], &["overlay2", "aufs"])
            )),
            "overlay2"
        );
        // No state anywhere: a fresh store, overlay2 when its image dir is there.
        assert_eq!(
            driver(decide(None, &ev(&["overlay2", "vfs"], &[]))),
            "overlay2"
        );
        assert_eq!(driver(decide(None, &ev(&["btrfs"], &[]))), "btrfs");
        assert_eq!(driver(decide(None, &ev(&["weird"], &[]))), "weird");
        // The containerd store, when nothing of a graphdriver has state.
        let mut cd = ev(&["overlay2"], &[]);
        cd.containerd_traces = true;
        assert_eq!(decide(None, &cd), Choice::Containerd);
        cd.with_state.push("vfs".into());
        assert_eq!(
            decide(None, &cd),
            Choice::Containerd,
            "vfs state does not count"
        );
        cd.with_state.push("overlay2".into());
        assert_eq!(driver(decide(None, &cd)), "overlay2");
    }

    #[test]
    fn empty_dir_is_not_a_docker_root() {
        let t = tempfile::tempdir().unwrap();
        let e = detect(t.path()).err().unwrap();
        assert!(matches!(e, StoreError::NotDockerRoot { .. }));
        assert!(e.to_string().contains(&t.path().display().to_string()));
    }

    #[test]
    fn missing_root_is_unreadable() {
        let e = detect(Path::new("/nonexistent/dockgc-root")).err().unwrap();
        assert!(matches!(e, StoreError::Unreadable { .. }));
    }

    #[test]
    fn state_is_a_non_empty_or_unreadable_entry() {
        let t = tempfile::tempdir().unwrap();
        let p = t.path();
        assert!(!has_state(&p.join("missing")));
        fs::create_dir(p.join("empty")).unwrap();
        assert!(!has_state(&p.join("empty")));
        fs::create_dir_all(p.join("full/l")).unwrap();
        assert!(has_state(&p.join("full")));
        // A file where the home belongs cannot be listed: state, as for the daemon.
        fs::write(p.join("file"), "x").unwrap();
        assert!(has_state(&p.join("file")));
        std::os::unix::fs::symlink("missing", p.join("dangling")).unwrap();
        assert!(!has_state(&p.join("dangling")));
    }

    #[test]
    fn vfs_state_beside_overlay2_reads_as_overlay2() {
        let t = tempfile::tempdir().unwrap();
        for d in ["overlay2", "vfs"] {
            fs::create_dir_all(t.path().join("image").join(d)).unwrap();
        }
        fs::create_dir_all(t.path().join("vfs/dir/x")).unwrap();
        fs::create_dir_all(t.path().join("overlay2/l")).unwrap();
        assert_eq!(detect(t.path()).unwrap().driver, "overlay2");
        // A configured vfs wins, and is refused as unsupported, saying so.
        let e = super::detect(t.path(), Some(&conf("vfs"))).err().unwrap();
        assert!(matches!(e, StoreError::UnsupportedDriver { .. }), "{e}");
        assert!(e.to_string().contains("configured: --driver"), "{e}");
    }

    #[test]
    fn detects_other_layouts_by_name() {
        let t = tempfile::tempdir().unwrap();
        fs::create_dir_all(t.path().join("image/vfs")).unwrap();
        fs::create_dir_all(t.path().join("vfs/dir/x")).unwrap();
        let e = detect(t.path()).err().unwrap();
        assert!(matches!(e, StoreError::UnsupportedDriver { .. }), "{e}");
        assert!(e.to_string().contains("--driver overlay2"), "{e}");
        // Read as a daemon without a configured driver would: an empty overlay2 store.
        let l = super::detect(t.path(), Some(&conf("overlay2"))).unwrap();
        assert_eq!(l.driver, "overlay2");

        let t = tempfile::tempdir().unwrap();
        fs::create_dir_all(t.path().join("image")).unwrap();
        fs::write(t.path().join("image/identity-cache.db"), b"").unwrap();
        assert!(matches!(
            detect(t.path()),
            Err(StoreError::ContainerdStore { .. })
        ));

        let t = tempfile::tempdir().unwrap();
        fs::create_dir_all(t.path().join("100000.100000/image/overlay2")).unwrap();
        match detect(t.path()) {
            Err(StoreError::UsernsParent { remapped, .. }) => {
                assert!(remapped.ends_with("100000.100000"))
            }
            other => panic!("{:?}", other.err()),
        }

        let t = tempfile::tempdir().unwrap();
        for d in ["overlay2", "btrfs"] {
            fs::create_dir_all(t.path().join("image").join(d)).unwrap();
            fs::create_dir_all(t.path().join(d).join("x")).unwrap();
        }
        let e = detect(t.path()).err().unwrap();
        assert!(matches!(e, StoreError::AmbiguousDriver { .. }), "{e}");
        assert!(e.to_string().contains("overlay2, btrfs"), "{e}");
        assert!(e.to_string().contains("-s <DRIVER>"), "{e}");
        assert_eq!(
            super::detect(t.path(), Some(&conf("overlay2")))
                .unwrap()
                .driver,
            "overlay2"
        );

        let t = tempfile::tempdir().unwrap();
        fs::create_dir_all(t.path().join("image/overlay2")).unwrap();
        fs::create_dir_all(t.path().join("overlay2/l")).unwrap();
        let l = detect(t.path()).unwrap();
        assert_eq!(l.driver, "overlay2");
        assert!(!l.engine_id_present);
    }
}
