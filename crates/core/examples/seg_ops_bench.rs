//! Times the non-convolution ops of a segnet step at its largest shapes (batch 32, 64×64,
//! 32 channels, 11 classes): relu, batch norm, 2×2 max pooling with indices, max unpooling
//! and per-pixel cross entropy, forward and backward, best of `REPS`.
//!
//! `cargo run --release -p nabla-core --example seg_ops_bench [name filter]`

use nabla_core::{grad, DType, Generator, Pool2dOptions, Result, Tensor};
use std::time::Instant;

const REPS: usize = 40;

/// Best forward and backward milliseconds of `f` on `x` with output gradient `gy`.
fn time(name: &str, x: &Tensor, f: impl Fn(&Tensor) -> Result<Tensor>) -> Result<()> {
    if !name.contains(&std::env::args().nth(1).unwrap_or_default()) {
        return Ok(());
    }
    let (mut fwd, mut bwd) = (f64::MAX, f64::MAX);
    for _ in 0..REPS {
        let t = Instant::now();
        let y = f(x)?;
        fwd = fwd.min(t.elapsed().as_secs_f64());
        let gy = Tensor::ones(y.shape(), y.dtype());
        let t = Instant::now();
        let g = grad(&[&y], Some(&[&gy]), &[x], false)?;
        bwd = bwd.min(t.elapsed().as_secs_f64());
        std::hint::black_box(g);
    }
    println!("{name:28} fwd {:7.3} ms  bwd {:7.3} ms", fwd * 1e3, bwd * 1e3);
    Ok(())
}

fn main() -> Result<()> {
    // As the trainers do: freed buffers stay in the process instead of faulting in anew.
    nabla_core::memory::retain_freed_memory();
    let mut g = Generator::new(1);
    let x = Tensor::randn(&[32, 32, 64, 64], DType::F32, &mut g).set_requires_grad(true);
    time("relu [32,32,64,64]", &x, |x| x.relu())?;
    let (w, b) = (Tensor::ones(&[32], DType::F32), Tensor::zeros(&[32], DType::F32));
    time("batch_norm [32,32,64,64]", &x, |x| {
        Ok(x.batch_norm_train(&w, &b, 1e-5)?.0)
    })?;
    time("max_pool2d idx [32,32,64,64]", &x, |x| {
        Ok(x.max_pool2d_with_indices(Pool2dOptions::new([2, 2]))?.0)
    })?;
    let (_, idx) = x.detach().max_pool2d_with_indices(Pool2dOptions::new([2, 2]))?;
    let small = Tensor::randn(&[32, 32, 32, 32], DType::F32, &mut g).set_requires_grad(true);
    time("max_unpool2d [32,32,32,32]", &small, |s| s.max_unpool2d(&idx, [64, 64]))?;
    let logits = Tensor::randn(&[32, 11, 64, 64], DType::F32, &mut g).set_requires_grad(true);
    let target: Vec<usize> = (0..32 * 64 * 64).map(|i| (i * 7) % 11).collect();
    time("pixel nll rows [32,11,64,64]", &logits, |x| {
        let rows = x.permute(&[0, 2, 3, 1])?.reshape([32 * 64 * 64, 11])?;
        rows.log_softmax_nll(&target, None, None)?.sum_all()
    })?;
    // Since the kernel reads `[N, C, H, W]` in place (an error before).
    time("pixel nll nchw [32,11,64,64]", &logits, |x| {
        x.log_softmax_nll(&target, None, None)?.sum_all()
    })?;
    Ok(())
}
