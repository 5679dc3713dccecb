//! Max pooling whose windows tile the plane (kernel = stride, no padding, no partial
//! window), the shape of nearly every CNN's pooling (LeNet-5's 2×2/2 among them).
//!
//! Tiling makes both passes simpler than the general sweep: the forward reads each input
//! once and needs no initial fill, and the backward writes each input gradient exactly
//! once (the window's maximum gets the gradient, the rest 0), so it needs no zero-fill
//! followed by a scatter. Both write into uninitialized memory.

// Off x86 the AVX-512 branch is compiled out, leaving its flag and `DType` unused.
#![cfg_attr(not(target_arch = "x86_64"), allow(unused_imports, unused_variables))]

use super::take;
use crate::cpu::{self, Isa};
use crate::kernels::elementwise::{vectorized, Loop};
use crate::kernels::par::{for_each_chunk, for_each_chunk2};
use crate::{DType, Element};
use std::mem::MaybeUninit;

/// Geometry of a pooling whose windows tile the input: `out[0]·k[0] ≤ hw[0]` and
/// `out[1]·k[1] ≤ hw[1]` (rows and columns past the last window are ignored).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Tiles {
    /// Input plane `[h, w]`.
    pub hw: [usize; 2],
    /// Window, which is also the stride, `[kh, kw]`.
    pub k: [usize; 2],
    /// Output plane `[oh, ow]`.
    pub out: [usize; 2],
}

impl Tiles {
    fn plane(&self) -> usize {
        self.hw[0] * self.hw[1]
    }

    fn oplane(&self) -> usize {
        self.out[0] * self.out[1]
    }

    fn valid(&self) -> bool {
        self.k[0] > 0 && self.k[1] > 0 && self.out[0] * self.k[0] <= self.hw[0] && self.out[1] * self.k[1] <= self.hw[1]
    }
}

/// Inputs below this many elements are pooled on the calling thread: the kernel runs at
/// several elements per nanosecond, so only work of tens of microseconds is worth sharing
/// (helpers join only if awake, see [`for_each_chunk`]).
const PAR_MIN: usize = 1 << 17;

#[cfg(target_arch = "x86_64")]
mod avx2;
#[cfg(target_arch = "x86_64")]
mod avx512;
#[cfg(target_arch = "aarch64")]
mod neon;

/// Whether a hand-written kernel applies at `level`: f32, 2×2 windows, and a level that
/// has one (AVX-512, AVX2, NEON).
fn hand_written<T: Element>(t: &Tiles, level: Isa) -> bool {
    T::DTYPE == DType::F32 && t.k == [2, 2] && matches!(level, Isa::Avx512 | Isa::Avx2 | Isa::Neon)
}

/// A vector of `n` elements, every one of which `fill` writes.
pub fn filled<U>(n: usize, fill: impl FnOnce(&mut [MaybeUninit<U>])) -> Vec<U> {
    let mut v = Vec::with_capacity(n);
    fill(&mut v.spare_capacity_mut()[..n]);
    // SAFETY: the capacity is at least n and `fill` (one of this file's kernels, which
    // write every output slot) initialized elements 0..n.
    unsafe { v.set_len(n) };
    v
}

/// Run `f(first plane, planes of a, planes of b)` over groups of whole planes, in
/// parallel for large inputs. Planes are independent, so the split never changes a result.
fn for_plane_groups<A: Send, B: Send>(
    a: &mut [A],
    a_plane: usize,
    b: &mut [B],
    b_plane: usize,
    planes: usize,
    work: usize,
    f: impl Fn(usize, &mut [A], &mut [B]) + Sync + Send,
) {
    if planes == 0 {
        return;
    }
    if work < PAR_MIN {
        return f(0, a, b);
    }
    // Groups of about 64K elements of work: few enough hand-offs, enough to balance.
    let per = (planes * (1 << 16) / work).clamp(1, planes);
    let b_plane = if b.is_empty() { 0 } else { b_plane };
    if b_plane == 0 {
        for_each_chunk(a, per * a_plane, &|g, a| f(g * per, a, &mut []));
    } else {
        for_each_chunk2(a, per * a_plane, b, per * b_plane, &|g, a, b| f(g * per, a, b));
    }
}

/// Zero the columns past the last window (an odd width's last column for 2×2) in the `kh`
/// input-gradient rows of one row of windows starting at `top`, for the hand-written backward
/// kernels, which write the windows' slots.
///
/// # Safety
/// `top` must hold `kh` rows of `w` writable floats.
unsafe fn zero_past_windows(top: *mut f32, t: &Tiles) {
    let ([_, w], [_, ow], [kh, kw]) = (t.hw, t.out, t.k);
    // SAFETY: the caller's contract; every slot written is inside those rows.
    unsafe {
        for dy in 0..kh {
            for c in ow * kw..w {
                *top.add(dy * w + c) = 0.0;
            }
        }
    }
}

