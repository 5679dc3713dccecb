//! PyTorch parity of nabla-nn's training pieces: every loss, optimizer and scheduler case of
//! the reference fixtures (`shared/fixtures/torch`, or `$NABLA_TORCH_FIXTURES`).
//!
//! - Losses run in f32, forward and backward, within the case's tolerance.
//! - Optimizers start from `param.p`, take the stored `grad.step<k>` and must reach
//!   `expected.step<k>` after each step; in f32 and in f64 (PyTorch ran in f64).
//! - Schedulers replay the manifest's epochs (and metrics) and must give PyTorch's rates to
//!   1e-12 relative.

#[path = "../../core/tests/torch_parity/common.rs"]
mod common;

use common::{compare, Case, OrMsg};
use nabla_core::{DType, Gradients, Tensor};
use nabla_nn::loss::{self, CrossEntropyOptions, CrossEntropyTarget, Reduction};
use nabla_nn::optim::{Adam, AdamOptions, AdamW, AdamWOptions, Optimizer, RMSprop, RMSpropOptions, Sgd, SgdOptions};
use nabla_nn::scheduler::{
    CosineAnnealingLR, LrScheduler, PlateauMode, ReduceLROnPlateau, ReduceLROnPlateauOptions, StepLR, ThresholdMode,
};
use serde_json::Value;

impl<T> OrMsg<T> for nabla_nn::Result<T> {
    fn msg(self) -> Result<T, String> {
        self.map_err(|e| e.to_string())
    }
}

fn reduction(c: &Case) -> Result<Reduction, String> {
    match c.attrs["reduction"].as_str() {
        Some("mean") | None => Ok(Reduction::Mean),
        Some("sum") => Ok(Reduction::Sum),
        Some("none") => Ok(Reduction::None),
        Some(r) => Err(format!("unknown reduction {r:?}")),
    }
}

/// A loss of a differentiable first input and a target.
fn loss_case(c: &Case) -> Result<(), String> {
    let r = reduction(c)?;
    let first = c.inputs.first().ok_or("the case has no inputs")?;
    let x = c.input(first)?;
    let target_indices = || c.indices("input.target").map(|(idx, _)| idx);
    let out = match c.op.as_str() {
        "cross_entropy" => {
            let opts = CrossEntropyOptions {
                reduction: r,
                label_smoothing: c.attrs["label_smoothing"].as_f64().unwrap_or(0.0),
                ignore_index: None,
            };
            let idx;
            let probs;
            let target = if c.has("input.target") && c.indices("input.target").is_ok() {
                idx = target_indices()?;
                CrossEntropyTarget::Indices(&idx)
            } else {
                probs = c.input("target")?;
                CrossEntropyTarget::Probs(&probs)
            };
            loss::cross_entropy(&x, target, &opts)
        }
        "nll_loss" => loss::nll_loss(&x, &target_indices()?, r, None),
        op => {
            let y = c.input("target")?;
            let out = match op {
                "mse_loss" => loss::mse_loss(&x, &y, r),
                "l1_loss" => loss::l1_loss(&x, &y, r),
                "smooth_l1_loss" => loss::smooth_l1_loss(&x, &y, c.attr_f64("beta")?, r),
                "binary_cross_entropy" => loss::binary_cross_entropy(&x, &y, r),
                "binary_cross_entropy_with_logits" => loss::binary_cross_entropy_with_logits(&x, &y, r),
                other => return Err(format!("no loss {other}")),
            }
            .msg()?;
            return c.check(&out, &[(first.as_str(), &x), ("target", &y)]);
        }
    }
    .msg()?;
    c.check(&out, &[(first.as_str(), &x)])
}

