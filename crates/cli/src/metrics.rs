//! What a run measures: the confusion matrix and the scores read from it, regression errors,
//! and the name of the metric a task reports.

use std::fmt::Write as _;

/// Counts of (true class, predicted class) pairs.
#[derive(Debug, Clone, PartialEq)]
pub struct Confusion {
    /// `counts[t * classes + p]`: samples of class `t` predicted as `p`.
    pub counts: Vec<u64>,
    /// Number of classes.
    pub classes: usize,
}

/// Precision, recall and F1 of one class (0 where undefined, as scikit-learn's default).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct ClassScores {
    /// Of the samples predicted as this class, the fraction that are.
    pub precision: f64,
    /// Of the samples of this class, the fraction predicted as it.
    pub recall: f64,
    /// Harmonic mean of precision and recall.
    pub f1: f64,
    /// Samples of this class.
    pub support: u64,
}

impl Confusion {
    /// An empty matrix for `classes` classes.
    pub fn new(classes: usize) -> Self {
        Confusion {
            counts: vec![0; classes * classes],
            classes,
        }
    }

    /// Count one prediction (pairs out of range are ignored: the caller checked the labels).
    pub fn add(&mut self, truth: usize, pred: usize) {
        if truth < self.classes && pred < self.classes {
            self.counts[truth * self.classes + pred] += 1;
        }
    }

    /// The count of class `t` predicted as `p`.
    pub fn get(&self, t: usize, p: usize) -> u64 {
        self.counts[t * self.classes + p]
    }

    /// Samples counted.
    pub fn total(&self) -> u64 {
        self.counts.iter().sum()
    }

    /// Fraction predicted correctly (0 for an empty matrix).
    pub fn accuracy(&self) -> f64 {
        let right: u64 = (0..self.classes).map(|c| self.get(c, c)).sum();
        ratio(right, self.total())
    }

    /// Scores of class `c`.
    pub fn scores(&self, c: usize) -> ClassScores {
        let tp = self.get(c, c);
        let predicted: u64 = (0..self.classes).map(|t| self.get(t, c)).sum();
        let support: u64 = (0..self.classes).map(|p| self.get(c, p)).sum();
        let (precision, recall) = (ratio(tp, predicted), ratio(tp, support));
        let f1 = if precision + recall > 0.0 {
            2.0 * precision * recall / (precision + recall)
        } else {
            0.0
        };
        ClassScores {
            precision,
            recall,
            f1,
            support,
        }
    }

    /// A text report: accuracy, per-class precision/recall/F1, macro averages, the matrix.
    pub fn report(&self, names: &[String]) -> String {
        let name = |c: usize| names.get(c).cloned().unwrap_or_else(|| c.to_string());
        let width = (0..self.classes)
            .map(|c| name(c).chars().count())
            .max()
            .unwrap_or(5)
            .max(9);
        let mut s = String::new();
        let _ = writeln!(
            s,
            "accuracy {:.2}% ({} samples)\n",
            100.0 * self.accuracy(),
            self.total()
        );
        let _ = writeln!(s, "{:>width$}  precision  recall     f1  support", "class");
        let (mut mp, mut mr, mut mf) = (0.0, 0.0, 0.0);
        for c in 0..self.classes {
            let sc = self.scores(c);
            (mp, mr, mf) = (mp + sc.precision, mr + sc.recall, mf + sc.f1);
            let _ = writeln!(
                s,
                "{:>width$}  {:>9.4}  {:>6.4}  {:>5.4}  {:>7}",
                name(c),
                sc.precision,
                sc.recall,
                sc.f1,
                sc.support
            );
        }
        let k = self.classes.max(1) as f64;
        let _ = writeln!(
            s,
            "{:>width$}  {:>9.4}  {:>6.4}  {:>5.4}  {:>7}",
            "macro avg",
            mp / k,
            mr / k,
            mf / k,
            self.total()
        );
        let _ = writeln!(s, "\nconfusion matrix (rows: true class, columns: predicted)");
        let cell = self.counts.iter().max().map_or(1, |m| m.to_string().len()).max(3);
        let rows: Vec<String> = (0..self.classes).map(|t| format!("{} {t}", name(t))).collect();
        let width = rows.iter().map(|r| r.chars().count()).max().unwrap_or(0);
        let _ = write!(s, "{:>width$}", "");
        for c in 0..self.classes {
            let _ = write!(s, " {:>cell$}", c);
        }
        s.push('\n');
        for (t, label) in rows.iter().enumerate() {
            let _ = write!(s, "{label:>width$}");
            for p in 0..self.classes {
                let _ = write!(s, " {:>cell$}", self.get(t, p));
            }
            s.push('\n');
        }
        s
    }
}

