//! The network a finetune run trains: a zoo model ([`Body`]) whose frozen part runs in
//! evaluation mode when only a head trains, with an optional linear probe on a stage, and
//! a mode in which its input is the frozen part's cached output.

use super::body::Body;
use crate::error::{CliError, CliResult};
use crate::trainer::setup::RunMeta;
use nabla_core::{Generator, Tensor};
use nabla_nn::{Children, Linear, Mode, Module};
use std::collections::BTreeMap;
use std::path::Path;

/// The checkpoint `extra` key of a probe's stage and pooling, which `nabla eval` and
/// `predict` rebuild the probe from.
pub const PROBE_KEY: &str = "finetune_probe";

/// What the forward pass computes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Pass {
    /// The whole model in the given mode (top, full, --train-layers).
    Whole,
    /// The frozen body in evaluation mode (batch norm's running statistics, no dropout),
    /// then the trained head (probe).
    FrozenBody,
    /// The input is the frozen body's output at the probed stage (--probe-features):
    /// only the head runs.
    Cached,
}

/// A zoo model with, for `--probe-layer`, a linear classifier on one of its stages.
pub struct FineTuneNet {
    /// The zoo model, its head already sized for the new classes.
    pub body: Body,
    /// The stage the probe reads and the probe (named `probe`).
    pub probe: Option<(String, Linear)>,
    /// How the forward pass runs.
    pub pass: Pass,
    /// The probe reads its stage's feature maps average-pooled to this size squared.
    pub pool: usize,
}

impl FineTuneNet {
    /// `body` as it is, run whole.
    pub fn new(body: Body) -> FineTuneNet {
        FineTuneNet {
            body,
            probe: None,
            pass: Pass::Whole,
            pool: 1,
        }
    }

    /// Add a probe on `stage` pooled to `pool`×`pool`, for `classes` classes, initialized
    /// from `seed`; `input` is the shape of one sample (to find the probe's width).
    pub fn with_probe(
        mut self,
        stage: &str,
        pool: usize,
        input: &[usize],
        classes: usize,
        seed: u64,
    ) -> nabla_nn::Result<FineTuneNet> {
        let mut one = vec![1];
        one.extend_from_slice(input);
        let x = Tensor::zeros(&one, nabla_core::DType::F32);
        let width = self.body.forward_pooled(&x, Some(stage), pool, Mode::Eval)?.shape()[1];
        let mut g = Generator::new(seed ^ 0x9B0B_E5EE);
        self.probe = Some((stage.to_string(), Linear::new(width, classes, &mut g)));
        self.pool = pool;
        Ok(self)
    }

    /// The name of the trained head: `probe`, or the body's own head.
    pub fn head_name(&self) -> String {
        match &self.probe {
            Some(_) => "probe".into(),
            None => self.body.head(),
        }
    }

    /// The stage the head reads (`None`: the top, the body's own head's input).
    pub fn stage(&self) -> Option<&str> {
        self.probe.as_ref().map(|(s, _)| s.as_str())
    }

    /// The frozen body's output that the head reads (evaluation mode).
    pub fn features(&self, x: &Tensor) -> nabla_nn::Result<Tensor> {
        self.body.forward_pooled(x, self.stage(), self.pool, Mode::Eval)
    }

    /// The probe's stage and pooling as a checkpoint `extra` entry (none without a probe).
    pub fn probe_extra(&self) -> Option<(String, String)> {
        let (stage, _) = self.probe.as_ref()?;
        let v = serde_json::json!({"stage": stage, "pool": self.pool});
        Some((PROBE_KEY.into(), v.to_string()))
    }

    fn head(&self, h: &Tensor, mode: Mode) -> nabla_nn::Result<Tensor> {
        match &self.probe {
            Some((_, p)) => p.forward_named("probe", h, mode),
            None => self.body.forward_head(h, mode),
        }
    }
}

/// The network of a checkpoint (read from `path`) that `nabla finetune --probe-layer` wrote,
/// from its `extra` and metadata: the zoo model and its probe on the saved stage, run as
/// when probing, weights not yet restored. `None` for any other checkpoint.
pub fn probe_of(extra: &BTreeMap<String, String>, meta: &RunMeta, path: &Path) -> CliResult<Option<FineTuneNet>> {
    let Some(v) = extra.get(PROBE_KEY) else {
        return Ok(None);
    };
    let bad = || {
        CliError::new(format!(
            "{}: its {PROBE_KEY} entry {v:?} is not {{\"stage\": NAME, \"pool\": N}}",
            path.display()
        ))
    };
    let v: serde_json::Value = serde_json::from_str(v).map_err(|_| bad())?;
    let stage = v["stage"].as_str().ok_or_else(bad)?;
    let pool = v["pool"].as_u64().filter(|p| (1..=64).contains(p)).ok_or_else(bad)? as usize;
    let body = Body::build(&meta.model, &meta.model_config)?;
    body.check_stage(stage, &format!("{}: the probe's stage", path.display()))?;
    let classes = meta.model_config.num_classes;
    // The seed only initializes the probe, whose weights the checkpoint then replaces.
    let mut net = FineTuneNet::new(body).with_probe(stage, pool, &meta.input_shape, classes, 0)?;
    net.pass = Pass::FrozenBody;
    Ok(Some(net))
}

impl Module for FineTuneNet {
    fn forward(&self, x: &Tensor, mode: Mode) -> nabla_nn::Result<Tensor> {
        match self.pass {
            Pass::Whole => self.body.forward(x, mode),
            Pass::FrozenBody => self.head(&self.features(x)?, mode),
            Pass::Cached => self.head(x, mode),
        }
    }

    fn children(&self, c: &mut Children) {
        // The body's own names (so a plain finetuned model's checkpoint is the zoo model's).
        self.body.children(c);
        if let Some((_, p)) = &self.probe {
            c.module("probe", p);
        }
    }

    fn describe(&self) -> String {
        self.body.describe()
    }
}
