//! The box branch (torchvision's `RoIHeads` with `TwoMLPHead` and `FastRCNNPredictor`):
//! proposals (plus the ground truth, in training) matched at IoU 0.5, 64 sampled per image
//! (the default) at a quarter positives, cut out of the feature map by RoI align (or RoI
//! pooling) to 7×7,
//! two fully connected layers, class logits and per-class box deltas; the Fast R-CNN loss;
//! and the post-processing of inference (softmax, per-class decoding, score threshold,
//! per-class NMS, top-k).

use super::coder::BoxCoder;
use super::matcher::{iou_matrix, Matcher, BELOW_LOW_THRESHOLD};
use super::sampler::BalancedSampler;
use super::{DetTarget, Detected, FasterRcnnConfig, RoiMode};
use nabla_core::{DType, Generator, Tensor};
use nabla_nn::loss::{cross_entropy, smooth_l1_loss, CrossEntropyOptions, Reduction};
use nabla_nn::{Children, Linear, Mode, Module, Result};

/// Detections smaller than this (either side, pixels) are dropped, as torchvision's 1e-2.
const MIN_DETECTION_SIZE: f32 = 1e-2;

/// `TwoMLPHead`: `fc6` and `fc7`, each followed by a ReLU, over the flattened RoI features.
pub struct BoxHead {
    /// Flattened `C·7·7` → representation.
    pub fc6: Linear,
    /// Representation → representation.
    pub fc7: Linear,
}

impl Module for BoxHead {
    fn forward(&self, x: &Tensor, mode: Mode) -> Result<Tensor> {
        let x = x.flatten(1, -1)?;
        let x = self.fc6.forward_named("fc6", &x, mode)?.relu()?;
        self.fc7.forward_named("fc7", &x, mode)?.relu().map_err(Into::into)
    }
    fn children(&self, c: &mut Children) {
        c.module("fc6", &self.fc6);
        c.module("fc7", &self.fc7);
    }
    fn describe(&self) -> String {
        "TwoMLPHead".into()
    }
}

/// `FastRCNNPredictor`: class logits (`cls_score`, background first) and per-class box
/// deltas (`bbox_pred`, four per class).
pub struct BoxPredictor {
    /// Representation → `num_classes + 1` logits.
    pub cls_score: Linear,
    /// Representation → `4·(num_classes + 1)` deltas.
    pub bbox_pred: Linear,
}

impl Module for BoxPredictor {
    /// The class logits.
    fn forward(&self, x: &Tensor, mode: Mode) -> Result<Tensor> {
        self.cls_score.forward_named("cls_score", x, mode)
    }
    fn children(&self, c: &mut Children) {
        c.module("cls_score", &self.cls_score);
        c.module("bbox_pred", &self.bbox_pred);
    }
    fn describe(&self) -> String {
        "FastRCNNPredictor".into()
    }
}

/// `RoIHeads`: `box_head` and `box_predictor`.
pub struct RoiHeads {
    /// The two fully connected layers.
    pub box_head: BoxHead,
    /// Class logits and box deltas.
    pub box_predictor: BoxPredictor,
}

/// A linear layer with N(0, std²) weights and a zero bias.
fn normal_linear(i: usize, o: usize, std: f64, g: &mut Generator) -> Result<Linear> {
    Linear::from_parts(
        Tensor::normal(&[o, i], 0.0, std, DType::F32, g),
        Some(Tensor::zeros(&[o], DType::F32)),
    )
}

impl RoiHeads {
    /// Heads over `channels`-map RoI features of `cfg.roi_output_size`²: PyTorch's default
    /// init for `fc6`/`fc7`, N(0, 0.01²) class scores and N(0, 0.001²) deltas (Detectron's
    /// predictor init, which starts the deltas near zero).
    pub fn new(channels: usize, cfg: &FasterRcnnConfig, g: &mut Generator) -> Result<RoiHeads> {
        let flat = channels * cfg.roi_output_size * cfg.roi_output_size;
        let rep = cfg.representation_size;
        let classes = cfg.num_classes + 1;
        Ok(RoiHeads {
            box_head: BoxHead {
                fc6: Linear::new(flat, rep, g),
                fc7: Linear::new(rep, rep, g),
            },
            box_predictor: BoxPredictor {
                cls_score: normal_linear(rep, classes, 0.01, g)?,
                bbox_pred: normal_linear(rep, 4 * classes, 0.001, g)?,
            },
        })
    }