fn make_optimizer(c: &Case, p: Tensor) -> Result<Box<dyn Optimizer>, String> {
    let a = &c.attrs;
    let f = |k: &str, d: f64| a[k].as_f64().unwrap_or(d);
    let betas = || -> Result<(f64, f64), String> {
        match a["betas"].as_array().map(|b| b.as_slice()) {
            Some([b1, b2]) => Ok((b1.as_f64().ok_or("beta1")?, b2.as_f64().ok_or("beta2")?)),
            None => Ok((0.9, 0.999)),
            _ => Err(format!("bad betas {}", a["betas"])),
        }
    };
    let lr = c.attr_f64("lr")?;
    let params = vec![p];
    Ok(match a["optimizer"].as_str().unwrap_or_default() {
        "sgd" => Box::new(
            Sgd::new(
                params,
                SgdOptions {
                    lr,
                    momentum: f("momentum", 0.0),
                    dampening: f("dampening", 0.0),
                    weight_decay: f("weight_decay", 0.0),
                    nesterov: c.attr_bool("nesterov", false)?,
                    maximize: false,
                },
            )
            .msg()?,
        ),
        "adam" => Box::new(
            Adam::new(
                params,
                AdamOptions {
                    lr,
                    betas: betas()?,
                    eps: f("eps", 1e-8),
                    weight_decay: f("weight_decay", 0.0),
                    amsgrad: c.attr_bool("amsgrad", false)?,
                    maximize: false,
                },
            )
            .msg()?,
        ),
        "adamw" => Box::new(
            AdamW::new(
                params,
                AdamWOptions {
                    lr,
                    betas: betas()?,
                    eps: f("eps", 1e-8),
                    weight_decay: f("weight_decay", 1e-2),
                    amsgrad: c.attr_bool("amsgrad", false)?,
                    maximize: false,
                },
            )
            .msg()?,
        ),
        "rmsprop" => Box::new(
            RMSprop::new(
                params,
                RMSpropOptions {
                    lr,
                    alpha: f("alpha", 0.99),
                    eps: f("eps", 1e-8),
                    weight_decay: f("weight_decay", 0.0),
                    momentum: f("momentum", 0.0),
                    centered: c.attr_bool("centered", false)?,
                    maximize: false,
                },
            )
            .msg()?,
        ),
        other => return Err(format!("unknown optimizer {other:?}")),
    })
}

/// Replay the stored gradients in `dtype` and compare the parameter after every step.
fn optimizer_case_in(c: &Case, dtype: DType) -> Result<(), String> {
    let steps = c.entry["steps"].as_u64().ok_or("no step count")?;
    let p = c.tensor_as("param.p", dtype)?.set_requires_grad(true);
    let mut opt = make_optimizer(c, p.clone())?;
    for k in 1..=steps {
        let mut grads = Gradients::default();
        grads.insert(&p, c.tensor_as(&format!("grad.step{k}"), dtype)?);
        opt.step(&grads).msg()?;
        let want = c.tensor_as(&format!("expected.step{k}"), dtype)?;
        compare(&format!("{dtype:?} step {k}"), &p, &want, c.rtol, c.atol)?;
    }
    Ok(())
}

fn optimizer_case(c: &Case) -> Result<(), String> {
    optimizer_case_in(c, DType::F32)?;
    optimizer_case_in(c, DType::F64)
}

fn scheduler_case(c: &Case) -> Result<(), String> {
    let a = &c.attrs;
    let lr0 = c.attr_f64("initial_lr")?;
    let p = Tensor::zeros(&[1], DType::F32).set_requires_grad(true);
    let mut opt = Sgd::new(
        vec![p],
        SgdOptions {
            lr: lr0,
            ..Default::default()
        },
    )
    .msg()?;
    let want: Vec<f64> = match exact_numbers(&c.name, "expected_lr") {
        Some(v) => v,
        None => c.entry["expected_lr"]
            .as_array()
            .ok_or("no expected_lr")?
            .iter()
            .map(|v| v.as_f64().ok_or("expected_lr holds a non-number"))
            .collect::<Result<_, _>>()?,
    };
    let metrics: Option<Vec<f64>> = match &c.entry["metrics"] {
        Value::Array(m) => Some(m.iter().filter_map(Value::as_f64).collect()),
        _ => None,
    };
    let mut got = Vec::with_capacity(want.len());
    match a["scheduler"].as_str().unwrap_or_default() {
        "reduce_on_plateau" => {
            let opts = ReduceLROnPlateauOptions {
                mode: match a["mode"].as_str() {
                    Some("max") => PlateauMode::Max,
                    _ => PlateauMode::Min,
                },
                factor: c.attr_f64("factor")?,
                patience: a["patience"].as_u64().ok_or("patience")?,
                threshold: c.attr_f64("threshold")?,
                threshold_mode: match a["threshold_mode"].as_str() {
                    Some("abs") => ThresholdMode::Abs,
                    _ => ThresholdMode::Rel,
                },
                ..Default::default()
            };
            let mut s = ReduceLROnPlateau::new(&opt, opts).msg()?;
            for m in metrics.ok_or("plateau case without metrics")? {
                s.step(&mut opt, m).msg()?;
                got.push(opt.lr(0).msg()?);
            }
        }
        kind => {
            let mut s: Box<dyn LrScheduler> = match kind {
                "step" => Box::new(
                    StepLR::new(
                        &mut opt,
                        a["step_size"].as_u64().ok_or("step_size")? as usize,
                        c.attr_f64("gamma")?,
                    )
                    .msg()?,
                ),
                "cosine" => Box::new(
                    CosineAnnealingLR::new(
                        &mut opt,
                        a["t_max"].as_u64().ok_or("t_max")? as usize,
                        c.attr_f64("eta_min")?,
                    )
                    .msg()?,
                ),
                other => return Err(format!("unknown scheduler {other:?}")),
            };
            for _ in 0..want.len() {
                s.step(&mut opt).msg()?;
                got.push(opt.lr(0).msg()?);
            }
        }
    }
    common::compare_values("lr", &[got.len()], &got, &[want.len()], &want, 1e-12, 0.0)?;
    let inexact: Vec<String> = got
        .iter()
        .zip(&want)
        .enumerate()
        .filter(|(_, (g, w))| g != w)
        .map(|(e, (g, w))| format!("epoch {}: {g:e} vs {w:e}", e + 1))
        .collect();
    println!(
        "  {}: {} of {} rates bitwise equal to PyTorch's {inexact:?}",
        c.name,
        want.len() - inexact.len(),
        want.len()
    );
    Ok(())
}

