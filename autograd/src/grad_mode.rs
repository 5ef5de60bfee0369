//! Whether ops record a graph.
//!
//! Recording costs memory (every op keeps what its backward needs), so code
//! that only evaluates (generation, validation, finite differences) turns it
//! off with [`no_grad`]. The switch is per thread, like PyTorch's.

use std::cell::Cell;

thread_local! {
    static GRAD_ENABLED: Cell<bool> = const { Cell::new(true) };
}

/// True unless inside a [`no_grad`] scope.
pub fn is_grad_enabled() -> bool {
    GRAD_ENABLED.with(|g| g.get())
}

/// Runs `f` without recording a graph; results do not require grad.
pub fn no_grad<R>(f: impl FnOnce() -> R) -> R {
    let _guard = NoGradGuard::new();
    f()
}

/// Runs `f` recording or not as `enabled` says, then restores this
/// thread's setting: for work handed to another thread, which must record
/// as the thread that started it would (the switch being per thread).
pub fn with_grad_mode<R>(enabled: bool, f: impl FnOnce() -> R) -> R {
    let _guard = GradModeGuard::set(enabled);
    f()
}

/// Disables recording until dropped (the RAII form of [`no_grad`]).
pub struct NoGradGuard {
    previous: bool,
}

impl NoGradGuard {
    pub fn new() -> Self {
        let previous = GRAD_ENABLED.with(|g| g.replace(false));
        NoGradGuard { previous }
    }
}

impl Default for NoGradGuard {
    fn default() -> Self {
        Self::new()
    }
}

impl Drop for NoGradGuard {
    fn drop(&mut self) {
        GRAD_ENABLED.with(|g| g.set(self.previous));
    }
}

/// Sets recording to `enabled` until dropped, then restores what it was.
/// A `create_graph` backward records its ops even when called inside
/// `no_grad` (PyTorch's engine does the same), and a plain one records none.
pub(crate) struct GradModeGuard {
    previous: bool,
}

impl GradModeGuard {
    pub(crate) fn set(enabled: bool) -> Self {
        let previous = GRAD_ENABLED.with(|g| g.replace(enabled));
        GradModeGuard { previous }
    }
}

impl Drop for GradModeGuard {
    fn drop(&mut self) {
        GRAD_ENABLED.with(|g| g.set(self.previous));
    }
}
