//! DCGAN's 64 ↔ 128 layer through the op layer (tensor, autograd), to compare with the
//! raw kernels of `stride2_bench`: `cargo run --release -p nabla-core --example gan_conv_ops`.
use nabla_core::{profile, Conv2dOptions, DType, Generator, Tensor};

fn main() -> nabla_core::Result<()> {
    let reps: usize = std::env::var("REPS").ok().and_then(|v| v.parse().ok()).unwrap_or(20);
    nabla_core::memory::retain_freed_memory();
    let mut g = Generator::new(1);
    let x = Tensor::randn(&[128, 64, 14, 14], DType::F32, &mut g).set_requires_grad(true);
    let w = (Tensor::randn(&[128, 64, 4, 4], DType::F32, &mut g).mul_scalar(0.02)?).set_requires_grad(true);
    let gy = Tensor::randn(&[128, 128, 7, 7], DType::F32, &mut g);
    let opts = Conv2dOptions {
        stride: [2, 2],
        padding: [1, 1],
        ..Default::default()
    };
    let t = std::time::Instant::now();
    let c0 = profile::process_cpu_ns();
    let fwd_only = std::env::var("FWD").is_ok();
    for _ in 0..reps {
        if fwd_only {
            let _off = nabla_core::no_grad();
            std::hint::black_box(x.conv2d(&w, None, opts)?);
            continue;
        }
        let y = x.conv2d(&w, None, opts)?;
        let l = y.mul(&gy)?.sum(&[], false)?;
        std::hint::black_box(l.backward()?);
    }
    let (wall, cpu) = (
        t.elapsed().as_secs_f64() * 1e3 / reps as f64,
        (profile::process_cpu_ns() - c0) as f64 / 1e6 / reps as f64,
    );
    println!("fwd + dx + dw per rep: {wall:.2} ms wall, {cpu:.2} ms cpu");
    Ok(())
}
