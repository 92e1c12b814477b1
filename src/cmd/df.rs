use super::{Ctx, EXIT_OK, output};
use crate::cli::{DfArgs, Format};
use dockgc::graph::Graph;
use dockgc::render::prometheus::{Metrics, df_metrics};
use dockgc::render::{TableOptions, df_table};
use dockgc::{reconcile, store, usage};
use std::path::Path;

pub fn run(ctx: &Ctx, args: &DfArgs) -> anyhow::Result<u8> {
    df(&ctx.root, ctx.load_options(false), args)
}

pub fn df(root: &Path, load: store::LoadOptions, args: &DfArgs) -> anyhow::Result<u8> {
    let started = std::time::Instant::now();
    let _lock = super::read_lock(root);
    let snap = store::load_with(root, load)?;
    let graph = Graph::build(&snap);
    let mut u = usage::compute(
        &graph,
        &usage::Options {
            shared_size: args.shared_size.map(Into::into),
        },
    );
    if args.disk {
        u.disk = Some(output::with_progress(|p| reconcile::disk_usage(&graph, p))?);
    }
    let prom = args.format == Format::Prometheus;
    if prom || args.textfile.is_some() {
        let mut m = Metrics::default();
        df_metrics(&mut m, &u);
        output::metrics(&mut m, "df", started, prom, args.textfile.as_deref())?;
    }
    match args.format {
        Format::Json => output::json(&u)?,
        Format::Table => output::stdout(&df_table(
            &u,
            &TableOptions {
                verbose: args.verbose,
                all: args.all,
                now: super::now(),
            },
        ))?,
        Format::Prometheus => {}
    }
    Ok(EXIT_OK)
}
