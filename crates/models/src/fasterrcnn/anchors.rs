//! torchvision's `AnchorGenerator` for one feature level: at every cell of the feature map,
//! one anchor per (aspect ratio, size) pair, ratio-major, centred on the cell's top-left
//! pixel `(x · stride, y · stride)` as torchvision places them.

/// The zero-centred anchors of one cell: for each ratio `r` (height / width) and each size
/// `s`, width `s / √r` and height `s · √r` (area `s²`), corners rounded half-to-even as
/// torchvision's `generate_anchors` does.
pub fn base_anchors(sizes: &[f32], ratios: &[f32]) -> Vec<[f32; 4]> {
    let mut out = Vec::with_capacity(sizes.len() * ratios.len());
    for &r in ratios {
        let h_ratio = r.sqrt();
        let w_ratio = 1.0 / h_ratio;
        for &s in sizes {
            let (w, h) = (w_ratio * s, h_ratio * s);
            out.push([
                (-w / 2.0).round_ties_even(),
                (-h / 2.0).round_ties_even(),
                (w / 2.0).round_ties_even(),
                (h / 2.0).round_ties_even(),
            ]);
        }
    }
    out
}

/// Every anchor of a `grid` = `[H, W]` feature map whose cells are `stride` = `[sy, sx]`
/// pixels apart: index `(y · W + x) · A + a`, the order the RPN head's outputs are
/// flattened in.
pub fn grid_anchors(base: &[[f32; 4]], grid: [usize; 2], stride: [usize; 2]) -> Vec<[f32; 4]> {
    let [h, w] = grid;
    let mut out = Vec::with_capacity(h * w * base.len());
    for y in 0..h {
        let sy = (y * stride[0]) as f32;
        for x in 0..w {
            let sx = (x * stride[1]) as f32;
            out.extend(base.iter().map(|b| [b[0] + sx, b[1] + sy, b[2] + sx, b[3] + sy]));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn base_anchors_have_the_sizes_and_ratios_asked() {
        let b = base_anchors(&[16.0, 32.0], &[0.5, 1.0, 2.0]);
        assert_eq!(b.len(), 6);
        // Ratio 1: squares of side 16 and 32.
        assert_eq!(b[2], [-8.0, -8.0, 8.0, 8.0]);
        assert_eq!(b[3], [-16.0, -16.0, 16.0, 16.0]);
        // Ratio 0.5 (wide): 16/√0.5 = 22.63 wide → ±11.31 → ±11; 16·√0.5 = 11.31 high → ±5.66 → ±6.
        assert_eq!(b[0], [-11.0, -6.0, 11.0, 6.0]);
        // Ratio 2 (tall), size 32: 22.63 wide, 45.25 high → ±11, ±23.
        assert_eq!(b[5], [-11.0, -23.0, 11.0, 23.0]);
    }

    #[test]
    fn grid_anchors_count_and_centres() {
        let base = base_anchors(&[8.0, 16.0], &[1.0, 2.0]);
        let a = grid_anchors(&base, [3, 5], [4, 4]);
        assert_eq!(a.len(), 3 * 5 * 4);
        // Cell (y = 2, x = 3), anchor 1 (ratio 1, size 16): centred at (12, 8).
        let i = (2 * 5 + 3) * 4 + 1;
        assert_eq!(a[i], [4.0, 0.0, 20.0, 16.0]);
        for (k, b) in a.iter().enumerate() {
            let cell = k / 4;
            let (cy, cx) = ((cell / 5 * 4) as f32, (cell % 5 * 4) as f32);
            assert_eq!(((b[0] + b[2]) / 2.0, (b[1] + b[3]) / 2.0), (cx, cy), "anchor {k}");
        }
    }
}
