//! Times the `gemm` kernel at the MLP's and LeNet's fully connected shapes, on 1 and 2 threads.
//!
//! `cargo run --release -p nabla-core --example gemm_shapes`

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
        for _ in 0..300 {
            let t = Instant::now();
            gemm(m, n, k, ma, mb, &mut d, false, threads);
            best = best.min(t.elapsed().as_secs_f64());
        }
        let gf = 2.0 * (m * n * k) as f64 / best / 1e9;
        println!(
            "{name:32} {m}x{n}x{k} a_t={a_t} b_t={b_t} threads {threads}: {:7.1} us {gf:6.1} GFLOP/s",
            best * 1e6
        );
    }
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
}
