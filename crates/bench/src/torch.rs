//! The PyTorch side: find a Python with torch, run a reference script's sections and
//! read back the figures it prints (`matmul 1024: 191.8 GFLOP/s (11.20 ms)`).

use crate::Settings;
use std::path::{Path, PathBuf};
use std::process::Command;

/// Where the reference script lives when `NABLA_TORCH_SCRIPT` is not set: the shared
/// folder next to the repository.
const DEFAULT_SCRIPT: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../../../shared/bench/torch_reference.py");

/// The generative models' script, kept in the repository with the benchmark.
const GENERATIVE_SCRIPT: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/torch/generative.py");

/// The scene tasks' script.
const SCENES_SCRIPT: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/torch/scenes.py");

/// The detection ops' script (torchvision.ops).
const DETECT_SCRIPT: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/torch/detect.py");
/// The detector's twin (torchvision's detection parts).
const FRCNN_SCRIPT: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/torch/frcnn.py");
/// The recurrent layers' script.
const RNN_SCRIPT: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/torch/rnn.py");

/// Which PyTorch script measures a section.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Script {
    /// `torch_reference.py` (core ops, LeNet-5, MLP, ResNet-18, AlexNet).
    Reference,
    /// `crates/bench/torch/generative.py` (conv autoencoder, DCGAN), which also takes
    /// `--epochs N` and `--samples FILE`.
    Generative,
    /// `crates/bench/torch/scenes.py` (classloc, fcn_small, segnet on scenes), which takes
    /// `--epochs N`, `--batches B` and `--data FILE` (the scenes nabla wrote).
    Scenes,
    /// `crates/bench/torch/detect.py` (torchvision's roi_align, roi_pool, nms), which
    /// ignores the other scripts' arguments.
    Detect,
    /// `crates/bench/torch/rnn.py` (nn.LSTM), which ignores the training options.
    Rnn,
    /// `crates/bench/torch/frcnn.py` (fasterrcnn_small's torchvision twin), which takes
    /// `--epochs N`, `--batches B` and `--data FILE` (the scenes and initial weights).
    Frcnn,
}

/// A Python interpreter with torch, and the reference script it runs.
pub struct Torch {
    python: PathBuf,
    reference: PathBuf,
    /// The script's first line (`torch 2.x, threads 2`), once it has run.
    pub version: Option<String>,
}

/// Figures printed by the reference script, one per line, keyed by the text before `:`.
#[derive(Default, Debug)]
pub struct Figures {
    lines: Vec<(String, String)>,
}

impl Figures {
    /// Read the script's output: every `key: figures` line.
    pub fn parse(text: &str) -> Figures {
        let lines = text
            .lines()
            .filter_map(|l| l.split_once(": "))
            .map(|(k, v)| (k.trim().to_string(), v.trim().to_string()))
            .collect();
        Figures { lines }
    }

    /// Add another run's figures.
    pub fn extend(&mut self, other: Figures) {
        self.lines.extend(other.lines);
    }

    /// The number printed just before `unit` on the line `key` (`get("matmul 1024", "GFLOP/s")`).
    pub fn get(&self, key: &str, unit: &str) -> Option<f64> {
        let (_, rest) = self.lines.iter().find(|(k, _)| k == key)?;
        let words: Vec<&str> = rest.split_whitespace().collect();
        words.windows(2).find_map(|w| {
            let u = w[1].trim_end_matches([',', ')', ';']);
            (u == unit).then(|| w[0].trim_start_matches('(').parse().ok()).flatten()
        })
    }
}

fn has_torch(python: &Path) -> bool {
    Command::new(python)
        .args(["-c", "import torch"])
        .output()
        .map(|o| o.status.success())
        .unwrap_or(false)
}

