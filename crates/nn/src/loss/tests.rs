use super::*;
use nabla_core::gradcheck::gradcheck;
use nabla_core::Generator;

fn t64(v: &[f64], shape: &[usize]) -> Tensor {
    Tensor::from_slice(v, shape).unwrap()
}

fn near(a: f64, b: f64) {
    assert!((a - b).abs() <= 1e-12 * (1.0 + b.abs()), "{a} vs {b}");
}

#[test]
fn regression_losses_by_hand() {
    let x = t64(&[1.0, -2.0, 0.5, 3.0], &[2, 2]);
    let y = t64(&[0.0, 0.0, 1.0, 1.2], &[2, 2]);
    // d = [1, −2, −0.5, 1.8]
    near(
        mse_loss(&x, &y, Reduction::Mean).unwrap().item().unwrap(),
        (1.0 + 4.0 + 0.25 + 3.24) / 4.0,
    );
    near(l1_loss(&x, &y, Reduction::Sum).unwrap().item().unwrap(), 5.3);
    let s = smooth_l1_loss(&x, &y, 1.5, Reduction::None)
        .unwrap()
        .to_vec::<f64>()
        .unwrap();
    let want = [0.5 / 1.5, 2.0 - 0.75, 0.125 / 1.5, 1.8 - 0.75];
    s.iter().zip(want).for_each(|(a, b)| near(*a, b));
    let s0 = smooth_l1_loss(&x, &y, 0.0, Reduction::Mean).unwrap().item().unwrap();
    near(s0, 5.3 / 4.0);
    assert_eq!(mse_loss(&x, &y, Reduction::None).unwrap().shape(), &[2, 2]);
}

#[test]
fn cross_entropy_by_hand_with_smoothing_and_ignore() {
    let x = [1.0, 2.0, 0.5, -1.0, 0.0, 3.0];
    let logits = t64(&x, &[2, 3]);
    let lse = |r: &[f64]| r.iter().map(|v| v.exp()).sum::<f64>().ln();
    let logp: Vec<f64> = (0..6).map(|i| x[i] - lse(&x[i / 3 * 3..i / 3 * 3 + 3])).collect();
    let nll = [-logp[1], -logp[5]];
    let smooth = [-(logp[0] + logp[1] + logp[2]), -(logp[3] + logp[4] + logp[5])];
    let o = CrossEntropyOptions {
        label_smoothing: 0.3,
        ..Default::default()
    };
    let got = cross_entropy(&logits, &[1, 2], &o).unwrap().item().unwrap();
    near(got, (0..2).map(|i| 0.7 * nll[i] + 0.1 * smooth[i]).sum::<f64>() / 2.0);
    // Ignoring sample 1's class: the mean is over the one sample left.
    let o = CrossEntropyOptions {
        label_smoothing: 0.3,
        ignore_index: Some(2),
        ..Default::default()
    };
    near(
        cross_entropy(&logits, &[1, 2], &o).unwrap().item().unwrap(),
        0.7 * nll[0] + 0.1 * smooth[0],
    );
    let none = CrossEntropyOptions {
        reduction: Reduction::None,
        ignore_index: Some(2),
        ..Default::default()
    };
    let per = cross_entropy(&logits, &[1, 2], &none).unwrap().to_vec::<f64>().unwrap();
    near(per[0], nll[0]);
    assert_eq!(per[1], 0.0);
    // All ignored: NaN, as PyTorch's 0/0.
    assert!(nll_loss(&logits, &[2, 2], Reduction::Mean, Some(2))
        .unwrap()
        .item()
        .unwrap()
        .is_nan());
    // Probabilities: one-hot targets give the same loss as indices.
    let hot = Tensor::one_hot(&[1, 2], 3, DType::F64).unwrap();
    let by_probs = cross_entropy(&logits, &hot, &CrossEntropyOptions::default()).unwrap();
    near(by_probs.item().unwrap(), (nll[0] + nll[1]) / 2.0);
    // Unbatched [C] input with one index.
    let one = cross_entropy(
        &t64(&x[..3], &[3]),
        &[1],
        &CrossEntropyOptions {
            reduction: Reduction::None,
            ..Default::default()
        },
    )
    .unwrap();
    assert_eq!(one.shape(), &[] as &[usize]);
    near(one.item().unwrap(), nll[0]);
}