fn ratio(a: u64, b: u64) -> f64 {
    if b == 0 {
        0.0
    } else {
        a as f64 / b as f64
    }
}

/// Running sums for regression errors: RMSE and R² over everything added.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Regression {
    n: u64,
    sum_sq_err: f64,
    sum_y: f64,
    sum_y2: f64,
}

impl Regression {
    /// Add predictions and their true values.
    pub fn add(&mut self, pred: &[f64], truth: &[f64]) {
        for (&p, &y) in pred.iter().zip(truth) {
            self.n += 1;
            self.sum_sq_err += (p - y) * (p - y);
            self.sum_y += y;
            self.sum_y2 += y * y;
        }
    }

    /// Root of the mean squared error.
    pub fn rmse(&self) -> f64 {
        (self.sum_sq_err / self.n.max(1) as f64).sqrt()
    }

    /// Coefficient of determination, 1 − SSE/SST (NaN when the targets are all equal).
    pub fn r2(&self) -> f64 {
        let n = self.n.max(1) as f64;
        let sst = self.sum_y2 - self.sum_y * self.sum_y / n;
        if sst <= 0.0 {
            f64::NAN
        } else {
            1.0 - self.sum_sq_err / sst
        }
    }
}

/// The name of the metric a task reports: `acc` or `rmse`.
pub fn metric_name(regression: bool) -> &'static str {
    if regression {
        "rmse"
    } else {
        "acc"
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scores_match_hand_counts() {
        // truth 0: 3 right, 1 as class 1; truth 1: 2 right; truth 2: 1 as class 0, none right.
        let mut c = Confusion::new(3);
        for (t, p) in [(0, 0), (0, 0), (0, 0), (0, 1), (1, 1), (1, 1), (2, 0)] {
            c.add(t, p);
        }
        assert!((c.accuracy() - 5.0 / 7.0).abs() < 1e-12);
        let s0 = c.scores(0);
        assert_eq!((s0.precision, s0.recall, s0.support), (0.75, 0.75, 4));
        let s1 = c.scores(1);
        assert!((s1.precision - 2.0 / 3.0).abs() < 1e-12 && s1.recall == 1.0);
        assert!((s1.f1 - 0.8).abs() < 1e-12);
        let s2 = c.scores(2);
        assert_eq!((s2.precision, s2.recall, s2.f1), (0.0, 0.0, 0.0));
        let r = c.report(&["a".into(), "b".into(), "c".into()]);
        assert!(r.starts_with("accuracy 71.43% (7 samples)"), "{r}");
        // The matrix lines line up, however long the class names.
        let r = c.report(&["a".into(), "a much longer name".into(), "c".into()]);
        let matrix: Vec<&str> = r.lines().skip_while(|l| !l.starts_with("confusion")).skip(1).collect();
        assert_eq!(matrix.len(), 4);
        assert!(
            matrix.iter().all(|l| l.chars().count() == matrix[0].chars().count()),
            "{r}"
        );
        assert!(matrix[2].ends_with("a much longer name 1   0   2   0"), "{r}");
    }

    #[test]
    fn regression_errors_match_hand_values() {
        let mut r = Regression::default();
        r.add(&[1.0, 2.0, 4.0], &[1.0, 3.0, 5.0]);
        // SSE 2, mean 3, SST 8.
        assert!((r.rmse() - (2.0f64 / 3.0).sqrt()).abs() < 1e-12);
        assert!((r.r2() - 0.75).abs() < 1e-12);
    }
}
