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
            ContainerKeep::Label(k, v) => label_matches(&c.labels, &(k.clone(), v.clone())),
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
                let word = st.word();
                let why = if st.has_started {
                    format!(
                        "{word} for at least {}",
                        crate::units::human_duration(o.age)
                    )
                } else {
                    format!(
                        "{word}, never started, for at least {}",
                        crate::units::human_duration(o.age)
                    )
                };
                sel.remove.insert(c.id.clone(), why);
            }
        }
    }
    sel
}
