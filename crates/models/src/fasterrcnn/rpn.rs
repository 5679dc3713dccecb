//! The region-proposal network (torchvision's `RPNHead` and `RegionProposalNetwork`): a
//! 3×3 convolution and ReLU, then per anchor one objectness logit and four box deltas; in
//! training, anchors matched to the ground truth (IoU ≥ 0.7 object, < 0.3 background, each
//! box's best anchors kept), 256 sampled per image at half positives, BCE-with-logits and
//! smooth-L1 (β = 1/9) losses; proposals decoded from the best-scoring anchors, clipped,
//! small ones dropped, NMS, the top ones kept. Matching, sampling and proposals run on plain
//! slices: no gradient flows through proposals, as in torchvision.

use super::coder::BoxCoder;
use super::matcher::{iou_matrix, Matcher};
use super::sampler::BalancedSampler;
use super::{DetTarget, FasterRcnnConfig};
use nabla_core::{Conv2dOptions, DType, Generator, Tensor};
use nabla_nn::loss::{binary_cross_entropy_with_logits, smooth_l1_loss, Reduction};
use nabla_nn::{Children, Conv2d, Mode, Module, Result};

/// Proposals smaller than this (either side, pixels) are dropped, as torchvision's 1e-3.
const MIN_PROPOSAL_SIZE: f32 = 1e-3;

/// `RPNHead`: `conv` (3×3, ReLU), `cls_logits` (1×1, one logit per anchor) and `bbox_pred`
/// (1×1, four deltas per anchor).
pub struct RpnHead {
    /// Shared 3×3 convolution.
    pub conv: Conv2d,
    /// Objectness logits, `A` maps.
    pub cls_logits: Conv2d,
    /// Box deltas, `4·A` maps (anchor-major).
    pub bbox_pred: Conv2d,
}

/// A convolution with N(0, std²) weights and a zero bias (torchvision's RPN head init).
fn normal_conv(c_in: usize, c_out: usize, k: usize, std: f64, g: &mut Generator) -> Result<Conv2d> {
    let w = Tensor::normal(&[c_out, c_in, k, k], 0.0, std, DType::F32, g);
    let opts = Conv2dOptions {
        padding: [k / 2; 2],
        ..Default::default()
    };
    Conv2d::from_parts(w, Some(Tensor::zeros(&[c_out], DType::F32)), opts)
}

impl RpnHead {
    /// A head over `channels` maps with `anchors` anchors per cell.
    pub fn new(channels: usize, anchors: usize, g: &mut Generator) -> Result<RpnHead> {
        Ok(RpnHead {
            conv: normal_conv(channels, channels, 3, 0.01, g)?,
            cls_logits: normal_conv(channels, anchors, 1, 0.01, g)?,
            bbox_pred: normal_conv(channels, 4 * anchors, 1, 0.01, g)?,
        })
    }

    /// Objectness `[N·H·W·A]` and deltas `[N·H·W·A, 4]` in the anchors' order.
    pub fn forward2(&self, feats: &Tensor, mode: Mode) -> Result<(Tensor, Tensor)> {
        let t = self.conv.forward_named("conv", feats, mode)?.relu()?;
        let obj = self.cls_logits.forward_named("cls_logits", &t, mode)?;
        let deltas = self.bbox_pred.forward_named("bbox_pred", &t, mode)?;
        let (n, a, h, w) = (obj.shape()[0], obj.shape()[1], obj.shape()[2], obj.shape()[3]);
        let obj = obj.permute(&[0, 2, 3, 1])?.reshape([n * h * w * a])?;
        let deltas = deltas
            .reshape([n, a, 4, h, w])?
            .permute(&[0, 3, 4, 1, 2])?
            .reshape([n * h * w * a, 4])?;
        Ok((obj, deltas))
    }
}

impl Module for RpnHead {
    /// The objectness logits `[N, A, H, W]`.
    fn forward(&self, x: &Tensor, mode: Mode) -> Result<Tensor> {
        let t = self.conv.forward_named("conv", x, mode)?.relu()?;
        self.cls_logits.forward_named("cls_logits", &t, mode)
    }
    fn children(&self, c: &mut Children) {
        c.module("conv", &self.conv);
        c.module("cls_logits", &self.cls_logits);
        c.module("bbox_pred", &self.bbox_pred);
    }
    fn describe(&self) -> String {
        "RPNHead".into()
    }
}

