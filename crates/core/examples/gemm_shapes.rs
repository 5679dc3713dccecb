//! Times the `gemm` kernel at the MLP's and LeNet's fully connected shapes, on 1 and 2 threads.
//!
//! `cargo run --release -p nabla-core --example gemm_shapes [-- big | wgrad]` (`wgrad`: the
//! three products of a 512→512 3×3 convolution at 4×4, batch 32).

use nabla_core::kernels::matmul::{gemm, Mat};
use std::time::Instant;

fn bench(name: &str, m: usize, n: usize, k: usize, a_t: bool, b_t: bool) {
    let a: Vec<f32> = (0..m * k).map(|i| (i % 7) as f32 * 0.1).collect();
    let b: Vec<f32> = (0..k * n).map(|i| (i % 5) as f32 * 0.1).collect();
    let mut d = vec![0.0f32; m * n];
    let ma = if a_t {
        Mat {
            data: &a,
            rs: 1,
            cs: m,
            offset: 0,
        }
    } else {
        Mat {
            data: &a,
            rs: k,
            cs: 1,
            offset: 0,
        }
    };
    let mb = if b_t {
        Mat {
            data: &b,
            rs: 1,
            cs: k,
            offset: 0,
        }
    } else {
        Mat {
            data: &b,
            rs: n,
            cs: 1,
            offset: 0,
        }
    };
    for threads in [1, 2] {
        let mut best = f64::INFINITY;
        for _ in 0..reps(m * n * k) {
            let t = Instant::now();
            gemm(m, n, k, ma, mb, &mut d, false, threads);
            best = best.min(t.elapsed().as_secs_f64());
        }
        let gf = 2.0 * (m * n * k) as f64 / best / 1e9;
        // The `gemm` crate alone, for comparison.
        let par = if threads > 1 {
            gemm::Parallelism::Rayon(threads)
        } else {
            gemm::Parallelism::None
        };
        let mut crate_best = f64::INFINITY;
        for _ in 0..reps(m * n * k) {
            let t = Instant::now();
            // SAFETY: the operands and dst are exactly the sizes their strides describe.
            unsafe {
                gemm::gemm(
                    m,
                    n,
                    k,
                    d.as_mut_ptr(),
                    1,
                    n as isize,
                    false,
                    a.as_ptr(),
                    ma.cs as isize,
                    ma.rs as isize,
                    b.as_ptr(),
                    mb.cs as isize,
                    mb.rs as isize,
                    1.0,
                    1.0,
                    false,
                    false,
                    false,
                    par,
                )
            };
            crate_best = crate_best.min(t.elapsed().as_secs_f64());
        }
        println!(
            "{name:32} {m}x{n}x{k} a_t={a_t} b_t={b_t} threads {threads}: {:7.1} us {gf:6.1} GFLOP/s (gemm crate {:7.1} us)",
            best * 1e6,
            crate_best * 1e6
        );
    }
}

/// Repetitions: fewer for big products.
fn reps(macs: usize) -> usize {
    (300_000_000 / macs.max(1)).clamp(5, 300)
}

fn main() {
    bench("mlp fwd x·W1ᵀ", 64, 256, 784, false, true);
    bench("mlp dW1ᵀ route: gᵀ·x", 256, 784, 64, true, false);
    bench("mlp dW1 as xᵀ·g (transposed out)", 784, 256, 64, true, false);
    bench("mlp fwd h·W2ᵀ", 64, 10, 256, false, true);
    bench("mlp dW2 gᵀ·h", 10, 256, 64, true, false);
    bench("mlp dh g·W2", 64, 256, 10, false, false);
    bench("lenet fc1 fwd", 64, 120, 400, false, true);
    bench("lenet fc1 dW", 120, 400, 64, true, false);
    bench("lenet fc1 dx", 64, 400, 120, false, false);
    if std::env::args().any(|a| a == "wgrad") {
        bench("conv 512 4x4 fwd w·cols", 512, 512, 4608, false, false);
        bench("conv 512 4x4 dwT cols·dyT", 4608, 512, 512, false, false);
        bench("conv 512 4x4 dw dy·colsT", 512, 4608, 512, false, true);
        return;
    }
    let big = std::env::args().any(|a| a == "big");
    if big {
        bench("square 256", 256, 256, 256, false, false);
        bench("square 512", 512, 512, 512, false, false);
        bench("square 1024", 1024, 1024, 1024, false, false);
        bench("square 512 bT", 512, 512, 512, false, true);
        bench("square 1024 bT", 1024, 1024, 1024, false, true);
        bench("tall 4096x256x256", 4096, 256, 256, false, false);
        bench("conv-like 64x1024x576", 64, 1024, 576, false, false);
    }
}
