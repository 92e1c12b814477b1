//! `dockgc export`: an image's flattened root filesystem, from the root.

use super::{Ctx, EXIT_FOUND, EXIT_OK, Refused, log, output};
use crate::cli::ExportArgs;
use dockgc::archive::{self, ArchiveError, ExportOptions, ExportTarget, Target};
use dockgc::graph::Graph;
use dockgc::store;
use dockgc::units::human_size;
use serde_json::json;
use std::io::IsTerminal;

pub fn run(ctx: &Ctx, args: &ExportArgs) -> anyhow::Result<u8> {
    let to_stdout = args.output.as_ref().is_some_and(|o| o.as_os_str() == "-");
    if to_stdout && std::io::stdout().is_terminal() {
        return Err(Refused(
            "refusing to write a tar to a terminal: give -o FILE, --dir DIR or redirect stdout"
                .into(),
        )
        .into());
    }
    let _lock = super::read_lock(&ctx.root);
    let snap = store::load_with(&ctx.root, ctx.load_options(true))?;
    let graph = Graph::build(&snap);
    let opts = ExportOptions {
        image: args.image.clone(),
        container_files: !args.image_only,
        now: super::now(),
    };
    let result = output::with_progress_as("exporting", |p| match (&args.output, &args.dir) {
        (_, Some(dir)) => archive::export(&graph, &opts, ExportTarget::Dir(dir), &p.bytes),
        (Some(_), None) if to_stdout => {
            let mut out = output::stdout_file()?;
            archive::export(
                &graph,
                &opts,
                ExportTarget::Tar(Target::Stream(&mut out)),
                &p.bytes,
            )
        }
        (Some(file), None) => archive::export(
            &graph,
            &opts,
            ExportTarget::Tar(Target::File(file)),
            &p.bytes,
        ),
        (None, None) => unreachable!("clap requires -o or --dir"),
    });
    let dest = match (&args.output, &args.dir) {
        (_, Some(d)) => d.display().to_string(),
        _ if to_stdout => "stdout".to_string(),
        (Some(f), _) => f.display().to_string(),
        (None, None) => String::new(),
    };
    match result {
        Ok(r) => {
            log::info(
                "export.done",
                &format!(
                    "exported {} ({} layer(s)): {} entries, {} in {} files to {dest}",
                    args.image,
                    r.layers,
                    r.entries,
                    human_size(r.bytes),
                    r.files
                ),
                json!({"output": dest, "report": r}),
            );
            Ok(EXIT_OK)
        }
        Err(e) => {
            let what = match (&args.dir, to_stdout) {
                // Refused before anything was made.
                (Some(_), _) if matches!(e, ArchiveError::Output { .. }) => "nothing was changed",
                (Some(d), _) => &format!("{} was left as it was found", d.display()),
                (None, true) => "the tar on stdout is incomplete",
                (None, false) => "nothing was written",
            };
            if e.is_damage() {
                log::error("export.damaged", &format!("{e}; {what}"));
                Ok(EXIT_FOUND)
            } else {
                Err(anyhow::anyhow!("{e}; {what}"))
            }
        }
    }
}