    /// Class logits `[K, classes + 1]` and deltas `[K, 4·(classes + 1)]` of the `rois`
    /// (`(image, box)` pairs) on `feats`, whose cells are `1 / scale` pixels apart.
    pub fn forward_rois(
        &self,
        feats: &Tensor,
        rois: &[(usize, [f32; 4])],
        scale: f64,
        cfg: &FasterRcnnConfig,
        mode: Mode,
    ) -> Result<(Tensor, Tensor)> {
        let flat: Vec<f32> = rois
            .iter()
            .flat_map(|(i, b)| [*i as f32, b[0], b[1], b[2], b[3]])
            .collect();
        let rois = Tensor::from_vec(flat, &[rois.len(), 5])?;
        let out = [cfg.roi_output_size; 2];
        let pooled = match cfg.roi {
            RoiMode::Align => feats.roi_align(&rois, out, scale, cfg.sampling_ratio, false)?,
            RoiMode::Pool => feats.roi_pool(&rois, out, scale)?,
        };
        let x = self.box_head.forward_named("box_head", &pooled, mode)?;
        let logits = self
            .box_predictor
            .cls_score
            .forward_named("box_predictor.cls_score", &x, mode)?;
        let deltas = self
            .box_predictor
            .bbox_pred
            .forward_named("box_predictor.bbox_pred", &x, mode)?;
        Ok((logits, deltas))
    }
}

impl Module for RoiHeads {
    /// The class logits of already pooled RoI features `[K, C, 7, 7]`.
    fn forward(&self, x: &Tensor, mode: Mode) -> Result<Tensor> {
        let x = self.box_head.forward_named("box_head", x, mode)?;
        self.box_predictor.forward_named("box_predictor", &x, mode)
    }
    fn children(&self, c: &mut Children) {
        c.module("box_head", &self.box_head);
        c.module("box_predictor", &self.box_predictor);
    }
    fn describe(&self) -> String {
        "RoIHeads".into()
    }
}

/// The box branch's training RoIs over the batch with their labels (0 background, else the
/// 0-based class + 1) and, for the positives, their row and regression target.
pub struct RoiSamples {
    /// `(image, box)` of every sampled RoI, image by image.
    pub rois: Vec<(usize, [f32; 4])>,
    /// The class of each RoI (0: background).
    pub labels: Vec<usize>,
    /// Rows of `rois` that are positive.
    pub pos: Vec<usize>,
    /// The encoded ground truth of each positive (weights `bbox_reg_weights`).
    pub targets: Vec<[f32; 4]>,
}

/// torchvision's `select_training_samples`: each image's proposals with its ground-truth
/// boxes added, matched (IoU ≥ `box_fg_iou_thresh` object, < `box_bg_iou_thresh`
/// background) and sampled.
pub fn sample_rois(
    proposals: &[Vec<[f32; 4]>],
    targets: &[DetTarget],
    cfg: &FasterRcnnConfig,
    g: &mut Generator,
) -> RoiSamples {
    let matcher = Matcher {
        high: cfg.box_fg_iou_thresh,
        low: cfg.box_bg_iou_thresh,
        allow_low_quality_matches: false,
    };
    let sampler = BalancedSampler {
        batch_size_per_image: cfg.box_batch_size_per_image,
        positive_fraction: cfg.box_positive_fraction,
    };
    let coder = BoxCoder::new(cfg.bbox_reg_weights);
    let mut out = RoiSamples {
        rois: Vec::new(),
        labels: Vec::new(),
        pos: Vec::new(),
        targets: Vec::new(),
    };
    for (i, (props, t)) in proposals.iter().zip(targets.iter()).enumerate() {
        let mut cands = props.clone();
        cands.extend_from_slice(&t.boxes);
        let iou = iou_matrix(&t.boxes, &cands);
        let matches = matcher.assign(&iou, t.boxes.len(), cands.len());
        let labels: Vec<i64> = matches
            .iter()
            .map(|&m| match m {
                m if m >= 0 => t.labels[m as usize] as i64 + 1,
                BELOW_LOW_THRESHOLD => 0,
                _ => -1,
            })
            .collect();
        let (pos, neg) = sampler.sample(&labels, g);
        let mut picked: Vec<usize> = pos.iter().chain(neg.iter()).copied().collect();
        // Image order as torchvision's `where(pos | neg)` gives it.
        picked.sort_unstable();
        for p in picked {
            if labels[p] >= 1 {
                out.pos.push(out.rois.len());
                out.targets.push(coder.encode(t.boxes[matches[p] as usize], cands[p]));
            }
            out.rois.push((i, cands[p]));
            out.labels.push(labels[p].max(0) as usize);
        }
    }
    out
}

/// torchvision's `fastrcnn_loss`: cross entropy over the sampled RoIs, and smooth-L1
/// (β = 1/9) of each positive's deltas for its own class, summed and divided by the
/// sampled count.
pub fn fastrcnn_loss(logits: &Tensor, deltas: &Tensor, s: &RoiSamples) -> Result<(Tensor, Tensor)> {
    let k = s.labels.len();
    let classes = logits.shape()[1];
    let ce = cross_entropy(logits, &s.labels, &CrossEntropyOptions::default())?;
    let box_loss = if s.pos.is_empty() {
        deltas.sum_all()?.mul_scalar(0.0)?
    } else {
        let rows: Vec<usize> = s.pos.iter().map(|&r| r * classes + s.labels[r]).collect();
        let pred = deltas.reshape([k * classes, 4])?.index_select(0, &rows)?;
        let flat: Vec<f32> = s.targets.iter().flatten().copied().collect();
        let target = Tensor::from_vec(flat, &[s.pos.len(), 4])?;
        smooth_l1_loss(&pred, &target, 1.0 / 9.0, Reduction::Sum)?.div_scalar(k as f64)?
    };
    Ok((ce, box_loss))
}

