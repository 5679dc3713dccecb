//! What a run shows and leaves behind besides checkpoints: the progress bar, the line per
//! epoch and `metrics.jsonl`, all written through [`write_atomic`].

use crate::{Result, TrainError};
use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use serde_json::{json, Map, Value};
use std::io::{IsTerminal, Write};
use std::path::Path;
use std::time::{Duration, Instant};

/// One epoch's line of `metrics.jsonl`.
#[derive(Debug, Clone, PartialEq)]
pub struct Record {
    /// 1-based epoch.
    pub epoch: u64,
    /// The task's metrics by key, `train_<name>` then `val_<name>` (`train_loss`, `val_acc`, ...).
    pub metrics: Vec<(String, f64)>,
    /// Learning rate of the first optimizer in the epoch.
    pub lr: f64,
    /// Seconds of training (validation excluded).
    pub train_seconds: f64,
    /// Training samples per second.
    pub samples_per_second: f64,
    /// Peak resident memory of the process so far, in MiB (where the OS tells it).
    pub peak_rss_mib: Option<f64>,
}

/// A float for JSON: NaN and ±∞ become null.
fn num(v: f64) -> Value {
    if v.is_finite() {
        json!(v)
    } else {
        Value::Null
    }
}

impl Record {
    /// The metric under `key` (`train_loss`, `val_acc`), NaN if the record has none.
    pub fn get(&self, key: &str) -> f64 {
        self.metrics
            .iter()
            .find(|(k, _)| k == key)
            .map_or(f64::NAN, |(_, v)| *v)
    }

    /// The record as one JSON line (keys sorted; non-finite numbers as null).
    pub fn to_json(&self) -> String {
        let mut m = Map::new();
        m.insert("epoch".into(), json!(self.epoch));
        for (k, v) in &self.metrics {
            m.insert(k.clone(), num(*v));
        }
        m.insert("lr".into(), num(self.lr));
        m.insert("train_seconds".into(), num(self.train_seconds));
        m.insert("samples_per_second".into(), num(self.samples_per_second));
        if let Some(v) = self.peak_rss_mib {
            m.insert("peak_rss_mib".into(), num(v));
        }
        Value::Object(m).to_string()
    }

    /// Read a line written by [`Record::to_json`] (null reads as NaN).
    pub fn from_json(line: &str) -> Result<Record> {
        let v: Value = serde_json::from_str(line).map_err(|e| TrainError::msg(format!("metrics.jsonl: {e}")))?;
        let f = |k: &str| v.get(k).and_then(Value::as_f64).unwrap_or(f64::NAN);
        let fixed = ["epoch", "lr", "train_seconds", "samples_per_second", "peak_rss_mib"];
        let metrics = v
            .as_object()
            .into_iter()
            .flatten()
            .filter(|(k, _)| !fixed.contains(&k.as_str()))
            .map(|(k, x)| (k.clone(), x.as_f64().unwrap_or(f64::NAN)))
            .collect();
        Ok(Record {
            epoch: v
                .get("epoch")
                .and_then(Value::as_u64)
                .ok_or_else(|| TrainError::msg("metrics.jsonl: a record has no epoch"))?,
            metrics,
            lr: f("lr"),
            train_seconds: f("train_seconds"),
            samples_per_second: f("samples_per_second"),
            peak_rss_mib: v.get("peak_rss_mib").and_then(Value::as_f64),
        })
    }

    /// The line printed after the epoch; `show` writes one metric's value (`name`, `value`).
    pub fn line(&self, epochs: u64, show: &dyn Fn(&str, f64) -> String) -> String {
        let part = |prefix: &str| -> String {
            let shown = self.metrics.iter().filter_map(|(k, v)| {
                let name = k.strip_prefix(prefix)?;
                Some(format!("{name} {}", show(name, *v)))
            });
            shown.collect::<Vec<_>>().join(" ")
        };
        format!(
            "epoch {:>w$}/{epochs}  train {}  val {}  lr {:.3e}  {:.1}s ({:.0} img/s)",
            self.epoch,
            part("train_"),
            part("val_"),
            self.lr,
            self.train_seconds,
            self.samples_per_second,
            w = epochs.to_string().len(),
        )
    }
}

/// Read the records of an earlier run in `dir` up to epoch `upto` (none if there is no file).
pub fn read_metrics(dir: &Path, upto: u64) -> Result<Vec<Record>> {
    let path = dir.join("metrics.jsonl");
    let text = match std::fs::read_to_string(&path) {
        Ok(t) => t,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(TrainError::io("read", path, e)),
    };
    let mut out = Vec::new();
    // The closing test line (see `write_test_line`) is written again when the run ends.
    for line in text
        .lines()
        .filter(|l| !l.trim().is_empty() && !l.starts_with("{\"split\""))
    {
        let r = Record::from_json(line)?;
        if r.epoch <= upto {
            out.push(r);
        }
    }
    Ok(out)
}

/// Write `metrics.jsonl` for the records so far.
pub fn write_metrics(dir: &Path, records: &[Record]) -> Result<()> {
    let mut text = String::new();
    for r in records {
        text.push_str(&r.to_json());
        text.push('\n');
    }
    write_atomic(&dir.join("metrics.jsonl"), text.as_bytes())
}

