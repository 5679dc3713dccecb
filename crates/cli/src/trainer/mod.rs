//! The training loop behind `nabla train`: epochs of SGD-style steps over a shuffled loader,
//! validation without graph recording, checkpoints (`last`, `best`) that resume bitwise, a
//! stop on Ctrl-C or a non-finite loss, and the run folder's metrics and plots.
//!
//! Resuming is exact because everything a step depends on is either in the checkpoint (the
//! weights, the optimizer's buffers, the schedule, the epoch and the batch within it, the
//! running sums of the epoch) or derived from the seed (the model's initialization, every
//! epoch's shuffle and augmentation).

pub mod data;
pub mod report;
pub mod setup;

use crate::config::{Task, TrainConfig};
use crate::error::{CliError, CliResult};
use crate::metrics::{Confusion, EpochRecord, Regression};
use data::Data;
use nabla_core::{no_grad, Tensor};
use nabla_data::transforms::{Compose, Normalize, RandomCrop, RandomHorizontalFlip, Transform};
use nabla_data::{Batch, DataLoader, LoaderPosition};
use nabla_nn::checkpoint::Checkpoint;
use nabla_nn::loss::{cross_entropy, mse_loss, CrossEntropyOptions, Reduction};
use nabla_nn::optim::Optimizer;
use nabla_nn::{Mode, Module};
use serde_json::json;
use setup::{build_model, build_optimizer, model_config, nn_err, RunMeta, Schedule};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Instant;

/// How a run is to be carried out, beyond its configuration.
pub struct Options {
    /// The resolved configuration.
    pub cfg: TrainConfig,
    /// A checkpoint to continue from.
    pub resume: Option<PathBuf>,
    /// Stop (as Ctrl-C does) after this many optimizer steps in total.
    pub stop_after_steps: Option<u64>,
    /// A learning rate that replaces the checkpoint's on resume.
    pub lr_override: Option<f64>,
}

/// How a run ended.
#[derive(Debug, PartialEq, Eq)]
pub enum Outcome {
    /// All epochs done.
    Finished,
    /// Stopped early; the checkpoint to resume from.
    Stopped(PathBuf),
}

/// What the loss compares the model's output with.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LossKind {
    /// Cross-entropy against class labels.
    CrossEntropy,
    /// MSE against one-hot labels.
    MseOneHot,
    /// MSE against (standardized) regression targets.
    Regression,
}

impl LossKind {
    /// The loss a configuration asks for.
    pub fn of(cfg: &TrainConfig) -> LossKind {
        match (cfg.task, cfg.loss.as_str()) {
            (Task::Regression, _) => LossKind::Regression,
            (_, "mse") => LossKind::MseOneHot,
            _ => LossKind::CrossEntropy,
        }
    }
}

/// The mean loss of a batch.
pub fn batch_loss(out: &Tensor, b: &Batch, kind: LossKind) -> CliResult<Tensor> {
    let loss = match kind {
        LossKind::CrossEntropy => cross_entropy(out, &b.labels[..], &CrossEntropyOptions::default()),
        LossKind::MseOneHot => {
            let classes = out.shape().get(1).copied().unwrap_or(1);
            let onehot = Tensor::one_hot(&b.labels, classes, out.dtype()).map_err(CliError::from)?;
            mse_loss(out, &onehot, Reduction::Mean)
        }
        LossKind::Regression => match &b.targets {
            Some(t) => mse_loss(out, &t.to_dtype(out.dtype()).map_err(CliError::from)?, Reduction::Mean),
            None => return Err(CliError::new("regression batch without targets")),
        },
    };
    loss.map_err(nn_err)
}

/// What one pass over a validation or test set measured.
pub struct Evaluation {
    /// Mean loss per sample.
    pub loss: f64,
    /// Classification: the confusion matrix.
    pub confusion: Option<Confusion>,
    /// Regression: errors in the targets' own units.
    pub regression: Option<Regression>,
}

impl Evaluation {
    /// Accuracy, or RMSE for regression.
    pub fn metric(&self) -> f64 {
        match (&self.confusion, &self.regression) {
            (Some(c), _) => c.accuracy(),
            (_, Some(r)) => r.rmse(),
            _ => f64::NAN,
        }
    }
}

