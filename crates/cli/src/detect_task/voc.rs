//! Pascal VOC photographs for `--task detect` (`--data voc:PATH`): one image (`--holdout
//! NAME`, default the last by name) tests, the others train and validate; with `--tile N`
//! every image is cut into N×N tiles (training tiles overlap by half a tile, the held-out
//! image's tiles do not, so each of its pixels is scored once), keeping a box when at least
//! half of it is inside a tile.
//!
//! Validation never sees the test image, so the best checkpoint is not chosen on the test
//! set. With tiles, the bottom [`VAL_FRACTION`] of every training image at least two tiles
//! taller than that band (whole tile rows, at least one; `--val-fraction` sets the share)
//! validates, cut into tiles that do not overlap; training tiles lie wholly above the band, so
//! no pixel is in both (a tree across the band's edge can be in both, cut in two). A band
//! rather than a random draw of tiles, because the training tiles overlap by half: a drawn
//! tile's neighbours would hold most of its pixels. Without tiles the last training images by
//! name validate (`--val-size`, default one). `--val-size 0` trains without validation.

use super::data::{finish, DetData, Pick};
use crate::config::TrainConfig;
use crate::error::{CliError, CliResult};
use nabla_data::detection::{read_voc, DetectionSet, Tiles};
use std::path::Path;
use std::sync::Arc;

/// The share of a box that must lie inside a tile for the tile to hold it.
pub const MIN_VISIBLE: f32 = 0.5;

/// The share of each training image's height that validates when `--val-fraction` does not say.
pub const VAL_FRACTION: f64 = 0.125;

/// The row from which training image `[h, w]` validates: the bottom `share` of it in whole
/// rows of `tile` pixels (at least one), when the image is at least one tile taller than that.
pub fn band_start(h: usize, tile: usize, share: f64) -> Option<usize> {
    let rows = ((h as f64 * share / tile as f64).round() as usize).max(1);
    (h >= (rows + 1) * tile).then(|| h - rows * tile)
}

/// Training tiles (overlapping by half) above each image's validation band, and validation
/// tiles (not overlapping) inside it.
pub fn split_tiles(
    train: Arc<dyn DetectionSet>,
    t: usize,
    share: f64,
) -> CliResult<(Arc<dyn DetectionSet>, Arc<dyn DetectionSet>)> {
    let stride = (t / 2).max(1);
    let dense = Tiles::new(train.clone(), [t, t], [stride, stride], MIN_VISIBLE)?;
    let apart = Tiles::new(train.clone(), [t, t], [t, t], MIN_VISIBLE)?;
    let bands = (0..train.len())
        .map(|i| Ok(band_start(train.image_size(i)?[0], t, share)))
        .collect::<CliResult<Vec<_>>>()?;
    let pick = |tiles: &Tiles, keep: &dyn Fn(Option<usize>, usize) -> bool| -> CliResult<Vec<usize>> {
        let mut out = Vec::new();
        for k in 0..tiles.len() {
            let (image, [y, _]) = tiles.origin(k)?;
            if keep(bands[image], y) {
                out.push(k);
            }
        }
        Ok(out)
    };
    let train_idx = pick(&dense, &|band, y| band.is_none_or(|b| y + t <= b))?;
    let val_idx = pick(&apart, &|band, y| band.is_some_and(|b| y >= b))?;
    if val_idx.is_empty() {
        return Err(CliError::new(format!(
            "--holdout: no training image is two {t}-pixel tiles tall, so none can give validation tiles; train without validation with --val-size 0"
        )));
    }
    Ok((Pick::of(Arc::new(dense), train_idx), Pick::of(Arc::new(apart), val_idx)))
}

/// Load `voc:PATH` as the configuration says.
pub fn load(cfg: &TrainConfig, path: &Path) -> CliResult<DetData> {
    let origin = format!("voc:{}", path.display());
    if !path.is_dir() {
        return Err(CliError::new(format!("--data {origin}: no such folder")));
    }
    let set = read_voc(path, None)?;
    let stems: Vec<String> = set
        .files()
        .iter()
        .map(|f| {
            f.file_stem()
                .map_or(String::new(), |s| s.to_string_lossy().into_owned())
        })
        .collect();
    if stems.len() < 2 {
        return Err(CliError::new(format!(
            "--data {origin}: {} annotated image(s); one trains and another is held out, so at least 2 are needed",
            stems.len()
        )));
    }
    let held = match &cfg.detect.holdout {
        Some(h) => h.clone(),
        None => stems.iter().max().cloned().unwrap_or_default(),
    };
    let (train, test) = set
        .hold_out(&[held.as_str()])
        .map_err(|e| CliError::new(format!("--holdout {held}: {e}")))?;
    let (train, test): (Arc<dyn DetectionSet>, Arc<dyn DetectionSet>) = (Arc::new(train), Arc::new(test));
    let validate = cfg.val_size != Some(0);
    let (train, val, test, how) = match cfg.detect.tile {
        Some(t) => {
            if cfg.val_size.is_some_and(|k| k > 0) {
                return Err(CliError::new(
                    "--val-size counts images; with --tile a band of each training image validates: set its share with --val-fraction (or --val-size 0 for none)",
                ));
            }
            let te: Arc<dyn DetectionSet> = Arc::new(Tiles::new(test, [t, t], [t, t], MIN_VISIBLE)?);
            let share = cfg.val_fraction.unwrap_or(VAL_FRACTION);
            let (tr, val, how) = if validate {
                let (tr, val) = split_tiles(train, t, share)?;
                let how = format!(
                    "{t}×{t} tiles; the tiles of {held} held out to test, the bottom {:.1}% of the other images (whole tile rows) to validate",
                    share * 100.0
                );
                (tr, Some(val), how)
            } else {
                let stride = (t / 2).max(1);
                let tr: Arc<dyn DetectionSet> = Arc::new(Tiles::new(train, [t, t], [stride, stride], MIN_VISIBLE)?);
                (tr, None, format!("{t}×{t} tiles; the tiles of {held} held out to test"))
            };
            (tr, val, te, how)
        }
        None => {
            let n = train.len();
            let n_val = if validate { cfg.val_size.unwrap_or(1) } else { 0 };
            if n_val >= n {
                return Err(CliError::new(format!(
                    "--data {origin}: {n} training image(s) cannot also give {n_val} to validate; cut them into tiles with --tile N or set --val-size 0"
                )));
            }
            let val = (n_val > 0).then(|| Pick::range(&train, n - n_val, n_val));
            let how = format!("{held} held out to test, {n_val} training image(s) to validate");
            (Pick::range(&train, 0, n - n_val), val, test, how)
        }
    };
    finish(train, val, test, origin, how)
}
