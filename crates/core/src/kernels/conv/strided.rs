//! Direct f32 kernels for stride-2 convolutions with few channels, all three passes: the
//! router sends layers with 8–32 channels on one side, or 8–64 on both, here (the conv
//! autoencoder's 16→32 3×3 layer, fcn_small's 16→32, 32→64 and 64→64, and their transposed
//! convolutions; the last one's forward pass (routed to grouped im2col first) and weight
//! gradient (see [`backward_weight`]) stay on im2col); one-channel layers (1→16, DCGAN's
//! 1→64) take their weight gradient here, and the forward pass with up to 32 maps
//! ([`applies`]). There im2col + GEMM runs products of a few dozen columns, with columns
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
//! - weight gradient: `dw[o, t] = Σ_n Σ_p dy[n, o, p] · phase_n(t)[p]`, for wide rows as
//!   dot products of the wide output gradient (zeros in the dropped columns) with the tap
//!   rows, vectors along the pixels; for short rows (where dropped columns and row ends
//!   cost most) with vectors along the output channels (the gradient transposed
//!   pixel-major). Either way the sums stay in registers over every pixel of every image
//!   of a chunk.
//!
//! Images are split over threads in tiles fixed by the shapes; the weight gradient sums
//! per-chunk partials in chunk order over chunks fixed by the shapes, so results do not
//! depend on the thread count.

mod rows;
mod table;
mod vector;

use super::geom::{f32s, f32s_mut, ConvGeom, Pool};
use crate::cpu::Isa;
use crate::kernels::par::{run_tiles, threads_for, Disjoint};
use crate::Element;
use table::Table;
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

/// Chunks the weight gradient's dot products split a batch into at least (where it has the
/// images): small images fit dozens in [`DOTS_FLOATS`], and five chunks of the conv
/// autoencoder's 1 → 16 layer left one thread idle for a fifth of the pass.
const MIN_CHUNKS: usize = 8;

/// Floats of prepared buffers per chunk of the weight gradient's dot products (about 512
/// KiB): one image of fcn_small's 16 → 32 layer at 64×64, whose four output-gradient rows
/// of a block then stay in L1 from one block of taps to the next (two images ran 5%
/// slower).
const DOTS_FLOATS: usize = 1 << 17;

/// Wide rows from which the weight gradient takes dot products along the pixels
/// ([`Job::Dots`]) rather than outer products along the output channels ([`Job::Outer`]):
/// fcn_small's 32 → 64 layer at 32×32 (rows of 272) ran 5.9 → 3.7 ms at batch 32, one
/// thread; the conv autoencoder's 16 → 32 at 14×14 (rows of 64, a quarter of them
/// dropped columns) ran 1.0 → 1.6 ms; its 1 → 16 and DCGAN's 1 → 64 at 28×28 (rows of
/// 224) 0.45 → 0.23 and 1.70 → 1.10 ms (im2col: 0.33 and 1.37 ms), batch 128.
const DOTS_MIN_LEN: usize = 192;

/// Floats one image's prepared buffers may take (so a tile's buffers stay in cache).
const IMAGE_FLOATS: usize = 1 << 18;

/// The level the kernels use on this thread, if it has f32 vectors.
fn level() -> Option<Isa> {
    match crate::cpu::isa() {
        Isa::Scalar => None,
        level => Some(level),
    }
}

/// Whether `g` takes this path (for f32 data): [`suits`] it, with at least 8 channels on
/// both sides. With one output channel the input gradient's products have one row, and
/// im2col ran as fast or faster (1 → 16, 28 → 14, batch 128, one thread: 0.25 vs 0.22
/// ms); single-channel inputs take the forward pass and weight gradient only
/// ([`one_channel`]).
pub(super) fn applies(g: &ConvGeom) -> bool {
    g.c >= 8 && g.o >= 8 && suits(g)
}

