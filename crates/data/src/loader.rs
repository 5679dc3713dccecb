//! Batching: per-epoch seeded shuffles, `drop_last`, background workers and resumable positions.
//!
//! ```
//! use nabla_data::{DataLoader, TensorDataset};
//! use nabla_core::Tensor;
//! let x = Tensor::from_vec((0..10).map(|v| v as f32).collect::<Vec<_>>(), &[10, 1])?;
//! let loader = DataLoader::new(TensorDataset::new(&x, vec![0; 10])?, 4)?
//!     .shuffle(true)
//!     .seed(7)
//!     .num_workers(2);
//! let sizes: Vec<usize> = loader.epoch(0).map(|b| b.map(|b| b.labels.len())).collect::<Result<_, _>>()?;
//! assert_eq!(sizes, vec![4, 4, 2]);
//! # Ok::<(), nabla_data::DataError>(())
//! ```
//!
//! Determinism: the order of epoch `e` comes from `(seed, e)` alone, and the augmentation
//! randomness of sample `k` of batch `b` from `(seed, e, b, k)` alone. Workers only decide
//! *when* a batch is built, never *what* it holds, so 0 or N workers give identical batches,
//! and a run resumed from a saved [`LoaderPosition`] sees the batches it would have seen.

use crate::buffers::{extend_f32, reserve_exact, tensor};
use crate::transforms::{Image, Transform};
use crate::{BatchBuffers, DataError, Dataset, Result};
use nabla_core::{Generator, Tensor};
use std::borrow::Cow;
use std::sync::mpsc::{sync_channel, Receiver};
use std::sync::Arc;
use std::thread::JoinHandle;

/// Where a loader stands: the epoch, the next batch within it, and the seed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct LoaderPosition {
    /// The epoch (0-based).
    pub epoch: u64,
    /// The index of the next batch to produce within the epoch.
    pub batch: usize,
    /// The seed the shuffles and augmentations derive from.
    pub seed: u64,
}

impl LoaderPosition {
    /// As three integers, for checkpoints.
    pub fn to_u64s(&self) -> [u64; 3] {
        [self.epoch, self.batch as u64, self.seed]
    }

    /// From the three integers of [`to_u64s`](Self::to_u64s).
    pub fn from_u64s(v: [u64; 3]) -> Result<Self> {
        let batch = usize::try_from(v[1])
            .map_err(|_| DataError::invalid("LoaderPosition", format!("batch {} does not fit usize", v[1])))?;
        Ok(LoaderPosition {
            epoch: v[0],
            batch,
            seed: v[2],
        })
    }
}

/// One batch: inputs stacked along a new first dim, with labels or regression targets, in
/// the data set's dtype.
#[derive(Debug, Clone)]
pub struct Batch {
    /// N × (sample shape): N×C×H×W for images, N×F for tables.
    pub inputs: Tensor,
    /// Class labels (empty for regression).
    pub labels: Vec<usize>,
    /// Regression targets, N×T (`None` for classification).
    pub targets: Option<Tensor>,
    /// The data-set indices of the samples, in batch order.
    pub indices: Vec<usize>,
}

/// Turns a [`Dataset`] into a stream of [`Batch`]es (PyTorch's `DataLoader`).
#[derive(Clone)]
pub struct DataLoader {
    dataset: Arc<dyn Dataset>,
    transform: Option<Arc<dyn Transform>>,
    batch_size: usize,
    shuffle: bool,
    drop_last: bool,
    seed: u64,
    workers: usize,
    prefetch: usize,
    shard: Option<Shard>,
}

/// One rank's part of every epoch (PyTorch's `DistributedSampler`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Shard {
    rank: usize,
    world: usize,
    pad: bool,
}

