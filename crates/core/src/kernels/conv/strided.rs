//! Direct f32 kernels for stride-2 convolutions with few channels, all three passes: the
//! router sends layers with 8–32 channels here (the conv autoencoder's 16→32 3×3 layer and
//! its transposed convolution); one-channel layers (1→16, DCGAN's 1→64) stay on im2col,
//! which measured as fast ([`applies`]). There im2col + GEMM runs products of a few dozen columns, with columns
//! gathered at stride 2, and single-channel layers barely use the GEMM at all.
//!
//! A stride-2 correlation reads, for each tap, every other pixel of the padded input. Split
//! into its four phase images (even/odd rows × even/odd columns) each tap reads one phase
//! image at a fixed shift, contiguously. Outputs are computed "wide": row `y` of the output
//! at `y · wps` (the phase images' width), so every tap is one contiguous run of the phase
//! buffer and the extra columns are computed and dropped. That makes each pass a product
//! whose rows are taps at fixed offsets (`vector`):
//! - forward: `out[o] = Σ_(c,i,j) w[o, c, i, j] · phase(c, i, j)`, rows over output channels;
//! - input gradient: per phase `(a, b)` of the input, `dx[c]` is a stride-1 correlation
//!   of the zero-padded output gradient with the taps `w[o, c, a + 2m, b + 2l]`;
//! - weight gradient: `dw[o, t] = Σ_n Σ_p dy[n, o, p] · phase_n(t)[p]` with vectors along
//!   the output channels (the gradient transposed pixel-major), so the sums stay in
//!   registers over every pixel of every image of a chunk.
//!
//! Images are split over threads in tiles fixed by the shapes; the weight gradient sums
//! per-chunk partials in chunk order over chunks fixed by the shapes, so results do not
//! depend on the thread count.

mod vector;

use super::geom::{f32s, f32s_mut, ConvGeom};
use crate::cpu::Isa;
use crate::kernels::par::{run_tiles, threads_for, Disjoint};
use crate::Element;
use vector::{run, Job};

/// Row lengths are rounded up to this (a multiple of every level's lanes).
const ROUND: usize = 16;

/// The stride this path handles.
const S: usize = 2;

/// Multiply-adds above which the images are split over threads.
const PAR_MACS: usize = 1 << 20;

/// Multiply-adds per tile of images handed to a thread (tens of microseconds).
const TILE_MACS: usize = 1 << 18;

/// Floats of prepared buffers per weight-gradient chunk (about 256 KiB, in L2).
const CHUNK_FLOATS: usize = 1 << 16;

/// Floats one image's prepared buffers may take (so a tile's buffers stay in cache).
const IMAGE_FLOATS: usize = 1 << 16;

/// The level the kernels use on this thread, if it has f32 vectors.
fn level() -> Option<Isa> {
    match crate::cpu::isa() {
        Isa::Scalar => None,
        level => Some(level),
    }
}

/// Whether `g` takes this path (for f32 data): [`suits`] it, with at least 8 channels on
/// both sides. With one input or output channel the products have one row, and the
/// general path ran as fast or faster (1→16, 28→14, batch 128, one thread: forward 0.25
/// ms both, input gradient 0.34 vs 0.28 ms, weight gradient 0.45 vs 0.36 ms).
pub(super) fn applies(g: &ConvGeom) -> bool {
    g.c >= 8 && g.o >= 8 && suits(g)
}

/// Whether the kernels here can run `g`: stride 2, no dilation, one group, kernels up to
/// 5×5, at most 32 channels on one side, and images whose buffers stay in cache.
fn suits(g: &ConvGeom) -> bool {
    g.stride == [S, S]
        && g.dilation == [1, 1]
        && g.groups == 1
        && g.n > 0
        && g.c > 0
        && g.o > 0
        && g.h > 0
        && g.w > 0
        && g.oh > 0
        && g.ow > 0
        && g.kh <= 5
        && g.kw <= 5
        && (g.c <= 32 || g.o <= 32)
        && {
            let (f, b) = (Forward::new(g), Backward::new(g));
            f.src_len + g.o * f.len <= IMAGE_FLOATS && b.dy_len + g.c * b.len <= IMAGE_FLOATS
        }
        && level().is_some()
}

/// Images per tile for per-image work of `macs` multiply-adds per image.
fn tile_images(g: &ConvGeom) -> usize {
    TILE_MACS.div_ceil((g.flops() / g.n).max(1)).clamp(1, g.n)
}

