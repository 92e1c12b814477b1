//! Thin shell: parse, call the library, render, map outcomes to exit codes.

use clap::Parser;
use dockgc::cli::{
    ApplyArgs, Cli, Command, DemoArgs, DfArgs, Format, PruneArgs, TrashAction, VerifyArgs,
};
use dockgc::disk::Progress;
use dockgc::graph::Graph;
use dockgc::render::{self, TableOptions, df_table, outcome_table, plan_table, verify_table};
use dockgc::{apply, plan, policy, reconcile, store, trash, usage, verify};
use std::io::{IsTerminal, Write};
use std::path::Path;
use std::process::ExitCode;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

/// Exit statuses (README, "Exit status").
const EXIT_OK: u8 = 0;
const EXIT_FOUND: u8 = 1;
const EXIT_CANNOT_RUN: u8 = 2;

fn main() -> ExitCode {
    let cli = match Cli::try_parse() {
        Ok(c) => c,
        Err(e) => {
            let code = if e.use_stderr() {
                EXIT_CANNOT_RUN
            } else {
                EXIT_OK
            };
            let _ = e.print();
            return ExitCode::from(code);
        }
    };
    let result = match &cli.command {
        Command::Df(args) => df(&cli.root, args),
        Command::Verify(args) => verify_cmd(&cli.root, args),
        Command::Prune(args) => prune_cmd(&cli.root, args),
        Command::Apply(args) => apply_cmd(&cli.root, args),
        Command::Trash { action } => trash_cmd(&cli.root, action),
        Command::Demo(args) => demo(args),
        Command::Completions { shell } => {
            let mut cmd = <Cli as clap::CommandFactory>::command();
            let mut buf = Vec::new();
            clap_complete::generate(*shell, &mut cmd, "dockgc", &mut buf);
            write_stdout(&String::from_utf8_lossy(&buf)).map(|_| EXIT_OK)
        }
        Command::Man { dir: Some(dir) } => {
            clap_mangen::generate_to(<Cli as clap::CommandFactory>::command(), dir)
                .map(|_| EXIT_OK)
                .map_err(|e| anyhow::anyhow!("{}: {e}", dir.display()))
        }
        Command::Man { dir: None } => {
            let mut buf = Vec::new();
            clap_mangen::Man::new(<Cli as clap::CommandFactory>::command())
                .render(&mut buf)
                .map_err(anyhow::Error::from)
                .and_then(|_| write_stdout(&String::from_utf8_lossy(&buf)))
                .map(|_| EXIT_OK)
        }
    };
    match result {
        Ok(code) => ExitCode::from(code),
        Err(e) if e.downcast_ref::<Refused>().is_some() => {
            eprintln!("dockgc: {e}");
            ExitCode::from(EXIT_CANNOT_RUN)
        }
        Err(e) => {
            eprintln!("dockgc: {e:#}");
            ExitCode::from(EXIT_CANNOT_RUN)
        }
    }
}

fn df(root: &Path, args: &DfArgs) -> anyhow::Result<u8> {
    let snap = store::load(root)?;
    let graph = Graph::build(&snap);
    let mut u = usage::compute(
        &graph,
        &usage::Options {
            shared_size: args.shared_size,
        },
    );
    if args.disk {
        u.disk = Some(with_progress(|p| reconcile::disk_usage(&graph, p))?);
    }
    let text = match args.format {
        Format::Json => return write_json(&u).map(|_| EXIT_OK),
        Format::Table => df_table(
            &u,
            &TableOptions {
                verbose: args.verbose,
                all: args.all,
                now: jiff::Timestamp::now().as_second(),
            },
        ),
    };
    write_stdout(&text)?;
    Ok(EXIT_OK)
}

fn verify_cmd(root: &Path, args: &VerifyArgs) -> anyhow::Result<u8> {
    let snap = store::load(root)?;
    let graph = Graph::build(&snap);
    let opts = verify::Options {
        deep: args.deep,
        sizes: args.sizes,
        images: args.images.clone(),
    };
    let report = if args.deep {
        with_progress(|p| verify::run(&graph, &opts, &p.bytes))?
    } else {
        verify::run(&graph, &opts, &std::sync::atomic::AtomicU64::new(0))?
    };
    match args.format {
        Format::Json => write_json(&report)?,
        Format::Table => write_stdout(&verify_table(&report))?,
    }
    let failed = report.has_errors() || (args.strict && report.summary.warnings > 0);
    Ok(if failed { EXIT_FOUND } else { EXIT_OK })
}

/// A refusal: printed as is, exit status 2.
#[derive(Debug)]
struct Refused(String);

