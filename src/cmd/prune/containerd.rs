//! `prune --dry-run` on a containerd store: what containerd's next garbage
//! collection deletes, with reasons. dockgc changes nothing there; a real
//! run is refused by `apply::mode::choose_containerd` unless a live Docker
//! 29 daemon prunes through its API.

use super::super::{EXIT_OK, output};
use crate::cli::{Format, PruneArgs};
use dockgc::holds::containerd::{Item, Orphan};
use dockgc::render::prometheus::{Metrics, df_metrics_containerd};
use dockgc::store::Snapshot;

#[derive(serde::Serialize)]
struct DryRun<'a> {
    store: &'static str,
    dry_run: bool,
    namespace: &'a str,
    collectable: &'a [Item],
    orphans: &'a [Orphan],
}

pub fn dry_run(
    snap: &Snapshot,
    args: &PruneArgs,
    started: std::time::Instant,
) -> anyhow::Result<u8> {
    super::super::df::require_meta(snap)?;
    super::super::df::note_live(snap);
    let Some(u) = dockgc::usage::containerd::compute(snap, &Default::default()) else {
        anyhow::bail!("not a containerd snapshot");
    };
    let prom = args.format == Format::Prometheus;
    if prom || args.textfile.is_some() {
        let mut m = Metrics::default();
        df_metrics_containerd(&mut m, &u);
        output::metrics(&mut m, "prune", started, prom, args.textfile.as_deref())?;
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