/// Zero the input-gradient rows past the last row of windows (an odd height's last row for
/// 2×2) of one plane, for the hand-written backward kernels.
///
/// # Safety
/// `plane` must hold `h·w` writable floats.
unsafe fn zero_rows_past_windows(plane: *mut f32, t: &Tiles) {
    let ([h, w], [oh, _], [kh, _]) = (t.hw, t.out, t.k);
    // SAFETY: the caller's contract; 0.0 is all zero bits.
    unsafe { std::ptr::write_bytes(plane.add(oh * kh * w), 0, (h - oh * kh) * w) }
}

/// Pool one row of windows: `KH` input rows from `x` (row stride `w`) into `ow` outputs,
/// `base` being the flat plane index of `x[0]`. `KH`/`KW` of 0 read `kh`/`kw` instead.
///
/// # Safety
/// `x` must hold `(kh − 1)·w + ow·kw` elements; `out` and (with `IDX`) `at` `ow` slots.
#[inline(always)]
#[allow(clippy::too_many_arguments)]
unsafe fn row_max<T: Element, const KH: usize, const KW: usize, const IDX: bool>(
    x: *const T,
    w: usize,
    [kh, kw]: [usize; 2],
    base: u32,
    ow: usize,
    out: *mut MaybeUninit<T>,
    at: *mut MaybeUninit<u32>,
) {
    // SAFETY: the caller upholds the `# Safety` contract above; the intrinsics and
    // pointer accesses below rely on nothing more.
    unsafe {
        let (kh, kw) = (if KH == 0 { kh } else { KH }, if KW == 0 { kw } else { KW });
        for q in 0..ow {
            let c = q * kw;
            // Taps in row-major window order: the first is the start, later ones replace it
            // only when larger or NaN, so ties keep the first and a NaN the last.
            let mut best = *x.add(c);
            let mut i = base + c as u32;
            for dy in 0..kh {
                for dx in (dy == 0) as usize..kw {
                    let off = dy * w + c + dx;
                    let v = *x.add(off);
                    let t = take(v, best);
                    best = std::hint::select_unpredictable(t, v, best);
                    if IDX {
                        i = std::hint::select_unpredictable(t, base + off as u32, i);
                    }
                }
            }
            (*out.add(q)).write(best);
            if IDX {
                (*at.add(q)).write(i);
            }
        }
    }
}

/// The forward over a group of planes, compiled per vector width by [`vectorized`].
struct Forward<'a, T, const KH: usize, const KW: usize, const IDX: bool> {
    x: &'a [T],
    t: Tiles,
    out: &'a mut [MaybeUninit<T>],
    idx: &'a mut [MaybeUninit<u32>],
}

impl<T: Element, const KH: usize, const KW: usize, const IDX: bool> Loop for Forward<'_, T, KH, KW, IDX> {
    type Output = ();
    #[inline(always)]
    fn run(self) {
        let Tiles {
            hw: [_, w],
            k,
            out: [oh, ow],
        } = self.t;
        let (plane, oplane) = (self.t.plane(), self.t.oplane());
        let planes = self.out.len() / oplane;
        assert!(self.x.len() >= planes * plane && (!IDX || self.idx.len() >= planes * oplane));
        for p in 0..planes {
            for oy in 0..oh {
                let start = oy * k[0] * w;
                let o = p * oplane + oy * ow;
                // SAFETY: the window rows of output row `oy` lie inside plane `p` of `x`
                // (tiling: oh·kh ≤ h, ow·kw ≤ w), and `o..o + ow` inside `out` and `idx`.
                unsafe {
                    let at = if IDX {
                        self.idx.as_mut_ptr().add(o)
                    } else {
                        std::ptr::null_mut()
                    };
                    let xr = self.x.as_ptr().add(p * plane + start);
                    row_max::<T, KH, KW, IDX>(xr, w, k, start as u32, ow, self.out.as_mut_ptr().add(o), at);
                }
            }
        }
    }
}

/// Max over each window of each `[h, w]` plane of `x`, and with a non-empty `idx` the flat
/// plane index (`ih·w + iw`) of each maximum. NaN wins (the last NaN of a window); ties
/// keep the first in row-major window order. `out` and `idx` receive `planes·oh·ow` values.
pub fn max_pool_tiled<T: Element>(x: &[T], t: &Tiles, out: &mut [MaybeUninit<T>], idx: &mut [MaybeUninit<u32>]) {
    forward(x, t, out, idx, cpu::isa(), true);
}

