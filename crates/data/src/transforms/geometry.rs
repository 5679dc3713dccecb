//! Geometric transforms: crops (random, with padding, and centred), bilinear resize, random affine.

use super::{Image, Transform};
use crate::{DataError, Result};
use nabla_core::Generator;

fn check_size(op: &'static str, size: [usize; 2]) -> Result<()> {
    if size[0] == 0 || size[1] == 0 {
        return Err(DataError::invalid(op, format!("output size {size:?} has a zero side")));
    }
    Ok(())
}

/// The `h × w` window whose top-left corner is at (`top`, `left`) of the image; places outside
/// the image (negative offsets, or past the edge) read as `fill`.
fn crop_at(img: &Image, top: isize, left: isize, h: usize, w: usize, fill: f32) -> Image {
    let (ih, iw) = (img.height as isize, img.width as isize);
    let mut out = vec![fill; img.channels * h * w];
    // The columns of the window that land inside the image, found once for all rows.
    let x0 = (-left).clamp(0, w as isize) as usize;
    let x1 = (iw - left).clamp(0, w as isize) as usize;
    for c in 0..img.channels {
        let src = &img.data[c * img.height * img.width..(c + 1) * img.height * img.width];
        let dst = &mut out[c * h * w..(c + 1) * h * w];
        for y in 0..h {
            let sy = top + y as isize;
            if sy < 0 || sy >= ih || x0 >= x1 {
                continue;
            }
            let row = sy as usize * img.width;
            let sx0 = (left + x0 as isize) as usize;
            dst[y * w + x0..y * w + x1].copy_from_slice(&src[row + sx0..row + sx0 + (x1 - x0)]);
        }
    }
    Image {
        data: out,
        channels: img.channels,
        height: h,
        width: w,
    }
}

/// A random `size` window of the image padded by `padding` on every side (torchvision's
/// `RandomCrop(size, padding)`, zero fill).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct RandomCrop {
    size: [usize; 2],
    padding: usize,
}

impl RandomCrop {
    /// Crop to `size` = [H, W] after padding each side with `padding` zeros.
    pub fn new(size: [usize; 2], padding: usize) -> Self {
        RandomCrop { size, padding }
    }
}

impl Transform for RandomCrop {
    fn apply(&self, img: Image, rng: &mut Generator) -> Result<Image> {
        check_size("RandomCrop", self.size)?;
        let [h, w] = self.size;
        let (ph, pw) = (img.height + 2 * self.padding, img.width + 2 * self.padding);
        if h > ph || w > pw {
            return Err(DataError::invalid(
                "RandomCrop",
                format!(
                    "crop {:?} is larger than the padded image {ph}×{pw} (image {:?}, padding {})",
                    self.size,
                    img.shape(),
                    self.padding
                ),
            ));
        }
        let top = rng.below((ph - h + 1) as u64) as isize - self.padding as isize;
        let left = rng.below((pw - w + 1) as u64) as isize - self.padding as isize;
        Ok(crop_at(&img, top, left, h, w, 0.0))
    }
}

/// The central `size` window (zero-padded where the image is smaller), as torchvision rounds it.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct CenterCrop {
    size: [usize; 2],
}

impl CenterCrop {
    /// Crop to `size` = [H, W].
    pub fn new(size: [usize; 2]) -> Self {
        CenterCrop { size }
    }
}

impl Transform for CenterCrop {
    fn apply(&self, img: Image, _rng: &mut Generator) -> Result<Image> {
        check_size("CenterCrop", self.size)?;
        let [h, w] = self.size;
        // Python's round() (ties to even), as torchvision computes the offsets.
        let top = ((img.height as f64 - h as f64) / 2.0).round_ties_even() as isize;
        let left = ((img.width as f64 - w as f64) / 2.0).round_ties_even() as isize;
        Ok(crop_at(&img, top, left, h, w, 0.0))
    }
}

/// Bilinear resize to `size` (half-pixel centres, PyTorch's `align_corners=False`, no antialias).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Resize {
    size: [usize; 2],
}

impl Resize {
    /// Resize to `size` = [H, W].
    pub fn new(size: [usize; 2]) -> Self {
        Resize { size }
    }
}

