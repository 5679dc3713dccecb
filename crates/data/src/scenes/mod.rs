//! Scenes: canvases holding Fashion-MNIST items at random scales and positions, with every
//! item's class and tight box, a semantic mask and an instance mask (issue 16's data).
//!
//! ```
//! use nabla_data::scenes::{SceneConfig, Scenes};
//! use nabla_data::{Dataset, ImageDataset, Split, Target};
//! // Any grey source works; here two 28×28 items (a bright square and a bright bar).
//! let mut px = vec![0u8; 2 * 28 * 28];
//! for y in 8..20 { for x in 8..20 { px[y * 28 + x] = 255; px[784 + y * 28 + 13] = 200; } }
//! let classes = (0..2).map(|c| c.to_string()).collect();
//! let source = ImageDataset::new(px, vec![0, 1], [1, 28, 28], classes, "mem".as_ref())?;
//! let scenes = Scenes::new(source, Split::Train, SceneConfig::segmentation(), 100)?;
//! let s = scenes.scene(7)?;
//! assert_eq!(s, scenes.scene(7)?); // a pure function of (seed, split, index)
//! assert!((1..=4).contains(&s.objects.len()));
//! let loc = scenes.localize();
//! match loc.get(7)?.target {
//!     Target::Values(v) => assert_eq!(v[0], s.objects[0].class as f32),
//!     _ => unreachable!(),
//! }
//! # Ok::<(), nabla_data::DataError>(())
//! ```
//!
//! How a scene is made ([`Scenes::scene`]), all from one generator keyed by (seed, split, index):
//! - the number of items, uniform in `min_objects..=max_objects`;
//! - the background: black, or noise uniform in [0, 0.25) per pixel ([`Background::Noise`]);
//! - per item: a source image (uniform over the split's images), a scale uniform in
//!   `cfg.scale` (its top clipped so that the item fits the canvas), a bilinear resize of the
//!   28×28 image to `round(28·scale)` pixels a side, and a position with the resized frame fully
//!   inside the canvas. The item's tight box is the bounding box of its pixels above
//!   `cfg.threshold`; a placement whose box has IoU above `cfg.max_iou` with an earlier item's
//!   box is redrawn (image, scale and position), at most [`PLACEMENT_TRIES`] times, after which
//!   that item is left out (so a crowded canvas can hold fewer than `min_objects` items; the
//!   first item always fits);
//! - compositing is the maximum of canvas and item (items are bright on a dark ground, so an
//!   overlap keeps both visible); in the masks, an item's pixels above the threshold overwrite
//!   what is there, so where items overlap the one drawn last wins.
//!
//! Views for training: [`Scenes::localize`] ([`LocalizeScenes`]) and [`Scenes::segment`]
//! ([`SegmentScenes`]), both [`Dataset`]s over any [`SceneSet`].
//!
//! On disk ([`write_scenes`], what `nabla data scenes` writes):
//! - `images/000000.png`, ...: 8-bit grey PNGs (the image rounded to bytes, [`quantize`]);
//! - `masks/000000.png`, ...: 8-bit palette PNGs, index = semantic label, Pascal VOC's
//!   colours ([`voc_palette`]);
//! - `annotations.json`: COCO detection (`images` with `id`, `file_name`, `width`, `height`;
//!   `categories` with ids 1..=10, class + 1, as COCO counts from 1; `annotations` with `id`,
//!   `image_id`, `category_id`, `bbox` [x, y, w, h], `area` = the item's visible pixels,
//!   `iscrowd` 0);
//! - `classes.txt`: the class names, one a line (label 1 first), for the mask reader.
//!
//! Readers, both giving [`SceneFiles`] (a [`SceneSet`] with `localize()` / `segment()` views,
//! so the training tasks do not care where scenes come from; images are read as grey and must
//! all have one size):
//! - [`read_coco`] (`coco:PATH`): `PATH/annotations.json` and `PATH/images/` (or PATH the JSON
//!   file, its images in `images/` beside it); classes are the categories in id order; masks
//!   from `masks/` beside it when that folder exists;
//! - [`read_masks`] (`masks:PATH`): `PATH/images/*.png|jpg` (sorted by name), `PATH/masks/<stem>.png`
//!   (8-bit palette or grey, value = label) and `PATH/classes.txt`; no boxes.
//!
//! Bad files give one error naming the file and the entry (`annotations[3] (id 4): unknown
//! category id 11`); sizes are checked against [`ReadLimits`](crate::ReadLimits) before anything is
//! allocated for them.

mod coco;
mod files;
mod views;

