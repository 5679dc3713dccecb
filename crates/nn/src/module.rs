//! The module system: the [`Module`] trait, [`Param`] (a parameter or buffer), and [`Mode`].
//!
//! A module names its parameters, buffers, sub-modules and generators once, in
//! [`Module::children`]; [`Module::visit`] walks that listing down the tree, giving each
//! entry its PyTorch dotted name (`features.0.weight`, `bn1.running_mean`), and every other
//! service (parameter lists, lookup by name, counts, freezing, state dicts, dtype
//! conversion, generator states for checkpoints) is built on that walk.
//!
//! ```
//! use nabla_core::{Activation, DType, Generator, Tensor};
//! use nabla_nn::{Linear, Mode, Module, ReLU, Sequential};
//! let mut g = Generator::new(0);
//! let mlp = Sequential::new()
//!     .push(Linear::new(4, 8, &mut g))
//!     .push(ReLU)
//!     .push(Linear::new(8, 2, &mut g));
//! let y = mlp.forward(&Tensor::ones(&[3, 4], DType::F32), Mode::Eval)?;
//! assert_eq!(y.shape(), &[3, 2]);
//! assert_eq!(mlp.named_parameters()[0].0, "0.weight");
//! assert_eq!(mlp.num_parameters(), 4 * 8 + 8 + 8 * 2 + 2);
//! # Ok::<(), nabla_nn::Error>(())
//! ```

pub use crate::param::{Param, ParamKind};
use crate::{Error, Result};
use nabla_core::{Activation, DType, Generator, Tensor};
use std::sync::Mutex;

/// Whether a forward pass trains (batch statistics, dropout on) or evaluates.
///
/// Passed to every `forward` rather than held by the module (PyTorch's `train()`/`eval()`)
/// so a forward pass has no hidden state to forget to switch and a model shared across
/// threads can be evaluated while it trains; and one trait rather than a `Module`/`ModuleT`
/// split (Candle), since every container must pass the mode on to children that may use it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Mode {
    /// Training: batch norm uses and updates batch statistics; dropout drops.
    Train,
    /// Evaluation: batch norm uses its running statistics; dropout is the identity.
    Eval,
}

impl Mode {
    /// Whether this is [`Mode::Train`].
    pub fn is_train(self) -> bool {
        self == Mode::Train
    }
}

/// `prefix.name`, or `name` at the root (or `prefix` for an empty `name`).
pub fn join(prefix: &str, name: &str) -> String {
    if name.is_empty() {
        prefix.to_string()
    } else if prefix.is_empty() {
        name.to_string()
    } else {
        format!("{prefix}.{name}")
    }
}

/// `e` from the child `name`, with the path added: the first module to see a core error
/// adds its name and description (`features.3 (Conv2d 64→128): ...`), the rest their names.
pub(crate) fn named_error(e: Error, name: &str, describe: impl FnOnce() -> String) -> Error {
    match &e {
        Error::Tensor { context, .. } if context.is_empty() => e.context(format!("{name} ({})", describe())),
        _ => e.context(name),
    }
}

/// Whether the dotted `name` lies under `prefix` (`""` matches everything; `features`
/// matches `features.0.weight` but not `features2.weight`).
pub fn under(name: &str, prefix: &str) -> bool {
    prefix.is_empty()
        || name == prefix
        || (name.starts_with(prefix) && name.as_bytes().get(prefix.len()) == Some(&b'.'))
}

/// One entry of a module's [`Module::children`] listing.
#[derive(Clone, Copy)]
pub enum Child<'a> {
    /// A parameter or buffer of the module itself.
    Param(&'a Param),
    /// A sub-module: its own entries appear under its name.
    Module(&'a dyn Module),
    /// A random generator the module draws from in training (dropout's masks); it is named
    /// by the module's own path.
    Generator(&'a Mutex<Generator>),
}

/// What [`Module::children`] fills: each call names one parameter, buffer, sub-module or
/// generator, once. The walks (`visit`, `visit_generators`, and through them parameter
/// lists, state dicts, freezing, checkpoints) all follow from this one listing.
pub struct Children<'f> {
    f: &'f mut dyn FnMut(&str, Child<'_>),
}

