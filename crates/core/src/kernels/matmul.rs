//! Matrix products: f32 products of the sizes fully connected layers and small convolutions
//! have go to unpacked kernels (`lanes.rs`, at the level [`crate::cpu::isa`] gives:
//! `avx512.rs`, `avx2.rs`, `neon.rs`) split over threads by
//! [`run_tiles`]; everything else (f64, large or oddly laid out products, other CPUs) goes to
//! the `gemm` crate.

use crate::Element;
use gemm::Parallelism;
use std::mem::MaybeUninit;

#[cfg(target_arch = "x86_64")]
mod avx2;
#[cfg(target_arch = "x86_64")]
mod avx512;
mod capped;
mod lanes;
#[cfg(target_arch = "aarch64")]
mod neon;
pub use super::par::{for_each_tile, run_tiles};

/// Products with fewer multiply-adds than this run on one thread in `gemm`: below it its
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

/// What the destination holds before the product is added to it.
#[derive(Clone, Copy)]
pub enum Init<'a, T> {
    /// Nothing: `dst = a·b`.
    Zero,
    /// Its current values: `dst += a·b`.
    Accumulate,
    /// A bias per column (length ≥ n): `dst = bias + a·b`, as a linear layer's forward.
    Bias(&'a [T]),
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
    let init = if accumulate { Init::Accumulate } else { Init::Zero };
    gemm_init(m, n, k, a, b, dst, init, threads)
}

/// [`gemm`] always through `gemm`'s packed kernels (capped at the level [`crate::cpu::isa`]
/// gives), never the unpacked ones: for callers whose operands do not fit the unpacked
/// kernels' caches (a long `k` with a wide `b`, or short dot products).
#[allow(clippy::too_many_arguments)]
pub fn gemm_packed<T: Element>(
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
    let init = if accumulate { Init::Accumulate } else { Init::Zero };
    // SAFETY: dst holds m×n initialized elements.
    unsafe { gemm_ptr(m, n, k, a, b, dst.as_mut_ptr(), init, threads, false) }
}

/// `dst (m×n, row-major) = init + a (m×k) · b (k×n)`.
#[allow(clippy::too_many_arguments)]
pub fn gemm_init<T: Element>(
    m: usize,
    n: usize,
    k: usize,
    a: Mat<'_, T>,
    b: Mat<'_, T>,
    dst: &mut [T],
    init: Init<'_, T>,
    threads: usize,
) {
    assert!(dst.len() >= m * n, "gemm: destination too small");
    // SAFETY: dst holds m×n initialized elements.
    unsafe { gemm_ptr(m, n, k, a, b, dst.as_mut_ptr(), init, threads, true) }
}

/// `dst (m×n, row-major) = a·b`, or `bias + a·b`, into memory not yet initialized: every
/// element is written, so a fresh output needs no zero fill first.
#[allow(clippy::too_many_arguments)]
pub fn gemm_uninit<T: Element>(
    m: usize,
    n: usize,
    k: usize,
    a: Mat<'_, T>,
    b: Mat<'_, T>,
    dst: &mut [MaybeUninit<T>],
    bias: Option<&[T]>,
    threads: usize,
) {
    assert!(dst.len() >= m * n, "gemm: destination too small");
    let init = bias.map_or(Init::Zero, Init::Bias);
    // SAFETY: dst holds m×n slots; with `Zero` or `Bias` nothing is read before written.
    unsafe { gemm_ptr(m, n, k, a, b, dst.as_mut_ptr() as *mut T, init, threads, true) }
}

