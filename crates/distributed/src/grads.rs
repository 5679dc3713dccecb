//! Rank 0's parameters to every rank, and gradients averaged over the ranks before every
//! optimizer step ([`DistributedOptimizer`]).

use crate::Comm;
use nabla_core::{DType, Gradients, Tensor};
use nabla_nn::optim::{clip_grad_norm, Optimizer, OptimizerState, ParamGroups};
use nabla_nn::{Error, Result};
use std::rc::Rc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Instant;

/// Nanoseconds this process spent in gradient all-reduces (for the overlap measurement).
static ALLREDUCE_NANOS: AtomicU64 = AtomicU64::new(0);

/// Seconds this process has spent averaging gradients so far (waiting included).
pub fn allreduce_seconds() -> f64 {
    ALLREDUCE_NANOS.load(Ordering::Relaxed) as f64 * 1e-9
}

/// Overwrite every tensor in `tensors` (parameters, buffers) with `root`'s values, so all
/// ranks start from the same model. f32 tensors travel as they are, others as f64 (exact
/// for every dtype nabla stores parameters in).
pub fn broadcast_tensors(comm: &dyn Comm, tensors: &[Tensor], root: usize) -> Result<()> {
    if comm.size() == 1 {
        return Ok(());
    }
    for t in tensors {
        let new = if t.dtype() == DType::F32 {
            let mut v = t.to_vec_f32();
            comm.broadcast_f32(&mut v, root);
            Tensor::from_vec(v, t.shape())?
        } else {
            let v = t.to_vec_f64();
            let mut bytes: Vec<u8> = v.iter().flat_map(|x| x.to_le_bytes()).collect();
            comm.broadcast_bytes(&mut bytes, root);
            let v: Vec<f64> = bytes
                .chunks_exact(8)
                .map(|c| f64::from_le_bytes(c.try_into().expect("8 bytes")))
                .collect();
            Tensor::from_vec(v, t.shape())?.to_dtype(t.dtype())?
        };
        t.assign(&new)?;
    }
    Ok(())
}

/// The gradients of `params` averaged over the ranks: summed by all-reduce in buckets of
/// about `bucket_bytes` (one collective per bucket, in parameter order, f32 and f64
/// separately), then divided by the world size. A parameter with no gradient on some ranks
/// counts as zero there; one with none on any rank stays without (PyTorch skips it too).
pub fn all_reduce_gradients(
    comm: &dyn Comm,
    params: &[Tensor],
    grads: &Gradients,
    bucket_bytes: usize,
) -> Result<Gradients> {
    let start = Instant::now();
    let mut out = Gradients::default();
    let size = comm.size();
    let mut present: Vec<f32> = params
        .iter()
        .map(|p| f32::from(u8::from(grads.get(p).is_some())))
        .collect();
    if size > 1 {
        comm.all_reduce_sum_f32(&mut present);
    }
    for dtype in [DType::F32, DType::F64] {
        let mut bucket: Vec<(usize, Tensor)> = vec![];
        let mut bytes = 0;
        for (i, p) in params.iter().enumerate() {
            if present[i] == 0.0 {
                continue;
            }
            if p.dtype() != DType::F32 && p.dtype() != DType::F64 {
                return Err(Error::Config(format!(
                    "distributed training: parameter {i} is {:?}; only f32 and f64 gradients can be averaged",
                    p.dtype()
                )));
            }
            if p.dtype() != dtype {
                continue;
            }
            let g = grads.get(p).cloned().unwrap_or_else(|| Tensor::zeros(p.shape(), dtype));
            bytes += g.numel() * if dtype == DType::F32 { 4 } else { 8 };
            bucket.push((i, g));
            if bytes >= bucket_bytes {
                reduce_bucket(comm, params, std::mem::take(&mut bucket), &mut out)?;
                bytes = 0;
            }
        }
        reduce_bucket(comm, params, bucket, &mut out)?;
    }
    let nanos = start.elapsed().as_nanos() as u64;
    ALLREDUCE_NANOS.fetch_add(nanos, Ordering::Relaxed);
    Ok(out)
}

