//! Memory and work of the backward pass, seen from inside the crate: saved buffers are
//! freed, `grad` skips branches it does not need, and training loops do not leak graph.

use super::{Edge, GradMeta};
use crate::{grad, no_grad, BackwardOptions, DType, Generator, Result, Tensor};
use std::collections::HashSet;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Weak};

fn randn(shape: &[usize], seed: u64) -> Tensor {
    Tensor::randn(shape, DType::F64, &mut Generator::new(seed))
}

/// `2·t`, recorded as a test-only op whose backward counts its calls.
fn counted(t: &Tensor, calls: &Arc<AtomicUsize>) -> Result<Tensor> {
    let out = t.detach().mul_scalar(2.0)?;
    let calls = calls.clone();
    Ok(out.record("counted", &[t], move |g, _| {
        calls.fetch_add(1, Ordering::SeqCst);
        Ok(vec![Some(g.mul_scalar(2.0)?)])
    }))
}

/// Weak handles on every graph value behind `t`.
fn graph_metas(t: &Tensor) -> Vec<Weak<GradMeta>> {
    let mut out = Vec::new();
    let mut seen = HashSet::new();
    let mut stack: Vec<Arc<GradMeta>> = t.grad_meta().into_iter().cloned().collect();
    while let Some(m) = stack.pop() {
        if !seen.insert(m.id) {
            continue;
        }
        out.push(Arc::downgrade(&m));
        if let Some(node) = &m.node {
            for e in &node.inputs {
                if let Edge::Grad(i) = e {
                    stack.push(i.clone());
                }
            }
        }
    }
    out
}

#[test]
fn backward_frees_saved_buffers() -> Result<()> {
    let x = randn(&[3, 4], 1).set_requires_grad(true);
    let w = randn(&[4, 2], 2).set_requires_grad(true);
    let build = || -> Result<(Tensor, Vec<Weak<std::sync::RwLock<crate::Buffer>>>)> {
        // h is saved by exp (its output) and matmul (an input), z by tanh (its input),
        // t by tanh (its output).
        let h = x.exp()?;
        let z = h.matmul(&w)?;
        let t = z.tanh()?;
        let weak = vec![h.storage_weak(), z.storage_weak(), t.storage_weak()];
        Ok((t.sum_all()?, weak))
    };

    let (loss, weak) = build()?;
    assert!(
        weak.iter().all(|w| w.upgrade().is_some()),
        "the graph keeps saved values alive"
    );
    let grads = loss.backward()?;
    assert_eq!(grads.len(), 2);
    assert!(
        weak.iter().all(|w| w.upgrade().is_none()),
        "backward freed every saved buffer"
    );
    drop(loss);

    // retain_graph keeps them for a second pass, which (without retain) frees them.
    let (loss, weak) = build()?;
    let keep = BackwardOptions {
        create_graph: false,
        retain_graph: true,
    };
    loss.backward_with(&Tensor::ones_like(&loss), keep)?;
    assert!(
        weak.iter().all(|w| w.upgrade().is_some()),
        "retain_graph keeps saved values"
    );
    loss.backward()?;
    assert!(weak.iter().all(|w| w.upgrade().is_none()));
    Ok(())
}