impl Torch {
    /// Find a Python with torch: `NABLA_TORCH_PYTHON`, else `./venv/bin/python` (here or at
    /// the workspace root), else `python3` if it can import torch. A missing script is
    /// reported when a section needs it.
    pub fn find() -> Result<Torch, String> {
        let reference = std::env::var_os("NABLA_TORCH_SCRIPT")
            .map(PathBuf::from)
            .unwrap_or_else(|| PathBuf::from(DEFAULT_SCRIPT));
        let python = if let Some(p) = std::env::var_os("NABLA_TORCH_PYTHON") {
            let p = PathBuf::from(p);
            if !has_torch(&p) {
                return Err(format!("NABLA_TORCH_PYTHON={} cannot import torch", p.display()));
            }
            p
        } else {
            let workspace_venv = concat!(env!("CARGO_MANIFEST_DIR"), "/../../venv/bin/python");
            ["venv/bin/python", workspace_venv, "python3"]
                .iter()
                .map(PathBuf::from)
                .find(|p| has_torch(p))
                .ok_or("no Python with torch (tried NABLA_TORCH_PYTHON, ./venv/bin/python, python3)")?
        };
        Ok(Torch {
            python,
            reference,
            version: None,
        })
    }

    /// Run `script`'s `sections` one after another and collect their figures; the
    /// generative script also gets the epochs and, for `dcgan`, where to save its samples.
    pub fn run(&mut self, script: Script, sections: &[&str], settings: &Settings) -> Result<Figures, String> {
        let path = match script {
            Script::Reference => self.reference.clone(),
            Script::Generative => PathBuf::from(GENERATIVE_SCRIPT),
            Script::Scenes => PathBuf::from(SCENES_SCRIPT),
            Script::Detect => PathBuf::from(DETECT_SCRIPT),
            Script::Rnn => PathBuf::from(RNN_SCRIPT),
            Script::Frcnn => PathBuf::from(FRCNN_SCRIPT),
        };
        if !path.is_file() {
            let hint = match script {
                Script::Reference => " (set NABLA_TORCH_SCRIPT)",
                Script::Generative | Script::Scenes | Script::Detect | Script::Rnn | Script::Frcnn => "",
            };
            return Err(format!("PyTorch script {} not found{hint}", path.display()));
        }
        let name = path
            .file_name()
            .map_or_else(String::new, |n| n.to_string_lossy().into_owned());
        let mut all = Figures::default();
        for s in sections {
            let mut cmd = Command::new(&self.python);
            cmd.arg(&path).arg(s);
            if script != Script::Reference && script != Script::Rnn {
                cmd.arg("--epochs").arg(settings.epochs.to_string());
                if let Some(b) = settings.batches {
                    cmd.arg("--batches").arg(b.to_string());
                }
                if let Some(data) = settings
                    .data
                    .as_ref()
                    .filter(|_| matches!(script, Script::Scenes | Script::Frcnn))
                {
                    cmd.arg("--data").arg(data);
                }
                if let Some(dir) = settings.samples.as_ref().filter(|_| *s == "dcgan") {
                    cmd.arg("--samples").arg(dir.join("torch-dcgan.safetensors"));
                }
            }
            let out = cmd
                .output()
                .map_err(|e| format!("running {}: {e}", self.python.display()))?;
            if !out.status.success() {
                return Err(format!(
                    "{name} {s} failed: {}",
                    String::from_utf8_lossy(&out.stderr).trim()
                ));
            }
            // The script's progress lines (one per epoch), for whoever watches the run.
            eprint!("{}", String::from_utf8_lossy(&out.stderr));
            let text = String::from_utf8_lossy(&out.stdout);
            if self.version.is_none() {
                self.version = text.lines().next().map(str::to_string);
            }
            all.extend(Figures::parse(&text));
        }
        Ok(all)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_the_scripts_lines() {
        let f = Figures::parse(
            "torch 2.15.0, threads 2\n\
             matmul 1024: 191.8 GFLOP/s (11.20 ms)\n\
             tiny add with graph recording: 1.70 us per op\n\
             conv3x3 64->64 32x32 b64 fwd+bwd: 70.1 ms, 240.5 GFLOP/s\n",
        );
        assert_eq!(f.get("matmul 1024", "GFLOP/s"), Some(191.8));
        assert_eq!(f.get("matmul 1024", "ms"), Some(11.20));
        assert_eq!(f.get("tiny add with graph recording", "us"), Some(1.70));
        assert_eq!(f.get("conv3x3 64->64 32x32 b64 fwd+bwd", "ms"), Some(70.1));
        assert_eq!(f.get("conv3x3 64->64 32x32 b64 fwd+bwd", "GFLOP/s"), Some(240.5));
        assert_eq!(f.get("matmul 256", "GFLOP/s"), None);
        assert_eq!(f.get("matmul 1024", "GB/s"), None);
    }
}
