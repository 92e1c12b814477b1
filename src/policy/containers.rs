//! `--containers`: which stopped containers go (moby `daemon/prune.go`
//! `ContainersPrune`, which removes every container that is not running;
//! spotify/docker-gc's grace period on the exit time).
//!
//! A container goes when it is stopped (exited, dead, or created and never
//! started), has been so for at least the age (`FinishedAt`, or `Created`
//! for one that never ran), and no keep pattern names it. Running, paused
//! and restarting containers never go, nor, offline, one whose process is
//! still alive (live-restore keeps it running while dockerd is down).

use super::{PolicyError, label_matches, split_label};
use crate::ids::ContainerId;
use crate::store::{Container, Snapshot, parse_time};
use globset::{Glob, GlobMatcher};
use std::collections::BTreeMap;

/// The default of `--container-age`: a day, so a nightly job's container
/// survives until the next night (docker-gc's users learned this).
pub const DEFAULT_AGE: i64 = 24 * 3600;

#[derive(Debug, Clone)]
pub struct ContainerOptions {
    pub enabled: bool,
    /// Seconds a container must have been stopped.
    pub age: i64,
    pub keep: Vec<ContainerKeep>,
    pub now: i64,
}

impl ContainerOptions {
    pub fn off(now: i64) -> ContainerOptions {
        ContainerOptions {
            enabled: false,
            age: DEFAULT_AGE,
            keep: Vec::new(),
            now,
        }
    }
}

/// `--keep-container`: a glob over the name, or `label=k[=v]`.
#[derive(Debug, Clone)]
pub enum ContainerKeep {
    Label(String, Option<String>),
    Name(String, GlobMatcher),
}

impl ContainerKeep {
    pub fn parse(p: &str) -> Result<ContainerKeep, PolicyError> {
        if let Some(l) = p.strip_prefix("label=") {
            let (k, v) = split_label(l);
            return Ok(ContainerKeep::Label(k, v));
        }
        let name = p.strip_prefix('/').unwrap_or(p);
        let g = Glob::new(name)
            .map_err(|e| PolicyError::Usage(format!("--keep-container {p:?}: {e}")))?;
        Ok(ContainerKeep::Name(p.to_string(), g.compile_matcher()))
    }

    fn matches(&self, c: &Container) -> bool {
        match self {
            ContainerKeep::Label(k, v) => {
                label_matches(|k| c.labels.get(k), &(k.clone(), v.clone()))
            }
            ContainerKeep::Name(_, m) => m.is_match(&c.name),
        }
    }

    fn name(&self) -> String {
        match self {
            ContainerKeep::Label(k, Some(v)) => format!("label={k}={v}"),
            ContainerKeep::Label(k, None) => format!("label={k}"),
            ContainerKeep::Name(s, _) => s.clone(),
        }
    }
}

/// The containers to remove and those a rule kept, each with the reason.
#[derive(Debug, Default, serde::Serialize)]
pub struct ContainerSelection {
    pub remove: BTreeMap<ContainerId, String>,
    pub kept: BTreeMap<ContainerId, String>,
}

/// When a container stopped: `FinishedAt`, or `Created` if it never ran.
pub fn stopped_since(c: &Container) -> Option<i64> {
    let t = if c.state.has_started {
        c.finished_at.as_deref()
    } else {
        c.created.as_deref()
    };
    t.and_then(parse_time)
}

