//! The loop: epochs of training steps over a seeded shuffle, validation without graph
//! recording, the epoch line, `metrics.jsonl`, checkpoints (`last`, `best`), and the stops
//! (Ctrl-C or a step budget, which save and return; a non-finite loss, which saves nothing).

use crate::record::{peak_rss_mib, read_metrics, write_atomic, write_metrics, write_test_line, Progress, Record};
use crate::state::{load_weights, State, Sums};
use crate::tensorboard::EventWriter;
use crate::{Direction, Distributed, Result, Task, TrainError};
use nabla_core::no_grad;
use nabla_data::{DataLoader, LoaderPosition};
use nabla_nn::checkpoint::Checkpoint;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Instant;

/// How a run is carried out.
#[derive(Debug, Clone)]
pub struct FitOptions {
    /// Epochs in total (a resumed run counts the ones already done).
    pub epochs: u64,
    /// Seed of every epoch's shuffle (and the loader's augmentation).
    pub seed: u64,
    /// Run folder: `last.safetensors`, `best.safetensors`, `metrics.jsonl`, `config.toml`.
    pub out: PathBuf,
    /// A checkpoint to continue from, bit for bit.
    pub resume: Option<PathBuf>,
    /// A checkpoint whose weights a fresh run starts from (fine-tuning: new optimizer state,
    /// schedule, epochs and best score).
    pub init_from: Option<PathBuf>,
    /// Stop (as Ctrl-C does) after this many steps in total.
    pub stop_after_steps: Option<u64>,
    /// A learning rate that replaces every optimizer's rates on resume.
    pub lr_override: Option<f64>,
    /// The text written to `config.toml` (none: no file).
    pub config: Option<String>,
    /// Stop when the best-checkpoint metric has not improved for a while.
    pub early_stop: Option<EarlyStop>,
    /// Clip every optimizer's gradients to this global L2 norm (see [`crate::Optim::step`]).
    pub clip_grad_norm: Option<f64>,
    /// Linear warm-up: in epoch `e < warmup_epochs` (0-based) every rate the schedules set
    /// is scaled by `(e + 1) / (warmup_epochs + 1)`. Checkpoints hold the unscaled rates.
    pub warmup_epochs: u64,
    /// Also write each epoch's metrics as TensorBoard scalars (an event file in `out`).
    pub tensorboard: bool,
    /// Train data-parallel as one rank of several (see [`crate::Distributed`]); `None` or a
    /// world of one: a plain run.
    pub distributed: Option<Distributed>,
}

/// Early stopping (Lightning's `EarlyStopping`): end the run when the metric that selects the
/// best checkpoint has not improved by more than `min_delta` for `patience` epochs.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct EarlyStop {
    /// Epochs without improvement tolerated.
    pub patience: u64,
    /// The smallest change that counts as an improvement.
    pub min_delta: f64,
}

impl EarlyStop {
    /// Epochs since the last improvement in `values` (one per epoch, in order; non-finite
    /// values never improve), as the run's records say: resuming needs no extra state.
    pub fn stale(&self, values: &[f64], direction: Direction) -> u64 {
        let mut best: Option<f64> = None;
        let mut stale = 0;
        for &v in values {
            let improved = v.is_finite()
                && best.is_none_or(|b| match direction {
                    Direction::Min => v < b - self.min_delta,
                    Direction::Max => v > b + self.min_delta,
                });
            if improved {
                (best, stale) = (Some(v), 0);
            } else {
                stale += 1;
            }
        }
        stale
    }
}

impl Default for FitOptions {
    fn default() -> Self {
        FitOptions {
            epochs: 1,
            seed: 0,
            out: PathBuf::from("runs/run"),
            resume: None,
            init_from: None,
            stop_after_steps: None,
            lr_override: None,
            config: None,
            early_stop: None,
            clip_grad_norm: None,
            warmup_epochs: 0,
            tensorboard: false,
            distributed: None,
        }
    }
}

