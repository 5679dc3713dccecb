//! Elementwise maps: unary over a slice, binary over two broadcast strided operands.
//!
//! The loops are compiled once per vector width and picked at run time by the level
//! [`cpu::isa`] gives (see [`vectorized`]), so the same binary uses AVX-512 where the CPU
//! has it and still runs on any x86-64. [`map_vec`] and [`zip_strided_vec`] write straight into fresh,
//! uninitialized memory: zero-filling first would cost as much as the op itself.

use super::par::for_each_chunk;
use super::{BLOCK, PAR_THRESHOLD};
use crate::cpu::{self, Isa};
use crate::Element;
use std::mem::MaybeUninit;

/// Outputs of at least this many bytes are backed by transparent huge pages.
pub const HUGE_PAGE_BYTES: usize = 32 << 20;

/// Outputs of at least this many bytes are zero-filled on all threads (the conv
/// autoencoder's 400 and 800 KB convolution outputs ran on one thread at 1 MiB).
const PAR_ZERO_BYTES: usize = 256 << 10;

/// Bytes zeroed per task of a parallel fill.
const ZERO_BLOCK_BYTES: usize = 128 << 10;

/// A zero-filled vector for a kernel to write (or accumulate) its output into.
///
/// Large outputs are zeroed on every thread: the allocator keeps freed memory for reuse
/// (see [`crate::memory`]), so `vec![0; n]` ran a serial memset on the calling thread
/// while the other cores waited (about 8% of an fcn_small step). Buffers of
/// [`HUGE_PAGE_BYTES`] or more may come fresh from the OS, and first-touching them in
/// 4 KiB pages costs more than the op itself (16M f32 adds: about 38 ms of page faults
/// against 4 ms of work here); asking for 2 MiB pages on the untouched allocation cuts
/// the faults 512-fold.
pub fn output_vec<T: Element>(n: usize) -> Vec<T> {
    let size = std::mem::size_of::<T>().max(1);
    if n * size < PAR_ZERO_BYTES {
        return vec![T::ZERO; n];
    }
    filled(n, |out| {
        for_each_chunk(out, ZERO_BLOCK_BYTES / size, &|_, c| c.fill(MaybeUninit::new(T::ZERO)))
    })
}

/// A vector of `n` elements written by `fill`, which must write every one of them.
pub(crate) fn filled<U>(n: usize, fill: impl FnOnce(&mut [MaybeUninit<U>])) -> Vec<U> {
    let mut v = Vec::with_capacity(n);
    advise_huge_pages(&v);
    fill(&mut v.spare_capacity_mut()[..n]);
    // SAFETY: the capacity is at least n, and `fill` (one of this file's loops, which
    // write each output slot exactly once) initialized elements 0..n.
    unsafe { v.set_len(n) };
    v
}

/// View initialized output as slots to overwrite (only ever written with valid values).
fn as_slots<U>(out: &mut [U]) -> &mut [MaybeUninit<U>] {
    // SAFETY: MaybeUninit<U> has U's layout; the loops only store initialized values,
    // so the slice stays initialized when the caller sees it again.
    unsafe { &mut *(out as *mut [U] as *mut [MaybeUninit<U>]) }
}

/// Ask for huge pages on the whole 2 MiB pages inside a large allocation (Linux only;
/// elsewhere, or when THP is off, ordinary pages are used, which is fine).
fn advise_huge_pages<T>(v: &Vec<T>) {
    let bytes = v.capacity() * std::mem::size_of::<T>();
    #[cfg(target_os = "linux")]
    if bytes >= HUGE_PAGE_BYTES {
        extern "C" {
            fn madvise(addr: *mut std::ffi::c_void, len: usize, advice: i32) -> i32;
        }
        const MADV_HUGEPAGE: i32 = 14;
        const HUGE: usize = 2 << 20;
        let addr = v.as_ptr() as usize;
        // Only whole huge pages inside the allocation: the advice never reaches memory
        // that belongs to anyone else.
        let (start, end) = (addr.next_multiple_of(HUGE), (addr + bytes) / HUGE * HUGE);
        if end > start {
            // SAFETY: the range lies inside a live allocation of ours; MADV_HUGEPAGE only
            // changes how pages are backed, never their contents.
            unsafe {
                madvise(start as *mut std::ffi::c_void, end - start, MADV_HUGEPAGE);
            }
        }
    }
    #[cfg(not(target_os = "linux"))]
    let _ = bytes;
}

