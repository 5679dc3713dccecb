//! Object detection data: images with every object's class and box, from the generated
//! scenes, a COCO folder, Pascal VOC XML, cut into tiles, and the loader view that packs a
//! variable number of boxes into a fixed-width target.
//!
//! ```
//! use nabla_data::detection::{decode_target, DetectionImage, DetectionSet, DetectionView, MemoryDetections};
//! use nabla_data::{Dataset, Target};
//! use std::sync::Arc;
//! // One 1×4×4 image holding two objects.
//! let img = DetectionImage { id: 7, channels: 1, size: [4, 4], image: vec![0.5; 16],
//!     boxes: vec![[0.0, 0.0, 2.0, 2.0], [1.0, 1.0, 4.0, 3.0]], labels: vec![1, 0] };
//! let set = MemoryDetections::new(vec![img], vec!["cat".into(), "dog".into()])?;
//! let view = DetectionView::new(Arc::new(set), 3)?;
//! let Target::Values(v) = view.get(0)?.target else { unreachable!() };
//! // [count, (class, x1, y1, x2, y2) × 3], padded with −1.
//! assert_eq!(v.len(), 1 + 5 * 3);
//! assert_eq!(&v[..6], &[2.0, 1.0, 0.0, 0.0, 2.0, 2.0]);
//! assert_eq!(v[15], -1.0);
//! let (boxes, labels) = decode_target(&v);
//! assert_eq!((boxes[1], labels), ([1.0, 1.0, 4.0, 3.0], vec![1, 0]));
//! # Ok::<(), nabla_data::DataError>(())
//! ```
//!
//! Boxes are `[x1, y1, x2, y2]` in pixels, continuous coordinates (a box covering pixel
//! columns 3..=5 is x1 = 3, x2 = 6; area = (x2 − x1)(y2 − y1)), as torchvision and COCO.
//!
//! Where sets come from:
//! - [`SceneDetections`] (`scenes.rs`): every item of generated or read scenes
//!   ([`crate::scenes::SceneSet`]); [`read_coco_detections`] reads the COCO folder that
//!   `nabla data scenes` writes (or a user's) through [`crate::scenes::read_coco`].
//! - [`read_voc`] (`voc.rs`): Pascal VOC XML, `Annotations/*.xml` + `JPEGImages/`, or a flat
//!   folder of XML files beside their images (deepforest's data folder).
//! - [`Tiles`] (`tiles.rs`): any set cut into fixed-size tiles, for large aerial images.
//! - [`MemoryDetections`]: images held in memory (tests, small sets).
//!
//! [`write_coco_results`] (`results.rs`) writes detections in the COCO results format.

mod results;
mod scenes;
mod tiles;
mod voc;

pub use results::{write_coco_results, CocoResult};
pub use scenes::{read_coco_detections, SceneDetections};
pub use tiles::Tiles;
pub use voc::{read_voc, read_voc_with, VocSet};

use crate::dataset::check_index;
use crate::{DataError, Dataset, Result, Sample, Target};
use std::sync::Arc;

/// One image with its objects: image C×H×W in [0,1], boxes xyxy pixels, labels 0-based classes.
#[derive(Debug, Clone, PartialEq)]
pub struct DetectionImage {
    /// The image's id in its source (COCO's `image_id` for a COCO folder, the scene index for
    /// scenes, the position for VOC); tiles number their own.
    pub id: u64,
    /// C.
    pub channels: usize,
    /// `[H, W]`.
    pub size: [usize; 2],
    /// C×H×W values in [0, 1].
    pub image: Vec<f32>,
    /// One `xyxy` box per object, in pixels.
    pub boxes: Vec<[f32; 4]>,
    /// One 0-based class per object.
    pub labels: Vec<usize>,
}

/// A set of detection images of one channel count and size.
pub trait DetectionSet: Send + Sync {
    /// The number of images.
    fn len(&self) -> usize;
    /// Whether there are no images.
    fn is_empty(&self) -> bool {
        self.len() == 0
    }
    /// C of every image.
    fn channels(&self) -> usize;
    /// `[H, W]` of every image; `[0, 0]` for a set whose images differ in size (a VOC folder
    /// read without a size), which only [`Tiles`] can take.
    fn size(&self) -> [usize; 2];
    /// `[H, W]` of image `index` without decoding it (what [`Tiles`] plans with).
    fn image_size(&self, index: usize) -> Result<[usize; 2]> {
        check_index("DetectionSet::image_size", index, self.len())?;
        Ok(self.size())
    }
    /// Image `index` (`0..len()`).
    fn get(&self, index: usize) -> Result<DetectionImage>;
    /// The `size` region of image `index` whose top-left corner is `origin` (`[y, x]`), zero
    /// where it runs past the image, every box shifted into the region's frame and not
    /// clipped (what [`Tiles`] cuts with). The default crops [`get`](Self::get)'s image; a
    /// set that holds large images overrides it to convert only the region.
    fn get_region(&self, index: usize, origin: [usize; 2], size: [usize; 2]) -> Result<DetectionImage> {
        let full = self.get(index)?;
        let (c, [ih, iw], [h, w]) = (full.channels, full.size, size);
        let mut image = vec![0f32; c * h * w];
        let n = w.min(iw.saturating_sub(origin[1]));
        for ch in (0..c).filter(|_| n > 0) {
            for y in 0..h.min(ih.saturating_sub(origin[0])) {
                let from = ch * ih * iw + (origin[0] + y) * iw + origin[1];
                image[ch * h * w + y * w..][..n].copy_from_slice(&full.image[from..from + n]);
            }
        }
        let (oy, ox) = (origin[0] as f32, origin[1] as f32);
        Ok(DetectionImage {
            id: full.id,
            channels: c,
            size,
            image,
            boxes: full
                .boxes
                .iter()
                .map(|b| [b[0] - ox, b[1] - oy, b[2] - ox, b[3] - oy])
                .collect(),
            labels: full.labels,
        })
    }
    /// The class names, indexed by label (no background).
    fn classes(&self) -> &[String];
}

