//! Pascal VOC photographs for `--task detect` (`--data voc:PATH`): one image (`--holdout
//! NAME`, default the last by name) validates and tests, the others train; with `--tile N`
//! every image is cut into N×N tiles (training tiles overlap by half a tile, the held-out
//! image's tiles do not, so each of its pixels is scored once), keeping a box when at least
//! half of it is inside a tile.

use super::data::{finish, DetData};
use crate::config::TrainConfig;
use crate::error::{CliError, CliResult};
use nabla_data::detection::{read_voc, DetectionSet, Tiles};
use std::path::Path;
use std::sync::Arc;

/// The share of a box that must lie inside a tile for the tile to hold it.
pub const MIN_VISIBLE: f32 = 0.5;

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
    let (train, test, how) = match cfg.detect.tile {
        Some(t) => {
            let stride = (t / 2).max(1);
            let tr: Arc<dyn DetectionSet> = Arc::new(Tiles::new(train, [t, t], [stride, stride], MIN_VISIBLE)?);
            let te: Arc<dyn DetectionSet> = Arc::new(Tiles::new(test, [t, t], [t, t], MIN_VISIBLE)?);
            let how = format!("{t}×{t} tiles; the tiles of {held} held out to validate and test");
            (tr, te, how)
        }
        None => (train, test, format!("{held} held out to validate and test")),
    };
    finish(train, test, origin, how)
}