/// Run `model` over every batch of `loader` in eval mode, recording no graph.
pub fn evaluate(
    model: &dyn Module,
    loader: &DataLoader,
    kind: LossKind,
    classes: usize,
    target_scale: Option<(f32, f32)>,
) -> CliResult<Evaluation> {
    let _guard = no_grad();
    let (mut loss_sum, mut n) = (0.0, 0usize);
    let mut confusion = (kind != LossKind::Regression).then(|| Confusion::new(classes));
    let mut regression = (kind == LossKind::Regression).then(Regression::default);
    for b in loader.epoch(0) {
        let b = b.map_err(|e| CliError::new(e.to_string()))?;
        let out = model.forward(&b.inputs, Mode::Eval).map_err(nn_err)?;
        let rows = b.inputs.shape()[0];
        loss_sum += batch_loss(&out, &b, kind)?.item()? * rows as f64;
        n += rows;
        if let Some(c) = confusion.as_mut() {
            for (&t, &p) in b.labels.iter().zip(&out.argmax(1, false)?) {
                c.add(t, p);
            }
        }
        if let (Some(r), Some(t)) = (regression.as_mut(), &b.targets) {
            let (m, s) = target_scale.map_or((0.0, 1.0), |(m, s)| (m as f64, s as f64));
            let pred: Vec<f64> = out.to_vec_f64().iter().map(|v| v * s + m).collect();
            let truth: Vec<f64> = t.to_vec_f64().iter().map(|v| v * s + m).collect();
            r.add(&pred, &truth);
        }
    }
    Ok(Evaluation {
        loss: loss_sum / n.max(1) as f64,
        confusion,
        regression,
    })
}

/// The transform image batches go through: optional augmentation, then normalization.
pub fn image_transform(data_norm: &(Vec<f32>, Vec<f32>), augment: bool, hw: [usize; 2]) -> CliResult<Compose> {
    let mut steps: Vec<Box<dyn Transform>> = Vec::new();
    if augment {
        steps.push(Box::new(RandomCrop::new(hw, 2)));
        steps.push(Box::new(RandomHorizontalFlip::new(0.5)));
    }
    let norm = Normalize::new(data_norm.0.clone(), data_norm.1.clone()).map_err(|e| CliError::new(e.to_string()))?;
    steps.push(Box::new(norm));
    Ok(Compose::new(steps))
}

/// A loader over `ds`, normalizing (and augmenting) images.
pub fn make_loader(
    ds: std::sync::Arc<dyn nabla_data::Dataset>,
    batch: usize,
    data_shape: &[usize],
    norm: &(Vec<f32>, Vec<f32>),
    augment: bool,
) -> CliResult<DataLoader> {
    let loader = DataLoader::from_arc(ds, batch).map_err(|e| CliError::new(e.to_string()))?;
    Ok(match data_shape {
        [_, h, w] => loader.transform(image_transform(norm, augment, [*h, *w])?),
        _ => loader,
    })
}

/// The configuration saved in a checkpoint, to resume with (flags then override it).
pub fn resume_config(path: &Path) -> CliResult<TrainConfig> {
    if !path.is_file() {
        return Err(CliError::new(format!(
            "--resume {}: no such checkpoint file",
            path.display()
        )));
    }
    let ck = Checkpoint::load(path).map_err(nn_err)?;
    Ok(RunMeta::from_checkpoint(&ck, path)?.config)
}

/// The running sums of an epoch (saved in a checkpoint taken part-way through one).
#[derive(Debug, Clone, Copy, Default)]
struct Partial {
    loss_sum: f64,
    correct: u64,
    seen: u64,
    seconds: f64,
}

impl Partial {
    fn to_json(self) -> String {
        json!({"loss_sum": format!("{:?}", self.loss_sum), "correct": self.correct, "seen": self.seen,
               "seconds": self.seconds})
        .to_string()
    }

    fn from_json(s: &str) -> Option<Partial> {
        let v: serde_json::Value = serde_json::from_str(s).ok()?;
        Some(Partial {
            loss_sum: v["loss_sum"].as_str()?.parse().ok()?,
            correct: v["correct"].as_u64()?,
            seen: v["seen"].as_u64()?,
            seconds: v["seconds"].as_f64()?,
        })
    }
}

/// Everything that changes while training, and what a checkpoint captures of it.
struct State {
    model: Box<dyn Module>,
    opt: Box<dyn Optimizer>,
    sched: Schedule,
    meta: RunMeta,
    epoch: u64,
    step: u64,
    batch: usize,
    partial: Partial,
    best: Option<(f64, u64)>,
}