pub use coco::{read_coco, read_coco_with};
pub use files::{quantize, read_masks, read_masks_with, voc_palette, write_scenes, SceneFiles};
pub use views::{LocalizeScenes, SceneSet, SegmentScenes};

use crate::transforms::{Image, Resize, Transform};
use crate::{DataError, Dataset, FashionMnist, ImageDataset, Result, Split};
use nabla_core::Generator;
use std::sync::Arc;

/// How many placements an item gets before it is left out of a crowded scene.
pub const PLACEMENT_TRIES: usize = 50;

/// What lies behind the items.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Background {
    /// Zeros.
    #[default]
    Black,
    /// Seeded noise, uniform in [0, 0.25) per pixel, drawn per scene.
    Noise,
}

/// The noise background's upper bound.
const NOISE_MAX: f64 = 0.25;

/// How scenes are drawn.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct SceneConfig {
    /// The canvas `[H, W]`.
    pub size: [usize; 2],
    /// The fewest items a scene asks for (at least 1).
    pub min_objects: usize,
    /// The most items a scene asks for (at least `min_objects`).
    pub max_objects: usize,
    /// The range of scale factors applied to the 28×28 source images.
    pub scale: (f32, f32),
    /// The largest IoU allowed between two items' boxes.
    pub max_iou: f32,
    /// What lies behind the items.
    pub background: Background,
    /// The pixel value in [0, 1] above which a pixel belongs to its item (boxes and masks).
    pub threshold: f32,
    /// The seed every scene's generator is keyed by.
    pub seed: u64,
}

impl Default for SceneConfig {
    /// Localization scenes: 64×64, one item, scale 0.8–1.6, IoU ≤ 0.2, black, threshold 0.2.
    fn default() -> Self {
        SceneConfig {
            size: [64, 64],
            min_objects: 1,
            max_objects: 1,
            scale: (0.8, 1.6),
            max_iou: 0.2,
            background: Background::Black,
            threshold: 0.2,
            seed: 0,
        }
    }
}

impl SceneConfig {
    /// Segmentation and detection scenes: the default with 1 to 4 items.
    pub fn segmentation() -> SceneConfig {
        SceneConfig {
            max_objects: 4,
            ..SceneConfig::default()
        }
    }

    /// Check the configuration for a source whose items are `item` = `[h, w]` pixels
    /// (`[28, 28]` for Fashion-MNIST); [`Scenes::new`] calls it.
    pub fn validate(&self, item: [usize; 2]) -> Result<()> {
        let bad = |msg: String| Err(DataError::invalid("scenes", msg));
        let [h, w] = self.size;
        if self.max_objects == 0 {
            return bad("max_objects is 0; a scene needs at least one item".into());
        }
        if self.max_objects > 254 {
            return bad(format!(
                "max_objects {} is over 254, what 8-bit instance masks hold",
                self.max_objects
            ));
        }
        if self.min_objects == 0 || self.min_objects > self.max_objects {
            return bad(format!(
                "min_objects {} must be in 1..={} (max_objects)",
                self.min_objects, self.max_objects
            ));
        }
        let (lo, hi) = self.scale;
        if !(lo.is_finite() && hi.is_finite() && lo > 0.0 && lo <= hi) {
            return bad(format!("scale range {lo}..{hi} must be positive and ordered"));
        }
        if !(0.0..=1.0).contains(&self.max_iou) {
            return bad(format!("max_iou {} must be in [0, 1]", self.max_iou));
        }
        if !(0.0..1.0).contains(&self.threshold) {
            return bad(format!("threshold {} must be in [0, 1)", self.threshold));
        }
        let smallest = [side(item[0], lo), side(item[1], lo)];
        if h < smallest[0] || w < smallest[1] {
            return bad(format!(
                "canvas {h}x{w} is smaller than one item at the smallest scale {lo} ({}x{} pixels)",
                smallest[0], smallest[1]
            ));
        }
        Ok(())
    }
}

/// The side of a `src`-pixel side scaled by `s`, at least one pixel.
fn side(src: usize, s: f32) -> usize {
    ((src as f64 * s as f64).round() as usize).max(1)
}

/// One item of a scene.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct SceneObject {
    /// Its class, an index into the class names.
    pub class: usize,
    /// `[x, y, w, h]` in pixels, COCO's convention (x, y the top-left corner), tight around the
    /// item's pixels above the threshold: a box from column x0 to column x1 has w = x1 - x0 + 1.
    pub bbox: [f32; 4],
}