#[test]
fn grad_does_no_work_on_branches_that_cannot_reach_the_inputs() -> Result<()> {
    let x = Tensor::from_vec(vec![1.0f64, -2.0, 3.0], &[3])?.set_requires_grad(true);
    let z = Tensor::from_vec(vec![0.5f64, 0.25, 4.0], &[3])?.set_requires_grad(true);
    let calls = Arc::new(AtomicUsize::new(0));

    // A separate branch: y = Σx² + Σ counted(z).
    let y = x.square()?.sum_all()?.add(&counted(&z, &calls)?.sum_all()?)?;
    let gx = grad(&[&y], None, &[&x], false)?[0].clone();
    assert_eq!(gx.map(|g| g.to_vec_f64()), Some(vec![2.0, -4.0, 6.0]));
    assert_eq!(calls.load(Ordering::SeqCst), 0, "the z branch must not run");
    let gz = grad(&[&y], None, &[&z], false)?[0].clone();
    assert_eq!(gz.map(|g| g.to_vec_f64()), Some(vec![2.0; 3]));
    assert_eq!(calls.load(Ordering::SeqCst), 1, "asked for z, it runs once");

    // The other operand of an op on the path: mul runs, the branch behind it does not.
    calls.store(0, Ordering::SeqCst);
    let y = x.mul(&counted(&z, &calls)?)?.sum_all()?;
    let gx = grad(&[&y], None, &[&x], false)?[0].clone();
    assert_eq!(gx.map(|g| g.to_vec_f64()), Some(vec![1.0, 0.5, 8.0]));
    assert_eq!(calls.load(Ordering::SeqCst), 0);
    y.backward()?;
    assert_eq!(calls.load(Ordering::SeqCst), 1, "a full backward does run it");

    // Below a requested intermediate nothing runs.
    calls.store(0, Ordering::SeqCst);
    let h = counted(&x, &calls)?;
    let y = h.exp()?.sum_all()?;
    let gh = grad(&[&y], None, &[&h], false)?[0].clone();
    let want: Vec<f64> = [2.0f64, -4.0, 6.0].iter().map(|v| v.exp()).collect();
    assert_eq!(gh.map(|g| g.to_vec_f64()), Some(want));
    assert_eq!(calls.load(Ordering::SeqCst), 0);
    Ok(())
}

#[test]
fn training_loop_does_not_grow_the_graph() -> Result<()> {
    let mut gen = Generator::new(5);
    let x = Tensor::randn(&[16, 3], DType::F64, &mut gen);
    let w_true = Tensor::from_vec(vec![0.5f64, -1.0, 0.25], &[3, 1])?;
    let t = x.matmul(&w_true)?.add_scalar(0.1)?.tanh()?;
    let w = Tensor::zeros(&[3, 1], DType::F64).set_requires_grad(true);
    let b = Tensor::zeros(&[1], DType::F64).set_requires_grad(true);
    let params: HashSet<usize> = [&w, &b].iter().filter_map(|p| p.grad_meta().map(|m| m.id)).collect();

    let mut metas: Vec<Weak<GradMeta>> = Vec::new();
    let mut buffers = Vec::new();
    let mut losses = Vec::new();
    for step in 0..200 {
        let pred = x.matmul(&w)?.add(&b)?.tanh()?;
        let loss = pred.sub(&t)?.square()?.mean_all()?;
        let these = graph_metas(&loss);
        assert!(these.len() > params.len(), "the step built a graph");
        metas.extend(these);
        buffers.push(pred.storage_weak());
        losses.push(loss.item()?);
        let grads = loss.backward()?;
        {
            let _g = no_grad();
            for p in [&w, &b] {
                if let Some(g) = grads.get(p) {
                    p.assign(&p.sub(&g.mul_scalar(0.5)?)?)?;
                }
            }
        }
        drop((pred, loss, grads));
        // Only the parameters outlive a step, however many steps ran.
        let live: HashSet<usize> = metas.iter().filter_map(|m| m.upgrade().map(|m| m.id)).collect();
        assert_eq!(live, params, "step {step}: graph values outlive their step");
        assert!(
            buffers.iter().all(|b| b.upgrade().is_none()),
            "step {step}: a buffer outlives its step"
        );
    }
    let (first, last) = (losses[0], losses[losses.len() - 1]);
    assert!(last < 0.1 * first, "training works: loss {first} -> {last}");
    Ok(())
}

#[test]
fn backward_with_grad_seeds_a_non_scalar_output_with_default_options() -> Result<()> {
    let x = Tensor::from_vec(vec![1.0f64, -2.0, 3.0], &[3])?.set_requires_grad(true);
    let seed = Tensor::from_vec(vec![0.5f64, 2.0, -1.0], &[3])?;
    let y = x.square()?;
    // d(x²)/dx · seed = 2x · seed
    let g = y.backward_with_grad(&seed)?;
    assert_eq!(g.get(&x).unwrap().to_vec::<f64>()?, vec![1.0, -8.0, -6.0]);
    // default options: the graph is freed, so a second pass fails
    assert!(y.backward_with_grad(&seed).is_err());
    Ok(())
}

