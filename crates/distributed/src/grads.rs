//! Rank 0's parameters to every rank, and gradients averaged over the ranks before every
//! optimizer step ([`DistributedOptimizer`]).

use crate::buckets::{average, fill, Buf, Layout};
use crate::overlap::Overlap;
use crate::Comm;
use nabla_core::autograd::{on_grad_ready, GradReadyHook};
use nabla_core::{DType, Gradients, Tensor};
use nabla_nn::optim::{clip_grad_norm, Optimizer, OptimizerState, ParamGroups};
use nabla_nn::Result;
use std::cell::RefCell;
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
/// about `bucket_bytes` (one collective per bucket, the parameters last first as PyTorch's
/// DDP, f32 and f64 separately), then divided by the world size. A parameter with no
/// gradient on some ranks counts as zero there; one with none on any rank stays without
/// (PyTorch skips it too).
pub fn all_reduce_gradients(
    comm: &dyn Comm,
    params: &[Tensor],
    grads: &Gradients,
    bucket_bytes: usize,
) -> Result<Gradients> {
    reduce_blocking(comm, &mut Layout::new(params, bucket_bytes), params, grads)
}

/// [`all_reduce_gradients`] in `layout`'s buckets (whose buffers it reuses).
fn reduce_blocking(comm: &dyn Comm, layout: &mut Layout, params: &[Tensor], grads: &Gradients) -> Result<Gradients> {
    let start = Instant::now();
    let size = comm.size();
    if size == 1 {
        let mut out = Gradients::default();
        for p in params {
            if let Some(g) = grads.get(p) {
                out.insert(p, g.clone());
            }
        }
        return Ok(out);
    }
    let mut present: Vec<f32> = params
        .iter()
        .map(|p| f32::from(u8::from(grads.get(p).is_some())))
        .collect();
    comm.all_reduce_sum_f32(&mut present);
    for b in &mut layout.buckets {
        let Some(buf) = b.buf.as_mut() else { continue };
        for &(i, at, n) in &b.parts {
            fill(buf, at, n, grads.get(&params[i]))?;
        }
        match buf {
            Buf::F32(v) => comm.all_reduce_sum_f32(v),
            Buf::F64(v) => comm.all_reduce_sum_f64(v),
        }
    }
    let out = unpack(layout, params, &present, size);
    ALLREDUCE_NANOS.fetch_add(start.elapsed().as_nanos() as u64, Ordering::Relaxed);
    out
}

/// The averaged gradients from summed buckets, for the parameters some rank had one for.
fn unpack(layout: &Layout, params: &[Tensor], present: &[f32], size: usize) -> Result<Gradients> {
    let mut out = Gradients::default();
    for b in &layout.buckets {
        let Some(buf) = b.buf.as_ref() else { continue };
        for &(i, at, n) in &b.parts {
            if present[i] > 0.0 {
                out.insert(&params[i], average(buf, at, n, size, &params[i])?);
            }
        }
    }
    Ok(out)
}

/// A task's optimizer whose [`Optimizer::step`] first averages the gradients over the ranks
/// (as [`all_reduce_gradients`]), clips their global norm if asked (after averaging, so every
/// rank clips the same gradients), then steps the inner optimizer. Everything else (rates,
/// groups, state for checkpoints) is the inner optimizer's, so checkpoints do not change.
///
/// On more than one rank, and where the communicator allows a second thread
/// ([`Comm::gradient_reducer`]), the all-reduce overlaps backward (see the `overlap`
/// module): each bucket is summed on a communication thread as soon as backward has made
/// its gradients. The sums are bitwise those of the blocking path.
pub struct DistributedOptimizer {
    // Dropped first: its thread ends and frees its communicator before `comm` may finalize MPI.
    _hook: Option<GradReadyHook>,
    overlap: Option<Rc<RefCell<Overlap>>>,
    layout: Layout,
    inner: Box<dyn Optimizer>,
    comm: Rc<dyn Comm>,
    bucket_bytes: usize,
    clip: Option<f64>,
}

impl DistributedOptimizer {
    /// Wrap `inner`; buckets of `bucket_bytes`; `clip`: the global norm to clip to. The
    /// all-reduce overlaps backward where it can ([`DistributedOptimizer::with_overlap`]).
    /// A collective when the world has more than one rank (it may create a communicator).
    pub fn new(inner: Box<dyn Optimizer>, comm: Rc<dyn Comm>, bucket_bytes: usize, clip: Option<f64>) -> Self {
        DistributedOptimizer {
            _hook: None,
            overlap: None,
            layout: Layout::new(&inner.param_groups().all_params(), bucket_bytes.max(1)),
            inner,
            comm,
            bucket_bytes: bucket_bytes.max(1),
            clip,
        }
        .with_overlap(true)
    }

