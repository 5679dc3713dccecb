//! `fasterrcnn_small`: a Faster R-CNN (Ren et al., 2015) with torchvision's structure,
//! semantics and state-dict names, scaled for small images (64×64 Fashion-MNIST scenes of
//! 1–4 items of 18–45 pixels).
//!
//! One feature map from the backbone ([`backbone`]), anchors at several sizes and ratios on
//! it ([`anchors`]), a region-proposal network ([`rpn`]), and the box branch ([`roi_heads`]):
//! RoI align (or pooling) to 7×7, two fully connected layers, class scores and per-class
//! box deltas. Boxes are xyxy pixels; the model's class 0 is background, the targets' and
//! detections' labels are 0-based object classes.
//!
//! ```
//! use nabla_core::{DType, Generator, Tensor};
//! use nabla_models::fasterrcnn::{DetTarget, FasterRcnn, FasterRcnnConfig};
//! let cfg = FasterRcnnConfig { num_classes: 3, ..Default::default() };
//! let mut g = Generator::new(0);
//! let model = FasterRcnn::new(cfg, &mut g)?;
//! let images = Tensor::zeros(&[1, 1, 64, 64], DType::F32);
//! let target = DetTarget { boxes: vec![[10.0, 12.0, 40.0, 44.0]], labels: vec![2] };
//! let losses = model.losses(&images, &[target], &mut g)?;
//! assert!(losses.total()?.item()?.is_finite());
//! assert_eq!(model.detect(&images)?.len(), 1);
//! # Ok::<(), nabla_nn::Error>(())
//! ```

pub mod anchors;
pub mod backbone;
pub mod coder;
pub mod matcher;
pub mod roi_heads;
pub mod rpn;
pub mod sampler;

use backbone::{load_backbone_from, ResnetTrunk, SmallBackbone};
use nabla_core::{Error as CoreError, Generator, Tensor};
use nabla_nn::{Children, Error, Mode, Module, Result};
use roi_heads::{fastrcnn_loss, postprocess, sample_rois, RoiHeads};
use rpn::{proposals, rpn_losses, sample_anchors, ProposalCounts, Rpn, RpnHead};

/// How RoI features are cut out of the feature map.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RoiMode {
    /// Max pooling over quantized bins (Fast R-CNN's `roi_pool`).
    Pool,
    /// Bilinear sampling without quantization (`roi_align`, Mask R-CNN's).
    Align,
}

/// Which network computes the feature map.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DetBackbone {
    /// A few conv-bn-relu layers: `small_channels` maps at stride `small_stride`.
    Small,
    /// ResNet-18 up to `layer2`: 128 maps at stride 8, ImageNet-loadable names.
    Resnet18,
}