impl State {
    fn save(&self, path: &Path) -> CliResult<()> {
        let mut ck =
            Checkpoint::capture(&self.model.state_dict(), self.opt.as_ref(), self.epoch, self.step).map_err(nn_err)?;
        ck.scheduler = self.sched.state();
        ck.extra = self.meta.to_extra();
        ck.extra.insert("batch".into(), self.batch.to_string());
        ck.extra.insert("partial".into(), self.partial.to_json());
        if let Some((m, e)) = self.best {
            ck.extra.insert("best_metric".into(), format!("{m:?}"));
            ck.extra.insert("best_epoch".into(), e.to_string());
        }
        let gens = self.model.generator_states();
        if !gens.is_empty() {
            ck.extra.insert("generators".into(), encode_generators(&gens));
        }
        ck.save(path).map_err(nn_err)
    }

    fn restore(&mut self, ck: &Checkpoint, path: &Path) -> CliResult<()> {
        let fit = |e: String| {
            CliError::new(format!(
                "--resume {}: {e} (was it written for another model or optimizer?)",
                path.display()
            ))
        };
        self.sched.load(&ck.scheduler).map_err(|e| fit(e.to_string()))?;
        self.opt
            .load_state_dict(&ck.optimizer)
            .map_err(|e| fit(e.to_string()))?;
        ck.restore_model(&self.model.state_dict())
            .map_err(|e| fit(e.to_string()))?;
        let num = |k: &str| ck.extra.get(k).and_then(|v| v.parse::<f64>().ok());
        (self.epoch, self.step) = (ck.epoch, ck.step);
        self.batch = num("batch").unwrap_or(0.0) as usize;
        self.partial = ck
            .extra
            .get("partial")
            .and_then(|s| Partial::from_json(s))
            .unwrap_or_default();
        self.best = num("best_metric").zip(num("best_epoch").map(|e| e as u64));
        // Dropout's generators, so the masks go on as in an uninterrupted run (checkpoints
        // of models without dropout have none).
        match ck.extra.get("generators") {
            Some(text) => {
                let states =
                    decode_generators(text).ok_or_else(|| fit(format!("unreadable generator states {text:?}")))?;
                self.model
                    .load_generator_states(&states)
                    .map_err(|e| fit(e.to_string()))?;
            }
            None if !self.model.generator_states().is_empty() => eprintln!(
                "note: {} holds no dropout generator states (written before they were saved); \
                 the resumed run draws other masks than an uninterrupted one would",
                path.display()
            ),
            None => {}
        }
        Ok(())
    }
}

/// Generator states as checkpoint text: `name:s0,s1,s2,s3` in hex, separated by spaces.
fn encode_generators(states: &[(String, [u64; 4])]) -> String {
    let one = |(n, s): &(String, [u64; 4])| format!("{n}:{:x},{:x},{:x},{:x}", s[0], s[1], s[2], s[3]);
    states.iter().map(one).collect::<Vec<_>>().join(" ")
}

/// The states [`encode_generators`] wrote, or `None` if the text is not in its form (or
/// holds an all-zero state, which no generator reaches and which would draw only zeros).
fn decode_generators(text: &str) -> Option<Vec<(String, [u64; 4])>> {
    text.split_whitespace()
        .map(|entry| {
            let (name, words) = entry.rsplit_once(':')?;
            let words: Vec<u64> = words
                .split(',')
                .map(|w| u64::from_str_radix(w, 16).ok())
                .collect::<Option<_>>()?;
            let state: [u64; 4] = words.try_into().ok()?;
            (state != [0; 4]).then(|| (name.to_string(), state))
        })
        .collect()
}

/// Peak resident memory of this process so far, in MiB (Linux), for the epoch records.
fn peak_rss_mib() -> Option<f64> {
    let s = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = s.lines().find(|l| l.starts_with("VmHWM:"))?;
    let kb: f64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kb / 1024.0)
}