/// The phase images of the input and the forward pass's taps into them.
struct Forward {
    /// Width of a phase image.
    wps: usize,
    /// Elements of a phase image.
    plane: usize,
    /// Where tap `(c, i, j)` (in the weights' order) starts in an image's phase buffer.
    off: Vec<usize>,
    /// Elements of one image's phase buffer, with the slack the last taps read.
    src_len: usize,
    /// Wide output row length, rounded up.
    len: usize,
    /// Where input pixel `(ih, iw)` of a channel lands among its phase images.
    inv: Vec<usize>,
}

impl Forward {
    fn new(g: &ConvGeom) -> Forward {
        let (hps, wps) = (
            (g.h + 2 * g.padding[0]).div_ceil(S),
            (g.w + 2 * g.padding[1]).div_ceil(S),
        );
        let plane = hps * wps;
        let len = (g.oh * wps).next_multiple_of(ROUND);
        let mut off = Vec::with_capacity(g.c * g.kh * g.kw);
        for c in 0..g.c {
            for i in 0..g.kh {
                for j in 0..g.kw {
                    off.push((c * S * S + (i % S) * S + j % S) * plane + (i / S) * wps + j / S);
                }
            }
        }
        let src_len = (g.c * S * S * plane).max(off.iter().max().map_or(0, |m| m + len));
        let [ph, pw] = g.padding;
        let inv = (0..g.h * g.w)
            .map(|i| {
                let (y, x) = (i / g.w + ph, i % g.w + pw);
                ((y % S) * S + x % S) * plane + (y / S) * wps + x / S
            })
            .collect();
        Forward {
            wps,
            plane,
            off,
            src_len,
            len,
            inv,
        }
    }

    /// The phase images of one image `x` (`[c, h, w]`) into `dst`, whose other elements
    /// (padding, slack) must be zero: each input pixel lands in one place.
    fn split(&self, g: &ConvGeom, x: &[f32], dst: &mut [f32]) {
        let hw = g.h * g.w;
        for (c, plane) in x.chunks(hw).take(g.c).enumerate() {
            let d = &mut dst[c * S * S * self.plane..(c + 1) * S * S * self.plane];
            for (&v, &at) in plane.iter().zip(&self.inv) {
                d[at] = v;
            }
        }
    }
}

/// The zero-padded output gradient and the input gradient's taps per input phase.
struct Backward {
    /// Rows and columns of zeros before the output gradient (the most taps a phase has, − 1).
    pad: [usize; 2],
    /// Height and width of a padded output-gradient plane.
    hd: usize,
    /// Width of a padded output-gradient plane (also the wide row stride of the result).
    wd: usize,
    /// Elements of one image's padded output gradient, with slack.
    dy_len: usize,
    /// Wide result row length, rounded up.
    len: usize,
    /// Per phase `(a, b)`: the taps' offsets and their weights `[taps, c]`.
    phases: Vec<(Vec<usize>, Vec<f32>)>,
    /// Per phase: (wide position, input pixel) of each input pixel in that phase.
    lands: Vec<Vec<(usize, usize)>>,
}

impl Backward {
    fn new(g: &ConvGeom) -> Backward {
        let [ph, pw] = g.padding;
        let pad = [(g.kh - 1) / S, (g.kw - 1) / S];
        let last = [(g.h - 1 + ph) / S, (g.w - 1 + pw) / S];
        let hd = last[0].max(g.oh - 1) + pad[0] + 1;
        let wd = last[1].max(g.ow - 1) + pad[1] + 1;
        let len = ((last[0] + 1) * wd).next_multiple_of(ROUND);
        let mut phases = Vec::with_capacity(S * S);
        let mut most = 0;
        for a in 0..S {
            for b in 0..S {
                let mut off = Vec::new();
                for o in 0..g.o {
                    for m in (0..).take_while(|m| a + S * m < g.kh) {
                        for l in (0..).take_while(|l| b + S * l < g.kw) {
                            off.push(o * hd * wd + (pad[0] - m) * wd + pad[1] - l);
                        }
                    }
                }
                most = off.iter().fold(most, |x, &o| x.max(o + len));
                phases.push((off, Vec::new()));
            }
        }
        let dy_len = (g.o * hd * wd).max(most);
        // Input row h = 2·y + a − padding for wide row y, column likewise.
        let lands = (0..S * S)
            .map(|phase| {
                let (a, b) = (phase / S, phase % S);
                let rows = (0..=last[0]).filter_map(|y| Some((y, (S * y + a).checked_sub(ph).filter(|&h| h < g.h)?)));
                rows.flat_map(|(y, h)| {
                    (0..=last[1]).filter_map(move |x| {
                        let col = (S * x + b).checked_sub(pw).filter(|&col| col < g.w)?;
                        Some((y * wd + x, h * g.w + col))
                    })
                })
                .collect()
            })
            .collect();
        Backward {
            pad,
            hd,
            wd,
            dy_len,
            len,
            phases,
            lands,
        }
    }

