//! The row moves of `strided` around its products, written once over [`Lanes`]: the
//! phase split of the input (even/odd columns apart), the input gradient's landing (the
//! inverse), and short rows copied into or out of the wide layouts. Rows there are 7 to 64
//! elements, where a scalar loop or a library `memcpy` call per row cost a sixth of a
//! pass (fcn_small's 16 → 32 at 64×64). Called from `vector`'s dispatch, with the level's
//! features on.

use crate::kernels::simd::Lanes;

/// `w` elements from `src` to `dst`, plus `b` if `ADD` (else a bitwise copy): whole
/// vectors, then one masked one (the rows are short, where a library `memcpy` call per row
/// cost more than the copy). The tail's length depends on `w` alone, so a caller's loop
/// over rows computes its mask once.
#[inline(always)]
pub(super) unsafe fn copy_row<V: Lanes, const ADD: bool>(src: *const f32, w: usize, b: V, dst: *mut f32) {
    // SAFETY: the caller runs this with the level's features on.
    let add = |v: V| if ADD { unsafe { v.add(b) } } else { v };
    let whole = w / V::L * V::L;
    let mut i = 0;
    // SAFETY: the caller's contract: `src[..w]` readable, `dst[..w]` writable.
    unsafe {
        while i < whole {
            add(V::loadu(src.add(i))).storeu(dst.add(i));
            i += V::L;
        }
        if whole < w {
            add(V::load(src.add(whole), 0, w - whole)).store(dst.add(whole), w - whole);
        }
    }
}

/// `vector::Job::Deinterleave`: whole pairs of vectors, then one masked pair per row. The
/// tail's lengths are fixed per call and computed before the rows, so its masks are too
/// (computed per row, they took most of the split of the conv autoencoder's 14-wide rows).
#[inline(always)]
pub(super) unsafe fn deinterleave<V: Lanes>(src: *const f32, w: usize, to: &[[usize; 2]], dst: *mut f32) {
    let l = V::L;
    let whole = w / (2 * l) * 2 * l;
    let m = w - whole;
    let (m1, m2, ne, no) = (m.min(l), m.saturating_sub(l), m.div_ceil(2), m / 2);
    // SAFETY: the caller's contract: rows of `w` in `src`, their halves' room in `dst`.
    unsafe {
        for (r, &[e, o]) in to.iter().enumerate() {
            let row = src.add(r * w);
            let mut i = 0;
            while i < whole {
                let (ev, ov) = V::even_odd(V::loadu(row.add(i)), V::loadu(row.add(i + l)));
                ev.storeu(dst.add(e + i / 2));
                ov.storeu(dst.add(o + i / 2));
                i += 2 * l;
            }
            if m > 0 {
                let (a, b) = (V::load(row.add(whole), 0, m1), V::load(row.add(whole + l), 0, m2));
                let (ev, ov) = V::even_odd(a, b);
                ev.store(dst.add(e + whole / 2), ne);
                ov.store(dst.add(o + whole / 2), no);
            }
        }
    }
}

/// `vector::Job::Interleave`: whole pairs of vectors, then one masked pair per row (its
/// lengths computed before the rows, as in [`deinterleave`]).
#[inline(always)]
pub(super) unsafe fn interleave<V: Lanes>(
    src: *const f32,
    from: &[[usize; 2]],
    w: usize,
    bias: Option<&[f32]>,
    plane: usize,
    dst: *mut f32,
) {
    let l = V::L;
    let whole = w / (2 * l) * 2 * l;
    let m = w - whole;
    let (ne, no, m1, m2) = (m.div_ceil(2), m / 2, m.min(l), m.saturating_sub(l));
    // SAFETY: the caller's contract: the halves in `src`, rows of `w` in `dst`.
    unsafe {
        for (r, &[e, o]) in from.iter().enumerate() {
            let bv = V::splat(bias.map_or(0.0, |b| b[r / plane]));
            let row = dst.add(r * w);
            let mut i = 0;
            while i < whole {
                let ev = V::loadu(src.add(e + i / 2)).add(bv);
                let ov = V::loadu(src.add(o + i / 2)).add(bv);
                let (lo, hi) = V::interleave(ev, ov);
                lo.storeu(row.add(i));
                hi.storeu(row.add(i + l));
                i += 2 * l;
            }
            if m > 0 {
                let ev = V::load(src.add(e + whole / 2), 0, ne).add(bv);
                let ov = V::load(src.add(o + whole / 2), 0, no).add(bv);
                let (lo, hi) = V::interleave(ev, ov);
                lo.store(row.add(whole), m1);
                if m2 > 0 {
                    hi.store(row.add(whole + l), m2);
                }
            }
        }
    }
}
