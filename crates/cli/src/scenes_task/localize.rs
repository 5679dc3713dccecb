//! Classification plus localization as a task of the training engine: `classloc` gives
//! class scores and one box per scene; the loss is cross-entropy plus λ times the box loss
//! (`l2`: mean squared error, or `smooth-l1`) on normalized `[x/W, y/H, w/W, h/H]` boxes.
//!
//! The box head stays linear (no sigmoid): its targets already lie in [0, 1], an L2 loss on
//! a linear output keeps a useful gradient everywhere, while a sigmoid flattens it for boxes
//! at the border (x = 0 is its −∞); predictions are clipped to the image when they are used.

use super::metrics::LocSums;
use super::pictures::{self, Gray, Labelled};
use super::SceneMeta;
use crate::error::{CliError, CliResult};
use crate::trainer::setup::{build_optimizer, schedule};
use nabla_core::{no_grad, Tensor};
use nabla_data::{Batch, Sample, Target};
use nabla_models::classloc::ClassLoc;
use nabla_nn::loss::{cross_entropy, mse_loss, smooth_l1_loss, CrossEntropyOptions, Reduction};
use nabla_nn::{Mode, Module};
use nabla_train::{Direction, Optim, Record, Result, StepOutput, Sums};
use std::collections::BTreeMap;
use std::path::Path;

/// β of the smooth-L1 box loss, in normalized coordinates: quadratic within 1/9 of the image
/// (as torchvision's detection heads use), linear beyond.
pub const SMOOTH_L1_BETA: f64 = 1.0 / 9.0;

/// One batch's losses: the total, and its class and box parts.
pub struct LocLoss {
    /// Cross-entropy + λ · box loss.
    pub total: Tensor,
    /// The class part.
    pub class: f64,
    /// The box part (before λ).
    pub boxes: f64,
}

/// Class labels and normalized boxes `[N, 4]` from targets `[N, 5]` (class, x, y, w, h).
pub fn split_targets(b: &Batch) -> CliResult<(Vec<usize>, Tensor)> {
    let t = b
        .targets
        .as_ref()
        .ok_or_else(|| CliError::new("localize: a batch without box targets"))?;
    if t.rank() != 2 || t.shape()[1] != 5 {
        return Err(CliError::new(format!(
            "localize: targets must be [N, 5] (class, x, y, w, h), got {:?}",
            t.shape()
        )));
    }
    let labels = t.narrow(1, 0, 1)?.to_vec_f32().iter().map(|&v| v as usize).collect();
    Ok((labels, t.narrow(1, 1, 4)?))
}

/// The loss of `logits` and `boxes` against a batch's targets.
pub fn loc_loss(logits: &Tensor, boxes: &Tensor, b: &Batch, box_loss: &str, lambda: f64) -> CliResult<LocLoss> {
    let (labels, target) = split_targets(b)?;
    let ce = cross_entropy(logits, &labels[..], &CrossEntropyOptions::default())?;
    let target = target.to_dtype(boxes.dtype())?;
    let bl = match box_loss {
        "smooth-l1" => smooth_l1_loss(boxes, &target, SMOOTH_L1_BETA, Reduction::Mean)?,
        _ => mse_loss(boxes, &target, Reduction::Mean)?,
    };
    let (class, bv) = (ce.item()?, bl.item()?);
    Ok(LocLoss {
        total: ce.add(&bl.mul_scalar(lambda)?)?,
        class,
        boxes: bv,
    })
}

