//! Ensembles in `nabla eval` and `nabla predict` (`--checkpoint A --checkpoint B ...`):
//! each member reads the images with its own preprocessing (its model, input size,
//! channels and normalization, as its checkpoint says) and gives class probabilities,
//! optionally averaged over test-time augmentations ([`crate::tta`]); then
//!
//! - `mean-prob` predicts the class of the highest mean probability over the members;
//! - `vote` predicts the class most members put first; a tie between classes is broken by
//!   their mean probability (then by the lower label).
//!
//! Members must share their class list in the same order (labels are indices), and, for
//! `eval`, score the same test images with the same labels.

use crate::error::{CliError, CliResult};
use crate::trainer::setup::{load_trained, RunMeta};
use crate::trainer::{data, make_loader};
use crate::tta::{self, Tta};
use nabla_core::Tensor;
use nabla_nn::Module;
use serde_json::json;
use std::path::PathBuf;

/// One checkpoint of an ensemble, with its model rebuilt.
pub struct Member {
    /// The checkpoint file.
    pub path: PathBuf,
    /// The model with the checkpoint's weights.
    pub model: Box<dyn Module>,
    /// What the checkpoint says about its run.
    pub meta: RunMeta,
}

impl Member {
    /// The per-channel value of a black pixel after this member's normalization.
    fn black(&self) -> Vec<f32> {
        let (m, s) = &self.meta.normalize;
        m.iter().zip(s).map(|(m, s)| -m / s).collect()
    }

    /// Probabilities (averaged over `tta`'s views) for a normalized batch.
    pub fn probabilities(&self, x: &Tensor, tta: Tta) -> CliResult<Vec<f32>> {
        tta::probabilities(self.model.as_ref(), x, tta, &self.black())
    }
}

/// Load the members, refusing anything but image classifiers and class lists that differ
/// (in names or order) from the first member's.
pub fn load_members(paths: &[PathBuf]) -> CliResult<Vec<Member>> {
    let mut out: Vec<Member> = Vec::new();
    for path in paths {
        let (model, meta, _) = load_trained(path)?;
        let task = meta.config.task;
        if task != crate::config::Task::Classification || meta.input_shape.len() != 3 {
            let what = if meta.input_shape.len() != 3 {
                "a model of table rows".to_string()
            } else {
                format!("a checkpoint of --task {}", task.name())
            };
            return Err(CliError::new(format!(
                "{}: {what}; ensembles and --tta take image classifiers",
                path.display()
            )));
        }
        if let Some(first) = out.first() {
            if meta.classes != first.meta.classes {
                return Err(CliError::new(format!(
                    "{}: classes [{}] differ from {}'s [{}]; ensemble members need the same classes in the same order",
                    path.display(),
                    meta.classes.join(", "),
                    first.path.display(),
                    first.meta.classes.join(", ")
                )));
            }
        }
        out.push(Member {
            path: path.clone(),
            model,
            meta,
        });
    }
    Ok(out)
}

/// The class `combine` picks from the members' probabilities of one sample (`k` classes
/// each), and the members' mean probabilities.
pub fn decide(member_probs: &[&[f32]], k: usize, combine: &str) -> (usize, Vec<f32>) {
    let mean = mean_probs(member_probs, k);
    let argmax = |p: &[f32]| (0..p.len()).fold(0, |b, i| if p[i] > p[b] { i } else { b });
    if combine != "vote" {
        return (argmax(&mean), mean);
    }
    let votes = votes(member_probs, k);
    let best = (0..k).fold(0, |b, i| {
        if votes[i] > votes[b] || (votes[i] == votes[b] && mean[i] > mean[b]) {
            i
        } else {
            b
        }
    });
    (best, mean)
}

/// How many members put each class first.
pub fn votes(member_probs: &[&[f32]], k: usize) -> Vec<usize> {
    let mut v = vec![0; k];
    for p in member_probs {
        let top = (0..k).fold(0, |b, i| if p[i] > p[b] { i } else { b });
        v[top] += 1;
    }
    v
}

fn mean_probs(member_probs: &[&[f32]], k: usize) -> Vec<f32> {
    let mut mean = vec![0f32; k];
    for p in member_probs {
        mean.iter_mut().zip(p.iter()).for_each(|(m, q)| *m += q);
    }
    mean.iter_mut().for_each(|m| *m /= member_probs.len().max(1) as f32);
    mean
}

