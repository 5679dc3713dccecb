//! Timing of the stride-2 layers of DCGAN, the conv autoencoder and fcn_small, each pass separately, on
//! 1 and 2 threads: `cargo run --release -p nabla-core --example stride2_bench [-- NAME]`
//! (layers whose name contains NAME, e.g. `64->128`), or `-- gemm` for the products of
//! the shapes these layers run. Best of `REPS` runs (default 5; the least disturbed one on
//! a shared machine), in milliseconds; `THREADS=1` skips the two-thread runs; `CPU=1` times
//! the process's CPU time instead of the wall clock (all threads together: on a loaded
//! machine, the one-thread figures that time-slicing does not inflate). `PASS=fwd|in|w`
//! times one pass only (for a profiler).

use nabla_core::kernels::conv::{conv2d_backward_input, conv2d_backward_weight, conv2d_forward, ConvGeom};

#[path = "shared/best.rs"]
mod timing;
use timing::best;

fn main() {
    let reps: usize = std::env::var("REPS").ok().and_then(|v| v.parse().ok()).unwrap_or(5);
    // [batch, in channels, out channels, input size, kernel]; all stride 2, padding 1.
    let layers = [
        ("AE 1->16 k3 28->14", [128, 1, 16, 28, 3]),
        ("AE 16->32 k3 14->7", [128, 16, 32, 14, 3]),
        ("GAN 1->64 k4 28->14", [128, 1, 64, 28, 4]),
        ("GAN 64->128 k4 14->7", [128, 64, 128, 14, 4]),
        ("FCN 16->32 k3 64->32", [32, 16, 32, 64, 3]),
        ("FCN 32->64 k3 32->16", [32, 32, 64, 32, 3]),
        ("FCN 64->64 k3 16->8", [32, 64, 64, 16, 3]),
    ];
    let filter = std::env::args().nth(1).unwrap_or_default();
    if filter == "gemm" {
        use nabla_core::kernels::matmul::{gemm, gemm_packed, Mat};
        for (m, nn, k) in [
            (48, 128, 256),
            (48, 256, 128),
            (128, 48, 256),
            (96, 128, 256),
            (192, 128, 256),
            (128, 245, 1024),
        ] {
            let a: Vec<f32> = (0..m * k).map(|i| (i as f32 * 0.3).sin()).collect();
            let b: Vec<f32> = (0..k * nn).map(|i| (i as f32 * 0.7).sin()).collect();
            let mut d = vec![0f32; m * nn];
            let am = Mat {
                data: &a,
                rs: k,
                cs: 1,
                offset: 0,
            };
            let bm = Mat {
                data: &b,
                rs: nn,
                cs: 1,
                offset: 0,
            };
            let gf = 2.0 * (m * nn * k) as f64 / 1e6;
            let t1 = best(reps, || gemm(m, nn, k, am, bm, &mut d, false, 1));
            let t2 = best(reps, || gemm_packed(m, nn, k, am, bm, &mut d, false, 1));
            println!(
                "gemm {m}x{nn}x{k} 1t: default {t1:.2} ms ({:.0} GF/s), packed {t2:.2} ms ({:.0})",
                gf / t1,
                gf / t2
            );
        }
        return;
    }
    for (name, [n, c, o, hw, k]) in layers {
        if !filter.is_empty() && !name.contains(&filter) {
            continue;
        }
        let g = ConvGeom::new([n, c, hw, hw], [o, k, k], [2, 2], [1, 1], [1, 1], 1);
        let x: Vec<f32> = (0..n * c * hw * hw).map(|i| ((i as f32) * 0.37).sin()).collect();
        let w: Vec<f32> = (0..o * c * k * k).map(|i| ((i as f32) * 0.11).cos() * 0.05).collect();
        let dy: Vec<f32> = (0..n * o * g.p()).map(|i| ((i as f32) * 0.71).sin()).collect();
        let (mut y, mut dx, mut dw) = (vec![0f32; dy.len()], vec![0f32; x.len()], vec![0f32; w.len()]);
        let gf = 2.0 * g.flops() as f64 / 1e6;
        let max_threads: usize = std::env::var("THREADS").ok().and_then(|v| v.parse().ok()).unwrap_or(2);
        for threads in (1..=max_threads).filter(|t| [1, 2].contains(t)) {
            let pool = rayon::ThreadPoolBuilder::new().num_threads(threads).build().unwrap();
            let pass = std::env::var("PASS").unwrap_or_default();
            let on = |p: &str| pass.is_empty() || pass == p;
            let (f, bi, bw) = pool.install(|| {
                (
                    if on("fwd") {
                        best(reps, || conv2d_forward(&g, &x, &w, None, &mut y))
                    } else {
                        f64::NAN
                    },
                    if on("in") {
                        best(reps, || conv2d_backward_input(&g, &dy, &w, None, &mut dx))
                    } else {
                        f64::NAN
                    },
                    if on("w") {
                        best(reps, || conv2d_backward_weight(&g, &x, &dy, &mut dw))
                    } else {
                        f64::NAN
                    },
                )
            });
            println!(
                "{name:<22} {threads}t  fwd {f:7.2} ms ({:5.0} GF/s)  in-grad {bi:7.2} ms ({:5.0})  w-grad {bw:7.2} ms ({:5.0})",
                gf / f,
                gf / bi,
                gf / bw
            );
        }
    }
}
