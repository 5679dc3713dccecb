//! Training checkpoints: model state, optimizer state, scheduler state, epoch/step and the
//! random generator, in one safetensors file, so that a resumed run is bitwise the run that
//! was never interrupted.
//!
//! ```
//! use nabla_core::{DType, Generator, Tensor};
//! use nabla_nn::checkpoint::Checkpoint;
//! use nabla_nn::optim::{Optimizer, Sgd, SgdOptions};
//! let w = Tensor::ones(&[2], DType::F32).set_requires_grad(true);
//! let mut opt = Sgd::new(vec![w.clone()], SgdOptions { lr: 0.5, momentum: 0.9, ..Default::default() })?;
//! opt.step(&w.square()?.sum_all()?.backward()?)?;
//! let path = std::env::temp_dir().join(format!("nabla-ckpt-doc-{}.safetensors", std::process::id()));
//! let mut ck = Checkpoint::capture(&[("w".to_string(), w.clone())], &opt, 0, 1)?;
//! ck.rng = Some(Generator::new(7).state());
//! ck.save(&path)?;
//!
//! // Later, in a fresh process: build the same objects, then restore them.
//! let w2 = Tensor::zeros(&[2], DType::F32).set_requires_grad(true);
//! let mut opt2 = Sgd::new(vec![w2.clone()], SgdOptions { lr: 0.5, momentum: 0.9, ..Default::default() })?;
//! let ck = Checkpoint::load(&path)?;
//! ck.restore_model(&[("w".to_string(), w2.clone())])?;
//! opt2.load_state_dict(&ck.optimizer)?;
//! assert_eq!(w2.to_vec::<f32>()?, w.to_vec::<f32>()?);
//! assert_eq!((ck.step, ck.generator().unwrap()), (1, Generator::new(7)));
//! # std::fs::remove_file(&path).ok();
//! # Ok::<(), nabla_nn::Error>(())
//! ```
//!
//! Layout of the file: tensors `model.<name>` and `optim.<name>`; string metadata `format`,
//! `epoch`, `step`, `rng` (four u64s), `optim.<scalar>`, `sched.<scalar>` (numbers written
//! so that they read back bit for bit) and `extra.<key>` (the caller's own strings).
//! Restore a scheduler *before* loading the optimizer's state: making a scheduler takes its
//! step 0, which may change the rates (LinearLR) that the optimizer's state then restores.

use crate::optim::{Optimizer, OptimizerState};
use crate::safetensors_io::{load_tensors, save_tensors};
use crate::{Error, Result};
use nabla_core::{dispatch, Generator, Tensor};
use std::collections::{BTreeMap, HashMap};
use std::path::Path;

/// The `format` metadata value of files this module writes.
pub const FORMAT: &str = "nabla-checkpoint-1";

/// Everything needed to resume training.
#[derive(Clone, Debug, Default)]
pub struct Checkpoint {
    /// Model parameters and buffers by name (copies taken at capture).
    pub model: Vec<(String, Tensor)>,
    /// The optimizer's buffers, step counts and group settings.
    pub optimizer: OptimizerState,
    /// The scheduler's progress (`LrScheduler::state_dict` or `ReduceLROnPlateau`'s); may be empty.
    pub scheduler: BTreeMap<String, f64>,
    /// Epochs completed.
    pub epoch: u64,
    /// Optimizer steps taken.
    pub step: u64,
    /// The random generator's state (`Generator::state()`), if the run uses one.
    pub rng: Option<[u64; 4]>,
    /// The caller's own notes (any strings, e.g. a config or a git hash).
    pub extra: BTreeMap<String, String>,
}

/// A copy that shares nothing with `t` (the model keeps training after a capture).
fn snapshot(t: &Tensor) -> Result<Tensor> {
    Ok(dispatch!(t.dtype(), T => Tensor::from_vec(t.to_vec::<T>()?, t.shape())?))
}

fn bad(path: &Path, msg: impl std::fmt::Display) -> Error {
    Error::State(format!("{}: checkpoint: {msg}", path.display()))
}

/// A number as text that parses back to the same bits (Rust's float formatting is shortest
/// round-trip; ±inf and NaN are spelled so that `parse` reads them).
fn num(v: f64) -> String {
    format!("{v:?}")
}

impl Checkpoint {
    /// Capture a model's named tensors (copied) and an optimizer's state at `epoch`/`step`.
    pub fn capture(model: &[(String, Tensor)], opt: &dyn Optimizer, epoch: u64, step: u64) -> Result<Self> {
        Ok(Checkpoint {
            model: model
                .iter()
                .map(|(n, t)| Ok((n.clone(), snapshot(t)?)))
                .collect::<Result<_>>()?,
            optimizer: opt.state_dict()?,
            epoch,
            step,
            ..Default::default()
        })
    }

    /// The random generator as saved, if any.
    pub fn generator(&self) -> Option<Generator> {
        self.rng.map(Generator::from_state)
    }

