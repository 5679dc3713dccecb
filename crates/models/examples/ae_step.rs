//! Times the conv autoencoder's training step (forward, MSE, backward, Adam) at batch 128
//! on random images, two ways in turn: as `Sequential` runs it (layer + activation fused)
//! and layer by layer (every activation its own op); best and median per-step CPU time
//! of the process (all threads) in milliseconds over `REPS` steps each (default 40).
//!
//! `RAYON_NUM_THREADS=1 cargo run --release -p nabla-models --example ae_step`

use nabla_core::{profile::process_cpu_ns, DType, Generator, Tensor};
use nabla_models::autoencoder::ConvAutoencoder;
use nabla_nn::loss::{mse_loss, Reduction};
use nabla_nn::optim::{Adam, AdamOptions, Optimizer};
use nabla_nn::{Mode, Module, Sequential};

/// `seq`'s children one by one, as an unfused `Sequential` would run them.
fn each(seq: &Sequential, x: &Tensor) -> Tensor {
    (0..seq.len()).fold(x.clone(), |y, i| seq.get(i).unwrap().forward(&y, Mode::Train).unwrap())
}

fn main() {
    nabla_core::memory::retain_freed_memory();
    let reps: usize = std::env::var("REPS").ok().and_then(|v| v.parse().ok()).unwrap_or(40);
    let mut g = Generator::new(0);
    let ae = ConvAutoencoder::new(1, [28, 28], 16, "relu", &mut g).unwrap();
    let opts = AdamOptions {
        lr: 1e-3,
        ..Default::default()
    };
    let mut opt = Adam::new(ae.trainable_parameters(), opts).unwrap();
    let x = Tensor::rand(&[128, 1, 28, 28], DType::F32, &mut g);
    let mut times = [Vec::new(), Vec::new()];
    for i in 0..2 * (reps + 2) {
        let fused = i % 2 == 0;
        let t = process_cpu_ns();
        let y = if fused {
            ae.forward(&x, Mode::Train).unwrap()
        } else {
            each(&ae.decoder, &each(&ae.encoder, &x))
        };
        let loss = mse_loss(&y, &x, Reduction::Mean).unwrap();
        opt.step(&loss.backward().unwrap()).unwrap();
        if i >= 4 {
            times[usize::from(!fused)].push((process_cpu_ns() - t) as f64 / 1e6);
        }
    }
    for (name, t) in ["fused", "layer by layer"].iter().zip(&mut times) {
        t.sort_by(f64::total_cmp);
        println!("{name:<15} step best {:.3} ms, median {:.3} ms", t[0], t[t.len() / 2]);
    }
}
