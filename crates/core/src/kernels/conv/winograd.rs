//! Winograd F(2×2, 3×3) and F(4×4, 3×3) for 3×3, stride-1 convolutions: each 2×2 block
//! of output comes from a 4×4 block of input with 16 multiplies per channel pair instead of
//! 36 (each 4×4 block from a 6×6 block with 36 instead of 144), so the GEMMs do 2.25× (4×)
//! less work than im2col's. Used for the forward pass, the input gradient (a 3×3 stride-1
//! convolution with rotated, transposed weights) and the weight gradient; maps of 16×16
//! and up take 4×4 tiles (see [`tile`]).
//!
//! With `d` an input tile, `g` a 3×3 kernel and `y` the output tile,
//! `y = Aᵀ [(G g Gᵀ) ⊙ (Bᵀ d B)] A`. Per image, the 16 (36) positions ξ of the transformed
//! tiles are independent GEMMs: `M[ξ] (o × tiles) = U[ξ] (o × c) · V[ξ] (c × tiles)`.
//! The weight gradient is the adjoint: `dg = Gᵀ [Σ_tiles (A dy Aᵀ) ⊙ (Bᵀ d B)] G`.
//!
//! Images are processed in groups whose tiles sit side by side as the GEMMs' columns: a
//! deep layer's image has only a few tiles (4 at 4×4), and 16 products with 4 columns each
//! spend their time on memory, not arithmetic. Each group runs start to end on one thread
//! (transforms, products, back-transform) in buffers sized to stay in that core's cache,
//! and threads take groups as they free up: splitting each stage over threads instead
//! moved every transformed tile between the cores' caches and waited at each stage's end.

use super::geom::ConvGeom;
use crate::kernels::matmul::{gemm, gemm_packed, Mat, PAR_FLOPS};
use crate::kernels::par::{for_each_chunk_on, run_tiles, Disjoint};
use crate::Element;
use std::any::Any;
use std::marker::PhantomData;
use std::sync::Mutex;
use transform::{weight_transform, weight_transform_adjoint, Cols, Plan, Transform};

mod f4;
#[cfg(any(target_arch = "x86_64", target_arch = "aarch64"))]
mod lanes;
mod transform;
#[cfg(any(target_arch = "x86_64", target_arch = "aarch64"))]
mod vector;
#[cfg(any(target_arch = "x86_64", target_arch = "aarch64"))]
mod vector4;

/// Budget for one group's transformed tiles: columns × the larger channel count. At 16 Ki,
/// a group's tiles (`16 · channels · columns` floats) take 1 MiB, which stays in a core's L2
/// between the transform and the products (512 columns for 64 channels ran slower than 256).
const GROUP_BUDGET: usize = 1 << 14;

/// Weight-gradient parts: groups are split into this many runs whose partial sums are added
/// in order (fixed by the shapes, so the result does not depend on the thread count).
const WEIGHT_PARTS: usize = 4;

/// Free transformed-tile buffers, kept between calls (at most [`KEEP`]).
static FREE: Mutex<Vec<Box<dyn Any + Send>>> = Mutex::new(Vec::new());

/// Buffers [`FREE`] keeps: two per thread of a call, with room for a few threads.
const KEEP: usize = 8;

/// Buffers of `len` elements for a call's groups, taken from [`FREE`] and handed back to
/// it. Allocating and zero-filling them on every call (1–2 MiB each, first-touched page by
/// page) took about 2% of a segnet step. A reused buffer holds the last user's values:
/// every transform writes all the columns the products then read.
struct Scratch<T> {
    len: usize,
    _t: PhantomData<T>,
}

impl<T: Element> Scratch<T> {
    fn new(len: usize) -> Self {
        Scratch { len, _t: PhantomData }
    }