impl<'f> Children<'f> {
    /// A listing that hands every entry to `f`.
    pub fn new(f: &'f mut dyn FnMut(&str, Child<'_>)) -> Self {
        Children { f }
    }

    /// A parameter or buffer named `name`.
    pub fn param(&mut self, name: &str, p: &Param) -> &mut Self {
        (self.f)(name, Child::Param(p));
        self
    }

    /// A parameter or buffer named `name`, if present (an optional bias).
    pub fn param_opt(&mut self, name: &str, p: &Option<Param>) -> &mut Self {
        if let Some(p) = p {
            self.param(name, p);
        }
        self
    }

    /// A sub-module named `name` (`features`, `layer1`, or `3` in a [`crate::Sequential`]).
    pub fn module(&mut self, name: &str, m: &dyn Module) -> &mut Self {
        (self.f)(name, Child::Module(m));
        self
    }

    /// A sub-module named `name`, if present (an optional head or shortcut).
    pub fn module_opt<M: Module>(&mut self, name: &str, m: &Option<M>) -> &mut Self {
        if let Some(m) = m {
            self.module(name, m);
        }
        self
    }

    /// The module's own random generator (named by the module's path, as dropout's is).
    pub fn generator(&mut self, g: &Mutex<Generator>) -> &mut Self {
        (self.f)("", Child::Generator(g));
        self
    }
}

/// Something with a forward pass and named parameters: a layer, or a model built of them.
///
/// Implementors write [`Module::forward`] and, if they hold anything, [`Module::children`]
/// (and usually [`Module::describe`]); everything else comes with the trait.
pub trait Module: Send + Sync {
    /// Apply the module to `x`.
    fn forward(&self, x: &Tensor, mode: Mode) -> Result<Tensor>;

    /// List, once each, the module's own parameters and buffers (parameters first, then
    /// buffers, as PyTorch registers them), its sub-modules in registration order, and the
    /// generators it draws from. The default lists nothing (activations, pooling).
    ///
    /// ```
    /// use nabla_core::{Generator, Tensor};
    /// use nabla_nn::{Children, Linear, Mode, Module, Result};
    /// struct Head { fc1: Linear, fc2: Linear }
    /// impl Module for Head {
    ///     fn forward(&self, x: &Tensor, mode: Mode) -> Result<Tensor> {
    ///         let h = self.fc1.forward_named("fc1", x, mode)?.relu()?;
    ///         self.fc2.forward_named("fc2", &h, mode)
    ///     }
    ///     fn children(&self, c: &mut Children) {
    ///         c.module("fc1", &self.fc1).module("fc2", &self.fc2);
    ///     }
    /// }
    /// let mut g = Generator::new(0);
    /// let head = Head { fc1: Linear::new(4, 8, &mut g), fc2: Linear::new(8, 2, &mut g) };
    /// let names: Vec<String> = head.state_dict().into_iter().map(|(n, _)| n).collect();
    /// assert_eq!(names, ["fc1.weight", "fc1.bias", "fc2.weight", "fc2.bias"]);
    /// ```
    fn children(&self, c: &mut Children) {
        let _ = c;
    }

    /// Call `f` with the dotted name (under `prefix`) of every parameter and buffer, in
    /// PyTorch's order: own parameters, own buffers, then each child's in turn. Follows
    /// from [`Module::children`] (own entries are walked first whatever their place in
    /// the listing).
    fn visit(&self, prefix: &str, f: &mut dyn FnMut(&str, &Param)) {
        self.children(&mut Children::new(&mut |name, child| {
            if let Child::Param(p) = child {
                f(&join(prefix, name), p);
            }
        }));
        self.children(&mut Children::new(&mut |name, child| {
            if let Child::Module(m) = child {
                m.visit(&join(prefix, name), f);
            }
        }));
    }