/// One sample: the image, its items and its masks.
#[derive(Debug, Clone, PartialEq)]
pub struct Scene {
    /// `[H, W]`.
    pub size: [usize; 2],
    /// H×W grey values in [0, 1].
    pub image: Vec<f32>,
    /// The items, in drawing order.
    pub objects: Vec<SceneObject>,
    /// H×W labels: 0 background, 1 + class elsewhere.
    pub semantic: Vec<u8>,
    /// H×W labels: 0 background, 1 + the item's index in `objects` (empty for a scene read
    /// from files that have no instance masks).
    pub instance: Vec<u8>,
}

/// The IoU of two `[x, y, w, h]` boxes (0 when both are empty).
pub fn box_iou(a: [f32; 4], b: [f32; 4]) -> f32 {
    let iw = ((a[0] + a[2]).min(b[0] + b[2]) - a[0].max(b[0])).max(0.0);
    let ih = ((a[1] + a[3]).min(b[1] + b[3]) - a[1].max(b[1])).max(0.0);
    let inter = iw * ih;
    let union = a[2] * a[3] + b[2] * b[3] - inter;
    if union > 0.0 {
        inter / union
    } else {
        0.0
    }
}

/// The scene generator over one split's grey images (Fashion-MNIST's, or any [`ImageDataset`]
/// of 1-channel images); cheap to clone.
#[derive(Debug, Clone)]
pub struct Scenes {
    source: Arc<ImageDataset>,
    split: Split,
    cfg: SceneConfig,
    len: usize,
}

impl Scenes {
    /// `len` scenes drawn from `source`, which must hold the images of `split` only (load it
    /// with `FashionMnist::new().load(split)`); `split` also keys the generator, so train and
    /// test scenes differ even with one seed.
    pub fn new(source: impl Into<Arc<ImageDataset>>, split: Split, cfg: SceneConfig, len: usize) -> Result<Scenes> {
        let source = source.into();
        let [c, h, w] = source.image_shape();
        if c != 1 {
            return Err(DataError::invalid(
                "scenes",
                format!("the source images have {c} channels; scenes are grey (1 channel)"),
            ));
        }
        if source.is_empty() {
            return Err(DataError::invalid("scenes", "the source has no images"));
        }
        if source.classes().len() > 254 {
            return Err(DataError::invalid(
                "scenes",
                format!(
                    "{} classes do not fit 8-bit masks (at most 254)",
                    source.classes().len()
                ),
            ));
        }
        cfg.validate([h, w])?;
        Ok(Scenes {
            source,
            split,
            cfg,
            len,
        })
    }

    /// `len` scenes of Fashion-MNIST's `split` (found or downloaded by `locator`), so train
    /// scenes hold training images only and test scenes test images only.
    pub fn fashion(locator: &FashionMnist, split: Split, cfg: SceneConfig, len: usize) -> Result<Scenes> {
        Scenes::new(locator.load(split)?, split, cfg, len)
    }

    /// The number of scenes.
    pub fn len(&self) -> usize {
        self.len
    }

    /// Whether there are no scenes.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// The configuration.
    pub fn config(&self) -> &SceneConfig {
        &self.cfg
    }

    /// The split the scenes are drawn from.
    pub fn split(&self) -> Split {
        self.split
    }

    /// The class names of the source (Fashion-MNIST's ten).
    pub fn classes(&self) -> &[String] {
        self.source.classes()
    }

    /// The generator of scene `index`: keyed by (seed, split, index) alone, so a scene never
    /// depends on which scenes were asked for before it or on which thread asks.
    fn generator(&self, index: usize) -> Generator {
        let split = match self.split {
            Split::Train => 0x7472_6169_6e00_0001u64,
            Split::Test => 0x7465_7374_0000_0002u64,
        };
        Generator::new(mix(mix(mix(self.cfg.seed) ^ split) ^ index as u64))
    }

    /// Scene `index` (`0..len()`).
    pub fn scene(&self, index: usize) -> Result<Scene> {
        crate::dataset::check_index("Scenes::scene", index, self.len)?;
        let cfg = &self.cfg;
        let [h, w] = cfg.size;
        let mut rng = self.generator(index);
        // The background has its own stream so that it never shifts the items' draws.
        let mut noise = rng.fork();
        let mut image = match cfg.background {
            Background::Black => vec![0f32; h * w],
            Background::Noise => (0..h * w).map(|_| (noise.uniform() * NOISE_MAX) as f32).collect(),
        };
        let wanted = cfg.min_objects + rng.below((cfg.max_objects - cfg.min_objects + 1) as u64) as usize;
        let mut semantic = vec![0u8; h * w];
        let mut instance = vec![0u8; h * w];
        let mut objects: Vec<SceneObject> = Vec::with_capacity(wanted);
        for _ in 0..wanted {
            let Some(item) = self.place(&mut rng, &objects)? else {
                continue;
            };
            let k = objects.len();
            for py in 0..item.h {
                for px in 0..item.w {
                    let v = item.pixels[py * item.w + px];
                    let at = (item.y + py) * w + item.x + px;
                    image[at] = image[at].max(v);
                    if v > cfg.threshold {
                        semantic[at] = 1 + item.class as u8;
                        instance[at] = 1 + k as u8;
                    }
                }
            }
            objects.push(SceneObject {
                class: item.class,
                bbox: item.bbox,
            });
        }
        Ok(Scene {
            size: cfg.size,
            image,
            objects,
            semantic,
            instance,
        })
    }