/// `pinned`: containers that must stay whatever the rules say (the daemon
/// and the disk disagree on them), with the reason.
pub fn select(
    snap: &Snapshot,
    o: &ContainerOptions,
    pinned: &BTreeMap<ContainerId, String>,
) -> ContainerSelection {
    let mut sel = ContainerSelection::default();
    if !o.enabled {
        return sel;
    }
    for c in snap.containers.values() {
        let st = &c.state;
        if st.is_active() || st.pid_alive {
            continue; // never a candidate, so never listed as kept
        }
        let why_kept = if let Some(why) = pinned.get(&c.id) {
            Some(why.clone())
        } else if let Some(k) = o.keep.iter().find(|k| k.matches(c)) {
            Some(format!("--keep-container {}", k.name()))
        } else {
            match stopped_since(c) {
                None => Some("its stop time is unknown".to_string()),
                Some(t) if o.now - t < o.age => Some(format!(
                    "stopped {} ago, less than --container-age",
                    crate::units::human_duration(o.now - t)
                )),
                Some(_) => None,
            }
        };
        match why_kept {
            Some(why) => {
                sel.kept.insert(c.id.clone(), why);
            }
            None => {
                let ago = stopped_since(c).map_or(0, |t| o.now - t);
                let since = if st.has_started {
                    "stopped"
                } else {
                    "created, never started,"
                };
                let why = format!(
                    "{}: {since} {} ago (--container-age {})",
                    st.word(),
                    crate::units::human_duration(ago).to_lowercase(),
                    crate::units::human_duration(o.age).to_lowercase()
                );
                sel.remove.insert(c.id.clone(), why);
            }
        }
    }
    sel
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::graph::Graph;
    use crate::graph::tests::*;

    const NOW: i64 = 2_000_000_000;

    fn at(secs_ago: i64) -> Option<String> {
        Some(
            jiff::Timestamp::from_second(NOW - secs_ago)
                .unwrap()
                .to_string(),
        )
    }

    /// A stopped container that finished `ago` seconds before NOW.
    fn stopped(s: &mut Snapshot, n: u8, img: crate::ids::ImageId, ago: i64) -> ContainerId {
        let id = add_container(s, n, img, false);
        let c = s.containers.get_mut(&id).unwrap();
        c.state.has_started = true;
        c.created = at(ago + 100);
        c.started_at = at(ago + 50);
        c.finished_at = at(ago);
        id
    }

    fn opts(keep: &[&str]) -> ContainerOptions {
        ContainerOptions {
            enabled: true,
            age: 3600,
            keep: keep
                .iter()
                .map(|k| ContainerKeep::parse(k).unwrap())
                .collect(),
            now: NOW,
        }
    }

    #[test]
    fn stopped_long_enough_goes_running_never_does() {
        let mut s = empty_snapshot();
        let img = add_image(&mut s, &[1], 10, None);
        let old = stopped(&mut s, 1, img, 7200);
        let young = stopped(&mut s, 2, img, 60);
        let running = add_container(&mut s, 3, img, true);
        let never = add_container(&mut s, 4, img, false);
        s.containers.get_mut(&never).unwrap().created = at(9000);
        let sel = select(&s, &opts(&[]), &BTreeMap::new());
        assert_eq!(
            sel.remove.keys().collect::<Vec<_>>(),
            [&old, &never],
            "{sel:?}"
        );
        assert!(sel.remove[&never].contains("never started"));
        assert!(sel.kept[&young].contains("--container-age"));
        assert!(!sel.kept.contains_key(&running) && !sel.remove.contains_key(&running));
        // A live-restore process still alive offline is never a candidate.
        s.containers.get_mut(&old).unwrap().state.pid_alive = true;
        let sel = select(&s, &opts(&[]), &BTreeMap::new());
        assert!(!sel.remove.contains_key(&old) && !sel.kept.contains_key(&old));
    }

    #[test]
    fn keep_patterns_and_pins_win() {
        let mut s = empty_snapshot();
        let img = add_image(&mut s, &[1], 10, None);
        let a = stopped(&mut s, 1, img, 7200); // named c1
        let b = stopped(&mut s, 2, img, 7200);
        let c = stopped(&mut s, 3, img, 7200);
        s.containers
            .get_mut(&b)
            .unwrap()
            .labels
            .insert("keep".into(), "yes".into());
        let pinned = BTreeMap::from([(c.clone(), "the daemon says it is running".to_string())]);
        let sel = select(&s, &opts(&["c1", "label=keep=yes"]), &pinned);
        assert!(sel.remove.is_empty(), "{sel:?}");
        assert_eq!(sel.kept[&a], "--keep-container c1");
        assert_eq!(sel.kept[&b], "--keep-container label=keep=yes");
        assert_eq!(sel.kept[&c], "the daemon says it is running");
        assert!(
            select(&s, &ContainerOptions::off(NOW), &pinned)
                .remove
                .is_empty()
        );
    }

    #[test]
    fn an_image_only_a_removed_container_used_goes_in_the_same_run() {
        let mut s = empty_snapshot();
        let img = add_image(&mut s, &[1, 2], 10, None);
        tag(&mut s, "app:1", img);
        stopped(&mut s, 1, img, 7200);
        let g = Graph::build(&s);
        let mut o = crate::policy::Options {
            all: true,
            ..crate::policy::Options::all(NOW)
        };
        let sel = crate::policy::select(&g, &o);
        assert!(sel.remove.is_empty() && sel.kept.contains_key(&img));
        o.containers = opts(&[]);
        let sel = crate::policy::select(&g, &o);
        assert!(sel.remove.contains_key(&img), "{sel:?}");
        // And the plan frees its layers: the container's RW layer goes too.
        let p = crate::plan::build(
            &g,
            &sel,
            &crate::plan::OrphanOptions {
                enabled: false,
                grace: 0,
                now: NOW,
                live: false,
            },
            String::new(),
        );
        assert_eq!(p.containers.len(), 1);
        assert_eq!(p.containers[0].mounts.len(), 1);
        assert_eq!(p.layers.len(), 2, "{:?}", p.layers);
    }
}
