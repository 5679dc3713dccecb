//! `gemm`'s f32 products at a level below the CPU's own: `gemm` picks its AVX-512 kernels
//! by itself wherever the CPU has them, so `NABLA_ISA=avx2` (or `scalar`) alone would still
//! run AVX-512 products. Here its generic driver runs with the AVX2+FMA (or scalar)
//! microkernels instead, chosen by [`crate::cpu::isa`] like every other kernel.

use crate::cpu::Isa;
use gemm::Parallelism;
use gemm_common::gemm::gemm_basic_generic;
#[cfg(target_arch = "x86_64")]
use gemm_common::simd::MixedSimd;

/// `dst = (read_dst ? dst : 0) + lhs · rhs` with `gemm::gemm`'s strided arguments, run with
/// the microkernels of `level` when that is below what `gemm` would pick; false (nothing
/// done) when `gemm` itself picks that level.
///
/// # Safety
/// As `gemm::gemm` with `alpha = beta = 1`: the pointers and strides describe an m×n
/// destination (initialized when `read_dst`) and m×k, k×n operands.
#[allow(clippy::too_many_arguments)]
pub(super) unsafe fn gemm_f32(
    level: Isa,
    m: usize,
    n: usize,
    k: usize,
    dst: *mut f32,
    dst_cs: isize,
    dst_rs: isize,
    read_dst: bool,
    lhs: (*const f32, isize, isize),
    rhs: (*const f32, isize, isize),
    par: Parallelism,
) -> bool {
    // Generic over the microkernel set: the same call for every level.
    macro_rules! run {
        ($simd:expr, $lanes:expr, $ukr:path) => {{
            use $ukr as u;
            // SAFETY: the caller's contract, and `$simd` is a level this CPU has.
            unsafe {
                gemm_basic_generic::<
                    _,
                    f32,
                    { $lanes },
                    { u::MR_DIV_N * $lanes },
                    { u::NR },
                    { u::MR_DIV_N },
                    { u::H_M },
                    { u::H_N },
                >(
                    $simd,
                    m,
                    n,
                    k,
                    dst,
                    dst_cs,
                    dst_rs,
                    read_dst,
                    lhs.0,
                    lhs.1,
                    lhs.2,
                    rhs.0,
                    rhs.1,
                    rhs.2,
                    1.0,
                    1.0,
                    false,
                    false,
                    false,
                    |a, b, c| a * b + c,
                    &u::UKR,
                    &u::H_UKR,
                    false,
                    par,
                )
            }
        }};
    }
    match level {
        #[cfg(target_arch = "x86_64")]
        Isa::Avx2 if crate::cpu::detected() == Isa::Avx512 => {
            // `cpu` grants the AVX2 level only on a CPU with AVX2 and FMA.
            let Some(simd) = <gemm_common::simd::V3 as MixedSimd<f32, f32, f32, f32>>::try_new() else {
                return false;
            };
            run!(simd, 8, gemm_f32::microkernel::fma::f32);
            true
        }
        Isa::Scalar if crate::cpu::detected() != Isa::Scalar => {
            run!(gemm_common::simd::Scalar, 1, gemm_f32::microkernel::scalar::f32);
            true
        }
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cpu;
    use crate::kernels::matmul::{gemm, Mat};

    fn data(len: usize, seed: f64) -> Vec<f32> {
        (0..len).map(|i| ((i as f64 * 0.37 + seed).sin()) as f32).collect()
    }

    /// Products through `gemm` with both operands transposed (so no unpacked kernel takes
    /// them) at every level this CPU has, against an f64 reference, overwriting and
    /// accumulating; the capped levels must really be capped here.
    #[test]
    fn every_level_matches_the_f64_product() {
        for level in cpu::supported() {
            let capped_here = match level {
                Isa::Avx2 => cpu::detected() == Isa::Avx512,
                Isa::Scalar => cpu::detected() != Isa::Scalar,
                _ => false,
            };
            for (m, n, k) in [(1, 1, 1), (7, 13, 5), (33, 65, 17), (100, 37, 300), (129, 3, 64)] {
                let (a, b) = (data(m * k, 0.2), data(k * n, 1.7));
                // a is stored k × m (a[i, p] at p·m + i), b is stored n × k.
                let want = |i: usize, j: usize| (0..k).map(|p| a[p * m + i] as f64 * b[j * k + p] as f64).sum::<f64>();
                let (am, bm) = (
                    Mat {
                        data: &a,
                        rs: 1,
                        cs: m,
                        offset: 0,
                    },
                    Mat {
                        data: &b,
                        rs: 1,
                        cs: k,
                        offset: 0,
                    },
                );
                let start = data(m * n, 3.1);
                for accumulate in [false, true] {
                    let mut dst = if accumulate {
                        start.clone()
                    } else {
                        vec![f32::NAN; m * n]
                    };
                    cpu::with_isa(level, || gemm(m, n, k, am, bm, &mut dst, accumulate, 2));
                    for i in 0..m {
                        for j in 0..n {
                            let base = if accumulate { start[i * n + j] as f64 } else { 0.0 };
                            let (got, want) = (dst[i * n + j] as f64, base + want(i, j));
                            assert!(
                                (got - want).abs() <= 1e-5 * (k as f64).sqrt() * (1.0 + want.abs()),
                                "{level} {m}x{n}x{k} at ({i}, {j}): {got} vs {want}"
                            );
                        }
                    }
                }
                if capped_here {
                    let mut dst = vec![0f32; m * n];
                    // SAFETY: the same operands as above, dst m×n row-major.
                    let took = unsafe {
                        let f = |x: &[f32], rs: usize, cs: usize| (x.as_ptr(), cs as isize, rs as isize);
                        gemm_f32(
                            level,
                            m,
                            n,
                            k,
                            dst.as_mut_ptr(),
                            1,
                            n as isize,
                            false,
                            f(&a, 1, m),
                            f(&b, 1, k),
                            Parallelism::None,
                        )
                    };
                    assert!(took, "{level} below {} must take the capped kernels", cpu::detected());
                }
            }
            if !capped_here {
                println!(
                    "{level}: gemm picks this level itself on this CPU ({}), nothing to cap",
                    cpu::detected()
                );
            }
        }
    }
}