    /// The taps' weights of each phase from `w` (`[o, c, kh, kw]`).
    fn weights(&mut self, g: &ConvGeom, w: &[f32]) {
        for a in 0..S {
            for b in 0..S {
                let ws = &mut self.phases[a * S + b].1;
                for o in 0..g.o {
                    for i in (a..g.kh).step_by(S) {
                        for j in (b..g.kw).step_by(S) {
                            ws.extend((0..g.c).map(|c| w[((o * g.c + c) * g.kh + i) * g.kw + j]));
                        }
                    }
                }
            }
        }
    }

    /// One image's output gradient `dy` (`[o, oh, ow]`) into `dst`, whose other elements
    /// must be zero.
    fn pad_dy(&self, g: &ConvGeom, dy: &[f32], dst: &mut [f32]) {
        for (o, plane) in dy.chunks(g.oh * g.ow).take(g.o).enumerate() {
            for (y, row) in plane.chunks(g.ow).enumerate() {
                let at = (o * self.hd + y + self.pad[0]) * self.wd + self.pad[1];
                dst[at..at + g.ow].copy_from_slice(row);
            }
        }
    }
}

/// [`conv2d_forward`](super::conv2d_forward) for f32 layers that suit it; `false` (doing
/// nothing) otherwise.
pub(super) fn forward<T: Element>(g: &ConvGeom, x: &[T], w: &[T], bias: Option<&[T]>, out: &mut [T]) -> bool {
    applies(g) && forward_any(g, x, w, bias, out)
}

/// [`forward`] for any shape the kernels [`suits`].
fn forward_any<T: Element>(g: &ConvGeom, x: &[T], w: &[T], bias: Option<&[T]>, out: &mut [T]) -> bool {
    let (Some(level), true) = (level(), suits(g)) else {
        return false;
    };
    let (Some(x), Some(w), Some(out)) = (f32s(x), f32s(w), f32s_mut(out)) else {
        return false;
    };
    let bias = bias.map(|b| f32s(b).expect("bias has the element type of the weights"));
    let f = Forward::new(g);
    let taps = g.c * g.kh * g.kw;
    // Weights `[taps, o]`: one row of broadcasts per tap.
    let mut wt = vec![0f32; taps * g.o];
    for (o, row) in w.chunks(taps).take(g.o).enumerate() {
        for (t, &v) in row.iter().enumerate() {
            wt[t * g.o + o] = v;
        }
    }
    let (img, oimg, per) = (g.c * g.h * g.w, g.o * g.oh * g.ow, tile_images(g));
    let base = Disjoint::new(out);
    run_tiles(g.n.div_ceil(per), threads_for(g.flops(), PAR_MACS), &|tile| {
        let (mut src, mut wide) = (vec![0f32; f.src_len], vec![0f32; g.o * f.len]);
        for n in tile * per..((tile + 1) * per).min(g.n) {
            f.split(g, &x[n * img..(n + 1) * img], &mut src);
            run(
                Job::Product {
                    src: &src,
                    off: &f.off,
                    w: &wt,
                    rows: g.o,
                    len: f.len,
                    out: &mut wide,
                },
                level,
            );
            // SAFETY: image n's output belongs to this tile alone.
            let y = unsafe { base.range(n * oimg, oimg) };
            for (o, plane) in y.chunks_mut(g.oh * g.ow).enumerate() {
                let b = bias.map_or(0.0, |b| b[o]);
                for (r, row) in plane.chunks_mut(g.ow).enumerate() {
                    let at = o * f.len + r * f.wps;
                    for (d, &v) in row.iter_mut().zip(&wide[at..at + g.ow]) {
                        *d = v + b;
                    }
                }
            }
        }
    });
    true
}

/// [`conv2d_backward_input`](super::conv2d_backward_input) for f32 layers that suit it;
/// `false` (doing nothing) otherwise.
pub(super) fn backward_input<T: Element>(g: &ConvGeom, dy: &[T], w: &[T], bias: Option<&[T]>, dx: &mut [T]) -> bool {
    applies(g) && backward_input_any(g, dy, w, bias, dx)
}

