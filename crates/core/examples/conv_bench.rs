//! Timing of convolution and pooling, forward and each backward pass separately:
//! `cargo run --release -p nabla-core --example conv_bench [-- quick | lenet | resnet [N] | layer N]`.
//!
//! The reference is PyTorch on the same machine (3×3, 64→64, 32×32, batch 64: about
//! 70–100 ms forward + backward on 2 cores). Timings are the best and median of a few runs.

use nabla_core::kernels::conv::{bias_grad, conv2d_backward_input, conv2d_backward_weight, conv2d_forward, ConvGeom};
use nabla_core::{no_grad, BackwardOptions, Conv2dOptions, DType, Generator, Pool2dOptions, Tensor};
use std::time::Instant;

/// Best and median of `reps` runs of `f` after one warm-up, in milliseconds.
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
    let rate = if flops > 0.0 {
        format!("{:6.1} GFLOP/s", flops / best / 1e6)
    } else {
        String::new()
    };
    println!("{name:<34} best {best:8.2} ms  median {med:8.2} ms  {rate}");
}

/// One convolution geometry: raw kernels per pass, then the op with autograd.
/// `dims` = [batch, in channels, out channels, height = width, kernel, stride, padding].
fn conv(name: &str, dims: [usize; 7], reps: usize) {
    let [n, c, o, hw, k, stride, pad] = dims;
    let g = ConvGeom::new([n, c, hw, hw], [o, k, k], [stride; 2], [pad; 2], [1, 1], 1);
    let out = g.oh;
    println!("-- {name}: [{n}, {c}, {hw}, {hw}] * [{o}, {c}, {k}, {k}], stride {stride}, padding {pad}");
    let mut rng = Generator::new(0);
    let x = Tensor::randn(&[n, c, hw, hw], DType::F32, &mut rng);
    let w = Tensor::randn(&[o, c, k, k], DType::F32, &mut rng)
        .mul_scalar(0.05)
        .unwrap();
    let b = Tensor::randn(&[o], DType::F32, &mut rng);
    let gy = Tensor::randn(&[n, o, out, out], DType::F32, &mut rng);
    let (xv, wv, bv, gv) = (x.to_vec_f32(), w.to_vec_f32(), b.to_vec_f32(), gy.to_vec_f32());
    let mut y = vec![0f32; gv.len()];
    let mut dx = vec![0f32; xv.len()];
    let mut dw = vec![0f32; wv.len()];
    let fl = 2.0 * g.flops() as f64;
    report(
        "kernel forward (+bias)",
        fl,
        time(reps, || conv2d_forward(&g, &xv, &wv, Some(&bv), &mut y)),
    );
    report(
        "kernel backward input",
        fl,
        time(reps, || conv2d_backward_input(&g, &gv, &wv, None, &mut dx)),
    );
    report(
        "kernel backward weight",
        fl,
        time(reps, || conv2d_backward_weight(&g, &xv, &gv, &mut dw)),
    );
    let mut db = vec![0f32; o];
    report(
        "kernel bias gradient",
        0.0,
        time(reps, || bias_grad(&gv, n, o, out * out, &mut db)),
    );
    let opts = Conv2dOptions {
        stride: [stride; 2],
        padding: [pad; 2],
        ..Default::default()
    };
    report(
        "op forward (no grad)",
        fl,
        time(reps, || {
            let _g = no_grad();
            x.conv2d(&w, Some(&b), opts).unwrap();
        }),
    );
    let (xl, wl, bl) = (
        x.set_requires_grad(true),
        w.set_requires_grad(true),
        b.set_requires_grad(true),
    );
    report(
        "op forward + backward (x, w, b)",
        3.0 * fl,
        time(reps, || {
            let y = xl.conv2d(&wl, Some(&bl), opts).unwrap();
            let grads = y.backward_with_grad(&gy).unwrap();
            assert!(grads.get(&wl).is_some());
        }),
    );
}

/// Forward + backward of the op for `dims` (as in [`conv`]), `reps` times.
fn fb_only([n, c, o, hw, k, stride, pad]: [usize; 7], reps: usize) {
    let mut rng = Generator::new(0);
    let oh = (hw + 2 * pad - k) / stride + 1;
    let x = Tensor::randn(&[n, c, hw, hw], DType::F32, &mut rng).set_requires_grad(true);
    let w = Tensor::randn(&[o, c, k, k], DType::F32, &mut rng).set_requires_grad(true);
    let b = Tensor::randn(&[o], DType::F32, &mut rng).set_requires_grad(true);
    let gy = Tensor::randn(&[n, o, oh, oh], DType::F32, &mut rng);
    let opts = Conv2dOptions {
        stride: [stride; 2],
        padding: [pad; 2],
        ..Default::default()
    };
    for _ in 0..reps {
        let y = x.conv2d(&w, Some(&b), opts).unwrap();
        y.backward_with_grad(&gy).unwrap();
    }
}

