use super::log;
use crate::cli::{DemoArgs, DfArgs, Format};
use serde_json::json;

/// Writes a small synthetic root and reports on it, so a person without a
/// Docker root can see what dockgc shows.
pub fn run(args: &DemoArgs) -> anyhow::Result<u8> {
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
    log::info(
        "demo.root",
        &format!(
            "demo: wrote a synthetic Docker root with {} images, {} layers and {} containers at {}{}",
            report.images,
            report.layers,
            report.containers,
            root.display(),
            if args.dir.is_some() {
                ""
            } else {
                " (removed on exit; use --dir to keep it)"
            }
        ),
        json!({"root": root}),
    );
    log::info(
        "demo.run",
        &format!(
            "demo: running `dockgc --root {} df --disk{}`\n",
            root.display(),
            if args.verbose { " -v" } else { "" }
        ),
        json!({}),
    );
    super::df::df(
        &root,
        dockgc::store::LoadOptions::default(),
        &Default::default(),
        &DfArgs {
            verbose: args.verbose,
            all: false,
            format: Format::Table,
            disk: true,
            shared_size: None,
            engine_version: None,
            textfile: None,
        },
    )
}
