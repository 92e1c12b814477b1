use super::{Ctx, EXIT_OK, log, output};
use crate::cli::{DfArgs, Format};
use dockgc::disk::Company;
use dockgc::graph::Graph;
use dockgc::render::prometheus::{Metrics, df_metrics, df_metrics_containerd};
use dockgc::render::{TableOptions, df_table};
use dockgc::store::{ContainerdOptions, GiveUpOnDrop, SharedListings, Snapshot, graphdriver};
use dockgc::{reconcile, store, usage};
use serde_json::json;
use std::path::Path;
use std::sync::Arc;

pub fn run(ctx: &Ctx, args: &DfArgs) -> anyhow::Result<u8> {
    df(&ctx.root, ctx.load_options(false), &ctx.containerd, args)
}

pub fn df(
    root: &Path,
    load: store::LoadOptions,
    ctrd: &ContainerdOptions,
    args: &DfArgs,
) -> anyhow::Result<u8> {
    let started = std::time::Instant::now();
    let _lock = super::read_lock(root);
    if ctrd.root.is_some() || store::is_containerd(root) {
        return df_containerd(&store::open(root, ctrd, load)?, args, started);
    }
    let layout = store::detect(root, &load)?;
    let opts = usage::Options {
        shared_size: args.shared_size.map(Into::into),
    };
    let u = if args.disk {
        df_disk(root, layout, load, &opts)?
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

/// `df --disk`: one walk, run while the metadata loads and is analysed. The
/// walk takes the listings of the directories the load lists from it (no
/// directory is listed twice) and charges the driver dirs to buckets that
/// the graph sorts into categories after.
fn df_disk(
    root: &Path,
    layout: store::Layout,
    load: store::LoadOptions,
    opts: &usage::Options,
) -> anyhow::Result<usage::Usage> {
    let driver = layout.driver.clone();
    let listings = Arc::new(SharedListings::claim(
        graphdriver::Paths::new(root, &driver).listed_by_load(),
    ));
    let load = store::LoadOptions {
        share: Some(Arc::clone(&listings)),
        ..load
    };
    std::thread::scope(|s| {
        let walk = s.spawn(|| {
            let company = Company::BesideLoad(&listings);
            output::with_progress(|p| reconcile::walk(root, &driver, p, company))
        });
        // However the load ends, the walk waits for none of its claims.
        let given_up = GiveUpOnDrop(&listings);
        let snap = store::load_layout(root, layout, &load);
        drop(given_up);
        let graph = Graph::build(&snap);
        let mut u = usage::compute(&graph, opts);
        let walked = walk
            .join()
            .map_err(|_| anyhow::anyhow!("the disk walk panicked"))??;
        u.disk = Some(reconcile::charge(&graph, walked));
        Ok(u)
    })
}

/// Says once, on stderr, that a live containerd's figures are a snapshot.
pub fn note_live(snap: &Snapshot) {
    if let Some(s) = snap.containerd()
        && s.live.live
    {
        log::info(
            "containerd.live",
            &format!(
                "containerd is running on {} (it holds {}): the figures are a point-in-time \
                 snapshot read at {}",
                s.paths.root().display(),
                s.live
                    .held
                    .iter()
                    .map(|p| p.display().to_string())
                    .collect::<Vec<_>>()
                    .join(", "),
                s.read_at
            ),
            json!({"root": s.paths.root(), "held": s.live.held, "read_at": s.read_at}),
        );
    }
}

/// The containerd store's meta.db must be readable for a df.
pub fn require_meta(snap: &Snapshot) -> anyhow::Result<()> {
    if let Some(e) = snap.containerd().and_then(|s| s.meta_error.as_ref()) {
        anyhow::bail!("cannot read containerd's metadata: {e}");
    }
    Ok(())
}

fn df_containerd(
    snap: &Snapshot,
    args: &DfArgs,
    started: std::time::Instant,
) -> anyhow::Result<u8> {
    require_meta(snap)?;
    note_live(snap);
    let Some(mut u) = usage::containerd::compute(
        snap,
        &usage::containerd::Options {
            engine: args.engine_version,
        },
    ) else {
        anyhow::bail!("not a containerd snapshot");
    };
    if args.disk {
        u.disk = Some(output::with_progress(|p| {
            reconcile::containerd::disk_usage(snap, &u, p)
        })?);
    }
    let prom = args.format == Format::Prometheus;
    if prom || args.textfile.is_some() {
        let mut m = Metrics::default();
        df_metrics_containerd(&mut m, &u);
        output::metrics(&mut m, "df", started, prom, args.textfile.as_deref())?;
    }
    match args.format {
        Format::Json => output::json(&u)?,
        Format::Table => output::stdout(&dockgc::render::containerd::df_table(
            &u,
            args.verbose,
            super::now(),
        ))?,
        Format::Prometheus => {}
    }
    Ok(EXIT_OK)
}
