//! The input gradient of stride-2 4×4 convolutions (the forward pass of DCGAN's 128 → 64
//! transposed convolution) by phases of `dx`: the pixels `(i, j)` of `dx` with
//! `(i + ph, j + pw) = (2u + r, 2v + s)` see only the taps `(r + 2α, s + 2β)` of the kernel,
//! so each phase `(r, s)` is a stride-1 2×2 correlation of `dy` (padded by one row and
//! column above and left) with the flipped sub-kernel `w[o][c][r + 2(1 − α), s + 2(1 − β)]`.
//! The four phases are one stride-1 convolution with `4c` output channels over the same
//! `dy` tiles, so [`winograd2`](super::winograd2) transforms each `dy` tile once for all
//! of them, and its output transform writes straight to each phase's strided pixels of
//! `dx` (no interleaving pass, no col2im). By F(4×4, 2×2) even where the phases are 7×7:
//! F(7×7, 2×2) ran no faster here (see [`run_f4`]).

use super::super::geom::ConvGeom;
use super::winograd2::{run_f4, Sink};
use crate::Element;

/// Where phase channel `q · c + ci` (`q = 2r + s`) of the stride-1 output goes in `dx`.
struct Phases<'a, T> {
    /// `dx`'s channels and size, and the layer's padding.
    c: usize,
    h: usize,
    w: usize,
    pad: [usize; 2],
    /// The stride-1 output's width.
    uw: usize,
    bias: Option<&'a [T]>,
}

/// The run `lo..hi` of phase rows (columns) `u < len` whose pixel `2u + r − pad` lies inside
/// `0..size`.
fn inside(r: usize, pad: usize, size: usize, len: usize) -> (usize, usize) {
    let lo = pad.saturating_sub(r).div_ceil(2);
    let hi = (size + pad).checked_sub(r + 1).map_or(0, |last| last / 2 + 1).min(len);
    (lo, hi.max(lo))
}

impl<T: Element> Sink<T> for Phases<'_, T> {
    fn image_len(&self) -> usize {
        self.c * self.h * self.w
    }
    /// Plane by plane of `dx`, its four phases one after the other while the plane is in
    /// L1 (where the block holds all four).
    #[inline(always)]
    fn flush(&self, stage: &[T], sp: usize, on: usize, o_lo: usize, put: &mut impl FnMut(usize, T)) {
        let (c, h, w, uw) = (self.c, self.h, self.w, self.uw);
        let uh = stage.len() / (sp * uw);
        let whole = o_lo == 0 && on == 4 * c;
        for k in 0..on {
            let o = if whole { k % 4 * c + k / 4 } else { k };
            let (q, ci) = ((o_lo + o) / c, (o_lo + o) % c);
            let (r, s) = (q / 2, q % 2);
            let b = self.bias.map_or(T::ZERO, |b| b[ci]);
            let (y0, y1) = inside(r, self.pad[0], h, uh);
            let (x0, x1) = inside(s, self.pad[1], w, uw);
            for yy in y0..y1 {
                let row = ci * h * w + (2 * yy + r - self.pad[0]) * w;
                for xx in x0..x1 {
                    put(row + 2 * xx + s - self.pad[1], stage[(yy * uw + xx) * sp + o] + b);
                }
            }
        }
    }
}

/// [`conv2d_backward_input`](super::super::conv2d_backward_input) for a layer
/// [`applies`](super::applies) takes.
pub(in super::super) fn backward_input<T: Element>(g: &ConvGeom, dy: &[T], w: &[T], bias: Option<&[T]>, dx: &mut [T]) {
    let [ph, pw] = g.padding;
    // Phase rows u < uh and columns v < uw reach every pixel of dx.
    let (uh, uw) = ((g.h - 1 + ph) / 2 + 1, (g.w - 1 + pw) / 2 + 1);
    let pg = ConvGeom::new([g.n, g.o, uh + 1, uw + 1], [4 * g.c, 2, 2], [1, 1], [0, 0], [1, 1], 1);
    debug_assert_eq!((pg.oh, pg.ow), (uh, uw));
    // wd[q · c + ci][o][α][β] = w[o][ci][r + 2(1 − α)][s + 2(1 − β)], read in place.
    let tap = |qc: usize, o: usize, ab: usize| {
        let (q, ci, a, b) = (qc / g.c, qc % g.c, ab / 2, ab % 2);
        let (r, s) = (q / 2, q % 2);
        w[(o * g.c + ci) * 16 + (r + 2 * (1 - a)) * 4 + s + 2 * (1 - b)]
    };
    let (oimg, p) = (g.o * g.p(), g.p());
    // Each image of dy channel-last, one row and column of zeros above and left; rows and
    // columns past uh, uw reach no pixel of dx.
    let load = |n: usize, hp: usize, wp: usize, dst: &mut [T]| {
        dst[..hp * wp * g.o].fill(T::ZERO);
        let di = &dy[n * oimg..][..oimg];
        let (rows, cols) = (g.oh.min(uh).min(hp - 1), g.ow.min(uw).min(wp - 1));
        // Sixteen channels at a time, so the stores fill whole lines while they stay in L1.
        for (ob, planes) in di.chunks(16 * p).enumerate() {
            for y in 0..rows {
                let out = &mut dst[((y + 1) * wp + 1) * g.o + ob * 16..];
                for (oi, plane) in planes.chunks_exact(p).enumerate() {
                    for (xx, &v) in plane[y * g.ow..][..cols].iter().enumerate() {
                        out[xx * g.o + oi] = v;
                    }
                }
            }
        }
    };
    let sink = Phases {
        c: g.c,
        h: g.h,
        w: g.w,
        pad: g.padding,
        uw,
        bias,
    };
    run_f4(&pg, &load, &tap, &sink, dx);
}