/// Train as `opts` says; `stop` is raised by Ctrl-C.
pub fn run(opts: Options, stop: &AtomicBool) -> CliResult<Outcome> {
    let cfg = opts.cfg;
    cfg.validate()?;
    let data: Data = data::load(&cfg)?;
    let out = cfg.out_dir();
    std::fs::create_dir_all(&out).map_err(|e| CliError::io("create output directory", &out, e))?;
    let regression = cfg.task == Task::Regression;
    let kind = LossKind::of(&cfg);
    let mc = model_config(&cfg, &data.input_shape, data.classes.len());
    let model = build_model(&cfg.model, &mc)?;
    let mut opt = build_optimizer(&cfg, model.trainable_parameters())?;
    let sched = Schedule::new(&cfg, opt.as_mut())?;
    let meta = RunMeta {
        model: cfg.model.clone(),
        model_config: mc,
        config: cfg.clone(),
        classes: data.classes.clone(),
        input_shape: data.input_shape.clone(),
        normalize: data.normalize.clone(),
        target_scale: data.target_scale,
    };
    let mut st = State {
        model,
        opt,
        sched,
        meta,
        epoch: 0,
        step: 0,
        batch: 0,
        partial: Partial::default(),
        best: None,
    };
    if let Some(path) = &opts.resume {
        let ck = Checkpoint::load(path).map_err(nn_err)?;
        st.restore(&ck, path)?;
        if let Some(lr) = opts.lr_override {
            for g in 0..st.opt.lrs().len() {
                st.opt.set_lr(g, lr).map_err(nn_err)?;
            }
        }
    }
    crate::image_io::write_atomic(&out.join("config.toml"), cfg.to_toml().as_bytes())?;
    let mut records = if opts.resume.is_some() {
        report::read_metrics(&out, st.epoch, regression)?
    } else {
        vec![]
    };
    let shape = data.input_shape.clone();
    let loader = make_loader(data.train.clone(), cfg.batch_size, &shape, &data.normalize, cfg.augment)?
        .shuffle(true)
        .seed(cfg.seed)
        .num_workers(cfg.workers);
    let val_loader = make_loader(data.val.clone(), 500, &shape, &data.normalize, false)?;
    let (last, best_path) = (out.join("last.safetensors"), out.join("best.safetensors"));
    let epochs = cfg.epochs as u64;
    if st.epoch == 0 && st.batch == 0 {
        println!(
            "training {} ({} parameters) on {} ({} training, {} validation samples from {}); run folder {}",
            cfg.model,
            st.model.num_parameters(),
            cfg.dataset,
            data.train.len(),
            data.val.len(),
            data.origin.display(),
            out.display()
        );
    } else {
        println!(
            "resuming at epoch {} step {} (batch {})",
            st.epoch + 1,
            st.step,
            st.batch
        );
    }
    let classes = data.classes.len();
    let diverged = |st: &State, what: f64| {
        let kept = if last.is_file() {
            format!("the last good checkpoint is {}", last.display())
        } else {
            "no checkpoint was written".to_string()
        };
        CliError::new(format!(
            "training stopped: the loss became {} at epoch {}, step {}; {kept}; try a lower --lr",
            if what.is_nan() { "NaN" } else { "infinite" },
            st.epoch + 1,
            st.step + 1
        ))
    };
    while st.epoch < epochs {
        let lr = st.opt.lr(0).map_err(nn_err)?;
        let pos = LoaderPosition {
            epoch: st.epoch,
            batch: st.batch,
            seed: cfg.seed,
        };
        let mut batches = loader.resume(pos).map_err(|e| CliError::new(e.to_string()))?;
        let mut bar = report::Progress::new(st.epoch + 1, epochs, loader.len(), st.batch);
        let t0 = Instant::now();
        let mut p = st.partial;
        let mut stopped = false;
        for b in batches.by_ref() {
            let b = b.map_err(|e| CliError::new(e.to_string()))?;
            let rows = b.inputs.shape()[0] as u64;
            let logits = st.model.forward(&b.inputs, Mode::Train).map_err(nn_err)?;
            let loss = batch_loss(&logits, &b, kind)?;
            let lv = loss.item()?;
            if !lv.is_finite() {
                bar.finish();
                return Err(diverged(&st, lv));
            }
            let grads = loss.backward()?;
            st.opt.step(&grads).map_err(nn_err)?;
            drop(grads);
            if !regression {
                let pred = logits.argmax(1, false)?;
                p.correct += pred.iter().zip(&b.labels).filter(|(a, b)| a == b).count() as u64;
            }
            (p.loss_sum, p.seen) = (p.loss_sum + lv * rows as f64, p.seen + rows);
            st.step += 1;
            st.batch += 1;
            let acc = (!regression).then(|| p.correct as f64 / p.seen as f64);
            bar.step(p.loss_sum / p.seen as f64, acc, p.seen - st.partial.seen);
            let asked = stop.load(Ordering::Relaxed) || opts.stop_after_steps.is_some_and(|s| st.step >= s);
            if asked {
                stopped = true;
                if st.batch < loader.len() {
                    bar.finish();
                    st.partial = Partial {
                        seconds: p.seconds + t0.elapsed().as_secs_f64(),
                        ..p
                    };
                    st.save(&last)?;
                    return Ok(Outcome::Stopped(last));
                }
            }
        }
        bar.finish();
        let this_part = t0.elapsed().as_secs_f64();
        let train_seconds = p.seconds + this_part;
        let ev = evaluate(st.model.as_ref(), &val_loader, kind, classes, data.target_scale)?;
        let n = p.seen.max(1) as f64;
        let train_loss = p.loss_sum / n;
        let train_metric = match (regression, data.target_scale) {
            (true, Some((_, s))) => train_loss.sqrt() * s as f64,
            (true, None) => train_loss.sqrt(),
            (false, _) => p.correct as f64 / n,
        };
        let rec = EpochRecord {
            epoch: st.epoch + 1,
            train_loss,
            train_metric,
            val_loss: ev.loss,
            val_metric: ev.metric(),
            val_r2: ev.regression.as_ref().map(Regression::r2),
            lr,
            train_seconds,
            samples_per_second: (p.seen - st.partial.seen) as f64 / this_part.max(1e-9),
            peak_rss_mib: peak_rss_mib(),
        };
        println!("{}", report::epoch_line(&rec, epochs, regression));
        st.sched.step(st.opt.as_mut(), ev.loss)?;
        st.epoch += 1;
        st.batch = 0;
        st.partial = Partial::default();
        let m = rec.val_metric;
        let better = match st.best {
            None => m.is_finite(),
            Some((b, _)) => (regression && m < b) || (!regression && m > b),
        };
        if better {
            st.best = Some((m, st.epoch));
        }
        records.push(rec);
        st.save(&last)?;
        if better {
            st.save(&best_path)?;
        }
        report::write_metrics(&out, &records, regression)?;
        if stopped && st.epoch < epochs {
            return Ok(Outcome::Stopped(last));
        }
    }
    finish(&st, &out, &best_path, &val_loader, kind, &data)?;
    Ok(Outcome::Finished)
}

