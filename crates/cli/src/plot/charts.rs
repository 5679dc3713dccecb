//! The two charts of a run: curves against epoch, and the confusion matrix.

use super::{tick_label, ticks, Canvas, Rgb, BLACK, GRID, WHITE};
use crate::error::CliResult;
use crate::metrics::Confusion;
use std::path::Path;

/// One line of a chart: its legend name, colour, and (x, y) points (non-finite y skipped).
#[derive(Debug, Clone)]
pub struct Series {
    /// Legend text.
    pub name: String,
    /// Line colour.
    pub color: Rgb,
    /// The points, in x order.
    pub points: Vec<(f64, f64)>,
}

const PANEL_W: usize = 560;
const PANEL_H: usize = 420;
const MARGIN_L: i64 = 78;
const MARGIN_R: i64 = 24;
const MARGIN_T: i64 = 56;
const MARGIN_B: i64 = 58;

/// Draw one panel with its top-left corner at `x0`.
fn panel(c: &mut Canvas, x0: i64, title: &str, y_label: &str, series: &[Series]) {
    let (left, top) = (x0 + MARGIN_L, MARGIN_T);
    let (right, bottom) = (x0 + PANEL_W as i64 - MARGIN_R, PANEL_H as i64 - MARGIN_B);
    c.text_centered(x0 + PANEL_W as i64 / 2, 14, title, 2, BLACK);
    let pts: Vec<(f64, f64)> = series
        .iter()
        .flat_map(|s| s.points.iter().copied())
        .filter(|p| p.0.is_finite() && p.1.is_finite())
        .collect();
    let (mut xlo, mut xhi) = pts
        .iter()
        .fold((f64::MAX, f64::MIN), |(a, b), p| (a.min(p.0), b.max(p.0)));
    let (mut ylo, mut yhi) = pts
        .iter()
        .fold((f64::MAX, f64::MIN), |(a, b), p| (a.min(p.1), b.max(p.1)));
    if pts.is_empty() {
        (xlo, xhi, ylo, yhi) = (0.0, 1.0, 0.0, 1.0);
    }
    if xhi - xlo < 1.0 {
        xhi = xlo + 1.0;
    }
    // A little headroom, so lines do not run along the frame.
    let pad = ((yhi - ylo) * 0.08).max(1e-3 * yhi.abs().max(1.0));
    (ylo, yhi) = (ylo - pad, yhi + pad);
    let sx = |x: f64| left + ((x - xlo) / (xhi - xlo) * (right - left) as f64).round() as i64;
    let sy = |y: f64| bottom - ((y - ylo) / (yhi - ylo) * (bottom - top) as f64).round() as i64;
    let yt = ticks(ylo, yhi, 6);
    let ystep = if yt.len() > 1 { yt[1] - yt[0] } else { 1.0 };
    for &v in &yt {
        let y = sy(v);
        c.line((left, y), (right, y), 1, GRID);
        let label = tick_label(v, ystep);
        let w = Canvas::text_width(&label, 1) as i64;
        c.text(left - 8 - w, y - 3, &label, 1, BLACK);
    }
    // Epochs are whole numbers: ticks at integers only.
    let xt: Vec<f64> = ticks(xlo, xhi, 10).into_iter().filter(|v| v.fract() == 0.0).collect();
    for &v in &xt {
        let x = sx(v);
        c.line((x, top), (x, bottom), 1, GRID);
        c.line((x, bottom), (x, bottom + 4), 1, BLACK);
        c.text_centered(x, bottom + 9, &tick_label(v, 1.0), 1, BLACK);
    }
    c.line((left, top), (left, bottom), 1, BLACK);
    c.line((left, bottom), (right, bottom), 1, BLACK);
    c.line((left, top), (right, top), 1, BLACK);
    c.line((right, top), (right, bottom), 1, BLACK);
    c.text_centered((left + right) / 2, bottom + 26, "epoch", 2, BLACK);
    let yl_w = Canvas::text_width(y_label, 2) as i64;
    c.text_up(x0 + 22, (top + bottom) / 2 + yl_w / 2, y_label, 2, BLACK);
    for s in series {
        let pts: Vec<(i64, i64)> = s
            .points
            .iter()
            .filter(|p| p.0.is_finite() && p.1.is_finite())
            .map(|&(x, y)| (sx(x), sy(y)))
            .collect();
        for w in pts.windows(2) {
            c.line(w[0], w[1], 2, s.color);
        }
        for &(x, y) in &pts {
            c.fill(x - 3, y - 3, x + 4, y + 4, s.color);
        }
    }
    // Legend above the plot area, right-aligned, so it never hides a line.
    let mut lx = right
        - series
            .iter()
            .map(|s| Canvas::text_width(&s.name, 1) as i64 + 40)
            .sum::<i64>();
    for s in series {
        c.line((lx, top - 10), (lx + 20, top - 10), 2, s.color);
        c.text(lx + 26, top - 13, &s.name, 1, BLACK);
        lx += Canvas::text_width(&s.name, 1) as i64 + 40;
    }
}