impl std::fmt::Display for Refused {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for Refused {}

fn now() -> i64 {
    jiff::Timestamp::now().as_second()
}

fn fs_stats(root: &Path) -> anyhow::Result<policy::FsStats> {
    use std::os::unix::ffi::OsStrExt;
    let c = std::ffi::CString::new(root.as_os_str().as_bytes())?;
    let mut st: libc::statvfs = unsafe { std::mem::zeroed() };
    // SAFETY: `c` is NUL-terminated and `st` is a valid out-pointer.
    if unsafe { libc::statvfs(c.as_ptr(), &mut st) } != 0 {
        anyhow::bail!(
            "{}: statvfs: {}",
            root.display(),
            std::io::Error::last_os_error()
        );
    }
    let f = st.f_frsize as u64;
    Ok(policy::FsStats {
        total: st.f_blocks as u64 * f,
        available: st.f_bavail as u64 * f,
    })
}

fn policy_options(root: &Path, a: &PruneArgs) -> anyhow::Result<policy::Options> {
    let now = now();
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
        age_by: a.age_by,
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

fn write_plan_file(path: &Path, p: &plan::Plan) -> anyhow::Result<()> {
    let dir = path
        .parent()
        .filter(|d| !d.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    let mut tmp = tempfile::NamedTempFile::new_in(dir)
        .map_err(|e| anyhow::anyhow!("{}: {e}", path.display()))?;
    serde_json::to_writer_pretty(&mut tmp, p)?;
    tmp.write_all(b"\n")?;
    tmp.persist(path)
        .map_err(|e| anyhow::anyhow!("{}: {}", path.display(), e.error))?;
    Ok(())
}

#[derive(serde::Serialize)]
struct PruneReport<'a> {
    dry_run: bool,
    plan: &'a plan::Plan,
    outcome: Option<&'a apply::Outcome>,
}

fn prune_cmd(root: &Path, a: &PruneArgs) -> anyhow::Result<u8> {
    let opts = policy_options(root, a)?;
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
        eprintln!("dockgc: warning: {b}; a prune would be refused now");
    }
    let snap = store::load(root)?;
    let graph = Graph::build(&snap);
    let sel = policy::select(&graph, &opts);
    let p = plan::build(
        &graph,
        &sel,
        &plan::OrphanOptions {
            enabled: a.orphans,
            grace: a.grace,
            now: opts.now,
        },
        jiff::Timestamp::now().to_string(),
    );
    if let Some(path) = &a.plan_out {
        write_plan_file(path, &p)?;
    }
    if a.dry_run || p.is_empty() {
        emit(a.format, a.dry_run, &p, None)?;
        return Ok(EXIT_OK);
    }
    run_plan(&graph, &p, a.yes, a.trash, a.format)
}

fn apply_cmd(root: &Path, a: &ApplyArgs) -> anyhow::Result<u8> {
    let _guard = store::daemon::guard(root)
        .map_err(|b| Refused(format!("refusing to apply to {}: {b}", root.display())))?;
    let text = std::fs::read(&a.plan).map_err(|e| anyhow::anyhow!("{}: {e}", a.plan.display()))?;
    let p: plan::Plan = serde_json::from_slice(&text)
        .map_err(|e| anyhow::anyhow!("{}: not a dockgc plan: {e}", a.plan.display()))?;
    let snap = store::load(root)?;
    let graph = Graph::build(&snap);
    run_plan(&graph, &p, a.yes, a.trash, a.format)
}

/// Validates, confirms and applies; shared by `prune` and `apply`, so a plan
/// from `--plan-out` and a direct run go through the same checks.
fn run_plan(
    graph: &Graph,
    p: &plan::Plan,
    yes: bool,
    to_trash: bool,
    format: Format,
) -> anyhow::Result<u8> {
    if let Err(why) = apply::validate(graph, p) {
        return Err(Refused(format!(
            "refusing the plan: the store changed since it was made:\n  {}",
            why.join("\n  ")
        ))
        .into());
    }
    if format == Format::Table {
        write_stdout(&plan_table(p, false))?;
    }
    if !confirm(yes, &format!("Remove these from {}?", p.root.display()))? {
        eprintln!("dockgc: nothing changed");
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
    match format {
        Format::Json => emit(format, false, p, Some(&outcome))?,
        Format::Table => write_stdout(&outcome_table(&outcome))?,
    }
    Ok(if outcome.complete() {
        EXIT_OK
    } else {
        EXIT_FOUND
    })
}

fn emit(
    format: Format,
    dry_run: bool,
    p: &plan::Plan,
    outcome: Option<&apply::Outcome>,
) -> anyhow::Result<()> {
    match format {
        Format::Json => write_json(&PruneReport {
            dry_run,
            plan: p,
            outcome,
        }),
        Format::Table => write_stdout(&plan_table(p, true)),
    }
}

fn trash_cmd(root: &Path, action: &TrashAction) -> anyhow::Result<u8> {
    let busy =
        |b: store::daemon::Busy| Refused(format!("refusing to change {}: {b}", root.display()));
    match action {
        TrashAction::List { format } => {
            let entries =
                trash::list(root).map_err(|e| anyhow::anyhow!("{}: {e}", root.display()))?;
            match format {
                Format::Json => write_json(&entries)?,
                Format::Table => {
                    let mut t =
                        dockgc::render::tabwriter::Table::new(["ID", "CREATED", "ITEMS", "SIZE"]);
                    for e in &entries {
                        t.row([
                            e.id.clone(),
                            e.created.clone(),
                            e.items.to_string(),
                            dockgc::units::human_size(e.bytes),
                        ]);
                    }
                    write_stdout(&t.render())?;
                }
            }
        }
        TrashAction::Restore { id } => {
            let _g = store::daemon::guard(root).map_err(busy)?;
            let n = trash::restore(root, id).map_err(|e| anyhow::anyhow!("restore {id}: {e}"))?;
            eprintln!("dockgc: restored {n} item(s) from {id}");
        }
        TrashAction::Empty { older_than } => {
            let _g = store::daemon::guard(root).map_err(busy)?;
            let gone = trash::empty(root, *older_than, now())
                .map_err(|e| anyhow::anyhow!("{}: {e}", root.display()))?;
            eprintln!(
                "dockgc: emptied {} trash entr{}",
                gone.len(),
                if gone.len() == 1 { "y" } else { "ies" }
            );
        }
    }
    Ok(EXIT_OK)
}

/// Writes a small synthetic root and reports on it, so a person without a
/// Docker root can see what dockgc shows.
fn demo(args: &DemoArgs) -> anyhow::Result<u8> {
    let tmp;
    let root = match &args.dir {
        Some(d) => {
            if d.exists() {
                anyhow::bail!(
                    "{}: already exists; demo writes a new root there",
                    d.display()
                );
            }
            d.clone()
        }
        None => {
            tmp = tempfile::Builder::new().prefix("dockgc-demo-").tempdir()?;
            tmp.path().join("docker")
        }
    };
    let report = dockgc::synth::generate(&root, &dockgc::synth::SynthSpec::demo())
        .map_err(|e| anyhow::anyhow!("{}: cannot write the demo root: {e}", root.display()))?;
    eprintln!(
        "dockgc demo: wrote a synthetic Docker root with {} images, {} layers and {} containers at {}{}",
        report.images,
        report.layers,
        report.containers,
        root.display(),
        if args.dir.is_some() {
            ""
        } else {
            " (removed on exit; use --dir to keep it)"
        }
    );
    eprintln!(
        "dockgc demo: running `dockgc --root {} df{}`\n",
        root.display(),
        if args.verbose { " -v" } else { "" }
    );
    df(
        &root,
        &DfArgs {
            verbose: args.verbose,
            all: false,
            format: Format::Table,
            disk: true,
            shared_size: None,
        },
    )
}

/// Runs `work`, showing a spinner on stderr if it takes over a second and
/// stderr is a terminal.
fn with_progress<T>(work: impl FnOnce(&Progress) -> T + Send) -> T
where
    T: Send,
{
    let progress = Progress::default();
    let done = AtomicBool::new(false);
    std::thread::scope(|s| {
        if std::io::stderr().is_terminal() {
            s.spawn(|| {
                for _ in 0..10 {
                    std::thread::sleep(Duration::from_millis(100));
                    if done.load(Ordering::Relaxed) {
                        return;
                    }
                }
                let bar = indicatif::ProgressBar::new_spinner();
                let start = std::time::Instant::now();
                while !done.load(Ordering::Relaxed) {
                    let bytes = progress.bytes.load(Ordering::Relaxed);
                    let rate = bytes as f64 / start.elapsed().as_secs_f64().max(0.001);
                    let entries = progress.entries.load(Ordering::Relaxed);
                    bar.set_message(if entries > 0 {
                        format!(
                            "walking: {entries} entries, {}",
                            dockgc::units::human_size(bytes)
                        )
                    } else {
                        format!(
                            "hashing: {} ({}/s)",
                            dockgc::units::human_size(bytes),
                            dockgc::units::human_size(rate as u64)
                        )
                    });
                    bar.tick();
                    std::thread::sleep(Duration::from_millis(100));
                }
                bar.finish_and_clear();
            });
        }
        let out = work(&progress);
        done.store(true, Ordering::Relaxed);
        out
    })
}

/// Streams JSON to stdout (a 10,000-image report is megabytes; no need to
/// hold it twice), treating a closed pipe as success.
fn write_json<T: serde::Serialize>(value: &T) -> anyhow::Result<()> {
    let out = std::io::BufWriter::new(std::io::stdout().lock());
    match render::json_to(out, value) {
        Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => Ok(()),
        other => Ok(other?),
    }
}

/// Writes to stdout, treating a closed pipe (`dockgc df | head`) as success.
fn write_stdout(text: &str) -> anyhow::Result<()> {
    let mut out = std::io::stdout().lock();
    match out.write_all(text.as_bytes()).and_then(|_| out.flush()) {
        Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => Ok(()),
        other => Ok(other?),
    }
}
