//! Optimizers over parameter groups: [`Sgd`], [`Adam`], [`AdamW`], [`RMSprop`], with
//! PyTorch's update formulas, and gradient clipping by global norm.
//!
//! ```
//! use nabla_core::{DType, Generator, Tensor};
//! use nabla_nn::optim::{Optimizer, Sgd, SgdOptions};
//! let w = Tensor::randn(&[3], DType::F32, &mut Generator::new(0)).set_requires_grad(true);
//! let mut opt = Sgd::new(vec![w.clone()], SgdOptions { lr: 0.1, ..Default::default() })?;
//! let before = w.to_vec::<f32>()?;
//! let grads = w.mul(&w)?.sum_all()?.backward()?; // d/dw = 2w
//! opt.step(&grads)?;
//! let after = w.to_vec::<f32>()?;
//! assert!((after[0] - 0.8 * before[0]).abs() < 1e-6); // w − 0.1·2w
//! # Ok::<(), nabla_nn::Error>(())
//! ```
//!
//! The four share one core, [`ElementwiseOptimizer`]: each algorithm's options struct is
//! its update rule, and `Sgd` is `ElementwiseOptimizer<SgdOptions>` (and so on). AdamW is
//! Adam with the weight decay decoupled, as in PyTorch: [`AdamOptions`] and
//! [`AdamWOptions`] are one struct, [`AdamConfig`], told apart by a constant.
//!
//! Parameters are leaf tensors updated in place (their storage is shared with the model),
//! one pass over the slices per parameter and step; no graph is recorded. A parameter
//! with no gradient in the store is skipped, as PyTorch skips `grad is None`.
//!
//! State for checkpoints: [`Optimizer::state_dict`] gives named tensors
//! (`state.<i>.<buffer>`, `i` counting parameters across groups in order) and scalars
//! (`state.<i>.step`, `group.<g>.lr`, `group.<g>.weight_decay`, `group.<g>.params`).

mod adam;
mod rmsprop;
mod rule;
mod sgd;
mod slices;

pub use adam::{Adam, AdamConfig, AdamOptions, AdamW, AdamWOptions};
pub use rmsprop::{RMSprop, RMSpropOptions};
pub use rule::ElementwiseOptimizer;
pub use sgd::{Sgd, SgdOptions};

pub(crate) use rule::{GroupSettings, ParamState, UpdateRule};
pub(crate) use slices::with_slices;

use crate::{Error, Result};
use nabla_core::{dispatch, Buffer, DType, Element, Gradients, Tensor};
use std::collections::BTreeMap;

/// Parameters that share a learning rate and weight decay; `None` takes the optimizer's value.
#[derive(Clone, Debug)]
pub struct ParamGroup {
    /// Leaf tensors to update in place.
    pub params: Vec<Tensor>,
    /// This group's learning rate, if it differs from the optimizer's.
    pub lr: Option<f64>,
    /// This group's weight decay, if it differs from the optimizer's.
    pub weight_decay: Option<f64>,
}

impl ParamGroup {
    /// A group taking the optimizer's learning rate and weight decay.
    pub fn new(params: Vec<Tensor>) -> Self {
        ParamGroup {
            params,
            lr: None,
            weight_decay: None,
        }
    }

    /// The same group with its own learning rate.
    pub fn with_lr(mut self, lr: f64) -> Self {
        self.lr = Some(lr);
        self
    }

    /// The same group with its own weight decay.
    pub fn with_weight_decay(mut self, weight_decay: f64) -> Self {
        self.weight_decay = Some(weight_decay);
        self
    }
}

impl From<Vec<Tensor>> for ParamGroup {
    fn from(params: Vec<Tensor>) -> Self {
        ParamGroup::new(params)
    }
}

/// One resolved group inside an optimizer.
#[derive(Clone, Debug)]
struct Group {
    params: Vec<Tensor>,
    lr: f64,
    weight_decay: f64,
}

/// An optimizer's parameter groups with their current learning rates and weight decays.
#[derive(Clone, Debug)]
pub struct ParamGroups {
    op: &'static str,
    groups: Vec<Group>,
}

