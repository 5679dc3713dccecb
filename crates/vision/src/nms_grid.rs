//! NMS through a uniform grid, for boxes spread out so that each overlaps few others.
//!
//! Only boxes whose intersection has positive area can suppress each other: for any other
//! pair torchvision's IoU is 0, −0 or NaN (zero intersection over the union; the union is 0
//! or negative only for degenerate boxes), never above a threshold ≥ 0. Two boxes with a
//! common area share a grid cell (the cell of any point of that area lies within both boxes'
//! cell ranges, the cell index being monotone in the coordinate), so comparing a kept box with
//! the boxes of its cells finds every box it can suppress. The IoU is computed exactly as the
//! sweep computes it, so the answer is the sweep's.

use super::{cmax, cmin, Candidates};

/// Below this many boxes the sweep is fast enough.
const GRID_MIN: usize = 512;

/// The most cells a grid has per box.
const CELLS_PER_BOX: usize = 4;

/// How much cheaper one pair is in the vectorized sweep than in the grid's scalar loop: the
/// grid is used when its pair count is under the sweep's divided by this.
const SWEEP_ADVANTAGE: f64 = 8.0;

/// Whether box `j` has finite corners and positive width and height: the only boxes that can
/// suppress or be suppressed (see the module's doc).
fn solid(c: &Candidates, j: usize) -> bool {
    c.x2[j] > c.x1[j]
        && c.y2[j] > c.y1[j]
        && c.x1[j].is_finite()
        && c.y1[j].is_finite()
        && c.x2[j].is_finite()
        && c.y2[j].is_finite()
        && c.area[j].is_finite()
}

/// The kept indices, or None when a grid would not beat the sweep (few boxes, a negative or
/// NaN threshold, or boxes so crowded that cells hold most of them).
pub(crate) fn nms_grid(c: &Candidates, thr: f32) -> Option<Vec<usize>> {
    let n = c.len();
    // A negative threshold suppresses disjoint boxes too (IoU 0 > thr).
    if n < GRID_MIN || thr.is_nan() || thr < 0.0 {
        return None;
    }
    let (mut lo, mut hi, mut size, mut count) = ([f64::MAX; 2], [f64::MIN; 2], [0f64; 2], 0usize);
    for j in (0..n).filter(|&j| solid(c, j)) {
        let b = [c.x1[j], c.y1[j], c.x2[j], c.y2[j]].map(f64::from);
        for d in 0..2 {
            lo[d] = lo[d].min(b[d]);
            hi[d] = hi[d].max(b[d + 2]);
            size[d] += b[d + 2] - b[d];
        }
        count += 1;
    }
    if count == 0 {
        return None;
    }
    // Cells about the mean box's size, at most CELLS_PER_BOX per box in all.
    let extent = [hi[0] - lo[0], hi[1] - lo[1]];
    let mut cells = [0usize; 2];
    for d in 0..2 {
        cells[d] = ((extent[d] * count as f64 / size[d]).ceil() as usize).clamp(1, 1 << 12);
    }
    let budget = (CELLS_PER_BOX * count) as f64;
    let total = (cells[0] * cells[1]) as f64;
    if total > budget {
        let f = (total / budget).sqrt();
        cells = cells.map(|g| ((g as f64 / f).ceil() as usize).max(1));
    }
    let [gx, gy] = cells;
    let scale = [gx as f64 / extent[0], gy as f64 / extent[1]];
    let cell = |v: f32, d: usize| -> usize {
        let k = ((v as f64 - lo[d]) * scale[d]).floor();
        (k.max(0.0) as usize).min(cells[d] - 1)
    };
    let span = |j: usize| [cell(c.x1[j], 0), cell(c.x2[j], 0), cell(c.y1[j], 1), cell(c.y2[j], 1)];
    // Compressed lists: the boxes of each cell, in rank order.
    let mut start = vec![0usize; gx * gy + 1];
    for j in (0..n).filter(|&j| solid(c, j)) {
        let [x0, x1, y0, y1] = span(j);
        for y in y0..=y1 {
            for x in x0..=x1 {
                start[y * gx + x + 1] += 1;
            }
        }
    }
    let mut pairs = 0f64;
    for k in 0..gx * gy {
        pairs += (start[k + 1] * start[k + 1]) as f64 / 2.0;
        start[k + 1] += start[k];
    }
    if pairs * SWEEP_ADVANTAGE > (n * n) as f64 / 2.0 {
        return None;
    }
    let mut list = vec![0u32; start[gx * gy]];
    let mut fill = start.clone();
    for j in (0..n).filter(|&j| solid(c, j)) {
        let [x0, x1, y0, y1] = span(j);
        for y in y0..=y1 {
            for x in x0..=x1 {
                list[fill[y * gx + x]] = j as u32;
                fill[y * gx + x] += 1;
            }
        }
    }
    // `from[k]`: where cell k's boxes ranked after the current one begin.
    let mut from = start.clone();
    let mut dead = vec![false; n];
    let mut keep = Vec::new();
    for i in 0..n {
        if dead[i] {
            continue;
        }
        keep.push(c.index[i] as usize);
        if !solid(c, i) {
            continue;
        }
        let (ix1, iy1, ix2, iy2, ia) = (c.x1[i], c.y1[i], c.x2[i], c.y2[i], c.area[i]);
        let [x0, x1, y0, y1] = span(i);
        for y in y0..=y1 {
            for x in x0..=x1 {
                let k = y * gx + x;
                let end = start[k + 1];
                while from[k] < end && list[from[k]] as usize <= i {
                    from[k] += 1;
                }
                for &j in &list[from[k]..end] {
                    let j = j as usize;
                    if dead[j] {
                        continue;
                    }
                    // The sweep's arithmetic, operation for operation.
                    let w = cmax(0.0, cmin(ix2, c.x2[j]) - cmax(ix1, c.x1[j]));
                    let h = cmax(0.0, cmin(iy2, c.y2[j]) - cmax(iy1, c.y1[j]));
                    let inter = w * h;
                    if inter / (ia + c.area[j] - inter) > thr {
                        dead[j] = true;
                    }
                }
            }
        }
    }
    Some(keep)
}