/// Every setting of the detector, with torchvision's names where it has one; the defaults
/// suit 64×64 scenes.
#[derive(Debug, Clone, PartialEq)]
pub struct FasterRcnnConfig {
    /// Channels of the input images.
    pub in_channels: usize,
    /// Object classes (background not counted).
    pub num_classes: usize,
    /// The feature network.
    pub backbone: DetBackbone,
    /// RoI align or RoI pooling.
    pub roi: RoiMode,
    /// Maps of the small backbone's feature map.
    pub small_channels: usize,
    /// Stride of the small backbone's feature map (4 or 8).
    pub small_stride: usize,
    /// Anchor sides in pixels (square root of the area).
    pub anchor_sizes: Vec<f32>,
    /// Anchor height / width ratios.
    pub aspect_ratios: Vec<f32>,
    /// Anchors decoded per image before the proposals' NMS, in training.
    pub rpn_pre_nms_top_n_train: usize,
    /// Anchors decoded per image before the proposals' NMS, in inference.
    pub rpn_pre_nms_top_n_test: usize,
    /// Proposals kept per image after NMS, in training.
    pub rpn_post_nms_top_n_train: usize,
    /// Proposals kept per image after NMS, in inference.
    pub rpn_post_nms_top_n_test: usize,
    /// IoU threshold of the proposals' NMS.
    pub rpn_nms_thresh: f32,
    /// IoU from which an anchor is an object.
    pub rpn_fg_iou_thresh: f32,
    /// IoU under which an anchor is background.
    pub rpn_bg_iou_thresh: f32,
    /// Anchors sampled per image for the RPN's losses.
    pub rpn_batch_size_per_image: usize,
    /// The largest share of positives among them.
    pub rpn_positive_fraction: f32,
    /// Objectness probability under which a proposal is dropped.
    pub rpn_score_thresh: f32,
    /// Side of the pooled RoI features.
    pub roi_output_size: usize,
    /// RoI align's samples per bin and axis (≤ 0: adaptive).
    pub sampling_ratio: i64,
    /// Width of the box head's two fully connected layers.
    pub representation_size: usize,
    /// Class probability a detection must exceed.
    pub box_score_thresh: f32,
    /// IoU threshold of the per-class NMS of detections.
    pub box_nms_thresh: f32,
    /// Detections kept per image.
    pub box_detections_per_img: usize,
    /// IoU from which a proposal is an object.
    pub box_fg_iou_thresh: f32,
    /// IoU under which a proposal is background.
    pub box_bg_iou_thresh: f32,
    /// Proposals sampled per image for the box losses: 64 by default (torchvision's 512 is
    /// for 800-pixel photos; on 64×64 scenes 64 gave the mAP of 128 after one epoch at 60%
    /// of the step's CPU time).
    pub box_batch_size_per_image: usize,
    /// The largest share of positives among them.
    pub box_positive_fraction: f32,
    /// Weights of the box head's `(dx, dy, dw, dh)`.
    pub bbox_reg_weights: [f32; 4],
}

impl Default for FasterRcnnConfig {
    fn default() -> Self {
        FasterRcnnConfig {
            in_channels: 1,
            num_classes: 10,
            backbone: DetBackbone::Small,
            roi: RoiMode::Align,
            small_channels: 64,
            small_stride: 4,
            anchor_sizes: vec![16.0, 24.0, 32.0, 48.0],
            aspect_ratios: vec![0.5, 1.0, 2.0],
            rpn_pre_nms_top_n_train: 600,
            rpn_pre_nms_top_n_test: 300,
            rpn_post_nms_top_n_train: 300,
            rpn_post_nms_top_n_test: 100,
            rpn_nms_thresh: 0.7,
            rpn_fg_iou_thresh: 0.7,
            rpn_bg_iou_thresh: 0.3,
            rpn_batch_size_per_image: 256,
            rpn_positive_fraction: 0.5,
            rpn_score_thresh: 0.0,
            roi_output_size: 7,
            sampling_ratio: 2,
            representation_size: 256,
            box_score_thresh: 0.05,
            box_nms_thresh: 0.5,
            box_detections_per_img: 100,
            box_fg_iou_thresh: 0.5,
            box_bg_iou_thresh: 0.5,
            box_batch_size_per_image: 64,
            box_positive_fraction: 0.25,
            bbox_reg_weights: [10.0, 10.0, 5.0, 5.0],
        }
    }
}