fn check_rate(op: &'static str, what: &str, v: f64) -> Result<()> {
    if !(v >= 0.0 && v.is_finite()) {
        return Err(Error::Config(format!(
            "{op}: invalid {what} {v} (must be finite and ≥ 0)"
        )));
    }
    Ok(())
}

impl ParamGroups {
    /// Resolve the groups against the optimizer's defaults and check them.
    pub(crate) fn new(op: &'static str, groups: Vec<ParamGroup>, lr: f64, weight_decay: f64) -> Result<Self> {
        check_rate(op, "learning rate", lr)?;
        check_rate(op, "weight_decay", weight_decay)?;
        let mut out: Vec<Group> = Vec::with_capacity(groups.len());
        for (g, pg) in groups.into_iter().enumerate() {
            let lr = pg.lr.unwrap_or(lr);
            let wd = pg.weight_decay.unwrap_or(weight_decay);
            check_rate(op, &format!("learning rate of group {g}"), lr)?;
            check_rate(op, &format!("weight_decay of group {g}"), wd)?;
            for (j, p) in pg.params.iter().enumerate() {
                if !p.is_leaf() {
                    return Err(Error::Config(format!(
                        "{op}: parameter {j} of group {g} (shape {:?}) is not a leaf; optimize the tensor \
                         the model holds, not a result computed from it",
                        p.shape()
                    )));
                }
                let seen = out.iter().flat_map(|o| &o.params).chain(&pg.params[..j]);
                if seen.into_iter().any(|q| q.shares_storage(p)) {
                    return Err(Error::Config(format!(
                        "{op}: parameter {j} of group {g} (shape {:?}) appears more than once",
                        p.shape()
                    )));
                }
            }
            out.push(Group {
                params: pg.params,
                lr,
                weight_decay: wd,
            });
        }
        Ok(ParamGroups { op, groups: out })
    }

    fn get(&self, group: usize) -> Result<&Group> {
        self.groups.get(group).ok_or_else(|| self.no_group(group))
    }

    fn no_group(&self, group: usize) -> Error {
        Error::Config(format!(
            "{}: no parameter group {group} (there are {})",
            self.op,
            self.groups.len()
        ))
    }

    /// Number of groups.
    pub fn len(&self) -> usize {
        self.groups.len()
    }

    /// Whether there are no groups.
    pub fn is_empty(&self) -> bool {
        self.groups.is_empty()
    }

    /// Total number of parameters over all groups.
    pub fn num_params(&self) -> usize {
        self.groups.iter().map(|g| g.params.len()).sum()
    }

    /// The parameters of `group`.
    pub fn params(&self, group: usize) -> Result<&[Tensor]> {
        Ok(&self.get(group)?.params)
    }

    /// Every parameter, group by group.
    pub fn all_params(&self) -> Vec<Tensor> {
        self.groups.iter().flat_map(|g| g.params.iter().cloned()).collect()
    }

    /// The learning rate of `group`.
    pub fn lr(&self, group: usize) -> Result<f64> {
        Ok(self.get(group)?.lr)
    }

    /// Set the learning rate of `group`.
    pub fn set_lr(&mut self, group: usize, lr: f64) -> Result<()> {
        check_rate(self.op, "learning rate", lr)?;
        let e = self.no_group(group);
        self.groups.get_mut(group).ok_or(e)?.lr = lr;
        Ok(())
    }

    /// The weight decay of `group`.
    pub fn weight_decay(&self, group: usize) -> Result<f64> {
        Ok(self.get(group)?.weight_decay)
    }

    /// Set the weight decay of `group`.
    pub fn set_weight_decay(&mut self, group: usize, weight_decay: f64) -> Result<()> {
        check_rate(self.op, "weight_decay", weight_decay)?;
        let e = self.no_group(group);
        self.groups.get_mut(group).ok_or(e)?.weight_decay = weight_decay;
        Ok(())
    }

    /// The learning rate of every group.
    pub fn lrs(&self) -> Vec<f64> {
        self.groups.iter().map(|g| g.lr).collect()
    }