    /// A free buffer with room for `len` elements, or a new one.
    fn take(&self) -> Vec<T> {
        let mut free = FREE.lock().unwrap_or_else(|e| e.into_inner());
        let fits = |b: &Box<dyn Any + Send>| b.downcast_ref::<Vec<T>>().is_some_and(|v| v.capacity() >= self.len);
        let mut v = match free
            .iter()
            .position(fits)
            .map(|i| free.swap_remove(i).downcast::<Vec<T>>())
        {
            Some(Ok(v)) => *v,
            _ => Vec::new(),
        };
        drop(free);
        v.truncate(self.len);
        v.resize(self.len, T::ZERO);
        v
    }

    /// Hand `buf` back for later calls (dropped when [`KEEP`] are already free).
    fn put(&self, buf: Vec<T>) {
        let mut free = FREE.lock().unwrap_or_else(|e| e.into_inner());
        if free.len() < KEEP {
            free.push(Box::new(buf));
        }
    }
}

/// Whether a convolution takes the Winograd path: one [`supports`], with enough channels
/// and tiles for the GEMMs to pay for the transforms. At 8×8 outputs it beat grouped
/// im2col (ResNet-18 at batch 32, 256→256, one thread: forward 18.7 → 10.4 ms, input
/// gradient 24.0 → 11.1 ms, weight gradient 17.9 → 14.0 ms); at 4×4 it lost (2 tiles a
/// row, and the transformed weights, 16/9 of the kernels, read for only 4 tiles an image).
/// Eight output maps are enough when the input has 16 channels or more: segnet's scoring
/// layer (32 → 11 at 64×64, batch 32, CPU ms forward / input / weight gradient) went from
/// the direct and im2col kernels' 29.5 / 16.7 / 28.2 to 10.7 / 10.8 / 11.6.
pub fn applies(g: &ConvGeom) -> bool {
    supports(g) && g.c >= 16 && g.o >= 8 && g.oh * g.ow >= 64
}

/// Depths from which a group's products go to `gemm`'s packed kernels: the unpacked kernel
/// streams a 64-column panel of `v` (`depth` rows) from L1, which a depth of 256 overflows
/// (8×8, 256→256: forward 16.9 → 15.8 ms).
const PACKED_DEPTH: usize = 256;

/// Weight-gradient products with fewer columns than this (their `k`) go to `gemm`'s packed
/// kernels: the unpacked dot kernel's per-tile reduction dominates short sums (16×16,
/// 128→128, 128 columns: 22.7 → 17.9 ms); at 256 columns it is as fast.
const PACKED_WEIGHT_COLS: usize = 256;

/// Output tile side for a convolution producing `oh × ow` maps: 4 (F(4×4, 3×3)) from
/// [`F4_FROM`] on both sides, else 2. One thread, batch 32, CPU ms forward / input / weight
/// gradient, F(2×2) → F(4×4): segnet's 32 → 32 at 64×64 18.4 / 17.9 / 20.4 → 11.5 / 11.7 /
/// 13.7, ResNet-18's 128 → 128 at 16×16 11.0 / 11.4 / 12.2 → 8.1 / 8.5 / 10.6; at 8×8
/// (256 → 256) F(4×4) lost, the weight gradient most (15.5 → 32 ms: 4 tiles an image).
fn tile(oh: usize, ow: usize) -> usize {
    if oh.min(ow) >= F4_FROM {
        4
    } else {
        2
    }
}

/// Smallest output side F(4×4, 3×3) takes.
const F4_FROM: usize = 16;

/// Whether the Winograd kernels can compute a convolution: 3×3, stride 1, no dilation, one
/// group, padding up to 2 (so the input gradient is a 3×3 convolution too), 4×4 or more.
pub fn supports(g: &ConvGeom) -> bool {
    g.kh == 3
        && g.kw == 3
        && g.stride == [1, 1]
        && g.dilation == [1, 1]
        && g.groups == 1
        && g.padding[0] <= 2
        && g.padding[1] <= 2
        && g.oh >= 4
        && g.ow >= 4
        && g.h >= 4
        && g.w >= 4
}

