//! Semantic segmentation as a task of the training engine: a network giving `[N, 11, H, W]`
//! scores (background and the ten classes) trained with per-pixel cross-entropy, optionally
//! weighted per class (`--class-weights auto`: inverse pixel frequency, since the background
//! covers most pixels) and with an ignored label; scored by pixel accuracy and mean IoU.

use super::metrics::PixelConfusion;
use super::pictures::{self, Gray};
use super::SceneMeta;
use crate::error::{CliError, CliResult};
use crate::trainer::setup::{build_optimizer, schedule};
use nabla_core::{no_grad, DType, Tensor};
use nabla_data::{Batch, Sample, Target};
use nabla_nn::loss::{cross_entropy_weighted, CrossEntropyOptions};
use nabla_nn::{Mode, Module};
use nabla_train::{Direction, Optim, Record, Result, StepOutput, Sums};
use std::collections::BTreeMap;
use std::path::Path;

/// Mask labels of a batch (targets `[N, H·W]` holding labels as numbers).
pub fn mask_labels(b: &Batch) -> CliResult<Vec<usize>> {
    let t = b
        .targets
        .as_ref()
        .ok_or_else(|| CliError::new("segment: a batch without masks"))?;
    Ok(t.to_vec_f32().iter().map(|&v| v.max(0.0) as usize).collect())
}

/// The per-pixel loss of `scores` (`[N, C, H, W]`) against mask `labels`.
pub fn seg_loss(scores: &Tensor, labels: &[usize], weight: &Tensor, ignore: Option<usize>) -> CliResult<Tensor> {
    let opts = CrossEntropyOptions {
        ignore_index: ignore,
        ..Default::default()
    };
    Ok(cross_entropy_weighted(
        scores,
        labels,
        &weight.to_dtype(scores.dtype())?,
        &opts,
    )?)
}

/// A network trained to label every pixel.
pub struct Segment {
    model: Box<dyn Module>,
    params: Vec<Tensor>,
    meta: SceneMeta,
    weight: Tensor,
    banner: String,
    val_loss: f64,
    val_n: usize,
    confusion: PixelConfusion,
    last: Option<PixelConfusion>,
    shown: Vec<Sample>,
}

impl Segment {
    /// The task of the run `meta` describes, training `model` with class weights `weight`
    /// (`[classes + 1]`); `shown` are the test scenes drawn in `segmentation.png`.
    pub fn new(
        model: Box<dyn Module>,
        meta: &SceneMeta,
        weight: Vec<f32>,
        shown: Vec<Sample>,
        banner: String,
    ) -> Segment {
        let k = weight.len();
        Segment {
            params: model.trainable_parameters(),
            model,
            meta: meta.clone(),
            weight: Tensor::from_vec(weight, &[k]).expect("one weight per class"),
            banner,
            val_loss: 0.0,
            val_n: 0,
            confusion: PixelConfusion::new(k),
            last: None,
            shown,
        }
    }

    /// The confusion matrix of the latest validation or test pass.
    pub fn last_confusion(&self) -> Option<&PixelConfusion> {
        self.last.as_ref()
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
        let pred = {
            let _g = no_grad();
            self.model.forward(&x, Mode::Eval)?.argmax(1, false)?
        };
        let rows = self
            .shown
            .iter()
            .zip(pred.chunks(h * w))
            .map(|(s, p)| {
                let truth = match &s.target {
                    Target::Values(v) => v.iter().map(|&l| l as usize).collect(),
                    Target::Class(_) => vec![0; h * w],
                };
                (
                    Gray {
                        px: &s.data,
                        size: [h, w],
                    },
                    truth,
                    p.to_vec(),
                )
            })
            .collect::<Vec<_>>();
        let title = format!("{} on test scenes, epoch {epoch}", self.meta.run.model);
        pictures::segmentation_png(&dir.join("segmentation.png"), &rows, &self.meta.run.classes, &title)
    }
}

impl nabla_train::Task for Segment {
    fn models(&self) -> Vec<(&str, &dyn Module)> {
        vec![("", self.model.as_ref())]
    }

    fn configure_optimizers(&mut self) -> Result<Vec<Optim>> {
        let cfg = &self.meta.run.config;
        let mut optimizer = build_optimizer(cfg, self.params.clone())?;
        let schedule = schedule(cfg, optimizer.as_mut())?;
        Ok(vec![Optim::new(optimizer, schedule)])
    }

