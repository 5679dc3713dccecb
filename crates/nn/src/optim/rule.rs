//! The core every optimizer shares: [`ElementwiseOptimizer`] owns the parameter groups and
//! the per-parameter state and implements [`Optimizer`] once; an algorithm only supplies its
//! options as an [`UpdateRule`] (its checks, its buffer names and its elementwise update).

use super::Optimizer;
use super::{for_each_param, OptimizerState, ParamGroup, ParamGroups, StateStore};
use crate::Result;
use nabla_core::{dispatch, Buffer, Element, Gradients, Tensor};
use std::fmt::Debug;

/// The running state of one parameter: its step count and its buffers.
#[derive(Clone, Debug)]
pub struct ParamState {
    /// Updates made so far, this one included while an update runs.
    pub step: u64,
    /// The algorithm's buffers, in the order of [`UpdateRule::buffers`].
    pub bufs: Vec<Buffer>,
}

/// A group's settings, handed to an optimizer's update of one parameter.
#[derive(Clone, Copy, Debug)]
pub struct GroupSettings {
    /// The group's learning rate.
    pub lr: f64,
    /// The group's weight decay.
    pub weight_decay: f64,
}

/// One optimizer algorithm, implemented by its options struct. Sealed: the trait lives in a
/// private module, so only this crate's algorithms implement it.
pub trait UpdateRule: Clone + Debug {
    /// The algorithm's name in error messages (PyTorch's class name).
    const NAME: &'static str;

    /// The default learning rate of the groups.
    fn lr(&self) -> f64;

    /// The default weight decay of the groups.
    fn weight_decay(&self) -> f64;

    /// Reject invalid settings (the learning rate and weight decay are checked by the groups).
    fn check(&self) -> Result<()>;

    /// Names of the per-parameter buffers, as saved in checkpoints (`state.<i>.<name>`).
    fn buffers(&self) -> Vec<&'static str>;

    /// Update one parameter in place from its gradient, with its state (step already counted).
    fn update<T: Element>(&self, s: GroupSettings, p: &Tensor, g: &Tensor, st: &mut ParamState) -> Result<()>;
}

/// An optimizer whose step is one elementwise pass per parameter: [`Sgd`](super::Sgd),
/// [`Adam`](super::Adam), [`AdamW`](super::AdamW) and [`RMSprop`](super::RMSprop) are this
/// struct over their options.
#[derive(Clone, Debug)]
pub struct ElementwiseOptimizer<R: UpdateRule> {
    opts: R,
    groups: ParamGroups,
    state: StateStore,
}

impl<R: UpdateRule> ElementwiseOptimizer<R> {
    /// The optimizer over one group of parameters.
    pub fn new(params: Vec<Tensor>, opts: R) -> Result<Self> {
        Self::with_groups(vec![ParamGroup::new(params)], opts)
    }

    /// The optimizer over several groups; a group's own lr and weight decay override `opts`'.
    pub fn with_groups(groups: Vec<ParamGroup>, opts: R) -> Result<Self> {
        opts.check()?;
        Ok(ElementwiseOptimizer {
            groups: ParamGroups::new(R::NAME, groups, opts.lr(), opts.weight_decay())?,
            state: StateStore::new(R::NAME, opts.buffers()),
            opts,
        })
    }

    /// The settings this optimizer was made with (lr and weight decay live in the groups).
    pub fn options(&self) -> &R {
        &self.opts
    }
}

impl<R: UpdateRule> Optimizer for ElementwiseOptimizer<R> {
    fn step(&mut self, grads: &Gradients) -> Result<()> {
        let o = &self.opts;
        let _span = nabla_core::profile::scope(R::NAME, nabla_core::profile::Phase::Other);
        for_each_param(
            &self.groups,
            &mut self.state,
            grads,
            |p, g, st, s| dispatch!(p.dtype(), T => o.update::<T>(s, p, g, st)),
        )
    }

    fn param_groups(&self) -> &ParamGroups {
        &self.groups
    }

    fn param_groups_mut(&mut self) -> &mut ParamGroups {
        &mut self.groups
    }

    fn state_dict(&self) -> Result<OptimizerState> {
        self.state.save(&self.groups)
    }

    fn load_state_dict(&mut self, state: &OptimizerState) -> Result<()> {
        self.state.load(&mut self.groups, state)
    }
}
