//! Grad mode: whether ops record the graph on this thread.

use std::cell::Cell;

thread_local! {
    static GRAD_ENABLED: Cell<bool> = const { Cell::new(true) };
}

/// Whether ops on this thread record the graph.
pub fn is_grad_enabled() -> bool {
    GRAD_ENABLED.with(|g| g.get())
}

/// Restores the previous grad mode when dropped.
#[must_use = "the mode is restored when the guard is dropped"]
pub struct GradModeGuard {
    prev: bool,
}

impl Drop for GradModeGuard {
    fn drop(&mut self) {
        GRAD_ENABLED.with(|g| g.set(self.prev));
    }
}

fn set_mode(on: bool) -> GradModeGuard {
    let prev = GRAD_ENABLED.with(|g| g.replace(on));
    GradModeGuard { prev }
}

/// Record nothing until the guard is dropped (PyTorch's `torch.no_grad()`).
pub fn no_grad() -> GradModeGuard {
    set_mode(false)
}

/// Record again until the guard is dropped, even inside a no-grad scope.
pub fn enable_grad() -> GradModeGuard {
    set_mode(true)
}