    fn save(&self, scalars: &mut BTreeMap<String, f64>) {
        for (g, grp) in self.groups.iter().enumerate() {
            scalars.insert(format!("group.{g}.lr"), grp.lr);
            scalars.insert(format!("group.{g}.weight_decay"), grp.weight_decay);
            scalars.insert(format!("group.{g}.params"), grp.params.len() as f64);
        }
    }

    /// The learning rates and weight decays from a saved state (checked, not yet applied).
    fn parse(&self, scalars: &BTreeMap<String, f64>) -> Result<Vec<(f64, f64)>> {
        let op = self.op;
        let mut out = Vec::with_capacity(self.groups.len());
        for (g, grp) in self.groups.iter().enumerate() {
            let get = |k: &str| {
                scalars.get(&format!("group.{g}.{k}")).copied().ok_or_else(|| {
                    Error::State(format!(
                        "{op} state: group.{g}.{k} is missing (the optimizer has {} groups)",
                        self.groups.len()
                    ))
                })
            };
            let n = get("params")?;
            if n != grp.params.len() as f64 {
                return Err(Error::State(format!(
                    "{op} state: group {g} was saved with {n} parameters, this optimizer's has {}",
                    grp.params.len()
                )));
            }
            let (lr, wd) = (get("lr")?, get("weight_decay")?);
            check_rate(op, &format!("saved learning rate of group {g}"), lr)?;
            check_rate(op, &format!("saved weight_decay of group {g}"), wd)?;
            out.push((lr, wd));
        }
        Ok(out)
    }
}

/// What checkpoints keep of an optimizer: named tensors and named scalars.
#[derive(Clone, Debug, Default)]
pub struct OptimizerState {
    /// Per-parameter buffers, `state.<i>.<name>` (copies, not the live buffers).
    pub tensors: Vec<(String, Tensor)>,
    /// Step counts (`state.<i>.step`) and group settings (`group.<g>.lr`, ...).
    pub scalars: BTreeMap<String, f64>,
}

/// An optimizer: updates its parameters from a gradient store.
pub trait Optimizer {
    /// One update of every parameter that has a gradient in `grads` (others are skipped).
    fn step(&mut self, grads: &Gradients) -> Result<()>;

    /// The parameter groups.
    fn param_groups(&self) -> &ParamGroups;

    /// The parameter groups, to change learning rates or weight decays.
    fn param_groups_mut(&mut self) -> &mut ParamGroups;

    /// The optimizer's state (buffers, step counts, group settings) for a checkpoint.
    fn state_dict(&self) -> Result<OptimizerState>;

    /// Restore a state saved by [`Optimizer::state_dict`] of the same kind of optimizer over
    /// parameters of the same shapes. Nothing changes if the state does not fit.
    fn load_state_dict(&mut self, state: &OptimizerState) -> Result<()>;

    /// The learning rate of `group`.
    fn lr(&self, group: usize) -> Result<f64> {
        self.param_groups().lr(group)
    }

    /// Set the learning rate of `group`.
    fn set_lr(&mut self, group: usize, lr: f64) -> Result<()> {
        self.param_groups_mut().set_lr(group, lr)
    }

    /// The learning rate of every group.
    fn lrs(&self) -> Vec<f64> {
        self.param_groups().lrs()
    }
}

/// Per-parameter state of an optimizer, created at a parameter's first update.
#[derive(Clone, Debug)]
pub(crate) struct StateStore {
    op: &'static str,
    names: Vec<&'static str>,
    slots: Vec<Option<ParamState>>,
}

fn zeros_buffer(dtype: DType, n: usize) -> Buffer {
    dispatch!(dtype, T => T::wrap(vec![T::from_f64(0.0); n]))
}

fn buffer_tensor(b: &Buffer, shape: &[usize]) -> Result<Tensor> {
    Ok(match b {
        Buffer::F32(v) => Tensor::from_vec(v.clone(), shape)?,
        Buffer::F64(v) => Tensor::from_vec(v.clone(), shape)?,
    })
}

impl StateStore {
    /// A store whose parameters each hold the buffers `names` (zeros at first).
    pub(crate) fn new(op: &'static str, names: Vec<&'static str>) -> Self {
        StateStore {
            op,
            names,
            slots: Vec::new(),
        }
    }

