//! The engine's part of data-parallel training: what [`crate::fit`] does differently when
//! [`crate::FitOptions::distributed`] is set. Every rank runs the same loop; rank 0 alone
//! prints and writes files.
//!
//! - At start: the resolved configurations' hashes are compared (different → an error on
//!   every rank), a world larger than the training set is refused, rank 0's parameters and
//!   buffers are broadcast, and each optimizer is wrapped in a
//!   [`DistributedOptimizer`] (gradients averaged in buckets before every step, clipping
//!   after the average).
//! - Data: the training loader is sharded as PyTorch's `DistributedSampler` (seeded order,
//!   padded by repeating its start), each rank taking `batch_size / world` samples of every
//!   global batch; validation is sharded without padding and its metrics (per-sample means,
//!   as every task here reports) are averaged weighted by each rank's samples, so the
//!   numbers equal the single-process ones up to rounding.
//! - Each step, the ranks agree on stopping (Ctrl-C reaches them at different moments).
//! - Epoch sums are all-reduced, so the training metrics are the global batch's.

use crate::state::Sums;
use crate::{Result, Task, TrainError};
use nabla_data::DataLoader;
use nabla_distributed::{
    all_agree, broadcast_string, broadcast_tensors, install_sync_batch_norm, Comm, DistributedOptimizer,
};
use std::rc::Rc;

/// Data-parallel training: this process is one rank of `comm`.
#[derive(Clone)]
pub struct Distributed {
    /// The ranks training together.
    pub comm: Rc<dyn Comm>,
    /// Bytes of gradients per all-reduce (PyTorch's default is 25 MB).
    pub bucket_bytes: usize,
    /// Batch norm over the global batch (`SyncBatchNorm`) rather than each rank's part.
    pub sync_bn: bool,
}

impl std::fmt::Debug for Distributed {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "Distributed {{ rank: {}, size: {}, bucket_bytes: {}, sync_bn: {} }}",
            self.comm.rank(),
            self.comm.size(),
            self.bucket_bytes,
            self.sync_bn
        )
    }
}

/// FNV-1a, enough to tell two configuration texts apart.
fn fnv1a(text: &str) -> u64 {
    text.bytes().fold(0xcbf2_9ce4_8422_2325, |h, b| {
        (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3)
    })
}

impl Distributed {
    /// Whether this rank prints and writes files.
    pub fn is_main(&self) -> bool {
        self.comm.rank() == 0
    }

    /// The checks and the synchronization before the first step (see the module doc).
    pub(crate) fn start(
        &self,
        task: &dyn Task,
        optims: &mut Vec<crate::Optim>,
        config: &str,
        samples: usize,
    ) -> Result<()> {
        let (rank, size) = (self.comm.rank(), self.comm.size());
        let hashes = self.comm.all_gather_u64(fnv1a(config));
        if let Some(r) = hashes.iter().position(|&h| h != hashes[0]) {
            return Err(TrainError::msg(format!(
                "distributed training: rank {r} was started with a different configuration than rank 0 \
                 (every rank must get the same arguments); this is rank {rank}"
            )));
        }
        if size > samples {
            return Err(TrainError::msg(format!(
                "distributed training: {size} ranks but only {samples} training samples; use at most {samples} ranks"
            )));
        }
        let tensors: Vec<_> = task
            .models()
            .iter()
            .flat_map(|(_, m)| m.state_dict().into_iter().map(|(_, t)| t))
            .collect();
        broadcast_tensors(self.comm.as_ref(), &tensors, 0)?;
        *optims = std::mem::take(optims)
            .into_iter()
            .map(|o| {
                // Clipping moves into the wrapper: it must see the averaged gradients.
                let d = DistributedOptimizer::new(o.optimizer, self.comm.clone(), self.bucket_bytes, o.clip_grad_norm);
                crate::Optim::new(Box::new(d), o.schedule)
            })
            .collect();
        install_sync_batch_norm(self.sync_bn.then(|| self.comm.clone()));
        Ok(())
    }

    /// This rank's training loader: its shard of every epoch, `batch_size / world` samples
    /// per step, so `batch_size` stays the global batch.
    pub(crate) fn shard_train(&self, loader: DataLoader) -> Result<DataLoader> {
        let (b, n) = (loader.batch_size(), self.comm.size());
        if b % n != 0 {
            return Err(TrainError::msg(format!(
                "distributed training: the batch size {b} (the global batch) is not divisible by the {n} ranks"
            )));
        }
        Ok(loader.shard(self.comm.rank(), n, true)?.with_batch_size(b / n)?)
    }

    /// This rank's validation loader: its shard, unpadded, so no sample counts twice.
    pub(crate) fn shard_val(&self, loader: &DataLoader) -> Result<DataLoader> {
        Ok(loader.clone().shard(self.comm.rank(), self.comm.size(), false)?)
    }

    /// The ranks' validation metrics (per-sample means over `n` samples each), averaged
    /// weighted by samples.
    pub(crate) fn reduce_val(&self, metrics: Vec<(String, f64)>, n: usize) -> Vec<(String, f64)> {
        let mut v: Vec<f64> = metrics.iter().map(|(_, m)| m * n as f64).collect();
        v.push(n as f64);
        self.comm.all_reduce_sum_f64(&mut v);
        let total = v.pop().unwrap_or(1.0).max(1.0);
        metrics.into_iter().zip(v).map(|((k, _), s)| (k, s / total)).collect()
    }

    /// The epoch's sums over all ranks (samples and every sum; the seconds stay this rank's).
    /// Rank 0 names the sums: it has them all (a resumed epoch's sums so far are its alone),
    /// and the others may list theirs in another order.
    pub(crate) fn reduce_sums(&self, p: &Sums) -> Sums {
        let mine: Vec<&str> = p.values.iter().map(|(k, _)| k.as_str()).collect();
        let names = broadcast_string(self.comm.as_ref(), &mine.join("\n"), 0);
        let names: Vec<&str> = names.split('\n').filter(|k| !k.is_empty()).collect();
        let mut v: Vec<f64> = names.iter().map(|k| p.get(k)).collect();
        v.push(p.seen as f64);
        self.comm.all_reduce_sum_f64(&mut v);
        let seen = v.pop().unwrap_or(0.0) as u64;
        Sums {
            seen,
            seconds: p.seconds,
            values: names.iter().zip(v).map(|(k, s)| (k.to_string(), s)).collect(),
        }
    }

    /// Whether any rank was asked to stop.
    pub(crate) fn agree_stop(&self, asked: bool) -> bool {
        all_agree(self.comm.as_ref(), asked)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn configuration_hashes_tell_texts_apart() {
        assert_eq!(fnv1a("lr = 0.1"), fnv1a("lr = 0.1"));
        assert_ne!(fnv1a("lr = 0.1"), fnv1a("lr = 0.2"));
    }
}
