use super::*;
use crate::optim::{ParamGroup, Sgd, SgdOptions};
use nabla_core::{DType, Tensor};

/// SGD over two groups with rates 0.1 and 0.02.
fn opt() -> Sgd {
    let p = |n| Tensor::zeros(&[n], DType::F32).set_requires_grad(true);
    let groups = vec![ParamGroup::new(vec![p(2)]), ParamGroup::new(vec![p(3)]).with_lr(0.02)];
    Sgd::with_groups(
        groups,
        SgdOptions {
            lr: 0.1,
            ..Default::default()
        },
    )
    .unwrap()
}

/// Step `epochs` times; the rates of each epoch, starting with epoch 0 (after construction).
fn run(s: &mut dyn LrScheduler, o: &mut Sgd, epochs: usize) -> Vec<Vec<f64>> {
    let mut out = vec![o.lrs()];
    let start = s.last_epoch();
    for e in 1..=epochs {
        s.step(o).unwrap();
        assert_eq!(s.last_epoch(), start + e as i64);
        assert_eq!(s.last_lr(), o.lrs().as_slice());
        out.push(o.lrs());
    }
    out
}

/// Compare with a closed form `f(epoch, base_lr)` for both groups.
fn check(got: &[Vec<f64>], f: impl Fn(i64, f64) -> f64) {
    for (e, lrs) in got.iter().enumerate() {
        for (&lr, base) in lrs.iter().zip([0.1, 0.02]) {
            let want = f(e as i64, base);
            assert!(
                (lr - want).abs() <= 1e-12 * want.abs().max(1e-3),
                "epoch {e}: {lr} vs {want} ({got:?})"
            );
        }
    }
}

#[test]
fn step_lr_matches_closed_form() {
    let mut o = opt();
    let mut s = StepLR::new(&mut o, 3, 0.5).unwrap();
    check(&run(&mut s, &mut o, 20), |e, b| b * 0.5f64.powi((e / 3) as i32));
    assert!(StepLR::new(&mut o, 0, 0.5).is_err());
}

#[test]
fn multistep_lr_matches_closed_form() {
    let mut o = opt();
    let mut s = MultiStepLR::new(&mut o, &[8, 2, 5, 5], 0.1).unwrap();
    let count = |e: i64| [2, 5, 5, 8].iter().filter(|&&m| m <= e).count() as i32;
    check(&run(&mut s, &mut o, 12), |e, b| b * 0.1f64.powi(count(e)));
}

#[test]
fn exponential_lr_matches_closed_form() {
    let mut o = opt();
    let mut s = ExponentialLR::new(&mut o, 0.9).unwrap();
    check(&run(&mut s, &mut o, 30), |e, b| b * 0.9f64.powi(e as i32));
}

#[test]
fn cosine_matches_closed_form_past_t_max() {
    let mut o = opt();
    let mut s = CosineAnnealingLR::new(&mut o, 7, 0.001).unwrap();
    let f = |e: i64, b: f64| 0.001 + (b - 0.001) * (1.0 + (PI * e as f64 / 7.0).cos()) / 2.0;
    let lrs = run(&mut s, &mut o, 30);
    check(&lrs, f);
    assert!((lrs[7][0] - 0.001).abs() < 1e-15 && (lrs[14][0] - 0.1).abs() < 1e-12);
    assert!(CosineAnnealingLR::new(&mut o, 0, 0.0).is_err());
}

#[test]
fn linear_warmup_matches_closed_form() {
    let mut o = opt();
    let mut s = LinearLR::new(&mut o, 0.25, 1.0, 4).unwrap();
    let f = |e: i64, b: f64| b * (0.25 + 0.75 * e.min(4) as f64 / 4.0);
    check(&run(&mut s, &mut o, 10), f);
    // Decaying instead of warming up.
    let mut o = opt();
    let mut s = LinearLR::new(&mut o, 1.0, 0.5, 5).unwrap();
    check(&run(&mut s, &mut o, 8), |e, b| b * (1.0 - 0.5 * e.min(5) as f64 / 5.0));
    assert!(LinearLR::new(&mut o, 0.0, 1.0, 5).is_err());
    assert!(LinearLR::new(&mut o, 0.5, 1.5, 5).is_err());
}

#[test]
fn chainable_form_carries_a_rate_set_by_hand() {
    let mut o = opt();
    let mut s = ExponentialLR::new(&mut o, 0.5).unwrap();
    o.set_lr(0, 1.0).unwrap();
    s.step(&mut o).unwrap();
    assert_eq!(o.lrs(), vec![0.5, 0.01]);
}

