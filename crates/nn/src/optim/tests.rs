use super::*;
use nabla_core::Generator;

fn leaf(v: &[f32]) -> Tensor {
    Tensor::from_slice(v, &[v.len()]).unwrap().set_requires_grad(true)
}

/// A gradient store holding `g` for `p`.
fn grads_for(pairs: &[(&Tensor, &[f32])]) -> Gradients {
    let mut gs = Gradients::default();
    for (p, g) in pairs {
        gs.insert(p, Tensor::from_slice(g, p.shape()).unwrap());
    }
    gs
}

fn close(a: &[f32], b: &[f64]) {
    assert_eq!(a.len(), b.len());
    for (x, y) in a.iter().zip(b) {
        assert!((*x as f64 - y).abs() <= 1e-6 + 1e-5 * y.abs(), "{a:?} vs {b:?}");
    }
}

#[test]
fn sgd_momentum_by_hand() {
    let p = leaf(&[1.0, -2.0]);
    let o = SgdOptions {
        lr: 0.1,
        momentum: 0.9,
        dampening: 0.5,
        weight_decay: 0.1,
        ..Default::default()
    };
    let mut opt = Sgd::new(vec![p.clone()], o).unwrap();
    // step 1: d = g + 0.1p = [0.6, -0.2]; b = d; p -= 0.1·b
    opt.step(&grads_for(&[(&p, &[0.5, 0.0])])).unwrap();
    close(&p.to_vec::<f32>().unwrap(), &[0.94, -1.98]);
    // step 2: d = [1 + 0.094, 1 − 0.198]; b = 0.9b + 0.5d; p -= 0.1·b
    opt.step(&grads_for(&[(&p, &[1.0, 1.0])])).unwrap();
    let (d0, d1) = (1.0 + 0.094, 1.0 - 0.198);
    let (b0, b1) = (0.9 * 0.6 + 0.5 * d0, 0.9 * -0.2 + 0.5 * d1);
    close(&p.to_vec::<f32>().unwrap(), &[0.94 - 0.1 * b0, -1.98 - 0.1 * b1]);
}

#[test]
fn sgd_nesterov_by_hand() {
    let p = leaf(&[1.0]);
    let o = SgdOptions {
        lr: 0.1,
        momentum: 0.5,
        nesterov: true,
        ..Default::default()
    };
    let mut opt = Sgd::new(vec![p.clone()], o).unwrap();
    opt.step(&grads_for(&[(&p, &[2.0])])).unwrap(); // b = 2, d = 2 + 1 = 3
    close(&p.to_vec::<f32>().unwrap(), &[0.7]);
    opt.step(&grads_for(&[(&p, &[2.0])])).unwrap(); // b = 1 + 2 = 3, d = 2 + 1.5
    close(&p.to_vec::<f32>().unwrap(), &[0.35]);
    let bad = SgdOptions {
        nesterov: true,
        ..Default::default()
    };
    assert!(Sgd::new(vec![p], bad).is_err());
}

#[test]
fn adam_first_steps_by_hand() {
    // After step 1, m̂ = g and v̂ = g², so the step is lr·g/(|g| + ε) ≈ lr·sign(g).
    let p = leaf(&[1.0, 1.0, 1.0]);
    let mut opt = Adam::new(
        vec![p.clone()],
        AdamOptions {
            lr: 0.01,
            ..Default::default()
        },
    )
    .unwrap();
    opt.step(&grads_for(&[(&p, &[3.0, -0.5, 0.0])])).unwrap();
    close(&p.to_vec::<f32>().unwrap(), &[0.99, 1.01, 1.0]);
    // Step 2 in f64 by the formula.
    let g2 = [1.0f64, 1.0, 1.0];
    let g1 = [3.0f64, -0.5, 0.0];
    opt.step(&grads_for(&[(&p, &[1.0, 1.0, 1.0])])).unwrap();
    let want: Vec<f64> = (0..3)
        .map(|i| {
            let m = 0.9 * 0.1 * g1[i] + 0.1 * g2[i];
            let v = 0.999 * 0.001 * g1[i] * g1[i] + 0.001 * g2[i] * g2[i];
            let p1 = [0.99, 1.01, 1.0][i];
            p1 - 0.01 / (1.0 - 0.81) * m / (v.sqrt() / (1.0 - 0.999f64.powi(2)).sqrt() + 1e-8)
        })
        .collect();
    close(&p.to_vec::<f32>().unwrap(), &want);
}

