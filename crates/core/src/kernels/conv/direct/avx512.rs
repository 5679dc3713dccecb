//! The AVX-512 direct kernels: vectors along output rows (`rows`), along 16 output
//! channels (`chans`), and the folded input gradient (`fold`), behind [`Kernels`].

pub(super) mod chans;
pub(super) mod fold;
pub(super) mod rows;

use super::drive::Kernels;
use super::{ConvGeom, Corr, L};

/// The AVX-512 kernel set.
pub(super) struct Avx512;

// SAFETY (every function): the caller upholds `Kernels`' contract (AVX-512 at hand, the
// shapes checked), which is what each kernel's `# Safety` asks.
impl Kernels for Avx512 {
    unsafe fn rows_forward(g: &Corr, xp: &[f32], wr: &[f32], bias: Option<&[f32]>, out: &mut [f32]) {
        // SAFETY: see above.
        unsafe { rows::forward(g, xp, wr, bias, out) }
    }
    unsafe fn rows_weight(g: &Corr, xp: &[f32], dy: &[f32], acc: &mut [f32]) {
        // SAFETY: see above.
        unsafe { rows::weight(g, xp, dy, acc) }
    }
    unsafe fn chans_forward(g: &Corr, xp: &[f32], wt: &[f32], bias: &[f32; L], outt: &mut [f32]) {
        // SAFETY: see above.
        unsafe { chans::forward(g, xp, wt, bias, outt) }
    }
    unsafe fn chans_weight(g: &Corr, xp: &[f32], dyt: &[f32], acc: &mut [f32]) {
        // SAFETY: see above.
        unsafe { chans::weight(g, xp, dyt, acc) }
    }
    unsafe fn to_lanes(src: &[f32], p: usize, dst: &mut [f32]) {
        // SAFETY: see above.
        unsafe { chans::to_lanes(src, p, dst) }
    }
    unsafe fn from_lanes(src: &[f32], p: usize, dst: &mut [f32]) {
        // SAFETY: see above.
        unsafe { chans::from_lanes(src, p, dst) }
    }
    unsafe fn input_grad(g: &ConvGeom, dy: &[f32], w: &[f32], bias: Option<&[f32]>, cols: &mut [f32], dx: &mut [f32]) {
        // SAFETY: see above.
        unsafe { fold::input_grad(g, dy, w, bias, cols, dx) }
    }
}
