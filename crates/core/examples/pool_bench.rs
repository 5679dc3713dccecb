//! Times the 2×2 tiled max pooling (forward with indices, and backward) at LeNet-5's shapes,
//! batch 64, at the level `NABLA_ISA` leaves (printed first).
//!
//! `NABLA_ISA=avx2 cargo run --release -p nabla-core --example pool_bench`

use nabla_core::kernels::pool::{filled, max_pool_tiled, max_pool_tiled_backward, Tiles};
use std::time::Instant;

fn bench(name: &str, planes: usize, hw: usize) {
    let t = Tiles {
        hw: [hw, hw],
        k: [2, 2],
        out: [hw / 2, hw / 2],
    };
    let x: Vec<f32> = (0..planes * hw * hw).map(|i| ((i * 7919) % 1013) as f32).collect();
    let n = planes * (hw / 2) * (hw / 2);
    let gy: Vec<f32> = (0..n).map(|i| i as f32).collect();
    let (mut fwd, mut bwd) = (f64::INFINITY, f64::INFINITY);
    for _ in 0..200 {
        let start = Instant::now();
        let mut y = vec![];
        let idx = filled(n, |i| y = filled(n, |o| max_pool_tiled(&x, &t, o, i)));
        fwd = fwd.min(start.elapsed().as_secs_f64());
        let start = Instant::now();
        let gx = filled(x.len(), |g| max_pool_tiled_backward(&gy, &idx, &t, g));
        bwd = bwd.min(start.elapsed().as_secs_f64());
        std::hint::black_box((y, gx));
    }
    println!("{name:24} forward {:7.1} us  backward {:7.1} us", fwd * 1e6, bwd * 1e6);
}

fn main() {
    println!("{}", nabla_core::cpu::describe());
    bench("lenet pool1 64x6x28x28", 64 * 6, 28);
    bench("lenet pool2 64x16x10x10", 64 * 16, 10);
    bench("wide 32x64x56x56", 32 * 64, 56);
}
