//! The input gradient of stride-2 4×4 convolutions (the forward pass of DCGAN's 128 → 64
//! transposed convolution) by phases of `dx`: the pixels `(i, j)` of `dx` with
//! `(i + ph, j + pw) = (2u + r, 2v + s)` see only the taps `(r + 2α, s + 2β)` of the kernel,
//! so each phase `(r, s)` is a stride-1 2×2 correlation of `dy` (padded by one row and
//! column above and left) with the flipped sub-kernel `w[o][c][r + 2(1 − α), s + 2(1 − β)]`.
//! The four phases are one stride-1 convolution with `4c` output channels over the same
//! `dy` tiles, so [`winograd2`](super::winograd2) transforms each `dy` tile once for all
//! of them, and its output transform writes straight to each phase's strided pixels of
//! `dx` (no interleaving pass, no col2im). By F(4×4, 2×2): F(7×7, 2×2) ran no faster here
//! (see [`run_f4`]).
//!
//! Where the forward takes F(7×7, 2×2) with one tile per map (DCGAN's 7×7 maps), `dx` is
//! instead the gradient of the forward's phase images by its adjoint ([`by_adjoint`]):
//! one 7×7 `dy` tile per map and 64 products per image, each phase image's pixels written
//! to `dx`. Its f32 error is about 7 times F(4×4)'s (see the test).

use super::super::geom::ConvGeom;
use super::sets::use_f7;
use super::winograd2::{run_adjoint, run_f4, Sink};
use crate::Element;

/// `dx` as the sinks see it.
struct Target<'a, T> {
    /// `dx`'s channels and size, and the layer's padding.
    c: usize,
    h: usize,
    w: usize,
    pad: [usize; 2],
    /// The staged outputs' width.
    uw: usize,
    bias: Option<&'a [T]>,
}

impl<'a, T> Target<'a, T> {
    /// `dx` of `g` (with `bias`) from staged outputs `uw` wide.
    fn new(g: &ConvGeom, uw: usize, bias: Option<&'a [T]>) -> Self {
        Target {
            c: g.c,
            h: g.h,
            w: g.w,
            pad: g.padding,
            uw,
            bias,
        }
    }

    /// Elements of one image of `dx`.
    fn image_len(&self) -> usize {
        self.c * self.h * self.w
    }
}

/// Where phase channel `q · c + ci` (`q = 2r + s`) of the stride-1 output goes in `dx`.
struct Phases<'a, T>(Target<'a, T>);

/// The run `lo..hi` of phase rows (columns) `u < len` whose pixel `2u + r − pad` lies inside
/// `0..size`.
fn inside(r: usize, pad: usize, size: usize, len: usize) -> (usize, usize) {
    let lo = pad.saturating_sub(r).div_ceil(2);
    let hi = (size + pad).checked_sub(r + 1).map_or(0, |last| last / 2 + 1).min(len);
    (lo, hi.max(lo))
}

impl<T: Element> Sink<T> for Phases<'_, T> {
    fn image_len(&self) -> usize {
        self.0.image_len()
    }
    /// Plane by plane of `dx`, its four phases one after the other while the plane is in
    /// L1 (where the block holds all four).
    #[inline(always)]
    fn flush(&self, stage: &[T], sp: usize, on: usize, o_lo: usize, put: &mut impl FnMut(usize, T)) {
        let (c, h, w, uw) = (self.0.c, self.0.h, self.0.w, self.0.uw);
        let uh = stage.len() / (sp * uw);
        let whole = o_lo == 0 && on == 4 * c;
        for k in 0..on {
            let o = if whole { k % 4 * c + k / 4 } else { k };
            let (q, ci) = ((o_lo + o) / c, (o_lo + o) % c);
            let (r, s) = (q / 2, q % 2);
            let b = self.0.bias.map_or(T::ZERO, |b| b[ci]);
            let (y0, y1) = inside(r, self.0.pad[0], h, uh);
            let (x0, x1) = inside(s, self.0.pad[1], w, uw);
            for yy in y0..y1 {
                let row = ci * h * w + (2 * yy + r - self.0.pad[0]) * w;
                for xx in x0..x1 {
                    put(row + 2 * xx + s - self.0.pad[1], stage[(yy * uw + xx) * sp + o] + b);
                }
            }
        }
    }
}

/// Where channel `c·4 + 2r + s` of the adjoint's phase images goes in `dx`: pixel `(u, v)`
/// to `(2u + r − ph, 2v + s − pw)`.
struct PhaseImages<'a, T>(Target<'a, T>);

