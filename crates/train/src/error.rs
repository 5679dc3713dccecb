//! The engine's error: the library errors a task or the loop can meet, and the loop's own
//! stops (a diverging loss, a checkpoint that does not fit).

use std::path::PathBuf;

/// A failure of training.
#[derive(Debug, thiserror::Error)]
pub enum TrainError {
    /// A tensor operation failed.
    #[error(transparent)]
    Core(#[from] nabla_core::CoreError),
    /// A module, loss, optimizer or checkpoint failed.
    #[error(transparent)]
    Nn(#[from] nabla_nn::NnError),
    /// A data set or loader failed.
    #[error(transparent)]
    Data(#[from] nabla_data::DataError),
    /// Reading or writing a file failed; `what` says what was being done.
    #[error("cannot {what} {}: {source}", path.display())]
    Io {
        /// What was being done ("write", "create output directory").
        what: &'static str,
        /// The file or folder.
        path: PathBuf,
        /// The operating system's error.
        source: std::io::Error,
    },
    /// The training loss became NaN or infinite; nothing was saved after it.
    #[error(
        "training stopped: the loss became {} at epoch {epoch}, step {step}; {}",
        if value.is_nan() { "NaN" } else { "infinite" },
        match last { Some(p) => format!("the last good checkpoint is {}", p.display()), None => "no checkpoint was written".into() }
    )]
    Diverged {
        /// The offending value.
        value: f64,
        /// The 1-based epoch it happened in.
        epoch: u64,
        /// The 1-based step it happened at.
        step: u64,
        /// The last checkpoint written before it, if any.
        last: Option<PathBuf>,
    },
    /// A checkpoint to resume from does not fit the task's models, optimizers or schedules.
    #[error("cannot resume from {}: {msg}", path.display())]
    Resume {
        /// The checkpoint.
        path: PathBuf,
        /// What does not fit.
        msg: String,
    },
    /// Anything else, said in one line (a task's own failure).
    #[error("{0}")]
    Msg(String),
}

/// Result of the engine and of a task's hooks.
pub type Result<T> = std::result::Result<T, TrainError>;

impl TrainError {
    /// A task's own failure, as a message.
    pub fn msg(m: impl Into<String>) -> TrainError {
        TrainError::Msg(m.into())
    }

    /// An I/O failure on `path` while doing `what`.
    pub fn io(what: &'static str, path: impl Into<PathBuf>, source: std::io::Error) -> TrainError {
        TrainError::Io {
            what,
            path: path.into(),
            source,
        }
    }
}
