//! Convolution and pooling cases (stub until the conv ops land).

use crate::common::Case;

/// Runs the convolution and pooling cases; `None` for every other op.
pub fn run(_case: &Case) -> Option<Result<(), String>> {
    None
}
