//! One LSTM layer (one direction) over a whole sequence, forward and backward through
//! time, as loops over slices. `W_hh` is packed once per call into panels per block of
//! hidden units, and each step is one round of tiles, one per block: forward the block's
//! four gates (one product with its panel) and then its cell; backward the block's columns
//! of the previous `h`'s gradient and then its cell's gradients. The gradient of `W_hh`
//! over all steps is one large product at the end.
//!
//! Layouts (row-major): the input's share of the gates `xg` `[T, N, 4H]` (PyTorch's gate
//! order i, f, g, o, biases folded in), the states `[N, H]`, `W_hh` `[4H, H]`. Everything
//! indexed by time is stored in time order also when the sequence runs backwards.

use super::lstm_rows::{Backward, Forward, Out};
use super::matmul::{gemm_init, Init, Mat};
use super::par::run_tiles;
use crate::Element;

/// Sequence length, batch and hidden size, and the direction the steps run in.
#[derive(Clone, Copy, Debug)]
pub struct Dims {
    /// Steps `T`.
    pub t: usize,
    /// Sequences `N`.
    pub n: usize,
    /// Hidden size `H`.
    pub h: usize,
    /// Whether the steps run from `T − 1` down to 0.
    pub reverse: bool,
}

impl Dims {
    /// The time of processing step `s`.
    fn time(&self, s: usize) -> usize {
        if self.reverse {
            self.t - 1 - s
        } else {
            s
        }
    }
}

/// What [`forward`] keeps for [`backward`], each indexed by time: the activated gates
/// `[T, N, 4H]`, the `h` and `c` each step started from `[T, N, H]` and `tanh(c')` `[T, N, H]`.
/// `V` is the storage: vectors from [`forward`], slices for [`backward`].
pub struct Saved<V> {
    /// σ(i), σ(f), tanh(g), σ(o) per step.
    pub act: V,
    /// The hidden state each step read.
    pub h_prev: V,
    /// The cell state each step read.
    pub c_prev: V,
    /// tanh of the new cell state.
    pub tc: V,
}

/// Rows of a step whose sequence has ended (`lengths[b] <= t`); empty without lengths.
fn ended(lengths: Option<&[usize]>, t: usize, out: &mut Vec<bool>) {
    out.clear();
    if let Some(l) = lengths {
        out.extend(l.iter().map(|&l| l <= t));
    }
}

/// Hidden units per forward tile: their four gates' 64 columns are four vectors of 16 lanes.
const FWD_UNITS: usize = 16;
/// The forward product's k-blocks: a block of a packed panel (128 × 64 f32, 32 KiB) stays
/// in L1 while every row block of `h` runs over it.
const FWD_KC: usize = 128;
/// Hidden units per backward tile (the columns of `dh` it computes).
const BWD_UNITS: usize = 32;
/// The backward product's k-blocks (256 × 32 f32 of a panel, 32 KiB, in L1).
const BWD_KC: usize = 256;

/// The blocks of `units` hidden units out of `h`: (first unit, count).
fn blocks(h: usize, units: usize) -> Vec<(usize, usize)> {
    (0..h).step_by(units).map(|u0| (u0, units.min(h - u0))).collect()
}

/// `W_hh` `[4H, H]` for the forward products, packed once per call: for each block of
/// [`FWD_UNITS`] units `(u0, ul)`, at offset `4H·u0`, the `[H, 4·ul]` matrix whose column
/// `q·ul + u` is row `q·H + u0 + u` of `W_hh`. A tile's product then reads one contiguous
/// panel holding all four gates of its units, so it can run the cell on them at once.
fn pack_forward<T: Element>(w: &[T], h: usize) -> Vec<T> {
    let mut p = vec![T::ZERO; 4 * h * h];
    for (u0, ul) in blocks(h, FWD_UNITS) {
        let panel = &mut p[4 * h * u0..4 * h * (u0 + ul)];
        for (k, row) in panel.chunks_exact_mut(4 * ul).enumerate() {
            for (c, x) in row.iter_mut().enumerate() {
                let (q, u) = (c / ul, c % ul);
                *x = w[(q * h + u0 + u) * h + k];
            }
        }
    }
    p
}

