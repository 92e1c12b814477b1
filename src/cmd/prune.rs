use super::{Ctx, EXIT_FOUND, EXIT_OK, Refused, log, output};
use dockgc::cli::{ApplyArgs, Format, PruneArgs};
use dockgc::graph::Graph;
use dockgc::render::prometheus::{Metrics, prune_metrics};
use dockgc::render::{outcome_table, plan_table};
use dockgc::{apply, plan, policy, store};
use serde_json::json;
use std::io::IsTerminal;
use std::path::Path;

fn fs_stats(root: &Path) -> anyhow::Result<policy::FsStats> {
    use std::os::unix::ffi::OsStrExt;
    let c = std::ffi::CString::new(root.as_os_str().as_bytes())?;
    // SAFETY: an all-zero statvfs is a valid value to be overwritten.
    let mut st: libc::statvfs = unsafe { std::mem::zeroed() };
    // SAFETY: `c` is NUL-terminated and `st` is a valid out-pointer.
    if unsafe { libc::statvfs(c.as_ptr(), &mut st) } != 0 {
        anyhow::bail!(
            "{}: statvfs: {}",
            root.display(),
            std::io::Error::last_os_error()
        );
    }
    let f = st.f_frsize;
    Ok(policy::FsStats {
        total: st.f_blocks * f,
        available: st.f_bavail * f,
    })
}

fn policy_options(root: &Path, a: &PruneArgs) -> anyhow::Result<policy::Options> {
    let now = super::now();
    let watermark = match (a.high, a.low, a.free) {
        (Some(high), Some(low), _) => {
            if !(0.0..=100.0).contains(&low) || !(0.0..=100.0).contains(&high) || low > high {
                anyhow::bail!("--high and --low are percentages with --low <= --high");
            }
            Some((policy::Watermark::Percent { high, low }, fs_stats(root)?))
        }
        (_, _, Some(free)) => Some((policy::Watermark::Free(free), fs_stats(root)?)),
        _ => None,
    };
    Ok(policy::Options {
        all: a.all,
        filters: policy::Filters::parse(&a.filters, now)?,
        older_than: a.older_than,
        age_by: a.age_by.unwrap_or(policy::AgeBy::Created),
        keep: a
            .keep
            .iter()
            .map(|k| policy::KeepPattern::parse(k))
            .collect::<Result<_, _>>()?,
        keep_last: a.keep_last,
        watermark,
        min_age: a.min_age,
        now,
    })
}

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

/// Where the output of one prune or apply run goes.
struct Out<'a> {
    format: Format,
    textfile: Option<&'a Path>,
    started: std::time::Instant,
}

impl Out<'_> {
    fn emit(
        &self,
        dry_run: bool,
        p: &plan::Plan,
        outcome: Option<&apply::Outcome>,
    ) -> anyhow::Result<()> {
        let prom = self.format == Format::Prometheus;
        if prom || self.textfile.is_some() {
            let mut m = Metrics::default();
            prune_metrics(&mut m, p, outcome);
            output::metrics(&mut m, "prune", self.started, prom, self.textfile)?;
        }
        match (self.format, outcome) {
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
}

pub fn run(ctx: &Ctx, args: &PruneArgs) -> anyhow::Result<u8> {
    let started = std::time::Instant::now();
    let mut a = args.clone();
    ctx.config.prune.apply_to(&mut a).map_err(|e| {
        anyhow::anyhow!(
            "{}: {e}",
            ctx.config_path
                .as_deref()
                .unwrap_or(Path::new("config"))
                .display()
        )
    })?;
    let root = &ctx.root;
    let opts = policy_options(root, &a)?;
    // A real run holds the root from planning to the last removal.
    let _guard = if a.dry_run {
        None
    } else {
        Some(
            store::daemon::guard(root)
                .map_err(|b| Refused(format!("refusing to prune {}: {b}", root.display())))?,
        )
    };
    if a.dry_run
        && let Some(b) = store::daemon::daemon_alive(root)
    {
        log::warn(
            "prune.daemon",
            &format!("{b}; a prune would be refused now"),
            json!({}),
        );
    }
    let snap = store::load_with(root, store::LoadOptions { lower: false })?;
    let graph = Graph::build(&snap);
    let sel = policy::select(&graph, &opts);
    let p = plan::build(
        &graph,
        &sel,
        &plan::OrphanOptions {
            enabled: a.orphans,
            grace: a.grace.unwrap_or(3600),
            now: opts.now,
        },
        jiff::Timestamp::now().to_string(),
    );
    if let Some(path) = &a.plan_out {
        let mut text = serde_json::to_vec_pretty(&p)?;
        text.push(b'\n');
        output::atomic_write(path, &text)?;
        log::info(
            "prune.plan_out",
            &format!("plan saved to {}", path.display()),
            json!({"path": path}),
        );
    }
    let out = Out {
        format: a.format,
        textfile: a.textfile.as_deref(),
        started,
    };
    if a.dry_run || p.is_empty() {
        out.emit(a.dry_run, &p, None)?;
        if p.is_empty() && !a.dry_run {
            log::info("prune.nothing", "nothing to remove", json!({}));
        }
        return Ok(EXIT_OK);
    }
    run_plan(&graph, &p, a.yes, a.trash, &out)
}

pub fn apply_file(ctx: &Ctx, a: &ApplyArgs) -> anyhow::Result<u8> {
    let started = std::time::Instant::now();
    let root = &ctx.root;
    let _guard = store::daemon::guard(root)
        .map_err(|b| Refused(format!("refusing to apply to {}: {b}", root.display())))?;
    let text = std::fs::read(&a.plan).map_err(|e| anyhow::anyhow!("{}: {e}", a.plan.display()))?;
    let p: plan::Plan = serde_json::from_slice(&text)
        .map_err(|e| Refused(format!("{}: not a dockgc plan: {e}", a.plan.display())))?;
    let snap = store::load_with(root, store::LoadOptions { lower: false })?;
    let graph = Graph::build(&snap);
    let out = Out {
        format: a.format,
        textfile: a.textfile.as_deref(),
        started,
    };
    run_plan(&graph, &p, a.yes, a.trash, &out)
}

/// Validates, confirms and applies; shared by `prune` and `apply`, so a plan
/// from `--plan-out` and a direct run go through the same checks.
fn run_plan(
    graph: &Graph,
    p: &plan::Plan,
    yes: bool,
    to_trash: bool,
    out: &Out,
) -> anyhow::Result<u8> {
    if let Err(why) = apply::validate(graph, p) {
        return Err(Refused(format!(
            "refusing the plan: the store changed since it was made:\n  {}",
            why.join("\n  ")
        ))
        .into());
    }
    if out.format == Format::Table {
        output::stdout(&plan_table(p, false))?;
    }
    if !confirm(yes, &format!("Remove these from {}?", p.root.display()))? {
        log::info("prune.declined", "nothing changed", json!({}));
        return Ok(EXIT_OK);
    }
    let outcome = apply::apply(
        graph,
        p,
        &apply::Options {
            trash: to_trash,
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
    out.emit(false, p, Some(&outcome))?;
    Ok(if outcome.complete() {
        EXIT_OK
    } else {
        EXIT_FOUND
    })
}
