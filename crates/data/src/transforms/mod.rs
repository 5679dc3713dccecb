//! Image transforms and augmentation on plain C×H×W f32 buffers, seeded and reproducible.
//!
//! ```
//! use nabla_data::transforms::{Compose, Image, Normalize, RandomCrop, RandomHorizontalFlip, Transform};
//! use nabla_core::Generator;
//! let t = Compose::new(vec![
//!     Box::new(RandomCrop::new([28, 28], 4)),
//!     Box::new(RandomHorizontalFlip::new(0.5)),
//!     Box::new(Normalize::new(vec![0.2860], vec![0.3530])?),
//! ]);
//! let img = Image::new(vec![0.5; 28 * 28], [1, 28, 28])?;
//! let a = t.apply(img.clone(), &mut Generator::new(3))?;
//! let b = t.apply(img, &mut Generator::new(3))?;
//! assert_eq!(a, b); // same generator state, same augmentation
//! # Ok::<(), nabla_data::DataError>(())
//! ```
//!
//! Each transform takes the image by value and may reuse its buffer. Random transforms draw a
//! fixed number of values from the generator whatever they decide, so that one transform's
//! choices never shift the next one's stream.

mod geometry;

pub use geometry::{CenterCrop, RandomAffine, RandomCrop, Resize};

use crate::{DataError, Result};
use nabla_core::Generator;

/// An image: `channels × height × width` f32 values in row-major order.
#[derive(Debug, Clone, PartialEq)]
pub struct Image {
    /// The values, plane by plane.
    pub data: Vec<f32>,
    /// The number of channel planes.
    pub channels: usize,
    /// Rows per plane.
    pub height: usize,
    /// Columns per row.
    pub width: usize,
}

impl Image {
    /// An image from values and `[C, H, W]`; the length must match.
    pub fn new(data: Vec<f32>, chw: [usize; 3]) -> Result<Self> {
        let [channels, height, width] = chw;
        let n = channels.checked_mul(height).and_then(|v| v.checked_mul(width));
        if n != Some(data.len()) {
            return Err(DataError::invalid(
                "Image::new",
                format!("{} values cannot fill an image of {chw:?}", data.len()),
            ));
        }
        Ok(Image {
            data,
            channels,
            height,
            width,
        })
    }

    /// `[C, H, W]`.
    pub fn shape(&self) -> [usize; 3] {
        [self.channels, self.height, self.width]
    }
}

/// A step of an image pipeline; `rng` supplies any randomness it needs.
pub trait Transform: Send + Sync {
    /// Transform one image.
    fn apply(&self, img: Image, rng: &mut Generator) -> Result<Image>;
}

/// Transforms applied in order.
pub struct Compose {
    steps: Vec<Box<dyn Transform>>,
}

impl Compose {
    /// A pipeline of `steps`.
    pub fn new(steps: Vec<Box<dyn Transform>>) -> Self {
        Compose { steps }
    }
}

impl Transform for Compose {
    fn apply(&self, mut img: Image, rng: &mut Generator) -> Result<Image> {
        for s in &self.steps {
            img = s.apply(img, rng)?;
        }
        Ok(img)
    }
}

/// `(x - mean[c]) / std[c]` per channel (one value applies to every channel).
#[derive(Debug, Clone, PartialEq)]
pub struct Normalize {
    mean: Vec<f32>,
    inv_std: Vec<f32>,
}

impl Normalize {
    /// Per-channel mean and standard deviation; every std must be finite and non-zero.
    pub fn new(mean: Vec<f32>, std: Vec<f32>) -> Result<Self> {
        if mean.is_empty() || mean.len() != std.len() {
            return Err(DataError::invalid(
                "Normalize",
                format!(
                    "{} means and {} stds; need the same non-zero number",
                    mean.len(),
                    std.len()
                ),
            ));
        }
        if let Some(s) = std.iter().find(|s| !s.is_finite() || **s == 0.0) {
            return Err(DataError::invalid(
                "Normalize",
                format!("std {s} is zero or not finite"),
            ));
        }
        Ok(Normalize {
            mean,
            inv_std: std.iter().map(|s| 1.0 / s).collect(),
        })
    }
}

