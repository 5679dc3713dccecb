//! The backward pass: a topological walk of the recorded graph, in reverse.

use super::hooks::Registered;
use super::{enable_grad, no_grad, Edge, GradMeta, Node};
use crate::{Error, Result, Tensor};
use std::collections::{HashMap, HashSet};
use std::sync::Arc;

/// Options of a backward pass.
#[derive(Debug, Clone, Copy, Default)]
pub struct BackwardOptions {
    /// Record the backward pass itself, so gradients can be differentiated again.
    pub create_graph: bool,
    /// Keep the backward rules (and the buffers they saved) for another pass.
    /// Implied by `create_graph`.
    pub retain_graph: bool,
}

/// Gradients of the leaves, keyed by tensor identity.
#[derive(Default)]
pub struct Gradients {
    map: HashMap<usize, Tensor>,
}

impl Gradients {
    /// The gradient of `t`, if it requires one and the output depends on it.
    pub fn get(&self, t: &Tensor) -> Option<&Tensor> {
        self.map.get(&t.grad_meta()?.id)
    }

    /// Take the gradient of `t` out of the store.
    pub fn remove(&mut self, t: &Tensor) -> Option<Tensor> {
        self.map.remove(&t.grad_meta()?.id)
    }

    /// Set the gradient of `t` (e.g. after clipping); ignored if `t` needs no gradient.
    pub fn insert(&mut self, t: &Tensor, g: Tensor) {
        if let Some(m) = t.grad_meta() {
            self.map.insert(m.id, g);
        }
    }

    /// Number of gradients held.
    pub fn len(&self) -> usize {
        self.map.len()
    }

    /// Whether the store is empty.
    pub fn is_empty(&self) -> bool {
        self.map.is_empty()
    }

    /// Add another store's gradients into this one (gradient accumulation).
    pub fn accumulate(&mut self, other: Gradients) -> Result<()> {
        for (id, g) in other.map {
            match self.map.remove(&id) {
                Some(prev) => {
                    self.map.insert(id, prev.add(&g)?);
                }
                None => {
                    self.map.insert(id, g);
                }
            }
        }
        Ok(())
    }
}

impl Tensor {
    /// Gradients of this scalar with respect to every leaf that requires one.
    pub fn backward(&self) -> Result<Gradients> {
        if self.numel() != 1 {
            return Err(Error::Autograd(format!(
                "backward() needs a scalar output, got shape {:?}; pass an upstream gradient with backward_with_grad",
                self.shape()
            )));
        }
        let seed = Tensor::ones_like(self);
        self.backward_with(&seed, BackwardOptions::default())
    }

    /// Gradients of every leaf, given the upstream gradient of this (possibly non-scalar)
    /// tensor, with the default options (PyTorch's `y.backward(gradient)`).
    pub fn backward_with_grad(&self, grad_output: &Tensor) -> Result<Gradients> {
        self.backward_with(grad_output, BackwardOptions::default())
    }

    /// Gradients of every leaf, given the upstream gradient of this (possibly non-scalar)
    /// tensor and the options of the pass ([`Tensor::backward_with_grad`] for the defaults).
    pub fn backward_with(&self, grad_output: &Tensor, opts: BackwardOptions) -> Result<Gradients> {
        let map = run(&[self], &[grad_output], None, opts)?;
        Ok(Gradients { map })
    }
}

