//! Benchmark: find a 32×32 template in a 1024×1024 image by normalized cross-correlation.
//!
//! Run with `cargo run --release -p nabla-vision --example match_bench [-- ROUNDS]`.
//! Prints the best time of each variant over the rounds (f32) and checks the answer.

use nabla_core::{DType, Generator, Result, Tensor};
use nabla_vision::{best_matches, normalized_cross_correlation};
use std::time::Instant;

fn main() -> Result<()> {
    let rounds: usize = std::env::args().nth(1).and_then(|a| a.parse().ok()).unwrap_or(5);
    let (size, t) = (1024usize, 32usize);
    let (ty, tx) = (700usize, 123usize);
    // Smooth-ish noise: a random image blurred by averaging with its shifted self.
    let noise = Tensor::rand(&[size + 1, size + 1], DType::F32, &mut Generator::new(42));
    let image = noise
        .narrow(0, 0, size)?
        .narrow(1, 0, size)?
        .add(&noise.narrow(0, 1, size)?.narrow(1, 1, size)?)?
        .mul_scalar(0.5)?
        .contiguous()?;
    let template = image.narrow(0, ty, t)?.narrow(1, tx, t)?.contiguous()?;
    println!("match_bench: {t}×{t} template in a {size}×{size} image, f32, best of {rounds}");
    for zero_mean in [false, true] {
        let mut best = f64::INFINITY;
        let mut found = vec![];
        for _ in 0..rounds {
            let start = Instant::now();
            let scores = normalized_cross_correlation(&image, &template, zero_mean)?;
            found = best_matches(&scores, 3, [t, t])?;
            best = best.min(start.elapsed().as_secs_f64());
        }
        let m = found[0];
        println!(
            "  zero_mean={zero_mean:<5}  {:8.1} ms   best match x={} y={} score={:.5}",
            best * 1e3,
            m.x,
            m.y,
            m.score
        );
        assert_eq!((m.x, m.y), (tx, ty), "the template was cut from x={tx}, y={ty}");
    }
    Ok(())
}
