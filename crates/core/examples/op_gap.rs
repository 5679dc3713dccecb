//! The cost of a convolution op above its kernel: `Tensor::conv2d` against
//! `conv2d_forward` into a reused buffer, `Tensor::conv_transpose2d` against
//! `conv2d_backward_input`, for the conv autoencoder's and DCGAN's layers (batch 128), on 1
//! and 2 threads (the global pool, from the main thread, as a training loop calls them): `cargo run --release -p nabla-core --example op_gap [-- NAME]`.
//! Best of `REPS` runs (default 7) in milliseconds; `CPU=1` times the process's CPU time
//! (all threads together) instead of the wall clock, the steadier figure on a shared machine.

use nabla_core::kernels::conv::{conv2d_backward_input, conv2d_forward, ConvGeom};
use nabla_core::{no_grad, Conv2dOptions, ConvTranspose2dOptions, Tensor};

#[path = "shared/best.rs"]
mod timing;
use timing::best;

fn main() {
    let reps: usize = std::env::var("REPS").ok().and_then(|v| v.parse().ok()).unwrap_or(7);
    let filter = std::env::args().nth(1).unwrap_or_default();
    // [in channels, out channels, input size, kernel, stride, padding], batch 128.
    let layers = [
        ("AE 1->16 k3 28->14", [1, 16, 28, 3, 2, 1]),
        ("AE 16->32 k3 14->7", [16, 32, 14, 3, 2, 1]),
        ("GAN 1->64 k4 28->14", [1, 64, 28, 4, 2, 1]),
        ("GAN 64->128 k4 14->7", [64, 128, 14, 4, 2, 1]),
        ("GAN 128->1 k7 7->1", [128, 1, 7, 7, 1, 0]),
        ("GAN 128->100 k7 7->1", [128, 100, 7, 7, 1, 0]),
    ];
    let n = 128;
    for (name, [c, o, hw, k, s, p]) in layers {
        if !filter.is_empty() && !name.contains(&filter) {
            continue;
        }
        let g = ConvGeom::new([n, c, hw, hw], [o, k, k], [s, s], [p, p], [1, 1], 1);
        let x: Vec<f32> = (0..n * c * hw * hw).map(|i| ((i as f32) * 0.37).sin()).collect();
        let w: Vec<f32> = (0..o * c * k * k).map(|i| ((i as f32) * 0.11).cos() * 0.05).collect();
        let dy: Vec<f32> = (0..n * o * g.p()).map(|i| ((i as f32) * 0.71).sin()).collect();
        let (mut y, mut dx) = (vec![0f32; dy.len()], vec![0f32; x.len()]);
        let xt = Tensor::from_vec(x.clone(), &[n, c, hw, hw]).unwrap();
        let wt = Tensor::from_vec(w.clone(), &[o, c, k, k]).unwrap();
        let dyt = Tensor::from_vec(dy.clone(), &[n, o, g.oh, g.ow]).unwrap();
        let copts = Conv2dOptions {
            stride: [s, s],
            padding: [p, p],
            ..Default::default()
        };
        // The output padding that gives back the input size.
        let op = hw + 2 * p - k - (g.oh - 1) * s;
        let topts = ConvTranspose2dOptions {
            stride: [s, s],
            padding: [p, p],
            output_padding: [op, op],
            ..Default::default()
        };
        for threads in [1, 2] {
            let mut run = || {
                let _no_grad = no_grad();
                [
                    best(reps, || conv2d_forward(&g, &x, &w, None, &mut y)),
                    best(reps, || drop(xt.conv2d(&wt, None, copts).unwrap())),
                    best(reps, || conv2d_backward_input(&g, &dy, &w, None, &mut dx)),
                    best(reps, || drop(dyt.conv_transpose2d(&wt, None, topts).unwrap())),
                ]
            };
            // Two threads from the main thread on the global pool, as a training loop runs;
            // one in a pool of its own.
            let [kf, of, ki, oi] = if threads == rayon::current_num_threads() {
                run()
            } else {
                let pool = rayon::ThreadPoolBuilder::new().num_threads(threads).build().unwrap();
                pool.install(&mut run)
            };
            println!(
                "{name:<22} {threads}t  fwd kernel {kf:6.2} op {of:6.2} ms   in-grad kernel {ki:6.2} op {oi:6.2} ms"
            );
        }
    }
}
