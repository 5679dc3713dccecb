//! Loader throughput on Fashion-MNIST, batch 64: batches per second with and without
//! augmentation, on the caller's thread and with background workers.
//!
//! `cargo run --release -p nabla-data --example loader_bench [-- --data-dir DIR]`
//!
//! Without the data set installed it times 60,000 synthetic 28×28 images instead.

use nabla_data::transforms::{Compose, Normalize, RandomAffine, RandomCrop, RandomHorizontalFlip, Transform};
use nabla_data::{DataLoader, Dataset, FashionMnist, ImageDataset, Split};
use std::time::Instant;

fn dataset(data_dir: Option<String>) -> Result<ImageDataset, nabla_data::DataError> {
    let mut fm = FashionMnist {
        download: false,
        ..FashionMnist::new()
    };
    if let Some(d) = data_dir {
        fm = fm.with_data_dir(d);
    }
    match fm.load(Split::Train) {
        Ok(ds) => Ok(ds),
        Err(e) => {
            eprintln!("notice: {e}; timing synthetic images instead");
            let mut g = nabla_core::Generator::new(0);
            let pixels = (0..60_000 * 784).map(|_| g.below(256) as u8).collect();
            let labels = (0..60_000).map(|i| i % 10).collect();
            let classes = (0..10).map(|c| c.to_string()).collect();
            ImageDataset::new(pixels, labels, [1, 28, 28], classes, "synthetic".as_ref())
        }
    }
}

fn augmentation(affine: bool) -> Compose {
    let mut steps: Vec<Box<dyn Transform>> = vec![
        Box::new(RandomCrop::new([28, 28], 2)),
        Box::new(RandomHorizontalFlip::new(0.5)),
    ];
    if affine {
        steps.push(Box::new(RandomAffine::new(10.0, [0.1, 0.1]).expect("valid affine")));
    }
    steps.push(Box::new(
        Normalize::new(vec![0.2860], vec![0.3530]).expect("valid normalize"),
    ));
    Compose::new(steps)
}

fn main() -> Result<(), nabla_data::DataError> {
    let args: Vec<String> = std::env::args().collect();
    let data_dir = args
        .iter()
        .position(|a| a == "--data-dir")
        .and_then(|i| args.get(i + 1).cloned());
    let t = Instant::now();
    let ds = std::sync::Arc::new(dataset(data_dir)?);
    println!("loaded {} images in {:.2} s", ds.len(), t.elapsed().as_secs_f64());
    println!(
        "{:<28} {:>8} {:>12} {:>12}",
        "pipeline", "workers", "batches/s", "images/s"
    );
    for (name, aug) in [
        ("none", 0),
        ("crop+flip+normalize", 1),
        ("crop+flip+affine+normalize", 2),
    ] {
        for workers in [0, 1, 2] {
            let mut loader = DataLoader::from_arc(ds.clone(), 64)?
                .shuffle(true)
                .drop_last(true)
                .seed(1)
                .num_workers(workers);
            if aug > 0 {
                loader = loader.transform(augmentation(aug == 2));
            }
            let start = Instant::now();
            let mut batches = 0usize;
            let mut checksum = 0usize;
            for b in loader.epoch(0) {
                let b = b?;
                checksum += b.labels[0] + b.inputs.numel();
                batches += 1;
            }
            let secs = start.elapsed().as_secs_f64();
            println!(
                "{name:<28} {workers:>8} {:>12.0} {:>12.0}   (checksum {checksum})",
                batches as f64 / secs,
                (batches * 64) as f64 / secs
            );
        }
    }
    Ok(())
}