impl<T: Element> Sink<T> for PhaseImages<'_, T> {
    fn image_len(&self) -> usize {
        self.0.image_len()
    }
    /// Plane by plane of `dx` (its four phases adjacent channels of the stage).
    #[inline(always)]
    fn flush(&self, stage: &[T], sp: usize, on: usize, o_lo: usize, put: &mut impl FnMut(usize, T)) {
        let (h, w, uw) = (self.0.h, self.0.w, self.0.uw);
        let uh = stage.len() / (sp * uw);
        for k in 0..on {
            let ch = o_lo + k;
            let (ci, r, s) = (ch / 4, ch % 4 / 2, ch % 2);
            let b = self.0.bias.map_or(T::ZERO, |b| b[ci]);
            let (y0, y1) = inside(r, self.0.pad[0], h, uh);
            let (x0, x1) = inside(s, self.0.pad[1], w, uw);
            for u in y0..y1 {
                let row = ci * h * w + (2 * u + r - self.0.pad[0]) * w;
                let from = &stage[u * uw * sp..];
                for v in x0..x1 {
                    put(row + 2 * v + s - self.0.pad[1], from[v * sp + k] + b);
                }
            }
        }
    }
}

/// [`conv2d_backward_input`](super::super::conv2d_backward_input) for a layer
/// [`applies`](super::applies) takes: by the adjoint of the forward's F(7×7, 2×2) where the
/// forward takes it with one tile per map and its phase images reach every pixel of `dx`
/// (DCGAN's 14×14 ↔ 7×7), by F(4×4, 2×2) over the phases of `dx` elsewhere.
pub(in super::super) fn backward_input<T: Element>(g: &ConvGeom, dy: &[T], w: &[T], bias: Option<&[T]>, dx: &mut [T]) {
    let [uh, uw] = union(g);
    if use_f7(g.oh, g.ow) && g.oh <= 7 && g.ow <= 7 && (uh, uw) == (g.oh + 1, g.ow + 1) {
        by_adjoint(g, dy, w, bias, dx)
    } else {
        by_phases(g, dy, w, bias, dx)
    }
}

/// The rows `uh` and columns `uw` of phase pixels that reach every pixel of `dx`.
fn union(g: &ConvGeom) -> [usize; 2] {
    let [ph, pw] = g.padding;
    [(g.h - 1 + ph) / 2 + 1, (g.w - 1 + pw) / 2 + 1]
}

/// Image `n` of `dy` channel-last into `dst` (`[hp, wp, o]`) from row and column `off`, zeros
/// before and after; rows and columns past `lim` reach no pixel of `dx`.
#[allow(clippy::too_many_arguments)]
fn load_dy<T: Element>(
    g: &ConvGeom,
    dy: &[T],
    lim: [usize; 2],
    off: usize,
    n: usize,
    hp: usize,
    wp: usize,
    dst: &mut [T],
) {
    let (oimg, p) = (g.o * g.p(), g.p());
    dst[..hp * wp * g.o].fill(T::ZERO);
    let di = &dy[n * oimg..][..oimg];
    let (rows, cols) = (g.oh.min(lim[0]).min(hp - off), g.ow.min(lim[1]).min(wp - off));
    // Sixteen channels at a time, so the stores fill whole lines while they stay in L1.
    for (ob, planes) in di.chunks(16 * p).enumerate() {
        for y in 0..rows {
            let out = &mut dst[((y + off) * wp + off) * g.o + ob * 16..];
            for (oi, plane) in planes.chunks_exact(p).enumerate() {
                for (xx, &v) in plane[y * g.ow..][..cols].iter().enumerate() {
                    out[xx * g.o + oi] = v;
                }
            }
        }
    }
}

/// `dx` as the forward's phase images' gradient, `B [U ⊙ (A dy Aᵀ)] Bᵀ` per image with the
/// forward's `U` (see [`run_adjoint`]), each phase image written to its pixels of `dx`:
/// 64 products per image where F(4×4) over the phases of `dx` takes 100, and the input
/// transform reads 7×7 values instead of four 5×5 tiles (DCGAN's 64 → 128 layer, one
/// thread, CPU time: 11.8–12.1 → 9.2–9.5 ms; two threads 5.9–6.2 → 4.7 ms).
fn by_adjoint<T: Element>(g: &ConvGeom, dy: &[T], w: &[T], bias: Option<&[T]>, dx: &mut [T]) {
    let ag = ConvGeom::new([g.n, g.o, g.oh, g.ow], [4 * g.c, 2, 2], [1, 1], [1, 1], [1, 1], 1);
    // The forward's `wp[o][c·4 + 2r + s][a, b] = w[o][c][2a + r, 2b + s]`, read in place, from
    // `o` to `c·4 + 2r + s`.
    let tap = |ch: usize, o: usize, ab: usize| {
        let (ci, r, s, a, b) = (ch / 4, ch % 4 / 2, ch % 2, ab / 2, ab % 2);
        w[(o * g.c + ci) * 16 + (2 * a + r) * 4 + 2 * b + s]
    };
    let sink = PhaseImages(Target::new(g, g.ow + 1, bias));
    let lim = [g.oh, g.ow];
    let load = |n: usize, hp: usize, wp: usize, dst: &mut [T]| load_dy(g, dy, lim, 0, n, hp, wp, dst);
    run_adjoint(&ag, &load, &tap, &sink, dx);
}