/// After the last epoch: the confusion matrix of the best checkpoint, and a closing line.
fn finish(
    st: &State,
    out: &Path,
    best_path: &Path,
    val_loader: &DataLoader,
    kind: LossKind,
    data: &Data,
) -> CliResult<()> {
    let Some((metric, epoch)) = st.best else {
        println!(
            "done; no epoch had a finite validation score; files in {}",
            out.display()
        );
        return Ok(());
    };
    if kind == LossKind::Regression {
        println!(
            "done; best validation RMSE {metric:.4} at epoch {epoch}; files in {}",
            out.display()
        );
        return Ok(());
    }
    // Score the best weights on a fresh model, so the trained one is left as it is.
    let (model, meta, _) = setup::load_trained(best_path)?;
    let ev = evaluate(model.as_ref(), val_loader, kind, meta.classes.len(), None)?;
    if let Some(c) = &ev.confusion {
        let title = format!(
            "{} on {}: best epoch {epoch}, accuracy {:.2}%",
            meta.model,
            meta.config.dataset,
            100.0 * c.accuracy()
        );
        report::write_confusion(out, c, &data.classes, &title)?;
    }
    println!(
        "done; best validation accuracy {:.2}% at epoch {epoch}; files in {}",
        100.0 * metric,
        out.display()
    );
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn generator_states_round_trip_as_text_and_bad_text_is_refused() {
        let states = vec![
            ("classifier.0".to_string(), [1, u64::MAX, 0, 42]),
            ("aux1.dropout".to_string(), [7, 8, 9, 10]),
        ];
        assert_eq!(decode_generators(&encode_generators(&states)), Some(states));
        for bad in ["x:1,2,3", "x:1,2,3,4,5", "x:1,2,z,4", "x1,2,3,4", "x:0,0,0,0"] {
            assert_eq!(decode_generators(bad), None, "{bad}");
        }
    }
}
