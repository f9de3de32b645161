//! `docs`: man pages (clap_mangen) and bash/zsh/fish completions (clap_complete).

use anyhow::{Context, Result};
use clap::CommandFactory;
use clap_complete::Shell;

use crate::cli::{Cli, DocsArgs};

/// Writes `hostcert-server.1`, one page per subcommand, and the completion scripts to `--out`.
pub fn run(args: &DocsArgs) -> Result<()> {
    std::fs::create_dir_all(&args.out)
        .with_context(|| format!("creating {}", args.out.display()))?;
    let cmd = Cli::command();
    clap_mangen::generate_to(cmd.clone(), &args.out).context("writing man pages")?;
    for shell in [Shell::Bash, Shell::Zsh, Shell::Fish] {
        let mut cmd = cmd.clone();
        clap_complete::generate_to(shell, &mut cmd, "hostcert-server", &args.out)
            .with_context(|| format!("writing {shell} completions"))?;
    }
    println!("{}", args.out.display());
    Ok(())
}
