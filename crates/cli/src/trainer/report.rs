//! What a run shows and leaves behind besides checkpoints: the progress bar, the line per
//! epoch, `metrics.jsonl`, `curves.png` and `confusion.png`.

use crate::error::{CliError, CliResult};
use crate::image_io::write_atomic;
use crate::metrics::{Confusion, EpochRecord};
use crate::plot::{confusion_png, curves_png, Series};
use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use std::io::IsTerminal;
use std::path::Path;
use std::time::{Duration, Instant};

/// The per-epoch progress bar on stderr (hidden when stderr is not a terminal).
pub struct Progress {
    bar: ProgressBar,
    start: Instant,
    last_msg: Instant,
}

impl Progress {
    /// A bar for `len` batches, starting at `pos` (a resumed epoch starts part-way).
    pub fn new(epoch: u64, epochs: u64, len: usize, pos: usize) -> Progress {
        let target = if std::io::stderr().is_terminal() {
            ProgressDrawTarget::stderr_with_hz(8)
        } else {
            ProgressDrawTarget::hidden()
        };
        let bar = ProgressBar::with_draw_target(Some(len as u64), target);
        let style = ProgressStyle::with_template("{prefix} [{bar:28.cyan/blue}] {pos}/{len} {msg} ETA {eta}")
            .unwrap_or_else(|_| ProgressStyle::default_bar())
            .progress_chars("=> ");
        bar.set_style(style);
        bar.set_prefix(format!("epoch {epoch}/{epochs}"));
        bar.set_position(pos as u64);
        bar.reset_eta();
        Progress {
            bar,
            start: Instant::now(),
            last_msg: Instant::now() - Duration::from_secs(1),
        }
    }

    /// Advance one batch; the loss, accuracy (if any) and rate are refreshed a few times a second.
    pub fn step(&mut self, loss: f64, acc: Option<f64>, samples: u64) {
        self.bar.inc(1);
        if self.last_msg.elapsed() >= Duration::from_millis(125) && !self.bar.is_hidden() {
            self.last_msg = Instant::now();
            let rate = samples as f64 / self.start.elapsed().as_secs_f64().max(1e-9);
            let acc = acc.map_or(String::new(), |a| format!(" acc {:.2}%", 100.0 * a));
            self.bar.set_message(format!("loss {loss:.4}{acc} {rate:.0} img/s"));
        }
    }

    /// Remove the bar (the epoch line replaces it).
    pub fn finish(&self) {
        self.bar.finish_and_clear();
    }
}

/// The line printed after each epoch.
pub fn epoch_line(r: &EpochRecord, epochs: u64, regression: bool) -> String {
    let (m, scale, unit) = if regression {
        ("rmse", 1.0, "")
    } else {
        ("acc", 100.0, "%")
    };
    let prec = if regression { 4 } else { 2 };
    let r2 = r.val_r2.map_or(String::new(), |v| format!(" r2 {v:.4}"));
    format!(
        "epoch {:>w$}/{epochs}  train loss {:.4} {m} {:.prec$}{unit}  val loss {:.4} {m} {:.prec$}{unit}{r2}  lr {:.3e}  {:.1}s ({:.0} img/s)",
        r.epoch,
        r.train_loss,
        r.train_metric * scale,
        r.val_loss,
        r.val_metric * scale,
        r.lr,
        r.train_seconds,
        r.samples_per_second,
        w = epochs.to_string().len(),
    )
}

/// Read the records of an earlier run in `dir` up to epoch `upto` (none if there is no file).
pub fn read_metrics(dir: &Path, upto: u64, regression: bool) -> CliResult<Vec<EpochRecord>> {
    let path = dir.join("metrics.jsonl");
    let text = match std::fs::read_to_string(&path) {
        Ok(t) => t,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(CliError::io("read", &path, e)),
    };
    let mut out = Vec::new();
    for line in text.lines().filter(|l| !l.trim().is_empty()) {
        let r = EpochRecord::from_json(line, regression)?;
        if r.epoch <= upto {
            out.push(r);
        }
    }
    Ok(out)
}

/// Write `metrics.jsonl` and `curves.png` for the records so far.
pub fn write_metrics(dir: &Path, records: &[EpochRecord], regression: bool) -> CliResult<()> {
    let mut text = String::new();
    for r in records {
        text.push_str(&r.to_json(regression));
        text.push('\n');
    }
    write_atomic(&dir.join("metrics.jsonl"), text.as_bytes())?;
    let series = |name: &str, color, f: &dyn Fn(&EpochRecord) -> f64| Series {
        name: name.to_string(),
        color,
        points: records.iter().map(|r| (r.epoch as f64, f(r))).collect(),
    };
    let (train_c, val_c) = ([31, 119, 180], [214, 39, 40]);
    let loss = vec![
        series("train", train_c, &|r| r.train_loss),
        series("validation", val_c, &|r| r.val_loss),
    ];
    let (title, label, scale) = if regression {
        ("RMSE", "rmse", 1.0)
    } else {
        ("accuracy", "accuracy (%)", 100.0)
    };
    let metric = vec![
        series("train", train_c, &|r| r.train_metric * scale),
        series("validation", val_c, &|r| r.val_metric * scale),
    ];
    curves_png(
        &dir.join("curves.png"),
        &[("loss", "loss", loss), (title, label, metric)],
    )
}

/// Write `confusion.png`.
pub fn write_confusion(dir: &Path, m: &Confusion, classes: &[String], title: &str) -> CliResult<()> {
    confusion_png(&dir.join("confusion.png"), m, classes, title)
}