/// How a run ended.
#[derive(Debug, Clone, PartialEq)]
pub enum Outcome {
    /// All epochs done (or fewer, stopped by [`EarlyStop`]); the best score and the epoch
    /// it came from, if any was finite.
    Finished {
        /// `(score, epoch)` of `best.safetensors`.
        best: Option<(f64, u64)>,
    },
    /// Stopped early; the checkpoint to resume from.
    Stopped(PathBuf),
}

/// Train `task` on `train` (shuffled by the engine with `opts.seed`), validating on `val`
/// after every epoch (without `val` no best checkpoint is kept and a plateau schedule sees
/// no loss); `stop` is raised by Ctrl-C (or any other thread).
pub fn fit(
    task: &mut dyn Task,
    train: DataLoader,
    val: Option<&DataLoader>,
    opts: &FitOptions,
    stop: &AtomicBool,
) -> Result<Outcome> {
    let out = &opts.out;
    let dist = opts.distributed.as_ref().filter(|d| d.comm.size() > 1);
    // Rank 0 alone prints and writes files.
    let main = dist.is_none_or(|d| d.is_main());
    if main {
        std::fs::create_dir_all(out).map_err(|e| TrainError::io("create output directory", out, e))?;
    }
    let mut st = State {
        optims: task.configure_optimizers()?,
        epoch: 0,
        step: 0,
        batch: 0,
        partial: Sums::default(),
        best: None,
    };
    if st.optims.is_empty() {
        return Err(TrainError::msg("the task configured no optimizer"));
    }
    for o in &mut st.optims {
        o.clip_grad_norm = opts.clip_grad_norm;
    }
    if let Some(path) = &opts.init_from {
        load_weights(&*task, &Checkpoint::load(path)?, path)?;
    }
    if let Some(path) = &opts.resume {
        st.restore(&*task, &Checkpoint::load(path)?, path)?;
        if let Some(lr) = opts.lr_override {
            for o in &mut st.optims {
                for g in 0..o.optimizer.lrs().len() {
                    o.optimizer.set_lr(g, lr)?;
                }
            }
        }
    }
    if let Some(d) = dist {
        let samples = train.dataset().len();
        d.start(&*task, &mut st.optims, opts.config.as_deref().unwrap_or(""), samples)?;
        if !main {
            // Rank 0's checkpoint holds the whole epoch's sums so far.
            st.partial = Sums::default();
        }
    }
    if let (Some(text), true) = (&opts.config, main) {
        write_atomic(&out.join("config.toml"), text.as_bytes())?;
    }
    let mut records = match opts.resume {
        Some(_) => read_metrics(out, st.epoch)?,
        None => vec![],
    };
    let loader = train.shuffle(true).seed(opts.seed);
    // Validation is sharded only where averaging the ranks' metrics is exact.
    let val_dist = dist.filter(|_| task.validation_means());
    let loader = match dist {
        Some(d) => d.shard_train(loader)?,
        None => loader,
    };
    let val_shard = match val_dist {
        Some(d) => val.map(|v| d.shard_val(v)).transpose()?,
        None => None,
    };
    let val = val_shard.as_ref().or(val);
    let (last, best_path) = (out.join("last.safetensors"), out.join("best.safetensors"));
    let epochs = opts.epochs;
    if main && st.epoch == 0 && st.batch == 0 {
        if let Some(line) = task.start_message() {
            println!("{line}");
        }
    } else if main {
        println!(
            "resuming at epoch {} step {} (batch {})",
            st.epoch + 1,
            st.step,
            st.batch
        );
    }
    let (best_key, direction) = task.best();
    let mut events = match opts.tensorboard && main {
        true => Some(EventWriter::create(out)?),
        false => None,
    };
    while st.epoch < epochs {
        let warm = Warmup::start(&mut st.optims, opts.warmup_epochs, st.epoch)?;
        let lr = st.optims[0].optimizer.lr(0)?;
        let pos = LoaderPosition {
            epoch: st.epoch,
            batch: st.batch,
            seed: opts.seed,
        };
        let mut batches = loader.resume(pos)?;
        let mut bar = Progress::new(st.epoch + 1, epochs, loader.len(), st.batch).hidden(!main);
        let t0 = Instant::now();
        let mut p = st.partial.clone();
        let mut stopped = false;
        for b in batches.by_ref() {
            let b = b?;
            let step = task.training_step(&b, st.step, &mut st.optims)?;
            if let Some(&(_, v)) = step.sums.iter().find(|(_, v)| !v.is_finite()) {
                bar.finish();
                return Err(TrainError::Diverged {
                    value: v,
                    epoch: st.epoch + 1,
                    step: st.step + 1,
                    last: last.is_file().then(|| last.clone()),
                });
            }
            p.add(step.samples, &step.sums);
            st.step += 1;
            st.batch += 1;
            bar.step(p.seen - st.partial.seen, || task.progress(&p));
            let mut asked = stop.load(Ordering::Relaxed) || opts.stop_after_steps.is_some_and(|s| st.step >= s);
            if let Some(d) = dist {
                asked = d.agree_stop(asked);
            }
            if asked {
                stopped = true;
                if st.batch < loader.len() {
                    bar.finish();
                    p.seconds += t0.elapsed().as_secs_f64();
                    st.partial = dist.map_or(p.clone(), |d| d.reduce_sums(&p));
                    warm.end(&mut st.optims)?;
                    if main {
                        st.save(&*task, &last)?;
                    }
                    return Ok(Outcome::Stopped(last));
                }
            }
        }
        bar.finish();
        let this_part = t0.elapsed().as_secs_f64();
        let val_metrics = match val {
            Some(v) => score(task, v, val_dist)?,
            None => vec![],
        };
        // Every rank's samples and sums, so the epoch's metrics are the global batch's.
        let (p, before) = match dist {
            Some(d) => (d.reduce_sums(&p), d.reduce_sums(&st.partial).seen),
            None => (p, st.partial.seen),
        };
        let mut metrics: Vec<(String, f64)> = task
            .train_metrics(&p)
            .into_iter()
            .map(|(k, v)| (format!("train_{k}"), v))
            .collect();
        metrics.extend(val_metrics.into_iter().map(|(k, v)| (format!("val_{k}"), v)));
        let rec = Record {
            epoch: st.epoch + 1,
            metrics,
            lr,
            train_seconds: p.seconds + this_part,
            samples_per_second: (p.seen - before) as f64 / this_part.max(1e-9),
            peak_rss_mib: peak_rss_mib(),
        };
        if main {
            println!("{}", rec.line(epochs, &|n, v| task.show(n, v)));
        }
        let val_loss = rec.get("val_loss");
        warm.end(&mut st.optims)?;
        for o in &mut st.optims {
            o.schedule.step(o.optimizer.as_mut(), val_loss)?;
        }
        st.epoch += 1;
        st.batch = 0;
        st.partial = Sums::default();
        let m = rec.get(best_key);
        let better = match st.best {
            None => m.is_finite(),
            Some((b, _)) => match direction {
                Direction::Min => m < b,
                Direction::Max => m > b,
            },
        };
        if better {
            st.best = Some((m, st.epoch));
        }
        records.push(rec);
        if main {
            st.save(&*task, &last)?;
            if better {
                st.save(&*task, &best_path)?;
            }
            write_metrics(out, &records)?;
            if let (Some(w), Some(rec)) = (events.as_mut(), records.last()) {
                w.epoch(rec)?;
            }
            task.epoch_end(out, &records)?;
        }
        if stopped && st.epoch < epochs {
            return Ok(Outcome::Stopped(last));
        }
        if let Some(es) = &opts.early_stop {
            let history: Vec<f64> = records.iter().map(|r| r.get(best_key)).collect();
            if es.stale(&history, direction) >= es.patience.max(1) && st.epoch < epochs {
                if main {
                    println!(
                        "early stop: {best_key} has not improved by more than {} for {} epochs",
                        es.min_delta, es.patience
                    );
                }
                break;
            }
        }
    }
    Ok(Outcome::Finished { best: st.best })
}

