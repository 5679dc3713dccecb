use super::*;
use crate::loss::{cross_entropy, CrossEntropyOptions};
use crate::optim::{clip_grad_norm, AdamW, AdamWOptions, Sgd, SgdOptions};
use crate::safetensors_io::save_tensors;
use crate::scheduler::{CosineAnnealingLR, LrScheduler, ReduceLROnPlateau, ReduceLROnPlateauOptions};
use nabla_core::DType;

fn temp(name: &str) -> std::path::PathBuf {
    std::env::temp_dir().join(format!("nabla-ckpt-{name}-{}.safetensors", std::process::id()))
}

/// A tiny classifier `x·W + b` trained with AdamW, a cosine schedule, clipping, random
/// batches and random input dropout, so every piece of state matters for the next step.
struct Run {
    w: Tensor,
    b: Tensor,
    opt: AdamW,
    sched: CosineAnnealingLR,
    rng: Generator,
    step: u64,
}

fn data() -> (Tensor, Vec<usize>) {
    let mut g = Generator::new(1);
    let x = Tensor::randn(&[16, 3], DType::F32, &mut g);
    let y = (0..16).map(|_| g.below(4) as usize).collect();
    (x, y)
}

impl Run {
    fn new(init_seed: u64) -> Run {
        let mut g = Generator::new(init_seed);
        let w = Tensor::randn(&[3, 4], DType::F32, &mut g).set_requires_grad(true);
        let b = Tensor::zeros(&[4], DType::F32).set_requires_grad(true);
        let o = AdamWOptions {
            lr: 0.05,
            ..Default::default()
        };
        let mut opt = AdamW::new(vec![w.clone(), b.clone()], o).unwrap();
        let sched = CosineAnnealingLR::new(&mut opt, 7, 0.001).unwrap();
        Run {
            w,
            b,
            opt,
            sched,
            rng: Generator::new(99),
            step: 0,
        }
    }

    fn named(&self) -> Vec<(String, Tensor)> {
        vec![("weight".into(), self.w.clone()), ("bias".into(), self.b.clone())]
    }

    fn train(&mut self, steps: usize, (x, y): &(Tensor, Vec<usize>)) {
        for _ in 0..steps {
            let idx: Vec<usize> = (0..5).map(|_| self.rng.below(16) as usize).collect();
            let labels: Vec<usize> = idx.iter().map(|&i| y[i]).collect();
            let keep = Tensor::bernoulli(&[5, 3], 0.8, DType::F32, &mut self.rng).unwrap();
            let xb = x.index_select(0, &idx).unwrap().mul(&keep).unwrap();
            let logits = xb.matmul(&self.w).unwrap().add(&self.b).unwrap();
            let o = CrossEntropyOptions {
                label_smoothing: 0.1,
                ..Default::default()
            };
            let mut grads = cross_entropy(&logits, &labels, &o).unwrap().backward().unwrap();
            clip_grad_norm(&mut grads, &[self.w.clone(), self.b.clone()], 0.5).unwrap();
            self.opt.step(&grads).unwrap();
            self.sched.step(&mut self.opt).unwrap();
            self.step += 1;
        }
    }

    fn bits(&self) -> Vec<u32> {
        let mut v = self.w.to_vec::<f32>().unwrap();
        v.extend(self.b.to_vec::<f32>().unwrap());
        v.into_iter().map(f32::to_bits).collect()
    }
}

#[test]
fn resumed_training_is_bitwise_the_uninterrupted_run() {
    let (n, k) = (11, 4);
    let d = data();
    let mut straight = Run::new(5);
    straight.train(n, &d);

    let path = temp("resume");
    {
        let mut first = Run::new(5);
        first.train(k, &d);
        let mut ck = Checkpoint::capture(&first.named(), &first.opt, 0, first.step).unwrap();
        ck.scheduler = first.sched.state_dict();
        ck.rng = Some(first.rng.state());
        ck.save(&path).unwrap();
        // The capture is a copy: training on does not change it.
        first.train(1, &d);
    }
    // A fresh process: other initial weights, fresh optimizer and scheduler, then restore
    // (scheduler first, then the optimizer's rates and buffers).
    let resume = |restore_rng: bool| {
        let mut r = Run::new(6);
        let ck = Checkpoint::load(&path).unwrap();
        ck.restore_model(&r.named()).unwrap();
        r.sched.load_state_dict(&ck.scheduler).unwrap();
        r.opt.load_state_dict(&ck.optimizer).unwrap();
        if restore_rng {
            r.rng = ck.generator().unwrap();
        }
        r.step = ck.step;
        r.train(n - k, &d);
        r
    };
    let resumed = resume(true);
    assert_eq!(resumed.bits(), straight.bits());
    assert_eq!(resumed.opt.lrs(), straight.opt.lrs());
    assert_eq!(resumed.sched.last_epoch(), straight.sched.last_epoch());
    let (a, b) = (resumed.opt.state_dict().unwrap(), straight.opt.state_dict().unwrap());
    assert_eq!(a.scalars, b.scalars);
    for ((na, ta), (nb, tb)) in a.tensors.iter().zip(&b.tensors) {
        assert_eq!((na, ta.to_vec::<f32>().unwrap()), (nb, tb.to_vec::<f32>().unwrap()));
    }
    // Every piece matters: without the generator's state the run goes elsewhere.
    assert_ne!(resume(false).bits(), straight.bits());
    std::fs::remove_file(&path).ok();
}

