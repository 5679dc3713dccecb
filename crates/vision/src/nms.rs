//! Non-maximum suppression and the box clean-ups around it, as torchvision's `ops` names
//! them: [`nms`], [`batched_nms`], [`clip_boxes_to_image`], [`remove_small_boxes`]. Boxes are
//! `xyxy` in pixels, continuous coordinates (area = (x2 − x1)(y2 − y1), no +1).
//!
//! ```
//! use nabla_vision::{batched_nms, nms};
//! let boxes = [[0.0, 0.0, 10.0, 10.0], [1.0, 1.0, 11.0, 11.0], [20.0, 20.0, 30.0, 30.0]];
//! let scores = [0.9, 0.8, 0.7];
//! // Box 1 overlaps box 0 with IoU 81 / 119 ≈ 0.68 > 0.5, so it goes.
//! assert_eq!(nms(&boxes, &scores, 0.5), vec![0, 2]);
//! // In another class it stays.
//! assert_eq!(batched_nms(&boxes, &scores, &[0, 1, 0], 0.5), vec![0, 1, 2]);
//! ```
//!
//! How [`nms`] is fast: the candidates are laid out in score order as separate coordinate
//! arrays with their areas computed once, so one kept box's IoU against every later candidate
//! is a straight loop the compiler vectorizes (compiled for the CPU's AVX2 / AVX-512 level,
//! picked by `nabla_core::cpu::isa`); the suppressed ones are squeezed out whenever they are
//! more than half of what is left, so later sweeps stay short. When the boxes are spread
//! out (each overlapping few others, as in a large image with many small objects), a uniform
//! grid over the boxes replaces the sweep: a kept box is compared only with the boxes sharing
//! a grid cell with it, since boxes without a common area can never suppress each other
//! (`nms_grid.rs`). Both paths give the same answer.

use nabla_core::cpu::{self, Isa};

/// torchvision.ops.nms: indices of the kept boxes, by decreasing score (ties: lower index first).
///
/// A box is suppressed by a kept box of higher rank when their IoU is strictly greater than
/// `iou_threshold`; the IoU is computed in f32 exactly as torchvision's CPU kernel does
/// (`inter / (area_i + area_j − inter)`, areas not clamped), so the kept set is the same as
/// `torchvision.ops.nms` with the threshold `iou_threshold as f64`. Rules for odd input
/// (torchvision has none): a box whose score is NaN is dropped (neither kept nor
/// suppressing); a box with a NaN coordinate has NaN IoU with everything, so it suppresses
/// nothing and is suppressed by nothing.
///
/// # Panics
/// When `boxes` and `scores` differ in length (a caller's bug, not bad data).
pub fn nms(boxes: &[[f32; 4]], scores: &[f32], iou_threshold: f32) -> Vec<usize> {
    assert_eq!(
        boxes.len(),
        scores.len(),
        "nms: {} boxes but {} scores",
        boxes.len(),
        scores.len()
    );
    let order = rank(scores, (0..boxes.len()).collect());
    let mut cands = Candidates::new(boxes, &order);
    if let Some(keep) = grid::nms_grid(&cands, iou_threshold) {
        return keep;
    }
    let level = cpu::isa();
    let mut keep = Vec::new();
    let mut i = 0;
    while i < cands.len() {
        keep.push(cands.index[i] as usize);
        let dead = sweep(level, &mut cands, i, iou_threshold);
        let rest = cands.len() - i - 1;
        if 2 * dead > rest {
            cands.compact(i + 1);
        }
        i += 1;
        while i < cands.len() && cands.dead[i] != 0 {
            i += 1;
        }
    }
    keep
}