    /// One item placed without too much overlap with `placed`, or None after
    /// [`PLACEMENT_TRIES`] refused placements.
    fn place(&self, rng: &mut Generator, placed: &[SceneObject]) -> Result<Option<Placed>> {
        let cfg = &self.cfg;
        let [ch, cw] = cfg.size;
        let [_, sh, sw] = self.source.image_shape();
        // The top of the scale range clipped so that the item fits; validate() made sure the
        // bottom does.
        let fit = (ch as f32 / sh as f32).min(cw as f32 / sw as f32);
        let (lo, hi) = (cfg.scale.0, cfg.scale.1.min(fit).max(cfg.scale.0));
        for _ in 0..PLACEMENT_TRIES {
            let pick = rng.below(self.source.len() as u64) as usize;
            let s = lo + (hi - lo) * rng.uniform() as f32;
            let (ph, pw) = (side(sh, s).min(ch), side(sw, s).min(cw));
            let y = rng.below((ch - ph + 1) as u64) as usize;
            let x = rng.below((cw - pw + 1) as u64) as usize;
            let src: Vec<f32> = self.source.pixels(pick)?.iter().map(|&b| b as f32 / 255.0).collect();
            let img = Image::new(src, [1, sh, sw])?;
            // Resize draws nothing from its generator; a throwaway one keeps `rng` untouched.
            let pixels = Resize::new([ph, pw]).apply(img, &mut Generator::new(0))?.data;
            let Some([x0, y0, x1, y1]) = tight(&pixels, pw, cfg.threshold) else {
                continue; // an item with no pixel above the threshold has no box
            };
            let bbox = [
                (x + x0) as f32,
                (y + y0) as f32,
                (x1 - x0 + 1) as f32,
                (y1 - y0 + 1) as f32,
            ];
            if placed.iter().all(|o| box_iou(o.bbox, bbox) <= cfg.max_iou) {
                let class = self.source.labels()[pick];
                return Ok(Some(Placed {
                    pixels,
                    h: ph,
                    w: pw,
                    y,
                    x,
                    class,
                    bbox,
                }));
            }
        }
        Ok(None)
    }

    /// The localization view: each scene's first item's class and normalized box.
    pub fn localize(self) -> LocalizeScenes {
        LocalizeScenes::new(Arc::new(self))
    }

    /// The segmentation view: each scene's semantic mask.
    pub fn segment(self) -> SegmentScenes {
        SegmentScenes::new(Arc::new(self))
    }
}

impl SceneSet for Scenes {
    fn len(&self) -> usize {
        self.len
    }
    fn size(&self) -> [usize; 2] {
        self.cfg.size
    }
    fn scene(&self, index: usize) -> Result<Scene> {
        Scenes::scene(self, index)
    }
    fn classes(&self) -> &[String] {
        Scenes::classes(self)
    }
}

/// A resized item and where it goes.
struct Placed {
    pixels: Vec<f32>,
    h: usize,
    w: usize,
    y: usize,
    x: usize,
    class: usize,
    bbox: [f32; 4],
}

/// `[x0, y0, x1, y1]` (inclusive) around the pixels of a `w`-wide image above `threshold`.
fn tight(pixels: &[f32], w: usize, threshold: f32) -> Option<[usize; 4]> {
    let mut b: Option<[usize; 4]> = None;
    for (i, _) in pixels.iter().enumerate().filter(|(_, &v)| v > threshold) {
        let (x, y) = (i % w, i / w);
        b = Some(match b {
            None => [x, y, x, y],
            Some([x0, y0, x1, y1]) => [x0.min(x), y0.min(y), x1.max(x), y1.max(y)],
        });
    }
    b
}

/// SplitMix64's finalizer: spreads every input bit over the output.
fn mix(mut z: u64) -> u64 {
    z = z.wrapping_add(0x9E37_79B9_7F4A_7C15);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

#[cfg(test)]
mod tests;
