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
            out.push_str(&format!("root = {:?}\n", ctx.root.display().to_string()));
            if let Some(h) = &ctx.config.host {
                out.push_str(&format!("host = {:?}\n", h.get_ref()));
            }
            out.push_str("\n[prune]\n");
            let text = toml::to_string(&ctx.config.prune).map_err(anyhow::Error::from)?;
            out.push_str(&text);
            output::stdout(&out)?;
            Ok(EXIT_OK)
        }
    }
}