/// `W_hh` for the backward products: for each block of [`BWD_UNITS`] units `(u0, ul)`, at
/// offset `4H·u0`, the `[4H, ul]` matrix of its columns `u0..u0 + ul`.
fn pack_backward<T: Element>(w: &[T], h: usize) -> Vec<T> {
    let mut p = vec![T::ZERO; 4 * h * h];
    for (u0, ul) in blocks(h, BWD_UNITS) {
        let panel = &mut p[4 * h * u0..4 * h * (u0 + ul)];
        for (k, row) in panel.chunks_exact_mut(ul).enumerate() {
            row.copy_from_slice(&w[k * h + u0..k * h + u0 + ul]);
        }
    }
    p
}

/// `dst [m, n] = a [m, k]` (row stride `lda`) `· b [k, n]` (row stride n) on the calling
/// thread, in k-blocks of `kc` so that a block of `b` stays in L1.
#[allow(clippy::too_many_arguments)]
fn product<T: Element>(m: usize, n: usize, k: usize, a: &[T], lda: usize, b: &[T], dst: &mut [T], kc: usize) {
    for k0 in (0..k).step_by(kc) {
        let a = Mat {
            data: a,
            rs: lda,
            cs: 1,
            offset: k0,
        };
        let b = Mat {
            data: b,
            rs: n,
            cs: 1,
            offset: k0 * n,
        };
        let init = if k0 == 0 { Init::Zero } else { Init::Accumulate };
        gemm_init(m, n, kc.min(k - k0), a, b, dst, init, 1);
    }
}

/// A buffer that the tiles of one step read and write at once, each in its own parts.
#[derive(Clone, Copy)]
struct Shared<T>(*mut T);

// SAFETY: tiles only touch the parts the step's plan gives them (see `forward`, `backward`).
unsafe impl<T: Send> Send for Shared<T> {}
// SAFETY: as above.
unsafe impl<T: Send> Sync for Shared<T> {}

impl<T> Shared<T> {
    fn new(v: &mut [T]) -> Self {
        Shared(v.as_mut_ptr())
    }

    /// `len` elements from `at` to read.
    ///
    /// # Safety
    /// Inside the buffer, and nobody writes them while the result lives.
    unsafe fn read<'a>(self, at: usize, len: usize) -> &'a [T] {
        // SAFETY: the caller's contract.
        unsafe { std::slice::from_raw_parts(self.0.add(at), len) }
    }

    /// `len` elements from `at` to write.
    ///
    /// # Safety
    /// Inside the buffer, and no other reference overlaps them while the result lives.
    unsafe fn write<'a>(self, at: usize, len: usize) -> &'a mut [T] {
        // SAFETY: the caller's contract.
        unsafe { std::slice::from_raw_parts_mut(self.0.add(at), len) }
    }

    /// The outputs from `at` with row stride `rs`, for the pointwise work.
    ///
    /// # Safety
    /// `at` is inside the buffer.
    unsafe fn out(self, at: usize, rs: usize) -> Out<T> {
        // SAFETY: the caller's contract.
        let ptr = unsafe { self.0.add(at) };
        Out { ptr, rs }
    }
}

