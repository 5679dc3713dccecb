//! The run-folder flags every training workflow shares (`nabla train`, `finetune`, `caption
//! train`, `gan`, `autoencode`): where the run goes, resuming, threads and stopping early.
//!
//! A command whose run folder has another default, or whose --resume keeps its settings,
//! says so with [`out_help`] and [`RESUME_FIXED`] through `#[command(mut_arg(...))]`.

use clap::Args;
use std::path::PathBuf;

/// The run-folder flags, flattened into each workflow's flags.
#[derive(Debug, Clone, Default, Args)]
pub struct RunArgs {
    /// Run folder [default: a new runs/<model>-<dataset>/version_N; on --resume the checkpoint's folder]
    #[arg(long, short = 'o', value_name = "DIR")]
    pub out: Option<PathBuf>,
    /// Write into a non-empty --out folder (the old run's files there are removed first)
    #[arg(long)]
    pub overwrite: bool,
    /// Continue exactly from a checkpoint, in its own folder (flags given again override its settings)
    #[arg(long, value_name = "CHECKPOINT", conflicts_with = "out")]
    pub resume: Option<PathBuf>,
    /// Compute threads (0: one per core) [default: 0]
    #[arg(long, value_name = "N")]
    pub threads: Option<usize>,
    /// Stop after this many training steps (batches) in all, saving a checkpoint (as Ctrl-C does)
    #[arg(long, value_name = "STEPS")]
    pub stop_after_steps: Option<u64>,
}

/// --resume's help where a resumed run keeps its checkpoint's settings.
pub const RESUME_FIXED: &str =
    "Continue exactly from a checkpoint, in its own folder (only --epochs, --threads and --data-dir may change)";

/// --out's help for a command whose new run folders are `runs/<name>/version_N`.
pub fn out_help(name: &str) -> String {
    format!("Run folder [default: a new runs/{name}/version_N; on --resume the checkpoint's folder]")
}

impl RunArgs {
    /// Size the compute pool to --threads (0 or none: one thread per core), once, before any work.
    pub fn set_threads(&self) {
        if let Some(t) = self.threads.filter(|&t| t > 0) {
            // Fails only if the pool already exists, which it cannot before any work.
            let _ = rayon::ThreadPoolBuilder::new().num_threads(t).build_global();
        }
    }
}