/// A loop body to compile once per vector width: `run` is inlined into a function built
/// with wider vector instructions enabled, so LLVM vectorizes it for that width.
pub(crate) trait Loop {
    /// What the loop returns.
    type Output;
    /// Run the loop (must be `#[inline(always)]` to be compiled for the wider target).
    fn run(self) -> Self::Output;
}

/// Run `body` built for the vector width of `level` (from [`cpu::isa`], read on the thread
/// that splits the work, since a test's [`cpu::with_isa`] override is that thread's only).
#[inline]
pub(crate) fn vectorized<L: Loop>(level: Isa, body: L) -> L::Output {
    #[cfg(target_arch = "x86_64")]
    match level {
        // SAFETY: levels come from `cpu`, which only reports (or lets a caller force) what
        // the CPU supports; the AVX-512 level includes AVX2 and FMA.
        Isa::Avx512 => return unsafe { run_avx512(body) },
        // SAFETY: as above, the AVX2 level means AVX2 and FMA are present.
        Isa::Avx2 => return unsafe { run_avx2(body) },
        Isa::Scalar | Isa::Neon => {}
    }
    // On aarch64 NEON is part of the baseline target, so this is already 4-lane NEON code
    // (at the scalar and NEON levels alike); only hand-written kernels tell them apart.
    #[cfg(not(target_arch = "x86_64"))]
    let _ = level;
    body.run()
}

/// `body` compiled for AVX-512 (the loops inline into this function and vectorize).
///
/// # Safety
/// The CPU must support AVX-512F, AVX2 and FMA.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f,avx2,fma")]
unsafe fn run_avx512<L: Loop>(body: L) -> L::Output {
    body.run()
}

/// `body` compiled for AVX2 and FMA.
///
/// # Safety
/// The CPU must support AVX2 and FMA.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma")]
unsafe fn run_avx2<L: Loop>(body: L) -> L::Output {
    body.run()
}

struct MapLoop<'a, T, U, F> {
    x: &'a [T],
    out: &'a mut [MaybeUninit<U>],
    f: &'a F,
}

impl<T: Copy, U, F: Fn(T) -> U> Loop for MapLoop<'_, T, U, F> {
    type Output = ();
    #[inline(always)]
    fn run(self) {
        let f = self.f;
        let n = self.out.len();
        self.out.iter_mut().zip(&self.x[..n]).for_each(|(o, &x)| {
            o.write(f(x));
        });
    }
}

fn map_slots<T: Copy + Send + Sync, U: Send>(x: &[T], out: &mut [MaybeUninit<U>], f: &(impl Fn(T) -> U + Sync)) {
    assert_eq!(x.len(), out.len(), "map: input and output lengths differ");
    let isa = cpu::isa();
    if x.len() >= PAR_THRESHOLD {
        for_each_chunk(out, BLOCK, &|i, out| {
            let x = &x[i * BLOCK..];
            vectorized(isa, MapLoop { x, out, f })
        });
    } else {
        vectorized(isa, MapLoop { x, out, f });
    }
}

/// `out[i] = f(x[i])`.
pub fn map<T: Copy + Send + Sync, U: Copy + Send + Sync>(x: &[T], out: &mut [U], f: impl Fn(T) -> U + Sync) {
    map_slots(x, as_slots(out), &f);
}

/// `f(x[i])` for every element, in a new vector.
pub fn map_vec<T: Copy + Send + Sync, U: Copy + Send + Sync>(x: &[T], f: impl Fn(T) -> U + Sync) -> Vec<U> {
    filled(x.len(), |out| map_slots(x, out, &f))
}

/// One run of a binary map: `out[j] = f(a[j·sa], b[j·sb])`.
struct ZipLoop<'a, T, U, F> {
    a: &'a [T],
    b: &'a [T],
    sa: usize,
    sb: usize,
    out: &'a mut [MaybeUninit<U>],
    f: &'a F,
}

impl<T: Copy, U, F: Fn(T, T) -> U> Loop for ZipLoop<'_, T, U, F> {
    type Output = ();
    #[inline(always)]
    fn run(self) {
        let (f, n) = (self.f, self.out.len());
        // One loop per stride pattern, so the common ones are plain unit-stride loops.
        match (self.sa, self.sb) {
            (1, 1) => {
                let ab = self.a[..n].iter().zip(&self.b[..n]);
                self.out.iter_mut().zip(ab).for_each(|(o, (&x, &y))| {
                    o.write(f(x, y));
                });
            }
            (1, 0) => {
                let y = self.b[0];
                self.out.iter_mut().zip(&self.a[..n]).for_each(|(o, &x)| {
                    o.write(f(x, y));
                });
            }
            (0, 1) => {
                let x = self.a[0];
                self.out.iter_mut().zip(&self.b[..n]).for_each(|(o, &y)| {
                    o.write(f(x, y));
                });
            }
            (sa, sb) => self.out.iter_mut().enumerate().for_each(|(j, o)| {
                o.write(f(self.a[j * sa], self.b[j * sb]));
            }),
        }
    }
}