/// The layer's forward pass from `h0`, `c0`: returns `[T + 2, N, H]` (the outputs, then the
/// final `h` and `c`) and what the backward pass needs. With `lengths` (forward direction
/// only), a sequence's state stops at its length and its outputs after it are zero.
///
/// Each step is one round of tiles, a tile per block of [`FWD_UNITS`] hidden units: the
/// block's four gates from `h·W_hhᵀ` (its packed panel), then the cell on them. With two
/// threads the caller takes blocks from the low end and the helper from the high end, so
/// each mostly reuses the same half of the packed weights, which stays in its cache. A
/// tile computes the same values whoever runs it, so results do not depend on threads.
pub fn forward<T: Element>(
    d: Dims,
    xg: &[T],
    h0: &[T],
    c0: &[T],
    w_hh: &[T],
    lengths: Option<&[usize]>,
    threads: usize,
) -> (Vec<T>, Saved<Vec<T>>) {
    let (n, h) = (d.n, d.h);
    let (nh, ng) = (n * h, n * 4 * h);
    let mut act = vec![T::ZERO; d.t * ng];
    let mut h_prev = vec![T::ZERO; d.t * nh];
    let mut c_prev = vec![T::ZERO; d.t * nh];
    let mut tc = vec![T::ZERO; d.t * nh];
    let mut out = vec![T::ZERO; (d.t + 2) * nh];
    let mut pre = vec![T::ZERO; ng];
    let w = pack_forward(w_hh, h);
    let t0 = d.time(0);
    h_prev[t0 * nh..(t0 + 1) * nh].copy_from_slice(h0);
    c_prev[t0 * nh..(t0 + 1) * nh].copy_from_slice(c0);
    let bl = blocks(h, FWD_UNITS);
    let (sa, shp, scp, stc, so, sp) = (
        Shared::new(&mut act),
        Shared::new(&mut h_prev),
        Shared::new(&mut c_prev),
        Shared::new(&mut tc),
        Shared::new(&mut out),
        Shared::new(&mut pre),
    );
    let mut dead = Vec::new();
    for s in 0..d.t {
        let t = d.time(s);
        ended(lengths, t, &mut dead);
        // Where the new states go: the next step's inputs, or after the outputs at the end.
        let (hs, cs) = match (s + 1 < d.t).then(|| d.time(s + 1)) {
            Some(nt) => ((shp, nt * nh), (scp, nt * nh)),
            None => ((so, d.t * nh), (so, (d.t + 1) * nh)),
        };
        let dead = &dead[..];
        let work = |j: usize| {
            let (u0, ul) = bl[j];
            // SAFETY: during this step `h_prev[t]`, `c_prev[t]` are only read; each tile
            // writes its own `pre` block and its own units' columns of `act[t]`, `tc[t]`,
            // `out[t]` and the new states, which lie in other time rows than those read.
            unsafe {
                let pre = sp.write(n * 4 * u0, n * 4 * ul);
                let h_in = shp.read(t * nh, nh);
                product(n, 4 * ul, h, h_in, h, &w[4 * h * u0..4 * h * (u0 + ul)], pre, FWD_KC);
                Forward {
                    n,
                    ul,
                    h,
                    pre,
                    xg: &xg[t * ng + u0..(t + 1) * ng],
                    h_in: &h_in[u0..],
                    c_in: scp.read(t * nh + u0, nh - u0),
                    dead,
                    act: sa.out(t * ng + u0, 4 * h),
                    h_out: hs.0.out(hs.1 + u0, h),
                    c_out: cs.0.out(cs.1 + u0, h),
                    tc: stc.out(t * nh + u0, h),
                    y: so.out(t * nh + u0, h),
                }
                .run();
            }
        };
        run_tiles(bl.len(), threads, &work);
    }
    let saved = Saved {
        act,
        h_prev,
        c_prev,
        tc,
    };
    (out, saved)
}

/// What [`backward`] returns: the gradients of `xg`, `h0`, `c0` and (when asked) `W_hh`.
pub struct Grads<T> {
    /// `[T, N, 4H]`, also the gradient of the pre-activation gates.
    pub xg: Vec<T>,
    /// `[N, H]`.
    pub h0: Vec<T>,
    /// `[N, H]`.
    pub c0: Vec<T>,
    /// `[4H, H]`, when asked for.
    pub w_hh: Option<Vec<T>>,
}

