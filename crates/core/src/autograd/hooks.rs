//! Gradient-ready hooks: a callback told, during `backward`, the moment a leaf's gradient is
//! final (PyTorch's `register_post_accumulate_grad_hook`), so data-parallel training can
//! start summing a bucket of gradients over the processes while backward goes on.
//!
//! ```
//! use nabla_core::{autograd::on_grad_ready, Tensor};
//! use std::{cell::RefCell, rc::Rc};
//! let x = Tensor::from_vec(vec![3.0f32], &[1])?.set_requires_grad(true);
//! let seen = Rc::new(RefCell::new(vec![]));
//! let log = seen.clone();
//! let hook = on_grad_ready(move |id, g| log.borrow_mut().push((id, g.to_vec_f32())));
//! let grads = x.mul(&x)?.sum_all()?.backward()?; // x reaches the product twice
//! drop(hook);
//! assert_eq!(*seen.borrow(), vec![(x.grad_id().unwrap(), vec![6.0])]); // once, final
//! # Ok::<(), nabla_core::Error>(())
//! ```

use crate::Tensor;
use std::cell::{Cell, RefCell};
use std::rc::Rc;

/// A gradient-ready callback: the leaf's [`Tensor::grad_id`] and its final gradient.
type HookFn = dyn FnMut(usize, &Tensor);

thread_local! {
    static HOOKS: RefCell<Vec<(u64, Rc<RefCell<HookFn>>)>> = const { RefCell::new(Vec::new()) };
    static NEXT_KEY: Cell<u64> = const { Cell::new(0) };
}

/// A registered gradient-ready hook; dropping it unregisters the callback.
#[must_use = "the hook is unregistered when this is dropped"]
pub struct GradReadyHook {
    key: u64,
}

impl Drop for GradReadyHook {
    fn drop(&mut self) {
        // During thread teardown the list may already be gone: nothing left to remove.
        let _ = HOOKS.try_with(|h| h.borrow_mut().retain(|(k, _)| *k != self.key));
    }
}

/// Call `f(leaf_id, gradient)` during every `backward` on this thread, once per leaf that
/// gets a gradient, as soon as that gradient is final (every op between the output and the
/// leaf has run), so in reverse topological order; the gradient is the one `backward`
/// returns for that leaf. `torch.autograd.grad`-style passes ([`crate::grad`]) call no hook.
/// `f` must not run a backward pass itself. With no hook registered, backward does no
/// extra work.
pub fn on_grad_ready(f: impl FnMut(usize, &Tensor) + 'static) -> GradReadyHook {
    let key = NEXT_KEY.with(|k| {
        let v = k.get();
        k.set(v + 1);
        v
    });
    HOOKS.with(|h| h.borrow_mut().push((key, Rc::new(RefCell::new(f)))));
    GradReadyHook { key }
}

/// The hooks registered on this thread now, or `None` when there are none.
pub(crate) struct Registered(Vec<Rc<RefCell<HookFn>>>);

impl Registered {
    /// A snapshot of this thread's hooks (so a hook may register or drop hooks).
    pub(crate) fn now() -> Option<Registered> {
        HOOKS.with(|h| {
            let h = h.borrow();
            (!h.is_empty()).then(|| Registered(h.iter().map(|(_, f)| f.clone()).collect()))
        })
    }

    /// Tell every hook that leaf `id`'s gradient `g` is final.
    pub(crate) fn fire(&self, id: usize, g: &Tensor) {
        for f in &self.0 {
            (f.borrow_mut())(id, g);
        }
    }
}

impl Tensor {
    /// This tensor's identity in the autograd graph (the id a gradient-ready hook is given),
    /// or `None` if it requires no gradient.
    pub fn grad_id(&self) -> Option<usize> {
        self.grad_meta().map(|m| m.id)
    }
}
