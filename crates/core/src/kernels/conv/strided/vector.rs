//! The two vector cores of `strided`, written once over [`Lanes`] so AVX-512, AVX2 and
//! NEON share them; each level picks its register blocking in [`run`].
//!
//! Both read "taps": rows of a prepared buffer at fixed offsets, whole vectors at a time
//! (the caller rounds lengths up to [`super::ROUND`] and leaves finite slack behind).

use super::rows::{copy_row, deinterleave, interleave};
use super::table::Table;
use crate::cpu::Isa;
use crate::kernels::simd::Lanes;
#[cfg(target_arch = "aarch64")]
use crate::kernels::simd::V4;
#[cfg(target_arch = "x86_64")]
use crate::kernels::simd::{V16, V8};

/// Floats of output-gradient rows up to which [`Job::Dots`] takes two blocks of rows per
/// pass over the taps (24 KiB, half of a core's L1).
const PAIR_FLOATS: usize = 6 << 10;

/// One call of a core.
pub(super) enum Job<'a> {
    /// `out[r·len + q] = Σ_t w[t·rows + r] · src[off[t] + q]` for `r < rows`, `q < len`.
    Product {
        /// The tap rows' buffer.
        src: &'a [f32],
        /// Where each tap's row starts in `src`.
        off: &'a Table<1>,
        /// Weights `[taps, rows]`.
        w: &'a [f32],
        /// Output rows.
        rows: usize,
        /// Output row length (a multiple of [`super::ROUND`]).
        len: usize,
        /// `[rows, len]`.
        out: &'a mut [f32],
    },
    /// `out[t·lanes + o] = Σ_n Σ_p dyt[n·dys + p·lanes + o] · src[n·srcs + off[t] + q[p]]`
    /// for `o < lanes` (a multiple of [`super::ROUND`]): vectors along the output
    /// channels, so the sums stay whole in registers over all pixels and images.
    Outer {
        /// Output gradient of each image, `[p, lanes]` (pixel-major), `dys` apart.
        dyt: &'a [f32],
        /// Distance between images in `dyt`.
        dys: usize,
        /// The tap rows' buffer of each image, `srcs` apart.
        src: &'a [f32],
        /// Distance between images in `src`.
        srcs: usize,
        /// Where each tap's row starts in an image's `src`.
        off: &'a Table<1>,
        /// Where pixel `p` sits in a tap's row.
        q: &'a Table<1>,
        /// Images.
        imgs: usize,
        /// Output channels, rounded up.
        lanes: usize,
        /// `[taps, lanes]`.
        out: &'a mut [f32],
    },
    /// `out[r·taps + t] = Σ_n Σ_q dyw[n·dys + r·len + q] · src[n·srcs + off[t] + q]` for
    /// `q < len` (a multiple of [`super::ROUND`]): dot products of "wide" output-gradient
    /// rows (zero in the dropped columns) with tap rows, vectors along the pixels, so every
    /// load is a whole contiguous vector and each is used for several products.
    Dots {
        /// Wide output gradient of each image, `[rows, len]`, `dys` apart.
        dyw: &'a [f32],
        /// Distance between images in `dyw`.
        dys: usize,
        /// The tap rows' buffer of each image, `srcs` apart.
        src: &'a [f32],
        /// Distance between images in `src`.
        srcs: usize,
        /// Where each tap's row starts in an image's `src`.
        off: &'a Table<1>,
        /// Output-gradient rows (output channels).
        rows: usize,
        /// Row length.
        len: usize,
        /// Images.
        imgs: usize,
        /// `[rows, taps]`.
        out: &'a mut [f32],
    },
    /// Row `r` of `src` (`[rows, w]`, `rows = to.len()`): its even elements to
    /// `dst[to[r][0]..]`, its odd ones to `dst[to[r][1]..]` (the phase split).
    Deinterleave {
        /// The rows.
        src: &'a [f32],
        /// Row length.
        w: usize,
        /// Where each row's even and odd elements go.
        to: &'a Table<2>,
        /// The destination.
        dst: &'a mut [f32],
    },
    /// Row `r` of `dst` (`[rows, w]`, `rows = from.len()`): `src[from[r][0] + i]` at `2i`,
    /// `src[from[r][1] + i]` at `2i + 1`, plus `bias[r / plane]` if given (the inverse).
    Interleave {
        /// The halves' buffer.
        src: &'a [f32],
        /// Where each row's even and odd elements come from.
        from: &'a Table<2>,
        /// Row length.
        w: usize,
        /// Per plane of `plane` rows, added to every element.
        bias: Option<&'a [f32]>,
        /// Rows per plane.
        plane: usize,
        /// `[rows, w]`.
        dst: &'a mut [f32],
    },
    /// Row `r` of `src` (`[rows, w]`, `rows = to.len()`) to `dst[to[r]..][..w]`.
    Scatter {
        /// The rows.
        src: &'a [f32],
        /// Row length.
        w: usize,
        /// Where each row goes.
        to: &'a Table<1>,
        /// The destination.
        dst: &'a mut [f32],
    },
    /// Row `r` of `dst` (`[rows, w]`, `rows = from.len()`): `src[from[r]..][..w]` plus
    /// `bias[r / plane]` if given.
    Gather {
        /// The rows' buffer.
        src: &'a [f32],
        /// Where each row comes from.
        from: &'a Table<1>,
        /// Row length.
        w: usize,
        /// Per plane of `plane` rows, added to every element.
        bias: Option<&'a [f32]>,
        /// Rows per plane.
        plane: usize,
        /// `[rows, w]`.
        dst: &'a mut [f32],
    },
}

