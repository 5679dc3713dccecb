//! What `nabla eval --task detect` prints: the per-class AP table (AP50, AP75, COCO AP,
//! objects and detections), mAP@0.5 and mAP@[.5:.95], and where the errors are: objects
//! found, objects whose class was confused (among similar clothes or not), objects missed
//! altogether, and detections on no object.

use nabla_vision::box_iou;
use nabla_vision::{ApReport, Detection, GroundTruth};
use std::collections::BTreeMap;
use std::fmt::Write as _;

/// The IoU at which a detection counts as covering an object (Pascal VOC's).
pub const IOU_HIT: f32 = 0.5;

/// The per-class table and the means.
pub fn ap_table(r: &ApReport, classes: &[String]) -> String {
    let width = classes.iter().map(|c| c.chars().count()).max().unwrap_or(5).max(5);
    let mut s = format!(
        "{:<width$}  {:>6}  {:>6}  {:>10}  {:>7}  {:>10}\n",
        "class", "AP50", "AP75", "AP[.5:.95]", "objects", "detections"
    );
    for c in &r.per_class {
        let name = classes.get(c.class).cloned().unwrap_or_else(|| c.class.to_string());
        let f = |v: f64| {
            if c.ground_truths == 0 {
                "-".to_string()
            } else {
                format!("{v:.3}")
            }
        };
        let _ = writeln!(
            s,
            "{name:<width$}  {:>6}  {:>6}  {:>10}  {:>7}  {:>10}",
            f(c.ap50),
            f(c.ap75),
            f(c.ap_coco),
            c.ground_truths,
            c.detections
        );
    }
    let _ = writeln!(
        s,
        "{:<width$}  {:>6.3}  {:>6.3}  {:>10.3}  (over the classes with objects)",
        "mean", r.map50, r.map75, r.map_coco
    );
    let _ = writeln!(s, "mAP@0.5 {:.4}, mAP@[.5:.95] {:.4}", r.map50, r.map_coco);
    s
}

/// Where the errors are, at one score threshold.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct ErrorReport {
    /// The score at or above which a detection counts.
    pub threshold: f32,
    /// Objects in all.
    pub objects: usize,
    /// Objects covered (IoU ≥ 0.5) by a detection of their class.
    pub found: usize,
    /// `(true class, detected class)` → objects covered only by a detection of another class.
    pub confused: BTreeMap<(usize, usize), usize>,
    /// Objects with no detection of any class at IoU ≥ 0.5, per class.
    pub missed: Vec<usize>,
    /// Detections covering no object of any class at IoU ≥ 0.5.
    pub on_nothing: usize,
    /// Detections counted.
    pub detections: usize,
}

/// Count the errors of `dets` against `gts` among detections scoring at least `threshold`.
pub fn analyse(dets: &[Detection], gts: &[GroundTruth], classes: usize, threshold: f32) -> ErrorReport {
    let mut by_image: BTreeMap<usize, (Vec<&Detection>, Vec<&GroundTruth>)> = BTreeMap::new();
    for d in dets.iter().filter(|d| d.score >= threshold) {
        by_image.entry(d.image).or_default().0.push(d);
    }
    for g in gts {
        by_image.entry(g.image).or_default().1.push(g);
    }
    let mut r = ErrorReport {
        threshold,
        missed: vec![0; classes],
        ..Default::default()
    };
    for (ds, gs) in by_image.values() {
        r.objects += gs.len();
        r.detections += ds.len();
        let iou = box_iou(
            &gs.iter().map(|g| g.bbox).collect::<Vec<_>>(),
            &ds.iter().map(|d| d.bbox).collect::<Vec<_>>(),
        );
        for (g, row) in gs.iter().zip(&iou) {
            let hits: Vec<usize> = (0..ds.len()).filter(|&j| row[j] >= IOU_HIT).collect();
            if hits.iter().any(|&j| ds[j].class == g.class) {
                r.found += 1;
            } else if let Some(&j) = hits.iter().max_by(|&&a, &&b| row[a].total_cmp(&row[b])) {
                *r.confused.entry((g.class, ds[j].class)).or_default() += 1;
            } else if g.class < classes {
                r.missed[g.class] += 1;
            }
        }
        r.on_nothing += (0..ds.len())
            .filter(|&j| iou.iter().all(|row| row[j] < IOU_HIT))
            .count();
    }
    r
}

/// Whether a class is an upper-body garment (Fashion-MNIST's shirt, T-shirt/top, pullover
/// and coat, the classes people confuse too).
pub fn upper_body(name: &str) -> bool {
    let n = name.to_ascii_lowercase();
    ["shirt", "pullover", "coat"].iter().any(|k| n.contains(k))
}

impl ErrorReport {
    /// Objects whose class was confused.
    pub fn confused_total(&self) -> usize {
        self.confused.values().sum()
    }

    /// Confusions within the upper-body garments.
    pub fn confused_similar(&self, classes: &[String]) -> usize {
        let similar = |k: usize| classes.get(k).is_some_and(|n| upper_body(n));
        self.confused
            .iter()
            .filter(|((t, p), _)| similar(*t) && similar(*p))
            .map(|(_, n)| n)
            .sum()
    }

    /// Objects missed altogether.
    pub fn missed_total(&self) -> usize {
        self.missed.iter().sum()
    }

    /// The report as text: the counts, the most frequent confusions and the classes missed most.
    pub fn text(&self, classes: &[String]) -> String {
        let name = |k: usize| classes.get(k).cloned().unwrap_or_else(|| k.to_string());
        let pct = |n: usize| 100.0 * n as f64 / self.objects.max(1) as f64;
        let (conf, missed) = (self.confused_total(), self.missed_total());
        let mut s = format!(
            "errors of the detections scoring >= {:.2} on {} objects (a hit is IoU >= {IOU_HIT}):\n",
            self.threshold, self.objects
        );
        let _ = writeln!(
            s,
            "  found with the right class  {:>6} ({:.1}%)",
            self.found,
            pct(self.found)
        );
        let _ = writeln!(
            s,
            "  class confused              {:>6} ({:.1}%; {} of them among shirt / T-shirt / pullover / coat)",
            conf,
            pct(conf),
            self.confused_similar(classes)
        );
        let _ = writeln!(s, "  missed (no detection)       {:>6} ({:.1}%)", missed, pct(missed));
        let _ = writeln!(
            s,
            "  detections on no object     {:>6} (of {} detections)",
            self.on_nothing, self.detections
        );
        let mut pairs: Vec<_> = self.confused.iter().collect();
        pairs.sort_by(|a, b| b.1.cmp(a.1).then(a.0.cmp(b.0)));
        if !pairs.is_empty() {
            let top: Vec<String> = pairs
                .iter()
                .take(6)
                .map(|((t, p), n)| format!("{} as {} {n}", name(*t), name(*p)))
                .collect();
            let _ = writeln!(s, "  most confused: {}", top.join(", "));
        }
        let mut miss: Vec<(usize, usize)> = self
            .missed
            .iter()
            .copied()
            .enumerate()
            .filter(|(_, n)| *n > 0)
            .collect();
        miss.sort_by(|a, b| b.1.cmp(&a.1).then(a.0.cmp(&b.0)));
        if !miss.is_empty() {
            let top: Vec<String> = miss.iter().take(6).map(|(k, n)| format!("{} {n}", name(*k))).collect();
            let _ = writeln!(s, "  missed most: {}", top.join(", "));
        }
        s
    }
}