/// The array `key` of case `name` parsed from the manifest's text with Rust's correctly
/// rounded float parser: serde_json (without its `float_roundtrip` feature) can be one ulp
/// off, which would hide whether the rates are bitwise PyTorch's.
fn exact_numbers(name: &str, key: &str) -> Option<Vec<f64>> {
    let text = std::fs::read_to_string(common::fixture_dir().join("manifest.json")).ok()?;
    let case = text.find(&format!("\"name\": \"{name}\""))?;
    let rest = &text[case..];
    let end_of_case = rest.find("\"name\": ").filter(|&e| e > 0);
    let start = rest.find(&format!("\"{key}\": ["))? + key.len() + 5;
    if end_of_case.is_some_and(|e| e < start) {
        return None;
    }
    let body = &rest[start..start + rest[start..].find(']')?];
    body.split(',').map(|v| v.trim().parse().ok()).collect()
}

fn handler(c: &Case) -> Option<Result<(), String>> {
    if !handler_knows(c) {
        return None;
    }
    Some(match c.op.as_str() {
        "optimizer" => optimizer_case(c),
        "scheduler" => scheduler_case(c),
        _ => loss_case(c),
    })
}

/// Cases that must be in the fixtures and handled here (a renamed case must not pass silently).
const REQUIRED: &[&str] = &[
    "cross_entropy_indices",
    "cross_entropy_smoothing",
    "cross_entropy_probs",
    "cross_entropy_sum",
    "nll_loss",
    "mse_loss",
    "l1_loss",
    "smooth_l1_loss",
    "bce_loss",
    "bce_with_logits",
    "sgd_plain",
    "sgd_momentum_wd",
    "sgd_nesterov",
    "adam",
    "adam_wd",
    "adamw",
    "rmsprop",
    "steplr",
    "cosine",
    "plateau",
];

#[test]
fn torch_parity_training() {
    common::run_parity("nabla-nn training", &[handler]);
    let cases = common::load_cases().unwrap();
    let ours: Vec<&str> = cases
        .iter()
        .filter(|c| handler_knows(c))
        .map(|c| c.name.as_str())
        .collect();
    let missing: Vec<&&str> = REQUIRED.iter().filter(|n| !ours.contains(n)).collect();
    assert!(missing.is_empty(), "cases not run: {missing:?}");
}

fn handler_knows(c: &Case) -> bool {
    matches!(
        c.op.as_str(),
        "cross_entropy"
            | "nll_loss"
            | "mse_loss"
            | "l1_loss"
            | "smooth_l1_loss"
            | "binary_cross_entropy"
            | "binary_cross_entropy_with_logits"
            | "optimizer"
            | "scheduler"
    )
}
