//! One measured figure per row, printed beside PyTorch's with the ratio.

use crate::torch::Figures;

/// Which way a figure improves.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum Better {
    /// Throughput (GFLOP/s, GB/s, img/s).
    Higher,
    /// Time (ms, µs per op, s).
    Lower,
}

/// One figure of nabla's, and where to find PyTorch's matching one.
#[derive(Debug)]
pub struct Row {
    /// The reference script's label for the same work (`matmul 1024`).
    pub key: String,
    /// Unit as the script prints it (`GFLOP/s`, `GB/s`, `us`, `ms`).
    pub unit: &'static str,
    /// nabla's figure.
    pub nabla: f64,
    /// Which way is better.
    pub better: Better,
}

impl Row {
    /// A throughput figure (higher is better).
    pub fn higher(key: impl Into<String>, unit: &'static str, nabla: f64) -> Row {
        Row {
            key: key.into(),
            unit,
            nabla,
            better: Better::Higher,
        }
    }

    /// A time figure (lower is better).
    pub fn lower(key: impl Into<String>, unit: &'static str, nabla: f64) -> Row {
        Row {
            key: key.into(),
            unit,
            nabla,
            better: Better::Lower,
        }
    }

    /// Whether `a` is a better figure than `b` in this row's direction.
    pub fn is_better(&self, a: f64, b: f64) -> bool {
        match self.better {
            Better::Higher => a > b,
            Better::Lower => a < b,
        }
    }

    /// PyTorch's best figure for this row over several runs' output.
    pub fn torch_best(&self, runs: &[Figures]) -> Option<f64> {
        runs.iter()
            .filter_map(|f| f.get(&self.key, self.unit))
            .reduce(|a, b| if self.is_better(a, b) { a } else { b })
    }

    /// How many times better nabla is (> 1: nabla wins), whichever way the figure improves.
    pub fn speedup(&self, torch: f64) -> f64 {
        match self.better {
            Better::Higher => self.nabla / torch,
            Better::Lower => torch / self.nabla,
        }
    }
}

fn fmt(v: f64) -> String {
    if v > 0.0 && v < 0.1 {
        // Three significant digits for small figures (a reconstruction MSE of 0.0193).
        let decimals = (2.0 - v.log10().floor()) as usize;
        format!("{v:.decimals$}")
    } else if v >= 100.0 {
        format!("{v:.0}")
    } else if v >= 10.0 {
        format!("{v:.1}")
    } else {
        format!("{v:.2}")
    }
}

/// Each row's best figure over several rounds (rows in the same order every round).
pub fn best_rows(rounds: Vec<Vec<Row>>) -> Vec<Row> {
    let mut it = rounds.into_iter();
    let mut best = it.next().unwrap_or_default();
    for round in it {
        for (b, r) in best.iter_mut().zip(round) {
            if b.key == r.key && b.is_better(r.nabla, b.nabla) {
                b.nabla = r.nabla;
            }
        }
    }
    best
}

/// The rows as a Markdown table; `torch` holds PyTorch's output of each round when a
/// PyTorch was found (its best figure is shown).
pub fn table(rows: &[Row], torch: Option<&[Figures]>) -> String {
    let mut s = String::new();
    if torch.is_some() {
        s.push_str("| work | unit | nabla | PyTorch | nabla/PyTorch | better | nabla's speed-up |\n");
        s.push_str("|---|---|---:|---:|---:|---|---:|\n");
    } else {
        s.push_str("| work | unit | nabla | better |\n|---|---|---:|---|\n");
    }
    for r in rows {
        let better = match r.better {
            Better::Higher => "higher",
            Better::Lower => "lower",
        };
        let unit = if r.unit == "us" { "µs/op" } else { r.unit };
        match torch {
            Some(f) => {
                let (t, ratio, speedup) = match r.torch_best(f) {
                    Some(t) => (fmt(t), format!("{:.2}", r.nabla / t), format!("{:.2}×", r.speedup(t))),
                    None => ("n/a".into(), "n/a".into(), "n/a".into()),
                };
                s.push_str(&format!(
                    "| {} | {unit} | {} | {t} | {ratio} | {better} | {speedup} |\n",
                    r.key,
                    fmt(r.nabla)
                ));
            }
            None => s.push_str(&format!("| {} | {unit} | {} | {better} |\n", r.key, fmt(r.nabla))),
        }
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ratio_and_speedup_follow_the_direction() {
        let f = Figures::parse("matmul 1024: 200.0 GFLOP/s\ntiny add with graph recording: 2.00 us per op\n");
        let rows = vec![
            Row::higher("matmul 1024", "GFLOP/s", 300.0),
            Row::lower("tiny add with graph recording", "us", 0.5),
            Row::higher("sum 16777216", "GB/s", 10.0),
        ];
        assert!((rows[0].speedup(200.0) - 1.5).abs() < 1e-12);
        assert!((rows[1].speedup(2.0) - 4.0).abs() < 1e-12);
        let t = table(&rows, Some(std::slice::from_ref(&f)));
        assert!(
            t.contains("| matmul 1024 | GFLOP/s | 300 | 200 | 1.50 | higher | 1.50× |"),
            "{t}"
        );
        assert!(t.contains("| µs/op | 0.50 | 2.00 | 0.25 | lower | 4.00× |"), "{t}");
        assert!(t.contains("| sum 16777216 | GB/s | 10.0 | n/a |"), "{t}");
        let t = table(&rows, None);
        assert!(t.contains("| matmul 1024 | GFLOP/s | 300 | higher |"), "{t}");
        assert_eq!(
            (fmt(0.019334), fmt(0.0020351), fmt(0.25)),
            ("0.0193".into(), "0.00204".into(), "0.25".into())
        );
    }

    #[test]
    fn best_of_rounds_each_way() {
        let round = |m: f64, us: f64| {
            vec![
                Row::higher("matmul 1024", "GFLOP/s", m),
                Row::lower("tiny add with graph recording", "us", us),
            ]
        };
        let best = best_rows(vec![round(100.0, 0.3), round(150.0, 0.5), round(120.0, 0.2)]);
        assert_eq!((best[0].nabla, best[1].nabla), (150.0, 0.2));
        let runs = [
            Figures::parse("matmul 1024: 180.0 GFLOP/s\ntiny add with graph recording: 1.9 us per op"),
            Figures::parse("matmul 1024: 190.0 GFLOP/s\ntiny add with graph recording: 2.1 us per op"),
        ];
        assert_eq!(best[0].torch_best(&runs), Some(190.0));
        assert_eq!(best[1].torch_best(&runs), Some(1.9));
        assert_eq!(best[0].torch_best(&[]), None);
    }
}