/// Side-by-side panels, each `(title, y label, lines)`, saved as a PNG.
pub fn curves_png(path: &Path, panels: &[(&str, &str, Vec<Series>)]) -> CliResult<()> {
    let mut c = Canvas::new(PANEL_W * panels.len().max(1), PANEL_H);
    for (i, (title, y_label, series)) in panels.iter().enumerate() {
        panel(&mut c, (i * PANEL_W) as i64, title, y_label, series);
    }
    c.save_png(path)
}

/// White for 0 through to a deep blue for 1.
fn shade(f: f64) -> Rgb {
    let f = f.clamp(0.0, 1.0);
    let mix = |a: f64, b: f64| (a + (b - a) * f).round() as u8;
    [mix(255.0, 8.0), mix(255.0, 48.0), mix(255.0, 107.0)]
}

/// The confusion matrix as a PNG: cells shaded by the fraction of their row (recall),
/// counts written in, class names on both axes.
pub fn confusion_png(path: &Path, m: &Confusion, names: &[String], title: &str) -> CliResult<()> {
    let n = m.classes;
    let name = |k: usize| names.get(k).cloned().unwrap_or_else(|| k.to_string());
    let cell = if n <= 12 { 52 } else { 26.max(600 / n.max(1)) } as i64;
    let label_w = (0..n).map(|k| Canvas::text_width(&name(k), 2)).max().unwrap_or(0) as i64;
    let (left, top) = (label_w + 70, 70);
    let grid = cell * n as i64;
    let (w, h) = (left + grid + 30, top + grid + label_w + 60);
    let mut c = Canvas::new(w as usize, h as usize);
    c.text_centered(w / 2, 16, title, 2, BLACK);
    c.text_centered(left + grid / 2, 44, "predicted", 2, BLACK);
    let tl_w = Canvas::text_width("true", 2) as i64;
    c.text_up(18, top + grid / 2 + tl_w / 2, "true", 2, BLACK);
    let max_count = m.counts.iter().copied().max().unwrap_or(0).to_string().len();
    let count_scale = if (Canvas::text_width(&"0".repeat(max_count), 2) as i64) < cell - 6 {
        2
    } else {
        1
    };
    for t in 0..n {
        let row: u64 = (0..n).map(|p| m.get(t, p)).sum();
        for p in 0..n {
            let v = m.get(t, p);
            let f = if row > 0 { v as f64 / row as f64 } else { 0.0 };
            let (x, y) = (left + p as i64 * cell, top + t as i64 * cell);
            c.fill(x, y, x + cell, y + cell, shade(f));
            let ink = if f > 0.5 { WHITE } else { BLACK };
            let th = Canvas::text_height(count_scale) as i64;
            c.text_centered(x + cell / 2, y + (cell - th) / 2, &v.to_string(), count_scale, ink);
        }
        let label = name(t);
        let lw = Canvas::text_width(&label, 2) as i64;
        c.text(left - 10 - lw, top + t as i64 * cell + cell / 2 - 7, &label, 2, BLACK);
        c.text_up(
            left + t as i64 * cell + cell / 2 + 7,
            top + grid + 10 + lw,
            &label,
            2,
            BLACK,
        );
    }
    for k in 0..=n as i64 {
        c.line((left + k * cell, top), (left + k * cell, top + grid), 1, GRID);
        c.line((left, top + k * cell), (left + grid, top + k * cell), 1, GRID);
    }
    c.save_png(path)
}