/// SplitMix64's finaliser: a bijective mix, so distinct inputs give unrelated streams.
fn mix(x: u64) -> u64 {
    let mut z = x.wrapping_add(0x9E37_79B9_7F4A_7C15);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

fn derive(parts: &[u64]) -> u64 {
    parts.iter().fold(0x006E_6162_6C61_u64, |h, &p| mix(h ^ mix(p)))
}

const SHUFFLE_TAG: u64 = 1;
const AUGMENT_TAG: u64 = 2;

impl DataLoader {
    /// A loader of `batch_size` samples, in order, no workers, seed 0.
    pub fn new(dataset: impl Dataset + 'static, batch_size: usize) -> Result<Self> {
        Self::from_arc(Arc::new(dataset), batch_size)
    }

    /// A loader over a shared data set.
    pub fn from_arc(dataset: Arc<dyn Dataset>, batch_size: usize) -> Result<Self> {
        if batch_size == 0 {
            return Err(DataError::invalid("DataLoader::new", "batch_size must be at least 1"));
        }
        Ok(DataLoader {
            dataset,
            transform: None,
            batch_size,
            shuffle: false,
            drop_last: false,
            seed: 0,
            workers: 0,
            prefetch: 2,
            shard: None,
        })
    }

    /// Reshuffle every epoch.
    pub fn shuffle(mut self, on: bool) -> Self {
        self.shuffle = on;
        self
    }

    /// Leave out the last batch when it is smaller than `batch_size`.
    pub fn drop_last(mut self, on: bool) -> Self {
        self.drop_last = on;
        self
    }

    /// The seed of the shuffles and augmentations.
    pub fn seed(mut self, seed: u64) -> Self {
        self.seed = seed;
        self
    }

    /// Only rank `rank`'s part of every epoch among `world` ranks, as PyTorch's
    /// `DistributedSampler` deals it: the epoch's order (the same on every rank, from the
    /// same seed) is, with `pad`, lengthened by repeating its start to a multiple of
    /// `world` (so every rank takes the same number of steps), and rank `r` takes positions
    /// `r, r + world, ...`. With a per-rank batch of B/world, the ranks' batches `b`
    /// together hold exactly the samples of the unsharded loader's batch `b` of size B, and
    /// augmentation draws the same randomness for each of them.
    pub fn shard(mut self, rank: usize, world: usize, pad: bool) -> Result<Self> {
        if rank >= world {
            return Err(DataError::invalid(
                "DataLoader::shard",
                format!("rank {rank} is not below the world size {world}"),
            ));
        }
        self.shard = Some(Shard { rank, world, pad });
        Ok(self)
    }

    /// Samples per batch.
    pub fn batch_size(&self) -> usize {
        self.batch_size
    }

    /// The same loader with `batch_size` samples per batch.
    pub fn with_batch_size(mut self, batch_size: usize) -> Result<Self> {
        if batch_size == 0 {
            return Err(DataError::invalid("DataLoader", "batch_size must be at least 1"));
        }
        self.batch_size = batch_size;
        Ok(self)
    }

    /// Background threads building batches ahead (0: build on the caller's thread).
    pub fn num_workers(mut self, n: usize) -> Self {
        self.workers = n;
        self
    }

    /// Batches each worker may hold ready (at least 1).
    pub fn prefetch_factor(mut self, n: usize) -> Self {
        self.prefetch = n.max(1);
        self
    }

    /// A transform applied to every image sample (samples must be C×H×W; the transform
    /// works on [`Dataset::get`]'s f32 sample, converted to the data set's dtype after).
    pub fn transform(mut self, t: impl Transform + 'static) -> Self {
        self.transform = Some(Arc::new(t));
        self
    }

    /// The data set.
    pub fn dataset(&self) -> &Arc<dyn Dataset> {
        &self.dataset
    }

    /// Batches per epoch.
    pub fn len(&self) -> usize {
        let n = match self.shard {
            None => self.dataset.len(),
            Some(s) if s.pad => self.dataset.len().div_ceil(s.world),
            Some(s) => self.dataset.len().saturating_sub(s.rank).div_ceil(s.world),
        };
        if self.drop_last {
            n / self.batch_size
        } else {
            n.div_ceil(self.batch_size)
        }
    }

    /// Whether an epoch has no batches.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The sample order of `epoch` under `seed`.
    pub fn order(&self, epoch: u64, seed: u64) -> Vec<usize> {
        let mut order: Vec<usize> = (0..self.dataset.len()).collect();
        if self.shuffle {
            Generator::new(derive(&[seed, epoch, SHUFFLE_TAG])).shuffle(&mut order);
        }
        if let Some(s) = self.shard {
            let n = order.len();
            let total = if s.pad { n.div_ceil(s.world) * s.world } else { n };
            return (s.rank..total).step_by(s.world).map(|p| order[p % n]).collect();
        }
        order
    }

    /// The batches of `epoch` under the loader's seed.
    pub fn epoch(&self, epoch: u64) -> Batches {
        self.start(LoaderPosition {
            epoch,
            batch: 0,
            seed: self.seed,
        })
    }

    /// The remaining batches of a saved position's epoch (its seed is used).
    pub fn resume(&self, pos: LoaderPosition) -> Result<Batches> {
        if pos.batch > self.len() {
            return Err(DataError::invalid(
                "DataLoader::resume",
                format!("batch {} is past the {} batches of an epoch", pos.batch, self.len()),
            ));
        }
        Ok(self.start(pos))
    }

    /// The one batch at `pos`, built on this thread (random access).
    pub fn batch_at(&self, pos: LoaderPosition) -> Result<Batch> {
        if pos.batch >= self.len() {
            return Err(DataError::Index {
                op: "DataLoader::batch_at",
                index: pos.batch,
                len: self.len(),
            });
        }
        self.plan(pos).build(pos.batch)?.into_batch()
    }

    fn plan(&self, pos: LoaderPosition) -> Arc<Plan> {
        Arc::new(Plan {
            dataset: self.dataset.clone(),
            transform: self.transform.clone(),
            order: self.order(pos.epoch, pos.seed),
            batch_size: self.batch_size,
            epoch: pos.epoch,
            seed: pos.seed,
            shard: self.shard.map_or((0, 1), |s| (s.rank, s.world)),
        })
    }

    fn start(&self, pos: LoaderPosition) -> Batches {
        let plan = self.plan(pos);
        let end = self.len();
        let mut receivers = Vec::new();
        let mut handles = Vec::new();
        let workers = self.workers.min(end.saturating_sub(pos.batch));
        for w in 0..workers {
            let (tx, rx) = sync_channel(self.prefetch);
            let plan = plan.clone();
            let first = pos.batch + w;
            let handle = std::thread::Builder::new()
                .name(format!("nabla-data-{w}"))
                .spawn(move || {
                    for b in (first..end).step_by(workers) {
                        let r = plan.build(b);
                        let failed = r.is_err();
                        // A send fails once the iterator is dropped: stop quietly.
                        if tx.send(r).is_err() || failed {
                            return;
                        }
                    }
                });
            match handle {
                Ok(h) => {
                    receivers.push(rx);
                    handles.push(h);
                }
                // Without threads, the remaining work is done on the caller's thread.
                Err(_) => break,
            }
        }
        Batches {
            plan,
            next: pos.batch,
            first: pos.batch,
            end,
            receivers,
            handles,
            failed: false,
        }
    }
}

/// What every batch of one epoch is built from.
struct Plan {
    dataset: Arc<dyn Dataset>,
    transform: Option<Arc<dyn Transform>>,
    order: Vec<usize>,
    batch_size: usize,
    epoch: u64,
    seed: u64,
    /// `(rank, world)`: sample `k` of a batch sits at `k·world + rank` in the global batch.
    shard: (usize, usize),
}

/// A batch before its tensors are made (built on worker threads).
struct RawBatch {
    buffers: BatchBuffers,
    shape: Vec<usize>,
    width: Option<usize>,
    indices: Vec<usize>,
}

impl Plan {
    fn build(&self, b: usize) -> Result<RawBatch> {
        let lo = b * self.batch_size;
        let hi = (lo + self.batch_size).min(self.order.len());
        let indices = self.order[lo..hi].to_vec();
        let mut batch = BatchBuffers::new(self.dataset.dtype());
        let mut shape: Option<Vec<usize>> = None;
        batch.labels.reserve_exact(indices.len());
        let mut width = None;
        for (k, &i) in indices.iter().enumerate() {
            let (labels_before, values_before) = (batch.labels.len(), batch.values.len());
            // Without a transform the sample goes straight from the data set into the
            // batch (no vector per sample); a transform needs the sample as an image.
            let sh = match &self.transform {
                None => self.dataset.append_to(i, &mut batch)?,
                Some(t) => {
                    let s = self.dataset.get(i)?;
                    let chw: [usize; 3] = s.shape.as_slice().try_into().map_err(|_| {
                        DataError::invalid(
                            "DataLoader",
                            format!("a transform needs C×H×W samples; sample {i} has shape {:?}", s.shape),
                        )
                    })?;
                    let mut rng = Generator::new(derive(&[
                        self.seed,
                        self.epoch,
                        AUGMENT_TAG,
                        b as u64,
                        (k * self.shard.1 + self.shard.0) as u64,
                    ]));
                    let img = t.apply(Image::new(s.data, chw)?, &mut rng)?;
                    let sh = img.shape().to_vec();
                    extend_f32(&mut batch.data, &img.data);
                    batch.push_target(&s.target);
                    Cow::Owned(sh)
                }
            };
            match &shape {
                None => {
                    // One allocation for the whole batch, sized by its first sample.
                    let first = batch.data.len();
                    reserve_exact(&mut batch.data, first * (indices.len() - 1));
                    shape = Some(sh.into_owned());
                }
                Some(first) if first[..] != sh[..] => {
                    return Err(DataError::invalid(
                        "DataLoader",
                        format!("sample {i} has shape {sh:?} but the batch's first has {first:?}"),
                    ))
                }
                Some(_) => {}
            }
            // The sample added one label, or one row of values as wide as the others'.
            let (labels, values) = (batch.labels.len() - labels_before, batch.values.len() - values_before);
            match (labels, values) {
                (1, 0) if width.is_none() => {}
                (0, w) if labels_before == 0 && width.is_none_or(|width| width == w) => width = Some(w),
                _ => {
                    return Err(DataError::invalid(
                        "DataLoader",
                        format!("sample {i}: targets of a batch must all be classes or all values of one width"),
                    ))
                }
            }
        }
        let mut full = vec![indices.len()];
        full.extend(shape.unwrap_or_default());
        Ok(RawBatch {
            buffers: batch,
            shape: full,
            width,
            indices,
        })
    }
}

impl RawBatch {
    fn into_batch(self) -> Result<Batch> {
        let n = self.indices.len();
        let BatchBuffers { data, labels, values } = self.buffers;
        let targets = match self.width {
            Some(w) => Some(tensor(values, &[n, w])?),
            None => None,
        };
        Ok(Batch {
            inputs: tensor(data, &self.shape)?,
            labels,
            targets,
            indices: self.indices,
        })
    }
}

/// The batches of one epoch, in order; see [`DataLoader::epoch`].
pub struct Batches {
    plan: Arc<Plan>,
    next: usize,
    first: usize,
    end: usize,
    receivers: Vec<Receiver<Result<RawBatch>>>,
    handles: Vec<JoinHandle<()>>,
    failed: bool,
}

impl Batches {
    /// The position of the next batch; after the last, the start of the next epoch.
    pub fn position(&self) -> LoaderPosition {
        if self.next >= self.end && !self.failed {
            LoaderPosition {
                epoch: self.plan.epoch + 1,
                batch: 0,
                seed: self.plan.seed,
            }
        } else {
            LoaderPosition {
                epoch: self.plan.epoch,
                batch: self.next,
                seed: self.plan.seed,
            }
        }
    }
}

impl Iterator for Batches {
    type Item = Result<Batch>;

    fn next(&mut self) -> Option<Self::Item> {
        if self.failed || self.next >= self.end {
            return None;
        }
        let b = self.next;
        let raw = if self.receivers.is_empty() {
            self.plan.build(b)
        } else {
            let rx = &self.receivers[(b - self.first) % self.receivers.len()];
            // A worker that died without sending (a panic in user code) ends the epoch with an error.
            rx.recv().unwrap_or_else(|_| {
                Err(DataError::invalid(
                    "DataLoader",
                    format!("worker for batch {b} stopped"),
                ))
            })
        };
        let out = raw.and_then(RawBatch::into_batch);
        if out.is_err() {
            self.failed = true;
        } else {
            self.next += 1;
        }
        Some(out)
    }

    fn size_hint(&self) -> (usize, Option<usize>) {
        let left = if self.failed { 0 } else { self.end - self.next };
        (left, Some(left))
    }
}

impl Drop for Batches {
    fn drop(&mut self) {
        // Closing the channels makes every worker's next send fail, so each stops after at
        // most the batch it is building.
        self.receivers.clear();
        for h in self.handles.drain(..) {
            let _ = h.join();
        }
    }
}

/// Batch assembly at Fashion-MNIST's size:
/// `cargo test --release -p nabla-data loader_bench -- --ignored --nocapture`.
#[cfg(test)]
mod bench {
    use super::*;
    use crate::ImageDataset;
    use std::time::Instant;

    #[test]
    #[ignore]
    fn loader_bench() {
        let n = 60_000;
        let pixels: Vec<u8> = (0..n * 784).map(|i| ((i * 2_654_435_761usize) >> 13) as u8).collect();
        let labels = (0..n).map(|i| i % 10).collect();
        let classes = (0..10).map(|c| c.to_string()).collect();
        let ds = ImageDataset::new(pixels, labels, [1, 28, 28], classes, std::path::Path::new("synthetic")).unwrap();
        let loader = DataLoader::new(ds, 64).unwrap().shuffle(true).seed(0);
        let best = (0..5)
            .map(|_| {
                let t = Instant::now();
                let batches = loader.epoch(0).map(|b| b.unwrap().labels.len()).sum::<usize>();
                assert_eq!(batches, n);
                t.elapsed().as_secs_f64() * 1e3
            })
            .fold(f64::INFINITY, f64::min);
        println!(
            "loader: one epoch of [64, 1, 28, 28] batches {best:.1} ms ({:.1} us per batch)",
            best * 1e3 / 938.0
        );
    }
}