/// [`backward_input`] for any shape the kernels [`suits`].
fn backward_input_any<T: Element>(g: &ConvGeom, dy: &[T], w: &[T], bias: Option<&[T]>, dx: &mut [T]) -> bool {
    let (Some(level), true) = (level(), suits(g)) else {
        return false;
    };
    let (Some(dy), Some(w), Some(dx)) = (f32s(dy), f32s(w), f32s_mut(dx)) else {
        return false;
    };
    let bias = bias.map(|b| f32s(b).expect("bias has the element type of the weights"));
    let mut bk = Backward::new(g);
    bk.weights(g, w);
    let (img, oimg, per) = (g.c * g.h * g.w, g.o * g.oh * g.ow, tile_images(g));
    let base = Disjoint::new(dx);
    run_tiles(g.n.div_ceil(per), threads_for(g.flops(), PAR_MACS), &|tile| {
        let (mut src, mut wide) = (vec![0f32; bk.dy_len], vec![0f32; g.c * bk.len]);
        for n in tile * per..((tile + 1) * per).min(g.n) {
            bk.pad_dy(g, &dy[n * oimg..(n + 1) * oimg], &mut src);
            // SAFETY: image n's input gradient belongs to this tile alone.
            let dxi = unsafe { base.range(n * img, img) };
            for (phase, (off, ws)) in bk.phases.iter().enumerate() {
                run(
                    Job::Product {
                        src: &src,
                        off,
                        w: ws,
                        rows: g.c,
                        len: bk.len,
                        out: &mut wide,
                    },
                    level,
                );
                for (c, plane) in dxi.chunks_mut(g.h * g.w).enumerate() {
                    let (bv, wide) = (bias.map_or(0.0, |b| b[c]), &wide[c * bk.len..(c + 1) * bk.len]);
                    for &(from, to) in &bk.lands[phase] {
                        plane[to] = wide[from] + bv;
                    }
                }
            }
        }
    });
    true
}

/// [`conv2d_backward_weight`](super::conv2d_backward_weight) for f32 layers that suit it;
/// `false` (doing nothing) otherwise.
pub(super) fn backward_weight<T: Element>(g: &ConvGeom, x: &[T], dy: &[T], dw: &mut [T]) -> bool {
    applies(g) && backward_weight_any(g, x, dy, dw)
}

/// [`backward_weight`] for any shape the kernels [`suits`].
fn backward_weight_any<T: Element>(g: &ConvGeom, x: &[T], dy: &[T], dw: &mut [T]) -> bool {
    let (Some(level), true) = (level(), suits(g)) else {
        return false;
    };
    let (Some(x), Some(dy), Some(dw)) = (f32s(x), f32s(dy), f32s_mut(dw)) else {
        return false;
    };
    let f = Forward::new(g);
    let taps = g.c * g.kh * g.kw;
    let (img, p) = (g.c * g.h * g.w, g.oh * g.ow);
    let lanes = g.o.next_multiple_of(ROUND);
    let dys = p * lanes;
    // Where each output pixel sits in a tap's row of the phase images.
    let q: Vec<usize> = (0..p).map(|i| i / g.ow * f.wps + i % g.ow).collect();
    let per = (CHUNK_FLOATS / (f.src_len + dys)).clamp(1, g.n);
    let chunks = g.n.div_ceil(per);
    let size = taps * lanes;
    let mut partials = vec![0f32; chunks * size];
    let base = Disjoint::new(&mut partials);
    run_tiles(chunks, threads_for(g.flops(), PAR_MACS), &|ch| {
        let (n0, n1) = (ch * per, ((ch + 1) * per).min(g.n));
        let (mut src, mut dyt) = (vec![0f32; (n1 - n0) * f.src_len], vec![0f32; (n1 - n0) * dys]);
        for n in n0..n1 {
            let i = n - n0;
            f.split(
                g,
                &x[n * img..(n + 1) * img],
                &mut src[i * f.src_len..(i + 1) * f.src_len],
            );
            let d = &mut dyt[i * dys..(i + 1) * dys];
            for (o, plane) in dy[n * g.o * p..(n + 1) * g.o * p].chunks(p).enumerate() {
                for (pi, &v) in plane.iter().enumerate() {
                    d[pi * lanes + o] = v;
                }
            }
        }
        // SAFETY: chunk ch alone writes its partial.
        let out = unsafe { base.range(ch * size, size) };
        let job = Job::Outer {
            dyt: &dyt,
            dys,
            src: &src,
            srcs: f.src_len,
            off: &f.off,
            q: &q,
            imgs: n1 - n0,
            lanes,
            out,
        };
        run(job, level);
    });
    for (o, row) in dw[..g.o * taps].chunks_mut(taps).enumerate() {
        for (t, d) in row.iter_mut().enumerate() {
            *d = (0..chunks).map(|ch| partials[ch * size + t * lanes + o]).sum();
        }
    }
    true
}

#[cfg(test)]
mod tests;