/// torchvision's `postprocess_detections` for the RoIs of `rois` (image by image):
/// softmax, per-class decoding of the deltas, clipping to `size`, background dropped,
/// scores ≤ `box_score_thresh` and boxes under 0.01 pixels dropped, NMS per class at
/// `box_nms_thresh`, the `box_detections_per_img` best kept; labels back to 0-based.
pub fn postprocess(
    logits: &Tensor,
    deltas: &Tensor,
    rois: &[(usize, [f32; 4])],
    images: usize,
    size: [usize; 2],
    cfg: &FasterRcnnConfig,
) -> Result<Vec<Detected>> {
    let classes = cfg.num_classes + 1;
    let probs = logits.softmax(1)?.to_vec_f32();
    let deltas = deltas.to_vec_f32();
    let coder = BoxCoder::new(cfg.bbox_reg_weights);
    let mut out: Vec<Detected> = (0..images)
        .map(|_| Detected {
            boxes: Vec::new(),
            labels: Vec::new(),
            scores: Vec::new(),
        })
        .collect();
    let mut start = 0;
    while start < rois.len() {
        let img = rois[start].0;
        let end = start + rois[start..].iter().take_while(|r| r.0 == img).count();
        let (mut boxes, mut scores, mut labels) = (Vec::new(), Vec::new(), Vec::new());
        for (r, (_, prop)) in rois.iter().enumerate().take(end).skip(start) {
            for c in 1..classes {
                let s = probs[r * classes + c];
                if s <= cfg.box_score_thresh {
                    continue;
                }
                let d = &deltas[(r * classes + c) * 4..(r * classes + c) * 4 + 4];
                boxes.push(coder.decode([d[0], d[1], d[2], d[3]], *prop));
                scores.push(s);
                labels.push(c - 1);
            }
        }
        nabla_vision::clip_boxes_to_image(&mut boxes, size);
        let keep = nabla_vision::remove_small_boxes(&boxes, MIN_DETECTION_SIZE);
        let boxes: Vec<[f32; 4]> = keep.iter().map(|&j| boxes[j]).collect();
        let scores: Vec<f32> = keep.iter().map(|&j| scores[j]).collect();
        let labels: Vec<usize> = keep.iter().map(|&j| labels[j]).collect();
        let mut kept = nabla_vision::batched_nms(&boxes, &scores, &labels, cfg.box_nms_thresh);
        kept.truncate(cfg.box_detections_per_img);
        let d = &mut out[img];
        for j in kept {
            d.boxes.push(boxes[j]);
            d.scores.push(scores[j]);
            d.labels.push(labels[j]);
        }
        start = end;
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fastrcnn_loss_takes_each_positives_own_class_deltas() {
        // 3 RoIs over 2 object classes (+ background): RoI 1 is class 1's (model class 2).
        let logits = Tensor::zeros(&[3, 3], DType::F32);
        let mut d = vec![0.0f32; 3 * 12];
        // RoI 1's deltas for model class 2 are off by 1 in dx; other classes' are wild.
        d[12 + 8] = 1.0;
        d[12 + 4] = 50.0;
        let deltas = Tensor::from_vec(d, &[3, 12]).unwrap();
        let s = RoiSamples {
            rois: vec![(0, [0.0; 4]); 3],
            labels: vec![0, 2, 0],
            pos: vec![1],
            targets: vec![[0.0; 4]],
        };
        let (ce, box_loss) = fastrcnn_loss(&logits, &deltas, &s).unwrap();
        assert!((ce.item().unwrap() - 3f64.ln()).abs() < 1e-6);
        // smooth L1 with β = 1/9 of a difference 1: 1 − 1/18, divided by the 3 sampled.
        assert!((box_loss.item().unwrap() - (1.0 - 1.0 / 18.0) / 3.0).abs() < 1e-6);
    }

    #[test]
    fn training_rois_include_the_ground_truth_and_label_by_class() {
        let cfg = FasterRcnnConfig::default();
        let t = DetTarget {
            boxes: vec![[10.0, 10.0, 30.0, 30.0]],
            labels: vec![4],
        };
        // One proposal on the object (IoU 0.81), one far away.
        let props = vec![vec![[10.0, 10.0, 28.0, 28.0], [40.0, 40.0, 60.0, 60.0]]];
        let s = sample_rois(&props, &[t], &cfg, &mut Generator::new(0));
        assert_eq!(s.rois.len(), 3);
        assert_eq!(s.labels, vec![5, 0, 5]);
        assert_eq!(s.pos, vec![0, 2]);
        // The added ground truth encodes to zero offsets.
        assert_eq!(s.targets[1], [0.0; 4]);
    }
}