impl FasterRcnnConfig {
    /// Check the settings, naming the first bad one.
    pub fn validate(&self) -> Result<()> {
        let bad = |m: String| Err(Error::Config(format!("fasterrcnn_small: {m}")));
        if self.in_channels == 0 || self.num_classes == 0 {
            return bad("in_channels and num_classes must be positive".into());
        }
        if self.anchor_sizes.is_empty() || self.aspect_ratios.is_empty() {
            return bad("anchor_sizes and aspect_ratios need at least one entry each".into());
        }
        if let Some(v) = self
            .anchor_sizes
            .iter()
            .chain(&self.aspect_ratios)
            .find(|v| !(v.is_finite() && **v > 0.0))
        {
            return bad(format!("anchor sizes and aspect ratios must be positive, got {v}"));
        }
        for (name, v) in [
            ("rpn_nms_thresh", self.rpn_nms_thresh),
            ("rpn_fg_iou_thresh", self.rpn_fg_iou_thresh),
            ("rpn_bg_iou_thresh", self.rpn_bg_iou_thresh),
            ("rpn_positive_fraction", self.rpn_positive_fraction),
            ("box_nms_thresh", self.box_nms_thresh),
            ("box_fg_iou_thresh", self.box_fg_iou_thresh),
            ("box_bg_iou_thresh", self.box_bg_iou_thresh),
            ("box_positive_fraction", self.box_positive_fraction),
        ] {
            if !(0.0..=1.0).contains(&v) {
                return bad(format!("{name} must be in [0, 1], got {v}"));
            }
        }
        if self.rpn_bg_iou_thresh > self.rpn_fg_iou_thresh || self.box_bg_iou_thresh > self.box_fg_iou_thresh {
            return bad("a background IoU threshold is above its foreground one".into());
        }
        if self.roi_output_size == 0 || self.representation_size == 0 {
            return bad("roi_output_size and representation_size must be positive".into());
        }
        if self.rpn_batch_size_per_image == 0 || self.box_batch_size_per_image == 0 {
            return bad("the per-image sample sizes must be positive".into());
        }
        if self.rpn_post_nms_top_n_train == 0 || self.rpn_post_nms_top_n_test == 0 {
            return bad("the post-NMS proposal counts must be positive".into());
        }
        Ok(())
    }
}

/// Ground truth of one image: xyxy pixel boxes and their 0-based classes.
#[derive(Debug, Clone, PartialEq)]
pub struct DetTarget {
    /// Boxes `[x1, y1, x2, y2]` in pixels.
    pub boxes: Vec<[f32; 4]>,
    /// The class of each box, 0-based.
    pub labels: Vec<usize>,
}

/// The four training losses (scalars).
pub struct DetLosses {
    /// RPN objectness, BCE with logits.
    pub rpn_objectness: Tensor,
    /// RPN box regression, smooth L1.
    pub rpn_box_reg: Tensor,
    /// Box branch classification, cross entropy.
    pub classifier: Tensor,
    /// Box branch regression, smooth L1.
    pub box_reg: Tensor,
}

impl DetLosses {
    /// The sum of the four losses, what training minimizes.
    pub fn total(&self) -> Result<Tensor> {
        Ok(self
            .rpn_objectness
            .add(&self.rpn_box_reg)?
            .add(&self.classifier)?
            .add(&self.box_reg)?)
    }
}

/// Detections of one image, by decreasing score within each class.
#[derive(Debug, Clone, PartialEq)]
pub struct Detected {
    /// Boxes `[x1, y1, x2, y2]` in pixels.
    pub boxes: Vec<[f32; 4]>,
    /// Classes, 0-based.
    pub labels: Vec<usize>,
    /// Class probabilities.
    pub scores: Vec<f32>,
}

/// The detector: `backbone`, `rpn` (`rpn.head.*`) and `roi_heads`
/// (`roi_heads.box_head.fc6/fc7`, `roi_heads.box_predictor.cls_score/bbox_pred`).
pub struct FasterRcnn {
    cfg: FasterRcnnConfig,
    /// The feature network.
    pub backbone: Box<dyn Module>,
    /// The region-proposal network.
    pub rpn: Rpn,
    /// The box branch.
    pub roi_heads: RoiHeads,
    base_anchors: Vec<[f32; 4]>,
}

impl FasterRcnn {
    /// A detector as `cfg` says, initialized from `rng`.
    pub fn new(cfg: FasterRcnnConfig, rng: &mut Generator) -> Result<FasterRcnn> {
        cfg.validate()?;
        let (backbone, channels): (Box<dyn Module>, usize) = match cfg.backbone {
            DetBackbone::Small => (
                Box::new(SmallBackbone::new(
                    cfg.in_channels,
                    cfg.small_channels,
                    cfg.small_stride,
                    rng,
                )?),
                cfg.small_channels,
            ),
            DetBackbone::Resnet18 => (Box::new(ResnetTrunk::new(cfg.in_channels, rng)?), 128),
        };
        let base_anchors = anchors::base_anchors(&cfg.anchor_sizes, &cfg.aspect_ratios);
        let rpn = Rpn {
            head: RpnHead::new(channels, base_anchors.len(), rng)?,
        };
        let roi_heads = RoiHeads::new(channels, &cfg, rng)?;
        Ok(FasterRcnn {
            cfg,
            backbone,
            rpn,
            roi_heads,
            base_anchors,
        })
    }

