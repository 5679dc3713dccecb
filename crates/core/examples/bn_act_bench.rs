//! Times training-mode batch norm followed by ReLU or LeakyReLU(0.2), forward and backward,
//! on fcn_small's and DCGAN's shapes: `bn` then the activation as two ops, and (`FUSED=1`)
//! the fused `batch_norm_train_act`. Best of `REPS` (default 10) in ms; `THREADS` (default
//! 1) sets the pool; `CPU=1` times process CPU time (steadier on a shared machine).
//!
//! `cargo run --release -p nabla-core --example bn_act_bench`

#[path = "shared/best.rs"]
mod timing;

use nabla_core::{grad, Activation, DType, Generator, Tensor};
use timing::best;

fn main() -> Result<(), nabla_core::Error> {
    let reps: usize = std::env::var("REPS").ok().and_then(|v| v.parse().ok()).unwrap_or(10);
    let threads: usize = std::env::var("THREADS").ok().and_then(|v| v.parse().ok()).unwrap_or(1);
    let fused = std::env::var("FUSED").is_ok_and(|v| v == "1");
    let pool = rayon::ThreadPoolBuilder::new().num_threads(threads).build().unwrap();
    let only = std::env::args().nth(1).unwrap_or_default();
    pool.install(|| {
        for (shape, slope) in [
            (vec![32usize, 16, 64, 64], None),
            (vec![32, 32, 32, 32], None),
            (vec![32, 64, 16, 16], None),
            (vec![64, 256, 8, 8], Some(0.2)),
            (vec![64, 128, 16, 16], Some(0.2)),
            (vec![64, 512, 4, 4], None),
            (vec![128, 128, 7, 7], Some(0.2)),
            (vec![128, 64, 14, 14], None),
        ] {
            if !format!("{shape:?}").contains(&only) {
                continue;
            }
            let c = shape[1];
            let x = Tensor::randn(&shape, DType::F32, &mut Generator::new(1)).set_requires_grad(true);
            let gy = Tensor::randn(&shape, DType::F32, &mut Generator::new(2));
            let w = Tensor::ones(&[c], DType::F32).set_requires_grad(true);
            let b = Tensor::zeros(&[c], DType::F32).set_requires_grad(true);
            let unfused = || {
                let y = x.batch_norm_train(&w, &b, 1e-5).unwrap().0;
                match slope {
                    None => y.relu().unwrap(),
                    Some(s) => y.leaky_relu(s).unwrap(),
                }
            };
            let bwd = |y: &Tensor| drop(grad(&[y], Some(&[&gy]), &[&x, &w, &b], false).unwrap());
            let f0 = best(reps, || drop(unfused()));
            let b0 = best(reps, || bwd(&unfused()));
            print!("{shape:?} {slope:?}: unfused fwd {f0:.3} fwd+bwd {b0:.3} ms");
            if fused {
                let fused = || fused_op(&x, &w, &b, slope);
                let f1 = best(reps, || drop(fused()));
                let b1 = best(reps, || bwd(&fused()));
                print!("  fused fwd {f1:.3} fwd+bwd {b1:.3} ms");
            }
            println!();
        }
    });
    Ok(())
}

/// The fused op.
fn fused_op(x: &Tensor, w: &Tensor, b: &Tensor, slope: Option<f64>) -> Tensor {
    let act = slope.map_or(Activation::Relu, Activation::LeakyRelu);
    x.batch_norm_train_act(w, b, 1e-5, act).unwrap().0
}
