//! The command line's error: a single line for the user (`error: ...` on stderr, exit
//! code 1) instead of a panic or a stack trace.

use nabla_core::CoreError;
use nabla_data::DataError;
use nabla_nn::NnError;
use nabla_train::TrainError;
use std::fmt;
use std::path::Path;
use std::process::ExitCode;

/// A user-facing failure of a command.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CliError(String);

/// Result of a command.
pub type CliResult<T> = Result<T, CliError>;

impl CliError {
    /// An error with this message (line breaks are folded so it stays one line).
    pub fn new(msg: impl Into<String>) -> CliError {
        let msg: String = msg.into();
        CliError(msg.split_whitespace().collect::<Vec<_>>().join(" "))
    }

    /// An I/O failure on `path`, naming what was being done.
    pub fn io(what: &str, path: &Path, e: impl fmt::Display) -> CliError {
        CliError::new(format!("cannot {what} {}: {e}", path.display()))
    }
}

impl fmt::Display for CliError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for CliError {}

/// Library errors (tensors, modules, data, files) become one-line messages, so `?` works.
macro_rules! from_display {
    ($($t:ty),*) => {$(
        impl From<$t> for CliError {
            fn from(e: $t) -> CliError {
                CliError::new(e.to_string())
            }
        }
    )*};
}

from_display!(CoreError, NnError, DataError, std::io::Error);

impl From<TrainError> for CliError {
    fn from(e: TrainError) -> CliError {
        match e {
            // The engine knows no flags; the command line says which one helps.
            TrainError::Diverged { .. } => CliError::new(format!("{e}; try a lower --lr")),
            TrainError::Resume { path, msg } => CliError::new(format!(
                "--resume {}: {msg} (was it written for another model or optimizer?)",
                path.display()
            )),
            e => CliError::new(e.to_string()),
        }
    }
}

/// A command's failure inside a task's hook goes back through the engine as its message.
impl From<CliError> for TrainError {
    fn from(e: CliError) -> TrainError {
        TrainError::msg(e.0)
    }
}

/// Print the outcome of a command and turn it into the process's exit code.
pub fn finish(result: CliResult<()>) -> ExitCode {
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::from(1)
        }
    }
}

/// Handle a command-line parse failure: help and version go to stdout with success; a
/// usage mistake becomes clap's own message (what is missing, "a similar ... exists")
/// folded into the one-line `error: ...`, then clap's usage line, and exit code 1.
pub fn usage(e: clap::Error, mut cmd: clap::Command) -> ExitCode {
    use clap::error::ErrorKind;
    match e.kind() {
        ErrorKind::DisplayHelp | ErrorKind::DisplayVersion => {
            print!("{e}");
            ExitCode::SUCCESS
        }
        ErrorKind::DisplayHelpOnMissingArgumentOrSubcommand | ErrorKind::MissingSubcommand => {
            finish(Err(CliError::new("missing a subcommand (see --help)")))
        }
        _ => {
            let (msg, usage) = fold_clap(&e.to_string());
            let code = finish(Err(CliError::new(format!("{msg} (see --help)"))));
            // Clap leaves the usage out of some errors (an invalid value): the subcommand's.
            let usage = usage.or_else(|| {
                cmd.build();
                let sub = std::env::args().nth(1)?;
                let u = cmd.find_subcommand_mut(&sub)?.render_usage().to_string();
                u.lines().next().map(String::from)
            });
            if let Some(u) = usage {
                eprintln!("{u}");
            }
            code
        }
    }
}

/// Clap's error text as its message on one line (without `error:`) and its usage line.
fn fold_clap(text: &str) -> (String, Option<String>) {
    let mut lines = text.lines();
    let message: Vec<&str> = lines
        .by_ref()
        .take_while(|l| !l.starts_with("Usage:"))
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.starts_with("For more information"))
        .collect();
    let usage = text.lines().find(|l| l.starts_with("Usage:")).map(String::from);
    let msg = message.join(" ");
    let msg = msg.trim_start_matches("error:").trim();
    let msg = if msg.is_empty() { "invalid arguments" } else { msg };
    (msg.to_string(), usage)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn clap_errors_fold_to_one_line_and_keep_the_usage() {
        let text = "error: the following required arguments were not provided:\n  --checkpoint <FILE>\n\n\
                    Usage: nabla eval --checkpoint <FILE>\n\nFor more information, try '--help'.\n";
        let (msg, usage) = fold_clap(text);
        assert_eq!(
            msg,
            "the following required arguments were not provided: --checkpoint <FILE>"
        );
        assert_eq!(usage.as_deref(), Some("Usage: nabla eval --checkpoint <FILE>"));
    }

    #[test]
    fn messages_stay_on_one_line() {
        let e = CliError::new("bad\nthing  happened\n");
        assert_eq!(e.to_string(), "bad thing happened");
        let core = nabla_core::Error::invalid("pad2d", "oops");
        assert_eq!(CliError::from(core).to_string(), "pad2d: oops");
        let diverged = TrainError::Diverged {
            value: f64::NAN,
            epoch: 2,
            step: 7,
            last: None,
        };
        assert_eq!(
            CliError::from(diverged).to_string(),
            "training stopped: the loss became NaN at epoch 2, step 7; no checkpoint was written; try a lower --lr"
        );
        let resume = TrainError::Resume {
            path: "run/last.safetensors".into(),
            msg: "checkpoint does not fit the model".into(),
        };
        assert_eq!(
            CliError::from(resume).to_string(),
            "--resume run/last.safetensors: checkpoint does not fit the model (was it written for another model or optimizer?)"
        );
    }
}