    fn training_step(&mut self, b: &Batch, _step: u64, optims: &mut [Optim]) -> Result<StepOutput> {
        let rows = b.inputs.shape()[0] as u64;
        let labels = mask_labels(b)?;
        let scores = self.model.forward(&b.inputs, Mode::Train)?;
        let ignore = self.meta.run.config.ignore_index;
        let loss = seg_loss(&scores, &labels, &self.weight, ignore)?;
        let lv = loss.item()?;
        if !lv.is_finite() {
            // Not stepped: the engine stops on this value and keeps the last checkpoint.
            return Ok(StepOutput::new(rows).sum("loss", lv));
        }
        let mut grads = loss.backward()?;
        optims[0].step(&mut grads, &self.params)?;
        drop(grads);
        let pred = scores.argmax(1, false)?;
        let (mut right, mut counted) = (0usize, 0usize);
        for (p, t) in pred.iter().zip(&labels) {
            if Some(*t) != ignore && *t < self.confusion.classes {
                counted += 1;
                right += (p == t) as usize;
            }
        }
        // Pixel accuracy per image, so the engine's per-sample mean is the epoch's.
        let acc = right as f64 / counted.max(1) as f64;
        Ok(StepOutput::new(rows)
            .sum("loss", lv * rows as f64)
            .sum("pixel_acc", acc * rows as f64))
    }

    fn validation_step(&mut self, b: &Batch) -> Result<()> {
        let labels = mask_labels(b)?;
        let scores = self.model.forward(&b.inputs, Mode::Eval)?;
        let ignore = self.meta.run.config.ignore_index;
        let loss = seg_loss(&scores, &labels, &self.weight, ignore)?;
        let n = b.inputs.shape()[0];
        self.val_loss += loss.item()? * n as f64;
        self.val_n += n;
        self.confusion.add(&scores.argmax(1, false)?, &labels, ignore);
        Ok(())
    }

    fn validation_end(&mut self) -> Result<Vec<(String, f64)>> {
        let m = std::mem::replace(&mut self.confusion, PixelConfusion::new(self.weight.numel()));
        let loss = self.val_loss / self.val_n.max(1) as f64;
        (self.val_loss, self.val_n) = (0.0, 0);
        let out = vec![
            ("loss".into(), loss),
            ("pixel_acc".into(), m.pixel_accuracy()),
            ("miou".into(), m.mean_iou()),
        ];
        self.last = Some(m);
        Ok(out)
    }

    fn train_metrics(&self, sums: &Sums) -> Vec<(String, f64)> {
        sums.means()
    }

    fn best(&self) -> (&'static str, Direction) {
        ("val_miou", Direction::Max)
    }

    fn show(&self, name: &str, value: f64) -> String {
        match name {
            "pixel_acc" => format!("{:.2}%", 100.0 * value),
            "miou" => format!("{value:.3}"),
            _ => format!("{value:.4}"),
        }
    }

    fn epoch_end(&mut self, dir: &Path, history: &[Record]) -> Result<()> {
        let epoch = history.last().map_or(0, |r| r.epoch);
        self.pictures(dir, epoch)?;
        let loss: &[(&str, &str)] = &[("train_loss", "train"), ("val_loss", "validation")];
        let scores: &[(&str, &str)] = &[("val_miou", "val mIoU"), ("val_pixel_acc", "val pixel accuracy")];
        Ok(pictures::curves(
            dir,
            history,
            &[
                ("loss", "per-pixel cross-entropy", loss, 1.0),
                ("segmentation", "%", scores, 100.0),
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

/// Inverse-frequency weights of `classes` labels from the masks of `samples` (labels past
/// the classes, such as an ignored 255, are not counted).
pub fn auto_weights(samples: impl Iterator<Item = CliResult<Sample>>, classes: usize) -> CliResult<Vec<f32>> {
    let mut counts = vec![0u64; classes];
    for s in samples {
        if let Target::Values(v) = s?.target {
            for l in v {
                if let Some(c) = counts.get_mut(l as usize) {
                    *c += 1;
                }
            }
        }
    }
    Ok(nabla_nn::loss::inverse_frequency_weights(&counts))
}

/// Unit weights: the plain per-pixel cross-entropy.
pub fn unit_weights(classes: usize) -> Vec<f32> {
    Tensor::ones(&[classes], DType::F32).to_vec_f32()
}
