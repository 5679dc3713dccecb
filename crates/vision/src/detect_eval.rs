//! Detection evaluation as detectors are judged: average precision per class at IoU 0.5
//! (Pascal VOC's all-points interpolation), at 0.75 and averaged over IoU 0.50:0.05:0.95
//! (COCO's 101-point interpolation), and their means over the classes.
//!
//! ```
//! use nabla_vision::{evaluate_detections, Detection, GroundTruth};
//! let gts = [GroundTruth { image: 0, class: 0, bbox: [0.0, 0.0, 10.0, 10.0], difficult: false }];
//! // A false positive ranked above the one true positive: precision 1/2 at recall 1.
//! let dets = [
//!     Detection { image: 0, class: 0, score: 0.9, bbox: [50.0, 50.0, 60.0, 60.0] },
//!     Detection { image: 0, class: 0, score: 0.8, bbox: [0.0, 0.0, 10.0, 10.0] },
//! ];
//! let r = evaluate_detections(&dets, &gts, 1);
//! assert!((r.map50 - 0.5).abs() < 1e-12);
//! ```
//!
//! The rules, COCO's (`pycocotools` `COCOeval` with `iouType='bbox'`) except that every area
//! and every detection count (no `areaRng`, no `maxDets` cut) and that `difficult` ground
//! truths follow Pascal VOC:
//! - per class, detections are taken by decreasing score (ties: input order; a NaN score
//!   ranks last); each is matched to the not yet matched ground truth of the same image and
//!   class with the highest IoU ≥ the threshold (a true positive), else it is a false
//!   positive. (VOC's `voc_eval` instead takes the best-overlap ground truth even when it is
//!   taken, and asks IoU > 0.5; the two agree except for such duplicates and IoU exactly 0.5.)
//! - `difficult` ground truths are not positives: a detection is first matched among the
//!   others; failing that, one overlapping a difficult ground truth (IoU ≥ the threshold, taken
//!   or not) is ignored, neither true nor false positive.
//! - VOC AP: precision made non-increasing from the right, area under the recall–precision
//!   step curve. COCO AP: that precision read at the 101 recalls 0, 0.01, …, 1 (the first
//!   point at or past each; 0 past the highest recall reached) and averaged; `ap_coco` is the
//!   mean of that over the ten IoU thresholds, `ap75` its value at 0.75.
//! - IoU of `xyxy` boxes in f64, continuous coordinates (no +1).
//! - Classes with no (non-difficult) ground truth get AP 0 and are left out of the means;
//!   classes are `0..num_classes`, widened to cover any larger class a detection or ground
//!   truth names, so nothing is dropped silently.

use std::collections::HashMap;

/// One predicted box: which image, which class (0-based), its score, `xyxy` pixels.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Detection {
    /// The image it was found in (any id, matched against [`GroundTruth::image`]).
    pub image: usize,
    /// Its class, 0-based.
    pub class: usize,
    /// Its confidence; higher ranks first.
    pub score: f32,
    /// `xyxy` in pixels.
    pub bbox: [f32; 4],
}

/// One annotated object.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct GroundTruth {
    /// The image it is in.
    pub image: usize,
    /// Its class, 0-based.
    pub class: usize,
    /// `xyxy` in pixels.
    pub bbox: [f32; 4],
    /// Pascal VOC's flag: neither a positive nor a penalty for a detection that finds it.
    pub difficult: bool,
}

/// One class's figures.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct ClassAp {
    /// The class, 0-based.
    pub class: usize,
    /// VOC all-points AP at IoU 0.5.
    pub ap50: f64,
    /// COCO 101-point AP at IoU 0.75.
    pub ap75: f64,
    /// COCO 101-point AP averaged over IoU 0.50:0.05:0.95.
    pub ap_coco: f64,
    /// Ground truths of the class, difficult ones not counted.
    pub ground_truths: usize,
    /// Detections of the class.
    pub detections: usize,
}

