//! Where a prune's facts come from: the mode (offline or live), then the
//! snapshot (the root's files, cross-checked against the daemon's lists
//! when it runs, or the daemon's API alone), then what only the daemon can
//! tell (build cache records, volumes).

use super::super::{Ctx, Refused, log};
use crate::options::{ModeChoice, Prune};
use dockgc::apply::mode::{self, Mode, Refusal, Want};
use dockgc::engine::{self, view};
use dockgc::graph::Graph;
use dockgc::policy::Selection;
use dockgc::store::{self, Snapshot};
use dockgc::{plan, policy};
use serde_json::json;
use std::collections::HashSet;

/// Refusals are exit status 2 and name the root or the socket.
fn refused(what: &str, root: &std::path::Path, r: Refusal) -> anyhow::Error {
    match r {
        Refusal::Unreachable(e) => Refused(format!("cannot reach the daemon: {e}")).into(),
        other => Refused(format!(
            "refusing to {what} {}: {}",
            root.display(),
            other.after_root(root)
        ))
        .into(),
    }
}

/// The mode of a real run (locks taken), or the one a dry run shows.
pub fn pick(ctx: &Ctx, m: &ModeChoice, dry_run: bool, what: &str) -> anyhow::Result<Mode> {
    let root = &ctx.root;
    if !dry_run {
        return mode::choose(root, m.want, m.host.as_ref()).map_err(|r| refused(what, root, r));
    }
    match mode::look(root, m.want, m.host.as_ref()) {
        Ok(mode) => Ok(mode),
        // A dry run still shows the plan, from the disk.
        Err(Refusal::Busy(b)) if m.want == Want::Offline => {
            log::warn(
                "prune.daemon",
                &format!("{b}; a prune would be refused now"),
                json!({}),
            );
            Ok(Mode::Offline(None))
        }
        Err(r) => Err(refused(what, root, r)),
    }
}

/// A snapshot and what the daemon adds to it.
pub struct Facts {
    pub snap: Snapshot,
    /// Images and containers the disk and the daemon disagree on.
    pub disagree: view::Disagreements,
}

/// The snapshot for `mode`: the root's files, unless the daemon runs and
/// the root is not its own readable graphdriver store.
pub fn read(ctx: &Ctx, mode: &Mode) -> anyhow::Result<Facts> {
    match mode {
        Mode::Offline(_) => Ok(Facts {
            snap: store::load_with(&ctx.root, ctx.load_options(false))?,
            disagree: Default::default(),
        }),
        Mode::Live(t) => match &t.disk {
            Ok(_) => {
                // The daemon takes about as long to list a big store as
                // dockgc takes to read it: ask while reading.
                let (snap, v) = std::thread::scope(|s| {
                    let list = s.spawn(|| view::View::read(&t.engine));
                    let snap = store::load_with(&ctx.root, ctx.load_options(false));
                    (snap, list.join())
                });
                let v = v.map_err(|_| anyhow::anyhow!("reading the daemon's lists panicked"))??;
                let snap = snap?;
                let disagree = view::crosscheck(&snap, &v);
                Ok(Facts { snap, disagree })
            }
            Err(why) => {
                log::info(
                    "prune.api_only",
                    &format!(
                        "planning from the daemon's API alone ({}): {why}",
                        t.engine.host()
                    ),
                    json!({"host": t.engine.host().to_string(), "why": why}),
                );
                Ok(Facts {
                    snap: engine::snapshot::read(&t.engine, &ctx.root)?,
                    disagree: Default::default(),
                })
            }
        },
    }
}

/// The snapshot for `mode` and the plan made from it. Live on a readable
/// root the daemon lists while dockgc reads, and on a big store its list
/// takes longer than the read: the plan is made meanwhile as if the two
/// agree, and made again only when the cross-check pins something.
pub fn read_and_plan(ctx: &Ctx, o: &Prune, mode: &Mode) -> anyhow::Result<(Facts, plan::Plan)> {
    let Mode::Live(t) = mode else {
        return plan_of(read(ctx, mode)?, o, mode);
    };
    if t.disk.is_err() {
        return plan_of(read(ctx, mode)?, o, mode);
    }
    std::thread::scope(|s| {
        let list = s.spawn(|| view::View::read(&t.engine));
        let mut facts = Facts {
            snap: store::load_with(&ctx.root, ctx.load_options(false))?,
            disagree: Default::default(),
        };
        let guess = plan(o, mode, &facts, &Graph::build(&facts.snap));
        let v = list
            .join()
            .map_err(|_| anyhow::anyhow!("reading the daemon's lists panicked"))??;
        facts.disagree = view::crosscheck(&facts.snap, &v);
        let p = if facts.disagree.is_empty() {
            guess?
        } else {
            plan(o, mode, &facts, &Graph::build(&facts.snap))?
        };
        Ok((facts, p))
    })
}

