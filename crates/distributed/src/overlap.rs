//! Overlapping the gradient all-reduce with backward (DDP's bucketed overlap).
//!
//! A gradient-ready hook ([`nabla_core::autograd::on_grad_ready`]) copies each parameter's
//! final gradient into its bucket during backward; when a bucket is full and every bucket
//! before it has been started, it goes to a communication thread that sums it over the
//! ranks (a blocking all-reduce on a communicator of its own) while backward goes on. The
//! optimizer step starts the buckets still waiting (zeros for parameters without gradient),
//! waits for all and averages. Buckets start strictly in order, so every rank issues the
//! same collectives in the same order even when a parameter's gradient is missing on some.
//!
//! Why a thread rather than MPI's non-blocking collectives: Open MPI progresses a
//! non-blocking all-reduce only while the process is inside an MPI call, so a bucket started
//! during backward would mostly move when the step waits for it; the thread makes progress
//! itself, and runs the very blocking all-reduce the non-overlapped path runs, so both give
//! bitwise equal sums. Its buffers move to the thread and back by channel: no borrow has to
//! outlive the backward call.
//!
//! A backward whose gradients are not the ones stepped (a second backward before the step,
//! gradients replaced or accumulated by the task) is detected at the step: the started
//! buckets are finished and discarded on every rank alike, and the blocking path runs.

use crate::buckets::{fill, Buf, Layout};
use crate::comm::Reducer;
use nabla_core::{Gradients, Tensor};
use nabla_nn::Result;
use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc::{channel, Receiver, Sender};
use std::thread::JoinHandle;
use std::time::Instant;

/// Nanoseconds the communication threads spent summing buckets.
static COMM_NANOS: AtomicU64 = AtomicU64::new(0);

/// Seconds the communication threads have spent in all-reduces so far (the part of the
/// communication that overlapped path runs; waiting for other ranks included).
pub fn comm_thread_seconds() -> f64 {
    COMM_NANOS.load(Ordering::Relaxed) as f64 * 1e-9
}

/// One optimizer's overlap state: its buckets, this round's gradients, the thread.
pub(crate) struct Overlap {
    pub(crate) layout: Layout,
    param_of: HashMap<usize, usize>,
    /// The gradient each parameter got in this round (to check it is the one stepped).
    got: Vec<Option<Tensor>>,
    /// Per bucket: parameters still to arrive.
    missing: Vec<usize>,
    /// The next bucket to start.
    next: usize,
    in_flight: usize,
    /// A parameter got a second gradient before the step: this round is not the step's.
    stale: bool,
    error: Option<String>,
    to_thread: Option<Sender<(usize, Buf)>>,
    from_thread: Receiver<(usize, Buf)>,
    thread: Option<JoinHandle<()>>,
}

impl Overlap {
    /// Buckets over `params`; `reducer` sums them on a thread of its own.
    pub(crate) fn new(params: &[Tensor], bucket_bytes: usize, mut reducer: Box<dyn Reducer>) -> Result<Overlap> {
        let (to_thread, requests) = channel::<(usize, Buf)>();
        let (results, from_thread) = channel();
        let thread = std::thread::Builder::new()
            .name("nabla-allreduce".into())
            .spawn(move || {
                while let Ok((b, mut buf)) = requests.recv() {
                    let t = Instant::now();
                    match &mut buf {
                        Buf::F32(v) => reducer.sum_f32(v),
                        Buf::F64(v) => reducer.sum_f64(v),
                    }
                    COMM_NANOS.fetch_add(t.elapsed().as_nanos() as u64, Ordering::Relaxed);
                    if results.send((b, buf)).is_err() {
                        break;
                    }
                }
            })
            .map_err(|e| nabla_nn::Error::Config(format!("distributed training: cannot start a thread: {e}")))?;
        let mut o = Overlap {
            layout: Layout::new(params, bucket_bytes),
            param_of: HashMap::new(),
            got: vec![],
            missing: vec![],
            next: 0,
            in_flight: 0,
            stale: false,
            error: None,
            to_thread: Some(to_thread),
            from_thread,
            thread: Some(thread),
        };
        o.relayout(params, bucket_bytes);
        Ok(o)
    }

