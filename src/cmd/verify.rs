use super::{Ctx, EXIT_FOUND, EXIT_OK, Refused, log, output};
use crate::cli::{Format, VerifyArgs};
use dockgc::graph::Graph;
use dockgc::render::prometheus::{Metrics, verify_metrics};
use dockgc::render::verify_table;
use dockgc::{store, verify};
use serde_json::json;

pub fn run(ctx: &Ctx, args: &VerifyArgs) -> anyhow::Result<u8> {
    let started = std::time::Instant::now();
    let _lock = super::read_lock(&ctx.root);
    let snap = store::open(&ctx.root, &ctx.containerd, ctx.load_options(true))?;
    let report = if snap.containerd().is_some() {
        if !args.images.is_empty() || args.sizes {
            return Err(Refused(
                "--image and --sizes apply to graphdriver roots; a containerd store is \
                 verified whole (quick, or --deep)"
                    .into(),
            )
            .into());
        }
        super::df::note_live(&snap);
        let opts = verify::containerd::Options { deep: args.deep };
        let r = if args.deep {
            output::with_progress(|p| verify::containerd::run(&snap, &opts, &p.bytes))
        } else {
            verify::containerd::run(&snap, &opts, &std::sync::atomic::AtomicU64::new(0))
        };
        r.ok_or_else(|| anyhow::anyhow!("not a containerd snapshot"))?
    } else {
        let graph = Graph::build(&snap);
        let opts = verify::Options {
            deep: args.deep,
            sizes: args.sizes,
            images: args.images.clone(),
        };
        if args.deep {
            output::with_progress(|p| verify::run(&graph, &opts, &p.bytes))?
        } else {
            verify::run(&graph, &opts, &std::sync::atomic::AtomicU64::new(0))?
        }
    };
    let prom = args.format == Format::Prometheus;
    if prom || args.textfile.is_some() {
        let mut m = Metrics::default();
        verify_metrics(&mut m, &report);
        output::metrics(&mut m, "verify", started, prom, args.textfile.as_deref())?;
    }
    match args.format {
        Format::Json => output::json(&report)?,
        Format::Table => output::stdout(&verify_table(&report))?,
        Format::Prometheus => {}
    }
    let s = &report.summary;
    // Errors are logged as errors, so `--quiet` in cron still reports damage.
    let level = if s.errors > 0 {
        log::Level::Error
    } else {
        log::Level::Info
    };
    log::event(
        level,
        "verify.done",
        &format!(
            "verify: {} error(s), {} warning(s), {} {} checked",
            s.errors,
            s.warnings,
            if report.store == "containerd" {
                s.blobs_checked + s.snapshots_checked
            } else {
                s.layers_checked
            },
            if report.store == "containerd" {
                "blob(s) and snapshot(s)"
            } else {
                "layer(s)"
            }
        ),
        json!({"errors": s.errors, "warnings": s.warnings, "layers_checked": s.layers_checked, "bytes_hashed": s.bytes_hashed, "deep": report.deep}),
    );
    let failed = report.has_errors() || (args.strict && s.warnings > 0);
    Ok(if failed { EXIT_FOUND } else { EXIT_OK })
}