/// [`max_pool_tiled`] at `level`, with a hand-written kernel only when `hand` allows one
/// (tests run both).
fn forward<T: Element>(
    x: &[T],
    t: &Tiles,
    out: &mut [MaybeUninit<T>],
    idx: &mut [MaybeUninit<u32>],
    level: Isa,
    hand: bool,
) {
    assert!(t.valid(), "max_pool_tiled: windows {t:?} do not tile the plane");
    let (plane, oplane) = (t.plane(), t.oplane());
    if oplane == 0 {
        return;
    }
    let planes = out.len() / oplane;
    assert_eq!(out.len(), planes * oplane, "max_pool_tiled: output size");
    assert_eq!(x.len(), planes * plane, "max_pool_tiled: input size");
    let want = !idx.is_empty();
    assert!(!want || idx.len() == out.len(), "max_pool_tiled: index size");
    let simd = hand && hand_written::<T>(t, level);
    #[cfg(not(any(target_arch = "x86_64", target_arch = "aarch64")))]
    let _ = simd;
    for_plane_groups(out, oplane, idx, oplane, planes, x.len(), |p0, out, idx| {
        let n = out.len() / oplane;
        let x = &x[p0 * plane..(p0 + n) * plane];
        #[cfg(target_arch = "x86_64")]
        if simd {
            let at = if want {
                idx.as_mut_ptr().cast()
            } else {
                std::ptr::null_mut()
            };
            let (x, out) = (x.as_ptr().cast(), out.as_mut_ptr().cast());
            // SAFETY: `simd` only when `hand_written`: the AVX-512 or AVX2 level (which `cpu`
            // grants only on a CPU that has it), T is f32, 2×2 tiles; the sizes of `x`, `out`
            // and `idx` for `n` planes were asserted.
            return unsafe {
                match level {
                    Isa::Avx512 => avx512::forward_2x2(x, t, n, out, at),
                    _ => avx2::forward_2x2(x, t, n, out, at),
                }
            };
        }
        #[cfg(target_arch = "aarch64")]
        if simd {
            let at = if want {
                idx.as_mut_ptr().cast()
            } else {
                std::ptr::null_mut()
            };
            // SAFETY: `simd` only when `hand_written`: the NEON level, T is f32, 2×2 tiles;
            // the sizes of `x`, `out` and `idx` for `n` planes were asserted.
            return unsafe { neon::forward_2x2(x.as_ptr().cast(), t, n, out.as_mut_ptr().cast(), at) };
        }
        macro_rules! go {
            ($kh:literal, $kw:literal) => {
                if want {
                    vectorized(level, Forward::<T, $kh, $kw, true> { x, t: *t, out, idx })
                } else {
                    vectorized(level, Forward::<T, $kh, $kw, false> { x, t: *t, out, idx })
                }
            };
        }
        match t.k {
            [2, 2] => go!(2, 2),
            [3, 3] => go!(3, 3),
            _ => go!(0, 0),
        }
    });
}

/// Write the gradient of one row of windows: each input gets `gy` of its window where it
/// is the window's recorded maximum, else 0; input columns past the last window get 0.
///
/// # Safety
/// `gx` must hold `(kh − 1)·w + w` slots; `gy` and `at` `ow` values.
#[inline(always)]
#[allow(clippy::too_many_arguments)]
unsafe fn row_scatter<T: Element, const KH: usize, const KW: usize>(
    gy: *const T,
    at: *const u32,
    w: usize,
    [kh, kw]: [usize; 2],
    base: u32,
    ow: usize,
    gx: *mut MaybeUninit<T>,
) {
    // SAFETY: the caller upholds the `# Safety` contract above; the intrinsics and
    // pointer accesses below rely on nothing more.
    unsafe {
        let (kh, kw) = (if KH == 0 { kh } else { KH }, if KW == 0 { kw } else { KW });
        for q in 0..ow {
            let (g, i) = (*gy.add(q), *at.add(q));
            let c = q * kw;
            for dy in 0..kh {
                for dx in 0..kw {
                    let off = dy * w + c + dx;
                    let hit = i == base + off as u32;
                    (*gx.add(off)).write(if hit { g } else { T::ZERO });
                }
            }
        }
        for dy in 0..kh {
            for c in ow * kw..w {
                (*gx.add(dy * w + c)).write(T::ZERO);
            }
        }
    }
}