fn zip_slots<T: Copy + Send + Sync, U: Send>(
    a: &[T],
    b: &[T],
    out: &mut [MaybeUninit<U>],
    f: &(impl Fn(T, T) -> U + Sync),
) {
    assert!(
        a.len() == out.len() && b.len() == out.len(),
        "zip: operand lengths differ"
    );
    let isa = cpu::isa();
    if a.len() >= PAR_THRESHOLD {
        for_each_chunk(out, BLOCK, &|i, out| {
            vectorized(
                isa,
                ZipLoop {
                    a: &a[i * BLOCK..],
                    b: &b[i * BLOCK..],
                    sa: 1,
                    sb: 1,
                    out,
                    f,
                },
            )
        });
    } else {
        vectorized(
            isa,
            ZipLoop {
                a,
                b,
                sa: 1,
                sb: 1,
                out,
                f,
            },
        );
    }
}

/// `out[i] = f(a[i], b[i])` for equal-length slices.
pub fn zip<T: Copy + Send + Sync, U: Copy + Send + Sync>(
    a: &[T],
    b: &[T],
    out: &mut [U],
    f: impl Fn(T, T) -> U + Sync,
) {
    zip_slots(a, b, as_slots(out), &f);
}

/// One operand of a strided binary map: its storage, strides over the output shape
/// (0 where broadcast) and offset.
#[derive(Clone, Copy)]
pub struct Operand<'a, T> {
    /// The whole storage.
    pub data: &'a [T],
    /// Strides aligned with the output shape.
    pub strides: &'a [usize],
    /// Index of element 0.
    pub offset: usize,
}

/// Ranks up to this are coalesced on the stack (a tiny op must not allocate for it).
const INLINE_RANK: usize = 8;

/// Merge neighbouring dims that both operands walk as one (fewer, longer inner loops),
/// writing them to `d`, `a`, `b`; returns how many dims remain (at least 1).
fn coalesce(shape: &[usize], sa: &[usize], sb: &[usize], d: &mut [usize], a: &mut [usize], b: &mut [usize]) -> usize {
    let mut len = 0;
    for i in 0..shape.len() {
        if shape[i] == 1 {
            continue;
        }
        if len > 0 && a[len - 1] == sa[i] * shape[i] && b[len - 1] == sb[i] * shape[i] {
            d[len - 1] *= shape[i];
            a[len - 1] = sa[i];
            b[len - 1] = sb[i];
            continue;
        }
        d[len] = shape[i];
        a[len] = sa[i];
        b[len] = sb[i];
        len += 1;
    }
    if len == 0 {
        (d[0], a[0], b[0]) = (1, 0, 0);
        len = 1;
    }
    len
}

fn zip_strided_slots<T: Copy + Send + Sync, U: Send>(
    shape: &[usize],
    a: Operand<'_, T>,
    b: Operand<'_, T>,
    out: &mut [MaybeUninit<U>],
    f: &(impl Fn(T, T) -> U + Sync),
) {
    assert_eq!(out.len(), shape.iter().product::<usize>(), "zip_strided: output size");
    if out.is_empty() {
        return;
    }
    let rank = shape.len().max(1);
    if rank <= INLINE_RANK {
        let (mut d, mut x, mut y) = ([0; INLINE_RANK], [0; INLINE_RANK], [0; INLINE_RANK]);
        let len = coalesce(shape, a.strides, b.strides, &mut d, &mut x, &mut y);
        zip_coalesced(&d[..len], a, &x[..len], b, &y[..len], out, f);
    } else {
        let (mut d, mut x, mut y) = (vec![0; rank], vec![0; rank], vec![0; rank]);
        let len = coalesce(shape, a.strides, b.strides, &mut d, &mut x, &mut y);
        zip_coalesced(&d[..len], a, &x[..len], b, &y[..len], out, f);
    }
}