/// Images per group for `t` tiles each of `planes` points and `chans` channels at most
/// (fixed by the shapes): the budget's columns (scaled to the same bytes as 16 points), at
/// least 64 · 16 / `planes`, in whole images.
fn group_images(n: usize, t: usize, planes: usize, chans: usize) -> usize {
    let cols = (GROUP_BUDGET * 16 / planes / chans.max(1)).clamp(64 * 16 / planes, 512);
    cols.div_ceil(t.max(1)).clamp(1, n.max(1))
}

/// Threads for the work of `g`: one for small layers, where a hand-off costs more.
fn threads(g: &ConvGeom) -> usize {
    crate::kernels::par::threads_for(g.flops(), PAR_FLOPS)
}

/// Elements from one of the 16 planes of a group's buffer (`rows` rows of `ld` columns) to
/// the next: one cache line more than a plane. A transform writes or reads the 16 planes
/// side by side, and planes a power of two apart all fell in one cache set and evicted each
/// other.
fn plane(rows: usize, ld: usize) -> usize {
    rows * ld + 16
}

/// The `planes` products `m[ξ] (rows × ld) = a[ξ] · v[ξ]` of one group, on this thread: `a[ξ]` is
/// `a_at(ξ)`, `v[ξ]` the plane `ξ` of `v` (`depth` rows of `ld`, planes [`plane`] apart, so
/// each product's right operand is contiguous); `m` has `rows` rows per plane.
fn products<'a, T: Element>(
    planes: usize,
    rows: usize,
    ld: usize,
    depth: usize,
    a_at: impl Fn(usize) -> Mat<'a, T>,
    v: &[T],
    m: &mut [T],
) {
    let (vp, mp) = (plane(depth, ld), plane(rows, ld));
    for xi in 0..planes {
        let mx = &mut m[xi * mp..][..rows * ld];
        let b = Mat {
            data: v,
            rs: ld,
            cs: 1,
            offset: xi * vp,
        };
        if depth >= PACKED_DEPTH {
            gemm_packed(rows, ld, depth, a_at(xi), b, mx, false, 1);
        } else {
            gemm(rows, ld, depth, a_at(xi), b, mx, false, 1);
        }
    }
}

/// A Winograd convolution of `x` (`[n, cin, ih, iw]`) with transformed weights `u`
/// into `out` (`[n, cout, oh, ow]`), a group of images per task.
fn convolve<T: Element>(g: &ConvGeom, p: &Plan, x: &[T], u: &[T], bias: Option<&[T]>, out: &mut [T]) {
    let (t, n) = (p.t(), g.n);
    let (img, oimg) = (p.cin * p.ihw[0] * p.ihw[1], p.cout * p.ohw[0] * p.ohw[1]);
    let np = p.planes();
    let group = group_images(n, t, np, p.cin.max(p.cout));
    let isa = crate::cpu::isa();
    let (vs, ms) = (
        Scratch::new(np * plane(p.cin, group * t)),
        Scratch::new(np * plane(p.cout, group * t)),
    );
    let base = Disjoint::new(&mut out[..n * oimg]);
    run_tiles(n.div_ceil(group), threads(g), &|task| {
        let n0 = task * group;
        let count = group.min(n - n0);
        let ld = count * t;
        let (mut v, mut m) = (vs.take(), ms.take());
        for i in 0..count {
            let x = &x[(n0 + i) * img..][..img];
            let cols = Cols {
                ld,
                first: i * t,
                plane: plane(p.cin, ld),
            };
            let v = &mut v[..np * cols.plane];
            Transform::Input {
                p,
                x,
                chans: 0..p.cin,
                v,
                cols,
            }
            .run(isa);
        }
        let a_at = |xi: usize| Mat {
            data: u,
            rs: p.cin,
            cs: 1,
            offset: xi * p.cout * p.cin,
        };
        products(np, p.cout, ld, p.cin, a_at, &v, &mut m[..np * plane(p.cout, ld)]);
        // SAFETY: task `task` alone writes images n0..n0 + count of `out`, which stays
        // borrowed for the call.
        let y = unsafe { base.range(n0 * oimg, count * oimg) };
        for (i, y) in y.chunks_mut(oimg).enumerate() {
            let cols = Cols {
                ld,
                first: i * t,
                plane: plane(p.cout, ld),
            };
            let m = &m[..np * cols.plane];
            Transform::Output { p, m, bias, y, cols }.run(isa);
        }
        vs.put(v);
        ms.put(m);
    });
}