/// Gradients of `outputs` (weighted by `grad_outputs`, ones when `None`) with respect to
/// just `inputs`, doing no work on branches that cannot reach them (`torch.autograd.grad`).
/// An input the outputs do not depend on gets `None`.
pub fn grad(
    outputs: &[&Tensor],
    grad_outputs: Option<&[&Tensor]>,
    inputs: &[&Tensor],
    create_graph: bool,
) -> Result<Vec<Option<Tensor>>> {
    let ones: Vec<Tensor>;
    let seeds: Vec<&Tensor> = match grad_outputs {
        Some(g) => g.to_vec(),
        None => {
            ones = outputs.iter().map(|o| Tensor::ones_like(o)).collect();
            ones.iter().collect()
        }
    };
    let mut targets = HashSet::new();
    for t in inputs {
        match t.grad_meta() {
            Some(m) => {
                targets.insert(m.id);
            }
            None => {
                return Err(Error::Autograd(format!(
                    "grad: an input of shape {:?} does not require grad",
                    t.shape()
                )))
            }
        }
    }
    let opts = BackwardOptions {
        create_graph,
        retain_graph: true,
    };
    let mut map = run(outputs, &seeds, Some(&targets), opts)?;
    Ok(inputs
        .iter()
        .map(|t| t.grad_meta().and_then(|m| map.remove(&m.id)))
        .collect())
}

/// Every meta reachable from the roots, inputs before the ops that use them.
fn topo_order(roots: &[Arc<GradMeta>]) -> Vec<Arc<GradMeta>> {
    let mut order = Vec::new();
    let mut seen = HashSet::new();
    // Iterative post-order DFS: deep graphs (long chains of ops) must not overflow the stack.
    let mut stack: Vec<(Arc<GradMeta>, bool)> = roots.iter().map(|r| (r.clone(), false)).collect();
    while let Some((m, expanded)) = stack.pop() {
        if expanded {
            order.push(m);
            continue;
        }
        if !seen.insert(m.id) {
            continue;
        }
        stack.push((m.clone(), true));
        if let Some(node) = &m.node {
            for e in &node.inputs {
                if let Edge::Grad(i) = e {
                    if !seen.contains(&i.id) {
                        stack.push((i.clone(), false));
                    }
                }
            }
        }
    }
    order
}

fn run(
    outputs: &[&Tensor],
    seeds: &[&Tensor],
    targets: Option<&HashSet<usize>>,
    opts: BackwardOptions,
) -> Result<HashMap<usize, Tensor>> {
    if outputs.len() != seeds.len() {
        return Err(Error::Autograd(format!(
            "{} outputs but {} upstream gradients",
            outputs.len(),
            seeds.len()
        )));
    }
    let mut grads: HashMap<usize, Tensor> = HashMap::new();
    let mut roots = Vec::new();
    for (o, s) in outputs.iter().zip(seeds) {
        let meta = o.grad_meta().ok_or_else(|| {
            Error::Autograd(format!(
                "output of shape {:?} does not require grad (no input requires grad, or it was made under no_grad)",
                o.shape()
            ))
        })?;
        if s.shape() != o.shape() {
            return Err(Error::shapes(
                "backward",
                o.shape(),
                s.shape(),
                "upstream gradient must match the output",
            ));
        }
        let s = s.detach();
        accumulate(&mut grads, meta.id, s)?;
        roots.push(meta.clone());
    }
    let order = topo_order(&roots);
    // With targets, only edges that lead to a target are worth differentiating.
    let reaches: Option<HashSet<usize>> = targets.map(|t| {
        let mut r = HashSet::new();
        for m in &order {
            let hit = t.contains(&m.id)
                || m.node
                    .as_ref()
                    .is_some_and(|n| n.inputs.iter().any(|e| matches!(e, Edge::Grad(i) if r.contains(&i.id))));
            if hit {
                r.insert(m.id);
            }
        }
        r
    });
    let retain = opts.retain_graph || opts.create_graph;
    let _mode = if opts.create_graph { enable_grad() } else { no_grad() };
    // Gradient-ready hooks (plain backward only): each leaf's count of graph edges still to
    // run; at zero its gradient is final. Nothing is counted when no hook is registered.
    let hooks = if targets.is_none() { Registered::now() } else { None };
    let mut pending: HashMap<usize, usize> = HashMap::new();
    if let Some(h) = &hooks {
        for m in &order {
            for e in m.node.iter().flat_map(|n| &n.inputs) {
                if let Edge::Grad(i) = e {
                    if i.is_leaf() {
                        *pending.entry(i.id).or_default() += 1;
                    }
                }
            }
        }
        // A leaf no op feeds (an output that is itself a leaf) is final already.
        for m in order
            .iter()
            .rev()
            .filter(|m| m.is_leaf() && !pending.contains_key(&m.id))
        {
            if let Some(g) = grads.get(&m.id) {
                h.fire(m.id, g);
            }
        }
    }
    for meta in order.iter().rev() {
        let Some(node) = &meta.node else { continue };
        backprop_node(meta, node, &mut grads, targets, reaches.as_ref(), retain)?;
        let Some(h) = &hooks else { continue };
        // This node ran (or had nothing to send): its edges no longer count.
        for e in &node.inputs {
            let Edge::Grad(i) = e else { continue };
            let Some(n) = pending.get_mut(&i.id) else { continue };
            *n -= 1;
            if *n == 0 {
                if let Some(g) = grads.get(&i.id) {
                    h.fire(i.id, g);
                }
            }
        }
    }
    if targets.is_none() {
        let leaves: HashSet<usize> = order.iter().filter(|m| m.is_leaf()).map(|m| m.id).collect();
        grads.retain(|id, _| leaves.contains(id));
    }
    Ok(grads)
}

