//! End-to-end behaviour of the module system: names, composition, error paths, freezing,
//! training, and gradient checks of the dense layers. Convolution, pooling and upsampling
//! layers: tests/conv_layers.rs; state dicts on disk: tests/state_dict.rs; fusions:
//! tests/fusion.rs.

use nabla_core::gradcheck::gradcheck;
use nabla_core::{DType, Generator, Tensor};
use nabla_nn::*;

mod common;
use common::sgd_step;

/// A nabla-nn result as a core result, for closures handed to `gradcheck`.
fn core<T>(r: nabla_nn::Result<T>) -> nabla_core::Result<T> {
    r.map_err(|e| nabla_core::Error::invalid("test", e.to_string()))
}

/// A residual block written as a plain struct of modules.
struct Block {
    fc1: Linear,
    bn1: BatchNorm1d,
    fc2: Linear,
}

impl Block {
    fn new(width: usize, g: &mut Generator) -> Block {
        Block {
            fc1: Linear::with_options(width, width, LayerOptions::default().with_bias(false), g),
            bn1: BatchNorm1d::new(width),
            fc2: Linear::new(width, width, g),
        }
    }
}

impl Module for Block {
    fn forward(&self, x: &Tensor, mode: Mode) -> nabla_nn::Result<Tensor> {
        let y = self.fc1.forward_named("fc1", x, mode)?;
        let y = self.bn1.forward_named("bn1", &y, mode)?.relu()?;
        let y = self.fc2.forward_named("fc2", &y, mode)?;
        Ok(y.add(x)?.relu()?)
    }
    fn children(&self, c: &mut Children) {
        c.module("fc1", &self.fc1);
        c.module("bn1", &self.bn1);
        c.module("fc2", &self.fc2);
    }
}

/// `features` (a Sequential holding blocks) and a `head`.
struct Net {
    features: Sequential,
    head: Linear,
}

impl Net {
    fn new(g: &mut Generator) -> Net {
        Net {
            features: Sequential::new()
                .push(Linear::new(3, 8, g))
                .push(ReLU)
                .push(Block::new(8, g)),
            head: Linear::new(8, 2, g),
        }
    }
}

impl Module for Net {
    fn forward(&self, x: &Tensor, mode: Mode) -> nabla_nn::Result<Tensor> {
        let y = self.features.forward_named("features", x, mode)?;
        self.head.forward_named("head", &y, mode)
    }
    fn children(&self, c: &mut Children) {
        c.module("features", &self.features);
        c.module("head", &self.head);
    }
}

fn names(v: &[(String, Tensor)]) -> Vec<&str> {
    v.iter().map(|(n, _)| n.as_str()).collect()
}

#[test]
fn dotted_names_follow_pytorch() {
    let net = Net::new(&mut Generator::new(0));
    let sd = net.state_dict();
    assert_eq!(
        names(&sd),
        [
            "features.0.weight",
            "features.0.bias",
            "features.2.fc1.weight",
            "features.2.bn1.weight",
            "features.2.bn1.bias",
            "features.2.bn1.running_mean",
            "features.2.bn1.running_var",
            "features.2.bn1.num_batches_tracked",
            "features.2.fc2.weight",
            "features.2.fc2.bias",
            "head.weight",
            "head.bias",
        ]
    );
    assert_eq!(names(&net.named_buffers()).len(), 3);
    assert_eq!(net.named_parameters().len(), 9);
    assert_eq!(net.num_parameters(), 3 * 8 + 8 + 64 + 8 + 8 + 64 + 8 + 8 * 2 + 2);
    // The state dict shares storage with the model.
    assert!(sd[0].1.shares_storage(&net.features.get(0).unwrap().parameters()[0]));
}

#[test]
fn parameters_are_found_by_name() {
    let net = Net::new(&mut Generator::new(0));
    let w = net.parameter("features.2.fc1.weight").unwrap();
    assert!(w.shares_storage(&net.named_parameters()[2].1), "the leaf itself");
    assert_eq!(net.parameter("head.bias").unwrap().shape(), &[2]);
    let e = net.parameter("features.2.fc1.wieght").unwrap_err().to_string();
    assert!(e.contains("wieght") && e.contains("features.2.fc1.weight"), "{e}");
    let e = net.parameter("features.2.bn1.running_mean").unwrap_err().to_string();
    assert!(e.contains("buffer"), "{e}");
    assert!(net.parameter("nothing").is_err());
}

