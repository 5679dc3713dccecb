//! PNG charts for a run folder, drawn pixel by pixel with a built-in bitmap font:
//! `curves.png` (loss and accuracy or RMSE against epoch), `confusion.png`, grids of
//! small images (reconstructions, samples), and scatter charts of labelled points.
//!
//! Drawing by hand keeps the build free of a font stack; the charts need only lines,
//! rectangles and short labels.

mod charts;
mod font;
mod grid;
mod scatter;

pub use charts::{confusion_png, curves_png, Series};
pub use grid::{grid_png, GridOptions};
pub use scatter::{scatter_png, Scatter};

use crate::error::{CliError, CliResult};
use std::path::Path;

/// An RGB colour.
pub type Rgb = [u8; 3];

/// White.
pub const WHITE: Rgb = [255, 255, 255];
/// Black.
pub const BLACK: Rgb = [0, 0, 0];
/// Light grey for grid lines.
pub const GRID: Rgb = [225, 225, 225];

/// An RGB image being drawn on; the origin is the top-left corner.
pub struct Canvas {
    width: usize,
    height: usize,
    px: Vec<u8>,
}

impl Canvas {
    /// A white canvas.
    pub fn new(width: usize, height: usize) -> Canvas {
        Canvas {
            width,
            height,
            px: vec![255; width * height * 3],
        }
    }

    /// Set one pixel; points off the canvas are ignored.
    pub fn set(&mut self, x: i64, y: i64, c: Rgb) {
        if x >= 0 && y >= 0 && (x as usize) < self.width && (y as usize) < self.height {
            let i = (y as usize * self.width + x as usize) * 3;
            self.px[i..i + 3].copy_from_slice(&c);
        }
    }

    /// The colour at a pixel (white off the canvas).
    #[cfg(test)]
    pub fn get(&self, x: usize, y: usize) -> Rgb {
        if x < self.width && y < self.height {
            let i = (y * self.width + x) * 3;
            [self.px[i], self.px[i + 1], self.px[i + 2]]
        } else {
            WHITE
        }
    }

    /// Fill the rectangle with corners `(x0, y0)` and `(x1, y1)` (exclusive).
    pub fn fill(&mut self, x0: i64, y0: i64, x1: i64, y1: i64, c: Rgb) {
        for y in y0.max(0)..y1.min(self.height as i64) {
            for x in x0.max(0)..x1.min(self.width as i64) {
                self.set(x, y, c);
            }
        }
    }

    /// A line `thick` pixels wide between two points (Bresenham's walk with a square pen).
    pub fn line(&mut self, (x0, y0): (i64, i64), (x1, y1): (i64, i64), thick: i64, c: Rgb) {
        let (dx, dy) = ((x1 - x0).abs(), -(y1 - y0).abs());
        let (sx, sy) = (if x0 < x1 { 1 } else { -1 }, if y0 < y1 { 1 } else { -1 });
        let (mut x, mut y, mut err) = (x0, y0, dx + dy);
        let lo = -(thick - 1) / 2;
        let hi = thick / 2;
        loop {
            self.fill(x + lo, y + lo, x + hi + 1, y + hi + 1, c);
            if x == x1 && y == y1 {
                break;
            }
            let e2 = 2 * err;
            if e2 >= dy {
                err += dy;
                x += sx;
            }
            if e2 <= dx {
                err += dx;
                y += sy;
            }
        }
    }

    /// Width in pixels of `text` at `scale`.
    pub fn text_width(text: &str, scale: usize) -> usize {
        let n = text.chars().count();
        if n == 0 {
            0
        } else {
            (n * (font::GLYPH.0 + 1) - 1) * scale
        }
    }

    /// Height in pixels of a line of text at `scale`.
    pub fn text_height(scale: usize) -> usize {
        font::GLYPH.1 * scale
    }

    /// Draw `text` with its top-left corner at `(x, y)`.
    pub fn text(&mut self, x: i64, y: i64, text: &str, scale: usize, c: Rgb) {
        self.glyphs(text, scale, c, |dx, dy| (x + dx, y + dy));
    }

    /// Draw `text` turned a quarter to the left (reading upwards), its baseline's start at
    /// `(x, y)`: the text runs from `y` up.
    pub fn text_up(&mut self, x: i64, y: i64, text: &str, scale: usize, c: Rgb) {
        let h = Self::text_height(scale) as i64;
        self.glyphs(text, scale, c, |dx, dy| (x + dy - h, y - dx));
    }

