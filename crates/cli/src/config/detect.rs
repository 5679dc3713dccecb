//! The settings of `nabla train --task detect` beyond the common ones: the detector's
//! backbone and where its weights start from, RoI pooling or RoI align, and how real
//! photographs are cut into tiles and held out.

use super::format::{want_count, want_str, Value};
use crate::error::{CliError, CliResult};
use std::fmt::Write as _;
use std::path::PathBuf;

/// The config-file keys of the detection settings.
pub const KEYS: &[&str] = &["backbone", "backbone_from", "roi", "tile", "holdout"];

/// The backbones `--backbone` names.
pub const BACKBONES: &[&str] = &["small", "resnet18"];
/// The RoI feature extractors `--roi` names.
pub const ROIS: &[&str] = &["align", "pool"];

/// Detection settings (written to config.toml for `--task detect` runs only).
#[derive(Debug, Clone, PartialEq)]
pub struct DetectConfig {
    /// `small` (a small conv net) or `resnet18` (ResNet-18 features).
    pub backbone: String,
    /// A checkpoint or torchvision-named state dict the backbone starts from.
    pub backbone_from: Option<PathBuf>,
    /// `align` (bilinear, torchvision's default) or `pool` (Fast R-CNN's max pooling).
    pub roi: String,
    /// Cut every image into `tile × tile` pieces (real photographs larger than the model's input).
    pub tile: Option<usize>,
    /// With `voc:PATH`: the image (file stem) whose tiles validate and test; the rest train.
    pub holdout: Option<String>,
}

impl Default for DetectConfig {
    fn default() -> Self {
        DetectConfig {
            backbone: "small".into(),
            backbone_from: None,
            // torchvision's Faster R-CNN pools with RoI align (MultiScaleRoIAlign).
            roi: "align".into(),
            tile: None,
            holdout: None,
        }
    }
}

impl DetectConfig {
    /// Apply one key of [`KEYS`] from a config file.
    pub fn apply(&mut self, k: &str, v: &Value) -> CliResult<()> {
        match k {
            "backbone" => self.backbone = want_str(k, v)?,
            "backbone_from" => self.backbone_from = Some(want_str(k, v)?.into()),
            "roi" => self.roi = want_str(k, v)?,
            "tile" => self.tile = Some(want_count(k, v)?),
            "holdout" => self.holdout = Some(want_str(k, v)?),
            _ => return Err(CliError::new(format!("config: unknown key {k:?}"))),
        }
        Ok(())
    }

    /// Check the values in one line each.
    pub fn validate(&self) -> CliResult<()> {
        let one_of = |flag: &str, v: &str, known: &[&str]| {
            if known.contains(&v) {
                Ok(())
            } else {
                Err(CliError::new(format!(
                    "--{flag} {v}: unknown (known: {})",
                    known.join(", ")
                )))
            }
        };
        one_of("backbone", &self.backbone, BACKBONES)?;
        one_of("roi", &self.roi, ROIS)?;
        if self.tile == Some(0) {
            return Err(CliError::new("--tile must be at least 1 pixel"));
        }
        Ok(())
    }

    /// The settings as config-file lines.
    pub fn write_toml(&self, s: &mut String) {
        let q = |v: &str| format!("\"{}\"", v.replace('\\', "\\\\"));
        let _ = writeln!(s, "backbone = {}", q(&self.backbone));
        if let Some(p) = &self.backbone_from {
            let _ = writeln!(s, "backbone_from = {}", q(&p.to_string_lossy()));
        }
        let _ = writeln!(s, "roi = {}", q(&self.roi));
        if let Some(t) = self.tile {
            let _ = writeln!(s, "tile = {t}");
        }
        if let Some(h) = &self.holdout {
            let _ = writeln!(s, "holdout = {}", q(h));
        }
    }
}