#[test]
fn adamw_decays_before_the_update_and_amsgrad_keeps_the_max() {
    let p = leaf(&[2.0]);
    let mut opt = AdamW::new(
        vec![p.clone()],
        AdamWOptions {
            lr: 0.1,
            weight_decay: 0.5,
            ..Default::default()
        },
    )
    .unwrap();
    opt.step(&grads_for(&[(&p, &[0.0])])).unwrap();
    // A zero gradient leaves only the decay: 2·(1 − 0.05).
    close(&p.to_vec::<f32>().unwrap(), &[1.9]);
    let q = Tensor::from_slice(&[0.0f64], &[1]).unwrap().set_requires_grad(true);
    let mut ams = Adam::new(
        vec![q.clone()],
        AdamOptions {
            lr: 0.1,
            amsgrad: true,
            ..Default::default()
        },
    )
    .unwrap();
    for g in [10.0, 0.1] {
        let mut gs = Gradients::default();
        gs.insert(&q, Tensor::from_slice(&[g], &[1]).unwrap());
        ams.step(&gs).unwrap();
    }
    let st = ams.state_dict().unwrap();
    let get = |n: &str| {
        st.tensors
            .iter()
            .find(|(k, _)| k == n)
            .unwrap()
            .1
            .to_vec::<f64>()
            .unwrap()[0]
    };
    let v2 = 0.999 * 0.001 * 100.0 + 0.001 * 0.01;
    assert!((get("state.0.exp_avg_sq") - v2).abs() < 1e-12);
    assert!((get("state.0.max_exp_avg_sq") - 0.1).abs() < 1e-12); // step 1's v
                                                                  // A step without gradients creates no state.
    let mut idle = Adam::new(vec![leaf(&[1.0])], AdamOptions::default()).unwrap();
    idle.step(&Gradients::default()).unwrap();
    assert!(idle.state_dict().unwrap().tensors.is_empty());
}

#[test]
fn rmsprop_centered_momentum_by_hand() {
    let p = Tensor::from_slice(&[1.0f64], &[1]).unwrap().set_requires_grad(true);
    let o = RMSpropOptions {
        lr: 0.1,
        alpha: 0.5,
        eps: 0.0,
        momentum: 0.5,
        centered: true,
        ..Default::default()
    };
    let mut opt = RMSprop::new(vec![p.clone()], o).unwrap();
    let mut gs = Gradients::default();
    gs.insert(&p, Tensor::from_slice(&[2.0f64], &[1]).unwrap());
    opt.step(&gs).unwrap();
    // s = 0.5·4 = 2, ḡ = 1, a = √(2 − 1) = 1, b = 2, p = 1 − 0.2
    assert!((p.item().unwrap() - 0.8).abs() < 1e-15);
    opt.step(&gs).unwrap();
    // s = 1 + 2 = 3, ḡ = 1.5, a = √(3 − 2.25), b = 1 + 2/a
    let b = 1.0 + 2.0 / 0.75f64.sqrt();
    assert!((p.item().unwrap() - (0.8 - 0.1 * b)).abs() < 1e-15);
}

#[test]
fn groups_have_their_own_lr_and_missing_grads_are_skipped() {
    let (a, b, c) = (leaf(&[1.0]), leaf(&[1.0]), leaf(&[1.0]));
    let groups = vec![
        ParamGroup::new(vec![a.clone(), c.clone()]),
        ParamGroup::new(vec![b.clone()]).with_lr(1.0).with_weight_decay(1.0),
    ];
    let mut opt = Sgd::with_groups(
        groups,
        SgdOptions {
            lr: 0.1,
            ..Default::default()
        },
    )
    .unwrap();
    opt.step(&grads_for(&[(&a, &[1.0]), (&b, &[1.0])])).unwrap();
    close(&a.to_vec::<f32>().unwrap(), &[0.9]);
    close(&b.to_vec::<f32>().unwrap(), &[-1.0]); // 1 − 1·(1 + 1·1)
    close(&c.to_vec::<f32>().unwrap(), &[1.0]);
    assert_eq!(opt.lrs(), vec![0.1, 1.0]);
    opt.set_lr(1, 0.5).unwrap();
    assert_eq!(opt.lr(1).unwrap(), 0.5);
    assert!(opt.set_lr(2, 0.5).is_err());
    assert!(opt.set_lr(0, -1.0).is_err());
    assert!(opt.lr(7).is_err());
}