/// Predicted classes, their probabilities and normalized boxes clipped to the image.
pub fn decode(logits: &Tensor, boxes: &Tensor) -> CliResult<Vec<(usize, f32, [f32; 4])>> {
    let probs = logits.softmax(1)?.to_vec_f32();
    let c = logits.shape()[1];
    let bx = boxes.to_vec_f32();
    Ok((0..logits.shape()[0])
        .map(|i| {
            let row = &probs[i * c..(i + 1) * c];
            let (k, p) = row
                .iter()
                .enumerate()
                .fold((0, f32::MIN), |best, (k, &p)| if p > best.1 { (k, p) } else { best });
            let [x, y, w, h] = [bx[4 * i], bx[4 * i + 1], bx[4 * i + 2], bx[4 * i + 3]];
            let (x, y) = (x.clamp(0.0, 1.0), y.clamp(0.0, 1.0));
            (k, p, [x, y, w.clamp(0.0, 1.0 - x), h.clamp(0.0, 1.0 - y)])
        })
        .collect())
}

/// Sums of a validation or test pass.
#[derive(Default)]
struct ValSums {
    class: f64,
    boxes: f64,
    total: f64,
    loc: LocSums,
}

/// `classloc` trained on scenes of one item.
pub struct Localize {
    model: ClassLoc,
    params: Vec<Tensor>,
    meta: SceneMeta,
    banner: String,
    val: ValSums,
    shown: Vec<Sample>,
}

impl Localize {
    /// The task of the run `meta` describes, training `model`; `shown` are the test scenes
    /// drawn in `predictions.png`.
    pub fn new(model: ClassLoc, meta: &SceneMeta, shown: Vec<Sample>, banner: String) -> Localize {
        Localize {
            params: model.trainable_parameters(),
            model,
            meta: meta.clone(),
            banner,
            val: ValSums::default(),
            shown,
        }
    }

    fn loss(&self, b: &Batch, mode: Mode) -> CliResult<(LocLoss, Tensor, Tensor)> {
        let (logits, boxes) = self.model.forward2(&b.inputs, mode)?;
        let c = &self.meta.run.config;
        let l = loc_loss(&logits, &boxes, b, &c.box_loss, c.box_weight)?;
        Ok((l, logits, boxes))
    }

    fn pictures(&self, dir: &Path, epoch: u64) -> CliResult<()> {
        if self.shown.is_empty() {
            return Ok(());
        }
        let [h, w] = self.meta.size;
        let mut x = Vec::new();
        for s in &self.shown {
            x.extend_from_slice(&s.data);
        }
        let x = Tensor::from_vec(x, &[self.shown.len(), 1, h, w])?;
        let (logits, boxes) = {
            let _g = no_grad();
            self.model.forward2(&x, Mode::Eval)?
        };
        let px = |b: [f32; 4]| [b[0] * w as f32, b[1] * h as f32, b[2] * w as f32, b[3] * h as f32];
        let pred = decode(&logits, &boxes)?;
        let scenes = self
            .shown
            .iter()
            .zip(pred)
            .map(|(s, (k, p, b))| {
                let truth = match &s.target {
                    Target::Values(v) if v.len() == 5 => vec![Labelled {
                        bbox: px([v[1], v[2], v[3], v[4]]),
                        class: v[0] as usize,
                        score: None,
                    }],
                    _ => vec![],
                };
                let guess = vec![Labelled {
                    bbox: px(b),
                    class: k,
                    score: Some(p),
                }];
                (
                    Gray {
                        px: &s.data,
                        size: [h, w],
                    },
                    truth,
                    guess,
                )
            })
            .collect::<Vec<_>>();
        let title = format!("{} on test scenes, epoch {epoch}", self.meta.run.model);
        pictures::predictions_png(&dir.join("predictions.png"), &scenes, &self.meta.run.classes, &title)
    }
}

impl nabla_train::Task for Localize {
    fn models(&self) -> Vec<(&str, &dyn Module)> {
        vec![("", &self.model as &dyn Module)]
    }

    fn configure_optimizers(&mut self) -> Result<Vec<Optim>> {
        let cfg = &self.meta.run.config;
        let mut optimizer = build_optimizer(cfg, self.params.clone())?;
        let schedule = schedule(cfg, optimizer.as_mut())?;
        Ok(vec![Optim::new(optimizer, schedule)])
    }