fn pool(reps: usize) {
    let shape = [64, 64, 32, 32];
    println!("-- max_pool2d 2×2 on {shape:?}");
    let x = Tensor::randn(&shape, DType::F32, &mut Generator::new(1));
    let opts = Pool2dOptions::new([2, 2]);
    report(
        "forward (no grad)",
        0.0,
        time(reps, || {
            x.max_pool2d(opts).unwrap();
        }),
    );
    report(
        "forward with indices",
        0.0,
        time(reps, || {
            x.max_pool2d_with_indices(opts).unwrap();
        }),
    );
    let xl = x.set_requires_grad(true);
    let gy = Tensor::ones(&[64, 64, 16, 16], DType::F32);
    report(
        "forward + backward",
        0.0,
        time(reps, || {
            let y = xl.max_pool2d(opts).unwrap();
            y.backward_with_grad(&gy).unwrap();
        }),
    );
    let up = Tensor::ones(&[64, 64, 64, 64], DType::F32);
    report(
        "upsample_bilinear2d ×2 fwd + bwd",
        0.0,
        time(reps, || {
            let y = xl.upsample_bilinear2d([64, 64], false).unwrap();
            y.backward_with(&up, BackwardOptions::default()).unwrap();
        }),
    );
    let g7 = Tensor::ones(&[64, 64, 7, 7], DType::F32);
    report(
        "adaptive_avg_pool2d 7×7 fwd + bwd",
        0.0,
        time(reps, || {
            let y = xl.adaptive_avg_pool2d([7, 7]).unwrap();
            y.backward_with(&g7, BackwardOptions::default()).unwrap();
        }),
    );
    report(
        "avg_pool2d forward + backward",
        0.0,
        time(reps, || {
            let y = xl.avg_pool2d(opts, true).unwrap();
            y.backward_with_grad(&gy).unwrap();
        }),
    );
}

/// The convolutions of one small-input ResNet-18 training step (batch 32 of 3×32×32, as
/// `nabla-bench resnet18`): kernel time per pass, times the layer's count, and the total.
fn resnet(reps: usize, only: Option<usize>) {
    // [batch, in, out, height = width, kernel, stride, padding], count in the network.
    let layers: [([usize; 7], usize); 11] = [
        ([32, 3, 64, 32, 3, 1, 1], 1),
        ([32, 64, 64, 32, 3, 1, 1], 4),
        ([32, 64, 128, 32, 3, 2, 1], 1),
        ([32, 64, 128, 32, 1, 2, 0], 1),
        ([32, 128, 128, 16, 3, 1, 1], 3),
        ([32, 128, 256, 16, 3, 2, 1], 1),
        ([32, 128, 256, 16, 1, 2, 0], 1),
        ([32, 256, 256, 8, 3, 1, 1], 3),
        ([32, 256, 512, 8, 3, 2, 1], 1),
        ([32, 256, 512, 8, 1, 2, 0], 1),
        ([32, 512, 512, 4, 3, 1, 1], 3),
    ];
    let mut total = [0f64; 3];
    let mut rng = Generator::new(0);
    for (i, (dims, count)) in layers.into_iter().enumerate() {
        if only.is_some_and(|o| o != i) {
            continue;
        }
        let [n, c, o, hw, k, stride, pad] = dims;
        let g = ConvGeom::new([n, c, hw, hw], [o, k, k], [stride; 2], [pad; 2], [1, 1], 1);
        let out = g.oh;
        let v = |shape: &[usize], rng: &mut Generator| Tensor::randn(shape, DType::F32, rng).to_vec_f32();
        let (x, w, gy) = (
            v(&[n, c, hw, hw], &mut rng),
            v(&[o, c, k, k], &mut rng),
            v(&[n, o, out, out], &mut rng),
        );
        let (mut y, mut dx, mut dw) = (vec![0f32; gy.len()], vec![0f32; x.len()], vec![0f32; w.len()]);
        let t = [
            time(reps, || conv2d_forward(&g, &x, &w, None, &mut y)).0,
            time(reps, || conv2d_backward_input(&g, &gy, &w, None, &mut dx)).0,
            time(reps, || conv2d_backward_weight(&g, &x, &gy, &mut dw)).0,
        ];
        let gf = 2.0 * g.flops() as f64 / 1e6;
        println!(
            "{c:>3}→{o:<3} {k}×{k} s{stride} {hw:>2}×{hw:<2} ×{count}: fwd {:6.2} ms ({:4.0} GFLOP/s)  igrad {:6.2} ({:4.0})  wgrad {:6.2} ({:4.0})",
            t[0], gf / t[0], t[1], gf / t[1], t[2], gf / t[2]
        );
        for (s, v) in total.iter_mut().zip(t) {
            *s += v * count as f64;
        }
    }
    println!(
        "total (×count): fwd {:.1} ms, igrad {:.1} ms (the stem's is not needed), wgrad {:.1} ms",
        total[0], total[1], total[2]
    );
}

