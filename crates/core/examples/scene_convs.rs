//! The 3×3 stride-1 convolutions of `fcn_small`, `segnet` and ResNet-18 (small input) at
//! batch 32, each pass of the raw kernels timed alone, wall and process CPU time:
//! `cargo run --release -p nabla-core --example scene_convs [-- fcn|segnet|resnet] [reps]`.
//! On a shared machine compare CPU milliseconds (with `NABLA_SPIN_US=0`, so helpers that
//! linger spinning for the next op do not count).

use nabla_core::kernels::conv::{conv2d_backward_input, conv2d_backward_weight, conv2d_forward, ConvGeom};
use nabla_core::{DType, Generator, Tensor};
use std::time::Instant;

/// The process's CPU time in milliseconds, all threads together.
fn cpu_ms() -> f64 {
    nabla_core::profile::process_cpu_ns() as f64 / 1e6
}

/// Best wall and mean CPU milliseconds per run of `f` over `reps` runs after a warm-up.
fn time(reps: usize, mut f: impl FnMut()) -> (f64, f64) {
    f();
    let c0 = cpu_ms();
    let mut best = f64::INFINITY;
    for _ in 0..reps {
        let t = Instant::now();
        f();
        best = best.min(t.elapsed().as_secs_f64() * 1e3);
    }
    (best, (cpu_ms() - c0) / reps as f64)
}

fn main() {
    let which = std::env::args().nth(1).unwrap_or_else(|| "all".into());
    let reps = std::env::args().nth(2).and_then(|r| r.parse().ok()).unwrap_or(5);
    // [batch, in, out, size]
    let fcn = [
        [32, 1, 16, 64],
        [32, 32, 32, 32],
        [32, 64, 64, 16],
        [32, 64, 64, 8],
        [32, 16, 16, 64],
    ];
    let segnet = [
        [32, 1, 32, 64],
        [32, 32, 32, 64],
        [32, 32, 64, 32],
        [32, 64, 64, 32],
        [32, 64, 32, 32],
        [32, 32, 11, 64],
    ];
    let resnet = [
        [32, 3, 64, 32],
        [32, 64, 64, 32],
        [32, 128, 128, 16],
        [32, 256, 256, 8],
        [32, 512, 512, 4],
    ];
    let mut layers: Vec<(&str, [usize; 4])> = Vec::new();
    if which == "all" || which == "fcn" {
        layers.extend(fcn.iter().map(|l| ("fcn", *l)));
    }
    if which == "all" || which == "segnet" {
        layers.extend(segnet.iter().map(|l| ("segnet", *l)));
    }
    if which == "all" || which == "resnet" {
        layers.extend(resnet.iter().map(|l| ("resnet", *l)));
    }
    println!(
        "{:<8} {:<18} {:>17} {:>17} {:>17}",
        "model", "layer", "fwd wall/cpu", "dx wall/cpu", "dw wall/cpu"
    );
    let mut total = [0.0; 6];
    for (model, [n, c, o, hw]) in layers {
        let g = ConvGeom::new([n, c, hw, hw], [o, 3, 3], [1, 1], [1, 1], [1, 1], 1);
        let mut rng = Generator::new(0);
        let x = Tensor::randn(&[n, c, hw, hw], DType::F32, &mut rng).to_vec_f32();
        let w = Tensor::randn(&[o, c, 3, 3], DType::F32, &mut rng).to_vec_f32();
        let gy = Tensor::randn(&[n, o, hw, hw], DType::F32, &mut rng).to_vec_f32();
        let (mut y, mut dx, mut dw) = (vec![0f32; gy.len()], vec![0f32; x.len()], vec![0f32; w.len()]);
        let f = time(reps, || conv2d_forward(&g, &x, &w, None, &mut y));
        let d = if c > 3 {
            time(reps, || conv2d_backward_input(&g, &gy, &w, None, &mut dx))
        } else {
            (0.0, 0.0)
        };
        let b = time(reps, || conv2d_backward_weight(&g, &x, &gy, &mut dw));
        for (t, v) in total.iter_mut().zip([f.0, f.1, d.0, d.1, b.0, b.1]) {
            *t += v;
        }
        println!(
            "{model:<8} {:<18} {:>8.2}/{:>8.2} {:>8.2}/{:>8.2} {:>8.2}/{:>8.2}",
            format!("{c}→{o} @{hw}"),
            f.0,
            f.1,
            d.0,
            d.1,
            b.0,
            b.1
        );
    }
    println!(
        "{:<27} {:>8.2}/{:>8.2} {:>8.2}/{:>8.2} {:>8.2}/{:>8.2}",
        "total", total[0], total[1], total[2], total[3], total[4], total[5]
    );
}
