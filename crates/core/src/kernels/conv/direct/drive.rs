//! The drivers of the direct kernels, the same for every instruction set: scratch buffers,
//! the split over images and the calls into the three kernel families (`rows`, `chans`,
//! `fold`), which each instruction set provides through [`Kernels`] with the same layouts.

use super::{chunk_images, fold_scratch_len, sized, threads, weight_parts, ConvGeom, Corr, Route, L};
use crate::kernels::matmul::run_tiles;
use crate::kernels::par::Disjoint;

/// One instruction set's kernels. Layouts are shared: `rows` weights `[ci, kh, kw, co]`
/// and weight partials `[co, ci, kh, kw, 16]`; `chans` blocks of 16 output channels,
/// pixel-major `[p, 16]`; `fold` columns as `avx512::fold` lays them out.
///
/// Each function's `# Safety`: the CPU must run the implementing set (the caller read
/// [`crate::cpu::isa`]), and the buffers and shapes must be as the kernel asserts or its
/// route checked.
pub(super) trait Kernels {
    /// `rows::forward`: one image, `co ≤ 8`, `ow ≤ 32`.
    unsafe fn rows_forward(g: &Corr, xp: &[f32], wr: &[f32], bias: Option<&[f32]>, out: &mut [f32]);
    /// `rows::weight`: one image's 16-lane partials added to `acc`, `ow ≤ 32`.
    unsafe fn rows_weight(g: &Corr, xp: &[f32], dy: &[f32], acc: &mut [f32]);
    /// `chans::forward`: one image, one block of 16 output channels, pixel-major out.
    unsafe fn chans_forward(g: &Corr, xp: &[f32], wt: &[f32], bias: &[f32; L], outt: &mut [f32]);
    /// `chans::weight`: one image, one block, added to `acc` (`[ci, kh, kw, 16]`).
    unsafe fn chans_weight(g: &Corr, xp: &[f32], dyt: &[f32], acc: &mut [f32]);
    /// `dst[q, l] = src[l·p + q]` for 16 rows of `p`.
    unsafe fn to_lanes(src: &[f32], p: usize, dst: &mut [f32]);
    /// The inverse of [`Kernels::to_lanes`].
    unsafe fn from_lanes(src: &[f32], p: usize, dst: &mut [f32]);
    /// `fold::input_grad`: one image's input gradient through folded columns.
    unsafe fn input_grad(g: &ConvGeom, dy: &[f32], w: &[f32], bias: Option<&[f32]>, cols: &mut [f32], dx: &mut [f32]);
}

/// Scratch of one thread: a padded image and a pixel-major block.
#[derive(Default)]
struct Scratch {
    padded: Vec<f32>,
    lanes: Vec<f32>,
}

thread_local! {
    /// Reused from call to call: a training loop repeats the same shapes.
    static SCRATCH: std::cell::RefCell<Scratch> = std::cell::RefCell::default();
}

/// Run `f(image index, its output, scratch)` for every image, in chunks of images fixed
/// by the shapes, on the calling thread and helpers that join when they wake (see
/// [`run_tiles`]).
fn per_image(g: &ConvGeom, out: &mut [f32], f: impl Fn(usize, &mut [f32], &mut Scratch) + Sync) {
    let per = out.len() / g.n;
    let size = chunk_images(g);
    let base = Disjoint::new(out);
    run_tiles(g.n.div_ceil(size), threads(g), &|t| {
        SCRATCH.with_borrow_mut(|s| {
            for n in t * size..((t + 1) * size).min(g.n) {
                // SAFETY: image n's output lies inside `out` and only this tile writes it.
                let img = unsafe { base.range(n * per, per) };
                f(n, img, s);
            }
        })
    });
}

/// `w` (`[o, c, kh, kw]`) as `[c, kh, kw, o]`: the rows kernels' layout.
fn taps_last(g: &ConvGeom, w: &[f32]) -> Vec<f32> {
    let (o, c, kh, kw) = (g.o, g.c, g.kh, g.kw);
    let k = c * kh * kw;
    let mut wr = vec![0f32; o * k];
    for (oi, row) in w.chunks(k).take(o).enumerate() {
        for (t, &v) in row.iter().enumerate() {
            wr[t * o + oi] = v;
        }
    }
    wr
}