/// Backward through time from the upstream gradient `g` `[T + 2, N, H]` (of the outputs,
/// the final `h`, the final `c`), with what [`forward`] kept.
///
/// Per step: the gradient reaching each step's `h` joins the output's, the cell gives the
/// gate gradients, and `dgates·W_hh` the previous `h`'s gradient. Both are split by blocks
/// of [`BWD_UNITS`] hidden units, and a tile owns its units' columns of `dh`, `dc` and the
/// running sums: in one round it computes its columns of `dh` from the previous step's gate
/// gradients (all of them, finished in the previous round) and then runs the cell for its
/// units at this step. So a step costs one hand-off, and the tile's panel of `W_hh` stays
/// with the thread that usually runs it.
#[allow(clippy::too_many_arguments)] // the layer's pieces, read best side by side
pub fn backward<T: Element>(
    d: Dims,
    g: &[T],
    saved: &Saved<&[T]>,
    w_hh: &[T],
    lengths: Option<&[usize]>,
    want_w: bool,
    threads: usize,
) -> Grads<T> {
    let (n, h) = (d.n, d.h);
    let (nh, ng) = (n * h, n * 4 * h);
    let bl = blocks(h, BWD_UNITS);
    // `dh` in blocks: block (u0, ul) is the `[n, ul]` matrix at `n·u0`, a product's output.
    let mut dh = vec![T::ZERO; nh];
    for &(u0, ul) in &bl {
        for r in 0..n {
            let src = &g[d.t * nh + r * h + u0..][..ul];
            dh[n * u0 + r * ul..][..ul].copy_from_slice(src);
        }
    }
    let mut dc = g[(d.t + 1) * nh..(d.t + 2) * nh].to_vec();
    // The gradient reaching each step's `h` (state layout), kept for ended rows.
    let mut total = vec![T::ZERO; nh];
    let mut dxg = vec![T::ZERO; d.t * ng];
    let w = pack_backward(w_hh, h);
    let (sdh, sdc, stot, sdx) = (
        Shared::new(&mut dh),
        Shared::new(&mut dc),
        Shared::new(&mut total),
        Shared::new(&mut dxg),
    );
    let (mut dead, mut dead_prev) = (Vec::new(), Vec::new());
    // Round r runs the cell of processing step T − 1 − r (while r < T) after the product
    // for the step before it (once r > 0).
    for r in 0..=d.t {
        let cell = (r < d.t).then(|| d.time(d.t - 1 - r));
        let prod = (r > 0).then(|| d.time(d.t - r));
        std::mem::swap(&mut dead, &mut dead_prev);
        match cell {
            Some(t) => ended(lengths, t, &mut dead),
            None => dead.clear(),
        }
        let (dead, dead_prev) = (&dead[..], &dead_prev[..]);
        let work = |j: usize| {
            let (u0, ul) = bl[j];
            // SAFETY: a tile writes only its own block of `dh` and its units' columns of
            // `dc`, `total` and `dxg[t]`; the product reads `dxg` at the previous step's
            // time, which nobody writes in this round.
            unsafe {
                let dhb = sdh.write(n * u0, n * ul);
                if let Some(tp) = prod {
                    let a = sdx.read(tp * ng, ng);
                    product(n, ul, 4 * h, a, 4 * h, &w[4 * h * u0..4 * h * (u0 + ul)], dhb, BWD_KC);
                    for (b, _) in dead_prev.iter().enumerate().filter(|(_, &e)| e) {
                        // An ended row's state passed through unchanged, and so does its gradient.
                        dhb[b * ul..(b + 1) * ul].copy_from_slice(stot.read(b * h + u0, ul));
                    }
                }
                let Some(t) = cell else { return };
                // The output's gradient joins the one coming back from later steps (not
                // for ended rows: their output was a constant zero).
                for b in 0..n {
                    let tot = stot.write(b * h + u0, ul);
                    let row = &mut dhb[b * ul..(b + 1) * ul];
                    if !dead.get(b).copied().unwrap_or(false) {
                        for (x, &y) in row.iter_mut().zip(&g[t * nh + b * h + u0..][..ul]) {
                            *x += y;
                        }
                    }
                    tot.copy_from_slice(row);
                }
                let rt = t * nh + u0;
                Backward {
                    n,
                    ul,
                    h,
                    dh: dhb,
                    act: &saved.act[t * ng + u0..(t + 1) * ng],
                    tc: &saved.tc[rt..(t + 1) * nh],
                    c: &saved.c_prev[rt..(t + 1) * nh],
                    dead,
                    dc: sdc.out(u0, h),
                    dg: sdx.out(t * ng + u0, 4 * h),
                }
                .run();
            }
        };
        run_tiles(bl.len(), threads, &work);
    }
    // Back to the state layout.
    let mut dh0 = vec![T::ZERO; nh];
    for &(u0, ul) in &bl {
        for r in 0..n {
            dh0[r * h + u0..][..ul].copy_from_slice(&dh[n * u0 + r * ul..][..ul]);
        }
    }
    let w_grad = want_w.then(|| {
        // Σ_t dgates_tᵀ · h_{t−1}: every step's share in one product over all T·N rows.
        let mut dw = vec![T::ZERO; 4 * h * h];
        let a = Mat {
            data: &dxg,
            rs: 1,
            cs: 4 * h,
            offset: 0,
        };
        let b = Mat {
            data: saved.h_prev,
            rs: h,
            cs: 1,
            offset: 0,
        };
        gemm_init(4 * h, h, d.t * n, a, b, &mut dw, Init::Zero, threads);
        dw
    });
    Grads {
        xg: dxg,
        h0: dh0,
        c0: dc,
        w_hh: w_grad,
    }
}