    /// New buckets for `params` (the optimizer's parameters changed), and a fresh round.
    pub(crate) fn relayout(&mut self, params: &[Tensor], bucket_bytes: usize) {
        self.layout = Layout::new(params, bucket_bytes);
        self.param_of = params
            .iter()
            .enumerate()
            .filter_map(|(i, p)| Some((p.grad_id()?, i)))
            .collect();
        self.got = vec![None; params.len()];
        self.reset();
    }

    fn reset(&mut self) {
        self.got.iter_mut().for_each(|g| *g = None);
        self.missing = self
            .layout
            .buckets
            .iter()
            .map(|b| b.parts.iter().filter(|(i, _, _)| self.layout.ids[*i].is_some()).count())
            .collect();
        self.next = 0;
        self.stale = false;
        self.error = None;
    }

    /// The hook: leaf `id`'s gradient `g` is final.
    pub(crate) fn ready(&mut self, id: usize, g: &Tensor) {
        let Some(&i) = self.param_of.get(&id) else { return };
        if self.stale || self.got[i].is_some() {
            self.stale = true;
            return;
        }
        let (b, k) = self.layout.slot[i];
        let (_, at, n) = self.layout.buckets[b].parts[k];
        let Some(buf) = self.layout.buckets[b].buf.as_mut() else {
            return;
        };
        if let Err(e) = fill(buf, at, n, Some(g)) {
            self.error.get_or_insert(e.to_string());
            self.stale = true;
            return;
        }
        self.got[i] = Some(g.clone());
        self.missing[b] -= 1;
        while self.next < self.missing.len() && self.missing[self.next] == 0 {
            self.launch();
        }
    }

    /// Start the next bucket (zeros where a parameter got no gradient).
    fn launch(&mut self) {
        let b = self.next;
        self.next += 1;
        let bucket = &mut self.layout.buckets[b];
        let Some(mut buf) = bucket.buf.take() else { return };
        for &(i, at, n) in &bucket.parts {
            if self.got[i].is_none() {
                // Zeros never fail to fill.
                let _ = fill(&mut buf, at, n, None);
            }
        }
        let Some(to) = self.to_thread.as_ref() else {
            bucket.buf = Some(buf);
            return;
        };
        match to.send((b, buf)) {
            Ok(()) => self.in_flight += 1,
            // The thread is gone (it panicked): keep the buffer, report at the step.
            Err(e) => {
                bucket.buf = Some(e.0 .1);
                self.error.get_or_insert("the all-reduce thread stopped".into());
            }
        }
    }

    /// Start every bucket not started yet and wait for all.
    fn finish(&mut self) {
        while self.next < self.missing.len() {
            self.launch();
        }
        while self.in_flight > 0 {
            let Ok((b, buf)) = self.from_thread.recv() else {
                self.error.get_or_insert("the all-reduce thread stopped".into());
                break;
            };
            self.layout.buckets[b].buf = Some(buf);
            self.in_flight -= 1;
        }
    }

    /// The step's part: finish this round; if its gradients are `grads` (for `params`),
    /// return which parameters had one on this rank (the buffers hold the sums); `None` if
    /// the round was not this step's (the caller takes the blocking path).
    pub(crate) fn complete(&mut self, params: &[Tensor], grads: &Gradients) -> Result<Option<Vec<f32>>> {
        self.finish();
        if let Some(e) = self.error.take() {
            self.reset();
            return Err(nabla_nn::Error::Config(format!("distributed training: {e}")));
        }
        let same = !self.stale
            && params.iter().zip(&self.got).all(|(p, got)| match (grads.get(p), got) {
                (None, None) => true,
                (Some(g), Some(h)) => g.shares_storage(h) && g.shape() == h.shape(),
                _ => false,
            });
        let present = same.then(|| self.got.iter().map(|g| f32::from(u8::from(g.is_some()))).collect());
        self.reset();
        Ok(present)
    }
}

impl Drop for Overlap {
    fn drop(&mut self) {
        self.finish();
        // Closing the channel ends the thread, which frees its communicator.
        self.to_thread = None;
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}