fn main() {
    let quick = std::env::args().any(|a| a == "quick");
    let reps = if quick { 5 } else { 11 };
    println!("rayon threads: {}", rayon::current_num_threads());
    if let Some(reps) = std::env::args().skip_while(|a| a != "fb").nth(1) {
        // Only forward + backward of the target layer, `reps` times: for `perf stat`.
        fb_only([64, 64, 64, 32, 3, 1, 1], reps.parse().unwrap_or(1));
        return;
    }
    // `gen`: the conv autoencoder's and DCGAN's convolutions at batch 128 (a transposed
    // convolution is the input gradient of the matching convolution).
    if std::env::args().any(|a| a == "gen") {
        let layers = [
            ("AE 3×3/2 1→16 28", [128, 1, 16, 28, 3, 2, 1]),
            ("AE 3×3/2 16→32 14", [128, 16, 32, 14, 3, 2, 1]),
            ("DCGAN 4×4/2 1→64 28", [128, 1, 64, 28, 4, 2, 1]),
            ("DCGAN 4×4/2 64→128 14", [128, 64, 128, 14, 4, 2, 1]),
        ];
        // `gen I REPS`: only the op's forward + backward of layer I, REPS times (for perf).
        let mut rest = std::env::args().skip_while(|a| a != "gen").skip(1);
        if let (Some(i), Some(r)) = (rest.next(), rest.next()) {
            let dims = layers[i.parse::<usize>().unwrap_or(0).min(layers.len() - 1)].1;
            fb_only(dims, r.parse().unwrap_or(1));
            return;
        }
        for (name, dims) in layers {
            conv(name, dims, 7);
        }
        return;
    }
    if std::env::args().any(|a| a == "target") {
        conv("3×3 64→64 (target)", [64, 64, 64, 32, 3, 1, 1], 7);
        return;
    }
    if std::env::args().any(|a| a == "resnet") {
        let only = std::env::args()
            .skip_while(|a| a != "resnet")
            .nth(1)
            .and_then(|a| a.parse().ok());
        resnet(reps, only);
        return;
    }
    if std::env::args().any(|a| a == "pool") {
        pool(reps);
        return;
    }
    let layers: [(&str, [usize; 7]); 6] = [
        ("3×3 64→64 (target)", [64, 64, 64, 32, 3, 1, 1]),
        ("3×3 3→64 (first layer)", [64, 3, 64, 32, 3, 1, 1]),
        ("1×1 64→128", [64, 64, 128, 32, 1, 1, 0]),
        ("3×3 128→128 stride 2", [64, 128, 128, 16, 3, 2, 1]),
        ("5×5 1→6 (LeNet conv1)", [64, 1, 6, 28, 5, 1, 2]),
        ("5×5 6→16 (LeNet conv2)", [64, 6, 16, 14, 5, 1, 0]),
    ];
    // `lenet`: both LeNet-5 layers at batch 64 (conv1's input gradient is not needed in
    // training, since its input is the data).
    if std::env::args().any(|a| a == "lenet") {
        for (name, dims) in &layers[4..] {
            conv(name, *dims, 3 * reps);
        }
        return;
    }
    // `layer N`: only that one.
    if let Some(i) = std::env::args().skip_while(|a| a != "layer").nth(1) {
        let (name, dims) = layers[i.parse::<usize>().unwrap_or(0).min(layers.len() - 1)];
        conv(name, dims, reps);
        return;
    }
    conv(layers[0].0, layers[0].1, reps);
    pool(reps);
    if !quick {
        for (name, dims) in &layers[1..] {
            conv(name, *dims, reps);
        }
    }
}