/// Detection images held in memory, all of one channel count and size.
#[derive(Debug, Clone)]
pub struct MemoryDetections {
    images: Vec<DetectionImage>,
    classes: Vec<String>,
}

impl MemoryDetections {
    /// The set of `images`; they must agree in channels and size, hold as many values as
    /// that says, one label per box, labels below `classes.len()`.
    pub fn new(images: Vec<DetectionImage>, classes: Vec<String>) -> Result<Self> {
        let bad = |msg: String| Err(DataError::invalid("MemoryDetections::new", msg));
        if images.is_empty() {
            return bad("no images".into());
        }
        let (c, size) = (images[0].channels, images[0].size);
        for (i, im) in images.iter().enumerate() {
            if im.channels != c || im.size != size {
                return bad(format!(
                    "image {i} (id {}) is {}×{}×{} but image 0 is {c}×{}×{}",
                    im.id, im.channels, im.size[0], im.size[1], size[0], size[1]
                ));
            }
            if im.image.len() != c * size[0] * size[1] {
                return bad(format!(
                    "image {i} (id {}) holds {} values, not {c}×{}×{}",
                    im.id,
                    im.image.len(),
                    size[0],
                    size[1]
                ));
            }
            if im.boxes.len() != im.labels.len() {
                return bad(format!(
                    "image {i} (id {}) has {} boxes but {} labels",
                    im.id,
                    im.boxes.len(),
                    im.labels.len()
                ));
            }
            if let Some(&l) = im.labels.iter().find(|&&l| l >= classes.len()) {
                return bad(format!(
                    "image {i} (id {}): label {l} but {} classes",
                    im.id,
                    classes.len()
                ));
            }
        }
        Ok(MemoryDetections { images, classes })
    }
}

impl DetectionSet for MemoryDetections {
    fn len(&self) -> usize {
        self.images.len()
    }
    fn channels(&self) -> usize {
        self.images[0].channels
    }
    fn size(&self) -> [usize; 2] {
        self.images[0].size
    }
    fn get(&self, index: usize) -> Result<DetectionImage> {
        check_index("MemoryDetections::get", index, self.images.len())?;
        Ok(self.images[index].clone())
    }
    fn classes(&self) -> &[String] {
        &self.classes
    }
}

/// The loader view: Sample { data: C×H×W, shape: [C,H,W], target: Target::Values(v) } with v = [count, then (class, x1, y1, x2, y2) × max_objects] padded with −1.
#[derive(Clone)]
pub struct DetectionView {
    set: Arc<dyn DetectionSet>,
    max_objects: usize,
}

impl DetectionView {
    /// The view over `set`, room for `max_objects` boxes per image (an image with more is an
    /// error naming it). The set's images must have one size (tile a VOC folder, or read it
    /// with a size).
    pub fn new(set: Arc<dyn DetectionSet>, max_objects: usize) -> Result<Self> {
        if max_objects == 0 {
            return Err(DataError::invalid("DetectionView::new", "max_objects is 0"));
        }
        if set.size().contains(&0) {
            return Err(DataError::invalid(
                "DetectionView::new",
                "the images differ in size; read them with a size or cut them into tiles",
            ));
        }
        Ok(DetectionView { set, max_objects })
    }

    /// The images underneath (for pictures and evaluation).
    pub fn set(&self) -> &Arc<dyn DetectionSet> {
        &self.set
    }

    /// The most boxes a target holds.
    pub fn max_objects(&self) -> usize {
        self.max_objects
    }
}

impl Dataset for DetectionView {
    fn len(&self) -> usize {
        self.set.len()
    }

    fn get(&self, index: usize) -> Result<Sample> {
        let im = self.set.get(index)?;
        if im.boxes.len() > self.max_objects {
            return Err(DataError::invalid(
                "DetectionView::get",
                format!(
                    "image {index} (id {}) holds {} objects, over max_objects {}",
                    im.id,
                    im.boxes.len(),
                    self.max_objects
                ),
            ));
        }
        if im.size != self.set.size() || im.channels != self.set.channels() {
            return Err(DataError::invalid(
                "DetectionView::get",
                format!("image {index} (id {}) is not the set's size", im.id),
            ));
        }
        let mut v = Vec::with_capacity(1 + 5 * self.max_objects);
        v.push(im.boxes.len() as f32);
        for (b, &l) in im.boxes.iter().zip(&im.labels) {
            v.push(l as f32);
            v.extend_from_slice(b);
        }
        v.resize(1 + 5 * self.max_objects, -1.0);
        let [h, w] = im.size;
        Ok(Sample {
            data: im.image,
            shape: vec![im.channels, h, w],
            target: Target::Values(v),
        })
    }

    fn classes(&self) -> &[String] {
        self.set.classes()
    }
}

/// The boxes and labels of a [`DetectionView`] target (`[count, (class, x1, y1, x2, y2)…]`);
/// a count beyond what `values` holds reads what is there.
pub fn decode_target(values: &[f32]) -> (Vec<[f32; 4]>, Vec<usize>) {
    let count = values.first().map_or(0, |&c| c.max(0.0) as usize);
    let rows = values.get(1..).unwrap_or_default().chunks_exact(5).take(count);
    rows.map(|r| ([r[1], r[2], r[3], r[4]], r[0] as usize)).unzip()
}

#[cfg(test)]
mod tests;