/// Forward convolution (see [`super::conv2d_forward`]); `g` must satisfy [`applies`].
pub fn forward<T: Element>(g: &ConvGeom, x: &[T], w: &[T], bias: Option<&[T]>, out: &mut [T]) {
    forward_in(tile(g.oh, g.ow), g, x, w, bias, out)
}

/// [`forward`] in `m`×`m` output tiles.
fn forward_in<T: Element>(m: usize, g: &ConvGeom, x: &[T], w: &[T], bias: Option<&[T]>, out: &mut [T]) {
    let p = Plan::new(g.c, g.o, [g.h, g.w], [g.oh, g.ow], g.padding, m);
    convolve(
        g,
        &p,
        x,
        &weight_transform(w, g.o, g.c, m, false, threads(g)),
        bias,
        out,
    );
}

/// Input gradient: a 3×3 convolution of `dy` with the rotated, transposed kernels and
/// padding `2 − padding`; `g` must satisfy [`applies`].
pub fn backward_input<T: Element>(g: &ConvGeom, dy: &[T], w: &[T], bias: Option<&[T]>, dx: &mut [T]) {
    backward_input_in(tile(g.h, g.w), g, dy, w, bias, dx)
}

/// [`backward_input`] in `m`×`m` tiles of `dx`.
fn backward_input_in<T: Element>(m: usize, g: &ConvGeom, dy: &[T], w: &[T], bias: Option<&[T]>, dx: &mut [T]) {
    let pad = [2 - g.padding[0], 2 - g.padding[1]];
    let p = Plan::new(g.o, g.c, [g.oh, g.ow], [g.h, g.w], pad, m);
    convolve(g, &p, dy, &weight_transform(w, g.o, g.c, m, true, threads(g)), bias, dx);
}

/// Weight gradient: the transformed gradient `dU[ξ] (c × o)` (one per point ξ of a tile)
/// summed over the groups of each
/// of [`WEIGHT_PARTS`] runs, the runs' sums added in order (fixed by the shapes, so the
/// result does not depend on the thread count), then taken back through the weight
/// transform; `g` must satisfy [`supports`].
pub fn backward_weight<T: Element>(g: &ConvGeom, x: &[T], dy: &[T], dw: &mut [T]) {
    backward_weight_in(tile(g.oh, g.ow), g, x, dy, dw)
}