/// The backward over a group of planes, compiled per vector width by [`vectorized`].
struct Backward<'a, T, const KH: usize, const KW: usize> {
    gy: &'a [T],
    idx: &'a [u32],
    t: Tiles,
    gx: &'a mut [MaybeUninit<T>],
}

impl<T: Element, const KH: usize, const KW: usize> Loop for Backward<'_, T, KH, KW> {
    type Output = ();
    #[inline(always)]
    fn run(self) {
        let Tiles {
            hw: [h, w],
            k,
            out: [oh, ow],
        } = self.t;
        let (plane, oplane) = (self.t.plane(), self.t.oplane());
        let planes = self.gx.len() / plane;
        assert!(self.gy.len() >= planes * oplane && self.idx.len() >= planes * oplane);
        for p in 0..planes {
            for oy in 0..oh {
                let start = oy * k[0] * w;
                let o = p * oplane + oy * ow;
                // SAFETY: as in the forward; the window rows span whole rows of plane `p`.
                unsafe {
                    let gx = self.gx.as_mut_ptr().add(p * plane + start);
                    let (gy, at) = (self.gy.as_ptr().add(o), self.idx.as_ptr().add(o));
                    row_scatter::<T, KH, KW>(gy, at, w, k, start as u32, ow, gx);
                }
            }
            for s in &mut self.gx[p * plane + oh * k[0] * w..p * plane + h * w] {
                s.write(T::ZERO);
            }
        }
    }
}

/// Adjoint of [`max_pool_tiled`] with indices: `gx[p, idx[p, q]] = gy[p, q]`, 0 elsewhere,
/// every one of `planes·h·w` slots written once.
pub fn max_pool_tiled_backward<T: Element>(gy: &[T], idx: &[u32], t: &Tiles, gx: &mut [MaybeUninit<T>]) {
    backward(gy, idx, t, gx, cpu::isa(), true);
}

/// [`max_pool_tiled_backward`] at `level`, with a hand-written kernel only when `hand`.
fn backward<T: Element>(gy: &[T], idx: &[u32], t: &Tiles, gx: &mut [MaybeUninit<T>], level: Isa, hand: bool) {
    assert!(
        t.valid(),
        "max_pool_tiled_backward: windows {t:?} do not tile the plane"
    );
    let (plane, oplane) = (t.plane(), t.oplane());
    if plane == 0 {
        return;
    }
    let planes = gx.len() / plane;
    assert_eq!(gx.len(), planes * plane, "max_pool_tiled_backward: gradient size");
    assert!(
        gy.len() == planes * oplane && idx.len() == gy.len(),
        "max_pool_tiled_backward: output size"
    );
    let work = gx.len();
    let simd = hand && hand_written::<T>(t, level);
    #[cfg(not(any(target_arch = "x86_64", target_arch = "aarch64")))]
    let _ = simd;
    for_plane_groups(gx, plane, &mut [] as &mut [u8], 0, planes, work, |p0, gx, _| {
        let n = gx.len() / plane;
        let (gy, idx) = (
            &gy[p0 * oplane..(p0 + n) * oplane],
            &idx[p0 * oplane..(p0 + n) * oplane],
        );
        #[cfg(target_arch = "x86_64")]
        if simd {
            let (gy, at, gx) = (gy.as_ptr().cast(), idx.as_ptr(), gx.as_mut_ptr().cast());
            // SAFETY: `simd` only when `hand_written`: the AVX-512 or AVX2 level, T is f32,
            // 2×2 tiles; sizes asserted.
            return unsafe {
                match level {
                    Isa::Avx512 => avx512::backward_2x2(gy, at, t, n, gx),
                    _ => avx2::backward_2x2(gy, at, t, n, gx),
                }
            };
        }
        #[cfg(target_arch = "aarch64")]
        if simd {
            // SAFETY: `simd` only when `hand_written`: the NEON level, T is f32, 2×2 tiles;
            // sizes asserted.
            return unsafe { neon::backward_2x2(gy.as_ptr().cast(), idx.as_ptr(), t, n, gx.as_mut_ptr().cast()) };
        }
        match t.k {
            [2, 2] => vectorized(level, Backward::<T, 2, 2> { gy, idx, t: *t, gx }),
            [3, 3] => vectorized(level, Backward::<T, 3, 3> { gy, idx, t: *t, gx }),
            _ => vectorized(level, Backward::<T, 0, 0> { gy, idx, t: *t, gx }),
        }
    });
}

#[cfg(test)]
mod tests {
    use super::super::{max_pool, scatter, Sweep};
    use super::*;
    use crate::Generator;

