//! Bounding boxes as torchvision's `ops` names them: [`box_convert`] between the
//! `xyxy`, `xywh` (COCO: corner and size) and `cxcywh` formats, [`box_area`] and the
//! pairwise [`box_iou`] of `xyxy` boxes; [`iou_xywh`] for one pair of COCO-style boxes.
//!
//! ```
//! use nabla_vision::{box_convert, box_iou, BoxFormat};
//! let a = box_convert([0.0, 0.0, 2.0, 2.0], BoxFormat::Xywh, BoxFormat::Xyxy);
//! let b = box_convert([1.0, 0.0, 2.0, 2.0], BoxFormat::Xywh, BoxFormat::Xyxy);
//! // Overlap 1×2 = 2 of a union 4 + 4 − 2 = 6.
//! assert!((box_iou(&[a], &[b])[0][0] - 1.0 / 3.0).abs() < 1e-6);
//! ```

/// How the four numbers of a box are laid out.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BoxFormat {
    /// Corners: `x1, y1, x2, y2` (x2 ≥ x1, y2 ≥ y1).
    Xyxy,
    /// Top-left corner and size: `x, y, w, h` (COCO's `bbox`).
    Xywh,
    /// Centre and size: `cx, cy, w, h`.
    Cxcywh,
}

impl BoxFormat {
    /// The format torchvision calls `name` (`xyxy`, `xywh`, `cxcywh`).
    pub fn parse(name: &str) -> Option<BoxFormat> {
        match name {
            "xyxy" => Some(BoxFormat::Xyxy),
            "xywh" => Some(BoxFormat::Xywh),
            "cxcywh" => Some(BoxFormat::Cxcywh),
            _ => None,
        }
    }
}

/// `b` from `in_fmt` to `out_fmt` (torchvision's `box_convert` for one box).
pub fn box_convert(b: [f32; 4], in_fmt: BoxFormat, out_fmt: BoxFormat) -> [f32; 4] {
    let [x1, y1, x2, y2] = match in_fmt {
        BoxFormat::Xyxy => b,
        BoxFormat::Xywh => [b[0], b[1], b[0] + b[2], b[1] + b[3]],
        BoxFormat::Cxcywh => [
            b[0] - b[2] / 2.0,
            b[1] - b[3] / 2.0,
            b[0] + b[2] / 2.0,
            b[1] + b[3] / 2.0,
        ],
    };
    match out_fmt {
        BoxFormat::Xyxy => [x1, y1, x2, y2],
        BoxFormat::Xywh => [x1, y1, x2 - x1, y2 - y1],
        BoxFormat::Cxcywh => [(x1 + x2) / 2.0, (y1 + y2) / 2.0, x2 - x1, y2 - y1],
    }
}

/// The area of an `xyxy` box; a box with x2 < x1 or y2 < y1 has area 0.
pub fn box_area(b: [f32; 4]) -> f32 {
    (b[2] - b[0]).max(0.0) * (b[3] - b[1]).max(0.0)
}

/// Intersection over union of two `xyxy` boxes, in f64 so that near-identical boxes give 1
/// exactly; 0 when the union is empty (two zero-area boxes), where torchvision gives NaN,
/// so that a degenerate prediction counts as a miss rather than poisoning a mean.
fn iou_pair(a: [f32; 4], b: [f32; 4]) -> f32 {
    let w = (a[2].min(b[2]) as f64 - a[0].max(b[0]) as f64).max(0.0);
    let h = (a[3].min(b[3]) as f64 - a[1].max(b[1]) as f64).max(0.0);
    let inter = w * h;
    let union = box_area(a) as f64 + box_area(b) as f64 - inter;
    if union <= 0.0 {
        return 0.0;
    }
    (inter / union) as f32
}