#[test]
fn spatial_cross_entropy_equals_flattened() {
    let mut g = Generator::new(3);
    let x = Tensor::randn(&[2, 4, 3], DType::F64, &mut g);
    let t = [0, 3, 1, 2, 2, 0];
    let a = cross_entropy(&x, &t, &CrossEntropyOptions::default())
        .unwrap()
        .item()
        .unwrap();
    let flat = x.permute(&[0, 2, 1]).unwrap().reshape([6, 4]).unwrap();
    let b = cross_entropy(&flat, &t, &CrossEntropyOptions::default())
        .unwrap()
        .item()
        .unwrap();
    near(a, b);
}

#[test]
fn binary_losses_by_hand() {
    let p = t64(&[0.2, 0.9, 0.0, 1.0], &[4]);
    let y = t64(&[1.0, 0.0, 1.0, 1.0], &[4]);
    let got = binary_cross_entropy(&p, &y, Reduction::None)
        .unwrap()
        .to_vec::<f64>()
        .unwrap();
    // log 0 is clamped at −100.
    let want = [-(0.2f64.ln()), -(0.1f64.ln()), 100.0, 0.0];
    got.iter()
        .zip(want)
        .for_each(|(a, b)| assert!((a - b).abs() < 1e-12, "{got:?}"));
    let x = t64(&[0.0, 2.0, -3.0], &[3]);
    let y = t64(&[1.0, 0.0, 0.5], &[3]);
    let got = binary_cross_entropy_with_logits(&x, &y, Reduction::None)
        .unwrap()
        .to_vec::<f64>()
        .unwrap();
    let sig = |v: f64| 1.0 / (1.0 + (-v).exp());
    for i in 0..3 {
        let (xv, yv) = ([0.0, 2.0, -3.0][i], [1.0, 0.0, 0.5][i]);
        let want = -(yv * sig(xv).ln() + (1.0 - yv) * (1.0 - sig(xv)).ln());
        near(got[i], want);
    }
}

#[test]
fn logistic_gradient_at_zero_is_sigmoid_minus_target() {
    let x = t64(&[0.0, 0.0], &[2]).set_requires_grad(true);
    let y = t64(&[1.0, 0.25], &[2]);
    let g = binary_cross_entropy_with_logits(&x, &y, Reduction::Sum)
        .unwrap()
        .backward()
        .unwrap();
    assert_eq!(g.get(&x).unwrap().to_vec::<f64>().unwrap(), vec![-0.5, 0.25]);
}

#[test]
fn gradchecks() {
    let mut g = Generator::new(11);
    let a = Tensor::randn(&[3, 4], DType::F64, &mut g);
    let b = Tensor::randn(&[3, 4], DType::F64, &mut g);
    for r in [Reduction::Mean, Reduction::Sum, Reduction::None] {
        gradcheck(|t| Ok(mse_loss(&t[0], &t[1], r).unwrap()), &[a.clone(), b.clone()]).unwrap();
        gradcheck(|t| Ok(l1_loss(&t[0], &t[1], r).unwrap()), &[a.clone(), b.clone()]).unwrap();
        gradcheck(
            |t| Ok(smooth_l1_loss(&t[0], &t[1], 0.7, r).unwrap()),
            &[a.clone(), b.clone()],
        )
        .unwrap();
        let o = CrossEntropyOptions {
            reduction: r,
            label_smoothing: 0.2,
            ignore_index: Some(1),
        };
        gradcheck(
            |t| Ok(cross_entropy(&t[0], &[0, 3, 1], &o).unwrap()),
            std::slice::from_ref(&a),
        )
        .unwrap();
        let probs = b.exp().unwrap();
        let probs = probs.div(&probs.sum(&[1], true).unwrap()).unwrap();
        let o = CrossEntropyOptions {
            reduction: r,
            label_smoothing: 0.1,
            ignore_index: None,
        };
        gradcheck(|t| Ok(cross_entropy(&t[0], &t[1], &o).unwrap()), &[a.clone(), probs]).unwrap();
        gradcheck(
            |t| Ok(nll_loss(&t[0], &[2, 2, 0], r, None).unwrap()),
            std::slice::from_ref(&a),
        )
        .unwrap();
        let p = a.sigmoid().unwrap().mul_scalar(0.9).unwrap().add_scalar(0.05).unwrap();
        let y = b.sigmoid().unwrap();
        gradcheck(|t| Ok(binary_cross_entropy(&t[0], &t[1], r).unwrap()), &[p, y.clone()]).unwrap();
        gradcheck(
            |t| Ok(binary_cross_entropy_with_logits(&t[0], &t[1], r).unwrap()),
            &[a.clone(), y],
        )
        .unwrap();
    }
}