    /// Overlap the all-reduce with backward (`true`, the default) or run it after backward,
    /// in the step. A collective when it changes anything on more than one rank.
    pub fn with_overlap(mut self, on: bool) -> Self {
        self._hook = None;
        self.overlap = None;
        if !on || self.comm.size() == 1 {
            return self;
        }
        let Some(reducer) = self.comm.gradient_reducer() else {
            return self;
        };
        let params = self.inner.param_groups().all_params();
        // Without a thread there is no overlap; the blocking path still works.
        let Ok(o) = Overlap::new(&params, self.bucket_bytes, reducer) else {
            return self;
        };
        let o = Rc::new(RefCell::new(o));
        let weak = Rc::downgrade(&o);
        self._hook = Some(on_grad_ready(move |id, g| {
            if let Some(o) = weak.upgrade() {
                if let Ok(mut o) = o.try_borrow_mut() {
                    o.ready(id, g);
                }
            }
        }));
        self.overlap = Some(o);
        self
    }

    /// The averaged gradients of this step.
    fn average(&mut self, params: &[Tensor], grads: &Gradients) -> Result<Gradients> {
        if let Some(o) = &self.overlap {
            let start = Instant::now();
            let mut o = o.borrow_mut();
            if !o.layout.fits(params) {
                o.relayout(params, self.bucket_bytes);
            } else if let Some(mine) = o.complete(params, grads)? {
                let mut present = mine;
                self.comm.all_reduce_sum_f32(&mut present);
                let out = unpack(&o.layout, params, &present, self.comm.size());
                ALLREDUCE_NANOS.fetch_add(start.elapsed().as_nanos() as u64, Ordering::Relaxed);
                return out;
            }
            return reduce_blocking(self.comm.as_ref(), &mut o.layout, params, grads);
        }
        if !self.layout.fits(params) {
            self.layout = Layout::new(params, self.bucket_bytes);
        }
        reduce_blocking(self.comm.as_ref(), &mut self.layout, params, grads)
    }
}

impl Optimizer for DistributedOptimizer {
    fn step(&mut self, grads: &Gradients) -> Result<()> {
        let params = self.inner.param_groups().all_params();
        let mut avg = self.average(&params, grads)?;
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
    use crate::{Local, Reducer};
    use nabla_nn::optim::{Sgd, SgdOptions};
    use std::sync::atomic::AtomicUsize;
    use std::sync::Arc;

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
        fn gradient_reducer(&self) -> Option<Box<dyn Reducer>> {
            Some(Box::new(TwinReducer(TWIN_THREAD_SUMS.clone())))
        }
        fn abort(&self, code: i32) -> ! {
            std::process::exit(code)
        }
    }

    static TWIN_THREAD_SUMS: std::sync::LazyLock<Arc<AtomicUsize>> =
        std::sync::LazyLock::new(|| Arc::new(AtomicUsize::new(0)));

    /// Twin's sums on the communication thread, counted (to see the overlap run).
    struct TwinReducer(Arc<AtomicUsize>);
    impl Reducer for TwinReducer {
        fn sum_f32(&mut self, b: &mut [f32]) {
            self.0.fetch_add(1, Ordering::SeqCst);
            b.iter_mut().for_each(|x| *x *= 2.0);
        }
        fn sum_f64(&mut self, b: &mut [f64]) {
            self.0.fetch_add(1, Ordering::SeqCst);
            b.iter_mut().for_each(|x| *x *= 2.0);
        }
    }

    /// Three steps of a two-layer net, `twice`: two backward passes accumulated per step.
    fn train(overlap: bool, bucket: usize, twice: bool) -> Vec<Vec<f32>> {
        let mut g = nabla_core::Generator::new(7);
        let w1 = Tensor::randn(&[4, 3], DType::F32, &mut g).set_requires_grad(true);
        let w2 = Tensor::randn(&[3, 2], DType::F32, &mut g).set_requires_grad(true);
        let b2 = Tensor::zeros(&[2], DType::F64).set_requires_grad(true);
        let params = vec![w1.clone(), w2.clone(), b2.clone()];
        let sgd = Sgd::new(
            params.clone(),
            SgdOptions {
                lr: 0.1,
                momentum: 0.9,
                ..Default::default()
            },
        )
        .unwrap();
        let mut opt = DistributedOptimizer::new(Box::new(sgd), Rc::new(Twin), bucket, None).with_overlap(overlap);
        let x = Tensor::randn(&[5, 4], DType::F32, &mut g);
        let loss = || {
            let h = x.matmul(&w1).unwrap().relu().unwrap().matmul(&w2).unwrap();
            let b = b2.to_dtype(DType::F32).unwrap();
            h.add(&b).unwrap().square().unwrap().sum_all().unwrap()
        };
        for _ in 0..3 {
            let mut grads = loss().backward().unwrap();
            if twice {
                grads.accumulate(loss().backward().unwrap()).unwrap();
            }
            opt.step(&grads).unwrap();
        }
        params.iter().map(|p| p.to_vec_f32()).collect()
    }

    #[test]
    fn overlapped_all_reduce_equals_the_blocking_one_bitwise() {
        for bucket in [1, 40, 1 << 20] {
            let before = TWIN_THREAD_SUMS.load(Ordering::SeqCst);
            let overlapped = train(true, bucket, false);
            assert!(
                TWIN_THREAD_SUMS.load(Ordering::SeqCst) > before,
                "the thread summed buckets"
            );
            assert_eq!(overlapped, train(false, bucket, false), "bucket {bucket}");
            // Two backward passes per step: the overlapped round is not the step's, and the
            // blocking path on the accumulated gradients gives the same training.
            assert_eq!(train(true, bucket, true), train(false, bucket, true), "bucket {bucket}");
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