    fn slot(&mut self, i: usize, p: &Tensor) -> &mut ParamState {
        if self.slots.len() <= i {
            self.slots.resize(i + 1, None);
        }
        let n = self.names.len();
        self.slots[i].get_or_insert_with(|| ParamState {
            step: 0,
            bufs: (0..n).map(|_| zeros_buffer(p.dtype(), p.numel())).collect(),
        })
    }

    pub(crate) fn save(&self, groups: &ParamGroups) -> Result<OptimizerState> {
        let params = groups.all_params();
        let mut st = OptimizerState::default();
        groups.save(&mut st.scalars);
        for (i, (slot, p)) in self.slots.iter().zip(&params).enumerate() {
            let Some(s) = slot else { continue };
            st.scalars.insert(format!("state.{i}.step"), s.step as f64);
            for (name, b) in self.names.iter().zip(&s.bufs) {
                st.tensors
                    .push((format!("state.{i}.{name}"), buffer_tensor(b, p.shape())?));
            }
        }
        Ok(st)
    }

    /// Check `state` against the parameters and, only if all of it fits, install it.
    pub(crate) fn load(&mut self, groups: &mut ParamGroups, state: &OptimizerState) -> Result<()> {
        let op = self.op;
        let params = groups.all_params();
        let settings = groups.parse(&state.scalars)?;
        let bad = |msg: String| Error::State(format!("{op} state: {msg}"));
        let mut slots: Vec<Option<ParamState>> = vec![None; params.len()];
        for (key, &v) in &state.scalars {
            if let Some(rest) = key.strip_prefix("group.") {
                let known = rest.split_once('.').is_some_and(|(g, field)| {
                    g.parse::<usize>().is_ok_and(|g| g < groups.len())
                        && ["lr", "weight_decay", "params"].contains(&field)
                });
                if !known {
                    return Err(bad(format!(
                        "unexpected scalar {key} (the optimizer has {} groups)",
                        groups.len()
                    )));
                }
                continue;
            }
            let i = parse_state_key(key, "step").ok_or_else(|| bad(format!("unexpected scalar {key}")))?;
            let p = params
                .get(i)
                .ok_or_else(|| bad(format!("{key}: there are only {} parameters", params.len())))?;
            if !(v >= 0.0 && v.fract() == 0.0 && v < 2f64.powi(53)) {
                return Err(bad(format!("{key} = {v} is not a step count")));
            }
            slots[i] = Some(ParamState {
                step: v as u64,
                bufs: (0..self.names.len()).map(|_| zeros_buffer(p.dtype(), 0)).collect(),
            });
        }
        let mut filled = vec![vec![false; self.names.len()]; params.len()];
        for (key, t) in &state.tensors {
            let (i, b) = self
                .names
                .iter()
                .enumerate()
                .find_map(|(b, name)| parse_state_key(key, name).map(|i| (i, b)))
                .ok_or_else(|| bad(format!("unexpected tensor {key} (buffers are {:?})", self.names)))?;
            let p = params
                .get(i)
                .ok_or_else(|| bad(format!("{key}: there are only {} parameters", params.len())))?;
            let slot = slots[i]
                .as_mut()
                .ok_or_else(|| bad(format!("{key} has no state.{i}.step")))?;
            if t.shape() != p.shape() || t.dtype() != p.dtype() {
                return Err(bad(format!(
                    "{key} is {:?} {:?}, parameter {i} is {:?} {:?}",
                    t.shape(),
                    t.dtype(),
                    p.shape(),
                    p.dtype()
                )));
            }
            slot.bufs[b] = dispatch!(p.dtype(), T => T::wrap(t.to_vec::<T>()?));
            filled[i][b] = true;
        }
        for (i, slot) in slots.iter().enumerate() {
            if let Some(b) = filled[i].iter().position(|f| !f).filter(|_| slot.is_some()) {
                return Err(bad(format!("state.{i}.{} is missing", self.names[b])));
            }
        }
        for (g, (lr, wd)) in settings.into_iter().enumerate() {
            groups.set_lr(g, lr)?;
            groups.set_weight_decay(g, wd)?;
        }
        self.slots = slots;
        Ok(())
    }
}

