//! The settings of image-folder and CIFAR runs beyond the common ones: the input size,
//! the normalization, and what to do with an unreadable image.

use super::format::{want_str, Value};
use crate::error::{CliError, CliResult};
use std::fmt::Write as _;

/// The config-file keys of the image settings.
pub const KEYS: &[&str] = &["image_size", "normalize", "strict"];

/// The normalizations `--normalize` names.
pub const NORMALIZE: &[&str] = &["auto", "imagenet", "none"];

/// ImageNet's per-channel mean and std (RGB), as torchvision's pretrained models expect.
pub const IMAGENET_MEAN: [f32; 3] = [0.485, 0.456, 0.406];
/// See [`IMAGENET_MEAN`].
pub const IMAGENET_STD: [f32; 3] = [0.229, 0.224, 0.225];

/// Image settings (written to config.toml only when they differ from the defaults, so
/// other runs' files stay as they were).
#[derive(Debug, Clone, PartialEq, Default)]
pub struct ImageConfig {
    /// `[H, W]` every image is brought to (default: the first training image's size).
    pub image_size: Option<[usize; 2]>,
    /// `auto` (per-channel mean and std of the training images), `imagenet` or `none`.
    pub normalize: Option<String>,
    /// Stop at an unreadable image instead of skipping it with a warning.
    pub strict: bool,
}

/// Parse `H` or `HxW` (also `H×W`, `H,W`).
pub fn parse_size(s: &str) -> CliResult<[usize; 2]> {
    let bad = || {
        CliError::new(format!(
            "--image-size {s:?}: expected H or HxW in pixels, e.g. 64 or 48x64"
        ))
    };
    let parts: Vec<&str> = s.split(['x', 'X', '×', ',']).map(str::trim).collect();
    let num = |t: &str| t.parse::<usize>().ok().filter(|&v| (1..=16_384).contains(&v));
    match parts[..] {
        [h] => num(h).map(|h| [h, h]).ok_or_else(bad),
        [h, w] => Some([num(h).ok_or_else(bad)?, num(w).ok_or_else(bad)?]).ok_or_else(bad),
        _ => Err(bad()),
    }
}

impl ImageConfig {
    /// Apply one key of [`KEYS`] from a config file.
    pub fn apply(&mut self, k: &str, v: &Value) -> CliResult<()> {
        match (k, v) {
            ("image_size", Value::List(xs)) if xs.len() == 2 => {
                self.image_size = Some(parse_size(&format!("{}x{}", xs[0], xs[1]))?)
            }
            ("image_size", _) => return Err(CliError::new("config: image_size must be a list like [64, 64]")),
            ("normalize", _) => self.normalize = Some(want_str(k, v)?),
            ("strict", Value::Bool(b)) => self.strict = *b,
            ("strict", _) => return Err(CliError::new("config: strict must be true or false")),
            _ => return Err(CliError::new(format!("config: unknown key {k:?}"))),
        }
        Ok(())
    }

    /// The normalization in effect (`auto` unless asked).
    pub fn normalize(&self) -> &str {
        self.normalize.as_deref().unwrap_or("auto")
    }

    /// Check the values in one line each.
    pub fn validate(&self) -> CliResult<()> {
        if !NORMALIZE.contains(&self.normalize()) {
            return Err(CliError::new(format!(
                "--normalize {}: unknown (known: {})",
                self.normalize(),
                NORMALIZE.join(", ")
            )));
        }
        Ok(())
    }

    /// The settings that differ from the defaults, as config-file lines.
    pub fn write_toml(&self, s: &mut String) {
        if let Some([h, w]) = self.image_size {
            let _ = writeln!(s, "image_size = [{h}, {w}]");
        }
        if let Some(n) = &self.normalize {
            let _ = writeln!(s, "normalize = \"{n}\"");
        }
        if self.strict {
            let _ = writeln!(s, "strict = true");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_parse_as_square_or_h_by_w() {
        assert_eq!(parse_size("64").unwrap(), [64, 64]);
        assert_eq!(parse_size("48x64").unwrap(), [48, 64]);
        assert!(parse_size("0").is_err() && parse_size("4x").is_err() && parse_size("a").is_err());
    }
}