/// One bucket: flatten, sum over the ranks, divide by the world size, split back.
fn reduce_bucket(comm: &dyn Comm, params: &[Tensor], bucket: Vec<(usize, Tensor)>, out: &mut Gradients) -> Result<()> {
    let Some((_, first)) = bucket.first() else {
        return Ok(());
    };
    let size = comm.size();
    if size == 1 {
        for (i, g) in bucket {
            out.insert(&params[i], g);
        }
        return Ok(());
    }
    if first.dtype() == DType::F32 {
        let mut flat: Vec<f32> = bucket.iter().flat_map(|(_, g)| g.to_vec_f32()).collect();
        comm.all_reduce_sum_f32(&mut flat);
        let inv = 1.0 / size as f32;
        let mut at = 0;
        for (i, g) in &bucket {
            let part: Vec<f32> = flat[at..at + g.numel()].iter().map(|x| x * inv).collect();
            at += g.numel();
            out.insert(&params[*i], Tensor::from_vec(part, g.shape())?);
        }
    } else {
        let mut flat: Vec<f64> = bucket.iter().flat_map(|(_, g)| g.to_vec_f64()).collect();
        comm.all_reduce_sum_f64(&mut flat);
        let inv = 1.0 / size as f64;
        let mut at = 0;
        for (i, g) in &bucket {
            let part: Vec<f64> = flat[at..at + g.numel()].iter().map(|x| x * inv).collect();
            at += g.numel();
            out.insert(&params[*i], Tensor::from_vec(part, g.shape())?);
        }
    }
    Ok(())
}

/// A task's optimizer whose [`Optimizer::step`] first averages the gradients over the ranks
/// ([`all_reduce_gradients`]), clips their global norm if asked (after averaging, so every
/// rank clips the same gradients), then steps the inner optimizer. Everything else (rates,
/// groups, state for checkpoints) is the inner optimizer's, so checkpoints do not change.
pub struct DistributedOptimizer {
    inner: Box<dyn Optimizer>,
    comm: Rc<dyn Comm>,
    bucket_bytes: usize,
    clip: Option<f64>,
}

impl DistributedOptimizer {
    /// Wrap `inner`; buckets of `bucket_bytes`; `clip`: the global norm to clip to.
    pub fn new(inner: Box<dyn Optimizer>, comm: Rc<dyn Comm>, bucket_bytes: usize, clip: Option<f64>) -> Self {
        DistributedOptimizer {
            inner,
            comm,
            bucket_bytes: bucket_bytes.max(1),
            clip,
        }
    }
}