/// The product into `dst`, which must hold m×n elements, initialized unless `init`
/// is `Zero` or `Bias` (then every element is written before any is read); the unpacked
/// kernels only where `unpacked` allows them.
///
/// # Safety
/// `dst` must be valid for writes of `m·n` elements (and initialized unless `init` is
/// `Zero` or `Bias`), and no other reference may reach those elements during the call.
#[allow(clippy::too_many_arguments)]
unsafe fn gemm_ptr<T: Element>(
    m: usize,
    n: usize,
    k: usize,
    a: Mat<'_, T>,
    b: Mat<'_, T>,
    dst: *mut T,
    init: Init<'_, T>,
    threads: usize,
    unpacked: bool,
) {
    // SAFETY: the caller upholds the `# Safety` contract above; the intrinsics and
    // pointer accesses below rely on nothing more.
    unsafe {
        if let Init::Bias(bias) = init {
            assert!(bias.len() >= n, "gemm: bias shorter than a row");
        }
        if m == 0 || n == 0 {
            return;
        }
        let fill_bias = |bias: &[T]| {
            for r in 0..m {
                std::ptr::copy_nonoverlapping(bias.as_ptr(), dst.add(r * n), n);
            }
        };
        if k == 0 {
            match init {
                Init::Zero => (0..m * n).for_each(|i| dst.add(i).write(T::ZERO)),
                Init::Accumulate => {}
                Init::Bias(bias) => fill_bias(bias),
            }
            return;
        }
        // Bounds of what the kernels will read, checked here so the unsafe calls stay in bounds.
        let last = |x: &Mat<'_, T>, r: usize, c: usize| x.offset + (r - 1) * x.rs + (c - 1) * x.cs;
        assert!(last(&a, m, k) < a.data.len(), "gemm: lhs out of bounds");
        assert!(last(&b, k, n) < b.data.len(), "gemm: rhs out of bounds");
        #[cfg(any(target_arch = "x86_64", target_arch = "aarch64"))]
        if unpacked && small_f32(m, n, k, &a, &b, dst, init, threads) {
            return;
        }
        // The unpacked kernels are for x86-64 and aarch64.
        #[cfg(not(any(target_arch = "x86_64", target_arch = "aarch64")))]
        let _ = unpacked;
        let par = if threads > 1 && m * n * k >= PAR_FLOPS {
            Parallelism::Rayon(threads)
        } else {
            Parallelism::None
        };
        let read_dst = match init {
            Init::Zero => false,
            Init::Accumulate => true,
            Init::Bias(bias) => {
                fill_bias(bias);
                true
            }
        };
        // f32 at a level below the CPU's: `gemm` would pick its widest kernels anyway.
        if std::any::TypeId::of::<T>() == std::any::TypeId::of::<f32>() {
            let f = |x: &Mat<'_, T>| {
                (
                    x.data.as_ptr().add(x.offset) as *const f32,
                    x.cs as isize,
                    x.rs as isize,
                )
            };
            // SAFETY: T is f32 (checked), and the operands are as below for `gemm::gemm`.
            if capped::gemm_f32(
                crate::cpu::isa(),
                m,
                n,
                k,
                dst as *mut f32,
                1,
                n as isize,
                read_dst,
                f(&a),
                f(&b),
                par,
            ) {
                return;
            }
        }
        // SAFETY: every index read is within the slices (checked above); dst holds m×n
        // row-major elements; the strides describe exactly those layouts. Without
        // `read_dst`, `gemm` only writes dst.
        gemm::gemm(
            m,
            n,
            k,
            dst,
            1,
            n as isize,
            read_dst,
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

/// Products above this many multiply-adds go to `gemm` (1024³ ran 3–8% faster there;
/// 512³ and below ran as fast or faster unpacked).
#[cfg(any(target_arch = "x86_64", target_arch = "aarch64"))]
const BIG_MACS: usize = 1 << 28;

/// Products this small run on one thread in the unpacked kernels: the hand-off costs more.
#[cfg(any(target_arch = "x86_64", target_arch = "aarch64"))]
const SMALL_PAR_MACS: usize = 1 << 20;

/// The unpacked AVX-512, AVX2 or NEON kernels for f32 operands whose layout suits them;
/// false if not taken (other levels, other types, shapes `gemm` does better).
#[cfg(any(target_arch = "x86_64", target_arch = "aarch64"))]
#[allow(clippy::too_many_arguments)]
fn small_f32<T: Element>(
    m: usize,
    n: usize,
    k: usize,
    a: &Mat<'_, T>,
    b: &Mat<'_, T>,
    dst: *mut T,
    init: Init<'_, T>,
    threads: usize,
) -> bool {
    use crate::cpu::{self, Isa};
    use std::any::TypeId;
    let level = cpu::isa();
    if TypeId::of::<T>() != TypeId::of::<f32>() || !matches!(level, Isa::Avx512 | Isa::Avx2 | Isa::Neon) {
        return false;
    }
    // Unpacked operands stream from cache: keep to panels that fit (measured at the
    // MLP's and LeNet's shapes); larger products go to `gemm`, which packs and blocks.
    let outer_fits = b.cs == 1 && k <= 1024;
    // A few rows (a fully connected layer on a small batch, `x·Wᵀ`): each row of W is read
    // once from memory whatever k is, where `gemm` would pack all of W on every call
    // (AlexNet forward at batch 8, three such layers: 129 -> 75 ms).
    let thin = a.cs == 1 && b.rs == 1 && m <= 16;
    let dot_fits = a.cs == 1 && b.rs == 1 && k <= 4096;
    if !thin && (!(outer_fits || dot_fits) || m * n * k > BIG_MACS) {
        return false;
    }
    let f = |x: &Mat<'_, T>| lanes::Raw {
        // SAFETY: T is f32 (checked above), so the cast only renames the type, and
        // `offset` is inside `data` (a `Mat`'s invariant).
        ptr: unsafe { (x.data.as_ptr() as *const f32).add(x.offset) },
        rs: x.rs,
        cs: x.cs,
    };
    let start = match init {
        Init::Zero => lanes::Start::Zero,
        Init::Accumulate => lanes::Start::Dst,
        // SAFETY: as above.
        Init::Bias(bias) => lanes::Start::Bias(unsafe { &*(bias as *const [T] as *const [f32]) }),
    };
    let threads = if m * n * k >= SMALL_PAR_MACS { threads } else { 1 };
    let d = dst as *mut f32;
    // SAFETY: the level's instructions are present (`cpu` grants a level only where the CPU
    // has it); the operands' extents were checked by the caller and dst holds m rows of n.
    unsafe {
        match (level, outer_fits && !thin) {
            #[cfg(target_arch = "x86_64")]
            (Isa::Avx512, true) => avx512::outer(m, n, k, f(a), f(b), d, n, start, threads),
            #[cfg(target_arch = "x86_64")]
            (Isa::Avx512, false) => avx512::dot(m, n, k, f(a), f(b), d, n, start, threads),
            #[cfg(target_arch = "x86_64")]
            (_, true) => avx2::outer(m, n, k, f(a), f(b), d, n, start, threads),
            #[cfg(target_arch = "x86_64")]
            (_, false) => avx2::dot(m, n, k, f(a), f(b), d, n, start, threads),
            #[cfg(target_arch = "aarch64")]
            (_, true) => neon::outer(m, n, k, f(a), f(b), d, n, start, threads),
            #[cfg(target_arch = "aarch64")]
            (_, false) => neon::dot(m, n, k, f(a), f(b), d, n, start, threads),
        }
    }
    true
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cpu;
    use crate::kernels::test_rand::uniform_f32;

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

    /// Every layout the kernels take (and some they leave to `gemm`), odd sizes for the
    /// edge tiles, each start, 1 and 3 threads, at every level this CPU has (the scalar
    /// level is `gemm`'s own code): against an f64 reference, and the same bits whatever
    /// the thread count.
    #[test]
    fn f32_kernels_match_a_reference_for_every_layout_and_start() {
        let shapes = [
            (1, 1, 1),
            (7, 5, 3),
            (13, 70, 17),
            (64, 33, 100),
            (30, 200, 64),
            (6, 16, 16),
            (65, 129, 300),
            // few rows with a long k (a small batch through a wide layer: the dot kernel)
            (8, 37, 5000),
            (16, 9, 300),
            // the AVX2 tiles' edges: 6 rows by 8 or 16 columns, 4 by 3, k a lane count ± 1
            (6, 8, 7),
            (12, 17, 9),
            (5, 15, 16),
            (4, 3, 33),
        ];
        for (si, &(m, n, k)) in shapes.iter().enumerate() {
            let (av, bv) = (
                uniform_f32(m * k + 3, si as u64),
                uniform_f32(k * n + 5, 100 + si as u64),
            );
            let bias = uniform_f32(n, 200 + si as u64);
            let prior = uniform_f32(m * n, 300 + si as u64);
            for (at, bt) in [(false, false), (true, false), (false, true), (true, true)] {
                let a = if at {
                    Mat {
                        data: &av,
                        rs: 1,
                        cs: m,
                        offset: 3,
                    }
                } else {
                    Mat {
                        data: &av,
                        rs: k,
                        cs: 1,
                        offset: 3,
                    }
                };
                let b = if bt {
                    Mat {
                        data: &bv,
                        rs: 1,
                        cs: k,
                        offset: 5,
                    }
                } else {
                    Mat {
                        data: &bv,
                        rs: n,
                        cs: 1,
                        offset: 5,
                    }
                };
                for which in 0..3 {
                    let init = [Init::Zero, Init::Accumulate, Init::Bias(&bias[..])][which];
                    let mut want = vec![0.0f64; m * n];
                    for i in 0..m {
                        for j in 0..n {
                            let dot: f64 = (0..k)
                                .map(|p| {
                                    let x = a.data[a.offset + i * a.rs + p * a.cs] as f64;
                                    x * b.data[b.offset + p * b.rs + j * b.cs] as f64
                                })
                                .sum();
                            let base = [0.0, prior[i * n + j] as f64, bias[j] as f64][which];
                            want[i * n + j] = base + dot;
                        }
                    }
                    for level in cpu::supported() {
                        let mut first: Option<Vec<f32>> = None;
                        for threads in [1, 3] {
                            let mut d = prior.clone();
                            cpu::with_isa(level, || gemm_init(m, n, k, a, b, &mut d, init, threads));
                            for (x, y) in d.iter().zip(&want) {
                                assert!(
                                    (*x as f64 - y).abs() < 1e-4 * (1.0 + k as f64).sqrt(),
                                    "{level} {m}x{n}x{k} {at} {bt} {which}: {x} vs {y}"
                                );
                            }
                            match &first {
                                None => first = Some(d),
                                Some(f) => assert_eq!(f, &d, "{level} {m}x{n}x{k}: thread count changed the bits"),
                            }
                        }
                    }
                }
            }
        }
    }

    /// `gemm_packed` at every level: the Winograd weight gradient's layout (b transposed,
    /// the dot kernel's shape), a 16-row one (which `gemm` would give the unpacked kernels),
    /// with and without accumulation, against f64.
    #[test]
    fn packed_products_match_a_reference_at_every_level() {
        for (si, &(m, n, k)) in [(64, 48, 100), (16, 9, 300), (7, 70, 33)].iter().enumerate() {
            let (av, bv) = (uniform_f32(m * k, 500 + si as u64), uniform_f32(k * n, 600 + si as u64));
            let prior = uniform_f32(m * n, 700 + si as u64);
            let a = Mat {
                data: &av,
                rs: k,
                cs: 1,
                offset: 0,
            };
            let b = Mat {
                data: &bv,
                rs: 1,
                cs: k,
                offset: 0,
            };
            for accumulate in [false, true] {
                for level in cpu::supported() {
                    let mut d = prior.clone();
                    cpu::with_isa(level, || gemm_packed(m, n, k, a, b, &mut d, accumulate, 1));
                    for i in 0..m {
                        for j in 0..n {
                            let dot: f64 = (0..k).map(|p| av[i * k + p] as f64 * bv[j * k + p] as f64).sum();
                            let want = dot + if accumulate { prior[i * n + j] as f64 } else { 0.0 };
                            let got = d[i * n + j] as f64;
                            assert!(
                                (got - want).abs() < 1e-4 * (1.0 + k as f64).sqrt(),
                                "{level} {m}x{n}x{k} accumulate {accumulate}: {got} vs {want}"
                            );
                        }
                    }
                }
            }
        }
    }
}
