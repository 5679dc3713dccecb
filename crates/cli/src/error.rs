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

/// Handle a command-line parse failure: help and version go to stdout with success;
/// a usage mistake becomes the one-line `error: ...` with exit code 1.
pub fn usage(e: clap::Error) -> ExitCode {
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
            let text = e.to_string();
            let first = text
                .lines()
                .find(|l| !l.trim().is_empty())
                .unwrap_or("invalid arguments");
            let msg = first.trim().trim_start_matches("error:").trim();
            finish(Err(CliError::new(format!("{msg} (see --help)"))))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

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
