//! What a Pascal VOC folder gives when cut into tiles: images, boxes, tiles, the most boxes
//! in a tile, and the split when one image is held out.
//!
//! Run with `cargo run --release -p nabla-data --example voc_tiles -- PATH [TILE] [HOLD_OUT]`
//! (e.g. deepforest's data folder, tile 128, holding out one image by its stem).

use nabla_data::detection::{read_voc, DetectionSet, Tiles, VocSet};
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
