//! `dockgc save`: images into a `docker save` archive, from the root.

use super::{Ctx, EXIT_FOUND, EXIT_OK, Refused, log, output};
use crate::cli::{ArchiveFormat, SaveArgs};
use dockgc::archive::{self, Format, SaveOptions, Target};
use dockgc::graph::Graph;
use dockgc::store;
use dockgc::units::human_size;
use serde_json::json;
use std::io::IsTerminal;

pub fn run(ctx: &Ctx, args: &SaveArgs) -> anyhow::Result<u8> {
    let to_stdout = args.output.as_os_str() == "-";
    if to_stdout && std::io::stdout().is_terminal() {
        // As `docker save` does: an archive on a terminal helps no one.
        return Err(Refused(
            "refusing to write an archive to a terminal: give -o FILE or redirect stdout".into(),
        )
        .into());
    }
    let _lock = super::read_lock(&ctx.root);
    let snap = store::load_with(&ctx.root, ctx.load_options(true))?;
    let graph = Graph::build(&snap);
    let opts = SaveOptions {
        images: args.images.clone(),
        format: match args.format {
            ArchiveFormat::DockerArchive => Format::DockerArchive,
            ArchiveFormat::Oci => Format::Oci,
        },
        gzip: (args.gzip || args.gzip_level.is_some()).then(|| args.gzip_level.unwrap_or(6)),
    };
    let result = output::with_progress_as("saving", |p| {
        if to_stdout {
            let mut out = output::stdout_file()?;
            archive::save(&graph, &opts, Target::Stream(&mut out), &p.bytes)
        } else {
            archive::save(&graph, &opts, Target::File(&args.output), &p.bytes)
        }
    });
    let dest = if to_stdout {
        "stdout".to_string()
    } else {
        args.output.display().to_string()
    };
    match result {
        Ok(r) => {
            log::info(
                "save.done",
                &format!(
                    "saved {} image(s), {} layer(s), {} to {dest}",
                    r.images.len(),
                    r.layers,
                    human_size(r.archive_bytes)
                ),
                json!({"output": dest, "report": r}),
            );
            Ok(EXIT_OK)
        }
        Err(e) => {
            let what = if to_stdout {
                "the archive on stdout is incomplete"
            } else {
                "nothing was written"
            };
            if e.is_damage() {
                log::error("save.damaged", &format!("{e}; {what}"));
                Ok(EXIT_FOUND)
            } else {
                Err(anyhow::anyhow!("{e}; {what}"))
            }
        }
    }
}
