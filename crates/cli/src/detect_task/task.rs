//! Detection as a task of the training engine: each step decodes the padded targets,
//! computes Faster R-CNN's four losses (RPN objectness and box regression, the box head's
//! classification and box regression), steps on their sum; validation runs the detector in
//! inference mode and scores it by mAP@0.5 (the best checkpoint's key) and mAP@[.5:.95].

use super::pictures::{self, Boxed, Picture};
use super::DetMeta;
use crate::error::{CliError, CliResult};
use crate::trainer::setup::{build_optimizer, schedule};
use nabla_core::{no_grad, Generator, Tensor};
use nabla_data::detection::{decode_target, DetectionImage};
use nabla_data::Batch;
use nabla_models::fasterrcnn::{DetTarget, FasterRcnn};
use nabla_nn::Module;
use nabla_train::{Direction, Optim, Record, Result, StepOutput, Sums};
use nabla_vision::{evaluate_detections, ApReport, Detection, GroundTruth};
use std::collections::BTreeMap;
use std::path::Path;

/// Mixed into the seed of the flips' generator.
const FLIP_SEED: u64 = 0xF11B_5EED;

/// The score from which `detections.png` draws a detection.
pub const PICTURE_THRESHOLD: f32 = 0.5;

/// The targets of a batch: its `[N, 1 + 5·max_objects]` padded rows decoded per image.
pub fn batch_targets(b: &Batch) -> CliResult<Vec<DetTarget>> {
    let t = b
        .targets
        .as_ref()
        .ok_or_else(|| CliError::new("detect: a batch without box targets"))?;
    let n = b.inputs.shape()[0];
    if t.rank() != 2 || t.shape()[0] != n {
        return Err(CliError::new(format!(
            "detect: targets must be [N, 1 + 5·objects], got {:?}",
            t.shape()
        )));
    }
    let v = t.to_vec_f32();
    let w = t.shape()[1];
    Ok(v.chunks(w)
        .map(|row| {
            let (boxes, labels) = decode_target(row);
            DetTarget { boxes, labels }
        })
        .collect())
}

/// Flip each image of `x` ([N, C, H, W]) and its boxes left-right with probability ½, and
/// with `vertical` also up-down with probability ½, drawing from `rng`.
pub fn flip_batch(x: &Tensor, targets: &mut [DetTarget], vertical: bool, rng: &mut Generator) -> CliResult<Tensor> {
    let &[n, c, h, w] = x.shape() else {
        return Err(CliError::new(format!(
            "detect: images must be [N, C, H, W], got {:?}",
            x.shape()
        )));
    };
    let mut v = x.to_vec_f32();
    for (img, t) in v.chunks_mut(c * h * w).zip(targets.iter_mut()).take(n) {
        let (fx, fy) = (rng.below(2) == 1, vertical && rng.below(2) == 1);
        for plane in img.chunks_mut(h * w) {
            if fx {
                plane.chunks_mut(w).for_each(|row| row.reverse());
            }
            if fy {
                for y in 0..h / 2 {
                    let (top, bottom) = plane.split_at_mut((h - 1 - y) * w);
                    top[y * w..(y + 1) * w].swap_with_slice(&mut bottom[..w]);
                }
            }
        }
        let (wf, hf) = (w as f32, h as f32);
        for b in &mut t.boxes {
            if fx {
                *b = [wf - b[2], b[1], wf - b[0], b[3]];
            }
            if fy {
                *b = [b[0], hf - b[3], b[2], hf - b[1]];
            }
        }
    }
    Ok(Tensor::from_vec(v, &[n, c, h, w])?)
}