/// Append to `metrics.jsonl` the line of a closing test pass: `{"split":"test",
/// "checkpoint":..,"epoch":..,"test_<name>":..}`, after the epochs' records (which
/// [`read_metrics`] reads back without it).
pub fn write_test_line(dir: &Path, checkpoint: &str, epoch: u64, metrics: &[(String, f64)]) -> Result<()> {
    let mut m = Map::new();
    for (k, v) in metrics {
        m.insert(k.clone(), num(*v));
    }
    // Written by hand so `split` comes first: a line a reader can tell at its start.
    let body = Value::Object(m).to_string();
    let rest = body.trim_start_matches('{');
    let sep = if rest == "}" { "" } else { "," };
    let line = format!(
        "{{\"split\":\"test\",\"checkpoint\":{},\"epoch\":{epoch}{sep}{rest}\n",
        json!(checkpoint)
    );
    let path = dir.join("metrics.jsonl");
    let mut text = match std::fs::read_to_string(&path) {
        Ok(t) => t,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => String::new(),
        Err(e) => return Err(TrainError::io("read", path, e)),
    };
    text.push_str(&line);
    write_atomic(&path, text.as_bytes())
}

/// Write `bytes` to `path` through a temporary file in the same folder and a rename, so
/// the file is either the old one or complete, never half-written.
pub fn write_atomic(path: &Path, bytes: &[u8]) -> Result<()> {
    let name = path
        .file_name()
        .ok_or_else(|| TrainError::msg(format!("{}: not a file name", path.display())))?;
    let tmp = path.with_file_name(format!(".{}.{}.tmp", name.to_string_lossy(), std::process::id()));
    let written = std::fs::File::create(&tmp).and_then(|mut f| {
        f.write_all(bytes)?;
        f.sync_all()
    });
    let done = written.and_then(|()| std::fs::rename(&tmp, path));
    if let Err(e) = done {
        // Best effort: the temporary file may not exist if creating it failed.
        let _ = std::fs::remove_file(&tmp);
        return Err(TrainError::io("write", path, e));
    }
    Ok(())
}

/// Peak resident memory of this process so far, in MiB (Linux), for the epoch records.
pub fn peak_rss_mib() -> Option<f64> {
    let s = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = s.lines().find(|l| l.starts_with("VmHWM:"))?;
    let kb: f64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kb / 1024.0)
}

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

    /// This bar, drawn nowhere when `hide` (every rank but 0 of a distributed run).
    pub fn hidden(self, hide: bool) -> Progress {
        if hide {
            self.bar.set_draw_target(ProgressDrawTarget::hidden());
        }
        self
    }

    /// Advance one batch; `msg` (the running metrics, asked for only when shown) and the
    /// rate over `samples` are refreshed a few times a second.
    pub fn step(&mut self, samples: u64, msg: impl FnOnce() -> String) {
        self.bar.inc(1);
        if self.last_msg.elapsed() >= Duration::from_millis(125) && !self.bar.is_hidden() {
            self.last_msg = Instant::now();
            let rate = samples as f64 / self.start.elapsed().as_secs_f64().max(1e-9);
            self.bar.set_message(format!("{} {rate:.0} img/s", msg()));
        }
    }

    /// Remove the bar (the epoch line replaces it).
    pub fn finish(&self) {
        self.bar.finish_and_clear();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rec() -> Record {
        Record {
            epoch: 2,
            metrics: vec![
                ("train_loss".into(), 0.5),
                ("train_acc".into(), 0.8),
                ("val_loss".into(), f64::NAN),
                ("val_acc".into(), 0.75),
            ],
            lr: 0.01,
            train_seconds: 1.5,
            samples_per_second: 4000.0,
            peak_rss_mib: Some(120.5),
        }
    }

    #[test]
    fn the_test_line_follows_the_epochs_and_is_not_read_back_as_one() {
        let dir = std::env::temp_dir().join(format!("nabla-test-line-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        write_metrics(&dir, &[rec()]).unwrap();
        let m = [("test_loss".to_string(), 0.25), ("test_acc".to_string(), f64::NAN)];
        write_test_line(&dir, "best.safetensors", 2, &m).unwrap();
        let text = std::fs::read_to_string(dir.join("metrics.jsonl")).unwrap();
        let last = text.lines().nth(1).unwrap();
        assert_eq!(
            last,
            "{\"split\":\"test\",\"checkpoint\":\"best.safetensors\",\"epoch\":2,\"test_acc\":null,\"test_loss\":0.25}"
        );
        let back = read_metrics(&dir, 10).unwrap();
        assert_eq!(back.len(), 1);
        assert_eq!(back[0].to_json(), rec().to_json());
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn records_round_trip_through_json_with_sorted_keys() {
        let line = rec().to_json();
        assert!(
            line.starts_with("{\"epoch\":2,\"lr\":0.01,\"peak_rss_mib\":120.5"),
            "{line}"
        );
        assert!(
            line.contains("\"val_loss\":null") && line.contains("\"train_acc\":0.8"),
            "{line}"
        );
        let back = Record::from_json(&line).unwrap();
        assert!(back.get("val_loss").is_nan());
        assert_eq!((back.get("train_acc"), back.get("val_acc"), back.lr), (0.8, 0.75, 0.01));
        assert_eq!(back.metrics.len(), 4);
    }

    #[test]
    fn the_epoch_line_shows_train_then_val_metrics() {
        let pct = |n: &str, v: f64| {
            if n == "acc" {
                format!("{:.2}%", 100.0 * v)
            } else {
                format!("{v:.4}")
            }
        };
        assert_eq!(
            rec().line(10, &pct),
            "epoch  2/10  train loss 0.5000 acc 80.00%  val loss NaN acc 75.00%  lr 1.000e-2  1.5s (4000 img/s)"
        );
    }
}
