//! Handing an optimizer's update the slices of a parameter, its gradient and its state,
//! split over threads for large parameters.

use super::ParamState;
use crate::{Error, Result};
use nabla_core::kernels::matmul::for_each_tile;
use nabla_core::{Element, Tensor};
use std::sync::Mutex;

/// Parameters with at least this many elements are updated in blocks spread over threads.
const PAR_NUMEL: usize = 1 << 16;

/// Elements per block of a parallel update (fixed, so results do not depend on threads).
const BLOCK: usize = 1 << 14;

/// Borrow a parameter, its gradient and its buffers as slices of `T` and run `f` on them:
/// once, or on matching blocks of all of them in parallel for a large parameter (`f` is
/// elementwise, so the blocks give the same result as one pass).
pub(crate) fn with_slices<T: Element>(
    param: &Tensor,
    grad: &Tensor,
    st: &mut ParamState,
    f: impl Fn(&mut [T], &[T], &mut [&mut [T]]) + Sync,
) -> Result<()> {
    let mut bufs = st
        .bufs
        .iter_mut()
        .map(|b| {
            let dtype = b.dtype();
            T::slice_mut(b)
                .ok_or_else(|| Error::State(format!("optimizer buffer is {dtype:?}, parameter is {:?}", T::DTYPE)))
        })
        .collect::<Result<Vec<&mut [T]>>>()?;
    if grad.shares_storage(param) {
        // The parameter's write lock would wait on the gradient's read lock: copy first.
        let g = grad.to_vec::<T>()?;
        param.update::<T>(|p| in_blocks(p, &g, &mut bufs, &f))?;
    } else {
        // Borrowed in place when contiguous (the usual case), gathered when a strided view.
        grad.with_slice::<T, _>(|g| param.update::<T>(|p| in_blocks(p, g, &mut bufs, &f)))??;
    }
    Ok(())
}

/// `f` over the whole slices, or over blocks of them on several threads when large.
fn in_blocks<T: Element>(
    p: &mut [T],
    g: &[T],
    bufs: &mut [&mut [T]],
    f: &(impl Fn(&mut [T], &[T], &mut [&mut [T]]) + Sync),
) {
    if p.len() < PAR_NUMEL {
        return f(p, g, bufs);
    }
    let mut buf_blocks: Vec<_> = bufs.iter_mut().map(|b| b.chunks_mut(BLOCK)).collect();
    // One lock per block (never contended: each block is claimed once) to hand out its
    // mutable slices to whichever thread runs it.
    let blocks: Vec<_> = p
        .chunks_mut(BLOCK)
        .zip(g.chunks(BLOCK))
        .map(|(pb, gb)| {
            let bb: Vec<&mut [T]> = buf_blocks.iter_mut().filter_map(|it| it.next()).collect();
            Mutex::new((pb, gb, bb))
        })
        .collect();
    for_each_tile(blocks.len(), &|t| {
        let mut guard = blocks[t].lock().unwrap_or_else(|e| e.into_inner());
        let (pb, gb, bb) = &mut *guard;
        f(pb, gb, bb);
    });
}