#[test]
fn state_round_trip_continues_the_sequence() {
    let mut o = opt();
    let mut a = CosineAnnealingLR::new(&mut o, 10, 0.0).unwrap();
    let straight = run(&mut a, &mut o, 15);

    let mut o = opt();
    let mut b = CosineAnnealingLR::new(&mut o, 10, 0.0).unwrap();
    run(&mut b, &mut o, 6);
    let (sched, optim) = (b.state_dict(), o.state_dict().unwrap());
    assert_eq!(sched["last_epoch"], 6.0);
    // Resume: fresh objects (the constructor's step 0 touches the rates), then load both.
    let mut o2 = opt();
    let mut c = CosineAnnealingLR::new(&mut o2, 10, 0.0).unwrap();
    o2.load_state_dict(&optim).unwrap();
    c.load_state_dict(&sched).unwrap();
    let resumed = run(&mut c, &mut o2, 9);
    assert_eq!(&straight[6..], &resumed[..], "bitwise the same rates");

    let mut bad = sched.clone();
    bad.insert("base_lr.2".into(), 0.1);
    assert!(c.load_state_dict(&bad).is_err());
    let mut bad = sched;
    bad.remove("last_lr.1");
    assert!(c.load_state_dict(&bad).unwrap_err().to_string().contains("last_lr.1"));
}

#[test]
fn scheduler_and_optimizer_must_agree_on_groups() {
    let mut two = opt();
    let mut s = StepLR::new(&mut two, 1, 0.5).unwrap();
    let mut one = Sgd::new(
        vec![Tensor::zeros(&[1], DType::F32).set_requires_grad(true)],
        SgdOptions::default(),
    )
    .unwrap();
    assert!(s.step(&mut one).unwrap_err().to_string().contains("2 parameter groups"));
}

fn plateau(opts: ReduceLROnPlateauOptions, metrics: &[f64]) -> Vec<f64> {
    let mut o = opt();
    let mut s = ReduceLROnPlateau::new(&o, opts).unwrap();
    metrics
        .iter()
        .map(|&m| {
            s.step(&mut o, m).unwrap();
            o.lr(0).unwrap()
        })
        .collect()
}

#[test]
fn plateau_min_mode_with_cooldown_and_floor() {
    let opts = ReduceLROnPlateauOptions {
        patience: 1,
        cooldown: 2,
        min_lr: vec![0.004],
        ..Default::default()
    };
    // best 1.0; 1.0 is no improvement (rel threshold), 2 bad epochs > patience → reduce;
    // then 2 cooldown epochs count nothing; then 2 more bad → reduce to the floor 0.004.
    let lrs = plateau(opts, &[1.0, 1.0, 0.99995, 5.0, 5.0, 5.0, 5.0, 5.0, 5.0]);
    let want = [0.1, 0.1, 0.01, 0.01, 0.01, 0.01, 0.004, 0.004, 0.004];
    for (g, w) in lrs.iter().zip(want) {
        assert!((g - w).abs() < 1e-15, "{lrs:?}");
    }
}

#[test]
fn plateau_thresholds_rel_and_abs() {
    let abs = ReduceLROnPlateauOptions {
        mode: PlateauMode::Max,
        patience: 0,
        threshold: 0.5,
        threshold_mode: ThresholdMode::Abs,
        ..Default::default()
    };
    // 1.0 improves on −∞; 1.4 is within 0.5 of it: bad → reduce at once (patience 0).
    let lrs = plateau(abs, &[1.0, 1.4, 2.0]);
    assert_eq!(lrs, vec![0.1, 0.1 * 0.1, 0.1 * 0.1]);
    let rel = ReduceLROnPlateauOptions {
        threshold: 0.1,
        patience: 0,
        ..Default::default()
    };
    // 0.95 is not below 1.0·0.9; 0.85 is below 1.0·0.9 (best is still 1.0).
    let lrs = plateau(rel, &[1.0, 0.95, 0.85]);
    assert_eq!(lrs, vec![0.1, 0.1 * 0.1, 0.1 * 0.1]);
    let o = opt();
    assert!(ReduceLROnPlateau::new(
        &o,
        ReduceLROnPlateauOptions {
            factor: 1.0,
            ..Default::default()
        }
    )
    .is_err());
    let three = ReduceLROnPlateauOptions {
        min_lr: vec![0.0; 3],
        ..Default::default()
    };
    assert!(ReduceLROnPlateau::new(&o, three).is_err());
}

#[test]
fn plateau_eps_skips_tiny_reductions_and_state_round_trips() {
    let opts = ReduceLROnPlateauOptions {
        patience: 0,
        eps: 0.05,
        ..Default::default()
    };
    let mut o = opt();
    let mut s = ReduceLROnPlateau::new(&o, opts.clone()).unwrap();
    for m in [1.0, 2.0] {
        s.step(&mut o, m).unwrap();
    }
    // Group 0 dropped 0.09 > eps; group 1 would drop 0.018 < eps and keeps its rate.
    assert_eq!(o.lrs(), vec![0.1 * 0.1, 0.02]);
    let saved = s.state_dict();
    let mut t = ReduceLROnPlateau::new(&o, opts).unwrap();
    t.load_state_dict(&saved).unwrap();
    assert_eq!((t.best(), t.num_bad_epochs(), t.last_epoch()), (1.0, 0, 2));
    let mut bad = saved;
    bad.insert("num_bad_epochs".into(), -1.0);
    assert!(t.load_state_dict(&bad).is_err());
}