#[test]
fn errors_carry_the_module_path() {
    let net = Net::new(&mut Generator::new(0));
    let err = net
        .forward_named("net", &Tensor::ones(&[4, 5], DType::F32), Mode::Eval)
        .unwrap_err()
        .to_string();
    assert!(err.starts_with("net.features.0 (Linear 3→8): Linear:"), "{err}");
    assert!(err.contains("[4, 5]"), "{err}");
    // A failing op of a composite module (not of a child) is attributed to the composite.
    let seq = Sequential::new().push(Flatten::new(3, 5));
    let err = seq.forward_named("flat", &Tensor::ones(&[2, 3], DType::F32), Mode::Eval);
    assert!(err.unwrap_err().to_string().starts_with("flat.0 (Flatten): "));
}

#[test]
fn frozen_layers_get_no_gradient_and_stay_put() {
    let mut g = Generator::new(4);
    let net = Net::new(&mut g);
    let params = net.parameters();
    assert_eq!(net.set_trainable("features", false).unwrap(), 7);
    assert!(
        net.set_trainable("feature", false).is_err(),
        "a prefix must end at a dot"
    );
    assert_eq!(net.trainable_parameters().len(), 2);
    assert_eq!(net.num_trainable_parameters(), 8 * 2 + 2);
    let before: Vec<Vec<f32>> = params.iter().map(|p| p.to_vec().unwrap()).collect();
    let x = Tensor::randn(&[6, 3], DType::F32, &mut g);
    let loss = net
        .forward(&x, Mode::Train)
        .unwrap()
        .square()
        .unwrap()
        .mean_all()
        .unwrap();
    let grads = loss.backward().unwrap();
    let (frozen, head) = params.split_at(7);
    assert!(frozen.iter().all(|p| grads.get(p).is_none()));
    assert!(head.iter().all(|p| grads.get(p).is_some()));
    sgd_step(&params, &grads, 0.1);
    for (i, p) in params.iter().enumerate() {
        let changed = p.to_vec::<f32>().unwrap() != before[i];
        assert_eq!(changed, i >= 7, "parameter {i}");
    }
    // Unfreezing hands the same leaves back to the graph: the optimizer's handles work again.
    net.unfreeze();
    let loss = net
        .forward(&x, Mode::Train)
        .unwrap()
        .square()
        .unwrap()
        .mean_all()
        .unwrap();
    let grads = loss.backward().unwrap();
    assert!(params.iter().all(|p| grads.get(p).is_some()));
}

#[test]
fn mlp_learns_xor() {
    let mut g = Generator::new(1);
    let mlp = Sequential::new()
        .push(Linear::new(2, 8, &mut g))
        .push(Tanh)
        .push(Linear::new(8, 1, &mut g));
    let x = Tensor::from_vec(vec![0.0f32, 0.0, 0.0, 1.0, 1.0, 0.0, 1.0, 1.0], &[4, 2]).unwrap();
    let y = Tensor::from_vec(vec![0.0f32, 1.0, 1.0, 0.0], &[4, 1]).unwrap();
    let params = mlp.parameters();
    let mut first = None;
    let mut last = 0.0;
    for _ in 0..1500 {
        let loss = mlp
            .forward(&x, Mode::Train)
            .unwrap()
            .sub(&y)
            .unwrap()
            .square()
            .unwrap()
            .mean_all()
            .unwrap();
        last = loss.item().unwrap();
        first.get_or_insert(last);
        let grads = loss.backward().unwrap();
        sgd_step(&params, &grads, 0.2);
    }
    assert!(last < 0.01 && first.unwrap() > 0.1, "loss {first:?} → {last}");
    let pred = mlp.forward(&x, Mode::Eval).unwrap().to_vec_f64();
    let labels: Vec<bool> = pred.iter().map(|&p| p > 0.5).collect();
    assert_eq!(labels, [false, true, true, false], "{pred:?}");
}

