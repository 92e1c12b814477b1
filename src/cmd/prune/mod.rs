use super::{Ctx, EXIT_FOUND, EXIT_OK, Refused, log, output};
use crate::cli::{ApplyArgs, Format, PruneArgs};
use crate::options::{self, RunPlan};
use dockgc::apply::mode::Mode;
use dockgc::graph::Graph;
use dockgc::render::prometheus::{Metrics, prune_metrics};
use dockgc::render::{outcome_table, plan_table};
use dockgc::{apply, plan, store};
use serde_json::json;
use std::io::IsTerminal;

/// Asks on the terminal; without one, `--yes` is required.
fn confirm(yes: bool, what: &str) -> anyhow::Result<bool> {
    if yes {
        return Ok(true);
    }
    if !std::io::stdin().is_terminal() || !std::io::stderr().is_terminal() {
        return Err(Refused(
            "refusing to change the store without confirmation: not a terminal; \
             review the plan with --dry-run, then pass --yes"
                .into(),
        )
        .into());
    }
    eprint!("{what} [y/N] ");
    let mut line = String::new();
    std::io::stdin().read_line(&mut line)?;
    Ok(matches!(line.trim(), "y" | "Y" | "yes" | "Yes"))
}

mod containerd;
mod source;

#[derive(serde::Serialize)]
struct Report<'a> {
    dry_run: bool,
    /// `offline` or `live`: the executor that ran (or would run).
    mode: &'static str,
    plan: &'a plan::Plan,
    outcome: Option<&'a apply::Outcome>,
}

/// Writes the report of one prune or apply run.
fn emit(
    out: &options::Output,
    started: std::time::Instant,
    dry_run: bool,
    mode: &'static str,
    p: &plan::Plan,
    outcome: Option<&apply::Outcome>,
) -> anyhow::Result<()> {
    let prom = out.format == Format::Prometheus;
    if prom || out.textfile.is_some() {
        let mut m = Metrics::default();
        prune_metrics(&mut m, p, outcome, mode);
        output::metrics(&mut m, "prune", started, prom, out.textfile.as_deref())?;
    }
    match (out.format, outcome) {
        (Format::Json, _) => output::json(&Report {
            dry_run,
            mode,
            plan: p,
            outcome,
        }),
        (Format::Table, Some(o)) => output::stdout(&outcome_table(o)),
        (Format::Table, None) => output::stdout(&plan_table(p, true)),
        (Format::Prometheus, _) => Ok(()),
    }
}

pub fn run(ctx: &Ctx, args: &PruneArgs) -> anyhow::Result<u8> {
    let started = std::time::Instant::now();
    let o = options::prune(
        &ctx.root,
        args,
        &ctx.config,
        ctx.config_path.as_deref(),
        super::now(),
    )?;
    let docker_in_containerd_mode = store::is_containerd(&ctx.root);
    let mode = if ctx.containerd.root.is_some() || docker_in_containerd_mode {
        let snap = store::open(&ctx.root, &ctx.containerd, ctx.load_options(false))?;
        let Some(s) = snap.containerd() else {
            anyhow::bail!("{}: not a containerd store", ctx.root.display());
        };
        if o.dry_run {
            return containerd::dry_run(&snap, args, started);
        }
        // Never offline; a live Docker 29 daemon prunes through its API.
        apply::mode::choose_containerd(
            s.paths.root(),
            docker_in_containerd_mode.then_some(ctx.root.as_path()),
            s.scope.name(),
            o.run.mode.want,
            o.run.mode.host.as_ref(),
        )
        .map_err(|r| Refused(r.to_string()))?
    } else {
        // A real run holds the root (offline) or its dockgc lock (live) from
        // planning to the last removal.
        source::pick(ctx, &o.run.mode, o.dry_run, "prune")?
    };
    let (facts, p) = source::read_and_plan(ctx, &o, &mode)?;
    for d in &p.disagreements {
        log::info(
            "prune.disagreement",
            &format!("{} {} left alone: {}", d.kind, d.id, d.reason),
            json!({"kind": d.kind, "id": d.id, "reason": d.reason}),
        );
    }
    if let Some(path) = &o.plan_out {
        let mut text = serde_json::to_vec_pretty(&p)?;
        text.push(b'\n');
        output::atomic_write(path, &text)?;
        log::info(
            "prune.plan_out",
            &format!("plan saved to {}", path.display()),
            json!({"path": path}),
        );
    }
    if o.dry_run || p.is_empty() {
        emit(&o.run.out, started, o.dry_run, mode.name(), &p, None)?;
        if p.is_empty() && !o.dry_run {
            log::info("prune.nothing", "nothing to remove", json!({}));
        }
        return Ok(EXIT_OK);
    }
    run_plan(&Graph::build(&facts.snap), &p, &o.run, &mode, started)
}

pub fn apply_file(ctx: &Ctx, a: &ApplyArgs) -> anyhow::Result<u8> {
    let started = std::time::Instant::now();
    let run = options::apply(a, &ctx.config, ctx.config_path.as_deref())?;
    // The mode first: a refusal says so before anything else is read.
    let mode = source::pick(ctx, &run.mode, false, "apply to")?;
    let text = std::fs::read(&a.plan).map_err(|e| anyhow::anyhow!("{}: {e}", a.plan.display()))?;
    let p: plan::Plan = serde_json::from_slice(&text)
        .map_err(|e| Refused(format!("{}: not a dockgc plan: {e}", a.plan.display())))?;
    let facts = source::read(ctx, &mode)?;
    let graph = Graph::build(&facts.snap);
    if (p.source == "api") != (facts.snap.source == store::Source::Api) {
        return Err(Refused(format!(
            "refusing the plan: it was made from {}, and this run reads {}",
            if p.source == "api" {
                "the daemon's API alone"
            } else {
                "the root"
            },
            if p.source == "api" {
                "the root"
            } else {
                "the daemon's API alone"
            },
        ))
        .into());
    }
    run_plan(&graph, &p, &run, &mode, started)
}

