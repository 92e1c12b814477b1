use super::{Ctx, EXIT_OK, Refused, log, output};
use crate::cli::{Format, TrashAction};
use dockgc::render::tabwriter::Table;
use dockgc::{apply, trash};
use serde_json::json;

pub fn run(ctx: &Ctx, action: &TrashAction) -> anyhow::Result<u8> {
    let root = &ctx.root;
    let busy = |b: apply::mode::Refusal| {
        Refused(format!(
            "refusing to change {}: {}",
            root.display(),
            b.after_root(root)
        ))
    };
    match action {
        TrashAction::List { format } => {
            let entries =
                trash::list(root).map_err(|e| anyhow::anyhow!("{}: {e}", root.display()))?;
            match format {
                Format::Json => output::json(&entries)?,
                Format::Table => {
                    let mut t = Table::new(["ID", "CREATED", "ITEMS", "SIZE"]);
                    for e in &entries {
                        t.row([
                            e.id.clone(),
                            e.created.clone(),
                            e.items.to_string(),
                            dockgc::units::human_size(e.bytes),
                        ]);
                    }
                    output::stdout(&t.render())?;
                }
                Format::Prometheus => {
                    return Err(Refused(
                        "--format prometheus is for df, verify, prune and apply".into(),
                    )
                    .into());
                }
            }
        }
        TrashAction::Restore { id } => {
            let _mode =
                apply::mode::choose(root, apply::mode::Want::Offline, None).map_err(busy)?;
            let n = trash::restore(root, id).map_err(|e| anyhow::anyhow!("restore {id}: {e}"))?;
            log::info(
                "trash.restored",
                &format!("restored {n} item(s) from {id}"),
                json!({"id": id, "items": n}),
            );
        }
        TrashAction::Empty { older_than } => {
            let _mode =
                apply::mode::choose(root, apply::mode::Want::Offline, None).map_err(busy)?;
            let gone = trash::empty(root, *older_than, super::now())
                .map_err(|e| anyhow::anyhow!("{}: {e}", root.display()))?;
            log::info(
                "trash.emptied",
                &format!(
                    "emptied {} trash entr{}",
                    gone.len(),
                    if gone.len() == 1 { "y" } else { "ies" }
                ),
                json!({"ids": gone}),
            );
        }
    }
    Ok(EXIT_OK)
}