/// For each output index: the two source indices and the weight of the second.
fn taps(out: usize, src: usize) -> Vec<(usize, usize, f32)> {
    let scale = src as f64 / out as f64;
    (0..out)
        .map(|i| {
            let s = ((i as f64 + 0.5) * scale - 0.5).max(0.0);
            let i0 = (s.floor() as usize).min(src - 1);
            let i1 = (i0 + 1).min(src - 1);
            (i0, i1, (s - i0 as f64) as f32)
        })
        .collect()
}

impl Transform for Resize {
    fn apply(&self, img: Image, _rng: &mut Generator) -> Result<Image> {
        check_size("Resize", self.size)?;
        let [h, w] = self.size;
        if img.height == 0 || img.width == 0 {
            return Err(DataError::invalid(
                "Resize",
                format!("cannot resize an empty image {:?}", img.shape()),
            ));
        }
        if (h, w) == (img.height, img.width) {
            return Ok(img);
        }
        let (ty, tx) = (taps(h, img.height), taps(w, img.width));
        let plane = img.height * img.width;
        let mut out = vec![0f32; img.channels * h * w];
        for c in 0..img.channels {
            let src = &img.data[c * plane..(c + 1) * plane];
            let dst = &mut out[c * h * w..(c + 1) * h * w];
            for (y, &(y0, y1, ly)) in ty.iter().enumerate() {
                let (r0, r1) = (&src[y0 * img.width..], &src[y1 * img.width..]);
                for (x, &(x0, x1, lx)) in tx.iter().enumerate() {
                    let top = r0[x0] + (r0[x1] - r0[x0]) * lx;
                    let bottom = r1[x0] + (r1[x1] - r1[x0]) * lx;
                    dst[y * w + x] = top + (bottom - top) * ly;
                }
            }
        }
        Ok(Image {
            data: out,
            channels: img.channels,
            height: h,
            width: w,
        })
    }
}

/// A random rotation about the centre and a random translation, nearest-neighbour sampled,
/// with `fill` where the source falls outside (torchvision's `RandomAffine(degrees, translate)`).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct RandomAffine {
    degrees: f64,
    translate: [f64; 2],
    fill: f32,
}

impl RandomAffine {
    /// Rotate by an angle uniform in [−degrees, degrees] (counter-clockwise positive) and shift
    /// by up to `translate` = [fraction of width, fraction of height], rounded to whole pixels.
    pub fn new(degrees: f64, translate: [f64; 2]) -> Result<Self> {
        if !degrees.is_finite() || degrees < 0.0 {
            return Err(DataError::invalid(
                "RandomAffine",
                format!("degrees {degrees} must be ≥ 0"),
            ));
        }
        if translate.iter().any(|t| !(0.0..=1.0).contains(t)) {
            return Err(DataError::invalid(
                "RandomAffine",
                format!("translate {translate:?} must lie in [0, 1]"),
            ));
        }
        Ok(RandomAffine {
            degrees,
            translate,
            fill: 0.0,
        })
    }

    /// The value for places that map outside the image.
    pub fn with_fill(mut self, fill: f32) -> Self {
        self.fill = fill;
        self
    }

    /// Apply a given rotation (degrees) and translation (pixels): the deterministic core.
    pub fn apply_params(&self, img: &Image, angle_deg: f64, tx: f64, ty: f64) -> Image {
        let (h, w) = (img.height, img.width);
        let (cy, cx) = ((h as f64 - 1.0) / 2.0, (w as f64 - 1.0) / 2.0);
        let (sin, cos) = angle_deg.to_radians().sin_cos();
        let plane = h * w;
        let mut out = vec![self.fill; img.data.len()];
        // Source coordinates in 32.32 fixed point: along a row they move by (cos, sin) per pixel,
        // so the inner loop is integer adds and shifts (the accumulated error stays below
        // 2^-20 of a pixel for any image that fits memory).
        const ONE: f64 = (1u64 << 32) as f64;
        let fixed = |v: f64| (v * ONE).round() as i64;
        let half = 1i64 << 31;
        let (step_x, step_y) = (fixed(cos), fixed(sin));
        for y in 0..h {
            // Invert x' = c + R(x − c) + t, with y pointing down so that a positive angle
            // turns the picture counter-clockwise on screen.
            let dy = y as f64 - cy - ty;
            let dx0 = -cx - tx;
            let mut sx = fixed(cx + cos * dx0 - sin * dy) + half;
            let mut sy = fixed(cy + sin * dx0 + cos * dy) + half;
            for x in 0..w {
                let (ix, iy) = ((sx >> 32) as u64, (sy >> 32) as u64);
                sx += step_x;
                sy += step_y;
                // A negative coordinate wraps to a huge u64, so one compare checks both ends.
                if ix >= w as u64 || iy >= h as u64 {
                    continue;
                }
                let src = iy as usize * w + ix as usize;
                for c in 0..img.channels {
                    out[c * plane + y * w + x] = img.data[c * plane + src];
                }
            }
        }
        Image {
            data: out,
            channels: img.channels,
            height: h,
            width: w,
        }
    }
}