/// The rates a warm-up epoch scaled, to put back before the schedule steps or a checkpoint
/// is written (so schedules and checkpoints only ever see their own rates).
struct Warmup(Vec<Vec<f64>>);

impl Warmup {
    /// Scale every rate for epoch `epoch` (0-based) of a `epochs`-epoch warm-up.
    fn start(optims: &mut [crate::Optim], epochs: u64, epoch: u64) -> Result<Warmup> {
        if epoch >= epochs {
            return Ok(Warmup(vec![]));
        }
        let f = (epoch + 1) as f64 / (epochs + 1) as f64;
        let mut saved = Vec::new();
        for o in optims.iter_mut() {
            let lrs = o.optimizer.lrs();
            for (g, lr) in lrs.iter().enumerate() {
                o.optimizer.set_lr(g, lr * f)?;
            }
            saved.push(lrs);
        }
        Ok(Warmup(saved))
    }

    /// Put the unscaled rates back.
    fn end(&self, optims: &mut [crate::Optim]) -> Result<()> {
        for (o, lrs) in optims.iter_mut().zip(&self.0) {
            for (g, &lr) in lrs.iter().enumerate() {
                o.optimizer.set_lr(g, lr)?;
            }
        }
        Ok(())
    }
}

/// One pass of the task's validation hooks over `loader`, recording no graph (distributed:
/// this rank's shard, the metrics then averaged over the ranks).
fn score(task: &mut dyn Task, loader: &DataLoader, dist: Option<&Distributed>) -> Result<Vec<(String, f64)>> {
    let _guard = no_grad();
    let mut n = 0;
    for b in loader.epoch(0) {
        let b = b?;
        n += b.inputs.shape().first().copied().unwrap_or(0);
        task.validation_step(&b)?;
    }
    let metrics = task.validation_end()?;
    Ok(match dist {
        Some(d) => d.reduce_val(metrics, n),
        None => metrics,
    })
}