/// Whether a single-channel layer takes this path for the pass: the weight gradient with 8
/// output channels or more (by [`Job::Dots`], see [`DOTS_MIN_LEN`]); the forward pass with
/// 8 to 32, whose im2col products are too short to run well (the conv autoencoder's 1 →
/// 16 at 28 × 28, batch 128, one thread: 0.24 → 0.15 ms; DCGAN's 1 → 64 ran 0.82 ms on
/// im2col and 0.88 here, and stays there).
fn one_channel(g: &ConvGeom, forward: bool) -> bool {
    g.c == 1 && g.o >= 8 && (!forward || g.o <= 32) && suits(g)
}

/// Whether the kernels here can run `g`: stride 2, no dilation, one group, kernels up to
/// 5×5, at most 32 channels on one side or 64 on both, and images whose buffers stay in
/// cache.
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
        && (g.c <= 32 || g.o <= 32 || (g.c <= 64 && g.o <= 64))
        && {
            let (f, b) = (Forward::new(g), Backward::new(g));
            f.src_len + g.o * f.len <= IMAGE_FLOATS && b.dy_len + S * S * g.c * b.len <= IMAGE_FLOATS
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
    /// Where tap `(c, i, j)` (in the weights' order) starts in an image's phase buffer.
    off: Table<1>,
    /// Elements of one image's phase buffer, with the slack the last taps read.
    src_len: usize,
    /// Wide output row length, rounded up.
    len: usize,
    /// Per input row `(c, h)`: where its even and odd elements go in the phase buffer
    /// (row by row, both phase images' rows at once: a table of destinations per pixel
    /// cost a third of the forward pass at 64×64).
    rows: Table<2>,
    /// Per output row `(o, y)`: where it starts in the wide results, `o · len + y · wps`.
    out_rows: Table<1>,
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
        let ([ph, pw], mut rows) = (g.padding, Vec::with_capacity(g.c * g.h));
        let [(be, xe), (bo, xo)] = [pw, pw + 1].map(|x| (x % S, x / S));
        for c in 0..g.c {
            for h in 0..g.h {
                let y = h + ph;
                let at = (c * S * S + (y % S) * S) * plane + (y / S) * wps;
                rows.push([at + be * plane + xe, at + bo * plane + xo]);
            }
        }
        let out_rows = (0..g.o * g.oh).map(|r| r / g.oh * len + r % g.oh * wps).collect();
        Forward {
            wps,
            off: Table::of(off),
            src_len,
            len,
            rows: Table::new(rows),
            out_rows: Table::of(out_rows),
        }
    }

    /// The phase images of one image `x` (`[c, h, w]`) into `dst`, whose other elements
    /// (padding, slack) must be zero: each input pixel lands in one place.
    fn split(&self, g: &ConvGeom, x: &[f32], dst: &mut [f32], level: Isa) {
        let job = Job::Deinterleave {
            src: &x[..g.c * g.h * g.w],
            w: g.w,
            to: &self.rows,
            dst,
        };
        run(job, level);
    }
}

/// The zero-padded output gradient and the input gradient's taps per input phase.
struct Backward {
    /// Elements of one image's padded output gradient, with slack.
    dy_len: usize,
    /// Wide result row length, rounded up.
    len: usize,
    /// Per phase `(a, b)`: the taps' offsets and their weights `[taps, c]`.
    phases: Vec<(Table<1>, Vec<f32>)>,
    /// Per input row `(c, h)`: where its even and odd elements are in the wide results.
    rows: Table<2>,
    /// Per output-gradient row `(o, y)`: where it goes in the padded output gradient.
    dy_rows: Table<1>,
}

