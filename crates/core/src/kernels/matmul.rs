//! Matrix products through the `gemm` crate (AVX-512 kernels, runtime dispatch).

use crate::Element;
use gemm::Parallelism;

/// Products with fewer multiply-adds than this run on one thread: below it the
/// hand-off to a second thread costs more than it saves (measured: 64×400×120).
pub const PAR_FLOPS: usize = 1 << 23;

/// A strided matrix operand: storage, row stride, column stride, offset (in elements).
#[derive(Clone, Copy)]
pub struct Mat<'a, T> {
    /// The whole storage.
    pub data: &'a [T],
    /// Step between rows.
    pub rs: usize,
    /// Step between columns.
    pub cs: usize,
    /// Index of element (0, 0).
    pub offset: usize,
}

/// `dst (m×n, row-major) = a (m×k) · b (k×n)`, or `dst += a · b` when `accumulate`.
#[allow(clippy::too_many_arguments)] // the BLAS-style signature reads best flat
pub fn gemm<T: Element>(
    m: usize,
    n: usize,
    k: usize,
    a: Mat<'_, T>,
    b: Mat<'_, T>,
    dst: &mut [T],
    accumulate: bool,
    threads: usize,
) {
    assert!(dst.len() >= m * n, "gemm: destination too small");
    if m == 0 || n == 0 {
        return;
    }
    if k == 0 {
        if !accumulate {
            dst[..m * n].iter_mut().for_each(|v| *v = T::ZERO);
        }
        return;
    }
    // Bounds of what gemm will read, checked here so the unsafe call below stays in bounds.
    let last = |x: &Mat<'_, T>, r: usize, c: usize| x.offset + (r - 1) * x.rs + (c - 1) * x.cs;
    assert!(last(&a, m, k) < a.data.len(), "gemm: lhs out of bounds");
    assert!(last(&b, k, n) < b.data.len(), "gemm: rhs out of bounds");
    let par = if threads > 1 && m * n * k >= PAR_FLOPS {
        Parallelism::Rayon(threads)
    } else {
        Parallelism::None
    };
    // SAFETY: every index read is within the slices (checked above); dst holds m×n
    // row-major elements; the strides describe exactly those layouts.
    unsafe {
        gemm::gemm(
            m,
            n,
            k,
            dst.as_mut_ptr(),
            1,
            n as isize,
            accumulate,
            a.data.as_ptr().add(a.offset),
            a.cs as isize,
            a.rs as isize,
            b.data.as_ptr().add(b.offset),
            b.cs as isize,
            b.rs as isize,
            T::ONE,
            T::ONE,
            false,
            false,
            false,
            par,
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn small_product_and_transposed_operand() {
        let a = [1.0f64, 2.0, 3.0, 4.0]; // [[1,2],[3,4]]
        let b = [5.0f64, 6.0, 7.0, 8.0];
        let mut d = [0.0f64; 4];
        gemm(
            2,
            2,
            2,
            Mat {
                data: &a,
                rs: 2,
                cs: 1,
                offset: 0,
            },
            Mat {
                data: &b,
                rs: 2,
                cs: 1,
                offset: 0,
            },
            &mut d,
            false,
            1,
        );
        assert_eq!(d, [19.0, 22.0, 43.0, 50.0]);
        // b transposed through strides
        gemm(
            2,
            2,
            2,
            Mat {
                data: &a,
                rs: 2,
                cs: 1,
                offset: 0,
            },
            Mat {
                data: &b,
                rs: 1,
                cs: 2,
                offset: 0,
            },
            &mut d,
            false,
            1,
        );
        assert_eq!(d, [17.0, 23.0, 39.0, 53.0]);
    }
}