impl Optimizer for DistributedOptimizer {
    fn step(&mut self, grads: &Gradients) -> Result<()> {
        let params = self.inner.param_groups().all_params();
        let mut avg = all_reduce_gradients(self.comm.as_ref(), &params, grads, self.bucket_bytes)?;
        if let Some(max) = self.clip {
            clip_grad_norm(&mut avg, &params, max)?;
        }
        self.inner.step(&avg)
    }
    fn param_groups(&self) -> &ParamGroups {
        self.inner.param_groups()
    }
    fn param_groups_mut(&mut self) -> &mut ParamGroups {
        self.inner.param_groups_mut()
    }
    fn state_dict(&self) -> Result<OptimizerState> {
        self.inner.state_dict()
    }
    fn load_state_dict(&mut self, state: &OptimizerState) -> Result<()> {
        self.inner.load_state_dict(state)
    }
    fn lr(&self, group: usize) -> Result<f64> {
        self.inner.lr(group)
    }
    fn set_lr(&mut self, group: usize, lr: f64) -> Result<()> {
        self.inner.set_lr(group, lr)
    }
    fn lrs(&self) -> Vec<f64> {
        self.inner.lrs()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::Local;
    use nabla_nn::optim::{Sgd, SgdOptions};

    /// Two ranks that hold the same values: every sum doubles (what a second, identical
    /// rank would add), so averaging must give the values back.
    struct Twin;
    impl Comm for Twin {
        fn rank(&self) -> usize {
            0
        }
        fn size(&self) -> usize {
            2
        }
        fn barrier(&self) {}
        fn broadcast_bytes(&self, _: &mut [u8], _: usize) {}
        fn broadcast_f32(&self, _: &mut [f32], _: usize) {}
        fn all_reduce_sum_f32(&self, b: &mut [f32]) {
            b.iter_mut().for_each(|x| *x *= 2.0);
        }
        fn all_reduce_sum_f64(&self, b: &mut [f64]) {
            b.iter_mut().for_each(|x| *x *= 2.0);
        }
        fn all_gather_u64(&self, v: u64) -> Vec<u64> {
            vec![v, v]
        }
        fn abort(&self, code: i32) -> ! {
            std::process::exit(code)
        }
    }

    fn leaf(v: Vec<f32>) -> Tensor {
        let n = v.len();
        Tensor::from_vec(v, &[n]).unwrap().set_requires_grad(true)
    }

    #[test]
    fn averaged_gradients_in_small_buckets_match_the_local_ones() {
        let (a, b, c) = (leaf(vec![1.0, 2.0, 3.0]), leaf(vec![4.0]), leaf(vec![5.0, 6.0]));
        let d = Tensor::from_vec(vec![7.0f64], &[1]).unwrap().set_requires_grad(true);
        // c takes no part in the loss: no gradient.
        let loss = a
            .square()
            .unwrap()
            .sum_all()
            .unwrap()
            .add(&b.mul_scalar(3.0).unwrap().sum_all().unwrap())
            .unwrap();
        let loss = loss
            .add(&d.square().unwrap().sum_all().unwrap().to_dtype(DType::F32).unwrap())
            .unwrap();
        let grads = loss.backward().unwrap();
        let params = [a.clone(), b.clone(), c.clone(), d.clone()];
        for bucket in [1, 8, 1 << 20] {
            let avg = all_reduce_gradients(&Twin, &params, &grads, bucket).unwrap();
            assert_eq!(avg.get(&a).unwrap().to_vec::<f32>().unwrap(), vec![2.0, 4.0, 6.0]);
            assert_eq!(avg.get(&b).unwrap().to_vec::<f32>().unwrap(), vec![3.0]);
            assert_eq!(avg.get(&d).unwrap().to_vec::<f64>().unwrap(), vec![14.0]);
            assert!(avg.get(&c).is_none());
        }
    }

    #[test]
    fn the_wrapper_steps_like_the_inner_optimizer_and_shares_its_state() {
        let (w, v) = (leaf(vec![1.0, -2.0]), leaf(vec![1.0, -2.0]));
        let opts = SgdOptions {
            lr: 0.1,
            momentum: 0.9,
            ..Default::default()
        };
        let mut plain = Sgd::new(vec![w.clone()], opts).unwrap();
        let inner = Box::new(Sgd::new(vec![v.clone()], opts).unwrap());
        let mut dist = DistributedOptimizer::new(inner, Rc::new(Twin), 4, None);
        for _ in 0..3 {
            plain
                .step(&w.square().unwrap().sum_all().unwrap().backward().unwrap())
                .unwrap();
            dist.step(&v.square().unwrap().sum_all().unwrap().backward().unwrap())
                .unwrap();
        }
        assert_eq!(w.to_vec::<f32>().unwrap(), v.to_vec::<f32>().unwrap());
        assert_eq!(dist.lrs(), vec![0.1]);
        dist.set_lr(0, 0.5).unwrap();
        assert_eq!(dist.lr(0).unwrap(), 0.5);
        let st = dist.state_dict().unwrap();
        assert_eq!(st.tensors.len(), plain.state_dict().unwrap().tensors.len());
    }

    #[test]
    fn the_wrapper_clips_the_averaged_gradients() {
        let v = leaf(vec![3.0, 4.0]);
        let inner = Box::new(
            Sgd::new(
                vec![v.clone()],
                SgdOptions {
                    lr: 1.0,
                    ..Default::default()
                },
            )
            .unwrap(),
        );
        let mut dist = DistributedOptimizer::new(inner, Rc::new(Local), 1 << 20, Some(1.0));
        // Gradient (3, 4), norm 5, clipped to norm 1: (0.6, 0.8).
        dist.step(
            &v.mul(&Tensor::from_vec(vec![3.0f32, 4.0], &[2]).unwrap())
                .unwrap()
                .sum_all()
                .unwrap()
                .backward()
                .unwrap(),
        )
        .unwrap();
        let got = v.to_vec::<f32>().unwrap();
        assert!((got[0] - 2.4).abs() < 1e-6 && (got[1] - 3.2).abs() < 1e-6, "{got:?}");
    }

    #[test]
    fn broadcast_on_one_rank_keeps_the_tensors() {
        let t = leaf(vec![1.0, 2.0]);
        broadcast_tensors(&Local, std::slice::from_ref(&t), 0).unwrap();
        assert_eq!(t.to_vec::<f32>().unwrap(), vec![1.0, 2.0]);
    }
}
