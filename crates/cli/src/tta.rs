//! Test-time augmentation for `nabla eval` and `nabla predict` (`--tta`): the model sees
//! several views of each image and its softmax outputs are averaged.
//!
//! - `flips`: the image and its horizontal mirror (2 views).
//! - `ten-crop`: AlexNet's ten crops. The image (already at the model's input size H×W) is
//!   resized (bilinear) to `round(H·256/224)`×`round(W·256/224)` — the ratio of ImageNet's
//!   256-pixel resize to its 224-pixel crop, 28 → 32 for Fashion-MNIST — and the H×W crops
//!   at its four corners and its centre (origin `⌊(side − crop)/2⌋`), and the mirrors of
//!   the five, are taken (10 views, in torchvision's `TenCrop` order: top-left, top-right,
//!   bottom-left, bottom-right, centre, then the same mirrored).
//! - `multiscale`: the image at scales 0.875, 1 and 1.125 of its size (3 views): shrunk
//!   (bilinear, `round(s·H)`×`round(s·W)`) and padded back to H×W centred with black (pixel
//!   value 0, normalized as the model's inputs are), or grown and centre-cropped back to
//!   H×W; the model keeps its input size.
//!
//! Views are built from the normalized images: bilinear resizing, cropping and mirroring
//! commute with the per-channel affine normalization, and padding uses the normalized black.

use crate::error::{CliError, CliResult};
use nabla_core::{no_grad, Generator, Tensor};
use nabla_data::transforms::{Image, Resize, Transform};
use nabla_nn::{Mode, Module};

/// The `--tta` names.
pub const TTAS: &[&str] = &["none", "flips", "ten-crop", "multiscale"];

/// The scales of `multiscale`.
pub const SCALES: [f64; 3] = [0.875, 1.0, 1.125];

/// A test-time augmentation.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Tta {
    /// The image as it is.
    None,
    /// The image and its horizontal mirror.
    Flips,
    /// Four corners and the centre of a 256/224 enlargement, and their mirrors.
    TenCrop,
    /// Scales 0.875, 1 and 1.125, padded or cropped back to the input size.
    Multiscale,
}

impl Tta {
    /// Parse a `--tta` value.
    pub fn parse(s: &str) -> CliResult<Tta> {
        Ok(match s {
            "none" => Tta::None,
            "flips" => Tta::Flips,
            "ten-crop" => Tta::TenCrop,
            "multiscale" => Tta::Multiscale,
            _ => {
                return Err(CliError::new(format!(
                    "--tta {s}: unknown (known: {})",
                    TTAS.join(", ")
                )))
            }
        })
    }

    /// The flag's name.
    pub fn name(self) -> &'static str {
        match self {
            Tta::None => "none",
            Tta::Flips => "flips",
            Tta::TenCrop => "ten-crop",
            Tta::Multiscale => "multiscale",
        }
    }
}

/// `[C, H, W]` values mirrored left to right.
pub fn hflip(img: &[f32], [c, h, w]: [usize; 3]) -> Vec<f32> {
    let mut out = Vec::with_capacity(c * h * w);
    for row in img.chunks_exact(w).take(c * h) {
        out.extend(row.iter().rev());
    }
    out
}

/// The `h × w` window of `[C, sh, sw]` values whose top-left pixel is `(top, left)`.
pub fn crop(img: &[f32], [c, sh, sw]: [usize; 3], (top, left): (usize, usize), [h, w]: [usize; 2]) -> Vec<f32> {
    let mut out = Vec::with_capacity(c * h * w);
    for ch in 0..c {
        for y in top..top + h {
            let row = ch * sh * sw + y * sw;
            out.extend_from_slice(&img[row + left..row + left + w]);
        }
    }
    out
}

/// The side the ten crops are cut from: `round(n · 256 / 224)`.
pub fn ten_crop_side(n: usize) -> usize {
    ((n as f64 * 256.0 / 224.0).round() as usize).max(n)
}

/// The `(top, left)` origins of the five crops of `[h, w]` in `[sh, sw]`: top-left,
/// top-right, bottom-left, bottom-right, centre.
pub fn five_origins([sh, sw]: [usize; 2], [h, w]: [usize; 2]) -> [(usize, usize); 5] {
    let (b, r) = (sh - h, sw - w);
    [(0, 0), (0, r), (b, 0), (b, r), (b / 2, r / 2)]
}