#[test]
fn batch_norm_train_then_eval() {
    let bn = BatchNorm1d::new(2);
    let x = Tensor::from_vec(vec![1.0f32, 10.0, 3.0, 20.0, 5.0, 30.0], &[3, 2]).unwrap();
    let y = bn.forward(&x, Mode::Train).unwrap().to_vec_f64();
    // Channel 0 is [1, 3, 5]: mean 3, biased var 8/3.
    let s = (8.0f64 / 3.0 + 1e-5).sqrt();
    for (got, want) in y.iter().step_by(2).zip([-2.0 / s, 0.0, 2.0 / s]) {
        assert!((got - want).abs() < 1e-5, "{got} vs {want}");
    }
    let sd = bn.state_dict();
    // running = 0.9·init + 0.1·batch, with the unbiased variance (4 and 100).
    let (rm, rv) = (sd[2].1.to_vec_f64(), sd[3].1.to_vec_f64());
    assert!((rm[0] - 0.3).abs() < 1e-6 && (rm[1] - 2.0).abs() < 1e-6, "{rm:?}");
    assert!((rv[0] - (0.9 + 0.4)).abs() < 1e-6 && (rv[1] - (0.9 + 10.0)).abs() < 1e-5);
    assert_eq!(sd[4].1.item().unwrap(), 1.0);
    let e = bn.forward(&x, Mode::Eval).unwrap().to_vec_f64();
    assert!((e[0] - (1.0 - 0.3) / (1.3f64 + 1e-5).sqrt()).abs() < 1e-5);
    assert_eq!(sd[4].1.item().unwrap(), 1.0, "evaluation does not count batches");
    // Cumulative averaging (momentum None) after two batches is the plain mean of both.
    let cum = BatchNorm1d::with_options(
        2,
        BatchNormOptions {
            momentum: None,
            ..Default::default()
        },
    );
    cum.forward(&x, Mode::Train).unwrap();
    cum.forward(&x.mul_scalar(3.0).unwrap(), Mode::Train).unwrap();
    assert_eq!(cum.named_buffers()[0].1.to_vec::<f32>().unwrap(), vec![6.0, 40.0]);
    let err = bn.forward(&Tensor::ones(&[1, 2], DType::F32), Mode::Train).unwrap_err();
    assert!(err.to_string().contains("more than 1 value per channel"), "{err}");
    assert!(bn.forward(&Tensor::ones(&[4, 3], DType::F32), Mode::Train).is_err());
    assert_eq!(sd[4].1.item().unwrap(), 1.0, "rejected batches are not counted");
    assert!(BatchNorm2d::new(2).forward(&x, Mode::Train).is_err());
}

#[test]
fn dropout_is_seeded_and_off_in_eval() {
    let x = Tensor::ones(&[1000], DType::F32);
    let a = Dropout::new(0.5, &mut Generator::new(9));
    let b = Dropout::new(0.5, &mut Generator::new(9));
    let ya = a.forward(&x, Mode::Train).unwrap().to_vec_f64();
    assert_eq!(ya, b.forward(&x, Mode::Train).unwrap().to_vec_f64());
    let state = a.rng_state();
    let next = a.forward(&x, Mode::Train).unwrap().to_vec_f64();
    assert_ne!(next, ya, "each call draws a fresh mask");
    a.set_rng_state(state);
    assert_eq!(a.forward(&x, Mode::Train).unwrap().to_vec_f64(), next);
    assert_eq!(a.forward(&x, Mode::Eval).unwrap().to_vec_f64(), x.to_vec_f64());
    let bad = Dropout::new(1.5, &mut Generator::new(0));
    assert!(bad.forward(&x, Mode::Train).is_err());
}

#[test]
fn generator_states_name_every_dropout_and_restore_its_masks() {
    let g = &mut Generator::new(4);
    let inner = Sequential::new().push(Dropout::new(0.5, g)).push(ReLU);
    let net = Sequential::new()
        .push(Linear::new(8, 8, g))
        .push(Dropout::new(0.3, g))
        .push(inner);
    let x = Tensor::ones(&[4, 8], DType::F32);
    let states = net.generator_states();
    let names: Vec<&str> = states.iter().map(|(n, _)| n.as_str()).collect();
    assert_eq!(names, ["1", "2.0"]);
    let first = net.forward(&x, Mode::Train).unwrap().to_vec_f64();
    let second = net.forward(&x, Mode::Train).unwrap().to_vec_f64();
    assert_ne!(first, second, "fresh masks each step");
    net.load_generator_states(&states).unwrap();
    assert_eq!(net.forward(&x, Mode::Train).unwrap().to_vec_f64(), first);
    // A state list from another architecture is refused, naming what does not fit.
    let e = net.load_generator_states(&states[..1]).unwrap_err().to_string();
    assert!(e.contains("2.0"), "{e}");
    let mut extra = states.clone();
    extra.push(("9".into(), [1, 2, 3, 4]));
    assert!(net.load_generator_states(&extra).is_err());
    assert!(Linear::new(2, 2, g).generator_states().is_empty());
}