/// torchvision.ops.batched_nms: NMS within each class only.
///
/// Runs [`nms`] per class (torchvision shifts each class's boxes apart instead, which keeps
/// the same boxes) and returns the kept indices by decreasing score, ties by lower index.
///
/// # Panics
/// When `boxes`, `scores` and `classes` differ in length.
pub fn batched_nms(boxes: &[[f32; 4]], scores: &[f32], classes: &[usize], iou_threshold: f32) -> Vec<usize> {
    assert!(
        boxes.len() == scores.len() && boxes.len() == classes.len(),
        "batched_nms: {} boxes, {} scores, {} classes",
        boxes.len(),
        scores.len(),
        classes.len()
    );
    let mut by_class: std::collections::BTreeMap<usize, Vec<usize>> = Default::default();
    for (i, &c) in classes.iter().enumerate() {
        by_class.entry(c).or_default().push(i);
    }
    let mut keep = Vec::new();
    for members in by_class.values() {
        let b: Vec<[f32; 4]> = members.iter().map(|&i| boxes[i]).collect();
        let s: Vec<f32> = members.iter().map(|&i| scores[i]).collect();
        keep.extend(nms(&b, &s, iou_threshold).into_iter().map(|k| members[k]));
    }
    rank(scores, keep)
}

/// torchvision.ops.clip_boxes_to_image; size is [H, W]: x into [0, W], y into [0, H].
pub fn clip_boxes_to_image(boxes: &mut [[f32; 4]], size: [usize; 2]) {
    let (h, w) = (size[0] as f32, size[1] as f32);
    for b in boxes {
        *b = [
            b[0].clamp(0.0, w),
            b[1].clamp(0.0, h),
            b[2].clamp(0.0, w),
            b[3].clamp(0.0, h),
        ];
    }
}

/// torchvision.ops.remove_small_boxes: indices of boxes with both sides ≥ min_size.
///
/// A box with a NaN side is removed.
pub fn remove_small_boxes(boxes: &[[f32; 4]], min_size: f32) -> Vec<usize> {
    boxes
        .iter()
        .enumerate()
        .filter(|(_, b)| b[2] - b[0] >= min_size && b[3] - b[1] >= min_size)
        .map(|(i, _)| i)
        .collect()
}

/// `indices` without those whose score is NaN, by decreasing score, ties by lower index.
fn rank(scores: &[f32], mut indices: Vec<usize>) -> Vec<usize> {
    indices.retain(|&i| !scores[i].is_nan());
    // A stable sort on the score alone keeps ties in index order when `indices` is ascending;
    // the index in the key makes it so for any input order.
    indices.sort_by(|&a, &b| scores[b].total_cmp(&scores[a]).then(a.cmp(&b)));
    indices
}

/// The boxes still in play, in rank order, one array per coordinate.
pub(crate) struct Candidates {
    pub(crate) x1: Vec<f32>,
    pub(crate) y1: Vec<f32>,
    pub(crate) x2: Vec<f32>,
    pub(crate) y2: Vec<f32>,
    pub(crate) area: Vec<f32>,
    pub(crate) index: Vec<u32>,
    /// 1 once suppressed.
    dead: Vec<u8>,
}

impl Candidates {
    fn new(boxes: &[[f32; 4]], order: &[usize]) -> Candidates {
        let pick = |k: usize| order.iter().map(|&i| boxes[i][k]).collect::<Vec<f32>>();
        let (x1, y1, x2, y2) = (pick(0), pick(1), pick(2), pick(3));
        // torchvision's areas: not clamped, so a box with x2 < x1 has a negative area.
        let area = (0..order.len()).map(|j| (x2[j] - x1[j]) * (y2[j] - y1[j])).collect();
        Candidates {
            x1,
            y1,
            x2,
            y2,
            area,
            index: order.iter().map(|&i| i as u32).collect(),
            dead: vec![0; order.len()],
        }
    }

    pub(crate) fn len(&self) -> usize {
        self.index.len()
    }

