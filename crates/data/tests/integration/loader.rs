//! The loader: order, shuffles, drop_last, workers, determinism and resuming.

use nabla_core::{DType, Tensor};
use nabla_data::transforms::{Compose, Normalize, RandomAffine, RandomCrop, RandomHorizontalFlip};
use nabla_data::{
    Batch, CsvDataset, CsvOptions, DataError, DataLoader, Dataset, LoaderPosition, Result, Sample, Target,
    TensorDataset,
};
use std::collections::HashSet;

/// `n` images of 1×4×4 whose pixels are `index + position / 100`, labelled `index % 3`.
fn images(n: usize) -> TensorDataset {
    let data: Vec<f32> = (0..n * 16).map(|i| (i / 16) as f32 + (i % 16) as f32 / 100.0).collect();
    let x = Tensor::from_vec(data, &[n, 1, 4, 4]).unwrap();
    TensorDataset::new(&x, (0..n).map(|i| i % 3).collect()).unwrap()
}

fn augment() -> Compose {
    Compose::new(vec![
        Box::new(RandomCrop::new([4, 4], 1)),
        Box::new(RandomHorizontalFlip::new(0.5)),
        Box::new(RandomAffine::new(20.0, [0.1, 0.1]).unwrap()),
        Box::new(Normalize::new(vec![0.5], vec![2.0]).unwrap()),
    ])
}

fn collect(it: impl Iterator<Item = Result<Batch>>) -> Vec<(Vec<usize>, Vec<usize>, Vec<f32>)> {
    it.map(|b| {
        let b = b.unwrap();
        (b.indices, b.labels, b.inputs.to_vec_f32())
    })
    .collect()
}

#[test]
fn sequential_batches_and_drop_last() {
    let loader = DataLoader::new(images(10), 4).unwrap();
    assert_eq!(loader.len(), 3);
    let batches: Vec<Batch> = loader.epoch(0).map(|b| b.unwrap()).collect();
    assert_eq!(batches[0].inputs.shape(), &[4, 1, 4, 4]);
    assert_eq!(batches[2].inputs.shape(), &[2, 1, 4, 4]);
    assert_eq!(batches[1].indices, vec![4, 5, 6, 7]);
    assert_eq!(batches[1].labels, vec![1, 2, 0, 1]);
    assert!(batches[1].targets.is_none());
    assert_eq!(batches[2].inputs.to_vec_f32()[16], 9.0);
    let dl = DataLoader::new(images(10), 4).unwrap().drop_last(true);
    assert_eq!(dl.len(), 2);
    assert_eq!(dl.epoch(0).count(), 2);
    assert!(DataLoader::new(images(3), 0).is_err());
    let empty = DataLoader::new(images(0), 4).unwrap().num_workers(2);
    assert!(empty.is_empty() && empty.epoch(0).next().is_none());
}

#[test]
fn shuffles_are_seeded_permutations_per_epoch() {
    let loader = DataLoader::new(images(50), 8).unwrap().shuffle(true).seed(3);
    let order = |e| -> Vec<usize> { loader.epoch(e).flat_map(|b| b.unwrap().indices).collect() };
    let e0 = order(0);
    assert_eq!(e0.iter().copied().collect::<HashSet<_>>().len(), 50);
    assert_ne!(e0, (0..50).collect::<Vec<_>>());
    assert_ne!(e0, order(1));
    assert_eq!(e0, order(0));
    assert_eq!(e0, loader.order(0, 3));
    let other = DataLoader::new(images(50), 8).unwrap().shuffle(true).seed(4);
    assert_ne!(e0, other.order(0, 4));
}

#[test]
fn workers_do_not_change_batches_or_augmentation() {
    let base = DataLoader::new(images(37), 5)
        .unwrap()
        .shuffle(true)
        .seed(11)
        .transform(augment());
    for epoch in 0..2 {
        let serial = collect(base.clone().num_workers(0).epoch(epoch));
        assert_eq!(serial.len(), 8);
        for w in [1, 3, 8] {
            let parallel = collect(base.clone().num_workers(w).prefetch_factor(1).epoch(epoch));
            assert_eq!(serial, parallel, "{w} workers, epoch {epoch}");
        }
    }
    // The augmentation is really random: epochs and seeds differ, and not every image is unchanged.
    let a = collect(base.epoch(0));
    let b = collect(base.clone().seed(12).epoch(0));
    assert_ne!(a, b);
    let plain = DataLoader::new(images(37), 5).unwrap().shuffle(true).seed(11);
    let raw = collect(plain.epoch(0));
    assert_eq!(
        raw.iter().map(|r| &r.0).collect::<Vec<_>>(),
        a.iter().map(|r| &r.0).collect::<Vec<_>>()
    );
    let normalized: Vec<f32> = raw[0].2.iter().map(|v| (v - 0.5) / 2.0).collect();
    assert_ne!(normalized, a[0].2);
}

