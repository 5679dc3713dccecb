//! `nabla completions SHELL`: the shell's completion script for every subcommand and flag
//! (and the names flags accept), written by clap_complete from the command's definition.

use crate::error::CliResult;
use clap::{Args, CommandFactory};
use clap_complete::Shell;

/// Print a completion script for bash, zsh, fish, elvish or powershell.
#[derive(Debug, Args)]
#[command(after_help = "Example:\n  nabla completions bash > ~/.local/share/bash-completion/completions/nabla")]
pub struct CompletionsArgs {
    /// The shell to complete in
    #[arg(value_name = "SHELL")]
    shell: Shell,
}

/// Run `nabla completions`.
pub fn run(args: CompletionsArgs) -> CliResult<()> {
    let mut cmd = crate::Cli::command();
    clap_complete::generate(args.shell, &mut cmd, "nabla", &mut std::io::stdout());
    Ok(())
}