    /// Call `f` with the dotted name of every random generator the module draws from in
    /// training (dropout's masks), in [`Module::children`]'s order. Checkpoints save their
    /// states, so a resumed run draws what an uninterrupted one would. Follows from
    /// [`Module::children`].
    fn visit_generators(&self, prefix: &str, f: &mut dyn FnMut(&str, &Mutex<Generator>)) {
        self.children(&mut Children::new(&mut |name, child| match child {
            Child::Generator(g) => f(&join(prefix, name), g),
            Child::Module(m) => m.visit_generators(&join(prefix, name), f),
            Child::Param(_) => {}
        }));
    }

    /// A short description for error messages and summaries, e.g. `Conv2d 64→128`.
    fn describe(&self) -> String {
        let full = std::any::type_name::<Self>();
        let base = full.split('<').next().unwrap_or(full);
        base.rsplit("::").next().unwrap_or(base).to_string()
    }

    /// The activation this module applies, if a layer before it may fuse it into its own
    /// output ([`Module::forward_then`]): `ReLU` and `LeakyReLU` say so; the default is None.
    fn fusable_activation(&self) -> Option<Activation> {
        None
    }

    /// [`Module::forward`] followed by `act` as one op, if this module can fuse it in
    /// `mode` (`Conv2d` and `ConvTranspose2d` always, `BatchNorm` in training); None, the
    /// default, where it cannot, and the caller applies the activation itself. Must give
    /// what the two modules give.
    fn forward_then(&self, x: &Tensor, act: Activation, mode: Mode) -> Option<Result<Tensor>> {
        let _ = (x, act, mode);
        None
    }

    /// [`Module::forward`] as the child `name` of a larger module: errors gain the path
    /// (`features.3 (Conv2d 64→128): ...`).
    fn forward_named(&self, name: &str, x: &Tensor, mode: Mode) -> Result<Tensor> {
        if crate::summary::is_recording() {
            let mut own = 0;
            self.visit("", &mut |n, p| {
                if !p.is_buffer() && !n.contains('.') {
                    own += p.leaf().numel();
                }
            });
            crate::summary::enter(name, self.describe(), own);
        }
        let out = self.forward(x, mode);
        if crate::summary::is_recording() {
            crate::summary::exit(out.as_ref().ok().map(|y| y.shape()));
        }
        out.map_err(|e| named_error(e, name, || self.describe()))
    }

    /// Every parameter (frozen ones too) with its dotted name; the tensors are the leaves
    /// optimizers update and gradients are keyed by.
    fn named_parameters(&self) -> Vec<(String, Tensor)> {
        let mut out = Vec::new();
        self.visit("", &mut |n, p| {
            if !p.is_buffer() {
                out.push((n.to_string(), p.lend()));
            }
        });
        out
    }

    /// The parameter named `name` (`"0.weight"`, `"layer1.0.conv1.weight"`): the leaf that
    /// optimizers update. An unknown name, or a buffer's, is an error that says which
    /// names the module has there.
    fn parameter(&self, name: &str) -> Result<Tensor> {
        let (mut found, mut buffer, mut near) = (None, false, Vec::new());
        // Names beside the one asked for (same parent module) make a typo easy to see.
        let parent = name.rsplit_once('.').map_or("", |(p, _)| p);
        self.visit("", &mut |n, p| {
            if n == name {
                buffer = p.is_buffer();
                found = Some(p.leaf());
            } else if !p.is_buffer() && n.rsplit_once('.').map_or("", |(q, _)| q) == parent {
                near.push(n.to_string());
            }
        });
        match found {
            Some(t) if !buffer => Ok(t),
            Some(_) => Err(Error::Config(format!(
                "{name:?} is a buffer, not a parameter (see named_buffers)"
            ))),
            None => Err(Error::Config(format!(
                "no parameter is named {name:?}; parameters beside it: {near:?}"
            ))),
        }
    }