/// Run one node's backward rule on its gradient (if it got one) and add the results to
/// its inputs' gradients.
fn backprop_node(
    meta: &GradMeta,
    node: &Node,
    grads: &mut HashMap<usize, Tensor>,
    targets: Option<&HashSet<usize>>,
    reaches: Option<&HashSet<usize>>,
    retain: bool,
) -> Result<()> {
    let is_target = targets.is_some_and(|t| t.contains(&meta.id));
    let g = if is_target {
        grads.get(&meta.id).cloned()
    } else {
        grads.remove(&meta.id)
    };
    let Some(g) = g else { return Ok(()) };
    let needs: Vec<bool> = node
        .inputs
        .iter()
        .map(|e| match e {
            Edge::Grad(i) => reaches.is_none_or(|r| r.contains(&i.id)),
            Edge::Const { .. } => false,
        })
        .collect();
    if !needs.iter().any(|&n| n) {
        return Ok(());
    }
    let span = crate::profile::scope(node.name, crate::profile::Phase::Backward);
    let rule = {
        let mut slot = node
            .backward
            .lock()
            .map_err(|_| Error::Autograd("a backward rule panicked earlier".into()))?;
        if retain {
            None
        } else {
            Some(slot.take())
        }
    };
    let input_grads = match rule {
        Some(Some(f)) => f(&g, &needs)?,
        Some(None) => return Err(freed(node.name)),
        None => {
            let slot = node
                .backward
                .lock()
                .map_err(|_| Error::Autograd("a backward rule panicked earlier".into()))?;
            match slot.as_ref() {
                Some(f) => f(&g, &needs)?,
                None => return Err(freed(node.name)),
            }
        }
    };
    drop(span);
    let _span = crate::profile::scope("(accumulate grads)", crate::profile::Phase::Backward);
    for ((edge, need), ig) in node.inputs.iter().zip(&needs).zip(input_grads) {
        let (Edge::Grad(i), true, Some(ig)) = (edge, *need, ig) else {
            continue;
        };
        if ig.shape() != i.shape.as_slice() {
            return Err(Error::Autograd(format!(
                "backward of {} gave a gradient of shape {:?} for an input of shape {:?}",
                node.name,
                ig.shape(),
                i.shape
            )));
        }
        accumulate(grads, i.id, ig)?;
    }
    Ok(())
}

fn freed(name: &str) -> Error {
    Error::Autograd(format!(
        "the graph through {name} was already freed by an earlier backward; pass retain_graph to go through it twice"
    ))
}

fn accumulate(grads: &mut HashMap<usize, Tensor>, id: usize, g: Tensor) -> Result<()> {
    let next = match grads.remove(&id) {
        Some(prev) => prev.add(&g)?,
        None => g,
    };
    grads.insert(id, next);
    Ok(())
}
