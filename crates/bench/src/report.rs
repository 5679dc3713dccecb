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

    /// How many times better nabla is (> 1: nabla wins), whichever way the figure improves.
    pub fn speedup(&self, torch: f64) -> f64 {
        match self.better {
            Better::Higher => self.nabla / torch,
            Better::Lower => torch / self.nabla,
        }
    }
}

fn fmt(v: f64) -> String {
    if v >= 100.0 {
        format!("{v:.0}")
    } else if v >= 10.0 {
        format!("{v:.1}")
    } else {
        format!("{v:.2}")
    }
}

/// The rows as a Markdown table; `torch` holds PyTorch's figures when it ran.
pub fn table(rows: &[Row], torch: Option<&Figures>) -> String {
    let mut s = String::new();
    if torch.is_some() {
        s.push_str(
            "| work | unit | nabla | PyTorch | nabla/PyTorch | better | nabla's speed-up |\n",
        );
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
                let (t, ratio, speedup) = match f.get(&r.key, r.unit) {
                    Some(t) => (
                        fmt(t),
                        format!("{:.2}", r.nabla / t),
                        format!("{:.2}×", r.speedup(t)),
                    ),
                    None => ("n/a".into(), "n/a".into(), "n/a".into()),
                };
                s.push_str(&format!(
                    "| {} | {unit} | {} | {t} | {ratio} | {better} | {speedup} |\n",
                    r.key,
                    fmt(r.nabla)
                ));
            }
            None => s.push_str(&format!(
                "| {} | {unit} | {} | {better} |\n",
                r.key,
                fmt(r.nabla)
            )),
        }
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ratio_and_speedup_follow_the_direction() {
        let f = Figures::parse(
            "matmul 1024: 200.0 GFLOP/s\ntiny add with graph recording: 2.00 us per op\n",
        );
        let rows = vec![
            Row::higher("matmul 1024", "GFLOP/s", 300.0),
            Row::lower("tiny add with graph recording", "us", 0.5),
            Row::higher("sum 16777216", "GB/s", 10.0),
        ];
        assert!((rows[0].speedup(200.0) - 1.5).abs() < 1e-12);
        assert!((rows[1].speedup(2.0) - 4.0).abs() < 1e-12);
        let t = table(&rows, Some(&f));
        assert!(
            t.contains("| matmul 1024 | GFLOP/s | 300 | 200 | 1.50 | higher | 1.50× |"),
            "{t}"
        );
        assert!(
            t.contains("| µs/op | 0.50 | 2.00 | 0.25 | lower | 4.00× |"),
            "{t}"
        );
        assert!(t.contains("| sum 16777216 | GB/s | 10.0 | n/a |"), "{t}");
        let t = table(&rows, None);
        assert!(
            t.contains("| matmul 1024 | GFLOP/s | 300 | higher |"),
            "{t}"
        );
    }
}
