//! The `nabla` command line: one subcommand per file, dispatched from the table below.
//!
//! Errors a user can cause print one line, `error: ...`, and exit with code 1.

mod error;
mod filter;
mod image_io;
mod matching;

use clap::{Parser, Subcommand};
use std::process::ExitCode;

/// nabla: a deep-learning framework's command line.
#[derive(Debug, Parser)]
#[command(name = "nabla", version, about)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

/// The subcommands; each lives in its own module with `Args` and `run`.
#[derive(Debug, Subcommand)]
enum Command {
    /// Correlate or convolve an image with a kernel.
    Filter(filter::FilterArgs),
    /// Find a template in an image by normalized cross-correlation.
    Match(matching::MatchArgs),
}

fn main() -> ExitCode {
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        Err(e) => return error::usage(e),
    };
    error::finish(match cli.command {
        Command::Filter(args) => filter::run(args),
        Command::Match(args) => matching::run(args),
    })
}
