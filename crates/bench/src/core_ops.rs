//! The core section: matmul, elementwise maps, a full reduction and per-op overhead,
//! matching `torch_reference.py matmul|elementwise|overhead`.

use crate::measure::median_secs;
use crate::report::Row;
use nabla_core::{Conv2dOptions, DType, Generator, Result, Tensor};

/// The reference script's sections that hold the same work.
pub const TORCH_SECTIONS: &[&str] = &["matmul", "elementwise", "overhead"];

/// Run the whole section.
pub fn run() -> Result<Vec<Row>> {
    let mut rows = matmul()?;
    rows.extend(elementwise()?);
    rows.push(overhead()?);
    Ok(rows)
}

fn randn(shape: &[usize], seed: u64) -> Tensor {
    Tensor::randn(shape, DType::F32, &mut Generator::new(seed))
}

/// f32 square products; GFLOP/s counting 2n³ flops.
pub fn matmul() -> Result<Vec<Row>> {
    let mut rows = Vec::new();
    for n in [256usize, 1024, 2048] {
        let (a, b) = (randn(&[n, n], 1), randn(&[n, n], 2));
        a.matmul(&b)?;
        let s = median_secs(10, || drop(a.matmul(&b)));
        rows.push(Row::higher(
            format!("matmul {n}"),
            "GFLOP/s",
            2.0 * (n as f64).powi(3) / s / 1e9,
        ));
    }
    Ok(rows)
}

/// A 3×3 convolution, 64 → 64 maps of 32×32, batch 64, padding 1, with bias: forward and the
/// backward to input, weight and bias (`torch_reference.py conv`); GFLOP/s counts 3 × 2·N·O·C·H·W·9.
pub fn conv() -> Result<Vec<Row>> {
    let x = randn(&[64, 64, 32, 32], 8).set_requires_grad(true);
    let w = randn(&[64, 64, 3, 3], 9).set_requires_grad(true);
    let b = randn(&[64], 10).set_requires_grad(true);
    let opts = Conv2dOptions {
        padding: [1, 1],
        ..Default::default()
    };
    let step = || -> Result<()> {
        x.conv2d(&w, Some(&b), opts)?.sum_all()?.backward()?;
        Ok(())
    };
    step()?;
    let mut failure = None;
    let s = median_secs(10, || {
        if let Err(e) = step() {
            failure = Some(e);
        }
    });
    if let Some(e) = failure {
        return Err(e);
    }
    let flops = 3.0 * 2.0 * 64.0 * 64.0 * 32.0 * 32.0 * 64.0 * 9.0;
    Ok(vec![Row::higher(
        "conv3x3 64->64 32x32 b64 fwd+bwd",
        "GFLOP/s",
        flops / s / 1e9,
    )])
}

/// add and relu on 1M and 16M elements, sum over 16M; GB/s counting each element read or
/// written once (add: 3 × 4 bytes, relu: 2 × 4, sum: 4).
pub fn elementwise() -> Result<Vec<Row>> {
    let mut rows = Vec::new();
    for n in [1usize << 20, 16 << 20] {
        let (a, b) = (randn(&[n], 3), randn(&[n], 4));
        a.add(&b)?;
        let s = median_secs(20, || drop(a.add(&b)));
        rows.push(Row::higher(format!("add {n}"), "GB/s", 12.0 * n as f64 / s / 1e9));
        a.relu()?;
        let s = median_secs(20, || drop(a.relu()));
        rows.push(Row::higher(format!("relu {n}"), "GB/s", 8.0 * n as f64 / s / 1e9));
    }
    let n = 16usize << 20;
    let a = randn(&[n], 5);
    a.sum_all()?;
    let s = median_secs(20, || drop(a.sum_all()));
    rows.push(Row::higher(format!("sum {n}"), "GB/s", 4.0 * n as f64 / s / 1e9));
    Ok(rows)
}

/// Cost of one tiny op that records the graph: `a + b` on 4 elements, `a` requiring grad.
pub fn overhead() -> Result<Row> {
    const OPS: usize = 10_000;
    let a = randn(&[4], 6).set_requires_grad(true);
    let b = randn(&[4], 7);
    let probe = a.add(&b)?;
    debug_assert!(probe.requires_grad());
    let s = median_secs(5, || {
        for _ in 0..OPS {
            drop(a.add(&b));
        }
    });
    Ok(Row::lower("tiny add with graph recording", "us", s / OPS as f64 * 1e6))
}