/// Per-class figures and their means over the classes with a ground truth.
#[derive(Debug, Clone, PartialEq)]
pub struct ApReport {
    /// Every class, in order.
    pub per_class: Vec<ClassAp>,
    /// The mean of `ap50` (VOC's mAP@0.5).
    pub map50: f64,
    /// The mean of `ap75`.
    pub map75: f64,
    /// The mean of `ap_coco` (COCO's mAP@[.5:.95]).
    pub map_coco: f64,
}

/// COCO's IoU thresholds, `np.linspace(.5, .95, 10)`.
fn coco_thresholds() -> [f64; 10] {
    std::array::from_fn(|k| if k == 9 { 0.95 } else { 0.5 + k as f64 * (0.45 / 9.0) })
}

/// mAP over classes with at least one ground truth: ap50 = VOC all-points interpolation at IoU 0.5,
/// ap_coco = COCO's 101-point interpolated AP averaged over IoU 0.50:0.05:0.95.
pub fn evaluate_detections(dets: &[Detection], gts: &[GroundTruth], num_classes: usize) -> ApReport {
    let classes = dets
        .iter()
        .map(|d| d.class + 1)
        .chain(gts.iter().map(|g| g.class + 1))
        .fold(num_classes, usize::max);
    let mut det_by_class: Vec<Vec<&Detection>> = vec![vec![]; classes];
    for d in dets {
        det_by_class[d.class].push(d);
    }
    let mut gt_by_class: Vec<Vec<&GroundTruth>> = vec![vec![]; classes];
    for g in gts {
        gt_by_class[g.class].push(g);
    }
    let per_class: Vec<ClassAp> = (0..classes)
        .map(|c| class_ap(c, &mut det_by_class[c], &gt_by_class[c]))
        .collect();
    let counted: Vec<&ClassAp> = per_class.iter().filter(|a| a.ground_truths > 0).collect();
    let mean = |f: fn(&ClassAp) -> f64| {
        if counted.is_empty() {
            0.0
        } else {
            counted.iter().map(|a| f(a)).sum::<f64>() / counted.len() as f64
        }
    };
    ApReport {
        map50: mean(|a| a.ap50),
        map75: mean(|a| a.ap75),
        map_coco: mean(|a| a.ap_coco),
        per_class,
    }
}

/// What became of one detection at one IoU threshold.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Outcome {
    True,
    False,
    Ignored,
}

/// One class's APs.
fn class_ap(class: usize, dets: &mut [&Detection], gts: &[&GroundTruth]) -> ClassAp {
    let key = |d: &Detection| if d.score.is_nan() { f32::NEG_INFINITY } else { d.score };
    // A stable sort: ties keep the input order.
    dets.sort_by(|a, b| key(b).total_cmp(&key(a)));
    let positives = gts.iter().filter(|g| !g.difficult).count();
    let mut by_image: HashMap<usize, Vec<usize>> = HashMap::new();
    for (k, g) in gts.iter().enumerate() {
        by_image.entry(g.image).or_default().push(k);
    }
    // Every detection's IoU with the ground truths of its image, computed once.
    let ious: Vec<Vec<(usize, f64)>> = dets
        .iter()
        .map(|d| {
            by_image
                .get(&d.image)
                .map(|ks| ks.iter().map(|&k| (k, iou(d.bbox, gts[k].bbox))).collect())
                .unwrap_or_default()
        })
        .collect();
    let at = |thr: f64| outcomes(&ious, gts, thr);
    let thresholds = coco_thresholds();
    let coco: Vec<f64> = thresholds.iter().map(|&t| coco_ap(&at(t), positives)).collect();
    ClassAp {
        class,
        ap50: voc_ap(&at(0.5), positives),
        ap75: coco[5],
        ap_coco: coco.iter().sum::<f64>() / coco.len() as f64,
        ground_truths: positives,
        detections: dets.len(),
    }
}