/// [`backward_weight`] over `m`×`m` tiles of `dy`.
fn backward_weight_in<T: Element>(m: usize, g: &ConvGeom, x: &[T], dy: &[T], dw: &mut [T]) {
    let p = Plan::new(g.c, g.o, [g.h, g.w], [g.oh, g.ow], g.padding, m);
    let (t, n, np) = (p.t(), g.n, p.planes());
    let (img, oimg) = (g.c * g.h * g.w, g.o * g.oh * g.ow);
    let group = group_images(n, t, np, g.c.max(g.o));
    let groups = n.div_ceil(group);
    let parts = WEIGHT_PARTS.min(groups);
    let per_part = groups.div_ceil(parts);
    let isa = crate::cpu::isa();
    let (vs, dms) = (
        Scratch::new(np * plane(g.c, group * t)),
        Scratch::new(np * plane(g.o, group * t)),
    );
    let len = np * g.c * g.o;
    let mut partial = vec![T::ZERO; parts * len];
    for_each_chunk_on(threads(g), &mut partial, len, &|part, dut| {
        let (mut v, mut dm) = (vs.take(), dms.take());
        let first_group = part * per_part;
        for task in first_group..((part + 1) * per_part).min(groups) {
            let n0 = task * group;
            let count = group.min(n - n0);
            let ld = count * t;
            for i in 0..count {
                let cols = Cols {
                    ld,
                    first: i * t,
                    plane: plane(g.c, ld),
                };
                let x = &x[(n0 + i) * img..][..img];
                let v = &mut v[..np * cols.plane];
                Transform::Input {
                    p: &p,
                    x,
                    chans: 0..g.c,
                    v,
                    cols,
                }
                .run(isa);
                let dy = &dy[(n0 + i) * oimg..][..oimg];
                let cols = Cols {
                    plane: plane(g.o, ld),
                    ..cols
                };
                let dm = &mut dm[..np * cols.plane];
                Transform::Adjoint {
                    p: &p,
                    dy,
                    chans: 0..g.o,
                    dm,
                    cols,
                }
                .run(isa);
            }
            // dU[ξ] += V[ξ] · dM[ξ]ᵀ, both operands rows of `ld` tiles in planes [`plane`] apart.
            for (xi, acc) in dut.chunks_mut(g.c * g.o).enumerate() {
                let a = Mat {
                    data: &v[..],
                    rs: ld,
                    cs: 1,
                    offset: xi * plane(g.c, ld),
                };
                let b = Mat {
                    data: &dm[..],
                    rs: 1,
                    cs: ld,
                    offset: xi * plane(g.o, ld),
                };
                if ld < PACKED_WEIGHT_COLS {
                    gemm_packed(g.c, g.o, ld, a, b, acc, task > first_group, 1);
                } else {
                    gemm(g.c, g.o, ld, a, b, acc, task > first_group, 1);
                }
            }
        }
        vs.put(v);
        dms.put(dm);
    });
    // The parts' sums in order, element by element, in blocks over the threads.
    let (dut, rest) = partial.split_at_mut(len);
    for_each_chunk_on(threads(g), dut, crate::kernels::BLOCK, &|b, d| {
        for part in rest.chunks(len) {
            let part = &part[b * crate::kernels::BLOCK..][..d.len()];
            d.iter_mut().zip(part).for_each(|(d, &s)| *d += s);
        }
    });
    weight_transform_adjoint(dut, g.o, g.c, m, dw, threads(g));
}

#[cfg(test)]
mod tests {
    use super::super::im2col::{im2col_backward_input, im2col_forward};
    use super::super::weight::im2col_backward_weight;
    use super::*;

    fn geom(n: usize, c: usize, hw: [usize; 2], o: usize, pad: [usize; 2]) -> ConvGeom {
        ConvGeom::new([n, c, hw[0], hw[1]], [o, 3, 3], [1, 1], pad, [1, 1], 1)
    }

    fn seq(len: usize, seed: f64) -> Vec<f64> {
        (0..len).map(|i| (i as f64 * 0.37 + seed).sin()).collect()
    }

    /// Every pass at both tile sizes against im2col on the same data, elementwise within
    /// `tol` relative to `scale(want)` (f64: each element's size; f32: the largest).
    fn check_every_pass<T: Element>(g: &ConvGeom, bias: bool, tol: f64, rel_to_max: bool) {
        let f = |v: Vec<f64>| v.into_iter().map(T::from_f64).collect::<Vec<T>>();
        let x = f(seq(g.n * g.c * g.h * g.w, 0.3));
        let w = f(seq(g.o * g.c * 9, 1.1));
        let b = f(seq(g.o.max(g.c), 2.0));
        let dy = f(seq(g.n * g.o * g.p(), 0.9));
        let (bo, bc) = if bias {
            (Some(&b[..g.o]), Some(&b[..g.c]))
        } else {
            (None, None)
        };
        let close = |a: &[T], b: &[T], what: &str| {
            let max = b.iter().fold(1f64, |m, v| m.max(v.to_f64().abs()));
            for (i, (x, y)) in a.iter().zip(b).enumerate() {
                let (x, y) = (x.to_f64(), y.to_f64());
                let scale = if rel_to_max { max } else { 1.0 + y.abs() };
                assert!((x - y).abs() < tol * scale, "{what} {g:?} at {i}: {x} vs {y}");
            }
        };
        for m in [2, 4] {
            let zeros = |len| vec![T::ZERO; len];
            let (mut want, mut got) = (zeros(dy.len()), zeros(dy.len()));
            im2col_forward(g, &x, &w, bo, &mut want);
            forward_in(m, g, &x, &w, bo, &mut got);
            close(&got, &want, &format!("F({m}) forward"));
            let (mut want, mut got) = (zeros(x.len()), zeros(x.len()));
            im2col_backward_input(g, &dy, &w, bc, &mut want);
            backward_input_in(m, g, &dy, &w, bc, &mut got);
            close(&got, &want, &format!("F({m}) backward input"));
            let (mut want, mut got) = (zeros(w.len()), zeros(w.len()));
            im2col_backward_weight(g, &x, &dy, &mut want);
            backward_weight_in(m, g, &x, &dy, &mut got);
            close(&got, &want, &format!("F({m}) backward weight"));
        }
    }

