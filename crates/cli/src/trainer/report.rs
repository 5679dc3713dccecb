//! The pictures a supervised run leaves behind: `curves.png` after every epoch and
//! `confusion.png` at the end (the engine writes the epoch line and `metrics.jsonl`).

use crate::error::CliResult;
use crate::metrics::{metric_name, Confusion};
use crate::plot::{confusion_png, curves_png, Series};
use nabla_train::Record;
use std::path::Path;

/// Write `curves.png`: loss, and accuracy or RMSE, against epoch.
pub fn write_curves(dir: &Path, records: &[Record], regression: bool) -> CliResult<()> {
    let series = |name: &str, color, key: &str| Series {
        name: name.to_string(),
        color,
        points: records.iter().map(|r| (r.epoch as f64, r.get(key))).collect(),
    };
    let (train_c, val_c) = ([31, 119, 180], [214, 39, 40]);
    let loss = vec![
        series("train", train_c, "train_loss"),
        series("validation", val_c, "val_loss"),
    ];
    let (title, label, scale) = if regression {
        ("RMSE", "rmse", 1.0)
    } else {
        ("accuracy", "accuracy (%)", 100.0)
    };
    let m = metric_name(regression);
    let mut metric = vec![
        series("train", train_c, &format!("train_{m}")),
        series("validation", val_c, &format!("val_{m}")),
    ];
    for s in &mut metric {
        s.points.iter_mut().for_each(|(_, y)| *y *= scale);
    }
    curves_png(
        &dir.join("curves.png"),
        &[("loss", "loss", loss), (title, label, metric)],
    )
}

/// Write `confusion.png`.
pub fn write_confusion(dir: &Path, m: &Confusion, classes: &[String], title: &str) -> CliResult<()> {
    confusion_png(&dir.join("confusion.png"), m, classes, title)
}