/// The greedy matching at IoU threshold `thr`, detections in rank order.
fn outcomes(ious: &[Vec<(usize, f64)>], gts: &[&GroundTruth], thr: f64) -> Vec<Outcome> {
    let mut taken = vec![false; gts.len()];
    ious.iter()
        .map(|cands| {
            let mut best: Option<(usize, f64)> = None;
            for &(k, v) in cands {
                if !gts[k].difficult && !taken[k] && v >= thr && best.is_none_or(|(_, b)| v > b) {
                    best = Some((k, v));
                }
            }
            if let Some((k, _)) = best {
                taken[k] = true;
                Outcome::True
            } else if cands.iter().any(|&(k, v)| gts[k].difficult && v >= thr) {
                Outcome::Ignored
            } else {
                Outcome::False
            }
        })
        .collect()
}

/// Recall and precision after each counted detection, in rank order.
fn curve(outcomes: &[Outcome], positives: usize) -> (Vec<f64>, Vec<f64>) {
    let (mut tp, mut fp) = (0usize, 0usize);
    let mut rec = vec![];
    let mut prec = vec![];
    for o in outcomes {
        match o {
            Outcome::True => tp += 1,
            Outcome::False => fp += 1,
            Outcome::Ignored => continue,
        }
        rec.push(tp as f64 / positives as f64);
        prec.push(tp as f64 / (tp + fp) as f64);
    }
    (rec, prec)
}

/// Pascal VOC's all-points AP (`voc_ap(use_07_metric=False)`).
fn voc_ap(outcomes: &[Outcome], positives: usize) -> f64 {
    if positives == 0 {
        return 0.0;
    }
    let (rec, prec) = curve(outcomes, positives);
    let mrec: Vec<f64> = std::iter::once(0.0).chain(rec).chain([1.0]).collect();
    let mut mpre: Vec<f64> = std::iter::once(0.0).chain(prec).chain([0.0]).collect();
    for i in (0..mpre.len() - 1).rev() {
        mpre[i] = mpre[i].max(mpre[i + 1]);
    }
    (1..mrec.len())
        .filter(|&i| mrec[i] != mrec[i - 1])
        .map(|i| (mrec[i] - mrec[i - 1]) * mpre[i])
        .sum()
}

/// COCO's 101-point interpolated AP at one IoU threshold.
fn coco_ap(outcomes: &[Outcome], positives: usize) -> f64 {
    if positives == 0 {
        return 0.0;
    }
    let (rec, mut prec) = curve(outcomes, positives);
    for i in (1..prec.len()).rev() {
        prec[i - 1] = prec[i - 1].max(prec[i]);
    }
    let mut sum = 0.0;
    for r in 0..=100 {
        // np.linspace(0, 1, 101) as COCO builds it: r · 0.01 (so 7 · 0.01 is a hair above 0.07).
        let want = if r == 100 { 1.0 } else { r as f64 * 0.01 };
        // np.searchsorted(rc, recThrs, side='left'): the first recall ≥ want.
        let at = rec.partition_point(|&v| v < want);
        if at < prec.len() {
            sum += prec[at];
        }
    }
    sum / 101.0
}

/// IoU of two `xyxy` boxes in f64; 0 when the union is empty.
fn iou(a: [f32; 4], b: [f32; 4]) -> f64 {
    let [a0, a1, a2, a3] = a.map(f64::from);
    let [b0, b1, b2, b3] = b.map(f64::from);
    let w = (a2.min(b2) - a0.max(b0)).max(0.0);
    let h = (a3.min(b3) - a1.max(b1)).max(0.0);
    let inter = w * h;
    let area = |x0: f64, y0: f64, x1: f64, y1: f64| (x1 - x0).max(0.0) * (y1 - y0).max(0.0);
    let union = area(a0, a1, a2, a3) + area(b0, b1, b2, b3) - inter;
    if union > 0.0 {
        inter / union
    } else {
        0.0
    }
}

#[cfg(test)]
#[path = "detect_eval_tests.rs"]
mod tests;