#[test]
fn bad_configurations_are_errors() {
    let p = leaf(&[1.0]);
    assert!(Sgd::new(
        vec![p.clone()],
        SgdOptions {
            lr: -0.1,
            ..Default::default()
        }
    )
    .is_err());
    assert!(Sgd::new(vec![p.clone(), p.clone()], SgdOptions::default()).is_err());
    let nonleaf = p.mul_scalar(2.0).unwrap();
    let e = Adam::new(vec![nonleaf], AdamOptions::default()).unwrap_err();
    assert!(e.to_string().contains("not a leaf"), "{e}");
    assert!(Adam::new(
        vec![p.clone()],
        AdamOptions {
            betas: (1.0, 0.9),
            ..Default::default()
        }
    )
    .is_err());
    assert!(RMSprop::new(
        vec![p.clone()],
        RMSpropOptions {
            alpha: -1.0,
            ..Default::default()
        }
    )
    .is_err());
    // A gradient of the wrong shape is an error naming both shapes.
    let mut opt = Sgd::new(vec![p.clone()], SgdOptions::default()).unwrap();
    let mut gs = Gradients::default();
    gs.insert(&p, Tensor::zeros(&[2], DType::F32));
    let e = opt.step(&gs).unwrap_err().to_string();
    assert!(e.contains("[1]") && e.contains("[2]"), "{e}");
}

fn run_steps(opt: &mut dyn Optimizer, p: &Tensor, gen: &mut Generator, n: usize) {
    for _ in 0..n {
        let mut gs = Gradients::default();
        gs.insert(p, Tensor::randn(p.shape(), DType::F32, gen));
        opt.step(&gs).unwrap();
    }
}

fn copy_leaf(t: &Tensor) -> Tensor {
    Tensor::from_vec(t.to_vec::<f32>().unwrap(), t.shape())
        .unwrap()
        .set_requires_grad(true)
}

#[test]
fn state_round_trip_resumes_bitwise() {
    type Make = fn(Tensor) -> Box<dyn Optimizer>;
    let makers: [Make; 4] = [
        |p| {
            Box::new(
                Sgd::new(
                    vec![p],
                    SgdOptions {
                        lr: 0.1,
                        momentum: 0.9,
                        ..Default::default()
                    },
                )
                .unwrap(),
            )
        },
        |p| {
            Box::new(
                Adam::new(
                    vec![p],
                    AdamOptions {
                        amsgrad: true,
                        ..Default::default()
                    },
                )
                .unwrap(),
            )
        },
        |p| Box::new(AdamW::new(vec![p], AdamWOptions::default()).unwrap()),
        |p| {
            let o = RMSpropOptions {
                momentum: 0.5,
                centered: true,
                ..Default::default()
            };
            Box::new(RMSprop::new(vec![p], o).unwrap())
        },
    ];
    for make in makers {
        let init = Tensor::randn(&[2, 3], DType::F32, &mut Generator::new(5));
        // 7 steps straight.
        let straight = copy_leaf(&init);
        let mut a = make(straight.clone());
        run_steps(a.as_mut(), &straight, &mut Generator::new(9), 7);
        // 3 steps, save, a fresh optimizer over a fresh copy of the parameter, 4 more.
        let first = copy_leaf(&init);
        let mut gen = Generator::new(9);
        let mut b = make(first.clone());
        run_steps(b.as_mut(), &first, &mut gen, 3);
        let saved = b.state_dict().unwrap();
        drop(b);
        let second = copy_leaf(&first);
        let mut c = make(second.clone());
        c.load_state_dict(&saved).unwrap();
        run_steps(c.as_mut(), &second, &mut gen, 4);
        assert_eq!(straight.to_vec::<f32>().unwrap(), second.to_vec::<f32>().unwrap());
        assert_eq!(a.state_dict().unwrap().scalars, c.state_dict().unwrap().scalars);
    }
}