/// The detections and ground truths of a batch whose first image is `first`.
pub fn score_batch(model: &FasterRcnn, b: &Batch, first: usize) -> CliResult<(Vec<Detection>, Vec<GroundTruth>)> {
    let found = model.detect(&b.inputs)?;
    let mut dets = Vec::new();
    for (i, d) in found.iter().enumerate() {
        for ((bbox, &class), &score) in d.boxes.iter().zip(&d.labels).zip(&d.scores) {
            dets.push(Detection {
                image: first + i,
                class,
                score,
                bbox: *bbox,
            });
        }
    }
    let mut gts = Vec::new();
    for (i, t) in batch_targets(b)?.into_iter().enumerate() {
        for (bbox, class) in t.boxes.into_iter().zip(t.labels) {
            gts.push(GroundTruth {
                image: first + i,
                class,
                bbox,
                difficult: false,
            });
        }
    }
    Ok((dets, gts))
}

/// The generator of step `step`'s sampling: a pure function of the seed and the step, so a
/// resumed run draws what the uninterrupted one drew without a saved generator state.
pub fn step_generator(seed: u64, step: u64) -> Generator {
    // SplitMix64's increment spreads consecutive steps far apart.
    Generator::new(seed ^ step.wrapping_add(1).wrapping_mul(0x9E37_79B9_7F4A_7C15))
}

/// What a validation pass gathers.
#[derive(Default)]
struct ValSums {
    dets: Vec<Detection>,
    gts: Vec<GroundTruth>,
    images: usize,
}

/// `fasterrcnn_small` trained on detection images.
pub struct Detect {
    model: FasterRcnn,
    params: Vec<Tensor>,
    meta: DetMeta,
    banner: String,
    val: ValSums,
    last: Option<(ApReport, Vec<Detection>, Vec<GroundTruth>)>,
    shown: Vec<DetectionImage>,
}

impl Detect {
    /// The task of the run `meta` describes, training `model`; `shown` are the test images
    /// drawn in `detections.png`.
    pub fn new(model: FasterRcnn, meta: &DetMeta, shown: Vec<DetectionImage>, banner: String) -> Detect {
        Detect {
            params: model.trainable_parameters(),
            model,
            meta: meta.clone(),
            banner,
            val: ValSums::default(),
            last: None,
            shown,
        }
    }

    /// The report, detections and ground truths of the latest validation or test pass.
    pub fn last_pass(&self) -> Option<&(ApReport, Vec<Detection>, Vec<GroundTruth>)> {
        self.last.as_ref()
    }

    fn pictures(&self, dir: &Path, epoch: u64) -> CliResult<()> {
        if self.shown.is_empty() {
            return Ok(());
        }
        let title = format!("{} on test images, epoch {epoch}", self.meta.run.model);
        draw_detections(
            &self.model,
            &self.shown,
            &self.meta.run.classes,
            &dir.join("detections.png"),
            &title,
        )
    }
}

/// Detect on `shown` and write them with their true boxes to `path`.
pub fn draw_detections(
    model: &FasterRcnn,
    shown: &[DetectionImage],
    classes: &[String],
    path: &Path,
    title: &str,
) -> CliResult<()> {
    let Some(first) = shown.first() else {
        return Ok(());
    };
    let [c, h, w] = [first.channels, first.size[0], first.size[1]];
    let mut x = Vec::with_capacity(shown.len() * c * h * w);
    for s in shown {
        x.extend_from_slice(&s.image);
    }
    let x = Tensor::from_vec(x, &[shown.len(), c, h, w])?;
    let found = {
        let _g = no_grad();
        model.detect(&x)?
    };
    let scenes: Vec<_> = shown
        .iter()
        .zip(found)
        .map(|(s, d)| {
            let truth = s
                .boxes
                .iter()
                .zip(&s.labels)
                .map(|(b, &k)| Boxed {
                    bbox: *b,
                    class: k,
                    score: None,
                })
                .collect();
            let pred = (0..d.boxes.len())
                .map(|j| Boxed {
                    bbox: d.boxes[j],
                    class: d.labels[j],
                    score: Some(d.scores[j]),
                })
                .collect();
            (
                Picture {
                    px: &s.image,
                    shape: [c, h, w],
                },
                truth,
                pred,
            )
        })
        .collect();
    pictures::detections_png(path, &scenes, classes, title, PICTURE_THRESHOLD)
}