/// Runs `job` with the vectors of `level` (granted by [`crate::cpu`] only where the CPU
/// has them).
pub(super) fn run(job: Job<'_>, level: Isa) {
    #[cfg(target_arch = "x86_64")]
    {
        #[target_feature(enable = "avx512f")]
        fn avx512(job: Job<'_>) {
            // SAFETY: this function runs only with AVX-512F on.
            unsafe { dispatch::<V16, 8, 3, 2, 8, 4, 4>(job) }
        }
        #[target_feature(enable = "avx2,fma")]
        fn avx2(job: Job<'_>) {
            // SAFETY: this function runs only with AVX2 and FMA on.
            unsafe { dispatch::<V8, 4, 2, 2, 4, 2, 4>(job) }
        }
        match level {
            // SAFETY: `cpu` grants the AVX-512 level only on a CPU that has AVX-512F.
            Isa::Avx512 => unsafe { avx512(job) },
            // SAFETY: `cpu` grants the AVX2 level only on a CPU with AVX2 and FMA.
            Isa::Avx2 => unsafe { avx2(job) },
            Isa::Scalar | Isa::Neon => unreachable!("no f32 vectors at {level}"),
        }
    }
    #[cfg(target_arch = "aarch64")]
    {
        assert_eq!(level, Isa::Neon, "no f32 vectors at {level}");
        // SAFETY: NEON is part of every aarch64 target.
        unsafe { dispatch::<V4, 8, 3, 2, 8, 4, 6>(job) }
    }
    #[cfg(not(any(target_arch = "x86_64", target_arch = "aarch64")))]
    {
        let _ = job;
        unreachable!("no f32 vectors at {level:?}")
    }
}

/// `job` on vectors `V`: products in blocks of `R` rows × `P` vectors, correlations in
/// blocks of `RC` vectors of channels × `TC` taps, dot products in blocks of `RD` rows ×
/// `TD` taps. The level's features must be on.
#[inline(always)]
unsafe fn dispatch<
    V: Lanes,
    const R: usize,
    const P: usize,
    const RC: usize,
    const TC: usize,
    const RD: usize,
    const TD: usize,