#[test]
fn saved_learning_rates_come_back() {
    let p = leaf(&[1.0]);
    let groups = vec![ParamGroup::new(vec![p.clone()]).with_lr(0.25)];
    let mut a = Sgd::with_groups(groups, SgdOptions::default()).unwrap();
    a.param_groups_mut().set_weight_decay(0, 0.5).unwrap();
    let mut b = Sgd::new(vec![p], SgdOptions::default()).unwrap();
    b.load_state_dict(&a.state_dict().unwrap()).unwrap();
    assert_eq!(b.lrs(), vec![0.25]);
    assert_eq!(b.param_groups().weight_decay(0).unwrap(), 0.5);
    a.set_lr(0, 0.125).unwrap();
    assert_eq!(a.state_dict().unwrap().scalars["group.0.lr"], 0.125);
}

#[test]
fn load_rejects_state_that_does_not_fit() {
    let p = leaf(&[1.0, 2.0]);
    let mut opt = Adam::new(vec![p.clone()], AdamOptions::default()).unwrap();
    opt.step(&grads_for(&[(&p, &[1.0, 1.0])])).unwrap();
    let good = opt.state_dict().unwrap();
    assert_eq!(good.scalars["state.0.step"], 1.0);
    assert_eq!(good.tensors.len(), 2);

    let q = leaf(&[1.0, 2.0, 3.0]);
    let mut other = Adam::new(vec![q.clone()], AdamOptions::default()).unwrap();
    let e = other.load_state_dict(&good).unwrap_err().to_string();
    assert!(e.contains("state.0.exp_avg"), "{e}");
    assert!(
        other.state_dict().unwrap().tensors.is_empty(),
        "a failed load changes nothing"
    );

    let mut missing = good.clone();
    missing.tensors.pop();
    assert!(opt
        .load_state_dict(&missing)
        .unwrap_err()
        .to_string()
        .contains("missing"));
    let mut extra = good.clone();
    extra.scalars.insert("group.1.lr".into(), 0.1);
    assert!(opt.load_state_dict(&extra).is_err());
    let mut sgd = Sgd::new(vec![p.clone()], SgdOptions::default()).unwrap();
    assert!(sgd.load_state_dict(&good).is_err(), "Adam buffers are not SGD state");
    opt.load_state_dict(&good).unwrap();
}

#[test]
fn clip_grad_norm_scales_to_max_norm() {
    let (a, b) = (leaf(&[3.0]), leaf(&[0.0, 4.0]));
    let mut gs = grads_for(&[(&a, &[3.0]), (&b, &[0.0, 4.0])]);
    let n = clip_grad_norm(&mut gs, &[a.clone(), b.clone()], 1.0).unwrap();
    assert_eq!(n, 5.0);
    let c = 1.0 / (5.0 + 1e-6);
    close(&gs.get(&a).unwrap().to_vec::<f32>().unwrap(), &[3.0 * c]);
    close(&gs.get(&b).unwrap().to_vec::<f32>().unwrap(), &[0.0, 4.0 * c]);
    // Below the limit nothing changes.
    let n = clip_grad_norm(&mut gs, &[a.clone(), b.clone()], 10.0).unwrap();
    assert!((n - 1.0).abs() < 1e-6);
    close(&gs.get(&a).unwrap().to_vec::<f32>().unwrap(), &[3.0 * c]);
    assert!(clip_grad_norm(&mut gs, &[a], -1.0).is_err());
}

#[test]
fn gradients_that_alias_the_parameter_or_are_strided() {
    // A gradient sharing the parameter's storage is read before the parameter is written.
    let p = leaf(&[1.0, -2.0]);
    let mut opt = Sgd::new(
        vec![p.clone()],
        SgdOptions {
            lr: 0.5,
            ..Default::default()
        },
    )
    .unwrap();
    let mut gs = Gradients::default();
    gs.insert(&p, p.detach());
    opt.step(&gs).unwrap();
    close(&p.to_vec::<f32>().unwrap(), &[0.5, -1.0]);
    // A transposed view as the gradient is read in the parameter's row-major order.
    let w = Tensor::from_slice(&[1.0f32, 2.0, 3.0, 4.0], &[2, 2])
        .unwrap()
        .set_requires_grad(true);
    let mut opt = Sgd::new(
        vec![w.clone()],
        SgdOptions {
            lr: 1.0,
            ..Default::default()
        },
    )
    .unwrap();
    let mut gs = Gradients::default();
    gs.insert(
        &w,
        Tensor::from_slice(&[1.0f32, 2.0, 3.0, 4.0], &[2, 2])
            .unwrap()
            .t()
            .unwrap(),
    );
    opt.step(&gs).unwrap();
    close(&w.to_vec::<f32>().unwrap(), &[0.0, -1.0, 1.0, 0.0]);
}