/// `out = f(a, b)` over `shape` (row-major `out`), operands strided and broadcast.
pub fn zip_strided<T: Copy + Send + Sync, U: Copy + Send + Sync>(
    shape: &[usize],
    a: Operand<'_, T>,
    b: Operand<'_, T>,
    out: &mut [U],
    f: impl Fn(T, T) -> U + Sync,
) {
    zip_strided_slots(shape, a, b, as_slots(out), &f);
}

/// `f(a, b)` over `shape`, operands strided and broadcast, in a new row-major vector.
pub fn zip_strided_vec<T: Copy + Send + Sync, U: Copy + Send + Sync>(
    shape: &[usize],
    a: Operand<'_, T>,
    b: Operand<'_, T>,
    f: impl Fn(T, T) -> U + Sync,
) -> Vec<U> {
    filled(shape.iter().product(), |out| zip_strided_slots(shape, a, b, out, &f))
}

fn zip_coalesced<T: Copy + Send + Sync, U: Send>(
    dims: &[usize],
    a: Operand<'_, T>,
    sa: &[usize],
    b: Operand<'_, T>,
    sb: &[usize],
    out: &mut [MaybeUninit<U>],
    f: &(impl Fn(T, T) -> U + Sync),
) {
    let rank = dims.len();
    let inner = dims[rank - 1];
    let (ia, ib) = (sa[rank - 1], sb[rank - 1]);
    if rank == 1 && ia == 1 && ib == 1 {
        let n = out.len();
        let (a, b) = (&a.data[a.offset..a.offset + n], &b.data[b.offset..b.offset + n]);
        return zip_slots(a, b, out, f);
    }
    let row_offsets = |row: usize| {
        let (mut oa, mut ob, mut r) = (a.offset, b.offset, row);
        for d in (0..rank - 1).rev() {
            let i = r % dims[d];
            r /= dims[d];
            oa += i * sa[d];
            ob += i * sb[d];
        }
        (oa, ob)
    };
    let isa = cpu::isa();
    let do_row = |row: usize, out: &mut [MaybeUninit<U>]| {
        let (oa, ob) = row_offsets(row);
        let (a, b) = (&a.data[oa..], &b.data[ob..]);
        vectorized(
            isa,
            ZipLoop {
                a,
                b,
                sa: ia,
                sb: ib,
                out,
                f,
            },
        );
    };
    // `out` is not empty, so neither is `inner`: every row below is written.
    if out.len() >= PAR_THRESHOLD {
        // Rows shorter than a block are grouped so each task has a block's worth of work.
        let rows_per_task = (BLOCK / inner).max(1);
        for_each_chunk(out, inner * rows_per_task, &|t, o| {
            o.chunks_mut(inner)
                .enumerate()
                .for_each(|(r, o)| do_row(t * rows_per_task + r, o))
        });
    } else {
        out.chunks_mut(inner).enumerate().for_each(|(r, o)| do_row(r, o));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn output_vec_is_zeroed_small_and_huge() {
        let small = output_vec::<f64>(5);
        assert_eq!(small, vec![0.0; 5]);
        // Above the parallel threshold, with a last block shorter than the others, in
        // memory that held other values before.
        for n in [PAR_ZERO_BYTES / 8 + 5, 3 * ZERO_BLOCK_BYTES / 8 + 1] {
            drop(vec![7.0f64; n]);
            let mid = output_vec::<f64>(n);
            assert_eq!(mid.len(), n);
            assert!(mid.iter().all(|&v| v == 0.0), "n = {n}");
        }
        let n = HUGE_PAGE_BYTES / 4 + 3;
        let mut big = output_vec::<f32>(n);
        assert_eq!(big.len(), n);
        assert!(big.iter().all(|&v| v == 0.0));
        big[n - 1] = 2.0;
        assert_eq!(big[n - 1], 2.0);
    }

    #[test]
    fn new_vectors_are_fully_written() {
        // Sizes below and above the parallel threshold, and one large enough for huge pages.
        for n in [0, 5, PAR_THRESHOLD + 3, HUGE_PAGE_BYTES / 4 + 9] {
            let x: Vec<f32> = (0..n).map(|i| (i % 251) as f32).collect();
            let y = map_vec(&x, |v| v * 2.0 + 1.0);
            assert_eq!(y.len(), n);
            assert!(y.iter().zip(&x).all(|(&y, &x)| y == x * 2.0 + 1.0), "n = {n}");
            let z = zip_strided_vec(
                &[n],
                Operand {
                    data: &x,
                    strides: &[1],
                    offset: 0,
                },
                Operand {
                    data: &y,
                    strides: &[1],
                    offset: 0,
                },
                |a, b| b - a,
            );
            assert!(z.iter().zip(&x).all(|(&z, &x)| z == x + 1.0), "n = {n}");
        }
    }

    #[test]
    fn empty_shapes_write_nothing() {
        let a = [1.0f64; 3];
        for shape in [&[3usize, 0][..], &[0, 3], &[0]] {
            let z = zip_strided_vec(
                shape,
                Operand {
                    data: &a,
                    strides: &vec![0; shape.len()],
                    offset: 0,
                },
                Operand {
                    data: &a,
                    strides: &vec![0; shape.len()],
                    offset: 0,
                },
                |x, y| x + y,
            );
            assert!(z.is_empty(), "{shape:?}");
        }
    }

    #[test]
    fn broadcast_row_plus_column() {
        // a: [2,1] column, b: [3] row, out [2,3]
        let a = [10.0f32, 20.0];
        let b = [1.0f32, 2.0, 3.0];
        let mut out = [0.0f32; 6];
        zip_strided(
            &[2, 3],
            Operand {
                data: &a,
                strides: &[1, 0],
                offset: 0,
            },
            Operand {
                data: &b,
                strides: &[0, 1],
                offset: 0,
            },
            &mut out,
            |x, y| x + y,
        );
        assert_eq!(out, [11.0, 12.0, 13.0, 21.0, 22.0, 23.0]);
    }

    #[test]
    fn large_maps_match_a_plain_loop() {
        // Above the parallel threshold, with a tail that is not a whole block.
        let n = PAR_THRESHOLD * 3 + 17;
        let a: Vec<f32> = (0..n).map(|i| (i % 97) as f32 - 48.0).collect();
        let b: Vec<f32> = (0..n).map(|i| (i % 13) as f32 * 0.5).collect();
        let mut out = vec![0.0f32; n];
        zip(&a, &b, &mut out, |x, y| x * y - 1.0);
        assert!(out.iter().enumerate().all(|(i, &o)| o == a[i] * b[i] - 1.0));
        map(&a, &mut out, |x| x.max(0.0));
        assert!(out.iter().enumerate().all(|(i, &o)| o == a[i].max(0.0)));
    }

    #[test]
    fn large_broadcast_short_rows_and_transposed_operand() {
        // [rows, 3] + [3] (short rows grouped per task), and a transposed lhs.
        let rows = PAR_THRESHOLD / 2 + 5;
        let a: Vec<f64> = (0..rows * 3).map(|i| i as f64).collect();
        let b = [0.5f64, 0.25, 0.125];
        let mut out = vec![0.0f64; rows * 3];
        zip_strided(
            &[rows, 3],
            Operand {
                data: &a,
                strides: &[3, 1],
                offset: 0,
            },
            Operand {
                data: &b,
                strides: &[0, 1],
                offset: 0,
            },
            &mut out,
            |x, y| x + y,
        );
        assert!(out.iter().enumerate().all(|(i, &o)| o == i as f64 + b[i % 3]));
        // a seen as its transpose [3, rows] through strides [1, 3]; b a column [3, 1].
        zip_strided(
            &[3, rows],
            Operand {
                data: &a,
                strides: &[1, 3],
                offset: 0,
            },
            Operand {
                data: &b,
                strides: &[1, 0],
                offset: 0,
            },
            &mut out,
            |x, y| x * y,
        );
        let ok = (0..3).all(|r| (0..rows).all(|c| out[r * rows + c] == a[c * 3 + r] * b[r]));
        assert!(ok);
    }

    #[test]
    fn rank_above_the_inline_limit() {
        // Rank 10, every dim 2, with a broadcast last dim on b: exercises the heap path.
        let shape = [2usize; 10];
        let n = 1 << 10;
        let a: Vec<f32> = (0..n).map(|i| i as f32).collect();
        let b: Vec<f32> = (0..n / 2).map(|i| i as f32 * 10.0).collect();
        let sa: Vec<usize> = (0..10).map(|d| 1 << (9 - d)).collect();
        let mut sb: Vec<usize> = (0..10).map(|d| 1usize << (8usize.saturating_sub(d))).collect();
        sb[9] = 0;
        let mut out = vec![0.0f32; n];
        zip_strided(
            &shape,
            Operand {
                data: &a,
                strides: &sa,
                offset: 0,
            },
            Operand {
                data: &b,
                strides: &sb,
                offset: 0,
            },
            &mut out,
            |x, y| x + y,
        );
        assert!(out
            .iter()
            .enumerate()
            .all(|(i, &o)| o == i as f32 + (i / 2) as f32 * 10.0));
    }
}