    /// The settings the model was built with.
    pub fn config(&self) -> &FasterRcnnConfig {
        &self.cfg
    }

    /// Copy the backbone's weights from a classification model's state dict, a checkpoint's
    /// (`model.` names) or a torchvision detector's (`backbone.body.` names); returns how
    /// many tensors were loaded. Unused source tensors (a classifier's `fc`) are ignored; a
    /// missing or mis-shaped one is an error naming it, and nothing changes then.
    pub fn load_backbone(&self, source: &[(String, Tensor)]) -> Result<usize> {
        load_backbone_from(self.backbone.as_ref(), source)
    }

    /// Check the image batch's shape, naming what is wrong.
    fn check_images(&self, images: &Tensor) -> Result<[usize; 2]> {
        let s = images.shape();
        if s.len() != 4 || s[1] != self.cfg.in_channels || s[2] == 0 || s[3] == 0 || s[0] == 0 {
            return Err(CoreError::invalid(
                "fasterrcnn_small",
                format!(
                    "images must be [N, {}, H, W] with N, H, W > 0, got shape {s:?}",
                    self.cfg.in_channels
                ),
            )
            .into());
        }
        Ok([s[2], s[3]])
    }

    /// Check the targets against the batch: one per image, finite boxes with x2 > x1 and
    /// y2 > y1, one label per box, labels below `num_classes`.
    fn check_targets(&self, n: usize, targets: &[DetTarget]) -> Result<()> {
        let bad = |m: String| Err(CoreError::invalid("fasterrcnn_small", m).into());
        if targets.len() != n {
            return bad(format!("{} targets for {n} images", targets.len()));
        }
        for (i, t) in targets.iter().enumerate() {
            if t.boxes.len() != t.labels.len() {
                return bad(format!(
                    "image {i}: {} boxes but {} labels",
                    t.boxes.len(),
                    t.labels.len()
                ));
            }
            for (j, (b, &l)) in t.boxes.iter().zip(&t.labels).enumerate() {
                if b.iter().any(|v| !v.is_finite()) {
                    return bad(format!("image {i}, box {j}: {b:?} has a non-finite coordinate"));
                }
                if b[2] <= b[0] || b[3] <= b[1] {
                    return bad(format!("image {i}, box {j}: {b:?} needs x2 > x1 and y2 > y1"));
                }
                if l >= self.cfg.num_classes {
                    return bad(format!(
                        "image {i}, box {j}: label {l} is not below num_classes {}",
                        self.cfg.num_classes
                    ));
                }
            }
        }
        Ok(())
    }

    /// The feature map, the RoI ops' spatial scale and the anchors over the map.
    fn features(&self, images: &Tensor, size: [usize; 2], mode: Mode) -> Result<(Tensor, f64, Vec<[f32; 4]>)> {
        let feats = self.backbone.forward_named("backbone", images, mode)?;
        let grid = [feats.shape()[2], feats.shape()[3]];
        // Anchors step by the integer ratio of the sizes, RoIs scale by its nearest power
        // of two, as torchvision's AnchorGenerator and MultiScaleRoIAlign infer them.
        let stride = [(size[0] / grid[0]).max(1), (size[1] / grid[1]).max(1)];
        let anchors = anchors::grid_anchors(&self.base_anchors, grid, stride);
        let scale = 2f64.powf((grid[0] as f64 / size[0] as f64).log2().round());
        Ok((feats, scale, anchors))
    }

