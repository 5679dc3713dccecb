//! What a Pascal VOC folder gives when cut into tiles: images, boxes, tiles, the most boxes
//! in a tile, and the split when one image is held out.
//!
//! Run with `cargo run --release -p nabla-data --example voc_tiles -- PATH [TILE] [HOLD_OUT]`
//! (e.g. deepforest's data folder, tile 128, holding out one image by its stem).

use nabla_data::detection::{decode_target, read_voc, DetectionSet, DetectionView, Tiles, VocSet};
use nabla_data::DataLoader;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Instant;

fn describe(name: &str, set: &VocSet, tile: usize) -> nabla_data::Result<()> {
    let tiles = Tiles::new(Arc::new(set.clone()), [tile, tile], [tile, tile], 0.5)?;
    let start = Instant::now();
    let (mut boxes, mut empty, mut most) = (0, 0, 0);
    for i in 0..tiles.len() {
        let n = tiles.get(i)?.boxes.len();
        boxes += n;
        empty += (n == 0) as usize;
        most = most.max(n);
    }
    println!(
        "{name}: {} images -> {} tiles of {tile}x{tile}, {boxes} boxes in tiles, {empty} tiles without a box, at most {most} in a tile ({:.2} s to cut them all)",
        set.len(),
        tiles.len(),
        start.elapsed().as_secs_f64()
    );
    // Through the loader: batches of 16 tiles, targets [count, (class, box) × most].
    let view = DetectionView::new(Arc::new(tiles), most.max(1))?;
    let start = Instant::now();
    let (mut batches, mut seen) = (0, 0);
    for batch in DataLoader::new(view, 16)?.shuffle(true).seed(1).epoch(0) {
        let batch = batch?;
        let targets = batch.targets.expect("detection targets are values");
        let width = targets.shape()[1];
        let values = targets.to_vec_f32();
        seen += values
            .chunks(width)
            .map(|row| decode_target(row).0.len())
            .sum::<usize>();
        batches += 1;
        if batches == 1 {
            println!(
                "  first batch: inputs {:?}, targets {:?}",
                batch.inputs.shape(),
                targets.shape()
            );
        }
    }
    println!(
        "  {batches} batches, {seen} boxes decoded ({:.2} s)",
        start.elapsed().as_secs_f64()
    );
    assert_eq!(seen, boxes, "every box comes through the loader");
    Ok(())
}

fn main() -> nabla_data::Result<()> {
    let mut args = std::env::args().skip(1);
    let path = PathBuf::from(args.next().expect("usage: voc_tiles PATH [TILE] [HOLD_OUT]"));
    let tile: usize = args.next().and_then(|t| t.parse().ok()).unwrap_or(128);
    let hold = args.next();
    let start = Instant::now();
    let set = read_voc(&path, None)?;
    println!(
        "read {} images in {:.2} s; classes {:?}",
        set.len(),
        start.elapsed().as_secs_f64(),
        set.classes()
    );
    for i in 0..set.len() {
        let [h, w] = set.image_size(i)?;
        let im = set.get(i)?;
        let mut per_class = vec![0; set.classes().len()];
        im.labels.iter().for_each(|&l| per_class[l] += 1);
        println!(
            "  {} ({h}x{w}): {} boxes {per_class:?}",
            set.files()[i].display(),
            im.boxes.len()
        );
    }
    describe("all", &set, tile)?;
    if let Some(h) = hold {
        let (train, test) = set.hold_out(&[h.as_str()])?;
        describe("train", &train, tile)?;
        describe("test", &test, tile)?;
    }
    Ok(())
}
