//! Times training steps of the 784-256-10 MLP (batch 64, SGD momentum 0.9, lr 0.05) on random
//! data, split into forward, backward and optimizer step, plus the step's GEMMs alone.
//!
//! `cargo run --release -p nabla-nn --example mlp_bench`

use nabla_core::{DType, Generator, Tensor};
use nabla_nn::loss::{cross_entropy, CrossEntropyOptions};
use nabla_nn::optim::{Optimizer, Sgd, SgdOptions};
use nabla_nn::{Linear, Mode, Module, ReLU, Sequential};
use std::time::Instant;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let g = &mut Generator::new(0);
    let model = Sequential::new()
        .push(Linear::new(784, 256, g))
        .push(ReLU)
        .push(Linear::new(256, 10, g));
    let mut opt = Sgd::new(
        model.trainable_parameters(),
        SgdOptions {
            lr: 0.05,
            momentum: 0.9,
            ..Default::default()
        },
    )?;
    let xs: Vec<Tensor> = (0..16).map(|_| Tensor::rand(&[64, 784], DType::F32, g)).collect();
    let ys: Vec<Vec<usize>> = (0..16)
        .map(|i| (0..64).map(|j| (i * 7 + j * 3) % 10).collect())
        .collect();
    let ce = CrossEntropyOptions::default();
    let steps = 938;
    // Medians per phase: the machine is shared, and a preempted step would skew a mean.
    let p50 = |v: &mut Vec<f64>| {
        v.sort_by(f64::total_cmp);
        v[v.len() / 2] * 1e6
    };
    for round in 0..3 {
        let (mut tf, mut tb, mut ts, mut tt) = (Vec::new(), Vec::new(), Vec::new(), Vec::new());
        let t0 = Instant::now();
        for s in 0..steps {
            let t = Instant::now();
            let loss = cross_entropy(&model.forward(&xs[s % 16], Mode::Train)?, &ys[s % 16][..], &ce)?;
            let t1 = Instant::now();
            let grads = loss.backward()?;
            let t2 = Instant::now();
            opt.step(&grads)?;
            let t3 = Instant::now();
            tf.push((t1 - t).as_secs_f64());
            tb.push((t2 - t1).as_secs_f64());
            ts.push((t3 - t2).as_secs_f64());
            tt.push((t3 - t).as_secs_f64());
        }
        let all = t0.elapsed().as_secs_f64();
        println!(
            "round {round}: {steps} steps {all:.3} s; median us/step {:.1} (fwd {:.1}, bwd {:.1}, step {:.1})",
            p50(&mut tt),
            p50(&mut tf),
            p50(&mut tb),
            p50(&mut ts)
        );
    }
    // The optimizer step alone, on one step's gradients.
    let loss = cross_entropy(&model.forward(&xs[0], Mode::Train)?, &ys[0][..], &ce)?;
    let grads = loss.backward()?;
    let mut best = f64::INFINITY;
    for _ in 0..200 {
        let t = Instant::now();
        opt.step(&grads)?;
        best = best.min(t.elapsed().as_secs_f64());
    }
    println!("SGD step alone: {:.1} us", best * 1e6);
    // The GEMMs alone at the step's shapes.
    let x = Tensor::rand(&[64, 784], DType::F32, g);
    let w = Tensor::rand(&[256, 784], DType::F32, g);
    let gy = Tensor::rand(&[64, 256], DType::F32, g);
    let time = |name: &str, f: &dyn Fn() -> Tensor| {
        let mut best = f64::INFINITY;
        for _ in 0..200 {
            let t = Instant::now();
            std::hint::black_box(f());
            best = best.min(t.elapsed().as_secs_f64());
        }
        println!("{name}: {:.1} us", best * 1e6);
    };
    time("fwd x·Wᵀ 64x784x256", &|| x.matmul(&w.t().unwrap()).unwrap());
    time("dW (gᵀ·x) 256x64x784", &|| gy.t().unwrap().matmul(&x).unwrap());
    Ok(())
}
