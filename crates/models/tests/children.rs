//! Every model names each of its children once: every parameter that takes part in a
//! training pass (reached through the model's fields, whatever its listing says) appears
//! exactly once in the state dict, and every generator it draws from is found. A child
//! left out of a `children` listing fails here.

mod common;

use common::batch;
use nabla_core::{DType, Generator, Tensor};
use nabla_models::googlenet::GoogLeNet;
use nabla_models::{build, names, ModelConfig};
use nabla_nn::{Mode, Module, Param};
use std::collections::HashSet;

/// One config every model builds from: 3×32×32 inputs, small-input stems.
fn small_images() -> ModelConfig {
    ModelConfig {
        in_channels: 3,
        input_size: [32, 32],
        small_input: true,
        hidden: vec![64, 16],
        ..Default::default()
    }
}

/// A training-mode input for `name`.
fn input(name: &str) -> Tensor {
    match name {
        "generator" => Tensor::randn(&[2, 64], DType::F32, &mut Generator::new(0)),
        _ => batch(2, 3, 32, 32, 0),
    }
}

/// Each state-dict entry is a distinct `Param` under a distinct name, each generator a
/// distinct one under a distinct name.
fn named_once(label: &str, m: &dyn Module) {
    let (mut names, mut params) = (HashSet::new(), HashSet::new());
    m.visit("", &mut |n, p| {
        assert!(names.insert(n.to_string()), "{label}: {n} named twice");
        assert!(
            params.insert(p as *const Param),
            "{label}: the Param {n} is listed twice"
        );
    });
    let mut leaves: Vec<Tensor> = Vec::new();
    m.visit("", &mut |n, p| {
        let t = p.leaf();
        assert!(
            !leaves.iter().any(|l| l.shares_storage(&t)),
            "{label}: {n} shares a tensor"
        );
        leaves.push(t);
    });
    let (mut gen_names, mut gens) = (HashSet::new(), HashSet::new());
    m.visit_generators("", &mut |n, g| {
        assert!(gen_names.insert(n.to_string()), "{label}: generator {n} named twice");
        assert!(gens.insert(g as *const _), "{label}: generator {n} listed twice");
    });
}

/// Every leaf the training pass `out` reached is one of `m`'s named parameters: a child
/// missing from a listing still computes, so its weights get gradients the state dict
/// does not name.
fn every_gradient_is_named(label: &str, m: &dyn Module, out: &Tensor) {
    let grads = out.square().unwrap().mean_all().unwrap().backward().unwrap();
    let named = m
        .named_parameters()
        .iter()
        .filter(|(_, p)| grads.get(p).is_some())
        .count();
    assert!(named > 0, "{label}: no named parameter got a gradient");
    assert_eq!(
        grads.len(),
        named,
        "{label}: {} leaves got gradients but only {named} are named in the state dict",
        grads.len()
    );
}

/// Restoring the reported generator states and running the same training batch again
/// gives the same bits: a dropout the walk missed would draw a fresh mask.
fn every_generator_is_found(label: &str, m: &dyn Module, run: &dyn Fn() -> Tensor) {
    let states = m.generator_states();
    let first = run();
    m.load_generator_states(&states).unwrap();
    let again = run();
    assert!(
        first.to_vec_f64() == again.to_vec_f64(),
        "{label}: a generator was missed"
    );
}

#[test]
fn every_model_names_each_param_and_generator_once() {
    let cfg = small_images();
    let mut configs: Vec<(String, ModelConfig)> = names().iter().map(|n| (n.to_string(), cfg.clone())).collect();
    configs.push((
        "classloc".into(),
        ModelConfig {
            variant: Some("resnet18".into()),
            ..cfg.clone()
        },
    ));
    for (name, cfg) in &configs {
        let label = format!("{name} {:?}", cfg.variant);
        let m = build(name, cfg).unwrap_or_else(|e| panic!("{label}: {e}"));
        named_once(&label, &*m);
        let x = input(name);
        let out = m.forward(&x, Mode::Train).unwrap_or_else(|e| panic!("{label}: {e}"));
        every_gradient_is_named(&label, &*m, &out);
        every_generator_is_found(&label, &*m, &|| m.forward(&x, Mode::Train).unwrap());
    }
}

/// GoogLeNet's auxiliary heads only run in `forward_aux`: train through them too.
#[test]
fn googlenet_aux_heads_are_named_once() {
    let net = GoogLeNet::new(3, 10, true, true, &mut Generator::new(0)).unwrap();
    named_once("googlenet aux", &net);
    let x = batch(2, 3, 32, 32, 0);
    let run = || {
        let o = net.forward_aux(&x, Mode::Train).unwrap();
        let (a1, a2) = (o.aux1.unwrap(), o.aux2.unwrap());
        Tensor::cat(&[&o.logits, &a1, &a2], 1).unwrap()
    };
    every_gradient_is_named("googlenet aux", &net, &run());
    assert_eq!(net.generator_states().len(), 3, "dropout, aux1.dropout, aux2.dropout");
    every_generator_is_found("googlenet aux", &net, &run);
}
