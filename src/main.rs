//! Thin shell: parse, call the library, render, map outcomes to exit codes.

use clap::Parser;
use dockgc::cli::{Cli, Command, DemoArgs, DfArgs, Format, VerifyArgs};
use dockgc::disk::Progress;
use dockgc::graph::Graph;
use dockgc::render::{self, TableOptions, df_table, verify_table};
use dockgc::{reconcile, store, usage, verify};
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
        Command::Demo(args) => demo(args),
    };
    match result {
        Ok(code) => ExitCode::from(code),
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