#[test]
fn every_field_round_trips_exactly() {
    let w = Tensor::from_slice(&[0.1f64, -3.5e-300, 7.0], &[3]).unwrap();
    let mut ck = Checkpoint {
        model: vec![("w".into(), w), ("s".into(), Tensor::scalar(2.5f32))],
        epoch: 3,
        step: u64::MAX >> 11,
        rng: Some([0, 1, u64::MAX, 12345678901234567890]),
        ..Default::default()
    };
    ck.optimizer.scalars.insert("group.0.lr".into(), 0.1 + 0.2);
    ck.optimizer
        .tensors
        .push(("state.0.exp_avg".into(), Tensor::from_slice(&[1e-40f32], &[1]).unwrap()));
    let opt = Sgd::new(
        vec![Tensor::zeros(&[1], DType::F32).set_requires_grad(true)],
        SgdOptions::default(),
    )
    .unwrap();
    let plateau = ReduceLROnPlateau::new(&opt, ReduceLROnPlateauOptions::default()).unwrap();
    ck.scheduler = plateau.state_dict(); // best = +inf
    ck.scheduler.insert("x".into(), -0.0);
    ck.scheduler.insert("tiny".into(), f64::MIN_POSITIVE / 3.0);
    ck.extra.insert("note".into(), "run 7, β = 0.9".into());
    let path = temp("fields");
    ck.save(&path).unwrap();
    let back = Checkpoint::load(&path).unwrap();
    std::fs::remove_file(&path).ok();
    assert_eq!(
        (back.epoch, back.step, back.rng, &back.extra),
        (3, ck.step, ck.rng, &ck.extra)
    );
    let bits = |m: &BTreeMap<String, f64>| m.iter().map(|(k, v)| (k.clone(), v.to_bits())).collect::<Vec<_>>();
    assert_eq!(bits(&back.scheduler), bits(&ck.scheduler));
    assert_eq!(bits(&back.optimizer.scalars), bits(&ck.optimizer.scalars));
    assert_eq!(back.model[0].1.to_vec::<f64>().unwrap(), vec![0.1, -3.5e-300, 7.0]);
    assert_eq!(back.model[1].1.shape(), &[] as &[usize]);
    assert_eq!(back.optimizer.tensors[0].1.to_vec::<f32>().unwrap(), vec![1e-40]);
}

#[test]
fn a_diverged_model_never_replaces_a_good_checkpoint() {
    let path = temp("nan");
    let good = Checkpoint {
        model: vec![("w".into(), Tensor::scalar(1.0f32))],
        ..Default::default()
    };
    good.save(&path).unwrap();
    let nan = Checkpoint {
        model: vec![("w".into(), Tensor::from_slice(&[0.0f32, f32::NAN], &[2]).unwrap())],
        step: 9,
        ..Default::default()
    };
    let e = nan.save(&path).unwrap_err().to_string();
    assert!(e.contains("model tensor w") && e.contains("element 1"), "{e}");
    let back = Checkpoint::load(&path).unwrap();
    assert_eq!((back.step, back.model[0].1.item().unwrap()), (0, 1.0));
    std::fs::remove_file(&path).ok();
}

#[test]
fn foreign_or_damaged_files_are_refused() {
    let path = temp("foreign");
    let t = vec![("model.w".to_string(), Tensor::scalar(1.0f32))];
    let meta = |pairs: &[(&str, &str)]| pairs.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect();
    save_tensors(&path, &t, &meta(&[])).unwrap();
    assert!(Checkpoint::load(&path)
        .unwrap_err()
        .to_string()
        .contains("not a nabla training checkpoint"));
    let base = [("format", FORMAT), ("epoch", "1"), ("step", "2")];
    let cases: [(&[(&str, &str)], &str); 4] = [
        (&[("rng", "1,2,3")], "rng"),
        (&[("optim.group.0.lr", "fast")], "not a number"),
        (&[("colour", "blue")], "unexpected metadata"),
        (&[("epoch", "-1")], "whole number"),
    ];
    for (extra, want) in cases {
        let mut m: BTreeMap<String, String> = meta(&base);
        m.extend(meta(extra));
        save_tensors(&path, &t, &m).unwrap();
        let e = Checkpoint::load(&path).unwrap_err().to_string();
        assert!(e.contains(want), "{e}");
    }
    save_tensors(&path, &[("weights".to_string(), Tensor::scalar(1.0f32))], &meta(&base)).unwrap();
    assert!(Checkpoint::load(&path)
        .unwrap_err()
        .to_string()
        .contains("unexpected tensor"));
    std::fs::remove_file(&path).ok();
}

#[test]
fn restore_model_checks_everything_before_writing() {
    let ck = Checkpoint {
        model: vec![
            ("a".into(), Tensor::scalar(1.0f32)),
            ("b".into(), Tensor::ones(&[2], DType::F32)),
        ],
        ..Default::default()
    };
    let (a, b) = (Tensor::scalar(5.0f32), Tensor::zeros(&[3], DType::F32));
    let e = ck
        .restore_model(&[("a".into(), a.clone()), ("b".into(), b.clone())])
        .unwrap_err()
        .to_string();
    assert!(e.contains("b: checkpoint has [2]"), "{e}");
    assert_eq!(a.item().unwrap(), 5.0, "nothing written");
    let e = ck.restore_model(&[("a".into(), a.clone())]).unwrap_err().to_string();
    assert!(e.contains("b: in the checkpoint but not in the model"), "{e}");
    let b2 = Tensor::zeros(&[2], DType::F32);
    ck.restore_model(&[("a".into(), a.clone()), ("b".into(), b2.clone())])
        .unwrap();
    assert_eq!((a.item().unwrap(), b2.to_vec::<f32>().unwrap()), (1.0, vec![1.0, 1.0]));
}