pub(super) fn forward<K: Kernels>(
    g: &ConvGeom,
    route: Route,
    x: &[f32],
    w: &[f32],
    bias: Option<&[f32]>,
    out: &mut [f32],
) {
    let corr = Corr::forward(g);
    let img = g.c * g.h * g.w;
    let padded = g.padding != [0, 0];
    match route {
        Route::Rows => {
            let wr = taps_last(g, w);
            per_image(g, out, |n, y, s: &mut Scratch| {
                let xp = sized(&mut s.padded, corr.padded_len());
                corr.pad_into(&x[n * img..(n + 1) * img], xp);
                // SAFETY: the caller read the level K implements, and `route` checked the shapes.
                unsafe { K::rows_forward(&corr, xp, &wr, bias, y) };
            });
        }
        Route::Chans => {
            let (k, p) = (g.k(), g.p());
            // Per block of 16 output channels: the weights as [c, kh, kw, 16].
            let mut wt = vec![0f32; g.o * k];
            for (src, dst) in w.chunks(L * k).zip(wt.chunks_mut(L * k)) {
                // SAFETY: as above.
                unsafe { K::to_lanes(src, k, dst) };
            }
            per_image(g, out, |n, y, s: &mut Scratch| {
                let xi = &x[n * img..(n + 1) * img];
                let xp: &[f32] = if padded {
                    let buf = sized(&mut s.padded, corr.padded_len());
                    corr.pad_into(xi, buf);
                    buf
                } else {
                    xi
                };
                let outt = sized(&mut s.lanes, p * L);
                for (b, (wb, yb)) in wt.chunks(L * k).zip(y.chunks_mut(L * p)).enumerate() {
                    let mut bv = [0f32; L];
                    if let Some(bias) = bias {
                        bv.copy_from_slice(&bias[b * L..(b + 1) * L]);
                    }
                    // SAFETY: as above.
                    unsafe {
                        K::chans_forward(&corr, xp, wb, &bv, outt);
                        K::from_lanes(outt, p, yb);
                    }
                }
            });
        }
    }
}

pub(super) fn backward_input<K: Kernels>(g: &ConvGeom, dy: &[f32], w: &[f32], bias: Option<&[f32]>, dx: &mut [f32]) {
    let img = g.o * g.p();
    per_image(g, dx, |n, dxi, s: &mut Scratch| {
        let cols = sized(&mut s.padded, fold_scratch_len(g));
        // SAFETY: the caller read the level K implements and checked `fold_fits`.
        unsafe { K::input_grad(g, &dy[n * img..(n + 1) * img], w, bias, cols, dxi) };
    });
}

pub(super) fn backward_weight<K: Kernels>(g: &ConvGeom, route: Route, x: &[f32], dy: &[f32], dw: &mut [f32]) {
    let corr = Corr::forward(g);
    let (k, p) = (g.k(), g.p());
    let (img, oimg) = (g.c * g.h * g.w, g.o * p);
    let wlen = g.o * k;
    let parts = weight_parts(g);
    let padded = g.padding != [0, 0] || route == Route::Rows;
    // One part's 16-lane partial sums: [o, c, kh, kw, 16] for rows, [o/16, c, kh, kw,
    // 16] (lanes = channels) for chans.
    let part = |pi: usize, acc: &mut [f32], s: &mut Scratch| {
        for n in pi * g.n / parts..(pi + 1) * g.n / parts {
            let xi = &x[n * img..(n + 1) * img];
            let dyi = &dy[n * oimg..(n + 1) * oimg];
            let xp: &[f32] = if padded {
                let buf = sized(&mut s.padded, corr.padded_len());
                corr.pad_into(xi, buf);
                buf
            } else {
                xi
            };
            // SAFETY: the caller read the level K implements, and `route` checked the shapes.
            unsafe {
                match route {
                    Route::Rows => K::rows_weight(&corr, xp, dyi, acc),
                    Route::Chans => {
                        let dyt = sized(&mut s.lanes, p * L);
                        for (db, ab) in dyi.chunks(L * p).zip(acc.chunks_mut(k * L)) {
                            K::to_lanes(db, p, dyt);
                            K::chans_weight(&corr, xp, dyt, ab);
                        }
                    }
                }
            }
        }
    };
    let alen = match route {
        Route::Rows => wlen * L,
        Route::Chans => wlen,
    };
    let mut partials = vec![0f32; parts * alen];
    let base = Disjoint::new(&mut partials);
    run_tiles(parts, threads(g), &|pi| {
        // SAFETY: part pi writes only its own partial.
        let acc = unsafe { base.range(pi * alen, alen) };
        SCRATCH.with_borrow_mut(|s| part(pi, acc, s));
    });
    let (first, rest) = partials.split_at_mut(alen);
    for other in rest.chunks(alen) {
        first.iter_mut().zip(other).for_each(|(a, &b)| *a += b);
    }
    match route {
        Route::Rows => {
            for (d, lanes) in dw[..wlen].iter_mut().zip(first.chunks(L)) {
                *d = lanes.iter().sum();
            }
        }
        Route::Chans => {
            for (ab, db) in first.chunks(k * L).zip(dw.chunks_mut(L * k)) {
                // SAFETY: as above.
                unsafe { K::from_lanes(ab, k, db) };
            }
        }
    }
}