>(
    job: Job<'_>,
) {
    match job {
        Job::Product {
            src,
            off,
            w,
            rows,
            len,
            out,
        } => {
            assert!(w.len() >= off.len() * rows && out.len() >= rows * len);
            assert!(off.reach([len]) <= src.len());
            let off = off.flat();
            assert!(len.is_multiple_of(V::L));
            let a = Product {
                src: src.as_ptr(),
                off,
                w: w.as_ptr(),
                rows,
                len,
                out: out.as_mut_ptr(),
            };
            let mut r = 0;
            // SAFETY: the asserts above keep every read and write inside the slices.
            unsafe {
                while r + R <= rows {
                    a.rows::<V, R, P>(r);
                    r += R;
                }
                while r < rows {
                    a.rows::<V, 1, P>(r);
                    r += 1;
                }
            }
        }
        Job::Outer {
            dyt,
            dys,
            src,
            srcs,
            off,
            q,
            imgs,
            lanes,
            out,
        } => {
            let taps = off.len();
            assert!(out.len() >= taps * lanes && lanes.is_multiple_of(V::L));
            if imgs > 0 {
                assert!(dyt.len() >= (imgs - 1) * dys + q.len() * lanes);
                assert!(off.reach([(imgs - 1) * srcs + q.reach([1])]) <= src.len());
            }
            let (off, q) = (off.flat(), q.flat());
            let a = Outer {
                dyt: dyt.as_ptr(),
                dys,
                src: src.as_ptr(),
                srcs,
                off,
                q,
                imgs,
                lanes,
            };
            let out = out.as_mut_ptr();
            // SAFETY: as above.
            unsafe {
                let mut o = 0;
                while o + RC * V::L <= lanes {
                    a.taps::<V, RC, TC>(o, out);
                    o += RC * V::L;
                }
                while o < lanes {
                    a.taps::<V, 1, TC>(o, out);
                    o += V::L;
                }
            }
        }
        Job::Dots {
            dyw,
            dys,
            src,
            srcs,
            off,
            rows,
            len,
            imgs,
            out,
        } => {
            assert!(out.len() >= rows * off.len() && len.is_multiple_of(V::L));
            if imgs > 0 {
                assert!(dyw.len() >= (imgs - 1) * dys + rows * len);
                assert!(off.reach([(imgs - 1) * srcs + len]) <= src.len());
            }
            let off = off.flat();
            let a = Dots {
                dyw: dyw.as_ptr(),
                dys,
                src: src.as_ptr(),
                srcs,
                off,
                len,
                imgs,
            };
            let out = out.as_mut_ptr();
            // SAFETY: as above.
            unsafe {
                let mut r = 0;
                // Two blocks of rows per pass over the taps where their gradient rows (of
                // every image) stay in L1 beside the taps' (fcn_small's 32 → 64 at 32×32:
                // 3.43 → 3.20 ms; its 16 → 32 at 64×64, rows of 4 KiB, ran 5% slower).
                let pair = 2 * RD * len * imgs <= PAIR_FLOATS;
                while pair && r + 2 * RD <= rows {
                    a.rows::<V, RD, TD, 2>(r, out);
                    r += 2 * RD;
                }
                while r + RD <= rows {
                    a.rows::<V, RD, TD, 1>(r, out);
                    r += RD;
                }
                while r < rows {
                    a.rows::<V, 1, TD, 1>(r, out);
                    r += 1;
                }
            }
        }
        Job::Deinterleave { src, w, to, dst } => {
            assert!(src.len() >= to.len() * w);
            assert!(to.reach([w.div_ceil(2), w / 2]) <= dst.len());
            let to = to.entries();
            // SAFETY: the asserts above keep every read and write inside the slices.
            unsafe { deinterleave::<V>(src.as_ptr(), w, to, dst.as_mut_ptr()) }
        }
        Job::Interleave {
            src,
            from,
            w,
            bias,
            plane,
            dst,
        } => {
            assert!(dst.len() >= from.len() * w && plane > 0);
            assert!(from.reach([w.div_ceil(2), w / 2]) <= src.len());
            let from = from.entries();
            assert!(bias.is_none_or(|b| b.len() >= from.len().div_ceil(plane)));
            // SAFETY: as above.
            unsafe { interleave::<V>(src.as_ptr(), from, w, bias, plane, dst.as_mut_ptr()) }
        }
        Job::Scatter { src, w, to, dst } => {
            assert!(src.len() >= to.len() * w && to.reach([w]) <= dst.len());
            let to = to.flat();
            let (src, dst) = (src.as_ptr(), dst.as_mut_ptr());
            // SAFETY: as above.
            unsafe {
                for (r, &t) in to.iter().enumerate() {
                    copy_row::<V, false>(src.add(r * w), w, V::zero(), dst.add(t));
                }
            }
        }
        Job::Gather {
            src,
            from,
            w,
            bias,
            plane,
            dst,
        } => {
            assert!(dst.len() >= from.len() * w && plane > 0);
            assert!(from.reach([w]) <= src.len());
            let from = from.flat();
            assert!(bias.is_none_or(|b| b.len() >= from.len().div_ceil(plane)));
            let (src, dst) = (src.as_ptr(), dst.as_mut_ptr());
            // SAFETY: as above.
            unsafe {
                for (r, &f) in from.iter().enumerate() {
                    let b = V::splat(bias.map_or(0.0, |b| b[r / plane]));
                    copy_row::<V, true>(src.add(f), w, b, dst.add(r * w));
                }
            }
        }
    }
}