#[test]
fn activation_modules_match_their_formulas() {
    let x = Tensor::from_vec(vec![-30.0f64, -1.0, 0.5, 3.0, 25.0], &[5]).unwrap();
    let v = x.to_vec_f64();
    let check = |m: &dyn Module, f: &dyn Fn(f64) -> f64| {
        let y = m.forward(&x, Mode::Eval).unwrap().to_vec_f64();
        for (a, &xi) in y.iter().zip(&v) {
            assert!(
                (a - f(xi)).abs() < 1e-9 * (1.0 + f(xi).abs()),
                "{}: {a} vs {}",
                m.describe(),
                f(xi)
            );
        }
    };
    check(&ReLU, &|x| x.max(0.0));
    check(&LeakyReLU::new(0.2), &|x| if x > 0.0 { x } else { 0.2 * x });
    check(&ELU::default(), &|x| {
        if x > 0.0 {
            x
        } else {
            x.exp() - 1.0
        }
    });
    check(&Sigmoid, &|x| 1.0 / (1.0 + (-x).exp()));
    check(&Tanh, &f64::tanh);
    check(&Softplus::new(2.0, 20.0), &|x| {
        if 2.0 * x > 20.0 {
            x
        } else {
            (1.0 + (2.0 * x).exp()).ln() / 2.0
        }
    });
    let c = (2.0 / std::f64::consts::PI).sqrt();
    check(&GELU::new(Approximate::Tanh), &|x| {
        0.5 * x * (1.0 + (c * (x + 0.044715 * x.powi(3))).tanh())
    });
    let flat = Flatten::default()
        .forward(&Tensor::ones(&[2, 3, 4], DType::F32), Mode::Eval)
        .unwrap();
    assert_eq!(flat.shape(), &[2, 12]);
}

#[test]
fn gradcheck_every_layer() {
    let mut g = Generator::new(11);
    let mut r = |s: &[usize]| Tensor::randn(s, DType::F64, &mut g);
    let (x, w, b) = (r(&[3, 4]), r(&[2, 4]), r(&[2]));
    gradcheck(
        |t| core(Linear::from_parts(t[1].clone(), Some(t[2].clone())).and_then(|l| l.forward(&t[0], Mode::Train))),
        &[x.clone(), w, b],
    )
    .unwrap();
    let (x2, w2, b2) = (r(&[2, 3, 2, 2]), r(&[3]), r(&[3]));
    let bn_train = |t: &[Tensor]| {
        let bn = BatchNorm2d::from_parts(
            Some(t[1].clone()),
            Some(t[2].clone()),
            None,
            BatchNormOptions::default(),
        )?;
        bn.forward(&t[0], Mode::Train)
    };
    gradcheck(|t| core(bn_train(t)), &[x2.clone(), w2.clone(), b2.clone()]).unwrap();
    let (rm, rv) = (r(&[3]), r(&[3]).abs().unwrap().add_scalar(0.5).unwrap());
    let bn_eval = |t: &[Tensor]| {
        let running = Some((rm.clone(), rv.clone()));
        let bn = BatchNorm2d::from_parts(
            Some(t[1].clone()),
            Some(t[2].clone()),
            running,
            BatchNormOptions::default(),
        )?;
        bn.forward(&t[0], Mode::Eval)
    };
    gradcheck(|t| core(bn_eval(t)), &[x2.clone(), w2, b2]).unwrap();
    let x1 = r(&[5, 3, 2]);
    let bn1 = |t: &[Tensor]| {
        BatchNorm1d::from_parts(Some(t[1].clone()), None, None, BatchNormOptions::default())?
            .forward(&t[0], Mode::Train)
    };
    gradcheck(|t| core(bn1(t)), &[x1, r(&[3])]).unwrap();
    gradcheck(
        |t| core(LocalResponseNorm::with_params(3, 0.5, 0.75, 1.0).forward(&t[0], Mode::Train)),
        std::slice::from_ref(&x2),
    )
    .unwrap();
    // The same seed in every call gives the same mask, so finite differences see one function.
    gradcheck(
        |t| core(Dropout::with_generator(0.4, Generator::new(3)).forward(&t[0], Mode::Train)),
        std::slice::from_ref(&x),
    )
    .unwrap();
    let acts: Vec<Box<dyn Module>> = vec![
        Box::new(ReLU),
        Box::new(LeakyReLU::new(0.1)),
        Box::new(ELU::new(0.7)),
        Box::new(GELU::default()),
        Box::new(GELU::new(Approximate::Tanh)),
        Box::new(Sigmoid),
        Box::new(Tanh),
        Box::new(Softplus::new(1.5, 2.0)),
        Box::new(Flatten::new(0, 1)),
        Box::new(Identity),
    ];
    // Keep clear of the kinks (0 for the ReLUs, βx = threshold for Softplus).
    let xa = Tensor::from_vec(vec![-2.1f64, -0.7, -0.3, 0.4, 0.9, 1.6, 2.5, 3.0], &[2, 4]).unwrap();
    for m in &acts {
        gradcheck(|t| core(m.forward(&t[0], Mode::Train)), std::slice::from_ref(&xa))
            .unwrap_or_else(|e| panic!("{}: {e}", m.describe()));
    }
    let block = Block::new(3, &mut Generator::new(2));
    block.to_dtype(DType::F64).unwrap();
    gradcheck(|t| core(block.forward(&t[0], Mode::Train)), &[r(&[4, 3])]).unwrap();
}

