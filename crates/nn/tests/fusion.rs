//! `Sequential`'s fusions: a layer and the activation after it run as one op (batch norm in
//! training, convolutions, transposed convolutions and linear layers in any mode), with the
//! outputs and gradients of the layers called one by one.

use nabla_core::{DType, Generator, Tensor};
use nabla_nn::*;

mod common;
use common::sgd_step;

#[test]
fn sequential_fuses_convolutions_and_activation_bit_for_bit() {
    // Conv2d / ConvTranspose2d then ReLU or LeakyReLU run as one op in any mode: the same
    // outputs and parameter gradients as the layers called one by one, and a summary still
    // sees every child.
    let mut g = Generator::new(3);
    let mut leaf = |shape: &[usize]| Tensor::randn(shape, DType::F32, &mut g).set_requires_grad(true);
    let params = [leaf(&[4, 2, 3, 3]), leaf(&[4]), leaf(&[4, 3, 3, 3]), leaf(&[3])];
    let x = leaf(&[3, 2, 9, 8]);
    let gy = Tensor::randn(&[3, 3, 10, 8], DType::F32, &mut Generator::new(4));
    let (c, t) = (
        nabla_core::Conv2dOptions {
            stride: [2, 2],
            padding: [1, 1],
            ..Default::default()
        },
        nabla_core::ConvTranspose2dOptions {
            stride: [2, 2],
            padding: [1, 1],
            output_padding: [1, 1],
            ..Default::default()
        },
    );
    let acts: [fn() -> Box<dyn Module>; 3] = [
        || Box::new(ReLU),
        || Box::new(LeakyReLU::new(0.2)),
        || Box::new(LeakyReLU::new(-0.3)),
    ];
    for act in acts {
        let conv = Conv2d::from_parts(params[0].clone(), Some(params[1].clone()), c).unwrap();
        let convt = ConvTranspose2d::from_parts(params[2].clone(), Some(params[3].clone()), t).unwrap();
        let seq = Sequential::from(vec![Box::new(conv) as Box<dyn Module>, act(), Box::new(convt), act()]);
        let wrt: Vec<&Tensor> = params.iter().chain([&x]).collect();
        for mode in [Mode::Train, Mode::Eval] {
            let y = seq.forward(&x, mode).unwrap();
            let mut y0 = x.clone();
            for i in 0..4 {
                y0 = seq.get(i).unwrap().forward(&y0, mode).unwrap();
            }
            let what = seq.get(1).unwrap().describe();
            assert_eq!(y.to_vec_f32(), y0.to_vec_f32(), "{what}");
            let got = nabla_core::grad(&[&y], Some(&[&gy]), &wrt, false).unwrap();
            let want = nabla_core::grad(&[&y0], Some(&[&gy]), &wrt, false).unwrap();
            for (a, b) in got.iter().zip(&want) {
                assert_eq!(
                    a.as_ref().unwrap().to_vec_f32(),
                    b.as_ref().unwrap().to_vec_f32(),
                    "{what}"
                );
            }
        }
        let (_, calls) = summary::record(|| seq.forward(&x, Mode::Train).unwrap());
        assert_eq!(calls.len(), 4);
        // Linear then the activation, on a short input (the transposed-weight product).
        let lw = Tensor::randn(&[4, 18], DType::F32, &mut Generator::new(7)).set_requires_grad(true);
        let lin = Linear::from_parts(lw.clone(), Some(params[1].clone())).unwrap();
        let seq = Sequential::from(vec![Box::new(lin) as Box<dyn Module>, act()]);
        let x = Tensor::randn(&[40, 18], DType::F32, &mut Generator::new(5));
        let (y, y0) = (
            seq.forward(&x, Mode::Train).unwrap(),
            seq.get(1)
                .unwrap()
                .forward(&seq.get(0).unwrap().forward(&x, Mode::Train).unwrap(), Mode::Train)
                .unwrap(),
        );
        assert_eq!(y.to_vec_f32(), y0.to_vec_f32());
        let gy = Tensor::randn(&[40, 4], DType::F32, &mut Generator::new(6));
        let got = nabla_core::grad(&[&y], Some(&[&gy]), &[&lw], false).unwrap();
        let want = nabla_core::grad(&[&y0], Some(&[&gy]), &[&lw], false).unwrap();
        assert_eq!(
            got[0].as_ref().unwrap().to_vec_f32(),
            want[0].as_ref().unwrap().to_vec_f32()
        );
    }
}

