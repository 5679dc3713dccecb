//! Reading `--from`: a nabla checkpoint (its model's tensors and run metadata) or a plain
//! safetensors state dict (torchvision's names), and the report of what was loaded.

use crate::error::{CliError, CliResult};
use crate::trainer::setup::RunMeta;
use nabla_core::Tensor;
use nabla_nn::checkpoint::{Checkpoint, FORMAT};
use nabla_nn::state_dict::TransferReport;
use std::path::{Path, PathBuf};

/// The weights finetune starts from.
pub struct Source {
    /// The file.
    pub path: PathBuf,
    /// The model's tensors by name.
    pub tensors: Vec<(String, Tensor)>,
    /// The run that wrote it, for a checkpoint of `nabla train` (or `finetune`).
    pub meta: Option<RunMeta>,
}

impl Source {
    /// The shape of the tensor `name`, if the file has it.
    pub fn shape(&self, name: &str) -> Option<&[usize]> {
        self.tensors.iter().find(|(n, _)| n == name).map(|(_, t)| t.shape())
    }

    /// A loading error as one line naming the file.
    pub fn error(&self, e: &nabla_nn::Error) -> CliError {
        let msg = e.to_string();
        let msg = msg.strip_prefix("load_state_dict: ").unwrap_or(&msg);
        let names: Vec<&str> = self.tensors.iter().take(4).map(|(n, _)| n.as_str()).collect();
        let more = if self.tensors.len() > 4 { ", ..." } else { "" };
        CliError::new(format!(
            "--from {}: does not fit the model: {msg} (the file holds {} tensors: {}{more})",
            self.path.display(),
            self.tensors.len(),
            names.join(", ")
        ))
    }
}

/// Read `--from`.
pub fn read(path: &Path) -> CliResult<Source> {
    let p = path.display();
    if !path.is_file() {
        return Err(CliError::new(format!("--from {p}: no such file")));
    }
    let (tensors, metadata) = nabla_nn::load_tensors(path).map_err(|e| {
        CliError::new(format!(
            "--from {p}: not a safetensors file ({e}); convert PyTorch weights with \
             safetensors.torch.save_file(model.state_dict(), PATH)"
        ))
    })?;
    if metadata.get("format").map(String::as_str) != Some(FORMAT) {
        return Ok(Source {
            path: path.to_path_buf(),
            tensors,
            meta: None,
        });
    }
    let ck = Checkpoint::load(path).map_err(|e| CliError::new(format!("--from {p}: {e}")))?;
    // A checkpoint of another command (no run metadata) still gives its tensors.
    let meta = RunMeta::from_checkpoint(&ck, path).ok();
    Ok(Source {
        path: path.to_path_buf(),
        tensors: ck.model,
        meta,
    })
}

/// Print what was loaded, replaced and left out.
pub fn print_report(path: &Path, r: &TransferReport) {
    println!("loaded {} tensors from {}", r.loaded.len(), path.display());
    if !r.replaced.is_empty() {
        let parts: Vec<String> = r
            .replaced
            .iter()
            .map(|(n, old, new)| match old {
                Some(o) => format!("{n} {o:?}→{new:?}"),
                None => format!("{n} (not in the file) {new:?}"),
            })
            .collect();
        println!("replaced (fresh, seeded): {}", parts.join(", "));
    }
    if !r.left_out.is_empty() {
        println!("left out (not in the model): {}", r.left_out.join(", "));
    }
}
