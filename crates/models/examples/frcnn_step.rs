//! Times `fasterrcnn_small` training steps (forward, losses, backward, Adam) on batches of
//! 64×64 synthetic scenes (1–4 textured boxes of 18–45 pixels) and inference on one batch.
//!
//! `cargo run --release -p nabla-models --example frcnn_step [steps] [batch] [stride] [box_batch]`

use nabla_core::{Generator, Tensor};
use nabla_models::fasterrcnn::{DetTarget, FasterRcnn, FasterRcnnConfig};
use nabla_nn::optim::{Adam, AdamOptions, Optimizer};
use nabla_nn::Module;
use std::time::Instant;

fn scenes(n: usize, g: &mut Generator) -> (Tensor, Vec<DetTarget>) {
    let side = 64;
    let mut px = vec![0.0f32; n * side * side];
    let mut targets = Vec::new();
    for i in 0..n {
        let k = 1 + g.below(4) as usize;
        let mut t = DetTarget {
            boxes: vec![],
            labels: vec![],
        };
        for _ in 0..k {
            let w = 18 + g.below(28) as usize;
            let h = 18 + g.below(28) as usize;
            let x = g.below((side - w) as u64) as usize;
            let y = g.below((side - h) as u64) as usize;
            let class = g.below(10) as usize;
            for yy in y..y + h {
                for xx in x..x + w {
                    let v = 0.3 + 0.07 * class as f32 + 0.2 * ((xx * (class + 1) + yy) % 5) as f32 / 5.0;
                    px[i * side * side + yy * side + xx] = v.min(1.0);
                }
            }
            t.boxes.push([x as f32, y as f32, (x + w) as f32, (y + h) as f32]);
            t.labels.push(class);
        }
        targets.push(t);
    }
    (Tensor::from_vec(px, &[n, 1, side, side]).unwrap(), targets)
}

/// The batches as `images` [N,1,64,64] and `targets` [N, 1 + 5·4] (count, then class and
/// box per object, −1 padded), what crates/bench/torch/frcnn.py reads.
fn write_batches(path: &str, data: &[(Tensor, Vec<DetTarget>)]) {
    let imgs: Vec<&Tensor> = data.iter().map(|(x, _)| x).collect();
    let images = Tensor::cat(&imgs, 0).unwrap();
    let mut rows = Vec::new();
    for t in data.iter().flat_map(|(_, t)| t) {
        let mut row = vec![-1.0f32; 21];
        row[0] = t.boxes.len() as f32;
        for (k, (b, l)) in t.boxes.iter().zip(&t.labels).enumerate() {
            row[1 + 5 * k] = *l as f32;
            row[2 + 5 * k..6 + 5 * k].copy_from_slice(b);
        }
        rows.extend(row);
    }
    let n = rows.len() / 21;
    let targets = Tensor::from_vec(rows, &[n, 21]).unwrap();
    let tensors = [("images".to_string(), images), ("targets".to_string(), targets)];
    nabla_nn::save_tensors(path, &tensors, &Default::default()).unwrap();
    println!("wrote {path}");
}

/// CPU seconds (user + system) this process has used, from /proc/self/stat (0 elsewhere).
fn cpu_seconds() -> f64 {
    let stat = std::fs::read_to_string("/proc/self/stat").unwrap_or_default();
    // Fields after the parenthesized name, from `state`: utime and stime are the 12th and
    // 13th of them (fields 14 and 15 of proc(5)), in clock ticks of 1/100 s.
    let rest = stat.rsplit_once(')').map(|(_, r)| r).unwrap_or("");
    let f: Vec<&str> = rest.split_whitespace().collect();
    let tick = |i: usize| f.get(i).and_then(|v| v.parse::<f64>().ok()).unwrap_or(0.0);
    (tick(11) + tick(12)) / 100.0
}

fn main() {
    let args: Vec<usize> = std::env::args().skip(1).map(|a| a.parse().unwrap()).collect();
    let steps = args.first().copied().unwrap_or(10);
    let batch = args.get(1).copied().unwrap_or(32);
    let stride = args.get(2).copied().unwrap_or(4);
    let box_batch = args.get(3).copied().unwrap_or(64);
    let mut g = Generator::new(0);
    let cfg = FasterRcnnConfig {
        small_stride: stride,
        box_batch_size_per_image: box_batch,
        ..Default::default()
    };
    let m = FasterRcnn::new(cfg, &mut g).unwrap();
    println!("parameters: {}", m.num_parameters());
    let mut opt = Adam::new(
        m.trainable_parameters(),
        AdamOptions {
            lr: 1e-3,
            ..Default::default()
        },
    )
    .unwrap();
    let data: Vec<_> = (0..4).map(|_| scenes(batch, &mut g)).collect();
    if let Ok(path) = std::env::var("FRCNN_WRITE") {
        write_batches(&path, &data);
    }
    let mut times = Vec::new();
    let mut cpu0 = 0.0;
    for s in 0..steps {
        if s == 1 {
            cpu0 = cpu_seconds();
        }
        let (x, t) = &data[s % data.len()];
        let t0 = Instant::now();
        let l = m.losses(x, t, &mut g).unwrap();
        let total = l.total().unwrap();
        let t1 = Instant::now();
        let grads = total.backward().unwrap();
        let t2 = Instant::now();
        opt.step(&grads).unwrap();
        let t3 = Instant::now();
        println!(
            "step {s}: loss {:.4} (rpn obj {:.4} box {:.4}, cls {:.4} box {:.4}) fwd {:.1} ms, bwd {:.1} ms, step {:.1} ms",
            total.item().unwrap(),
            l.rpn_objectness.item().unwrap(),
            l.rpn_box_reg.item().unwrap(),
            l.classifier.item().unwrap(),
            l.box_reg.item().unwrap(),
            (t1 - t0).as_secs_f64() * 1e3,
            (t2 - t1).as_secs_f64() * 1e3,
            (t3 - t2).as_secs_f64() * 1e3
        );
        if s > 0 {
            times.push((t3 - t0).as_secs_f64() * 1e3);
        }
    }
    times.sort_by(f64::total_cmp);
    if !times.is_empty() {
        let cpu = (cpu_seconds() - cpu0) * 1e3 / times.len() as f64;
        println!(
            "train step, batch {batch}: median {:.1} ms, {cpu:.0} cpu-ms per step",
            times[times.len() / 2]
        );
    }
    let t0 = Instant::now();
    let d = m.detect(&data[0].0).unwrap();
    println!(
        "detect, batch {batch}: {:.1} ms, {} detections in image 0",
        t0.elapsed().as_secs_f64() * 1e3,
        d[0].boxes.len()
    );
}
