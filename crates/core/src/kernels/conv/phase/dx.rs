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
use super::winograd2::{run_f4, Place, Sink};
use crate::Element;

/// Where phase channel `q · c + ci` (`q = 2r + s`) of the stride-1 output goes in `dx`.
struct Phases<'a, T> {
    /// `(ci · h · w, r, s, ci)` per phase channel.
    lanes: Vec<[usize; 4]>,
    /// `dx`'s size and the layer's padding.
    h: usize,
    w: usize,
    pad: [usize; 2],
    /// Elements of one image of `dx`.
    img: usize,
    bias: Option<&'a [T]>,
}

impl<T: Element> Sink<T> for Phases<'_, T> {
    fn image_len(&self) -> usize {
        self.img
    }
    #[inline(always)]
    fn at(&self, o: usize, yy: usize, xx: usize) -> Option<usize> {
        let [plane, r, s, _] = self.lanes[o];
        let (i, j) = (
            (2 * yy + r).checked_sub(self.pad[0])?,
            (2 * xx + s).checked_sub(self.pad[1])?,
        );
        (i < self.h && j < self.w).then_some(plane + i * self.w + j)
    }
    #[inline(always)]
    fn bias(&self, o: usize) -> T {
        self.bias.map_or(T::ZERO, |b| b[self.lanes[o][3]])
    }
    /// A block inside one phase goes to one pixel of consecutive planes.
    #[inline(always)]
    fn place(&self, o: usize, n: usize, yy: usize, xx: usize) -> Place {
        let (first, last) = (self.lanes[o], self.lanes[o + n - 1]);
        if (first[1], first[2]) != (last[1], last[2]) {
            return Place::Each;
        }
        match self.at(o, yy, xx) {
            Some(at) => Place::Strided(at, self.h * self.w),
            None => Place::Skip,
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
    // wd[q · c + ci][o][α][β] = w[o][ci][r + 2(1 − α)][s + 2(1 − β)].
    let mut wd = vec![T::ZERO; 16 * g.o * g.c];
    for q in 0..4 {
        let (r, s) = (q / 2, q % 2);
        for ci in 0..g.c {
            for o in 0..g.o {
                let src = &w[(o * g.c + ci) * 16..][..16];
                let dst = &mut wd[((q * g.c + ci) * g.o + o) * 4..][..4];
                for (ab, d) in dst.iter_mut().enumerate() {
                    let (a, b) = (ab / 2, ab % 2);
                    *d = src[(r + 2 * (1 - a)) * 4 + s + 2 * (1 - b)];
                }
            }
        }
    }
    let (oimg, p) = (g.o * g.p(), g.p());
    // Each image of dy channel-last, one row and column of zeros above and left; rows and
    // columns past uh, uw reach no pixel of dx.
    let load = |n: usize, hp: usize, wp: usize, dst: &mut [T]| {
        dst[..hp * wp * g.o].fill(T::ZERO);
        let di = &dy[n * oimg..][..oimg];
        let (rows, cols) = (g.oh.min(uh).min(hp - 1), g.ow.min(uw).min(wp - 1));
        for o in 0..g.o {
            let plane = &di[o * p..][..p];
            for (y, row) in plane.chunks(g.ow).take(rows).enumerate() {
                let out = &mut dst[((y + 1) * wp + 1) * g.o + o..];
                for (xx, &v) in row[..cols].iter().enumerate() {
                    out[xx * g.o] = v;
                }
            }
        }
    };
    let sink = Phases {
        lanes: (0..4 * g.c)
            .map(|k| {
                let (q, ci) = (k / g.c, k % g.c);
                [ci * g.h * g.w, q / 2, q % 2, ci]
            })
            .collect(),
        h: g.h,
        w: g.w,
        pad: g.padding,
        img: g.c * g.h * g.w,
        bias,
    };
    run_f4(&pg, &load, &wd, &sink, dx);
}