#[test]
fn huge_logits_stay_finite() {
    let v = [1e4f32, -1e4, 0.0, 5e3, -1e4, 1e4];
    let x = Tensor::from_slice(&v, &[2, 3]).unwrap().set_requires_grad(true);
    let finite = |t: &Tensor| t.to_vec_f32().iter().all(|v| v.is_finite());
    let o = CrossEntropyOptions {
        label_smoothing: 0.1,
        ..Default::default()
    };
    let probs = Tensor::full(&[2, 3], 1.0 / 3.0, DType::F32);
    let y = Tensor::from_slice(&[1.0f32, 0.0, 1.0, 0.0, 1.0, 0.0], &[2, 3]).unwrap();
    let losses = [
        cross_entropy(&x, &[1, 2], &o).unwrap(),
        cross_entropy(&x, &probs, &CrossEntropyOptions::default()).unwrap(),
        binary_cross_entropy_with_logits(&x, &y, Reduction::Mean).unwrap(),
        binary_cross_entropy(&x.sigmoid().unwrap(), &y, Reduction::Mean).unwrap(),
    ];
    for l in losses {
        assert!(finite(&l), "{l}");
        let g = l.backward().unwrap();
        assert!(finite(g.get(&x).unwrap()), "{:?}", g.get(&x));
    }
    // A target class 2e4 (then 5e3) below the top logit costs exactly that.
    let l = cross_entropy(
        &x,
        &[1, 0],
        &CrossEntropyOptions {
            reduction: Reduction::None,
            ..Default::default()
        },
    );
    assert_eq!(l.unwrap().to_vec::<f32>().unwrap(), vec![2e4, 5e3]);
}

#[test]
fn bad_targets_are_clear_errors() {
    let x = Tensor::zeros(&[2, 3], DType::F32);
    let e = cross_entropy(&x, &[0, 3], &CrossEntropyOptions::default())
        .unwrap_err()
        .to_string();
    assert!(
        e.contains("cross_entropy") && e.contains("target 3 at position 1") && e.contains("3 classes"),
        "{e}"
    );
    let e = nll_loss(&x, &[0, 1, 2], Reduction::Mean, None).unwrap_err().to_string();
    assert!(
        e.contains("nll_loss") && e.contains("3 class indices for 2 samples"),
        "{e}"
    );
    let e = mse_loss(&x, &Tensor::zeros(&[3, 2], DType::F32), Reduction::Mean)
        .unwrap_err()
        .to_string();
    assert!(
        e.contains("mse_loss") && e.contains("[2, 3]") && e.contains("[3, 2]"),
        "{e}"
    );
    let e = l1_loss(&x, &Tensor::zeros(&[2, 3], DType::F64), Reduction::Mean)
        .unwrap_err()
        .to_string();
    assert!(e.contains("l1_loss") && e.contains("dtype"), "{e}");
    let probs = Tensor::zeros(&[2, 4], DType::F32);
    assert!(cross_entropy(&x, &probs, &CrossEntropyOptions::default()).is_err());
    let o = CrossEntropyOptions {
        label_smoothing: 1.5,
        ..Default::default()
    };
    assert!(cross_entropy(&x, &[0, 0], &o).is_err());
    let e = binary_cross_entropy(&x.add_scalar(1.5).unwrap(), &x, Reduction::Mean)
        .unwrap_err()
        .to_string();
    assert!(e.contains("[0, 1]") && e.contains("1.5"), "{e}");
    assert!(smooth_l1_loss(&x, &x, -1.0, Reduction::Mean).is_err());
    assert!(cross_entropy(&Tensor::scalar(1.0f32), &[0], &CrossEntropyOptions::default()).is_err());
}

/// Cross entropy at the training shape, forward and backward:
/// `cargo test --release -p nabla-nn cross_entropy_bench -- --ignored --nocapture`.
#[test]
#[ignore]
fn cross_entropy_bench() {
    use nabla_core::{DType, Generator};
    use std::time::Instant;
    let x = Tensor::randn(&[64, 10], DType::F32, &mut Generator::new(1)).set_requires_grad(true);
    let t: Vec<usize> = (0..64).map(|i| (i * 7) % 10).collect();
    let o = CrossEntropyOptions::default();
    let best = |f: &mut dyn FnMut()| {
        (0..2000)
            .map(|_| {
                let s = Instant::now();
                f();
                s.elapsed().as_secs_f64() * 1e6
            })
            .fold(f64::INFINITY, f64::min)
    };
    let fwd = best(&mut || drop(cross_entropy(&x, &t, &o).unwrap()));
    let both = best(&mut || drop(cross_entropy(&x, &t, &o).unwrap().backward().unwrap()));
    println!("cross_entropy [64, 10]: forward {fwd:.2} us, forward + backward {both:.2} us");
}