/// `RegionProposalNetwork`: holds the head (`rpn.head.*`).
pub struct Rpn {
    /// The convolutional head.
    pub head: RpnHead,
}

impl Module for Rpn {
    fn forward(&self, x: &Tensor, mode: Mode) -> Result<Tensor> {
        self.head.forward_named("head", x, mode)
    }
    fn children(&self, c: &mut Children) {
        c.module("head", &self.head);
    }
    fn describe(&self) -> String {
        "RegionProposalNetwork".into()
    }
}

/// The RPN's sampled training anchors over the batch (indices into the flattened
/// `N·H·W·A` anchors) with the regression targets of the positives.
pub struct RpnSamples {
    /// Sampled positive anchors, batch-global indices.
    pub pos: Vec<usize>,
    /// Sampled negative anchors, batch-global indices.
    pub neg: Vec<usize>,
    /// The encoded ground truth of each positive, `pos`'s order.
    pub targets: Vec<[f32; 4]>,
}

/// Match every image's anchors to its ground truth and sample them (torchvision's
/// `assign_targets_to_anchors` and `fg_bg_sampler`).
pub fn sample_anchors(
    anchors: &[[f32; 4]],
    targets: &[DetTarget],
    cfg: &FasterRcnnConfig,
    g: &mut Generator,
) -> RpnSamples {
    let matcher = Matcher {
        high: cfg.rpn_fg_iou_thresh,
        low: cfg.rpn_bg_iou_thresh,
        allow_low_quality_matches: true,
    };
    let sampler = BalancedSampler {
        batch_size_per_image: cfg.rpn_batch_size_per_image,
        positive_fraction: cfg.rpn_positive_fraction,
    };
    let coder = BoxCoder::new([1.0; 4]);
    let per = anchors.len();
    let mut out = RpnSamples {
        pos: Vec::new(),
        neg: Vec::new(),
        targets: Vec::new(),
    };
    for (i, t) in targets.iter().enumerate() {
        let iou = iou_matrix(&t.boxes, anchors);
        let matches = matcher.assign(&iou, t.boxes.len(), per);
        // 1 object, 0 background, −1 between the thresholds (ignored).
        let labels: Vec<i64> = matches.iter().map(|&m| if m >= 0 { 1 } else { m + 1 }).collect();
        let (pos, neg) = sampler.sample(&labels, g);
        for &p in &pos {
            out.targets.push(coder.encode(t.boxes[matches[p] as usize], anchors[p]));
        }
        out.pos.extend(pos.iter().map(|&p| i * per + p));
        out.neg.extend(neg.iter().map(|&p| i * per + p));
    }
    out
}

/// The RPN's objectness (BCE with logits, mean over the sampled anchors) and box (smooth-L1,
/// β = 1/9, summed over the positives, divided by the sampled count) losses.
pub fn rpn_losses(obj: &Tensor, deltas: &Tensor, s: &RpnSamples) -> Result<(Tensor, Tensor)> {
    let sampled: Vec<usize> = s.pos.iter().chain(s.neg.iter()).copied().collect();
    let count = sampled.len().max(1) as f64;
    let mut labels = vec![1.0f32; s.pos.len()];
    labels.resize(sampled.len(), 0.0);
    let objectness = if sampled.is_empty() {
        obj.sum_all()?.mul_scalar(0.0)?
    } else {
        let logits = obj.index_select(0, &sampled)?;
        let target = Tensor::from_vec(labels, &[sampled.len()])?;
        binary_cross_entropy_with_logits(&logits, &target, Reduction::Mean)?
    };
    let box_loss = if s.pos.is_empty() {
        deltas.sum_all()?.mul_scalar(0.0)?
    } else {
        let pred = deltas.index_select(0, &s.pos)?;
        let flat: Vec<f32> = s.targets.iter().flatten().copied().collect();
        let target = Tensor::from_vec(flat, &[s.pos.len(), 4])?;
        smooth_l1_loss(&pred, &target, 1.0 / 9.0, Reduction::Sum)?.div_scalar(count)?
    };
    Ok((objectness, box_loss))
}