impl Transform for Normalize {
    fn apply(&self, mut img: Image, _rng: &mut Generator) -> Result<Image> {
        let k = self.mean.len();
        if k != 1 && k != img.channels {
            return Err(DataError::invalid(
                "Normalize",
                format!("{k} means for an image of {} channels", img.channels),
            ));
        }
        let plane = img.height * img.width;
        if plane == 0 {
            return Ok(img);
        }
        for (c, p) in img.data.chunks_exact_mut(plane).enumerate() {
            let (m, s) = if k == 1 {
                (self.mean[0], self.inv_std[0])
            } else {
                (self.mean[c], self.inv_std[c])
            };
            p.iter_mut().for_each(|x| *x = (*x - m) * s);
        }
        Ok(img)
    }
}

/// A probability clamped to [0, 1]; NaN becomes 0 (never apply).
fn clamp_p(p: f64) -> f64 {
    if p.is_nan() {
        0.0
    } else {
        p.clamp(0.0, 1.0)
    }
}

/// Mirror left–right with probability `p`.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct RandomHorizontalFlip {
    p: f64,
}

impl RandomHorizontalFlip {
    /// Flip with probability `p` (clamped to [0, 1]).
    pub fn new(p: f64) -> Self {
        RandomHorizontalFlip { p: clamp_p(p) }
    }
}

impl Transform for RandomHorizontalFlip {
    fn apply(&self, mut img: Image, rng: &mut Generator) -> Result<Image> {
        if rng.uniform() < self.p && img.width > 0 {
            img.data.chunks_exact_mut(img.width).for_each(|row| row.reverse());
        }
        Ok(img)
    }
}

/// Mirror top–bottom with probability `p`.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct RandomVerticalFlip {
    p: f64,
}

impl RandomVerticalFlip {
    /// Flip with probability `p` (clamped to [0, 1]).
    pub fn new(p: f64) -> Self {
        RandomVerticalFlip { p: clamp_p(p) }
    }
}

impl Transform for RandomVerticalFlip {
    fn apply(&self, mut img: Image, rng: &mut Generator) -> Result<Image> {
        let (h, w) = (img.height, img.width);
        if rng.uniform() < self.p && h * w > 0 {
            for plane in img.data.chunks_exact_mut(h * w) {
                for y in 0..h / 2 {
                    let (top, bottom) = plane.split_at_mut((h - 1 - y) * w);
                    top[y * w..(y + 1) * w].swap_with_slice(&mut bottom[..w]);
                }
            }
        }
        Ok(img)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn img(c: usize, h: usize, w: usize) -> Image {
        Image::new((0..c * h * w).map(|v| v as f32).collect(), [c, h, w]).unwrap()
    }

    #[test]
    fn normalize_per_channel_and_broadcast() {
        let mut g = Generator::new(0);
        let n = Normalize::new(vec![1.0, 2.0], vec![2.0, 4.0]).unwrap();
        let out = n.apply(img(2, 1, 2), &mut g).unwrap();
        assert_eq!(out.data, vec![-0.5, 0.0, 0.0, 0.25]);
        let n = Normalize::new(vec![1.0], vec![0.5]).unwrap();
        assert_eq!(n.apply(img(2, 1, 1), &mut g).unwrap().data, vec![-2.0, 0.0]);
        assert!(Normalize::new(vec![0.0], vec![0.0]).is_err());
        assert!(Normalize::new(vec![0.0, 1.0], vec![1.0]).is_err());
        let three = Normalize::new(vec![0.0; 3], vec![1.0; 3]).unwrap();
        assert!(three.apply(img(2, 1, 1), &mut g).is_err());
    }

    #[test]
    fn flips_mirror_each_plane() {
        let mut g = Generator::new(0);
        let h = RandomHorizontalFlip::new(1.0).apply(img(1, 2, 3), &mut g).unwrap();
        assert_eq!(h.data, vec![2.0, 1.0, 0.0, 5.0, 4.0, 3.0]);
        let v = RandomVerticalFlip::new(1.0).apply(img(2, 3, 1), &mut g).unwrap();
        assert_eq!(v.data, vec![2.0, 1.0, 0.0, 5.0, 4.0, 3.0]);
        let none = RandomHorizontalFlip::new(0.0).apply(img(1, 2, 3), &mut g).unwrap();
        assert_eq!(none, img(1, 2, 3));
    }

    #[test]
    fn flip_rate_follows_p_and_seed() {
        let t = RandomHorizontalFlip::new(0.3);
        let mut g = Generator::new(11);
        let flips = (0..10_000)
            .filter(|_| t.apply(img(1, 1, 2), &mut g).unwrap().data[0] == 1.0)
            .count();
        assert!((2_800..3_200).contains(&flips), "{flips}");
    }
}