    /// Every parameter (frozen ones too), in [`Module::named_parameters`] order.
    fn parameters(&self) -> Vec<Tensor> {
        self.named_parameters().into_iter().map(|(_, t)| t).collect()
    }

    /// The parameters that are not frozen: what to hand an optimizer.
    fn trainable_parameters(&self) -> Vec<Tensor> {
        let mut out = Vec::new();
        self.visit("", &mut |_, p| {
            if p.trainable() {
                out.push(p.lend());
            }
        });
        out
    }

    /// Every buffer with its dotted name.
    fn named_buffers(&self) -> Vec<(String, Tensor)> {
        let mut out = Vec::new();
        self.visit("", &mut |n, p| {
            if p.is_buffer() {
                out.push((n.to_string(), p.leaf()));
            }
        });
        out
    }

    /// Number of parameter elements (frozen ones too; buffers not counted).
    fn num_parameters(&self) -> usize {
        let mut n = 0;
        self.visit("", &mut |_, p| {
            if !p.is_buffer() {
                n += p.leaf().numel();
            }
        });
        n
    }

    /// Number of trainable parameter elements.
    fn num_trainable_parameters(&self) -> usize {
        let mut n = 0;
        self.visit("", &mut |_, p| {
            if p.trainable() {
                n += p.leaf().numel();
            }
        });
        n
    }

    /// Parameters and buffers with their PyTorch names, sharing storage with the model.
    fn state_dict(&self) -> Vec<(String, Tensor)> {
        let mut out = Vec::new();
        self.visit("", &mut |n, p| out.push((n.to_string(), p.leaf())));
        out
    }

    /// Copy `tensors` into the model by name (see [`crate::state_dict::load_into`]).
    /// Everything is checked before anything changes.
    fn load_state_dict(&self, tensors: &[(String, Tensor)], strict: bool) -> Result<crate::state_dict::LoadReport> {
        crate::state_dict::load_into(self.state_entries(), tensors, strict)
    }

    /// Every entry of the state dict with its kind (for loaders).
    fn state_entries(&self) -> Vec<(String, Tensor, ParamKind)> {
        let mut out = Vec::new();
        self.visit("", &mut |n, p| out.push((n.to_string(), p.leaf(), p.kind())));
        out
    }

    /// Freeze (`on = false`) or unfreeze the parameters whose names lie under `prefix`
    /// (`""`: all). Returns how many matched; none matching is an error (a likely typo).
    fn set_trainable(&self, prefix: &str, on: bool) -> Result<usize> {
        let mut matched = 0;
        self.visit("", &mut |n, p| {
            if !p.is_buffer() && under(n, prefix) {
                p.set_trainable(on);
                matched += 1;
            }
        });
        if matched == 0 && !prefix.is_empty() {
            return Err(Error::Config(format!(
                "set_trainable: no parameter is named {prefix:?} or lies under it"
            )));
        }
        Ok(matched)
    }

    /// The state of every generator [`Module::visit_generators`] names, in its order.
    fn generator_states(&self) -> Vec<(String, [u64; 4])> {
        let mut out = Vec::new();
        self.visit_generators("", &mut |n, g| {
            out.push((n.to_string(), g.lock().unwrap_or_else(|e| e.into_inner()).state()));
        });
        out
    }

    /// Set the generators from [`Module::generator_states`] of the same architecture. A
    /// state for a generator the module lacks, or a generator without a state, is an error
    /// (the masks would silently differ from the saved run's).
    fn load_generator_states(&self, states: &[(String, [u64; 4])]) -> Result<()> {
        let mut seen = 0;
        let mut missing = Vec::new();
        self.visit_generators("", &mut |n, g| match states.iter().find(|(k, _)| k == n) {
            Some((_, s)) => {
                *g.lock().unwrap_or_else(|e| e.into_inner()) = Generator::from_state(*s);
                seen += 1;
            }
            None => missing.push(n.to_string()),
        });
        if !missing.is_empty() || seen != states.len() {
            let have: Vec<&str> = states.iter().map(|(k, _)| k.as_str()).collect();
            return Err(Error::State(format!(
                "generator states do not fit the model: saved {have:?}, model's without a state {missing:?}"
            )));
        }
        Ok(())
    }