impl Backward {
    fn new(g: &ConvGeom) -> Backward {
        let [ph, pw] = g.padding;
        // `pad`: rows and columns of zeros before the output gradient (the most taps a phase
        // has, − 1); `hd × wd`: a padded output-gradient plane, `wd` also the wide row stride
        // of the result.
        let pad = [(g.kh - 1) / S, (g.kw - 1) / S];
        let last = [(g.h - 1 + ph) / S, (g.w - 1 + pw) / S];
        let hd = last[0].max(g.oh - 1) + pad[0] + 1;
        let wd = last[1].max(g.ow - 1) + pad[1] + 1;
        // Each phase's result starts at the first element the input reaches (phase row
        // `a`'s first `y`, column `b`'s first `x`) and spans to its last: with padding 1
        // one phase in two leaves its first row or column unused, and a result from the
        // origin ran 80 wide where 64 do (the conv autoencoder's 16 → 32 at 14 × 14).
        let reach = |a: usize, size: usize, pad: usize| {
            let first = (a + S - pad % S) % S;
            (first < size).then(|| ((first + pad) / S, (first + (size - 1 - first) / S * S + pad) / S))
        };
        let spans: Vec<(usize, usize)> = (0..S * S)
            .map(|p| match (reach(p / S, g.h, ph), reach(p % S, g.w, pw)) {
                (Some((y0, y1)), Some((x0, x1))) => (y0 * wd + x0, (y1 - y0) * wd + x1 - x0 + 1),
                _ => (0, 0),
            })
            .collect();
        let len = spans
            .iter()
            .map(|s| s.1)
            .max()
            .unwrap_or(0)
            .max(1)
            .next_multiple_of(ROUND);
        let mut phases = Vec::with_capacity(S * S);
        let mut most = 0;
        for a in 0..S {
            for b in 0..S {
                let start = spans[a * S + b].0;
                let mut off = Vec::new();
                for o in 0..g.o {
                    for m in (0..).take_while(|m| a + S * m < g.kh) {
                        for l in (0..).take_while(|l| b + S * l < g.kw) {
                            off.push(o * hd * wd + (pad[0] - m) * wd + pad[1] - l + start);
                        }
                    }
                }
                most = off.iter().fold(most, |x, &o| x.max(o + len));
                phases.push((Table::of(off), Vec::new()));
            }
        }
        let dy_len = (g.o * hd * wd).max(most);
        let [(be, xe), (bo, xo)] = [pw, pw + 1].map(|x| (x % S, x / S));
        let at = |a: usize, b: usize, c: usize, y: usize, x: usize| {
            ((a * S + b) * g.c + c) * len + y * wd + x - spans[a * S + b].0
        };
        let mut rows = Vec::with_capacity(g.c * g.h);
        for c in 0..g.c {
            for h in 0..g.h {
                let (a, y) = ((h + ph) % S, (h + ph) / S);
                rows.push([at(a, be, c, y, xe), at(a, bo, c, y, xo)]);
            }
        }
        let dy_rows = (0..g.o * g.oh)
            .map(|r| (r / g.oh * hd + r % g.oh + pad[0]) * wd + pad[1])
            .collect();
        Backward {
            dy_len,
            len,
            phases,
            rows: Table::new(rows),
            dy_rows: Table::of(dy_rows),
        }
    }

