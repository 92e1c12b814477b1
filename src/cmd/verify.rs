use super::{Ctx, EXIT_FOUND, EXIT_OK, log, output};
use crate::cli::{Format, VerifyArgs};
use dockgc::graph::Graph;
use dockgc::render::prometheus::{Metrics, verify_metrics};
use dockgc::render::verify_table;
use dockgc::{store, verify};
use serde_json::json;

pub fn run(ctx: &Ctx, args: &VerifyArgs) -> anyhow::Result<u8> {
    let started = std::time::Instant::now();
    let _lock = super::read_lock(&ctx.root);
    let snap = store::load_with(&ctx.root, ctx.load_options(true))?;
    let graph = Graph::build(&snap);
    let opts = verify::Options {
        deep: args.deep,
        sizes: args.sizes,
        images: args.images.clone(),
    };
    let report = if args.deep {
        output::with_progress(|p| verify::run(&graph, &opts, &p.bytes))?
    } else {
        verify::run(&graph, &opts, &std::sync::atomic::AtomicU64::new(0))?
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
            "verify: {} error(s), {} warning(s), {} layer(s) checked",
            s.errors, s.warnings, s.layers_checked
        ),
        json!({"errors": s.errors, "warnings": s.warnings, "layers_checked": s.layers_checked, "bytes_hashed": s.bytes_hashed, "deep": report.deep}),
    );
    let failed = report.has_errors() || (args.strict && s.warnings > 0);
    Ok(if failed { EXIT_FOUND } else { EXIT_OK })
}