/// Score the weights of `checkpoint` (in the run folder `out`) on a held-out test set once,
/// after training: the task's models take those weights, its validation hooks run over
/// `loader`, and the metrics, named `test_<name>`, are returned and appended to
/// `metrics.jsonl` as a line of their own (`"split":"test"`, the checkpoint's file name and
/// epoch).
pub fn test(task: &mut dyn Task, loader: &DataLoader, checkpoint: &Path, out: &Path) -> Result<Vec<(String, f64)>> {
    let ck = Checkpoint::load(checkpoint)?;
    load_weights(&*task, &ck, checkpoint)?;
    let metrics: Vec<(String, f64)> = score(task, loader, None)?
        .into_iter()
        .map(|(k, v)| (format!("test_{k}"), v))
        .collect();
    let name = checkpoint.file_name().map_or("".into(), |n| n.to_string_lossy());
    write_test_line(out, &name, ck.epoch, &metrics)?;
    Ok(metrics)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn early_stop_counts_epochs_since_an_improvement_beyond_min_delta() {
        let es = EarlyStop {
            patience: 2,
            min_delta: 0.01,
        };
        let acc = [0.5, 0.6, 0.605, 0.61, 0.62];
        // 0.605 and 0.61 are within 0.01 of 0.6; 0.62 is not.
        assert_eq!(es.stale(&acc[..4], Direction::Max), 2);
        assert_eq!(es.stale(&acc, Direction::Max), 0);
        assert_eq!(es.stale(&[1.0, f64::NAN, 0.995], Direction::Min), 2);
        assert_eq!(es.stale(&[f64::NAN, 1.0], Direction::Min), 0);
    }
}