#[test]
fn large_parameters_updated_in_blocks_match_a_single_pass() {
    // 70,000 elements go over threads in blocks; the same values as two 35,000-element
    // parameters take the single pass. Both must agree bit for bit, for every optimizer.
    let n = 70_000;
    let vals: Vec<f32> = (0..n).map(|i| ((i * 37 % 101) as f32 - 50.0) / 25.0).collect();
    let grads: Vec<f32> = (0..n).map(|i| ((i * 53 % 89) as f32 - 44.0) / 30.0).collect();
    type Make = fn(Vec<Tensor>) -> Box<dyn Optimizer>;
    let make: [Make; 3] = [
        |p| {
            let o = SgdOptions {
                lr: 0.1,
                momentum: 0.9,
                weight_decay: 0.01,
                nesterov: true,
                ..Default::default()
            };
            Box::new(Sgd::new(p, o).unwrap())
        },
        |p| Box::new(Adam::new(p, AdamOptions::default()).unwrap()),
        |p| {
            Box::new(
                RMSprop::new(
                    p,
                    RMSpropOptions {
                        momentum: 0.5,
                        centered: true,
                        ..Default::default()
                    },
                )
                .unwrap(),
            )
        },
    ];
    for new in make {
        let big = leaf(&vals);
        let (lo, hi) = (leaf(&vals[..n / 2]), leaf(&vals[n / 2..]));
        let mut a = new(vec![big.clone()]);
        let mut b = new(vec![lo.clone(), hi.clone()]);
        for _ in 0..3 {
            a.step(&grads_for(&[(&big, &grads)])).unwrap();
            b.step(&grads_for(&[(&lo, &grads[..n / 2]), (&hi, &grads[n / 2..])]))
                .unwrap();
        }
        let mut split = lo.to_vec::<f32>().unwrap();
        split.extend(hi.to_vec::<f32>().unwrap());
        assert_eq!(big.to_vec::<f32>().unwrap(), split);
    }
}

#[test]
fn adam_and_adamw_share_one_options_struct_but_not_the_decay() {
    // PyTorch's defaults: the two differ only in the weight decay.
    let (a, w) = (AdamOptions::default(), AdamWOptions::default());
    assert_eq!((a.weight_decay, w.weight_decay), (0.0, 1e-2));
    assert_eq!((a.lr, a.betas, a.eps), (w.lr, w.betas, w.eps));
    // The same settings: Adam adds λp to the gradient (a step of about lr), AdamW shrinks p.
    let (p, q) = (leaf(&[2.0]), leaf(&[2.0]));
    let (lr, weight_decay) = (0.1, 0.1);
    let mut adam = Adam::new(
        vec![p.clone()],
        AdamOptions {
            lr,
            weight_decay,
            ..Default::default()
        },
    )
    .unwrap();
    let mut adamw = AdamW::new(
        vec![q.clone()],
        AdamWOptions {
            lr,
            weight_decay,
            ..Default::default()
        },
    )
    .unwrap();
    adam.step(&grads_for(&[(&p, &[0.0])])).unwrap();
    adamw.step(&grads_for(&[(&q, &[0.0])])).unwrap();
    close(&p.to_vec::<f32>().unwrap(), &[1.9]);
    close(&q.to_vec::<f32>().unwrap(), &[2.0 * (1.0 - 0.01)]);
    // Their checkpoints hold the same buffers.
    let names = |o: &dyn Optimizer| {
        o.state_dict()
            .unwrap()
            .tensors
            .into_iter()
            .map(|(k, _)| k)
            .collect::<Vec<_>>()
    };
    assert_eq!(names(&adam), names(&adamw));
}