impl nabla_train::Task for Detect {
    fn models(&self) -> Vec<(&str, &dyn Module)> {
        vec![("", &self.model as &dyn Module)]
    }

    fn configure_optimizers(&mut self) -> Result<Vec<Optim>> {
        let cfg = &self.meta.run.config;
        let mut optimizer = build_optimizer(cfg, self.params.clone())?;
        let schedule = schedule(cfg, optimizer.as_mut())?;
        Ok(vec![Optim::new(optimizer, schedule)])
    }

    fn training_step(&mut self, b: &Batch, step: u64, optims: &mut [Optim]) -> Result<StepOutput> {
        let rows = b.inputs.shape()[0] as u64;
        let mut targets = batch_targets(b)?;
        let cfg = &self.meta.run.config;
        let mut rng = step_generator(cfg.seed, step);
        // Flips draw from their own generator, so without them the sampling is unchanged.
        let flipped = match cfg.detect.flip.as_str() {
            "none" => None,
            how => {
                let mut g = step_generator(cfg.seed ^ FLIP_SEED, step);
                Some(flip_batch(&b.inputs, &mut targets, how == "hv", &mut g)?)
            }
        };
        let x = flipped.as_ref().unwrap_or(&b.inputs);
        let l = self.model.losses(x, &targets, &mut rng)?;
        let total = l.total()?;
        let lv = total.item()?;
        let n = rows as f64;
        if !lv.is_finite() {
            // Not stepped: the engine stops on this value and keeps the last checkpoint.
            return Ok(StepOutput::new(rows).sum("loss", lv * n));
        }
        let parts = [
            l.rpn_objectness.item()?,
            l.rpn_box_reg.item()?,
            l.classifier.item()?,
            l.box_reg.item()?,
        ];
        let mut grads = total.backward()?;
        optims[0].step(&mut grads, &self.params)?;
        Ok(StepOutput::new(rows)
            .sum("loss", lv * n)
            .sum("rpn_objectness", parts[0] * n)
            .sum("rpn_box_reg", parts[1] * n)
            .sum("classifier", parts[2] * n)
            .sum("box_reg", parts[3] * n))
    }

    fn validation_step(&mut self, b: &Batch) -> Result<()> {
        let (d, g) = score_batch(&self.model, b, self.val.images)?;
        self.val.images += b.inputs.shape()[0];
        self.val.dets.extend(d);
        self.val.gts.extend(g);
        Ok(())
    }

    fn validation_end(&mut self) -> Result<Vec<(String, f64)>> {
        let v = std::mem::take(&mut self.val);
        let r = evaluate_detections(&v.dets, &v.gts, self.meta.run.classes.len());
        let out = vec![("map50".into(), r.map50), ("map".into(), r.map_coco)];
        self.last = Some((r, v.dets, v.gts));
        Ok(out)
    }

    fn train_metrics(&self, sums: &Sums) -> Vec<(String, f64)> {
        sums.means()
    }

    fn best(&self) -> (&'static str, Direction) {
        ("val_map50", Direction::Max)
    }

    fn show(&self, name: &str, value: f64) -> String {
        match name {
            n if n.starts_with("map") => format!("{value:.3}"),
            _ => format!("{value:.4}"),
        }
    }

    fn epoch_end(&mut self, dir: &Path, history: &[Record]) -> Result<()> {
        let epoch = history.last().map_or(0, |r| r.epoch);
        self.pictures(dir, epoch)?;
        Ok(pictures::curves(dir, history)?)
    }

    fn checkpoint_extra(&self) -> BTreeMap<String, String> {
        self.meta.run.to_extra()
    }

    fn start_message(&self) -> Option<String> {
        Some(self.banner.clone())
    }
}