    fn training_step(&mut self, b: &Batch, _step: u64, optims: &mut [Optim]) -> Result<StepOutput> {
        let rows = b.inputs.shape()[0] as u64;
        let (l, logits, _) = self.loss(b, Mode::Train)?;
        let lv = l.total.item()?;
        if !lv.is_finite() {
            // Not stepped: the engine stops on this value and keeps the last checkpoint.
            return Ok(StepOutput::new(rows).sum("loss", lv));
        }
        let mut grads = l.total.backward()?;
        optims[0].step(&mut grads, &self.params)?;
        let (labels, _) = split_targets(b)?;
        let pred = logits.argmax(1, false)?;
        let right = pred.iter().zip(&labels).filter(|(a, b)| a == b).count();
        let n = rows as f64;
        Ok(StepOutput::new(rows)
            .sum("loss", lv * n)
            .sum("cls_loss", l.class * n)
            .sum("box_loss", l.boxes * n)
            .sum("acc", right as f64))
    }

    fn validation_step(&mut self, b: &Batch) -> Result<()> {
        let (l, logits, boxes) = self.loss(b, Mode::Eval)?;
        let n = b.inputs.shape()[0] as f64;
        self.val.total += l.total.item()? * n;
        self.val.class += l.class * n;
        self.val.boxes += l.boxes * n;
        let (labels, target) = split_targets(b)?;
        let t = target.to_vec_f32();
        for (i, (k, _, bx)) in decode(&logits, &boxes)?.into_iter().enumerate() {
            self.val
                .loc
                .add(k, labels[i], bx, [t[4 * i], t[4 * i + 1], t[4 * i + 2], t[4 * i + 3]]);
        }
        Ok(())
    }

    fn validation_end(&mut self) -> Result<Vec<(String, f64)>> {
        let v = std::mem::take(&mut self.val);
        let n = v.loc.n.max(1) as f64;
        Ok(vec![
            ("loss".into(), v.total / n),
            ("cls_loss".into(), v.class / n),
            ("box_loss".into(), v.boxes / n),
            ("acc".into(), v.loc.accuracy()),
            ("iou".into(), v.loc.mean_iou()),
            ("correct".into(), v.loc.correct()),
        ])
    }

    fn train_metrics(&self, sums: &Sums) -> Vec<(String, f64)> {
        sums.means()
    }

    fn best(&self) -> (&'static str, Direction) {
        ("val_correct", Direction::Max)
    }

    fn show(&self, name: &str, value: f64) -> String {
        match name {
            "acc" | "correct" => format!("{:.2}%", 100.0 * value),
            "iou" => format!("{value:.3}"),
            _ => format!("{value:.4}"),
        }
    }

    fn epoch_end(&mut self, dir: &Path, history: &[Record]) -> Result<()> {
        let epoch = history.last().map_or(0, |r| r.epoch);
        self.pictures(dir, epoch)?;
        let class: &[(&str, &str)] = &[("train_cls_loss", "train"), ("val_cls_loss", "validation")];
        let boxes: &[(&str, &str)] = &[("train_box_loss", "train"), ("val_box_loss", "validation")];
        let scores: &[(&str, &str)] = &[
            ("val_acc", "class accuracy"),
            ("val_iou", "mean IoU"),
            ("val_correct", "IoU>=0.5 and class"),
        ];
        let box_label = match self.meta.run.config.box_loss.as_str() {
            "smooth-l1" => "smooth L1 (normalized box)",
            _ => "MSE (normalized box)",
        };
        Ok(pictures::curves(
            dir,
            history,
            &[
                ("class loss", "cross-entropy", class, 1.0),
                ("box loss", box_label, boxes, 1.0),
                ("validation", "%", scores, 100.0),
            ],
        )?)
    }

    fn checkpoint_extra(&self) -> BTreeMap<String, String> {
        self.meta.run.to_extra()
    }

    fn start_message(&self) -> Option<String> {
        Some(self.banner.clone())
    }
}
