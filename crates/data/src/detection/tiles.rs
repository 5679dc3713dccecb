//! Large images cut into fixed-size tiles (aerial photographs hold hundreds of small objects).

use super::{DetectionImage, DetectionSet};
use crate::dataset::check_index;
use crate::{DataError, Result};
use std::sync::Arc;

/// Every image of a set cut into `tile`-sized pieces (`[H, W]`) every `stride` pixels; the
/// last row and column of tiles are moved back to end at the image's edge, so every pixel is
/// covered once the stride is at most the tile (an image smaller than a tile gives one tile,
/// zero-padded). A box is clipped to its tile and kept when at least `min_visible` of its area
/// is inside; boxes of zero area are dropped. Tile ids are the tiles' indices.
#[derive(Clone)]
pub struct Tiles {
    set: Arc<dyn DetectionSet>,
    tile: [usize; 2],
    min_visible: f32,
    /// (image index, `[y, x]` origin) per tile, image by image, rows then columns.
    plan: Vec<(usize, [usize; 2])>,
}

/// Where tiles of `tile` pixels start along a side of `len` pixels every `stride`.
pub(super) fn starts(len: usize, tile: usize, stride: usize) -> Vec<usize> {
    if len <= tile {
        return vec![0];
    }
    let mut out: Vec<usize> = (0..).map(|k| k * stride).take_while(|&p| p + tile < len).collect();
    out.push(len - tile);
    out.dedup();
    out
}

impl Tiles {
    /// Cuts every image into tiles, boxes clipped, a box kept if ≥ `min_visible` (in (0, 1])
    /// of its area is inside.
    pub fn new(set: Arc<dyn DetectionSet>, tile: [usize; 2], stride: [usize; 2], min_visible: f32) -> Result<Tiles> {
        let bad = |msg: String| Err(DataError::invalid("Tiles::new", msg));
        if tile.contains(&0) || stride.contains(&0) {
            return bad(format!("tile {tile:?} and stride {stride:?} must be at least 1 pixel"));
        }
        if !(min_visible > 0.0 && min_visible <= 1.0) {
            return bad(format!("min_visible {min_visible} must be in (0, 1]"));
        }
        if set.is_empty() {
            return bad("the set has no images".into());
        }
        let mut plan = Vec::new();
        for i in 0..set.len() {
            let [h, w] = set.image_size(i)?;
            for &y in &starts(h, tile[0], stride[0]) {
                for &x in &starts(w, tile[1], stride[1]) {
                    plan.push((i, [y, x]));
                }
            }
        }
        Ok(Tiles {
            set,
            tile,
            min_visible,
            plan,
        })
    }

    /// Tile `index`'s image (an index of the set underneath) and `[y, x]` origin in it.
    pub fn origin(&self, index: usize) -> Result<(usize, [usize; 2])> {
        check_index("Tiles::origin", index, self.plan.len())?;
        Ok(self.plan[index])
    }

    /// The set underneath.
    pub fn source(&self) -> &Arc<dyn DetectionSet> {
        &self.set
    }

    /// The most boxes any tile holds (what a [`super::DetectionView`] needs room for); reads
    /// every tile's boxes.
    pub fn max_objects(&self) -> Result<usize> {
        let mut most = 0;
        for i in 0..self.plan.len() {
            most = most.max(self.get(i)?.boxes.len());
        }
        Ok(most)
    }
}

impl DetectionSet for Tiles {
    fn len(&self) -> usize {
        self.plan.len()
    }
    fn channels(&self) -> usize {
        self.set.channels()
    }
    fn size(&self) -> [usize; 2] {
        self.tile
    }
    fn get(&self, index: usize) -> Result<DetectionImage> {
        let (image, origin) = self.origin(index)?;
        let mut t = self.set.get_region(image, origin, self.tile)?;
        let [th, tw] = self.tile.map(|v| v as f32);
        let (mut boxes, mut labels) = (Vec::new(), Vec::new());
        for (b, &l) in t.boxes.iter().zip(&t.labels) {
            let area = (b[2] - b[0]) * (b[3] - b[1]);
            let c = [
                b[0].clamp(0.0, tw),
                b[1].clamp(0.0, th),
                b[2].clamp(0.0, tw),
                b[3].clamp(0.0, th),
            ];
            let inside = (c[2] - c[0]) * (c[3] - c[1]);
            if area > 0.0 && inside > 0.0 && inside >= self.min_visible * area {
                boxes.push(c);
                labels.push(l);
            }
        }
        t.boxes = boxes;
        t.labels = labels;
        t.id = index as u64;
        Ok(t)
    }
    fn classes(&self) -> &[String] {
        self.set.classes()
    }
}
