//! torchvision's `Matcher`: each prediction (anchor or proposal) gets the ground-truth box
//! it overlaps most, or [`BELOW_LOW_THRESHOLD`] / [`BETWEEN_THRESHOLDS`]; and the flat IoU
//! matrix it reads.

/// A prediction whose best IoU is under the low threshold (background).
pub const BELOW_LOW_THRESHOLD: i64 = -1;
/// A prediction whose best IoU lies between the thresholds (ignored in the losses).
pub const BETWEEN_THRESHOLDS: i64 = -2;

/// The IoU of every box of `gt` with every box of `preds`, row-major `[gt.len(), preds.len()]`
/// (the layout torchvision's matcher reads). Two empty boxes have IoU 0.
pub fn iou_matrix(gt: &[[f32; 4]], preds: &[[f32; 4]]) -> Vec<f32> {
    let mut out = Vec::with_capacity(gt.len() * preds.len());
    for g in gt {
        let ga = (g[2] - g[0]).max(0.0) * (g[3] - g[1]).max(0.0);
        for p in preds {
            let w = (g[2].min(p[2]) - g[0].max(p[0])).max(0.0);
            let h = (g[3].min(p[3]) - g[1].max(p[1])).max(0.0);
            let inter = w * h;
            let union = ga + (p[2] - p[0]).max(0.0) * (p[3] - p[1]).max(0.0) - inter;
            out.push(if union > 0.0 { inter / union } else { 0.0 });
        }
    }
    out
}

/// Thresholds of a matcher: IoU ≥ `high` matches, < `low` is background, in between ignored;
/// `allow_low_quality_matches` also matches each ground truth's best predictions (all tied
/// ones) whatever their IoU.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Matcher {
    /// IoU from which a prediction is matched.
    pub high: f32,
    /// IoU under which a prediction is background.
    pub low: f32,
    /// Keep each ground truth's best-overlapping predictions matched.
    pub allow_low_quality_matches: bool,
}

impl Matcher {
    /// For each of the `n_preds` predictions, the index of its ground truth or a negative
    /// code, from `iou` laid out `[n_gt, n_preds]` ([`iou_matrix`]). Ties go to the lower
    /// ground-truth index. With no ground truth every prediction is below the low threshold.
    pub fn assign(&self, iou: &[f32], n_gt: usize, n_preds: usize) -> Vec<i64> {
        assert_eq!(iou.len(), n_gt * n_preds, "matcher: IoU matrix is not n_gt × n_preds");
        if n_gt == 0 {
            return vec![BELOW_LOW_THRESHOLD; n_preds];
        }
        let mut best = vec![f32::NEG_INFINITY; n_preds];
        let mut arg = vec![0i64; n_preds];
        for g in 0..n_gt {
            let row = &iou[g * n_preds..(g + 1) * n_preds];
            for (p, &v) in row.iter().enumerate() {
                if v > best[p] {
                    best[p] = v;
                    arg[p] = g as i64;
                }
            }
        }
        let mut matches: Vec<i64> = best
            .iter()
            .zip(arg.iter())
            .map(|(&v, &a)| {
                if v < self.low {
                    BELOW_LOW_THRESHOLD
                } else if v < self.high {
                    BETWEEN_THRESHOLDS
                } else {
                    a
                }
            })
            .collect();
        if self.allow_low_quality_matches {
            for g in 0..n_gt {
                let row = &iou[g * n_preds..(g + 1) * n_preds];
                let top = row.iter().copied().fold(f32::NEG_INFINITY, f32::max);
                // Every prediction tied for this ground truth's best gets back its own best
                // match (which may be another ground truth), as torchvision restores
                // `all_matches`.
                for (p, &v) in row.iter().enumerate() {
                    if v == top {
                        matches[p] = arg[p];
                    }
                }
            }
        }
        matches
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn thresholds_split_background_ignored_and_matched() {
        // 2 ground truths × 5 predictions.
        let iou = [
            0.9, 0.5, 0.1, 0.0, 0.65, //
            0.2, 0.6, 0.25, 0.35, 0.7,
        ];
        let m = Matcher {
            high: 0.7,
            low: 0.3,
            allow_low_quality_matches: false,
        };
        assert_eq!(
            m.assign(&iou, 2, 5),
            vec![0, BETWEEN_THRESHOLDS, -1, BETWEEN_THRESHOLDS, 1]
        );
    }

    #[test]
    fn low_quality_matches_keep_each_ground_truths_best_prediction() {
        // gt 0's best is 0.4 (predictions 1 and 2, tied); gt 1's best is 0.8 (prediction 3).
        let iou = [
            0.1, 0.4, 0.4, 0.0, //
            0.0, 0.2, 0.45, 0.8,
        ];
        let m = Matcher {
            high: 0.7,
            low: 0.3,
            allow_low_quality_matches: true,
        };
        // Prediction 1 → gt 0 (low quality, restored); prediction 2's own best is gt 1 (0.45),
        // which it gets back; prediction 0 stays background.
        assert_eq!(m.assign(&iou, 2, 4), vec![-1, 0, 1, 1]);
        let strict = Matcher {
            allow_low_quality_matches: false,
            ..m
        };
        assert_eq!(
            strict.assign(&iou, 2, 4),
            vec![-1, BETWEEN_THRESHOLDS, BETWEEN_THRESHOLDS, 1]
        );
    }

    #[test]
    fn no_ground_truth_means_all_background() {
        let m = Matcher {
            high: 0.5,
            low: 0.5,
            allow_low_quality_matches: false,
        };
        assert_eq!(m.assign(&[], 0, 3), vec![-1, -1, -1]);
    }

    #[test]
    fn iou_matrix_is_gt_major() {
        let gt = [[0.0, 0.0, 2.0, 2.0], [10.0, 10.0, 12.0, 12.0]];
        let preds = [[1.0, 0.0, 3.0, 2.0], [10.0, 10.0, 12.0, 12.0], [5.0, 5.0, 5.0, 5.0]];
        let m = iou_matrix(&gt, &preds);
        assert_eq!(m.len(), 6);
        assert!((m[0] - 1.0 / 3.0).abs() < 1e-6);
        assert_eq!((m[1], m[2], m[3], m[4], m[5]), (0.0, 0.0, 0.0, 1.0, 0.0));
    }
}
