//! Pictures of many small images at once: a grid of `[N, C, H, W]` images with values in
//! `[0, 1]`, each upscaled by a whole factor so 28-pixel digits are readable, with an
//! optional title above. Autoencoder reconstructions, GAN samples and interpolation
//! strips are all drawn this way.

use super::{Canvas, Rgb, BLACK};
use crate::error::{CliError, CliResult};
use nabla_core::Tensor;
use std::path::Path;

/// Mid grey between cells, so a black image does not melt into its neighbour.
const GAP: Rgb = [128, 128, 128];

/// How a grid is laid out.
#[derive(Debug, Clone)]
pub struct GridOptions {
    /// Images per row (at least 1).
    pub cols: usize,
    /// Each image pixel becomes a `scale × scale` block.
    pub scale: usize,
    /// Pixels of grey between cells and around the grid.
    pub gap: usize,
    /// A line of text above the grid (empty: none).
    pub title: String,
}

impl Default for GridOptions {
    fn default() -> GridOptions {
        GridOptions {
            cols: 8,
            scale: 2,
            gap: 2,
            title: String::new(),
        }
    }
}

/// Draw `images` (`[N, C, H, W]`, C = 1 or 3, values clipped to `[0, 1]`) as a grid, row
/// by row, into a canvas.
pub(super) fn image_grid(images: &Tensor, o: &GridOptions) -> CliResult<Canvas> {
    let (n, c, h, w) = match *images.shape() {
        [n, c, h, w] if n > 0 && (c == 1 || c == 3) => (n, c, h, w),
        _ => {
            return Err(CliError::new(format!(
                "cannot draw shape {:?} as a grid of images (need [N, 1 or 3, H, W], N > 0)",
                images.shape()
            )))
        }
    };
    if o.cols == 0 || o.scale == 0 {
        return Err(CliError::new(
            "a grid needs at least one column and a scale of at least 1",
        ));
    }
    let cols = o.cols.min(n);
    let rows = n.div_ceil(cols);
    let (cw, ch) = (w * o.scale, h * o.scale);
    let head = if o.title.is_empty() {
        0
    } else {
        Canvas::text_height(1) + 2 * o.gap.max(3)
    };
    let width = cols * cw + (cols + 1) * o.gap;
    let width = width.max(Canvas::text_width(&o.title, 1) + 8);
    let height = head + rows * ch + (rows + 1) * o.gap;
    let mut canvas = Canvas::new(width, height);
    if !o.title.is_empty() {
        canvas.text(4, o.gap.max(3) as i64, &o.title, 1, BLACK);
    }
    canvas.fill(0, head as i64, width as i64, height as i64, GAP);
    let v = images.to_vec_f64();
    let per = c * h * w;
    for k in 0..n {
        let (r, col) = (k / cols, k % cols);
        let x0 = o.gap + col * (cw + o.gap);
        let y0 = head + o.gap + r * (ch + o.gap);
        let img = &v[k * per..(k + 1) * per];
        for y in 0..h {
            for x in 0..w {
                let px = |ch: usize| (img[ch * h * w + y * w + x].clamp(0.0, 1.0) * 255.0).round() as u8;
                let rgb = if c == 3 { [px(0), px(1), px(2)] } else { [px(0); 3] };
                let (bx, by) = ((x0 + x * o.scale) as i64, (y0 + y * o.scale) as i64);
                canvas.fill(bx, by, bx + o.scale as i64, by + o.scale as i64, rgb);
            }
        }
    }
    Ok(canvas)
}

/// Draw `images` as a grid (see [`image_grid`]) and write it as a PNG, atomically.
pub fn grid_png(path: &Path, images: &Tensor, o: &GridOptions) -> CliResult<()> {
    image_grid(images, o)?.save_png(path)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::plot::WHITE;

    #[test]
    fn cells_land_in_row_major_order_and_upscale() {
        // Three 2×2 images: all black, all white, and a left-white/right-black one.
        let mut v = vec![0.0f32; 4];
        v.extend([1.0; 4]);
        v.extend([1.0, 0.0, 1.0, 0.0]);
        let t = Tensor::from_vec(v, &[3, 1, 2, 2]).unwrap();
        let o = GridOptions {
            cols: 2,
            scale: 3,
            gap: 1,
            title: String::new(),
        };
        let c = image_grid(&t, &o).unwrap();
        // 2 columns of 6 pixels and 3 gaps; 2 rows.
        assert_eq!((c.width, c.height), (2 * 6 + 3, 2 * 6 + 3));
        assert_eq!(c.get(0, 0), GAP);
        assert_eq!(c.get(1, 1), BLACK); // first cell
        assert_eq!(c.get(6, 6), BLACK);
        assert_eq!(c.get(8, 1), WHITE); // second cell, same row
        assert_eq!(c.get(1, 8), WHITE); // third cell, left half white
        assert_eq!(c.get(6, 8), BLACK); // ... right half black
        assert_eq!(c.get(10, 10), GAP); // no fourth image: grey
    }

    #[test]
    fn values_are_clipped_and_bad_shapes_refused() {
        let t = Tensor::from_vec(vec![-3.0f32, 7.0], &[2, 1, 1, 1]).unwrap();
        let c = image_grid(
            &t,
            &GridOptions {
                scale: 1,
                gap: 0,
                ..Default::default()
            },
        )
        .unwrap();
        assert_eq!((c.get(0, 0), c.get(1, 0)), (BLACK, WHITE));
        let bad = Tensor::zeros(&[2, 2, 1, 1], nabla_core::DType::F32);
        let e = image_grid(&bad, &GridOptions::default()).err().unwrap().to_string();
        assert!(e.contains("[2, 2, 1, 1]"), "{e}");
    }

    #[test]
    fn a_title_sits_above_the_cells() {
        let t = Tensor::zeros(&[1, 1, 4, 4], nabla_core::DType::F32);
        let o = GridOptions {
            title: "epoch 1".into(),
            ..Default::default()
        };
        let c = image_grid(&t, &o).unwrap();
        let untitled = image_grid(&t, &GridOptions::default()).unwrap();
        assert!(c.height > untitled.height);
        let ink = (0..c.width)
            .flat_map(|x| (0..8).map(move |y| (x, y)))
            .any(|(x, y)| c.get(x, y) == BLACK);
        assert!(ink, "the title is drawn");
    }
}