#[test]
fn a_resumed_run_sees_the_remaining_batches() {
    let loader = DataLoader::new(images(23), 4)
        .unwrap()
        .shuffle(true)
        .seed(5)
        .num_workers(2)
        .transform(augment());
    let full = collect(loader.epoch(1));
    let mut it = loader.epoch(1);
    let first: Vec<_> = it.by_ref().take(2).map(|b| b.unwrap().indices).collect();
    assert_eq!(first[1], full[1].0);
    let saved = it.position();
    assert_eq!(
        saved,
        LoaderPosition {
            epoch: 1,
            batch: 2,
            seed: 5
        }
    );
    drop(it);
    // A fresh loader built with another seed still resumes the saved stream.
    let restored = LoaderPosition::from_u64s(saved.to_u64s()).unwrap();
    let fresh = DataLoader::new(images(23), 4)
        .unwrap()
        .shuffle(true)
        .seed(999)
        .transform(augment());
    let mut rest_it = fresh.resume(restored).unwrap();
    let rest = collect(rest_it.by_ref());
    assert_eq!(rest, full[2..]);
    assert_eq!(
        rest_it.position(),
        LoaderPosition {
            epoch: 2,
            batch: 0,
            seed: 5
        }
    );
    let b3 = fresh
        .batch_at(LoaderPosition {
            epoch: 1,
            batch: 3,
            seed: 5,
        })
        .unwrap();
    assert_eq!(b3.inputs.to_vec_f32(), full[3].2);
    assert!(fresh
        .resume(LoaderPosition {
            epoch: 0,
            batch: 7,
            seed: 5
        })
        .is_err());
    assert!(fresh
        .resume(LoaderPosition {
            epoch: 0,
            batch: 6,
            seed: 5
        })
        .unwrap()
        .next()
        .is_none());
    assert!(fresh
        .batch_at(LoaderPosition {
            epoch: 0,
            batch: 6,
            seed: 5
        })
        .is_err());
}

struct FailsAt(usize);

impl Dataset for FailsAt {
    fn len(&self) -> usize {
        20
    }
    fn get(&self, index: usize) -> Result<Sample> {
        if index == self.0 {
            return Err(DataError::format("sample.bin", format!("broken sample {index}")));
        }
        Ok(Sample {
            data: vec![index as f32],
            shape: vec![1],
            target: Target::Class(0),
        })
    }
}

#[test]
fn a_failing_sample_ends_the_epoch_with_its_error() {
    for workers in [0, 3] {
        let loader = DataLoader::new(FailsAt(9), 4).unwrap().num_workers(workers);
        let mut it = loader.epoch(0);
        assert!(it.next().unwrap().is_ok());
        assert!(it.next().unwrap().is_ok());
        let e = it.next().unwrap().unwrap_err();
        assert!(e.to_string().contains("sample.bin: broken sample 9"), "{e}");
        assert!(it.next().is_none());
        assert_eq!(it.position().batch, 2);
    }
    // Dropping an iterator early, with workers blocked on full channels, returns promptly.
    let loader = DataLoader::new(images(400), 2)
        .unwrap()
        .num_workers(4)
        .prefetch_factor(1);
    let mut it = loader.epoch(0);
    it.next().unwrap().unwrap();
    drop(it);
}

#[test]
fn tables_batch_as_rows_with_regression_targets() {
    let ds = CsvDataset::parse(
        "x,y,t\n1,2,3\n4,5,6\n7,8,9\n",
        "t.csv".as_ref(),
        &CsvOptions::regression("t"),
    )
    .unwrap();
    let loader = DataLoader::new(ds, 2).unwrap();
    let b = loader.epoch(0).next().unwrap().unwrap();
    assert_eq!(b.inputs.shape(), &[2, 2]);
    assert_eq!(b.inputs.to_vec_f32(), vec![1.0, 2.0, 4.0, 5.0]);
    let t = b.targets.unwrap();
    assert_eq!((t.shape(), t.to_vec_f32()), (&[2usize, 1][..], vec![3.0, 6.0]));
    assert!(b.labels.is_empty());
    // Image transforms refuse samples that are not C×H×W.
    let ds = CsvDataset::parse("x,t\n1,3\n", "t.csv".as_ref(), &CsvOptions::regression("t")).unwrap();
    let loader = DataLoader::new(ds, 2).unwrap().transform(augment());
    let e = loader.epoch(0).next().unwrap().unwrap_err();
    assert!(e.to_string().contains("C×H×W"), "{e}");
}