/// Every gradient-ready call during `f`: (leaf id, gradient values).
fn ready_calls(f: impl FnOnce() -> Result<()>) -> Result<Vec<(usize, Vec<f64>)>> {
    let calls = std::rc::Rc::new(std::cell::RefCell::new(vec![]));
    let log = calls.clone();
    let hook = crate::autograd::on_grad_ready(move |id, g| log.borrow_mut().push((id, g.to_vec_f64())));
    f()?;
    drop(hook);
    let out = calls.borrow().clone();
    Ok(out)
}

#[test]
fn grad_ready_hook_fires_once_per_leaf_with_its_final_gradient_in_reverse_topological_order() -> Result<()> {
    let x = randn(&[4], 1);
    let (w1, w2, w3) = (randn(&[4], 2), randn(&[4], 3), randn(&[4], 4));
    let (w1, w2, w3) = (
        w1.set_requires_grad(true),
        w2.set_requires_grad(true),
        w3.set_requires_grad(true),
    );
    let unused = randn(&[4], 5).set_requires_grad(true);
    let mut grads = None;
    // A chain x·w1 → ·w2 → ·w3, with w1 used again at the end (a second, shorter path):
    // w1's gradient is final only after the first product's backward.
    let calls = ready_calls(|| {
        let h = x.mul(&w1)?.mul(&w2)?.mul(&w3)?.mul(&w1)?.sum_all()?;
        grads = Some(h.backward()?);
        Ok(())
    })?;
    let grads = grads.unwrap();
    let ids: Vec<usize> = calls.iter().map(|(id, _)| *id).collect();
    let id = |t: &Tensor| t.grad_id().unwrap();
    assert_eq!(
        ids,
        vec![id(&w3), id(&w2), id(&w1)],
        "once per leaf, the last op's leaf first"
    );
    for (t, (_, g)) in [&w3, &w2, &w1].into_iter().zip(&calls) {
        assert_eq!(*g, grads.get(t).unwrap().to_vec_f64(), "the gradient backward returns");
    }
    // w1's gradient has both paths' parts: 2·x·w1·w2·w3.
    let want: Vec<f64> = (0..4)
        .map(|i| {
            let v = |t: &Tensor| t.to_vec_f64()[i];
            2.0 * v(&x) * v(&w1) * v(&w2) * v(&w3)
        })
        .collect();
    for (g, w) in calls[2].1.iter().zip(&want) {
        assert!((g - w).abs() < 1e-12, "{g} vs {w}");
    }
    assert!(grads.get(&unused).is_none() && !ids.contains(&id(&unused)));
    Ok(())
}

#[test]
fn grad_ready_hook_skips_branches_without_gradient_and_grad_calls_and_stops_when_dropped() -> Result<()> {
    let a = randn(&[3], 1).set_requires_grad(true);
    let b = randn(&[3], 2).set_requires_grad(true);
    // b's only path is cut by an op that sends its input no gradient, so the node between
    // b and that op gets none and is skipped: b gets no gradient and no call, a gets its own.
    let calls = ready_calls(|| {
        let m = b.mul_scalar(2.0)?;
        let cut = m.detach().with_backward("cut", &[&m], |_, _| Ok(vec![None]));
        let loss = a.square()?.sum_all()?.add(&cut.sum_all()?)?;
        let g = loss.backward()?;
        assert!(g.get(&b).is_none());
        Ok(())
    })?;
    let ids: Vec<usize> = calls.iter().map(|(id, _)| *id).collect();
    assert_eq!(ids, vec![a.grad_id().unwrap()]);
    // A leaf that is itself the output is final at once.
    let calls = ready_calls(|| {
        a.backward_with_grad(&Tensor::ones_like(&a))?;
        Ok(())
    })?;
    assert_eq!(calls, vec![(a.grad_id().unwrap(), vec![1.0; 3])]);
    // torch.autograd.grad-style passes call no hook.
    let calls = ready_calls(|| {
        grad(&[&a.square()?.sum_all()?], None, &[&a], false)?;
        Ok(())
    })?;
    assert!(calls.is_empty());
    // After the hook is dropped, backward calls nothing (ready_calls dropped it).
    let counted = std::rc::Rc::new(std::cell::Cell::new(0));
    let c = counted.clone();
    let hook = crate::autograd::on_grad_ready(move |_, _| c.set(c.get() + 1));
    a.square()?.sum_all()?.backward()?;
    drop(hook);
    a.square()?.sum_all()?.backward()?;
    assert_eq!(counted.get(), 1);
    Ok(())
}
