//! The settings of `nabla train --task detect` beyond the common ones: the detector's
//! backbone and where its weights start from, RoI pooling or RoI align, and how real
//! photographs are cut into tiles and held out.

use super::format::{want_count, want_str, Value};
use crate::error::{CliError, CliResult};
use std::fmt::Write as _;
use std::path::PathBuf;

/// The config-file keys of the detection settings.
pub const KEYS: &[&str] = &[
    "backbone",
    "backbone_from",
    "roi",
    "tile",
    "holdout",
    "anchor_sizes",
    "aspect_ratios",
    "proposals",
    "detections",
    "flip",
    "small_stride",
];

/// The flips `--flip` names: none, left-right, or left-right and up-down.
pub const FLIPS: &[&str] = &["none", "h", "hv"];

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
    /// With `voc:PATH`: the image (file stem) whose tiles test; the rest train and validate.
    pub holdout: Option<String>,
    /// Anchor sides in pixels, comma-separated (default: 16,24,32,48, and 16 to 96 for
    /// `voc:` photographs).
    pub anchor_sizes: Option<String>,
    /// Anchor height/width ratios, comma-separated (default: 0.5,1,2).
    pub aspect_ratios: Option<String>,
    /// Proposals kept per image after the RPN's NMS, in training and inference, of twice as
    /// many scored before it (default: the model's 300 / 100 of 600 / 300).
    pub proposals: Option<usize>,
    /// Detections kept per image (default 100).
    pub detections: Option<usize>,
    /// Random flips of training images and their boxes: `none` (default), `h` (left-right),
    /// `hv` (left-right and up-down, for aerial photographs).
    pub flip: String,
    /// Stride of the small backbone's feature map, 4 (default) or 8 (one more stride-2 layer:
    /// each RPN cell then sees 49 pixels, not 25).
    pub small_stride: Option<usize>,
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
            anchor_sizes: None,
            aspect_ratios: None,
            proposals: None,
            detections: None,
            flip: "none".into(),
            small_stride: None,
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
            "anchor_sizes" => self.anchor_sizes = Some(want_str(k, v)?),
            "aspect_ratios" => self.aspect_ratios = Some(want_str(k, v)?),
            "proposals" => self.proposals = Some(want_count(k, v)?),
            "detections" => self.detections = Some(want_count(k, v)?),
            "flip" => self.flip = want_str(k, v)?,
            "small_stride" => self.small_stride = Some(want_count(k, v)?),
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
        one_of("flip", &self.flip, FLIPS)?;
        if self.tile == Some(0) {
            return Err(CliError::new("--tile must be at least 1 pixel"));
        }
        for (flag, v) in [("proposals", self.proposals), ("detections", self.detections)] {
            if v == Some(0) {
                return Err(CliError::new(format!("--{flag} must be at least 1")));
            }
        }
        if let Some(st) = self.small_stride.filter(|s| ![4, 8].contains(s)) {
            return Err(CliError::new(format!(
                "--small-stride {st}: the small backbone's stride is 4 or 8"
            )));
        }
        self.anchors()?;
        Ok(())
    }

    /// The anchor sizes and ratios the flags give, each `None` when not given.
    pub fn anchors(&self) -> CliResult<(Option<List>, Option<List>)> {
        Ok((
            parse_list("anchor-sizes", self.anchor_sizes.as_deref())?,
            parse_list("aspect-ratios", self.aspect_ratios.as_deref())?,
        ))
    }
}

/// Numbers a flag lists.
pub type List = Vec<f32>;

/// A comma-separated list of positive numbers (`16,24,32`), or an error naming the flag.
pub fn parse_list(flag: &str, v: Option<&str>) -> CliResult<Option<List>> {
    let Some(v) = v else {
        return Ok(None);
    };
    let bad = || {
        CliError::new(format!(
            "--{flag} {v}: want positive numbers separated by commas, like 16,24,32"
        ))
    };
    let list = v
        .split(',')
        .map(|p| p.trim().parse::<f32>().ok().filter(|x| x.is_finite() && *x > 0.0))
        .collect::<Option<Vec<f32>>>()
        .ok_or_else(bad)?;
    if list.is_empty() {
        return Err(bad());
    }
    Ok(Some(list))
}

impl DetectConfig {
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
        for (k, v) in [
            ("anchor_sizes", &self.anchor_sizes),
            ("aspect_ratios", &self.aspect_ratios),
        ] {
            if let Some(v) = v {
                let _ = writeln!(s, "{k} = {}", q(v));
            }
        }
        for (k, v) in [
            ("proposals", self.proposals),
            ("detections", self.detections),
            ("small_stride", self.small_stride),
        ] {
            if let Some(v) = v {
                let _ = writeln!(s, "{k} = {v}");
            }
        }
        let _ = writeln!(s, "flip = {}", q(&self.flip));
    }
}
