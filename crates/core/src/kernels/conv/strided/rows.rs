//! The row moves of `strided` around its products, written once over [`Lanes`]: the
//! phase split of the input (even/odd columns apart), the input gradient's landing (the
//! inverse), and short rows copied into or out of the wide layouts. Rows there are 7 to 64
//! elements, where a scalar loop or a library `memcpy` call per row cost a sixth of a
//! pass (fcn_small's 16 → 32 at 64×64). Called from `vector`'s dispatch, with the level's
//! features on.

use crate::kernels::simd::Lanes;

/// `w` elements from `src` to `dst`, plus `b` if `ADD` (else a bitwise copy): whole
/// vectors, then one masked one (the rows are short, where a library `memcpy` call per row
/// cost more than the copy).
#[inline(always)]
pub(super) unsafe fn copy_row<V: Lanes, const ADD: bool>(src: *const f32, w: usize, b: V, dst: *mut f32) {
    // SAFETY: the caller runs this with the level's features on.
    let add = |v: V| if ADD { unsafe { v.add(b) } } else { v };
    let mut i = 0;
    // SAFETY: the caller's contract: `src[..w]` readable, `dst[..w]` writable.
    unsafe {
        while i + V::L <= w {
            add(V::loadu(src.add(i))).storeu(dst.add(i));
            i += V::L;
        }
        if i < w {
            add(V::load(src, i as isize, w)).store(dst.add(i), w - i);
        }
    }
}

/// `vector::Job::Deinterleave`: whole pairs of vectors, then one masked pair per row.
#[inline(always)]
pub(super) unsafe fn deinterleave<V: Lanes>(src: *const f32, w: usize, to: &[[usize; 2]], dst: *mut f32) {
    let l = V::L;
    let whole = w / (2 * l) * 2 * l;
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
            if i < w {
                let (a, b) = (V::load(row, i as isize, w), V::load(row, (i + l) as isize, w));
                let (ev, ov) = V::even_odd(a, b);
                let m = w - i;
                ev.store(dst.add(e + i / 2), m.div_ceil(2));
                ov.store(dst.add(o + i / 2), m / 2);
            }
        }
    }
}

/// `vector::Job::Interleave`: whole pairs of vectors, then one masked pair per row.
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
            if i < w {
                let m = w - i;
                let (ne, no) = (m.div_ceil(2), m / 2);
                let ev = V::load(src.add(e + i / 2), 0, ne).add(bv);
                let ov = V::load(src.add(o + i / 2), 0, no).add(bv);
                let (lo, hi) = V::interleave(ev, ov);
                lo.store(row.add(i), m.min(l));
                if m > l {
                    hi.store(row.add(i + l), m - l);
                }
            }
        }
    }
}