    /// Drop the suppressed candidates at `from..`, keeping the order.
    fn compact(&mut self, from: usize) {
        let mut w = from;
        for j in from..self.len() {
            if self.dead[j] == 0 {
                self.x1[w] = self.x1[j];
                self.y1[w] = self.y1[j];
                self.x2[w] = self.x2[j];
                self.y2[w] = self.y2[j];
                self.area[w] = self.area[j];
                self.index[w] = self.index[j];
                self.dead[w] = 0;
                w += 1;
            }
        }
        for v in [&mut self.x1, &mut self.y1, &mut self.x2, &mut self.y2, &mut self.area] {
            v.truncate(w);
        }
        self.index.truncate(w);
        self.dead.truncate(w);
    }
}

/// Mark every candidate after `i` whose IoU with candidate `i` is above `thr`; the number
/// of dead candidates after `i` afterwards. Picks the loop compiled for `level`.
fn sweep(level: Isa, c: &mut Candidates, i: usize, thr: f32) -> usize {
    #[cfg(target_arch = "x86_64")]
    {
        if level == Isa::Avx512 {
            // SAFETY: cpu::isa only answers Avx512 on a CPU with AVX-512F, AVX2 and FMA.
            return unsafe { sweep_avx512(c, i, thr) };
        }
        if level == Isa::Avx2 {
            // SAFETY: cpu::isa only answers Avx2 (or above) on a CPU with AVX2 and FMA.
            return unsafe { sweep_avx2(c, i, thr) };
        }
    }
    #[cfg(not(target_arch = "x86_64"))]
    let _ = level;
    sweep_body(c, i, thr)
}

/// [`sweep_body`] compiled for AVX-512.
///
/// # Safety
/// The CPU must support AVX-512F, AVX2 and FMA.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f,avx2,fma")]
unsafe fn sweep_avx512(c: &mut Candidates, i: usize, thr: f32) -> usize {
    sweep_body(c, i, thr)
}

/// [`sweep_body`] compiled for AVX2.
///
/// # Safety
/// The CPU must support AVX2 and FMA.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma")]
unsafe fn sweep_avx2(c: &mut Candidates, i: usize, thr: f32) -> usize {
    sweep_body(c, i, thr)
}

/// The sweep itself: branch-free over equal-length slices so that it vectorizes; the float
/// operations are torchvision's, in its order, so the IoU is bit-identical.
#[inline(always)]
fn sweep_body(c: &mut Candidates, i: usize, thr: f32) -> usize {
    let (ix1, iy1, ix2, iy2, ia) = (c.x1[i], c.y1[i], c.x2[i], c.y2[i], c.area[i]);
    let n = c.len();
    let (x1, y1, x2, y2, area) = (
        &c.x1[i + 1..n],
        &c.y1[i + 1..n],
        &c.x2[i + 1..n],
        &c.y2[i + 1..n],
        &c.area[i + 1..n],
    );
    let dead = &mut c.dead[i + 1..n];
    // Slices of one known length, so the loop has no bounds checks and vectorizes.
    let m = dead.len();
    let (x1, y1, x2, y2, area) = (&x1[..m], &y1[..m], &x2[..m], &y2[..m], &area[..m]);
    let mut count = 0u32;
    for j in 0..m {
        let w = cmax(0.0, cmin(ix2, x2[j]) - cmax(ix1, x1[j]));
        let h = cmax(0.0, cmin(iy2, y2[j]) - cmax(iy1, y1[j]));
        let inter = w * h;
        let ovr = inter / (ia + area[j] - inter);
        dead[j] |= (ovr > thr) as u8;
        count += dead[j] as u32;
    }
    count as usize
}

/// C++'s `std::max` (what torchvision calls): `a` unless `a < b`; one vector instruction.
#[inline(always)]
pub(crate) fn cmax(a: f32, b: f32) -> f32 {
    if a < b {
        b
    } else {
        a
    }
}

/// C++'s `std::min`: `a` unless `b < a`.
#[inline(always)]
pub(crate) fn cmin(a: f32, b: f32) -> f32 {
    if b < a {
        b
    } else {
        a
    }
}

#[path = "nms_grid.rs"]
mod grid;

#[cfg(test)]
#[path = "nms_tests.rs"]
mod tests;