/// What `nabla eval` is asked for with several checkpoints or `--tta`.
pub struct EvalRequest<'a> {
    /// The members' checkpoints.
    pub checkpoints: &'a [PathBuf],
    /// `mean-prob` or `vote`.
    pub combine: &'a str,
    /// The test-time augmentation.
    pub tta: Tta,
    /// Where to look for the data first (instead of each member's own).
    pub data_dir: Option<PathBuf>,
    /// Images per forward pass.
    pub batch: usize,
    /// One JSON object instead of text.
    pub json: bool,
}

/// Score each member and the ensemble on the test split.
pub fn eval(req: &EvalRequest) -> CliResult<()> {
    let members = load_members(req.checkpoints)?;
    let k = members[0].meta.classes.len();
    let mut labels: Option<(Vec<usize>, PathBuf)> = None;
    let mut all = Vec::new();
    let mut origin = String::new();
    for m in &members {
        let mut cfg = m.meta.config.clone();
        if req.data_dir.is_some() {
            cfg.data_dir = req.data_dir.clone();
        }
        let fixed = match m.meta.input_shape[..] {
            [c, h, w] if cfg.dataset == "imagefolder" => Some([c, h, w]),
            _ => None,
        };
        let d = data::load_for(&cfg, fixed)?;
        let split = d
            .test
            .clone()
            .ok_or_else(|| CliError::new("the run held out no images to score"))?;
        let loader = make_loader(split, req.batch.max(1), &m.meta.input_shape, &m.meta.normalize, false)?;
        let (mut probs, mut ys) = (Vec::new(), Vec::new());
        for b in loader.epoch(0) {
            let b = b?;
            probs.extend(m.probabilities(&b.inputs, req.tta)?);
            ys.extend_from_slice(&b.labels);
        }
        match &labels {
            Some((l, first)) if *l != ys => {
                return Err(CliError::new(format!(
                    "{}: its test split ({} images from {}) is not {}'s ({} images); ensemble members must score the same images",
                    m.path.display(),
                    ys.len(),
                    d.origin.display(),
                    first.display(),
                    l.len()
                )))
            }
            Some(_) => {}
            None => {
                origin = format!("{} ({})", cfg.dataset, d.origin.display());
                labels = Some((ys, m.path.clone()));
            }
        }
        all.push(probs);
    }
    let (labels, _) = labels.unwrap_or_default();
    let n = labels.len();
    let accuracy =
        |pred: &dyn Fn(usize) -> usize| (0..n).filter(|&i| pred(i) == labels[i]).count() as f64 / n.max(1) as f64;
    let member_acc: Vec<f64> = all
        .iter()
        .map(|p| accuracy(&|i| decide(&[&p[i * k..(i + 1) * k]], k, "mean-prob").0))
        .collect();
    let ens = accuracy(&|i| {
        let rows: Vec<&[f32]> = all.iter().map(|p| &p[i * k..(i + 1) * k]).collect();
        decide(&rows, k, req.combine).0
    });
    if req.json {
        let ms: Vec<_> = members
            .iter()
            .zip(&member_acc)
            .map(|(m, a)| json!({"checkpoint": m.path.to_string_lossy(), "model": m.meta.model, "accuracy": a}))
            .collect();
        let out = json!({"members": ms, "combine": req.combine, "tta": req.tta.name(), "samples": n, "accuracy": ens});
        println!("{out}");
        return Ok(());
    }
    let tta = match req.tta {
        Tta::None => String::new(),
        t => format!(", --tta {}", t.name()),
    };
    println!(
        "{} member(s) on the test split of {origin}: {n} images{tta}",
        members.len()
    );
    for (m, a) in members.iter().zip(&member_acc) {
        println!("  {:>7.2}%  {:<12} {}", 100.0 * a, m.meta.model, m.path.display());
    }
    if members.len() > 1 {
        println!("  {:>7.2}%  ensemble ({})", 100.0 * ens, req.combine);
    }
    Ok(())
}

