//! The pictures of a GAN run: a grid of samples per epoch and `curves.png` (both losses,
//! both mean discriminator outputs, and the FID when it is measured).

use crate::error::{CliError, CliResult};
use crate::plot::{curves_png, grid_png, GridOptions, Series};
use nabla_core::Tensor;
use nabla_nn::loss::GanLoss;
use nabla_train::Record;
use std::path::Path;

/// Write generated images (values in [-1, 1]) as an 8-wide grid PNG titled `title`,
/// making the folder it goes in.
pub fn write_samples(path: &Path, images: &Tensor, title: &str) -> CliResult<()> {
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir).map_err(|e| CliError::io("create output directory", dir, e))?;
    }
    let unit = images.add_scalar(1.0)?.mul_scalar(0.5)?;
    let o = GridOptions {
        title: title.to_string(),
        ..Default::default()
    };
    grid_png(path, &unit, &o)
}

/// Write `curves.png`: D and G loss, mean D(x) and D(G(z)), and FID if measured.
pub fn write_curves(dir: &Path, records: &[Record], loss: GanLoss) -> CliResult<()> {
    let series = |name: &str, color, key: &str| Series {
        name: name.to_string(),
        color,
        points: records.iter().map(|r| (r.epoch as f64, r.get(key))).collect(),
    };
    let (d_c, g_c) = ([214, 39, 40], [31, 119, 180]);
    let losses = vec![series("D", d_c, "train_d_loss"), series("G", g_c, "train_g_loss")];
    let means = vec![series("D(x)", d_c, "train_d_x"), series("D(G(z))", g_c, "train_d_g_z")];
    let means_label = match loss {
        GanLoss::WganGp => "mean critic score",
        _ => "mean D probability",
    };
    let mut panels = vec![("losses", "loss", losses), ("discriminator", means_label, means)];
    if records.iter().any(|r| r.get("val_fid").is_finite()) {
        panels.push((
            "FID (lower is better)",
            "FID",
            vec![series("FID", [44, 160, 44], "val_fid")],
        ));
    }
    curves_png(&dir.join("curves.png"), &panels)
}