/// Validates, confirms and applies; shared by `prune` and `apply`, so a plan
/// from `--plan-out` and a direct run go through the same checks.
fn run_plan(
    graph: &Graph,
    p: &plan::Plan,
    o: &RunPlan,
    mode: &Mode,
    started: std::time::Instant,
) -> anyhow::Result<u8> {
    let checked = match mode {
        Mode::Live(_) => apply::validate_live(graph, p),
        Mode::Offline(_) => apply::validate(graph, p),
    };
    if let Err(why) = checked {
        return Err(Refused(format!(
            "refusing the plan: the store changed since it was made:\n  {}",
            why.join("\n  ")
        ))
        .into());
    }
    if o.out.format == Format::Table {
        output::stdout(&plan_table(p, false))?;
    }
    if !confirm(o.yes, &format!("Remove these from {}?", p.root.display()))? {
        log::info("prune.declined", "nothing changed", json!({}));
        return Ok(EXIT_OK);
    }
    let outcome = execute(graph, p, o, mode);
    report(&outcome);
    emit(&o.out, started, false, mode.name(), p, Some(&outcome))?;
    Ok(if outcome.complete() {
        EXIT_OK
    } else {
        EXIT_FOUND
    })
}

/// Runs the plan through the mode's executor.
fn execute(graph: &Graph, p: &plan::Plan, o: &RunPlan, mode: &Mode) -> apply::Outcome {
    let files = apply::Options {
        trash: o.trash,
        fault: apply::Fault::from_env(),
        mounts: store::daemon::mounts_below(&graph.snap.root).unwrap_or_default(),
    };
    let Mode::Live(t) = mode else {
        return apply::apply(graph, p, &files);
    };
    if o.trash {
        log::warn(
            "prune.trash_live",
            "--trash has no effect live: the daemon deletes what its API removes",
            json!({}),
        );
    }
    let paths = t.disk.is_ok().then_some(&graph.gd.paths);
    let no_trash = apply::Options {
        trash: false,
        fault: None,
        mounts: files.mounts.clone(),
    };
    let leftovers = match (paths, p.orphans.is_empty()) {
        (Some(paths), false) => live_leftovers(&t.engine, paths, p, &no_trash),
        _ => Ok(None),
    };
    let x = leftovers.and_then(|l| apply::Live::new(&t.engine, p, paths, !p.volumes.is_empty(), l));
    match x {
        Ok(x) => apply::run(graph, p, x),
        Err(e) => apply::Outcome::failed(mode.name(), "live", e),
    }
}

/// What removing leftovers while the daemon runs needs: the file remover
/// and what is in use right now.
fn live_leftovers<'a>(
    engine: &dockgc::engine::Engine,
    paths: &'a store::graphdriver::Paths,
    p: &plan::Plan,
    o: &'a apply::Options,
) -> Result<Option<apply::LiveLeftovers<'a>>, apply::StepError> {
    let files = apply::Offline::new(paths, p, o)?;
    let in_use = dockgc::engine::inuse::InUse::read(engine, paths)
        .map_err(|e| apply::StepError::new(paths.root(), e))?;
    Ok(Some(apply::LiveLeftovers {
        files,
        in_use,
        grace: p.grace.unwrap_or(0).max(plan::MIN_LIVE_GRACE),
        now: super::now(),
    }))
}

/// The log lines of a run: one summary, one line per failure and skip.
fn report(outcome: &apply::Outcome) {
    let c = &outcome.removed;
    log::info(
        "prune.done",
        &format!(
            "{}: removed {} container(s), {} reference(s), {} image(s), {} layer(s), {} mount(s), \
             {} orphan(s), {} build cache record(s), {} volume(s); reclaimed {} bytes (planned {}){}",
            outcome.mode,
            c.containers,
            c.references,
            c.images,
            c.layers,
            c.mounts,
            c.orphans,
            c.build_cache_records,
            c.volumes,
            outcome.reclaimed.total,
            outcome.estimated.total,
            outcome
                .trash_id
                .as_ref()
                .map(|t| format!(" (trash {t})"))
                .unwrap_or_default()
        ),
        json!({"mode": outcome.mode, "removed": &outcome.removed, "reclaimed": &outcome.reclaimed,
               "estimated": &outcome.estimated, "skipped": outcome.skipped.len(),
               "failures": outcome.failures.len(), "trash_id": &outcome.trash_id}),
    );
    for s in &outcome.skipped {
        log::info(
            "prune.skipped",
            &format!("{} left alone: {}", s.item, s.reason),
            json!({"item": s.item, "reason": s.reason}),
        );
    }
    for f in &outcome.failures {
        log::warn(
            "prune.failure",
            &format!("{}: {}: {}", f.item, f.path.display(), f.error),
            json!({"item": f.item, "path": f.path, "error": f.error}),
        );
    }
}
