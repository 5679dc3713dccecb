//! The conv autoencoder's small ops at batch 128 (f32): its two linear layers forward and
//! backward, ReLU on the decoder's linear output, and the MSE loss `((y − x)²).mean()`
//! forward and backward, and its convolutions' bias gradients (sums per channel of
//! `[128, 16, 14, 14]` and `[128, 32, 7, 7]`):
//! `cargo run --release -p nabla-core --example ae_small_ops`.
//! Best of `REPS` runs (default 20) in milliseconds; `CPU=1` times the process's CPU time.

use nabla_core::{DType, Generator, Tensor};

#[path = "shared/best.rs"]
mod timing;
use timing::best;

fn main() {
    nabla_core::memory::retain_freed_memory();
    let reps: usize = std::env::var("REPS").ok().and_then(|v| v.parse().ok()).unwrap_or(20);
    let mut g = Generator::new(1);
    let n = 128;
    for (name, i, o) in [("linear 1568->16", 1568, 16), ("linear 16->1568", 16, 1568)] {
        let x = Tensor::randn(&[n, i], DType::F32, &mut g).set_requires_grad(true);
        let w = Tensor::randn(&[o, i], DType::F32, &mut g).set_requires_grad(true);
        let b = Tensor::randn(&[o], DType::F32, &mut g).set_requires_grad(true);
        let gy = Tensor::randn(&[n, o], DType::F32, &mut g);
        let fwd = best(reps, || drop(x.linear(&w, Some(&b)).unwrap()));
        let bwd = best(reps, || {
            let y = x.linear(&w, Some(&b)).unwrap();
            drop(y.backward_with_grad(&gy).unwrap());
        });
        let relu = best(reps, || {
            let y = x.linear(&w, Some(&b)).unwrap().relu().unwrap();
            drop(y.backward_with_grad(&gy).unwrap());
        });
        println!("{name}: forward {fwd:.3} ms, forward+backward {bwd:.3} ms, with relu {relu:.3} ms");
    }
    let y = Tensor::rand(&[n, 1, 28, 28], DType::F32, &mut g).set_requires_grad(true);
    let x = Tensor::rand(&[n, 1, 28, 28], DType::F32, &mut g);
    let mse = best(reps, || {
        let d = y.sub(&x).unwrap();
        drop(d.square().unwrap().mean_all().unwrap().backward().unwrap());
    });
    println!("mse 128x784 forward+backward {mse:.3} ms");
    for [o, hw] in [[16, 14], [32, 7]] {
        let dy: Vec<f32> = (0..n * o * hw * hw).map(|i| (i as f32 * 0.37).sin()).collect();
        let mut db = vec![0f32; o];
        let t = best(reps, || {
            nabla_core::kernels::conv::bias_grad(&dy, n, o, hw * hw, &mut db)
        });
        println!("bias gradient [{n}, {o}, {hw}, {hw}] {t:.3} ms");
    }
}