/// How many proposals to keep before and after NMS.
#[derive(Debug, Clone, Copy)]
pub struct ProposalCounts {
    /// Best-scoring anchors decoded per image.
    pub pre_nms_top_n: usize,
    /// Proposals kept per image after NMS.
    pub post_nms_top_n: usize,
}

/// Each image's proposals from the detached objectness `obj` (`N·H·W·A` logits) and
/// `deltas` (`N·H·W·A·4`): the `pre_nms_top_n` best anchors decoded, clipped to `size`,
/// boxes under 1e-3 pixels and scores under `rpn_score_thresh` dropped, NMS at
/// `rpn_nms_thresh`, the `post_nms_top_n` best kept (torchvision's `filter_proposals`).
pub fn proposals(
    anchors: &[[f32; 4]],
    obj: &[f32],
    deltas: &[f32],
    size: [usize; 2],
    counts: ProposalCounts,
    cfg: &FasterRcnnConfig,
) -> Vec<Vec<[f32; 4]>> {
    let per = anchors.len();
    let coder = BoxCoder::new([1.0; 4]);
    let n = obj.len().checked_div(per).unwrap_or(0);
    (0..n)
        .map(|i| {
            let scores = &obj[i * per..(i + 1) * per];
            let mut order: Vec<usize> = (0..per).collect();
            let k = counts.pre_nms_top_n.min(per);
            if k < per {
                order.select_nth_unstable_by(k, |&a, &b| scores[b].total_cmp(&scores[a]));
                order.truncate(k);
            }
            let mut boxes = Vec::with_capacity(k);
            let mut probs = Vec::with_capacity(k);
            for &a in &order {
                let d = &deltas[(i * per + a) * 4..(i * per + a) * 4 + 4];
                boxes.push(coder.decode([d[0], d[1], d[2], d[3]], anchors[a]));
                probs.push(1.0 / (1.0 + (-scores[a]).exp()));
            }
            nabla_vision::clip_boxes_to_image(&mut boxes, size);
            let keep: Vec<usize> = nabla_vision::remove_small_boxes(&boxes, MIN_PROPOSAL_SIZE)
                .into_iter()
                .filter(|&j| probs[j] >= cfg.rpn_score_thresh)
                .collect();
            let boxes: Vec<[f32; 4]> = keep.iter().map(|&j| boxes[j]).collect();
            let probs: Vec<f32> = keep.iter().map(|&j| probs[j]).collect();
            let mut kept = nabla_vision::nms(&boxes, &probs, cfg.rpn_nms_thresh);
            kept.truncate(counts.post_nms_top_n);
            kept.into_iter().map(|j| boxes[j]).collect()
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn anchor_sampling_marks_matched_anchors_positive() {
        let cfg = FasterRcnnConfig::default();
        let anchors = vec![
            [0.0, 0.0, 16.0, 16.0],
            [0.0, 0.0, 15.0, 16.0],
            [40.0, 40.0, 56.0, 56.0],
            [4.0, 4.0, 20.0, 20.0],
        ];
        let t = DetTarget {
            boxes: vec![[0.0, 0.0, 16.0, 16.0]],
            labels: vec![0],
        };
        let s = sample_anchors(&anchors, &[t.clone(), t], &cfg, &mut Generator::new(0));
        // Per image: anchors 0 and 1 (IoU 1 and 0.94) positive, 2 negative, 3 (IoU 0.39) ignored.
        assert_eq!(s.pos, vec![0, 1, 4, 5]);
        assert_eq!(s.neg, vec![2, 6]);
        assert_eq!(s.targets[0], [0.0; 4]);
        // The losses divide the box term by all 6 sampled anchors.
        let obj = Tensor::zeros(&[8], DType::F32);
        let deltas = Tensor::ones(&[8, 4], DType::F32);
        let (o, b) = rpn_losses(&obj, &deltas, &s).unwrap();
        assert!((o.item().unwrap() - 2f64.ln()).abs() < 1e-6);
        let per_anchor: f64 = s
            .targets
            .iter()
            .flatten()
            .map(|&t| {
                let d = (1.0 - t as f64).abs();
                if d < 1.0 / 9.0 {
                    4.5 * d * d
                } else {
                    d - 1.0 / 18.0
                }
            })
            .sum();
        assert!((b.item().unwrap() - per_anchor / 6.0).abs() < 1e-5);
    }
}