    #[test]
    fn matches_im2col_for_every_pass() {
        // Odd and even sizes (partial edge tiles), all paddings it takes.
        for g in [
            geom(2, 16, [7, 9], 17, [1, 1]),
            geom(3, 18, [8, 6], 16, [0, 2]),
            geom(1, 16, [5, 6], 20, [2, 0]),
            geom(2, 16, [6, 7], 16, [1, 2]),
            // Fewer output maps than input channels (segnet's scoring layer, 32 → 11).
            geom(2, 32, [9, 8], 11, [1, 1]),
            // 25 tiles per image: groups of 21 images, the last one partial.
            geom(23, 16, [10, 10], 16, [1, 1]),
            // 256 channels: groups of 16 images, 5 groups in 4 weight-gradient parts.
            geom(70, 256, [4, 4], 16, [1, 1]),
            // Batch 1, odd sizes past one row of 16 lanes of 4×4 tiles, channels not a
            // multiple of any lane count.
            geom(1, 19, [13, 70], 21, [1, 1]),
            geom(1, 17, [11, 67], 9, [0, 0]),
        ] {
            assert!(supports(&g), "{g:?}");
            check_every_pass::<f64>(&g, true, 1e-10, false);
        }
    }

    #[test]
    fn results_do_not_depend_on_the_thread_count() {
        // 128 channels at 16×16: F(2×2) in 7 groups of 2 images (64 tiles each), F(4×4) in
        // 4 groups of 4 (16 tiles each), both split over 4 weight parts.
        let g = geom(13, 128, [16, 16], 128, [1, 1]);
        let f = |v: Vec<f64>| v.into_iter().map(|x| x as f32).collect::<Vec<f32>>();
        let x = f(seq(g.n * g.c * g.h * g.w, 0.3));
        let w = f(seq(g.o * g.c * 9, 1.1));
        let dy = f(seq(g.n * g.o * g.p(), 0.9));
        for m in [2, 4] {
            let run = |threads: usize| {
                let pool = rayon::ThreadPoolBuilder::new().num_threads(threads).build().unwrap();
                pool.install(|| {
                    let (mut y, mut dx, mut dw) = (vec![0f32; dy.len()], vec![0f32; x.len()], vec![0f32; w.len()]);
                    forward_in(m, &g, &x, &w, None, &mut y);
                    backward_input_in(m, &g, &dy, &w, None, &mut dx);
                    backward_weight_in(m, &g, &x, &dy, &mut dw);
                    [y, dx, dw].map(|v| v.iter().map(|x| x.to_bits()).collect::<Vec<_>>())
                })
            };
            let one = run(1);
            assert!(one == run(2) && one == run(3), "F({m})");
        }
    }

    #[test]
    fn f32_matches_im2col_in_groups() {
        // f32 takes the unpacked AVX-512 products where the CPU has them; deep-layer shape
        // (4 tiles per image, one group of 40) and a shallow one (several groups).
        for g in [geom(40, 32, [4, 4], 48, [1, 1]), geom(23, 16, [10, 10], 24, [1, 1])] {
            check_every_pass::<f32>(&g, false, 1e-4, true);
        }
    }
}