    /// Draw `text` centred horizontally on `cx`.
    pub fn text_centered(&mut self, cx: i64, y: i64, text: &str, scale: usize, c: Rgb) {
        let w = Self::text_width(text, scale) as i64;
        self.text(cx - w / 2, y, text, scale, c);
    }

    fn glyphs(&mut self, text: &str, scale: usize, c: Rgb, place: impl Fn(i64, i64) -> (i64, i64)) {
        let s = scale as i64;
        for (k, ch) in text.chars().enumerate() {
            let left = k as i64 * (font::GLYPH.0 as i64 + 1) * s;
            for (row, bits) in font::glyph(ch).iter().enumerate() {
                for col in 0..font::GLYPH.0 {
                    if bits >> (font::GLYPH.0 - 1 - col) & 1 == 1 {
                        for (u, v) in (0..s).flat_map(|u| (0..s).map(move |v| (u, v))) {
                            let (x, y) = place(left + col as i64 * s + u, row as i64 * s + v);
                            self.set(x, y, c);
                        }
                    }
                }
            }
        }
    }

    /// Encode as PNG and write atomically.
    pub fn save_png(&self, path: &Path) -> CliResult<()> {
        use image::ImageEncoder;
        let mut bytes = Vec::new();
        image::codecs::png::PngEncoder::new(&mut bytes)
            .write_image(
                &self.px,
                self.width as u32,
                self.height as u32,
                image::ExtendedColorType::Rgb8,
            )
            .map_err(|e| CliError::io("encode", path, e))?;
        crate::image_io::write_atomic(path, &bytes)
    }
}

/// Round numbers for axis ticks: about `n` steps of 1, 2 or 5 times a power of ten covering
/// `[lo, hi]`.
pub fn ticks(lo: f64, hi: f64, n: usize) -> Vec<f64> {
    if !(lo.is_finite() && hi.is_finite()) || hi <= lo || n == 0 {
        return vec![lo];
    }
    let raw = (hi - lo) / n as f64;
    let mag = 10f64.powf(raw.log10().floor());
    let step = [1.0, 2.0, 5.0, 10.0]
        .iter()
        .map(|m| m * mag)
        .find(|&s| s >= raw)
        .unwrap_or(10.0 * mag);
    let first = (lo / step).ceil() as i64;
    let last = (hi / step + 1e-9).floor() as i64;
    (first..=last).map(|k| k as f64 * step).collect()
}

/// A tick label: as few decimals as the step needs.
pub fn tick_label(v: f64, step: f64) -> String {
    let decimals = if step >= 1.0 {
        0
    } else {
        (-step.log10().floor()) as usize
    };
    format!("{v:.decimals$}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ticks_are_round_and_cover_the_range() {
        assert_eq!(ticks(0.0, 1.0, 5), vec![0.0, 0.2, 0.4, 0.6000000000000001, 0.8, 1.0]);
        assert_eq!(ticks(1.0, 10.0, 4), vec![5.0, 10.0]);
        assert_eq!(ticks(0.3, 2.45, 4), vec![1.0, 2.0]);
        assert_eq!(ticks(0.3, 2.45, 8), vec![0.5, 1.0, 1.5, 2.0]);
        assert_eq!(tick_label(0.6000000000000001, 0.2), "0.6");
        assert_eq!(tick_label(10.0, 5.0), "10");
    }

    #[test]
    fn text_lands_where_asked() {
        let mut c = Canvas::new(40, 20);
        c.text(1, 2, "I", 1, BLACK);
        // 'I' is 0E 04 ...: its top row covers columns 1..4 of the glyph.
        assert_eq!((c.get(2, 2), c.get(1, 2), c.get(3, 3)), (BLACK, WHITE, BLACK));
        assert_eq!(Canvas::text_width("ab", 2), 22);
        let mut c = Canvas::new(20, 40);
        c.text_up(10, 30, "-", 1, BLACK);
        // '-' is glyph row 3, five pixels across; turned, it is column 10 + 3 − 7 running
        // up from row 30.
        assert_eq!(
            (c.get(6, 30), c.get(6, 26), c.get(6, 25), c.get(7, 28)),
            (BLACK, BLACK, WHITE, WHITE)
        );
    }

    #[test]
    fn thick_lines_cover_both_ends() {
        let mut c = Canvas::new(10, 10);
        c.line((1, 1), (8, 5), 2, BLACK);
        assert_eq!((c.get(1, 1), c.get(8, 5), c.get(9, 9)), (BLACK, BLACK, WHITE));
    }
}