impl Transform for RandomAffine {
    fn apply(&self, img: Image, rng: &mut Generator) -> Result<Image> {
        let angle = (2.0 * rng.uniform() - 1.0) * self.degrees;
        let tx = ((2.0 * rng.uniform() - 1.0) * self.translate[0] * img.width as f64).round();
        let ty = ((2.0 * rng.uniform() - 1.0) * self.translate[1] * img.height as f64).round();
        Ok(self.apply_params(&img, angle, tx, ty))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ramp(c: usize, h: usize, w: usize) -> Image {
        Image::new((0..c * h * w).map(|v| v as f32).collect(), [c, h, w]).unwrap()
    }

    #[test]
    fn crop_at_pads_with_fill() {
        let img = ramp(1, 2, 2); // [[0,1],[2,3]]
        let out = crop_at(&img, -1, -1, 3, 3, 9.0);
        assert_eq!(out.data, vec![9.0, 9.0, 9.0, 9.0, 0.0, 1.0, 9.0, 2.0, 3.0]);
        let out = crop_at(&img, 1, 1, 2, 2, 0.0);
        assert_eq!(out.data, vec![3.0, 0.0, 0.0, 0.0]);
        let out = crop_at(&img, 5, 5, 1, 1, 7.0);
        assert_eq!(out.data, vec![7.0]);
    }

    #[test]
    fn random_crop_covers_every_offset_and_keeps_content() {
        let img = ramp(2, 4, 4);
        let t = RandomCrop::new([4, 4], 1);
        let mut g = Generator::new(5);
        let mut seen = std::collections::HashSet::new();
        for _ in 0..400 {
            let out = t.apply(img.clone(), &mut g).unwrap();
            assert_eq!(out.shape(), [2, 4, 4]);
            // Every crop is the padded image shifted by (dy, dx) in {-1, 0, 1}²; find which.
            let hit = (-1..=1)
                .flat_map(|dy| (-1..=1).map(move |dx| (dy, dx)))
                .find(|&(dy, dx)| crop_at(&img, dy, dx, 4, 4, 0.0) == out);
            seen.insert(hit.expect("a crop that is no shift of the padded image"));
        }
        assert_eq!(seen.len(), 9);
        assert!(RandomCrop::new([7, 7], 1).apply(img, &mut g).is_err());
    }

    #[test]
    fn center_crop_matches_torchvision_rounding() {
        let mut g = Generator::new(0);
        // 5×5 → 2×3: top = round(1.5) = 2, left = round(1) = 1.
        let out = CenterCrop::new([2, 3]).apply(ramp(1, 5, 5), &mut g).unwrap();
        assert_eq!(out.data, vec![11.0, 12.0, 13.0, 16.0, 17.0, 18.0]);
        // 4×4 → 3×3: round(0.5) = 0 in Python, so the window starts at the corner.
        let out = CenterCrop::new([3, 3]).apply(ramp(1, 4, 4), &mut g).unwrap();
        assert_eq!(out.data[..3], [0.0, 1.0, 2.0]);
        let out = CenterCrop::new([3, 3]).apply(ramp(1, 1, 1), &mut g).unwrap();
        assert_eq!(out.data, vec![0.0; 9]);
    }

    #[test]
    fn resize_is_bilinear_with_half_pixel_centres() {
        let mut g = Generator::new(0);
        // torch.nn.functional.interpolate([[0,1],[2,3]], size=(4,4), mode="bilinear") rows:
        // [0, .25, .75, 1], [.5, .75, 1.25, 1.5], [1.5, 1.75, 2.25, 2.5], [2, 2.25, 2.75, 3]
        let out = Resize::new([4, 4]).apply(ramp(1, 2, 2), &mut g).unwrap();
        let want = [
            0.0, 0.25, 0.75, 1.0, 0.5, 0.75, 1.25, 1.5, 1.5, 1.75, 2.25, 2.5, 2.0, 2.25, 2.75, 3.0,
        ];
        assert_eq!(out.data, want);
        // Downsampling by 2 averages 2×2 blocks.
        let out = Resize::new([1, 2]).apply(ramp(1, 2, 4), &mut g).unwrap();
        assert_eq!(out.data, vec![2.5, 4.5]);
        assert!(Resize::new([0, 2]).apply(ramp(1, 2, 2), &mut g).is_err());
    }

    #[test]
    fn affine_rotates_counter_clockwise_and_translates() {
        let mut img = Image::new(vec![0.0; 9], [1, 3, 3]).unwrap();
        img.data[5] = 1.0; // right of centre (y 1, x 2)
        let t = RandomAffine::new(0.0, [0.0, 0.0]).unwrap();
        let out = t.apply_params(&img, 90.0, 0.0, 0.0);
        assert_eq!(out.data[1], 1.0, "{:?}", out.data); // now above the centre
        assert_eq!(out.data.iter().sum::<f32>(), 1.0);
        let out = t.apply_params(&img, 0.0, -1.0, 1.0);
        assert_eq!(out.data[7], 1.0, "{:?}", out.data); // one left, one down
        let out = t.with_fill(5.0).apply_params(&ramp(1, 3, 3), 0.0, 1.0, 0.0);
        assert_eq!(out.data[..3], [5.0, 0.0, 1.0]);
        assert!(RandomAffine::new(-1.0, [0.0, 0.0]).is_err());
        assert!(RandomAffine::new(10.0, [1.5, 0.0]).is_err());
    }

    #[test]
    fn affine_with_zero_range_is_identity_and_seeded() {
        let img = ramp(3, 5, 4);
        let mut g = Generator::new(1);
        assert_eq!(
            RandomAffine::new(0.0, [0.0, 0.0])
                .unwrap()
                .apply(img.clone(), &mut g)
                .unwrap(),
            img
        );
        let t = RandomAffine::new(30.0, [0.2, 0.2]).unwrap();
        let a = t.apply(img.clone(), &mut Generator::new(4)).unwrap();
        let b = t.apply(img.clone(), &mut Generator::new(4)).unwrap();
        assert_eq!(a, b);
    }

    #[test]
    fn affine_fixed_point_matches_direct_float_mapping() {
        let img = ramp(2, 13, 17);
        let t = RandomAffine::new(0.0, [0.0, 0.0]).unwrap();
        let mut g = Generator::new(8);
        for _ in 0..50 {
            let (angle, tx, ty) = (
                g.uniform() * 360.0 - 180.0,
                (g.below(9) as f64) - 4.0,
                (g.below(9) as f64) - 4.0,
            );
            let out = t.apply_params(&img, angle, tx, ty);
            let (sin, cos) = angle.to_radians().sin_cos();
            let (cy, cx) = (6.0, 8.0);
            for y in 0..13 {
                for x in 0..17 {
                    let (dx, dy) = (x as f64 - cx - tx, y as f64 - cy - ty);
                    let (fx, fy) = (cx + cos * dx - sin * dy, cy + sin * dx + cos * dy);
                    // Skip coordinates on a rounding boundary, where either answer is right.
                    if (fx - fx.floor() - 0.5).abs() < 1e-6 || (fy - fy.floor() - 0.5).abs() < 1e-6 {
                        continue;
                    }
                    let (sx, sy) = ((fx + 0.5).floor(), (fy + 0.5).floor());
                    let want = if sx < 0.0 || sy < 0.0 || sx >= 17.0 || sy >= 13.0 {
                        [0.0, 0.0]
                    } else {
                        let i = sy as usize * 17 + sx as usize;
                        [img.data[i], img.data[221 + i]]
                    };
                    assert_eq!(
                        [out.data[y * 17 + x], out.data[221 + y * 17 + x]],
                        want,
                        "angle {angle} at ({y}, {x})"
                    );
                }
            }
        }
    }
}