#[test]
fn sequential_fuses_batch_norm_and_activation_bit_for_bit() {
    // A Sequential runs BatchNorm then ReLU/LeakyReLU as one op in training; the same
    // layers called one by one must give the same outputs, gradients, running statistics
    // and batch counts, over steps that change the weights.
    for act in [Box::new(ReLU) as Box<dyn Module>, Box::new(LeakyReLU::new(0.2))] {
        let fused = Sequential::from(vec![Box::new(BatchNorm2d::new(3)) as Box<dyn Module>, act]);
        let (bn, act) = (BatchNorm2d::new(3), fused.get(1).unwrap());
        let mut g = Generator::new(5);
        for step in 0..3 {
            let x = Tensor::randn(&[4, 3, 9, 10], DType::F32, &mut g)
                .mul_scalar(2.0)
                .unwrap();
            let y = fused.forward(&x, Mode::Train).unwrap();
            let y0 = act.forward(&bn.forward(&x, Mode::Train).unwrap(), Mode::Train).unwrap();
            assert_eq!(y.to_vec_f32(), y0.to_vec_f32(), "step {step}");
            let w = Tensor::randn(&[4, 3, 9, 10], DType::F32, &mut g);
            let grads = y.mul(&w).unwrap().sum_all().unwrap().backward().unwrap();
            let grads0 = y0.mul(&w).unwrap().sum_all().unwrap().backward().unwrap();
            for ((name, p), (_, p0)) in fused.named_parameters().iter().zip(bn.named_parameters()) {
                let (d, d0) = (grads.get(p).unwrap(), grads0.get(&p0).unwrap());
                assert_eq!(d.to_vec_f32(), d0.to_vec_f32(), "{name} step {step}");
                sgd_step(std::slice::from_ref(p), &grads, 0.1);
                sgd_step(&[p0], &grads0, 0.1);
            }
            for ((name, b), (_, b0)) in fused.named_buffers().iter().zip(bn.named_buffers()) {
                assert_eq!(b.to_vec_f64(), b0.to_vec_f64(), "{name} step {step}");
            }
        }
        // Evaluation, and a summary that records every child, run the layers one by one.
        let x = Tensor::randn(&[2, 3, 4, 4], DType::F32, &mut g);
        let y = fused.forward(&x, Mode::Eval).unwrap();
        let y0 = act.forward(&bn.forward(&x, Mode::Eval).unwrap(), Mode::Eval).unwrap();
        assert_eq!(y.to_vec_f32(), y0.to_vec_f32());
        let (_, calls) = summary::record(|| fused.forward(&x, Mode::Train).unwrap());
        assert_eq!(calls.len(), 2);
    }
    // The activation module is skipped when fused (here one that counts its calls).
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::sync::Arc;
    struct Counted(Arc<AtomicUsize>);
    impl Module for Counted {
        fn forward(&self, x: &Tensor, _: Mode) -> Result<Tensor> {
            self.0.fetch_add(1, Ordering::Relaxed);
            Ok(x.relu()?)
        }
        fn fusable_activation(&self) -> Option<nabla_core::Activation> {
            Some(nabla_core::Activation::Relu)
        }
    }
    let count = Arc::new(AtomicUsize::new(0));
    let seq = Sequential::new().push(BatchNorm2d::new(3)).push(Counted(count.clone()));
    let x = Tensor::randn(&[2, 3, 3, 3], DType::F32, &mut Generator::new(9));
    seq.forward(&x, Mode::Train).unwrap();
    assert_eq!(count.load(Ordering::Relaxed), 0, "fused in training");
    seq.forward(&x, Mode::Eval).unwrap();
    assert_eq!(count.load(Ordering::Relaxed), 1, "not in evaluation");
    // An error of the fused call names the batch norm child.
    let seq = Sequential::new().push(BatchNorm2d::new(3)).push(ReLU);
    let err = seq.forward_named("s", &Tensor::ones(&[2, 4, 3, 3], DType::F32), Mode::Train);
    assert!(err.unwrap_err().to_string().starts_with("s.0 (BatchNorm2d 3): "));
}
