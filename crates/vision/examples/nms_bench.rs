//! Benchmark: NMS on 10,000 random boxes, three layouts (spread out: most kept; clustered:
//! most suppressed; objects: 1,000 boxes of 20–200 pixels on an 800×800 image, 10 jittered
//! copies of each, as nabla-bench's nms section), at IoU 0.5.
//!
//! Run with `cargo run --release -p nabla-vision --example nms_bench [-- ROUNDS]`; prints the
//! best time per layout and how many boxes were kept. The same boxes for torchvision:
//! x, y uniform in [0, SPAN), w, h uniform in [1, 41), scores uniform in [0, 1).

use nabla_core::Generator;
use nabla_vision::nms;
use std::time::Instant;

fn main() {
    let rounds: usize = std::env::args().nth(1).and_then(|a| a.parse().ok()).unwrap_or(20);
    let n = 10_000;
    for (layout, span) in [("spread", 1000.0f32), ("clustered", 100.0)] {
        let mut rng = Generator::new(1);
        let mut u = || rng.uniform() as f32;
        let boxes: Vec<[f32; 4]> = (0..n)
            .map(|_| {
                let (x, y, w, h) = (u() * span, u() * span, 1.0 + u() * 40.0, 1.0 + u() * 40.0);
                [x, y, x + w, y + h]
            })
            .collect();
        let scores: Vec<f32> = (0..n).map(|_| u()).collect();
        run(layout, &boxes, &scores, rounds);
    }
    let mut rng = Generator::new(4);
    let mut u = || rng.uniform() as f32;
    let (mut boxes, mut scores) = (vec![], vec![]);
    for _ in 0..1000 {
        let (w, h, cx, cy) = (20.0 + 180.0 * u(), 20.0 + 180.0 * u(), 800.0 * u(), 800.0 * u());
        for _ in 0..10 {
            let (x, y) = (cx + (u() - 0.5) * 0.2 * w, cy + (u() - 0.5) * 0.2 * h);
            let (sw, sh) = (w * (0.9 + 0.2 * u()), h * (0.9 + 0.2 * u()));
            boxes.push([x - sw / 2.0, y - sh / 2.0, x + sw / 2.0, y + sh / 2.0]);
            scores.push(u());
        }
    }
    run("objects", &boxes, &scores, rounds);
}

/// Time `nms` on the boxes, best of `rounds`.
fn run(layout: &str, boxes: &[[f32; 4]], scores: &[f32], rounds: usize) {
    let n = boxes.len();
    {
        let mut best = f64::INFINITY;
        let mut kept = 0;
        for _ in 0..rounds {
            let start = Instant::now();
            kept = nms(boxes, scores, 0.5).len();
            best = best.min(start.elapsed().as_secs_f64());
        }
        println!("nms {layout}: {n} boxes, kept {kept}, best {:.3} ms", best * 1e3);
    }
}
