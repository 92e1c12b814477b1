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
    let layout = store::detect(root, &load)?;
    let opts = usage::Options {
        shared_size: args.shared_size.map(Into::into),
    };
    let u = if args.disk {
        // One walk, run while the metadata loads: it charges the driver
        // dirs to buckets that the graph sorts into categories after.
        let driver = layout.driver.clone();
        let (snap, walked) = rayon::join(
            || store::load_layout(root, layout, &load),
            || output::with_progress(|p| reconcile::walk(root, &driver, p)),
        );
        let walked = walked?;
        let graph = Graph::build(&snap);
        let mut u = usage::compute(&graph, &opts);
        u.disk = Some(reconcile::charge(&graph, walked));
        u
    } else {
        let snap = store::load_layout(root, layout, &load);
        usage::compute(&Graph::build(&snap), &opts)
    };
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