/// The IoU of every box of `a` with every box of `b` (all `xyxy`): `[a.len()][b.len()]`,
/// as torchvision's `box_iou` (except 0, not NaN, for two empty boxes).
pub fn box_iou(a: &[[f32; 4]], b: &[[f32; 4]]) -> Vec<Vec<f32>> {
    a.iter().map(|&p| b.iter().map(|&q| iou_pair(p, q)).collect()).collect()
}

/// The IoU of two `xywh` (COCO) boxes.
pub fn iou_xywh(a: [f32; 4], b: [f32; 4]) -> f32 {
    let to = |v| box_convert(v, BoxFormat::Xywh, BoxFormat::Xyxy);
    iou_pair(to(a), to(b))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn close(a: f32, b: f32) {
        assert!((a - b).abs() < 1e-6, "{a} vs {b}");
    }

    #[test]
    fn formats_round_trip_by_hand() {
        let xywh = [2.0, 3.0, 4.0, 6.0];
        assert_eq!(
            box_convert(xywh, BoxFormat::Xywh, BoxFormat::Xyxy),
            [2.0, 3.0, 6.0, 9.0]
        );
        assert_eq!(
            box_convert(xywh, BoxFormat::Xywh, BoxFormat::Cxcywh),
            [4.0, 6.0, 4.0, 6.0]
        );
        assert_eq!(
            box_convert([4.0, 6.0, 4.0, 6.0], BoxFormat::Cxcywh, BoxFormat::Xywh),
            xywh
        );
        assert_eq!(
            box_convert([2.0, 3.0, 6.0, 9.0], BoxFormat::Xyxy, BoxFormat::Xywh),
            xywh
        );
        assert_eq!(BoxFormat::parse("cxcywh"), Some(BoxFormat::Cxcywh));
        assert_eq!(BoxFormat::parse("yxyx"), None);
        assert_eq!(box_area([2.0, 3.0, 6.0, 9.0]), 24.0);
        assert_eq!(box_area([6.0, 3.0, 2.0, 9.0]), 0.0);
    }

    #[test]
    fn iou_of_hand_computed_cases() {
        // Disjoint.
        close(iou_xywh([0.0, 0.0, 2.0, 2.0], [5.0, 5.0, 1.0, 1.0]), 0.0);
        // Touching along an edge: no area in common.
        close(iou_xywh([0.0, 0.0, 2.0, 2.0], [2.0, 0.0, 2.0, 2.0]), 0.0);
        // Nested: the inner box's area over the outer's, 4 / 16.
        close(iou_xywh([0.0, 0.0, 4.0, 4.0], [1.0, 1.0, 2.0, 2.0]), 0.25);
        // Identical.
        close(iou_xywh([1.5, 2.5, 3.0, 7.0], [1.5, 2.5, 3.0, 7.0]), 1.0);
        // Zero area: inside another box it still has no overlap area; two of them give 0.
        close(iou_xywh([1.0, 1.0, 0.0, 0.0], [0.0, 0.0, 4.0, 4.0]), 0.0);
        close(iou_xywh([1.0, 1.0, 0.0, 0.0], [1.0, 1.0, 0.0, 0.0]), 0.0);
        // Partial: overlap 1×1 of 4 + 9 − 1.
        close(iou_xywh([0.0, 0.0, 2.0, 2.0], [1.0, 1.0, 3.0, 3.0]), 1.0 / 12.0);
    }

    #[test]
    fn pairwise_matrix_is_rows_by_columns() {
        let a = [[0.0, 0.0, 2.0, 2.0], [0.0, 0.0, 4.0, 4.0]];
        let b = [[1.0, 1.0, 3.0, 3.0], [0.0, 0.0, 2.0, 2.0], [10.0, 10.0, 11.0, 11.0]];
        let m = box_iou(&a, &b);
        assert_eq!((m.len(), m[0].len()), (2, 3));
        close(m[0][0], 1.0 / 7.0);
        close(m[0][1], 1.0);
        close(m[1][0], 4.0 / 16.0);
        close(m[1][1], 4.0 / 16.0);
        close(m[1][2], 0.0);
    }
}