    /// Training: the four losses for a batch `[N, C, H, W]` with one target per image
    /// (sampling draws from `rng`; batch norms use batch statistics).
    pub fn losses(&self, images: &Tensor, targets: &[DetTarget], rng: &mut Generator) -> Result<DetLosses> {
        let size = self.check_images(images)?;
        self.check_targets(images.shape()[0], targets)?;
        let mode = Mode::Train;
        let (feats, scale, anchors) = self.features(images, size, mode)?;
        let (obj, deltas) = self
            .rpn
            .head
            .forward2(&feats, mode)
            .map_err(|e| e.context("rpn.head"))?;
        let counts = ProposalCounts {
            pre_nms_top_n: self.cfg.rpn_pre_nms_top_n_train,
            post_nms_top_n: self.cfg.rpn_post_nms_top_n_train,
        };
        let props = proposals(
            &anchors,
            &obj.detach().to_vec_f32(),
            &deltas.detach().to_vec_f32(),
            size,
            counts,
            &self.cfg,
        );
        let anchor_samples = sample_anchors(&anchors, targets, &self.cfg, rng);
        let (rpn_objectness, rpn_box_reg) = rpn_losses(&obj, &deltas, &anchor_samples)?;
        let rois = sample_rois(&props, targets, &self.cfg, rng);
        let (logits, box_deltas) = self
            .roi_heads
            .forward_rois(&feats, &rois.rois, scale, &self.cfg, mode)
            .map_err(|e| e.context("roi_heads"))?;
        let (classifier, box_reg) = fastrcnn_loss(&logits, &box_deltas, &rois)?;
        Ok(DetLosses {
            rpn_objectness,
            rpn_box_reg,
            classifier,
            box_reg,
        })
    }

    /// Inference (batch norms use running statistics): each image's detections after the
    /// score threshold, per-class NMS and the top `box_detections_per_img`.
    pub fn detect(&self, images: &Tensor) -> Result<Vec<Detected>> {
        let size = self.check_images(images)?;
        let n = images.shape()[0];
        let mode = Mode::Eval;
        let (feats, scale, anchors) = self.features(&images.detach(), size, mode)?;
        let (obj, deltas) = self
            .rpn
            .head
            .forward2(&feats, mode)
            .map_err(|e| e.context("rpn.head"))?;
        let counts = ProposalCounts {
            pre_nms_top_n: self.cfg.rpn_pre_nms_top_n_test,
            post_nms_top_n: self.cfg.rpn_post_nms_top_n_test,
        };
        let props = proposals(
            &anchors,
            &obj.to_vec_f32(),
            &deltas.to_vec_f32(),
            size,
            counts,
            &self.cfg,
        );
        let rois: Vec<(usize, [f32; 4])> = props
            .iter()
            .enumerate()
            .flat_map(|(i, p)| p.iter().map(move |b| (i, *b)))
            .collect();
        if rois.is_empty() {
            return postprocess_empty(n);
        }
        let (logits, box_deltas) = self
            .roi_heads
            .forward_rois(&feats, &rois, scale, &self.cfg, mode)
            .map_err(|e| e.context("roi_heads"))?;
        postprocess(&logits, &box_deltas, &rois, n, size, &self.cfg)
    }
}

/// No detections for each of `n` images.
fn postprocess_empty(n: usize) -> Result<Vec<Detected>> {
    Ok((0..n)
        .map(|_| Detected {
            boxes: Vec::new(),
            labels: Vec::new(),
            scores: Vec::new(),
        })
        .collect())
}

impl Module for FasterRcnn {
    /// The backbone's feature map `[N, C, h, w]` (the detector's outputs are lists of boxes:
    /// see [`FasterRcnn::losses`] and [`FasterRcnn::detect`]).
    fn forward(&self, x: &Tensor, mode: Mode) -> Result<Tensor> {
        self.check_images(x)?;
        self.backbone.forward_named("backbone", x, mode)
    }
    fn children(&self, c: &mut Children) {
        c.module("backbone", self.backbone.as_ref());
        c.module("rpn", &self.rpn);
        c.module("roi_heads", &self.roi_heads);
    }
    fn describe(&self) -> String {
        let b = match self.cfg.backbone {
            DetBackbone::Small => "small",
            DetBackbone::Resnet18 => "resnet18",
        };
        format!("FasterRCNN ({b} backbone, {} classes)", self.cfg.num_classes)
    }
}

#[cfg(test)]
mod tests;