#[cfg(test)]
mod tests {
    use super::{backward, forward, Dims, Grads, Saved};
    use crate::cpu;
    use crate::kernels::test_rand::uniform_f64;

    /// Forward and backward of one layer: the packed output, then every gradient, flat.
    fn run<T: crate::Element>(d: Dims, ins: &[Vec<f64>; 5], lengths: Option<&[usize]>, threads: usize) -> Vec<f64> {
        let c = |v: &Vec<f64>| v.iter().map(|&x| T::from_f64(x)).collect::<Vec<T>>();
        let [xg, h0, c0, w, g] = ins;
        let (out, s) = forward(d, &c(xg), &c(h0), &c(c0), &c(w), lengths, threads);
        let saved = Saved {
            act: &s.act[..],
            h_prev: &s.h_prev[..],
            c_prev: &s.c_prev[..],
            tc: &s.tc[..],
        };
        let Grads { xg, h0, c0, w_hh } = backward(d, &c(g), &saved, &c(w), lengths, true, threads);
        let w_hh = w_hh.expect("asked for");
        [out, xg, h0, c0, w_hh].iter().flatten().map(|x| x.to_f64()).collect()
    }

    /// Hidden sizes with partial unit blocks and several k-blocks each way, both directions
    /// and lengths: f32 (the vectorized cell, the AVX kernels) against f64, and the same
    /// bits on 1, 2 and 3 threads at every level this CPU has.
    #[test]
    fn blocks_and_threads_match_f64_and_each_other() {
        for (h, reverse, lengths) in [
            (150, false, None),
            (70, true, None),
            (37, false, Some(vec![4usize, 1, 3, 4, 2])),
        ] {
            let (t, n) = (4, 5);
            let d = Dims { t, n, h, reverse };
            let seed = h as u64;
            let ins = [
                uniform_f64(t * n * 4 * h, seed, 1.0),
                uniform_f64(n * h, seed + 1, 1.0),
                uniform_f64(n * h, seed + 2, 1.0),
                uniform_f64(4 * h * h, seed + 3, 1.0 / (h as f64).sqrt()),
                uniform_f64((t + 2) * n * h, seed + 4, 1.0),
            ];
            let l = lengths.as_deref();
            let want = run::<f64>(d, &ins, l, 1);
            assert_eq!(want, run::<f64>(d, &ins, l, 3), "f64, h {h}: threads changed the bits");
            for level in cpu::supported() {
                let one = cpu::with_isa(level, || run::<f32>(d, &ins, l, 1));
                for (i, (a, b)) in one.iter().zip(&want).enumerate() {
                    assert!(
                        (a - b).abs() <= 1e-4 * (1.0 + b.abs()),
                        "{level} h {h} [{i}]: {a} vs {b}"
                    );
                }
                for threads in [2, 3] {
                    let other = cpu::with_isa(level, || run::<f32>(d, &ins, l, threads));
                    assert_eq!(one, other, "{level} h {h}: {threads} threads changed the bits");
                }
            }
        }
    }
}
