//! Synchronized batch norm (PyTorch's `SyncBatchNorm`): in training mode every batch-norm
//! layer takes its statistics over the global batch. Forward all-reduces the per-channel
//! sums (then the sums of squared deviations from the global mean); the all-reduce is an
//! op whose backward all-reduces the incoming gradient, so backward exchanges the matching
//! two sums (Σ dy and Σ dy·x̂ in effect) and each rank's input gradient is that of the
//! global batch. Weight and bias gradients stay per rank; [`crate::DistributedOptimizer`]
//! averages them like any other.

use crate::Comm;
use nabla_core::Tensor;
use nabla_nn::{set_batch_norm_train_hook, BatchNormTrainHook, Result};
use std::cell::RefCell;
use std::rc::Rc;

thread_local! {
    // The backward rule must be Send + Sync, so it finds the communicator here rather than
    // capturing it (backward runs on the thread that called forward).
    static COMM: RefCell<Option<Rc<dyn Comm>>> = const { RefCell::new(None) };
}

/// Synchronize every batch-norm layer's training statistics over `comm`'s ranks (on this
/// thread), or (`None`) go back to per-rank statistics.
pub fn install_sync_batch_norm(comm: Option<Rc<dyn Comm>>) {
    let hook = comm.is_some().then(|| Rc::new(sync_train) as Rc<BatchNormTrainHook>);
    COMM.with(|c| *c.borrow_mut() = comm);
    set_batch_norm_train_hook(hook);
}

fn with_comm<T>(f: impl FnOnce(&dyn Comm) -> T) -> T {
    COMM.with(|c| {
        let c = c.borrow();
        f(c.as_deref().unwrap_or(&crate::Local))
    })
}

/// The sum of `t` over the ranks, differentiable: the gradient of each rank's input is the
/// sum over the ranks of the output's gradient.
fn all_reduce_sum(t: &Tensor) -> nabla_core::Result<Tensor> {
    let mut v = t.to_vec_f64();
    with_comm(|c| c.all_reduce_sum_f64(&mut v));
    let out = Tensor::from_vec(v, t.shape())?.to_dtype(t.dtype())?;
    Ok(out.with_backward("all_reduce_sum", &[t], |gy, _| Ok(vec![Some(all_reduce_sum(gy)?)])))
}

/// Batch norm over the global batch, written with tensor ops around two all-reduces.
fn sync_train(x: &Tensor, w: &Tensor, b: &Tensor, eps: f64) -> Result<(Tensor, Tensor, Tensor, usize)> {
    let c = x.shape()[1];
    let red: Vec<isize> = (0..x.rank() as isize).filter(|&d| d != 1).collect();
    let mut stat = vec![1usize; x.rank()];
    stat[1] = c;
    let mut n = [(x.numel() / c.max(1)) as f64];
    with_comm(|comm| comm.all_reduce_sum_f64(&mut n));
    let n = n[0];
    let mean = all_reduce_sum(&x.sum(&red, false)?)?.mul_scalar(1.0 / n)?;
    let xc = x.sub(&mean.reshape(&stat)?)?;
    // Deviations from the global mean, so the variance does not lose digits as Σx²−n·mean² would.
    let var = all_reduce_sum(&xc.square()?.sum(&red, false)?)?.mul_scalar(1.0 / n)?;
    let inv = var.add_scalar(eps)?.powf(-0.5)?;
    let y = xc.mul(&inv.mul(w)?.reshape(&stat)?)?.add(&b.reshape(&stat)?)?;
    Ok((y, mean.detach(), var.detach(), n as usize))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::Local;
    use nabla_core::{DType, Generator};
    use nabla_nn::{BatchNorm2d, Mode, Module};

    fn close(a: &[f32], b: &[f32], tol: f32) {
        assert_eq!(a.len(), b.len());
        for (x, y) in a.iter().zip(b) {
            assert!((x - y).abs() <= tol * (1.0 + y.abs()), "{x} vs {y}");
        }
    }

    #[test]
    fn synced_batch_norm_on_one_rank_equals_plain_batch_norm() {
        let mut g = Generator::new(3);
        let x = Tensor::randn(&[4, 3, 5, 5], DType::F32, &mut g)
            .mul_scalar(2.0)
            .unwrap()
            .add_scalar(1.0)
            .unwrap();
        let x = x.set_requires_grad(true);
        let probe = Tensor::randn(&[4, 3, 5, 5], DType::F32, &mut g);
        let run = |sync: bool| {
            let bn = BatchNorm2d::new(3);
            bn.weight
                .as_ref()
                .unwrap()
                .leaf()
                .assign(&Tensor::from_vec(vec![0.5f32, 1.5, -1.0], &[3]).unwrap())
                .unwrap();
            install_sync_batch_norm(sync.then(|| Rc::new(Local) as Rc<dyn Comm>));
            let y = bn.forward(&x, Mode::Train).unwrap();
            install_sync_batch_norm(None);
            let grads = y.mul(&probe).unwrap().sum_all().unwrap().backward().unwrap();
            let w = bn.weight.as_ref().unwrap().leaf();
            let rm = bn.running_mean.as_ref().unwrap().leaf().to_vec_f32();
            let rv = bn.running_var.as_ref().unwrap().leaf().to_vec_f32();
            (
                y.to_vec_f32(),
                grads.get(&x).unwrap().to_vec_f32(),
                grads.get(&w).unwrap().to_vec_f32(),
                rm,
                rv,
            )
        };
        let (plain, synced) = (run(false), run(true));
        close(&synced.0, &plain.0, 1e-5);
        close(&synced.1, &plain.1, 1e-4);
        close(&synced.2, &plain.2, 1e-4);
        close(&synced.3, &plain.3, 1e-6);
        close(&synced.4, &plain.4, 1e-6);
    }
}