/// [`Job::Product`] as raw pointers.
struct Product<'a> {
    src: *const f32,
    off: &'a [usize],
    w: *const f32,
    rows: usize,
    len: usize,
    out: *mut f32,
}

impl Product<'_> {
    /// Rows `r0..r0 + R`, in blocks of `P` vectors then single vectors.
    #[inline(always)]
    unsafe fn rows<V: Lanes, const R: usize, const P: usize>(&self, r0: usize) {
        let nv = self.len / V::L;
        let mut v = 0;
        // SAFETY: the caller's contract.
        unsafe {
            while v + P <= nv {
                self.block::<V, R, P>(r0, v * V::L);
                v += P;
            }
            while v < nv {
                self.block::<V, R, 1>(r0, v * V::L);
                v += 1;
            }
        }
    }

    /// Rows `r0..r0 + R`, elements `q0..q0 + P·L`: each tap's vectors loaded once for `R`
    /// rows, each weight broadcast once for `P` vectors.
    #[inline(always)]
    unsafe fn block<V: Lanes, const R: usize, const P: usize>(&self, r0: usize, q0: usize) {
        // SAFETY: the caller's contract (rows and elements in range).
        unsafe {
            let mut acc = [[V::zero(); P]; R];
            for (t, &o) in self.off.iter().enumerate() {
                let s = self.src.add(o + q0);
                let mut x = [V::zero(); P];
                for (p, xv) in x.iter_mut().enumerate() {
                    *xv = V::loadu(s.add(p * V::L));
                }
                let wt = self.w.add(t * self.rows + r0);
                for (r, row) in acc.iter_mut().enumerate() {
                    let wb = V::splat(*wt.add(r));
                    for (a, &xv) in row.iter_mut().zip(&x) {
                        *a = wb.mul_add(xv, *a);
                    }
                }
            }
            for (r, row) in acc.iter().enumerate() {
                for (p, a) in row.iter().enumerate() {
                    a.storeu(self.out.add((r0 + r) * self.len + q0 + p * V::L));
                }
            }
        }
    }
}

/// [`Job::Outer`] as raw pointers.
struct Outer<'a> {
    dyt: *const f32,
    dys: usize,
    src: *const f32,
    srcs: usize,
    off: &'a [usize],
    q: &'a [usize],
    imgs: usize,
    lanes: usize,
}

