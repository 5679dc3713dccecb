//! Timing of the convolution and pooling kernels and ops:
//! `cargo run --release -p nabla-core --example conv_bench`.

use nabla_core::kernels::conv::{
    conv2d_backward_input, conv2d_backward_weight, conv2d_forward, ConvGeom,
};
use std::time::Instant;

/// Best and median of `reps` runs of `f`, in milliseconds.
fn time(reps: usize, mut f: impl FnMut()) -> (f64, f64) {
    f();
    let mut ts: Vec<f64> = (0..reps)
        .map(|_| {
            let t = Instant::now();
            f();
            t.elapsed().as_secs_f64() * 1e3
        })
        .collect();
    ts.sort_by(|a, b| a.total_cmp(b));
    (ts[0], ts[reps / 2])
}

fn report(name: &str, flops: f64, (best, med): (f64, f64)) {
    println!(
        "{name:<28} best {best:7.2} ms  median {med:7.2} ms  {:6.1} GFLOP/s",
        flops / best / 1e6
    );
}

fn main() {
    if std::env::args().any(|a| a == "gemm") {
        gemm_probe();
        return;
    }
    let g = ConvGeom {
        n: 64,
        c: 64,
        h: 32,
        w: 32,
        o: 64,
        oh: 32,
        ow: 32,
        kh: 3,
        kw: 3,
        stride: [1, 1],
        padding: [1, 1],
        dilation: [1, 1],
        groups: 1,
    };
    let x: Vec<f32> = (0..g.n * g.c * g.h * g.w)
        .map(|i| (i as f32 * 0.37).sin())
        .collect();
    let w: Vec<f32> = (0..g.o * g.k()).map(|i| (i as f32 * 0.11).cos()).collect();
    let b = vec![0.1f32; g.o];
    let mut y = vec![0f32; g.n * g.o * g.p()];
    let mut dx = vec![0f32; x.len()];
    let mut dw = vec![0f32; w.len()];
    let fl = 2.0 * g.flops() as f64;
    report(
        "kernel fwd",
        fl,
        time(10, || conv2d_forward(&g, &x, &w, Some(&b), &mut y)),
    );
    report(
        "kernel bwd input",
        fl,
        time(10, || conv2d_backward_input(&g, &y, &w, None, &mut dx)),
    );
    report(
        "kernel bwd weight",
        fl,
        time(10, || conv2d_backward_weight(&g, &x, &y, &mut dw)),
    );
}

#[allow(dead_code)]
fn gemm_probe() {
    use nabla_core::kernels::matmul::{gemm, Mat};
    let (m, k, n) = (64usize, 576usize, 1024usize);
    let a: Vec<f32> = (0..m * k).map(|i| (i as f32).sin()).collect();
    let b: Vec<f32> = (0..k * n).map(|i| (i as f32).cos()).collect();
    let mut d = vec![0f32; m * n];
    let fl = 2.0 * (m * n * k) as f64;
    report(
        "gemm 64x576x1024 1t",
        fl,
        time(50, || {
            gemm(
                m,
                n,
                k,
                Mat {
                    data: &a,
                    rs: k,
                    cs: 1,
                    offset: 0,
                },
                Mat {
                    data: &b,
                    rs: n,
                    cs: 1,
                    offset: 0,
                },
                &mut d,
                false,
                1,
            )
        }),
    );
    report(
        "gemm 64x576x1024 2t",
        fl,
        time(50, || {
            gemm(
                m,
                n,
                k,
                Mat {
                    data: &a,
                    rs: k,
                    cs: 1,
                    offset: 0,
                },
                Mat {
                    data: &b,
                    rs: n,
                    cs: 1,
                    offset: 0,
                },
                &mut d,
                false,
                2,
            )
        }),
    );
    // weight grad shape: [64 x 1024] . [1024 x 576] with B = cols^T
    let mut dwt = vec![0f32; m * k];
    let dy: Vec<f32> = (0..m * n).map(|i| (i as f32).sin()).collect();
    report(
        "gemm wgrad 64x1024x576 T",
        fl,
        time(50, || {
            gemm(
                m,
                k,
                n,
                Mat {
                    data: &dy,
                    rs: n,
                    cs: 1,
                    offset: 0,
                },
                Mat {
                    data: &b,
                    rs: 1,
                    cs: n,
                    offset: 0,
                },
                &mut dwt,
                true,
                1,
            )
        }),
    );
    let mut dwtt = vec![0f32; m * k];
    report(
        "gemm wgrad^T 576x1024x64",
        fl,
        time(50, || {
            gemm(
                k,
                m,
                n,
                Mat {
                    data: &b,
                    rs: n,
                    cs: 1,
                    offset: 0,
                },
                Mat {
                    data: &dy,
                    rs: 1,
                    cs: n,
                    offset: 0,
                },
                &mut dwtt,
                true,
                1,
            )
        }),
    );
    let bt: Vec<f32> = (0..k * n).map(|i| (i as f32).cos()).collect();
    report(
        "gemm wgrad colsT rowmajor",
        fl,
        time(50, || {
            gemm(
                m,
                k,
                n,
                Mat {
                    data: &dy,
                    rs: n,
                    cs: 1,
                    offset: 0,
                },
                Mat {
                    data: &bt,
                    rs: k,
                    cs: 1,
                    offset: 0,
                },
                &mut dwt,
                true,
                1,
            )
        }),
    );
    report(
        "gemm wgrad^T colsT",
        fl,
        time(50, || {
            gemm(
                k,
                m,
                n,
                Mat {
                    data: &bt,
                    rs: 1,
                    cs: k,
                    offset: 0,
                },
                Mat {
                    data: &dy,
                    rs: 1,
                    cs: n,
                    offset: 0,
                },
                &mut dwtt,
                true,
                1,
            )
        }),
    );
    // input grad: [576 x 64] (W^T) . [64 x 1024]
    let mut cols = vec![0f32; k * n];
    report(
        "gemm bwdin 576x64x1024",
        fl,
        time(50, || {
            gemm(
                k,
                n,
                m,
                Mat {
                    data: &a,
                    rs: 1,
                    cs: k,
                    offset: 0,
                },
                Mat {
                    data: &dy,
                    rs: n,
                    cs: 1,
                    offset: 0,
                },
                &mut cols,
                false,
                1,
            )
        }),
    );
}
