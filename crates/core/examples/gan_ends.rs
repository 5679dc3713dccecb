//! DCGAN's end layers (the generator's 100 → 128 7×7 transposed convolution of a 1×1
//! latent, the discriminator's 128 → 1 7×7 convolution, the 1 ↔ 64 stride-2 layers), each
//! pass on 1 and 2 threads: `cargo run --release -p nabla-core --example gan_ends`. Best of
//! `REPS` (default 9) in ms; `CPU=1` times process CPU time.

use nabla_core::kernels::conv::{conv2d_backward_input, conv2d_backward_weight, conv2d_forward, ConvGeom};

#[path = "shared/best.rs"]
mod timing;
use timing::best;

fn main() {
    let reps: usize = std::env::var("REPS").ok().and_then(|v| v.parse().ok()).unwrap_or(9);
    // (name, [n, c, h, w], [o, k], stride, padding), as conv2d geometries: a transposed
    // layer is the adjoint of its conv (its forward is this conv's input gradient).
    let layers = [
        ("G 100->128 k7 (conv 128->100)", [128, 128, 7, 7], [100, 7], 1, 0),
        ("D 128->1 k7", [128, 128, 7, 7], [1, 7], 1, 0),
        ("D 1->64 k4 s2", [128, 1, 28, 28], [64, 4], 2, 1),
    ];
    let only = std::env::args().nth(1).unwrap_or_default();
    for (name, [n, c, h, w], [o, k], s, p) in layers {
        if !name.contains(&only) {
            continue;
        }
        let g = ConvGeom::new([n, c, h, w], [o, k, k], [s, s], [p, p], [1, 1], 1);
        let x: Vec<f32> = (0..n * c * h * w).map(|i| ((i as f32) * 0.37).sin()).collect();
        let wt: Vec<f32> = (0..o * c * k * k).map(|i| ((i as f32) * 0.11).cos() * 0.05).collect();
        let dy: Vec<f32> = (0..n * o * g.p()).map(|i| ((i as f32) * 0.71).sin()).collect();
        let (mut y, mut dx, mut dw) = (vec![0f32; dy.len()], vec![0f32; x.len()], vec![0f32; wt.len()]);
        for threads in [1, 2] {
            let pool = rayon::ThreadPoolBuilder::new().num_threads(threads).build().unwrap();
            let (f, bi, bw) = pool.install(|| {
                (
                    best(reps, || conv2d_forward(&g, &x, &wt, None, &mut y)),
                    best(reps, || conv2d_backward_input(&g, &dy, &wt, None, &mut dx)),
                    best(reps, || conv2d_backward_weight(&g, &x, &dy, &mut dw)),
                )
            });
            println!("{name:<30} {threads}t  fwd {f:6.3} ms  in-grad {bi:6.3} ms  w-grad {bw:6.3} ms");
        }
    }
}