fn plan_of(facts: Facts, o: &Prune, mode: &Mode) -> anyhow::Result<(Facts, plan::Plan)> {
    let p = plan(o, mode, &facts, &Graph::build(&facts.snap))?;
    Ok((facts, p))
}

/// The plan: the policy's selection, leftovers, then the build cache and
/// volumes, which only a live daemon prunes.
pub fn plan(o: &Prune, mode: &Mode, facts: &Facts, g: &Graph) -> anyhow::Result<plan::Plan> {
    let live = matches!(mode, Mode::Live(_));
    let api_only = matches!(mode, Mode::Live(t) if t.disk.is_err());
    let mut policy = o.policy.clone();
    policy.pinned = facts.disagree.images.clone();
    policy.pinned_containers = facts.disagree.containers.clone();
    let sel = policy::select(g, &policy);
    let mut orphans = o.orphans.clone();
    orphans.live = live;
    if live && orphans.enabled && orphans.grace < plan::MIN_LIVE_GRACE {
        log::warn(
            "prune.grace",
            &format!(
                "--grace is at least {} while the daemon runs; using that",
                dockgc::units::human_duration(plan::MIN_LIVE_GRACE)
            ),
            json!({"grace": plan::MIN_LIVE_GRACE}),
        );
        orphans.grace = plan::MIN_LIVE_GRACE;
    }
    if api_only && orphans.enabled {
        log::warn(
            "prune.orphans_unseen",
            "--orphans: the daemon's API shows no leftovers; none are planned (they are not none, they are unseen)",
            json!({}),
        );
        orphans.enabled = false;
    }
    let mut p = plan::build(g, &sel, &orphans, jiff::Timestamp::now().to_string());
    if api_only {
        p.source = "api".into();
        p.unseen = vec!["orphans".into(), "leftovers".into()];
    }
    p.disagreements = facts.disagree.list();
    if let Some(bc) = &o.build_cache {
        p.build_cache = Some(build_cache(mode, g, &sel, bc)?);
    }
    if let Some(all) = o.volumes {
        p.volumes = volumes(mode, all)?;
    }
    p.reclaim.build_cache = p.build_cache.as_ref().map_or(0, |b| b.bytes);
    p.reclaim.volumes = p.volumes.iter().filter_map(|v| v.bytes).sum();
    p.reclaim.sum();
    Ok(p)
}

fn build_cache(
    mode: &Mode,
    g: &Graph,
    sel: &Selection,
    o: &plan::BuildCacheOptions,
) -> anyhow::Result<plan::PlanBuildCache> {
    match mode {
        Mode::Offline(guard) => {
            if guard.is_some() {
                return Err(Refused(
                    "--build-cache runs only live: BuildKit's databases are never written \
                     offline. Start the daemon and run again; `dockgc df` shows what it would free"
                        .into(),
                )
                .into());
            }
            let gone: HashSet<_> = sel.remove.keys().copied().collect();
            Ok(plan::build_cache(g, o, &gone))
        }
        Mode::Live(t) if t.disk.is_ok() => {
            let gone: HashSet<_> = sel.remove.keys().copied().collect();
            Ok(plan::build_cache(g, o, &gone))
        }
        Mode::Live(t) => {
            let df = t.engine.df()?;
            Ok(plan::build_cache_of(&engine::snapshot::build_cache(&df), o))
        }
    }
}

fn volumes(mode: &Mode, all: bool) -> anyhow::Result<Vec<plan::PlanVolume>> {
    let Mode::Live(t) = mode else {
        return Err(Refused(
            "--volumes runs only live: volumes are removed through the daemon, \
             which knows which are in use"
                .into(),
        )
        .into());
    };
    let df = t.engine.df()?;
    let v = view::View::read(&t.engine)?;
    Ok(plan::volumes(&engine::snapshot::volumes(&df, &v), all))
}