/// `dx` phase by phase, each a stride-1 2×2 correlation of `dy` (see the module doc).
fn by_phases<T: Element>(g: &ConvGeom, dy: &[T], w: &[T], bias: Option<&[T]>, dx: &mut [T]) {
    let [uh, uw] = union(g);
    let pg = ConvGeom::new([g.n, g.o, uh + 1, uw + 1], [4 * g.c, 2, 2], [1, 1], [0, 0], [1, 1], 1);
    debug_assert_eq!((pg.oh, pg.ow), (uh, uw));
    // wd[q · c + ci][o][α][β] = w[o][ci][r + 2(1 − α)][s + 2(1 − β)], read in place.
    let tap = |qc: usize, o: usize, ab: usize| {
        let (q, ci, a, b) = (qc / g.c, qc % g.c, ab / 2, ab % 2);
        let (r, s) = (q / 2, q % 2);
        w[(o * g.c + ci) * 16 + (r + 2 * (1 - a)) * 4 + s + 2 * (1 - b)]
    };
    let sink = Phases(Target::new(g, uw, bias));
    // One row and column of zeros above and left of each image.
    let load = |n: usize, hp: usize, wp: usize, dst: &mut [T]| load_dy(g, dy, [uh, uw], 1, n, hp, wp, dst);
    run_f4(&pg, &load, &tap, &sink, dx);
}

#[cfg(test)]
mod tests {
    use super::super::super::im2col::im2col_backward_input;
    use super::super::testdata::{dcgan_weights, error_over_largest};
    use super::*;

    /// DCGAN-like data (weights about N(0, 0.02), gradients of unit size) at its 64 → 128
    /// layer and at a 12×12 one: the largest f32 error of each way over the largest entry of
    /// `dx`. Measured: im2col 9.4e-7, F(4×4) phases 6.5e-6, the adjoint 4.4e-5 at DCGAN's
    /// (its input transform's points ±2 scale the gradient by up to 64² before the
    /// products; at the forward's output they scale the products so, 8.9e-6 there).
    #[test]
    fn adjoint_error_in_f32_stays_small() {
        for (g, seed) in [
            (
                ConvGeom::new([6, 64, 14, 14], [128, 4, 4], [2, 2], [1, 1], [1, 1], 1),
                0.0,
            ),
            (
                ConvGeom::new([3, 32, 12, 12], [48, 4, 4], [2, 2], [1, 1], [1, 1], 1),
                1.3,
            ),
        ] {
            assert!(
                union(&g) == [g.oh + 1, g.ow + 1] && use_f7(g.oh, g.ow),
                "{g:?} takes the adjoint"
            );
            let (ea, e4) = f32_errors(&g, seed);
            assert!(ea < 1e-4 && ea < 10.0 * e4, "adjoint {ea:e}, F(4×4) {e4:e}");
        }
    }

    /// The adjoint's and the phases' f32 errors (printed with im2col's) on `g`.
    fn f32_errors(g: &ConvGeom, seed: f64) -> (f64, f64) {
        let g = *g;
        let dy: Vec<f64> = (0..g.n * g.o * g.p())
            .map(|i| (i as f64 * 0.37 + seed).sin() * (1.0 + (i as f64 * 0.011).cos()))
            .collect();
        let w = dcgan_weights(g.o * g.c * 16, seed);
        let mut want = vec![0.0; g.n * g.c * g.h * g.w];
        im2col_backward_input(&g, &dy, &w, None, &mut want);
        let f = |v: &[f64]| v.iter().map(|&v| v as f32).collect::<Vec<f32>>();
        let (dyf, wf) = (f(&dy), f(&w));
        let err = |got: &[f32]| error_over_largest(got, &want, 0.0);
        let mut got = vec![0f32; want.len()];
        by_adjoint(&g, &dyf, &wf, None, &mut got);
        let ea = err(&got);
        by_phases(&g, &dyf, &wf, None, &mut got);
        let e4 = err(&got);
        im2col_backward_input(&g, &dyf, &wf, None, &mut got);
        let e = err(&got);
        println!(
            "{g:?}: f32 error over the largest entry: im2col {e:.2e}, F(4×4) phases {e4:.2e}, F(7×7) adjoint {ea:.2e}"
        );
        (ea, e4)
    }
}
