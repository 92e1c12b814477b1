//! Thin shell: parse, load the config, dispatch to a command handler
//! (`src/cmd/`), map outcomes to exit statuses.

mod cli;
mod cmd;
mod config;
mod malloc_tuning;
mod options;

use clap::Parser;
use cli::{Cli, Command};
use cmd::{Ctx, EXIT_CANNOT_RUN, EXIT_OK, Refused, log, output};
use std::path::PathBuf;
use std::process::ExitCode;

fn main() -> ExitCode {
    malloc_tuning::apply();
    let cli = match Cli::try_parse() {
        Ok(c) => c,
        Err(e) => {
            let code = if e.use_stderr() {
                EXIT_CANNOT_RUN
            } else {
                EXIT_OK
            };
            let _ = e.print();
            return ExitCode::from(code);
        }
    };
    log::init(cli.log_format, cli.quiet);
    match run(&cli) {
        Ok(code) => ExitCode::from(code),
        Err(e) => {
            let msg = if e.downcast_ref::<Refused>().is_some() {
                e.to_string()
            } else {
                format!("{e:#}")
            };
            log::error("error", &msg);
            ExitCode::from(EXIT_CANNOT_RUN)
        }
    }
}

fn run(cli: &Cli) -> anyhow::Result<u8> {
    // Commands that need no root or config.
    match &cli.command {
        Command::Demo(args) => return cmd::demo::run(args),
        Command::Completions { shell } => {
            let mut c = <Cli as clap::CommandFactory>::command();
            let mut buf = Vec::new();
            clap_complete::generate(*shell, &mut c, "dockgc", &mut buf);
            output::stdout(&String::from_utf8_lossy(&buf))?;
            return Ok(EXIT_OK);
        }
        Command::Man { dir: Some(dir) } => {
            clap_mangen::generate_to(<Cli as clap::CommandFactory>::command(), dir)
                .map_err(|e| anyhow::anyhow!("{}: {e}", dir.display()))?;
            return Ok(EXIT_OK);
        }
        Command::Man { dir: None } => {
            let mut buf = Vec::new();
            clap_mangen::Man::new(<Cli as clap::CommandFactory>::command()).render(&mut buf)?;
            output::stdout(&String::from_utf8_lossy(&buf))?;
            return Ok(EXIT_OK);
        }
        _ => {}
    }
    let (config_path, config) = config::load(cli.config.as_deref())?;
    let root = cli
        .root
        .clone()
        .or_else(|| config.root.clone())
        .unwrap_or_else(|| PathBuf::from("/var/lib/docker"));
    // Absolute, so a saved plan names the same root from any directory.
    let root = std::fs::canonicalize(&root).unwrap_or(root);
    let ctx = Ctx {
        root,
        containerd: dockgc::store::ContainerdOptions {
            root: cli
                .containerd_root
                .as_ref()
                .map(|r| std::fs::canonicalize(r).unwrap_or_else(|_| r.clone())),
            namespace: cli.namespace.clone(),
        },
        driver: cli.driver.clone(),
        config,
        config_path,
    };
    match &cli.command {
        Command::Df(args) => cmd::df::run(&ctx, args),
        Command::Verify(args) => cmd::verify::run(&ctx, args),
        Command::Prune(args) => cmd::prune::run(&ctx, args),
        Command::Apply(args) => cmd::prune::apply_file(&ctx, args),
        Command::Save(args) => cmd::save::run(&ctx, args),
        Command::Export(args) => cmd::export::run(&ctx, args),
        Command::Trash { action } => cmd::trash::run(&ctx, action),
        Command::Config { action } => cmd::config::run(&ctx, action),
        Command::Demo(_) | Command::Completions { .. } | Command::Man { .. } => {
            unreachable!("handled above")
        }
    }
}