/// What `nabla predict` is asked for with several checkpoints or `--tta`.
pub struct PredictRequest<'a> {
    /// The members' checkpoints.
    pub checkpoints: &'a [PathBuf],
    /// The images.
    pub images: &'a [PathBuf],
    /// `mean-prob` or `vote`.
    pub combine: &'a str,
    /// The test-time augmentation.
    pub tta: Tta,
    /// Classes to show per image.
    pub top: usize,
    /// `--invert` as `predict` takes it.
    pub invert: &'a str,
    /// One JSON object per image instead of text.
    pub json: bool,
}

/// Classify each image with every member and combine.
pub fn predict(req: &PredictRequest) -> CliResult<()> {
    let members = load_members(req.checkpoints)?;
    let classes = members[0].meta.classes.clone();
    let k = classes.len();
    for path in req.images {
        let mut rows = Vec::new();
        let mut notes = Vec::new();
        for m in &members {
            let (px, n) = crate::predict::model_input(&m.meta, path, req.invert)?;
            notes.extend(n);
            let mut shape = vec![1];
            shape.extend_from_slice(&m.meta.input_shape);
            rows.push(m.probabilities(&Tensor::from_vec(px, &shape)?, req.tta)?);
        }
        notes.dedup();
        let refs: Vec<&[f32]> = rows.iter().map(|r| r.as_slice()).collect();
        let (best, mean) = decide(&refs, k, req.combine);
        let votes = votes(&refs, k);
        let mut order: Vec<usize> = (0..k).collect();
        order.sort_by(|&a, &b| {
            let key = |i: usize| if req.combine == "vote" { votes[i] } else { 0 };
            key(b).cmp(&key(a)).then(mean[b].total_cmp(&mean[a]))
        });
        debug_assert_eq!(order[0], best);
        let top: Vec<usize> = order.into_iter().take(req.top.max(1)).collect();
        if req.json {
            let t: Vec<_> = top
                .iter()
                .map(|&i| json!({"class": classes[i], "index": i, "probability": mean[i], "votes": votes[i]}))
                .collect();
            println!("{}", json!({"image": path.to_string_lossy(), "top": t, "notes": notes}));
            continue;
        }
        if !notes.is_empty() {
            eprintln!("note: {}: {}", path.display(), notes.join(", "));
        }
        let shown: Vec<String> = top
            .iter()
            .map(|&i| match req.combine {
                "vote" => format!(
                    "{} {}/{} votes ({:.2}%)",
                    classes[i],
                    votes[i],
                    members.len(),
                    100.0 * mean[i]
                ),
                _ => format!("{} {:.2}%", classes[i], 100.0 * mean[i]),
            })
            .collect();
        println!("{}: {}", path.display(), shown.join(", "));
    }
    Ok(())
}

/// Whether a command's checkpoints and `--tta` ask for the ensemble path.
pub fn wanted(checkpoints: &[PathBuf], tta: &str) -> bool {
    checkpoints.len() > 1 || tta != "none"
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mean_prob_and_vote_with_ties_broken_by_mean_probability() {
        let a = [0.5, 0.3, 0.2];
        let b = [0.1, 0.6, 0.3];
        let c = [0.4, 0.1, 0.5];
        // One vote each for a, b, c; d gives class 1 a second.
        let d = [0.2, 0.45, 0.35];
        assert_eq!(votes(&[&a, &b, &c, &d], 3), [1, 2, 1]);
        assert_eq!(decide(&[&a, &b, &c, &d], 3, "vote").0, 1);
        // Two votes each for classes 0 and 2; class 2 has the higher mean probability.
        let e = [0.45, 0.1, 0.45 - 1e-3];
        let f = [0.2, 0.1, 0.7];
        let (best, mean) = decide(&[&a, &e, &c, &f], 3, "vote");
        assert_eq!((votes(&[&a, &e, &c, &f], 3), best), (vec![2, 0, 2], 2));
        assert!(mean[2] > mean[0]);
        // Mean of probabilities can differ from the vote.
        let g = [0.9, 0.05, 0.05];
        let h = [0.3, 0.4, 0.3];
        let i = [0.3, 0.4, 0.3];
        assert_eq!(decide(&[&g, &h, &i], 3, "vote").0, 1);
        assert_eq!(decide(&[&g, &h, &i], 3, "mean-prob").0, 0);
        let m = decide(&[&g, &h, &i], 3, "mean-prob").1;
        assert!((m[0] - 0.5).abs() < 1e-6 && (m[1] - 0.85 / 3.0).abs() < 1e-6);
    }
}
