//! A scatter chart of labelled points: each class in its own colour, a legend of the class
//! names beside the plot (an autoencoder's test set in latent space).

use super::{tick_label, ticks, Canvas, Rgb, BLACK, GRID};
use crate::error::{CliError, CliResult};
use std::path::Path;

/// Ten colours a reader tells apart (matplotlib's `tab10`), cycled for more classes.
pub const PALETTE: [Rgb; 10] = [
    [31, 119, 180],
    [255, 127, 14],
    [44, 160, 44],
    [214, 39, 40],
    [148, 103, 189],
    [140, 86, 75],
    [227, 119, 194],
    [127, 127, 127],
    [188, 189, 34],
    [23, 190, 207],
];

const PLOT: i64 = 560;
const LEFT: i64 = 80;
const TOP: i64 = 56;
const BOTTOM: i64 = 60;
const LEGEND: i64 = 190;

/// What a scatter chart shows.
pub struct Scatter<'a> {
    /// The points.
    pub points: &'a [(f64, f64)],
    /// Each point's class (an index into `classes`).
    pub labels: &'a [usize],
    /// The legend's names by class.
    pub classes: &'a [String],
    /// The line above the plot.
    pub title: &'a str,
    /// A smaller line under the title (empty: none).
    pub subtitle: &'a str,
    /// The axes' names.
    pub axes: (&'a str, &'a str),
}

/// `[lo, hi]` of the finite values, a little wider so points clear the frame.
fn range(v: impl Iterator<Item = f64>) -> (f64, f64) {
    let (lo, hi) = v
        .filter(|x| x.is_finite())
        .fold((f64::MAX, f64::MIN), |(a, b), x| (a.min(x), b.max(x)));
    if lo > hi {
        return (-1.0, 1.0);
    }
    let pad = ((hi - lo) * 0.05).max(1e-6);
    (lo - pad, hi + pad)
}

/// Draw the chart into a canvas.
pub fn scatter(s: &Scatter) -> CliResult<Canvas> {
    if s.points.len() != s.labels.len() {
        return Err(CliError::new(format!(
            "a scatter chart needs a label per point ({} points, {} labels)",
            s.points.len(),
            s.labels.len()
        )));
    }
    let width = LEFT + PLOT + 20 + LEGEND;
    let height = TOP + PLOT + BOTTOM;
    let mut c = Canvas::new(width as usize, height as usize);
    c.text_centered(LEFT + PLOT / 2, 10, s.title, 2, BLACK);
    c.text_centered(LEFT + PLOT / 2, 34, s.subtitle, 1, BLACK);
    let (xlo, xhi) = range(s.points.iter().map(|p| p.0));
    let (ylo, yhi) = range(s.points.iter().map(|p| p.1));
    let (right, bottom) = (LEFT + PLOT, TOP + PLOT);
    let sx = |x: f64| LEFT + ((x - xlo) / (xhi - xlo) * PLOT as f64).round() as i64;
    let sy = |y: f64| bottom - ((y - ylo) / (yhi - ylo) * PLOT as f64).round() as i64;
    for (t, vertical) in [(ticks(xlo, xhi, 6), true), (ticks(ylo, yhi, 6), false)] {
        let step = if t.len() > 1 { t[1] - t[0] } else { 1.0 };
        for &v in &t {
            let label = tick_label(v, step);
            if vertical {
                let x = sx(v);
                c.line((x, TOP), (x, bottom), 1, GRID);
                c.text_centered(x, bottom + 8, &label, 1, BLACK);
            } else {
                let y = sy(v);
                c.line((LEFT, y), (right, y), 1, GRID);
                let w = Canvas::text_width(&label, 1) as i64;
                c.text(LEFT - 8 - w, y - 3, &label, 1, BLACK);
            }
        }
    }
    for (&(x, y), &k) in s.points.iter().zip(s.labels) {
        if x.is_finite() && y.is_finite() {
            let (px, py) = (sx(x), sy(y));
            c.fill(px - 1, py - 1, px + 2, py + 2, PALETTE[k % PALETTE.len()]);
        }
    }
    c.line((LEFT, TOP), (right, TOP), 1, BLACK);
    c.line((LEFT, bottom), (right, bottom), 1, BLACK);
    c.line((LEFT, TOP), (LEFT, bottom), 1, BLACK);
    c.line((right, TOP), (right, bottom), 1, BLACK);
    c.text_centered(LEFT + PLOT / 2, bottom + 28, s.axes.0, 2, BLACK);
    let w = Canvas::text_width(s.axes.1, 2) as i64;
    c.text_up(22, TOP + PLOT / 2 + w / 2, s.axes.1, 2, BLACK);
    for (k, name) in s.classes.iter().enumerate() {
        let (x, y) = (right + 24, TOP + 10 + 24 * k as i64);
        c.fill(x, y, x + 14, y + 14, PALETTE[k % PALETTE.len()]);
        c.text(x + 22, y, name, 2, BLACK);
    }
    Ok(c)
}

/// Draw the chart and write it as a PNG, atomically.
pub fn scatter_png(path: &Path, s: &Scatter) -> CliResult<()> {
    scatter(s)?.save_png(path)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn points_take_their_class_colour_and_the_legend_lists_every_class() {
        let points = [(0.0, 0.0), (1.0, 1.0)];
        let classes = vec!["a".to_string(), "b".to_string()];
        let s = Scatter {
            points: &points,
            labels: &[0, 1],
            classes: &classes,
            title: "t",
            subtitle: "",
            axes: ("x", "y"),
        };
        let c = scatter(&s).unwrap();
        // The range is padded by 5% each side: (0, 0) sits 1/22 of the plot in from the
        // lower left corner, (1, 1) as far from the upper right.
        let off = (PLOT as f64 / 22.0).round() as usize;
        let (l, b, r, t) = (
            LEFT as usize,
            (TOP + PLOT) as usize,
            (LEFT + PLOT) as usize,
            TOP as usize,
        );
        assert_eq!(c.get(l + off, b - off), PALETTE[0]);
        assert_eq!(c.get(r - off, t + off), PALETTE[1]);
        let legend = |k: usize| c.get(r + 30, t + 14 + 24 * k);
        assert_eq!((legend(0), legend(1)), (PALETTE[0], PALETTE[1]));
        let bad = Scatter { labels: &[0], ..s };
        assert!(scatter(&bad).is_err());
    }
}