    /// Write the checkpoint to `path` atomically (the previous file stays whole until the
    /// new one is complete). A model tensor holding NaN or ±∞ is refused: a diverged run
    /// must not overwrite a good checkpoint.
    pub fn save(&self, path: impl AsRef<Path>) -> Result<()> {
        let path = path.as_ref();
        for (name, t) in &self.model {
            if let Some(i) = t.to_vec_f64().iter().position(|v| !v.is_finite()) {
                return Err(bad(
                    path,
                    format!(
                        "model tensor {name} (shape {:?}) holds a non-finite value at element {i}; not saving",
                        t.shape()
                    ),
                ));
            }
        }
        let mut tensors = Vec::with_capacity(self.model.len() + self.optimizer.tensors.len());
        tensors.extend(self.model.iter().map(|(n, t)| (format!("model.{n}"), t.clone())));
        tensors.extend(
            self.optimizer
                .tensors
                .iter()
                .map(|(n, t)| (format!("optim.{n}"), t.clone())),
        );
        let mut meta = BTreeMap::new();
        meta.insert("format".to_string(), FORMAT.to_string());
        meta.insert("epoch".to_string(), self.epoch.to_string());
        meta.insert("step".to_string(), self.step.to_string());
        if let Some(s) = self.rng {
            meta.insert("rng".to_string(), s.map(|w| w.to_string()).join(","));
        }
        meta.extend(
            self.optimizer
                .scalars
                .iter()
                .map(|(k, &v)| (format!("optim.{k}"), num(v))),
        );
        meta.extend(self.scheduler.iter().map(|(k, &v)| (format!("sched.{k}"), num(v))));
        meta.extend(self.extra.iter().map(|(k, v)| (format!("extra.{k}"), v.clone())));
        save_tensors(path, &tensors, &meta)
    }

    /// Read a checkpoint written by [`Checkpoint::save`]; anything unexpected is an error.
    pub fn load(path: impl AsRef<Path>) -> Result<Self> {
        let path = path.as_ref();
        let (tensors, meta) = load_tensors(path)?;
        match meta.get("format") {
            Some(f) if f == FORMAT => {}
            Some(f) => return Err(bad(path, format!("format {f:?}, expected {FORMAT:?}"))),
            None => return Err(bad(path, "no \"format\" entry; not a nabla training checkpoint")),
        }
        let int = |k: &str| -> Result<u64> {
            let v = meta.get(k).ok_or_else(|| bad(path, format!("no {k:?} entry")))?;
            v.parse()
                .map_err(|_| bad(path, format!("{k} = {v:?} is not a whole number")))
        };
        let mut ck = Checkpoint {
            epoch: int("epoch")?,
            step: int("step")?,
            ..Default::default()
        };
        for (key, value) in &meta {
            let parse = || -> Result<f64> {
                value
                    .parse()
                    .map_err(|_| bad(path, format!("{key} = {value:?} is not a number")))
            };
            if let Some(k) = key.strip_prefix("optim.") {
                ck.optimizer.scalars.insert(k.to_string(), parse()?);
            } else if let Some(k) = key.strip_prefix("sched.") {
                ck.scheduler.insert(k.to_string(), parse()?);
            } else if let Some(k) = key.strip_prefix("extra.") {
                ck.extra.insert(k.to_string(), value.clone());
            } else if key == "rng" {
                let words: Vec<u64> = value
                    .split(',')
                    .map(|w| w.parse())
                    .collect::<std::result::Result<_, _>>()
                    .map_err(|_| bad(path, format!("rng = {value:?} is not four u64s")))?;
                let s: [u64; 4] = words
                    .try_into()
                    .map_err(|_| bad(path, format!("rng = {value:?} is not four u64s")))?;
                ck.rng = Some(s);
            } else if !["format", "epoch", "step"].contains(&key.as_str()) {
                return Err(bad(path, format!("unexpected metadata entry {key:?}")));
            }
        }
        for (name, t) in tensors {
            if let Some(n) = name.strip_prefix("model.") {
                ck.model.push((n.to_string(), t));
            } else if let Some(n) = name.strip_prefix("optim.") {
                ck.optimizer.tensors.push((n.to_string(), t));
            } else {
                return Err(bad(
                    path,
                    format!("unexpected tensor {name:?} (names start with model. or optim.)"),
                ));
            }
        }
        Ok(ck)
    }

    /// Copy the saved model tensors into `targets` (e.g. `Module::state_dict()`, whose tensors
    /// share storage with the model), matching by name. Every name must be on both sides with
    /// the same shape and dtype; nothing is written unless all of them fit.
    pub fn restore_model(&self, targets: &[(String, Tensor)]) -> Result<()> {
        let saved: HashMap<&str, &Tensor> = self.model.iter().map(|(n, t)| (n.as_str(), t)).collect();
        let mut problems = Vec::new();
        for (name, dst) in targets {
            match saved.get(name.as_str()) {
                None => problems.push(format!("{name}: not in the checkpoint")),
                Some(src) if src.shape() != dst.shape() || src.dtype() != dst.dtype() => problems.push(format!(
                    "{name}: checkpoint has {:?} {:?}, model has {:?} {:?}",
                    src.shape(),
                    src.dtype(),
                    dst.shape(),
                    dst.dtype()
                )),
                Some(_) => {}
            }
        }
        for (name, _) in &self.model {
            if !targets.iter().any(|(n, _)| n == name) {
                problems.push(format!("{name}: in the checkpoint but not in the model"));
            }
        }
        if !problems.is_empty() {
            return Err(Error::State(format!(
                "checkpoint does not fit the model: {}",
                problems.join("; ")
            )));
        }
        for (name, dst) in targets {
            if let Some(src) = saved.get(name.as_str()) {
                dst.assign(src).map_err(|e| Error::from(e).context(name))?;
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests;