impl Outer<'_> {
    /// Channels `o0..o0 + R·L` of `out` (`[taps, lanes]`), in blocks of `T` taps, then 3,
    /// then single taps.
    #[inline(always)]
    unsafe fn taps<V: Lanes, const R: usize, const T: usize>(&self, o0: usize, out: *mut f32) {
        let (mut t, taps) = (0, self.off.len());
        // SAFETY: the caller's contract.
        unsafe {
            while t + T <= taps {
                self.block::<V, R, T>(o0, t, out);
                t += T;
            }
            while t + 3 <= taps {
                self.block::<V, R, 3>(o0, t, out);
                t += 3;
            }
            while t < taps {
                self.block::<V, R, 1>(o0, t, out);
                t += 1;
            }
        }
    }

    /// `out` taps `t0..t0 + T`, channels `o0..o0 + R·L`, over all pixels and images: each
    /// gradient vector loaded once for `T` taps, each input pixel broadcast once for `R`.
    #[inline(always)]
    unsafe fn block<V: Lanes, const R: usize, const T: usize>(&self, o0: usize, t0: usize, out: *mut f32) {
        // SAFETY: the caller's contract.
        unsafe {
            let mut acc = [[V::zero(); R]; T];
            let mut off = [0usize; T];
            off.copy_from_slice(&self.off[t0..t0 + T]);
            for n in 0..self.imgs {
                let d = self.dyt.add(n * self.dys + o0);
                let s = self.src.add(n * self.srcs);
                for (p, &q) in self.q.iter().enumerate() {
                    let mut dv = [V::zero(); R];
                    for (r, v) in dv.iter_mut().enumerate() {
                        *v = V::loadu(d.add(p * self.lanes + r * V::L));
                    }
                    for (row, &o) in acc.iter_mut().zip(&off) {
                        let x = V::splat(*s.add(o + q));
                        for (a, &dr) in row.iter_mut().zip(&dv) {
                            *a = x.mul_add(dr, *a);
                        }
                    }
                }
            }
            for (t, row) in acc.iter().enumerate() {
                for (r, a) in row.iter().enumerate() {
                    a.storeu(out.add((t0 + t) * self.lanes + o0 + r * V::L));
                }
            }
        }
    }
}

/// [`Job::Dots`] as raw pointers.
struct Dots<'a> {
    dyw: *const f32,
    dys: usize,
    src: *const f32,
    srcs: usize,
    off: &'a [usize],
    len: usize,
    imgs: usize,
}

impl Dots<'_> {
    /// Rows `r0..r0 + G·R` of `out` (`[rows, taps]`), in blocks of `T` taps, then single
    /// taps; each block of taps for the `G` blocks of `R` rows in turn, so its tap rows
    /// come from L2 once for `G·R` rows (the tap rows are the large stream: fcn_small's
    /// 16 → 32 at 64×64 read 4.9 MB of them per image with `G = 1`).
    #[inline(always)]
    unsafe fn rows<V: Lanes, const R: usize, const T: usize, const G: usize>(&self, r0: usize, out: *mut f32) {
        let (mut t, taps) = (0, self.off.len());
        // SAFETY: the caller's contract.
        unsafe {
            while t + T <= taps {
                for g in 0..G {
                    self.block::<V, R, T>(r0 + g * R, t, out);
                }
                t += T;
            }
            while t < taps {
                for g in 0..G {
                    self.block::<V, R, 1>(r0 + g * R, t, out);
                }
                t += 1;
            }
        }
    }

    /// `out` rows `r0..r0 + R`, taps `t0..t0 + T`, over all pixels and images: each
    /// gradient vector loaded once for `T` taps, each tap vector once for `R` rows; the
    /// lanes are summed at the end.
    #[inline(always)]
    unsafe fn block<V: Lanes, const R: usize, const T: usize>(&self, r0: usize, t0: usize, out: *mut f32) {
        // SAFETY: the caller's contract.
        unsafe {
            let mut acc = [[V::zero(); T]; R];
            let mut off = [0usize; T];
            off.copy_from_slice(&self.off[t0..t0 + T]);
            for n in 0..self.imgs {
                let d = self.dyw.add(n * self.dys + r0 * self.len);
                let s = self.src.add(n * self.srcs);
                let mut q = 0;
                while q < self.len {
                    let mut dv = [V::zero(); R];
                    for (r, v) in dv.iter_mut().enumerate() {
                        *v = V::loadu(d.add(r * self.len + q));
                    }
                    for (t, &o) in off.iter().enumerate() {
                        let x = V::loadu(s.add(o + q));
                        for (row, &dr) in acc.iter_mut().zip(&dv) {
                            row[t] = dr.mul_add(x, row[t]);
                        }
                    }
                    q += V::L;
                }
            }
            for (r, row) in acc.iter().enumerate() {
                for (t, a) in row.iter().enumerate() {
                    *out.add((r0 + r) * self.off.len() + t0 + t) = a.sum();
                }
            }
        }
    }
}
