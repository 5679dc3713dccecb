//! torchvision's `BoxCoder`: boxes as offsets `(dx, dy, dw, dh)` from reference boxes
//! (anchors or proposals), scaled by per-coordinate weights, on plain slices (no gradient
//! flows through targets or decoded proposals, as in torchvision).

/// torchvision's `bbox_xform_clip`: `dw` and `dh` are clamped to ln(1000/16) before `exp`,
/// so an untrained head cannot overflow a box.
pub fn bbox_xform_clip() -> f32 {
    (1000.0f32 / 16.0).ln()
}

/// Encodes and decodes boxes relative to reference boxes, with weights `(wx, wy, ww, wh)`
/// (RPN: 1, 1, 1, 1; Fast R-CNN head: 10, 10, 5, 5).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct BoxCoder {
    /// The weights `(wx, wy, ww, wh)` the offsets are multiplied by when encoding.
    pub weights: [f32; 4],
    /// The largest `dw`/`dh` accepted when decoding.
    pub clip: f32,
}

impl BoxCoder {
    /// A coder with `weights` and torchvision's clip.
    pub fn new(weights: [f32; 4]) -> BoxCoder {
        BoxCoder {
            weights,
            clip: bbox_xform_clip(),
        }
    }

    /// The offsets that move `reference` onto `gt` (torchvision's `encode_single`).
    pub fn encode(&self, gt: [f32; 4], reference: [f32; 4]) -> [f32; 4] {
        let [wx, wy, ww, wh] = self.weights;
        let ew = reference[2] - reference[0];
        let eh = reference[3] - reference[1];
        let ecx = reference[0] + 0.5 * ew;
        let ecy = reference[1] + 0.5 * eh;
        let gw = gt[2] - gt[0];
        let gh = gt[3] - gt[1];
        let gcx = gt[0] + 0.5 * gw;
        let gcy = gt[1] + 0.5 * gh;
        [
            wx * (gcx - ecx) / ew,
            wy * (gcy - ecy) / eh,
            ww * (gw / ew).ln(),
            wh * (gh / eh).ln(),
        ]
    }

    /// The box `codes` make of `reference` (torchvision's `decode_single`).
    pub fn decode(&self, codes: [f32; 4], reference: [f32; 4]) -> [f32; 4] {
        let [wx, wy, ww, wh] = self.weights;
        let w = reference[2] - reference[0];
        let h = reference[3] - reference[1];
        let cx = reference[0] + 0.5 * w;
        let cy = reference[1] + 0.5 * h;
        let dx = codes[0] / wx;
        let dy = codes[1] / wy;
        let dw = (codes[2] / ww).min(self.clip);
        let dh = (codes[3] / wh).min(self.clip);
        let pcx = dx * w + cx;
        let pcy = dy * h + cy;
        let pw = dw.exp() * w;
        let ph = dh.exp() * h;
        [pcx - 0.5 * pw, pcy - 0.5 * ph, pcx + 0.5 * pw, pcy + 0.5 * ph]
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn close(a: [f32; 4], b: [f32; 4], tol: f32) -> bool {
        a.iter().zip(b.iter()).all(|(x, y)| (x - y).abs() <= tol)
    }

    #[test]
    fn encode_then_decode_gives_the_box_back() {
        // Size ratios stay under 1000/16, where decoding clips.
        let refs = [
            [0.0, 0.0, 16.0, 16.0],
            [10.5, 3.0, 20.0, 41.0],
            [30.0, 30.0, 34.0, 62.0],
        ];
        let gts = [[2.0, 1.0, 14.0, 20.0], [11.0, 4.0, 40.0, 38.0], [0.0, 0.0, 63.0, 63.0]];
        for weights in [[1.0, 1.0, 1.0, 1.0], [10.0, 10.0, 5.0, 5.0]] {
            let c = BoxCoder::new(weights);
            for r in refs {
                for g in gts {
                    let back = c.decode(c.encode(g, r), r);
                    assert!(close(back, g, 1e-3), "{g:?} via {r:?}: {back:?}");
                }
            }
        }
    }

    #[test]
    fn encoding_follows_torchvision_formula() {
        let c = BoxCoder::new([10.0, 10.0, 5.0, 5.0]);
        // Reference centred at (5, 5), 10×10; target centred at (7, 4), 20×5.
        let t = c.encode([-3.0, 1.5, 17.0, 6.5], [0.0, 0.0, 10.0, 10.0]);
        let want = [10.0 * 0.2, 10.0 * -0.1, 5.0 * 2f32.ln(), 5.0 * 0.5f32.ln()];
        assert!(close(t, want, 1e-5), "{t:?}");
    }

    #[test]
    fn huge_size_codes_are_clipped() {
        let c = BoxCoder::new([1.0; 4]);
        let b = c.decode([0.0, 0.0, 100.0, 100.0], [0.0, 0.0, 16.0, 16.0]);
        // exp(ln(1000/16)) · 16 = 1000 wide, centred at 8.
        assert!(close(b, [8.0 - 500.0, 8.0 - 500.0, 508.0, 508.0], 1e-2), "{b:?}");
    }
}