    /// Freeze every parameter: no gradient reaches them and optimizers leave them alone.
    fn freeze(&self) {
        self.visit("", &mut |_, p| p.set_trainable(false));
    }

    /// Unfreeze every parameter.
    fn unfreeze(&self) {
        self.visit("", &mut |_, p| p.set_trainable(true));
    }

    /// Convert every parameter and buffer to `dtype`. Refused, with nothing changed, once
    /// the parameters were handed out ([`Module::parameters`], [`Module::named_parameters`],
    /// [`Module::trainable_parameters`]: what optimizers are built from), as an optimizer
    /// made before would go on updating the old tensors; layers take a dtype at
    /// construction ([`crate::LayerOptions`], [`crate::BatchNormOptions`]) instead.
    fn to_dtype(&self, dtype: DType) -> Result<()> {
        let mut lent = None;
        self.visit("", &mut |n, p| {
            if lent.is_none() && p.is_lent() && p.needs_conversion(dtype) {
                lent = Some(n.to_string());
            }
        });
        if let Some(n) = lent {
            return Err(Error::State(format!(
                "to_dtype({dtype:?}): {n} and the other parameters were already handed out \
                 (to an optimizer?), which would keep updating the old tensors; build the \
                 layers in {dtype:?} (LayerOptions::dtype), or convert before taking parameters()"
            )));
        }
        let mut first_err = None;
        self.visit("", &mut |n, p| {
            if first_err.is_none() {
                if let Err(e) = p.convert(dtype) {
                    first_err = Some(e.context(n));
                }
            }
        });
        first_err.map_or(Ok(()), Err)
    }
}

impl<M: Module + ?Sized> Module for Box<M> {
    fn forward(&self, x: &Tensor, mode: Mode) -> Result<Tensor> {
        (**self).forward(x, mode)
    }
    fn children(&self, c: &mut Children) {
        (**self).children(c)
    }
    fn visit(&self, prefix: &str, f: &mut dyn FnMut(&str, &Param)) {
        (**self).visit(prefix, f)
    }
    fn visit_generators(&self, prefix: &str, f: &mut dyn FnMut(&str, &Mutex<Generator>)) {
        (**self).visit_generators(prefix, f)
    }
    fn describe(&self) -> String {
        (**self).describe()
    }
    fn fusable_activation(&self) -> Option<Activation> {
        (**self).fusable_activation()
    }
    fn forward_then(&self, x: &Tensor, act: Activation, mode: Mode) -> Option<Result<Tensor>> {
        (**self).forward_then(x, act, mode)
    }
}

/// Check that the rank of `x` is one of `ranks`, naming the layer.
pub(crate) fn expect_rank(layer: &'static str, x: &Tensor, ranks: &[usize]) -> Result<()> {
    if ranks.contains(&x.rank()) {
        return Ok(());
    }
    let want: Vec<String> = ranks.iter().map(|r| format!("{r}-d")).collect();
    Err(nabla_core::Error::invalid(
        layer,
        format!("expects a {} input, got shape {:?}", want.join(" or "), x.shape()),
    )
    .into())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn prefixes_match_on_dot_boundaries() {
        assert!(under("features.0.weight", "features"));
        assert!(under("features.0.weight", "features.0"));
        assert!(under("features", "features"));
        assert!(!under("features2.weight", "features"));
        assert!(under("anything", ""));
        assert_eq!(join("", "w"), "w");
        assert_eq!(join("a.b", "w"), "a.b.w");
    }
}
