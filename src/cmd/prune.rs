use super::{Ctx, EXIT_FOUND, EXIT_OK, Refused, log, output};
use crate::cli::{ApplyArgs, Format, PruneArgs};
use crate::options::{self, RunPlan};
use dockgc::graph::Graph;
use dockgc::render::prometheus::{Metrics, prune_metrics};
use dockgc::render::{outcome_table, plan_table};
use dockgc::{apply, plan, policy, store};
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

#[derive(serde::Serialize)]
struct Report<'a> {
    dry_run: bool,
    plan: &'a plan::Plan,
    outcome: Option<&'a apply::Outcome>,
}

/// Writes the report of one prune or apply run.
fn emit(
    out: &options::Output,
    started: std::time::Instant,
    dry_run: bool,
    p: &plan::Plan,
    outcome: Option<&apply::Outcome>,
) -> anyhow::Result<()> {
    let prom = out.format == Format::Prometheus;
    if prom || out.textfile.is_some() {
        let mut m = Metrics::default();
        prune_metrics(&mut m, p, outcome);
        output::metrics(&mut m, "prune", started, prom, out.textfile.as_deref())?;
    }
    match (out.format, outcome) {
        (Format::Json, _) => output::json(&Report {
            dry_run,
            plan: p,
            outcome,
        }),
        (Format::Table, Some(o)) => output::stdout(&outcome_table(o)),
        (Format::Table, None) => output::stdout(&plan_table(p, true)),
        (Format::Prometheus, _) => Ok(()),
    }
}

/// `prune` on a containerd store: a dry run lists what containerd's next
/// garbage collection deletes, with reasons; a real run is refused.
fn prune_containerd(
    snap: &store::Snapshot,
    args: &PruneArgs,
    started: std::time::Instant,
) -> anyhow::Result<u8> {
    let Some(s) = snap.containerd() else {
        anyhow::bail!("not a containerd snapshot");
    };
    if !args.dry_run {
        let why = apply::mode::choose_containerd(s.paths.root(), s.scope.name())
            .err()
            .map(|r| r.to_string())
            .unwrap_or_default();
        return Err(Refused(why).into());
    }
    super::df::require_meta(snap)?;
    super::df::note_live(snap);
    let Some(u) = dockgc::usage::containerd::compute(snap, &Default::default()) else {
        anyhow::bail!("not a containerd snapshot");
    };
    let prom = args.format == Format::Prometheus;
    if prom || args.textfile.is_some() {
        let mut m = Metrics::default();
        dockgc::render::prometheus::df_metrics_containerd(&mut m, &u);
        output::metrics(&mut m, "prune", started, prom, args.textfile.as_deref())?;
    }
    #[derive(serde::Serialize)]
    struct DryRun<'a> {
        store: &'static str,
        dry_run: bool,
        namespace: &'a str,
        collectable: &'a [dockgc::holds::containerd::Item],
        orphans: &'a [dockgc::holds::containerd::Orphan],
    }
    match args.format {
        Format::Json => output::json(&DryRun {
            store: "containerd",
            dry_run: true,
            namespace: &u.namespace,
            collectable: &u.collectable,
            orphans: &u.orphans,
        })?,
        Format::Table => output::stdout(&format!(
            "containerd's next garbage collection deletes (namespace {}; dockgc changes \
             nothing, containerd does this itself):\n\n{}",
            u.namespace,
            dockgc::render::containerd::collectable_table(&u)
        ))?,
        Format::Prometheus => {}
    }
    Ok(EXIT_OK)
}

pub fn run(ctx: &Ctx, args: &PruneArgs) -> anyhow::Result<u8> {
    let started = std::time::Instant::now();
    let root = &ctx.root;
    if ctx.containerd.root.is_some() || store::is_containerd(root) {
        let snap = store::open(root, &ctx.containerd, store::LoadOptions { lower: false })?;
        if snap.containerd().is_some() {
            return prune_containerd(&snap, args, started);
        }
    }
    let o = options::prune(
        root,
        args,
        &ctx.config,
        ctx.config_path.as_deref(),
        super::now(),
    )?;
    // A real run holds the root from planning to the last removal.
    let _mode = if o.dry_run {
        None
    } else {
        Some(
            apply::mode::choose(root)
                .map_err(|b| Refused(format!("refusing to prune {}: {b}", root.display())))?,
        )
    };
    if o.dry_run
        && let Some(b) = apply::mode::would_refuse(root)
    {
        log::warn(
            "prune.daemon",
            &format!("{b}; a prune would be refused now"),
            json!({}),
        );
    }
    let snap = store::load_with(root, store::LoadOptions { lower: false })?;
    let graph = Graph::build(&snap);
    let sel = policy::select(&graph, &o.policy);
    let p = plan::build(&graph, &sel, &o.orphans, jiff::Timestamp::now().to_string());
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
        emit(&o.run.out, started, o.dry_run, &p, None)?;
        if p.is_empty() && !o.dry_run {
            log::info("prune.nothing", "nothing to remove", json!({}));
        }
        return Ok(EXIT_OK);
    }
    run_plan(&graph, &p, &o.run, started)
}

pub fn apply_file(ctx: &Ctx, a: &ApplyArgs) -> anyhow::Result<u8> {
    let started = std::time::Instant::now();
    let root = &ctx.root;
    let run = options::apply(a, &ctx.config);
    let _mode = apply::mode::choose(root)
        .map_err(|b| Refused(format!("refusing to apply to {}: {b}", root.display())))?;
    let text = std::fs::read(&a.plan).map_err(|e| anyhow::anyhow!("{}: {e}", a.plan.display()))?;
    let p: plan::Plan = serde_json::from_slice(&text)
        .map_err(|e| Refused(format!("{}: not a dockgc plan: {e}", a.plan.display())))?;
    let snap = store::load_with(root, store::LoadOptions { lower: false })?;
    let graph = Graph::build(&snap);
    run_plan(&graph, &p, &run, started)
}

/// Validates, confirms and applies; shared by `prune` and `apply`, so a plan
/// from `--plan-out` and a direct run go through the same checks.
fn run_plan(
    graph: &Graph,
    p: &plan::Plan,
    o: &RunPlan,
    started: std::time::Instant,
) -> anyhow::Result<u8> {
    if let Err(why) = apply::validate(graph, p) {
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
    let outcome = apply::apply(
        graph,
        p,
        &apply::Options {
            trash: o.trash,
            fault: apply::Fault::from_env(),
            mounts: store::daemon::mounts_below(&graph.snap.root).unwrap_or_default(),
        },
    );
    let c = &outcome.removed;
    log::info(
        "prune.done",
        &format!(
            "removed {} reference(s), {} image(s), {} layer(s), {} mount(s), {} orphan(s); reclaimed {} bytes{}",
            c.references,
            c.images,
            c.layers,
            c.mounts,
            c.orphans,
            outcome.reclaimed.total,
            outcome
                .trash_id
                .as_ref()
                .map(|t| format!(" (trash {t})"))
                .unwrap_or_default()
        ),
        json!({"removed": &outcome.removed, "reclaimed": &outcome.reclaimed, "failures": outcome.failures.len(), "trash_id": &outcome.trash_id}),
    );
    for f in &outcome.failures {
        log::warn(
            "prune.failure",
            &format!("{}: {}: {}", f.item, f.path.display(), f.error),
            json!({"item": f.item, "path": f.path, "error": f.error}),
        );
    }
    emit(&o.out, started, false, p, Some(&outcome))?;
    Ok(if outcome.complete() {
        EXIT_OK
    } else {
        EXIT_FOUND
    })
}