fn resize(img: &[f32], [c, h, w]: [usize; 3], to: [usize; 2]) -> CliResult<Vec<f32>> {
    let im = Image::new(img.to_vec(), [c, h, w])?;
    Ok(Resize::new(to).apply(im, &mut Generator::new(0))?.data)
}

/// The views `tta` makes of one `[C, H, W]` image (each `[C, H, W]`); `fill` is the
/// per-channel value of black padding.
pub fn views(tta: Tta, img: &[f32], [c, h, w]: [usize; 3], fill: &[f32]) -> CliResult<Vec<Vec<f32>>> {
    Ok(match tta {
        Tta::None => vec![img.to_vec()],
        Tta::Flips => vec![img.to_vec(), hflip(img, [c, h, w])],
        Tta::TenCrop => {
            let big = [ten_crop_side(h), ten_crop_side(w)];
            let src = resize(img, [c, h, w], big)?;
            let five: Vec<Vec<f32>> = five_origins(big, [h, w])
                .iter()
                .map(|&o| crop(&src, [c, big[0], big[1]], o, [h, w]))
                .collect();
            let mirrored: Vec<Vec<f32>> = five.iter().map(|v| hflip(v, [c, h, w])).collect();
            five.into_iter().chain(mirrored).collect()
        }
        Tta::Multiscale => {
            let mut out = Vec::new();
            for s in SCALES {
                let (sh, sw) = (
                    ((h as f64 * s).round() as usize).max(1),
                    ((w as f64 * s).round() as usize).max(1),
                );
                let v = resize(img, [c, h, w], [sh, sw])?;
                out.push(if sh >= h && sw >= w {
                    crop(&v, [c, sh, sw], ((sh - h) / 2, (sw - w) / 2), [h, w])
                } else {
                    pad_centred(&v, [c, sh, sw], [h, w], fill)
                });
            }
            out
        }
    })
}

/// `[C, sh, sw]` values (no larger than `h × w`) centred on an `h × w` canvas of `fill`.
fn pad_centred(img: &[f32], [c, sh, sw]: [usize; 3], [h, w]: [usize; 2], fill: &[f32]) -> Vec<f32> {
    let (top, left) = ((h - sh) / 2, (w - sw) / 2);
    let mut out = Vec::with_capacity(c * h * w);
    for ch in 0..c {
        let f = fill.get(ch).copied().unwrap_or(0.0);
        let start = out.len();
        out.resize(start + h * w, f);
        for y in 0..sh {
            let dst = start + (top + y) * w + left;
            out[dst..dst + sw].copy_from_slice(&img[ch * sh * sw + y * sw..ch * sh * sw + (y + 1) * sw]);
        }
    }
    out
}

/// The softmax of `model` over a batch `x` (`[B, C, H, W]`), averaged over the views `tta`
/// makes of each image: `B × K` probabilities, row by row.
pub fn probabilities(model: &dyn Module, x: &Tensor, tta: Tta, fill: &[f32]) -> CliResult<Vec<f32>> {
    let _guard = no_grad();
    if tta == Tta::None {
        return Ok(model.forward(x, Mode::Eval)?.softmax(1)?.to_vec_f32());
    }
    let shape = x.shape().to_vec();
    let [b, c, h, w] = shape[..] else {
        return Err(CliError::new(format!(
            "--tta takes images, not inputs of shape {shape:?}"
        )));
    };
    let data = x.to_vec_f32();
    let mut all = Vec::new();
    let mut v = 0;
    for img in data.chunks_exact(c * h * w) {
        let vs = views(tta, img, [c, h, w], fill)?;
        v = vs.len();
        all.extend(vs.into_iter().flatten());
    }
    let batch = Tensor::from_vec(all, &[b * v, c, h, w])?;
    let p = model.forward(&batch, Mode::Eval)?.softmax(1)?.to_vec_f32();
    let k = p.len() / (b * v).max(1);
    let mut out = vec![0f32; b * k];
    for (i, row) in out.chunks_exact_mut(k).enumerate() {
        for view in p[i * v * k..(i + 1) * v * k].chunks_exact(k) {
            row.iter_mut().zip(view).for_each(|(o, q)| *o += q);
        }
        row.iter_mut().for_each(|o| *o /= v as f32);
    }
    Ok(out)
}

#[cfg(test)]
#[path = "tta_tests.rs"]
mod tests;