    /// Values with many ties, some NaN and −∞, so every rule of the fold is exercised.
    fn data(n: usize, seed: u64) -> Vec<f32> {
        let mut g = Generator::new(seed);
        let mut v: Vec<f32> = (0..n).map(|i| ((i * 7919) % 13) as f32 - 6.0).collect();
        g.shuffle(&mut v);
        for (i, x) in v.iter_mut().enumerate() {
            match (i * 2_654_435_761) % 97 {
                0..=4 => *x = f32::NAN,
                5..=9 => *x = f32::NEG_INFINITY,
                _ => {}
            }
        }
        v
    }

    /// The general kernels' answer: the windows as a sweep, and a zero-fill + scatter.
    fn reference(x: &[f32], gy: &[f32], t: &Tiles) -> (Vec<f32>, Vec<u32>, Vec<f32>) {
        let ([h, w], [kh, kw], [oh, ow]) = (t.hw, t.k, t.out);
        let rows: Vec<_> = (0..oh).map(|o| (o * kh, o * kh + kh)).collect();
        let cols = Sweep {
            out: ow,
            kernel: kw,
            stride: kw,
            pad: 0,
        };
        let mut out = vec![0.0; gy.len()];
        let mut idx = vec![0; gy.len()];
        max_pool(x, [h, w], &rows, &cols, &mut out, Some(&mut idx));
        let mut gx = vec![0.0; x.len()];
        scatter(gy, &idx, h * w, &mut gx, true);
        (out, idx, gx)
    }

    #[test]
    fn matches_the_general_kernels_in_both_paths() {
        let mut cases = vec![];
        for h in 1..12 {
            for w in 1..40 {
                for k in [[2, 2], [3, 3], [1, 2], [2, 3]] {
                    cases.push(([h, w], k));
                }
            }
        }
        cases.extend([
            ([28, 28], [2, 2]),
            ([10, 10], [2, 2]),
            ([33, 70], [2, 2]),
            ([9, 9], [3, 3]),
        ]);
        for (planes, (hw, k)) in cases.into_iter().enumerate().map(|(i, c)| (i % 4 + 1, c)) {
            let out = [hw[0] / k[0], hw[1] / k[1]];
            if out.contains(&0) {
                continue;
            }
            let t = Tiles { hw, k, out };
            let x = data(planes * hw[0] * hw[1], planes as u64);
            let gy: Vec<f32> = (0..planes * out[0] * out[1]).map(|i| i as f32 + 1.0).collect();
            let (want_y, want_i, want_gx) = reference(&x, &gy, &t);
            for (level, simd) in cpu::supported().into_iter().flat_map(|l| [(l, false), (l, true)]) {
                let mut idx = vec![];
                let mut y = vec![];
                idx = filled(gy.len(), |i| {
                    y = filled(gy.len(), |o| forward(&x, &t, o, i, level, simd))
                });
                let y_only = filled(gy.len(), |o| forward(&x, &t, o, &mut [], level, simd));
                let gx = filled(x.len(), |g| backward(&gy, &idx, &t, g, level, simd));
                let same = |a: &[f32], b: &[f32]| a.iter().zip(b).all(|(a, b)| a.to_bits() == b.to_bits());
                let ctx = format!("{t:?}, {planes} planes, {level}, hand-written {simd}");
                assert_eq!(idx, want_i, "{ctx}");
                assert!(
                    same(&y, &want_y) && same(&y_only, &want_y),
                    "{ctx}: {y:?} vs {want_y:?}"
                );
                assert!(same(&gx, &want_gx), "{ctx}: {gx:?} vs {want_gx:?}");
            }
        }
    }

    #[test]
    fn large_inputs_split_over_threads_give_the_same_result() {
        let t = Tiles {
            hw: [28, 28],
            k: [2, 2],
            out: [14, 14],
        };
        let planes = PAR_MIN / (28 * 28) + 3;
        let x = data(planes * 28 * 28, 5);
        let gy: Vec<f32> = (0..planes * 196).map(|i| (i % 11) as f32).collect();
        let (want_y, want_i, want_gx) = reference(&x, &gy, &t);
        let mut y = vec![];
        let idx = filled(gy.len(), |i| y = filled(gy.len(), |o| max_pool_tiled(&x, &t, o, i)));
        let gx = filled(x.len(), |g| max_pool_tiled_backward(&gy, &idx, &t, g));
        assert_eq!(idx, want_i);
        assert!(y.iter().zip(&want_y).all(|(a, b)| a.to_bits() == b.to_bits()));
        assert!(gx.iter().zip(&want_gx).all(|(a, b)| a.to_bits() == b.to_bits()));
    }
}
