//! Times `batch_norm_train` forward and backward (fused kernels) on BatchNorm1d and
//! BatchNorm2d shapes: `cargo run --release -p nabla-core --example batch_norm_bench`.

use nabla_core::{grad, DType, Generator, Tensor};
use std::time::Instant;
fn main() -> Result<(), nabla_core::Error> {
    for shape in [
        vec![256usize, 512],
        vec![65536, 128],
        vec![64, 128, 4],
        vec![32, 512, 4, 4],
        vec![32, 64, 32, 32],
    ] {
        let c = shape[1];
        let x = Tensor::randn(&shape, DType::F32, &mut Generator::new(1)).set_requires_grad(true);
        let gy = Tensor::randn(&shape, DType::F32, &mut Generator::new(2));
        let w = Tensor::ones(&[c], DType::F32).set_requires_grad(true);
        let b = Tensor::zeros(&[c], DType::F32).set_requires_grad(true);
        let mut best = (f64::MAX, f64::MAX);
        for _ in 0..30 {
            let t = Instant::now();
            let (y, _, _) = x.batch_norm_train(&w, &b, 1e-5)?;
            let f = t.elapsed().as_secs_f64();
            let t = Instant::now();
            let _g = grad(&[&y], Some(&[&gy]), &[&x, &w, &b], false)?;
            best = (best.0.min(f), best.1.min(t.elapsed().as_secs_f64()));
        }
        println!("{shape:?}: fwd {:.3} ms bwd {:.3} ms", best.0 * 1e3, best.1 * 1e3);
    }
    Ok(())
}