/// `i` from `state.<i>.<field>`.
fn parse_state_key(key: &str, field: &str) -> Option<usize> {
    let rest = key.strip_prefix("state.")?;
    let (i, f) = rest.split_once('.')?;
    (f == field).then(|| i.parse().ok()).flatten()
}

/// Run `update` on every parameter that has a gradient, with its state (step already
/// counted) and its group's settings.
pub(crate) fn for_each_param(
    groups: &ParamGroups,
    store: &mut StateStore,
    grads: &Gradients,
    mut update: impl FnMut(&Tensor, &Tensor, &mut ParamState, GroupSettings) -> Result<()>,
) -> Result<()> {
    let op = groups.op;
    let mut i = 0;
    for (g, grp) in groups.groups.iter().enumerate() {
        let s = GroupSettings {
            lr: grp.lr,
            weight_decay: grp.weight_decay,
        };
        for (j, p) in grp.params.iter().enumerate() {
            let idx = i;
            i += 1;
            let Some(grad) = grads.get(p) else { continue };
            if grad.shape() != p.shape() || grad.dtype() != p.dtype() {
                return Err(Error::Config(format!(
                    "{op}: parameter {j} of group {g} is {:?} {:?} but its gradient is {:?} {:?}",
                    p.shape(),
                    p.dtype(),
                    grad.shape(),
                    grad.dtype()
                )));
            }
            if !p.is_contiguous() {
                return Err(Error::Config(format!(
                    "{op}: parameter {j} of group {g} (shape {:?}) is not contiguous; optimizers update \
                     parameters in place",
                    p.shape()
                )));
            }
            let st = store.slot(idx, p);
            if st.bufs.iter().any(|b| b.len() != p.numel() || b.dtype() != p.dtype()) {
                return Err(Error::State(format!(
                    "{op}: the state of parameter {j} of group {g} does not fit its shape {:?}",
                    p.shape()
                )));
            }
            st.step += 1;
            update(p, grad, st, s).map_err(|e| e.context(format!("{op} (group {g}, parameter {j})")))?;
        }
    }
    Ok(())
}

/// PyTorch's `lerp`: `a + w·(b − a)`, computed from the nearer end for accuracy.
#[inline]
pub(crate) fn lerp<T: Element>(a: T, b: T, w: T) -> T {
    if w.to_f64() < 0.5 {
        a + w * (b - a)
    } else {
        b - (b - a) * (T::ONE - w)
    }
}

/// Scale the gradients of `params` so that their global L2 norm is at most `max_norm`;
/// returns the norm before clipping (PyTorch's `clip_grad_norm_`, norm type 2).
///
/// The scale is `max_norm / (norm + 1e-6)`, capped at 1. Parameters without a gradient
/// are left out of the norm. A non-finite norm is returned as is and the gradients are
/// left unscaled, so the caller can see it and stop.
pub fn clip_grad_norm(grads: &mut Gradients, params: &[Tensor], max_norm: f64) -> Result<f64> {
    if max_norm.is_nan() || max_norm < 0.0 {
        return Err(Error::Config(format!("clip_grad_norm: invalid max_norm {max_norm}")));
    }
    let mut sq = 0.0f64;
    for p in params {
        if let Some(g) = grads.get(p) {
            sq += g.to_vec_f64().iter().map(|v| v * v).sum::<f64>();
        }
    }
    let norm = sq.sqrt();
    let coef = max_norm / (norm + 1e-6);
    if !norm.is_finite() || coef >= 1.0 {
        return Ok(norm);
    }
    for p in params {
        if let Some(g) = grads.get(p) {
            let scaled = dispatch!(g.dtype(), T => {
                let c = T::from_f64(coef);
                Tensor::from_vec(g.to_vec::<T>()?.into_iter().map(|v| v * c).collect(), g.shape())?
            });
            grads.insert(p, scaled);
        }
    }
    Ok(norm)
}

#[cfg(test)]
mod tests;
