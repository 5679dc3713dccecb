//! The scene tasks' scores: for localization, class accuracy, the mean IoU of predicted and
//! true boxes and the share of "correct localizations" (IoU ≥ 0.5 and the class right); for
//! segmentation, pixel accuracy and the IoU of each class from a pixel confusion matrix,
//! averaged over the classes present.

use nabla_vision::iou_xywh;

/// The IoU a box must reach (with the class right) to count as a correct localization.
pub const IOU_HIT: f32 = 0.5;

/// Running sums over localized images.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct LocSums {
    /// Images seen.
    pub n: u64,
    /// Images whose class was right.
    pub class_right: u64,
    /// The sum of the IoUs of predicted and true boxes.
    pub iou_sum: f64,
    /// Images with the class right and IoU ≥ [`IOU_HIT`].
    pub hits: u64,
}

impl LocSums {
    /// Add one image: predicted and true class, predicted and true `[x, y, w, h]` box.
    pub fn add(&mut self, pred_class: usize, class: usize, pred_box: [f32; 4], true_box: [f32; 4]) {
        let iou = iou_xywh(pred_box, true_box);
        self.n += 1;
        self.class_right += (pred_class == class) as u64;
        self.iou_sum += iou as f64;
        self.hits += (pred_class == class && iou >= IOU_HIT) as u64;
    }

    /// Share of images with the class right.
    pub fn accuracy(&self) -> f64 {
        self.class_right as f64 / self.n.max(1) as f64
    }

    /// Mean IoU of the predicted boxes.
    pub fn mean_iou(&self) -> f64 {
        self.iou_sum / self.n.max(1) as f64
    }

    /// Share of correct localizations.
    pub fn correct(&self) -> f64 {
        self.hits as f64 / self.n.max(1) as f64
    }
}

/// A pixel confusion matrix: `counts[t * classes + p]` pixels of true class `t` predicted `p`.
#[derive(Debug, Clone, PartialEq)]
pub struct PixelConfusion {
    /// Number of classes (background included).
    pub classes: usize,
    /// Row-major counts, true class by predicted class.
    pub counts: Vec<u64>,
}

impl PixelConfusion {
    /// An empty matrix over `classes` classes.
    pub fn new(classes: usize) -> PixelConfusion {
        PixelConfusion {
            classes,
            counts: vec![0; classes * classes],
        }
    }

    /// Count the pixels of one prediction; a true label ≥ the class count (an ignored label
    /// such as 255) is skipped, as is `ignore`.
    pub fn add(&mut self, pred: &[usize], truth: &[usize], ignore: Option<usize>) {
        for (&p, &t) in pred.iter().zip(truth) {
            if t >= self.classes || Some(t) == ignore || p >= self.classes {
                continue;
            }
            self.counts[t * self.classes + p] += 1;
        }
    }

    /// Share of counted pixels predicted right.
    pub fn pixel_accuracy(&self) -> f64 {
        let total: u64 = self.counts.iter().sum();
        let right: u64 = (0..self.classes).map(|c| self.counts[c * self.classes + c]).sum();
        right as f64 / total.max(1) as f64
    }

    /// The IoU of class `c`: true positives over (true + predicted − true positives); `None`
    /// when the class is absent from both the truth and the prediction.
    pub fn iou(&self, c: usize) -> Option<f64> {
        let k = self.classes;
        let tp = self.counts[c * k + c];
        let truth: u64 = self.counts[c * k..(c + 1) * k].iter().sum();
        let pred: u64 = (0..k).map(|t| self.counts[t * k + c]).sum();
        let union = truth + pred - tp;
        (union > 0).then(|| tp as f64 / union as f64)
    }

    /// The mean IoU over the classes present in the truth or the prediction.
    pub fn mean_iou(&self) -> f64 {
        let present: Vec<f64> = (0..self.classes).filter_map(|c| self.iou(c)).collect();
        if present.is_empty() {
            return f64::NAN;
        }
        present.iter().sum::<f64>() / present.len() as f64
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn localization_counts_iou_and_class_together() {
        let mut s = LocSums::default();
        // Right class, same box: IoU 1, a hit.
        s.add(3, 3, [0.1, 0.1, 0.4, 0.4], [0.1, 0.1, 0.4, 0.4]);
        // Right class, box shifted by half its width: overlap 0.2×0.4 of 0.16 + 0.16 − 0.08.
        s.add(1, 1, [0.3, 0.1, 0.4, 0.4], [0.1, 0.1, 0.4, 0.4]);
        // Wrong class, perfect box: no hit.
        s.add(2, 5, [0.5, 0.5, 0.2, 0.2], [0.5, 0.5, 0.2, 0.2]);
        assert_eq!((s.n, s.class_right, s.hits), (3, 2, 1));
        assert!((s.accuracy() - 2.0 / 3.0).abs() < 1e-12);
        let third = 0.08 / 0.24;
        assert!(
            (s.mean_iou() - (1.0 + third + 1.0) / 3.0).abs() < 1e-6,
            "{}",
            s.mean_iou()
        );
        assert!((s.correct() - 1.0 / 3.0).abs() < 1e-12);
        assert_eq!(LocSums::default().correct(), 0.0);
    }

    #[test]
    fn mean_iou_skips_classes_absent_from_both() {
        // Four classes; class 3 appears nowhere, class 2 only in the prediction.
        let truth = [0, 0, 0, 1, 1, 0, 1, 0];
        let pred = [0, 0, 1, 1, 2, 0, 1, 0];
        let mut m = PixelConfusion::new(4);
        m.add(&pred, &truth, None);
        // Class 0: 4 right of truth 5, pred 4 → 4 / 5. Class 1: 2 right, truth 3, pred 3 → 2 / 4.
        // Class 2: 0 right, truth 0, pred 1 → 0. Class 3: absent.
        assert_eq!(m.iou(0), Some(0.8));
        assert_eq!(m.iou(1), Some(0.5));
        assert_eq!(m.iou(2), Some(0.0));
        assert_eq!(m.iou(3), None);
        assert!((m.mean_iou() - (0.8 + 0.5 + 0.0) / 3.0).abs() < 1e-12);
        assert!((m.pixel_accuracy() - 6.0 / 8.0).abs() < 1e-12);
    }

    #[test]
    fn ignored_and_out_of_range_labels_are_not_counted() {
        let mut m = PixelConfusion::new(2);
        m.add(&[0, 1, 1, 0], &[0, 255, 1, 1], Some(1));
        // Only pixel 0 counts: 255 is beyond the classes and 1 is ignored.
        assert_eq!(m.counts, vec![1, 0, 0, 0]);
        assert_eq!(m.pixel_accuracy(), 1.0);
        assert_eq!((m.iou(0), m.iou(1)), (Some(1.0), None));
        assert!(PixelConfusion::new(3).mean_iou().is_nan());
    }
}