    /// The four phases' wide results `wide` (`[phase, c, len]`) into one image's input
    /// gradient `dx` (`[c, h, w]`), plus `bias`: input pixel `(h, col)` is element `(y, x)`
    /// of phase `(a, b)` with `h + ph = 2·y + a`, `col + pw = 2·x + b`, so an input row
    /// interleaves a row of two phases.
    fn land(&self, g: &ConvGeom, wide: &[f32], dx: &mut [f32], bias: Option<&[f32]>, level: Isa) {
        let job = Job::Interleave {
            src: wide,
            from: &self.rows,
            w: g.w,
            bias,
            plane: g.h,
            dst: &mut dx[..g.c * g.h * g.w],
        };
        run(job, level);
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
    fn pad_dy(&self, g: &ConvGeom, dy: &[f32], dst: &mut [f32], level: Isa) {
        let job = Job::Scatter {
            src: &dy[..g.o * g.oh * g.ow],
            w: g.ow,
            to: &self.dy_rows,
            dst,
        };
        run(job, level);
    }
}

/// [`conv2d_forward`](super::conv2d_forward) for f32 layers that suit it; `false` (doing
/// nothing) otherwise.
pub(super) fn forward<T: Element>(g: &ConvGeom, x: &[T], w: &[T], bias: Option<&[T]>, out: &mut [T]) -> bool {
    (applies(g) || one_channel(g, true)) && forward_any(g, x, w, bias, out)
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
    // Buffers reused from tile to tile: every image writes the same elements of `src`, so
    // its padding stays zero (zeroing a fresh one per image cost as much as splitting it).
    let (srcs, wides) = (Pool::new(f.src_len), Pool::new(g.o * f.len));
    run_tiles(g.n.div_ceil(per), threads_for(g.flops(), PAR_MACS), &|tile| {
        let (mut src, mut wide) = (srcs.take(), wides.take());
        for n in tile * per..((tile + 1) * per).min(g.n) {
            f.split(g, &x[n * img..(n + 1) * img], &mut src, level);
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
            let job = Job::Gather {
                src: &wide,
                from: &f.out_rows,
                w: g.ow,
                bias,
                plane: g.oh,
                dst: y,
            };
            run(job, level);
        }
        srcs.put(src);
        wides.put(wide);
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
    // Reused as in the forward pass.
    let (srcs, wides) = (Pool::new(bk.dy_len), Pool::new(S * S * g.c * bk.len));
    run_tiles(g.n.div_ceil(per), threads_for(g.flops(), PAR_MACS), &|tile| {
        let (mut src, mut wide) = (srcs.take(), wides.take());
        for n in tile * per..((tile + 1) * per).min(g.n) {
            bk.pad_dy(g, &dy[n * oimg..(n + 1) * oimg], &mut src, level);
            // SAFETY: image n's input gradient belongs to this tile alone.
            let dxi = unsafe { base.range(n * img, img) };
            for ((off, ws), out) in bk.phases.iter().zip(wide.chunks_mut(g.c * bk.len)) {
                let (w, rows, len) = (ws, g.c, bk.len);
                run(
                    Job::Product {
                        src: &src,
                        off,
                        w,
                        rows,
                        len,
                        out,
                    },
                    level,
                );
            }
            bk.land(g, &wide, dxi, bias, level);
        }
        srcs.put(src);
        wides.put(wide);
    });
    true
}

/// [`conv2d_backward_weight`](super::conv2d_backward_weight) for f32 layers that suit it;
/// `false` (doing nothing) otherwise.
///
/// Layers with more than 32 channels on both sides decline: there the general path's GEMMs
/// ran faster (fcn_small's 64→64 16→8, batch 32, one thread: 1.9 ms, against 3.6 ms by
/// outer products and 2.4 ms by dot products).
pub(super) fn backward_weight<T: Element>(g: &ConvGeom, x: &[T], dy: &[T], dw: &mut [T]) -> bool {
    (applies(g) && (g.c <= 32 || g.o <= 32) || one_channel(g, false)) && backward_weight_any(g, x, dy, dw)
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
    if f.len < DOTS_MIN_LEN {
        return backward_weight_outer(g, f, level, x, dy, dw);
    }
    let taps = g.c * g.kh * g.kw;
    let (img, p) = (g.c * g.h * g.w, g.oh * g.ow);
    // The output gradient "wide", as the forward pass computes it: row `y` at `y · wps`,
    // zeros in the columns past `ow` so the taps' extra elements add nothing.
    let dys = g.o * f.len;
    let per = (DOTS_FLOATS / (f.src_len + dys))
        .clamp(1, g.n)
        .min(g.n.div_ceil(MIN_CHUNKS));
    let chunks = g.n.div_ceil(per);
    let size = g.o * taps;
    let mut partials = vec![0f32; chunks * size];
    let base = Disjoint::new(&mut partials);
    // Reused as in the forward pass: image `i` of every chunk writes the same elements.
    let (srcs, dyws) = (Pool::new(per * f.src_len), Pool::new(per * dys));
    run_tiles(chunks, threads_for(g.flops(), PAR_MACS), &|ch| {
        let (n0, n1) = (ch * per, ((ch + 1) * per).min(g.n));
        let (mut src, mut dyw) = (srcs.take(), dyws.take());
        for n in n0..n1 {
            let i = n - n0;
            f.split(
                g,
                &x[n * img..(n + 1) * img],
                &mut src[i * f.src_len..(i + 1) * f.src_len],
                level,
            );
            let job = Job::Scatter {
                src: &dy[n * g.o * p..(n + 1) * g.o * p],
                w: g.ow,
                to: &f.out_rows,
                dst: &mut dyw[i * dys..(i + 1) * dys],
            };
            run(job, level);
        }
        // SAFETY: chunk ch alone writes its partial.
        let out = unsafe { base.range(ch * size, size) };
        let job = Job::Dots {
            dyw: &dyw,
            dys,
            src: &src,
            srcs: f.src_len,
            off: &f.off,
            rows: g.o,
            len: f.len,
            imgs: n1 - n0,
            out,
        };
        run(job, level);
        srcs.put(src);
        dyws.put(dyw);
    });
    for (i, d) in dw[..size].iter_mut().enumerate() {
        *d = (0..chunks).map(|ch| partials[ch * size + i]).sum();
    }
    true
}

/// [`backward_weight_any`] for short rows, by outer products along the output channels:
/// no dropped columns, and every pixel of a chunk's images in one pass per block.
fn backward_weight_outer(g: &ConvGeom, f: Forward, level: Isa, x: &[f32], dy: &[f32], dw: &mut [f32]) -> bool {
    let taps = g.c * g.kh * g.kw;
    let (img, p) = (g.c * g.h * g.w, g.oh * g.ow);
    let lanes = g.o.next_multiple_of(ROUND);
    let dys = p * lanes;
    // Where each output pixel sits in a tap's row of the phase images.
    let q = Table::of((0..p).map(|i| i / g.ow * f.wps + i % g.ow).collect());
    let per = (CHUNK_FLOATS / (f.src_len + dys)).clamp(1, g.n);
    let chunks = g.n.div_ceil(per);
    let size = taps * lanes;
    let mut partials = vec![0f32; chunks * size];
    let base = Disjoint::new(&mut partials);
    // Reused from chunk to chunk: each image writes the same elements (the lanes past `o`
    // and the phase images' padding stay zero). Fresh zeroed buffers per chunk took 4% of
    // the conv autoencoder's three 16 ↔ 32 passes in `memset` and page faults.
    let (srcs, dyts) = (Pool::new(per * f.src_len), Pool::new(per * dys));
    run_tiles(chunks, threads_for(g.flops(), PAR_MACS), &|ch| {
        let (n0, n1) = (ch * per, ((ch + 1) * per).min(g.n));
        let (mut src, mut dyt) = (srcs.take(), dyts.take());
        for n in n0..n1 {
            let i = n - n0;
            f.split(
                g,
                &x[n * img..(n + 1) * img],
                &mut src[i * f.src_len..(i + 1) * f.src_len],
                level,
            );
            // Pixel by pixel, so the stores run along a row of `dyt` (the loads go down
            // `dy`'s planes, `p` apart).
            let plane = &dy[n * g.o * p..(n + 1) * g.o * p];
            for (pi, row) in dyt[i * dys..(i + 1) * dys].chunks_exact_mut(lanes).enumerate() {
                for (d, &v) in row[..g.o].iter_mut().zip(plane[pi..].iter().step_by(p)) {
                    *d = v;
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
        srcs.put(src);
        dyts.put(dyt);
    });
    // The chunks' partials summed in chunk order, whole rows at a time (element by element
    // down the chunks, this ran on one thread for about 50 µs per call), then transposed.
    let (sum, rest) = partials.split_at_mut(size);
    for part in rest.chunks_exact(size) {
        sum.iter_mut().zip(part).for_each(|(a, &b)| *a += b);
    }
    for (o, row) in dw[..g.o * taps].chunks_mut(taps).enumerate() {
        for (t, d) in row.iter_mut().enumerate() {
            *d = sum[t * lanes + o];
        }
    }
    true
}

#[cfg(test)]
mod tests;
