//! `nabla predict` on a CSV file: a table model's prediction for every row, as CSV. The file
//! holds the training columns (in any order, others ignored); the target column may be
//! there, and is then copied beside the prediction for comparison.

use crate::error::{CliError, CliResult};
use crate::trainer::setup::RunMeta;
use nabla_core::{no_grad, Tensor};
use nabla_nn::{Mode, Module};
use std::fmt::Write as _;
use std::path::Path;

/// A CSV field without its surrounding spaces and quotes.
fn field(s: &str) -> &str {
    let s = s.trim();
    s.strip_prefix('"').and_then(|t| t.strip_suffix('"')).unwrap_or(s)
}

/// The feature rows of `path` in the model's column order (raw values), and the target
/// column's text if the file has it.
fn read_rows(path: &Path, meta: &RunMeta) -> CliResult<(Vec<f32>, Option<Vec<String>>)> {
    let text = std::fs::read_to_string(path).map_err(|e| CliError::io("read", path, e))?;
    let mut lines = text.lines().enumerate().filter(|(_, l)| !l.trim().is_empty());
    let (_, header) = lines
        .next()
        .ok_or_else(|| CliError::new(format!("{}: empty file", path.display())))?;
    let names: Vec<&str> = header.split(',').map(field).collect();
    let col = |want: &str| names.iter().position(|n| *n == want);
    let idx: Vec<usize> = meta
        .features
        .iter()
        .map(|f| {
            col(f).ok_or_else(|| {
                CliError::new(format!(
                    "{}: no column {f:?} (the model was trained on {})",
                    path.display(),
                    meta.features.join(", ")
                ))
            })
        })
        .collect::<CliResult<_>>()?;
    let target = meta.config.target.as_deref().and_then(col);
    let (mut x, mut truth) = (Vec::new(), target.map(|_| Vec::new()));
    for (n, line) in lines {
        let cells: Vec<&str> = line.split(',').map(field).collect();
        for (&i, name) in idx.iter().zip(&meta.features) {
            let cell = cells.get(i).copied().unwrap_or("");
            let v: f32 = cell.parse().map_err(|_| {
                CliError::new(format!(
                    "{} line {}: {name} = {cell:?} is not a number",
                    path.display(),
                    n + 1
                ))
            })?;
            x.push(v);
        }
        if let (Some(t), Some(i)) = (truth.as_mut(), target) {
            t.push(cells.get(i).copied().unwrap_or("").to_string());
        }
    }
    Ok((x, truth))
}

/// Predict every row of the CSV file `path` with a table model; the CSV text of the answers.
pub fn predict_csv(model: &dyn Module, meta: &RunMeta, path: &Path) -> CliResult<String> {
    if meta.features.is_empty() {
        return Err(CliError::new(
            "this checkpoint does not list its feature columns (written before they were saved); retrain it",
        ));
    }
    let width = meta.features.len();
    let (mut x, truth) = read_rows(path, meta)?;
    let rows = x.len() / width;
    let (mean, std) = &meta.normalize;
    for row in x.chunks_exact_mut(width) {
        for ((v, m), s) in row.iter_mut().zip(mean).zip(std) {
            *v = (*v - m) / s;
        }
    }
    let target = meta.config.target.clone().unwrap_or_else(|| "target".into());
    let mut out = String::new();
    if truth.is_some() {
        let _ = write!(out, "{target},");
    }
    let regression = meta.target_scale.is_some() || meta.classes.is_empty();
    let _ = writeln!(
        out,
        "predicted_{target}{}",
        if regression { "" } else { ",probability" }
    );
    let _guard = no_grad();
    for start in (0..rows).step_by(512) {
        let n = (rows - start).min(512);
        let batch = Tensor::from_vec(x[start * width..(start + n) * width].to_vec(), &[n, width])?;
        let y = model.forward(&batch, Mode::Eval)?;
        let answers: Vec<String> = if regression {
            let (m, s) = meta.target_scale.unwrap_or((0.0, 1.0));
            y.to_vec_f64()
                .iter()
                .map(|v| (v * s as f64 + m as f64).to_string())
                .collect()
        } else {
            let probs = y.softmax(1)?.to_vec_f64();
            let k = meta.classes.len();
            probs
                .chunks_exact(k)
                .map(|p| {
                    let best = (0..k).max_by(|&a, &b| p[a].total_cmp(&p[b])).unwrap_or(0);
                    format!("{},{}", meta.classes[best], p[best])
                })
                .collect()
        };
        for (i, a) in answers.iter().enumerate() {
            if let Some(t) = &truth {
                let _ = write!(out, "{},", t[start + i]);
            }
            let _ = writeln!(out, "{a}");
        }
    }
    Ok(out)
}
