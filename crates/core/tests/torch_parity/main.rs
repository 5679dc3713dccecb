//! PyTorch parity of nabla-core's ops: every case of the reference fixtures
//! (`shared/fixtures/torch`, or `$NABLA_TORCH_FIXTURES`) whose op the core implements is
//! run in f32, forward and backward, and compared with PyTorch within the case's tolerance.

mod common;
mod conv;
mod core_ops;

/// Handlers asked in turn; the first that knows a case's op runs it.
const HANDLERS: &[common::Handler] = &[core_ops::run, conv::run];

#[test]
fn torch_parity() {
    common::run_parity("nabla-core", HANDLERS);
}
