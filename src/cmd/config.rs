use super::{Ctx, EXIT_OK, output};
use crate::cli::ConfigAction;

pub fn run(ctx: &Ctx, action: &ConfigAction) -> anyhow::Result<u8> {
    match action {
        ConfigAction::Check => {
            let mut out = String::new();
            match &ctx.config_path {
                Some(p) => out.push_str(&format!("# config: {} (valid)\n", p.display())),
                None => out.push_str(&format!(
                    "# config: none ({} does not exist)\n",
                    crate::config::DEFAULT_PATH
                )),
            }
            out.push_str(&format!(
                "root = {:?}\n\n[prune]\n",
                ctx.root.display().to_string()
            ));
            let text = toml::to_string(&ctx.config.prune).map_err(anyhow::Error::from)?;
            out.push_str(&text);
            output::stdout(&out)?;
            Ok(EXIT_OK)
        }
    }
}