#[test]
fn f64_data_sets_batch_in_f64() {
    // Values f32 cannot hold, so any pass through f32 would change them.
    let n = 10;
    let x: Vec<f64> = (0..n * 3).map(|i| 1.0 + i as f64 * 1e-10).collect();
    let y: Vec<f64> = (0..n * 2).map(|i| -0.1 - i as f64 * 1e-12).collect();
    assert!(x[1..].iter().chain(&y).all(|&v| v as f32 as f64 != v));
    let xt = Tensor::from_vec(x.clone(), &[n, 3]).unwrap();
    let yt = Tensor::from_vec(y.clone(), &[n, 2]).unwrap();
    let regression = TensorDataset::regression(&xt, &yt).unwrap();
    let labelled = TensorDataset::new(&xt, (0..n).map(|i| i % 4).collect()).unwrap();
    assert_eq!((regression.dtype(), labelled.dtype()), (DType::F64, DType::F64));
    for workers in [0, 2] {
        for ds in [&regression, &labelled] {
            let loader = DataLoader::new(ds.clone(), 4)
                .unwrap()
                .shuffle(true)
                .seed(3)
                .num_workers(workers);
            let mut seen = Vec::new();
            for b in loader.epoch(1) {
                let b = b.unwrap();
                assert_eq!(b.inputs.dtype(), DType::F64);
                let xs = b.inputs.to_vec::<f64>().unwrap();
                for (k, &i) in b.indices.iter().enumerate() {
                    assert_eq!(xs[k * 3..k * 3 + 3], x[i * 3..i * 3 + 3]);
                }
                match b.targets {
                    Some(t) => {
                        assert_eq!(t.dtype(), DType::F64);
                        let ts = t.to_vec::<f64>().unwrap();
                        for (k, &i) in b.indices.iter().enumerate() {
                            assert_eq!(ts[k * 2..k * 2 + 2], y[i * 2..i * 2 + 2]);
                        }
                    }
                    None => assert_eq!(b.labels, b.indices.iter().map(|i| i % 4).collect::<Vec<_>>()),
                }
                seen.extend(b.indices);
            }
            seen.sort_unstable();
            assert_eq!(seen, (0..n).collect::<Vec<_>>());
        }
    }
    // f32 data sets keep giving f32 batches.
    let b = DataLoader::new(images(2), 2).unwrap().epoch(0).next().unwrap().unwrap();
    assert_eq!((images(2).dtype(), b.inputs.dtype()), (DType::F32, DType::F32));
}

#[test]
fn two_shards_deal_each_global_batch_with_its_augmentation() {
    let whole = DataLoader::new(images(10), 4)
        .unwrap()
        .shuffle(true)
        .seed(5)
        .transform(augment());
    let part = |r| whole.clone().shard(r, 2, true).unwrap().with_batch_size(2).unwrap();
    let (r0, r1) = (part(0), part(1));
    assert_eq!((r0.len(), r1.len(), whole.len()), (3, 3, 3));
    let (a, b, w) = (collect(r0.epoch(1)), collect(r1.epoch(1)), collect(whole.epoch(1)));
    for (g, (x, y)) in w.iter().zip(a.iter().zip(&b)) {
        // Rank r holds positions r, r + 2, ... of the global batch, pixels included.
        let mut idx = vec![];
        let mut px = vec![];
        for k in 0..x.0.len() {
            for part in [x, y] {
                if let Some(&i) = part.0.get(k) {
                    idx.push(i);
                    px.extend_from_slice(&part.2[k * 16..(k + 1) * 16]);
                }
            }
        }
        assert_eq!((&idx, &px), (&g.0, &g.2));
    }
}

#[test]
fn padded_shards_repeat_the_start_and_unpadded_ones_do_not() {
    let loader = DataLoader::new(images(5), 2).unwrap().shuffle(true).seed(1);
    let order = loader.order(0, 1);
    let pad = |r| loader.clone().shard(r, 2, true).unwrap().order(0, 1);
    assert_eq!(pad(0), vec![order[0], order[2], order[4]]);
    assert_eq!(pad(1), vec![order[1], order[3], order[0]]);
    let plain = loader.clone().shard(1, 2, false).unwrap();
    assert_eq!(plain.order(0, 1), vec![order[1], order[3]]);
    assert_eq!((plain.len(), loader.clone().shard(1, 2, true).unwrap().len()), (1, 2));
    assert!(loader.clone().shard(2, 2, true).is_err());
    assert!(loader.with_batch_size(0).is_err());
}