#[test]
fn layers_are_built_in_the_dtype_their_options_say() {
    let mut g = Generator::new(0);
    let f64_layer = LayerOptions::default().with_dtype(DType::F64);
    let bn = BatchNormOptions {
        dtype: DType::F64,
        ..Default::default()
    };
    let net = Sequential::new()
        .push(Linear::with_options(3, 4, f64_layer, &mut g))
        .push(BatchNorm1d::with_options(4, bn))
        .push(Linear::with_options(4, 2, f64_layer.with_bias(false), &mut g));
    let dtypes: Vec<(String, DType)> = net.state_dict().into_iter().map(|(n, t)| (n, t.dtype())).collect();
    assert_eq!(dtypes.len(), 8, "{dtypes:?}");
    assert!(dtypes.iter().all(|(_, d)| *d == DType::F64), "{dtypes:?}");
    assert!(!dtypes.iter().any(|(n, _)| n == "2.bias"));
    let y = net.forward(&Tensor::ones(&[5, 3], DType::F64), Mode::Train).unwrap();
    assert_eq!((y.shape(), y.dtype()), (&[5, 2][..], DType::F64));
    // The same draws as in f32, kept in full precision (not f32 values widened).
    let a = Linear::with_options(3, 4, f64_layer, &mut Generator::new(7));
    let b = Linear::new(3, 4, &mut Generator::new(7));
    let (wa, wb) = (a.weight.leaf().to_vec_f64(), b.weight.leaf().to_vec_f64());
    assert!(wa.iter().zip(&wb).all(|(x, y)| (x - y).abs() < 1e-6), "{wa:?} {wb:?}");
    assert_ne!(wa, wb);
}

/// `to_dtype` after an optimizer took the parameters is refused with nothing changed (the
/// optimizer would update the old tensors); the optimizer keeps training the model. Before
/// any optimizer, it converts, and one made after trains the converted model.
#[test]
fn to_dtype_refuses_once_an_optimizer_holds_the_parameters() {
    use nabla_nn::optim::{Optimizer, Sgd, SgdOptions};
    let sgd = SgdOptions {
        lr: 0.1,
        ..Default::default()
    };
    let step = |m: &dyn Module, opt: &mut Sgd, dtype: DType| {
        let loss = m
            .forward(&Tensor::ones(&[2, 3], dtype), Mode::Train)
            .unwrap()
            .square()
            .unwrap();
        opt.step(&loss.mean_all().unwrap().backward().unwrap()).unwrap();
    };
    let net = Sequential::new().push(Linear::new(3, 2, &mut Generator::new(1)));
    let mut opt = Sgd::new(net.trainable_parameters(), sgd).unwrap();
    let e = net.to_dtype(DType::F64).unwrap_err().to_string();
    assert!(
        e.contains("0.weight") && e.contains("optimizer") && e.contains("LayerOptions"),
        "{e}"
    );
    assert!(
        net.state_dict().iter().all(|(_, t)| t.dtype() == DType::F32),
        "nothing changed"
    );
    let before = net.parameter("0.weight").unwrap().to_vec_f64();
    step(&net, &mut opt, DType::F32);
    assert_ne!(
        net.parameter("0.weight").unwrap().to_vec_f64(),
        before,
        "the optimizer still trains it"
    );
    assert!(net.to_dtype(DType::F32).is_ok(), "no conversion, nothing to refuse");

    let net = Sequential::new().push(Linear::new(3, 2, &mut Generator::new(1)));
    net.to_dtype(DType::F64).unwrap();
    let mut opt = Sgd::new(net.trainable_parameters(), sgd).unwrap();
    let before = net.parameter("0.weight").unwrap().to_vec_f64();
    step(&net, &mut opt, DType::F64);
    let w = net.parameter("0.weight").unwrap();
    assert_eq!(w.dtype(), DType::F64);
    assert_ne!(w.to_vec_f64(), before);
}
