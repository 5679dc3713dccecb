//! Upsample: nearest or bilinear resizing of `[N, C, H, W]` images.

use crate::module::{expect_rank, Mode, Module};
use crate::{Error, Result};
use nabla_core::Tensor;

/// How [`Upsample`] fills the new pixels.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum UpsampleMode {
    /// Copy the nearest source pixel (PyTorch's `"nearest"`).
    Nearest,
    /// Interpolate the four nearest source pixels (PyTorch's `"bilinear"`); with
    /// `align_corners` the corner pixels of input and output line up exactly.
    Bilinear {
        /// PyTorch's `align_corners` (default false).
        align_corners: bool,
    },
}

/// Resizes images to a fixed `size`, or by a `scale_factor` (output side =
/// ⌊side · scale⌋). The source position of each output pixel is computed from the input and
/// output sizes, which is PyTorch's result for whole-number scale factors.
#[derive(Debug, Clone, Copy)]
pub struct Upsample {
    /// Output `[H, W]`, if fixed.
    pub size: Option<[usize; 2]>,
    /// Per-side scale, used when `size` is `None`.
    pub scale_factor: Option<[f64; 2]>,
    /// Nearest or bilinear.
    pub mode: UpsampleMode,
}

impl Upsample {
    /// Resize to `[h, w]`.
    pub fn with_size(size: [usize; 2], mode: UpsampleMode) -> Self {
        Upsample {
            size: Some(size),
            scale_factor: None,
            mode,
        }
    }

    /// Scale both sides by `scale`.
    pub fn with_scale(scale: f64, mode: UpsampleMode) -> Self {
        Upsample {
            size: None,
            scale_factor: Some([scale, scale]),
            mode,
        }
    }

    fn output_size(&self, x: &Tensor) -> Result<[usize; 2]> {
        if let Some(s) = self.size {
            return Ok(s);
        }
        let Some(f) = self.scale_factor else {
            return Err(Error::Config("Upsample: give a size or a scale factor".into()));
        };
        if f.iter().any(|s| !(s.is_finite() && *s > 0.0)) {
            return Err(Error::Config(format!("Upsample: scale factor {f:?} must be positive")));
        }
        let side = |d: usize| (x.shape()[2 + d] as f64 * f[d]).floor() as usize;
        Ok([side(0), side(1)])
    }
}

impl Module for Upsample {
    fn forward(&self, x: &Tensor, _mode: Mode) -> Result<Tensor> {
        expect_rank("Upsample", x, &[4])?;
        let size = self.output_size(x)?;
        Ok(match self.mode {
            UpsampleMode::Nearest => x.upsample_nearest2d(size)?,
            UpsampleMode::Bilinear { align_corners } => x.upsample_bilinear2d(size, align_corners)?,
        })
    }
}
