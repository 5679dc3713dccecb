//! Images with reference captions: generated for the Fashion-MNIST scenes, or read from COCO
//! captions JSON and Flickr8k token files; the scene scores; the COCO captioning formats.
//!
//! ```
//! use nabla_data::captions::{caption_scene_config, CaptionSet};
//! use nabla_data::scenes::Scenes;
//! use nabla_data::{ImageDataset, Split, FASHION_MNIST_CLASSES};
//! // Any grey source works; here ten 28×28 bright squares, one per class.
//! let mut px = vec![0u8; 10 * 784];
//! for i in 0..10 { for y in 6..22 { for x in 6..22 { px[i * 784 + y * 28 + x] = 255; } } }
//! let classes = FASHION_MNIST_CLASSES.iter().map(|s| s.to_string()).collect();
//! let source = ImageDataset::new(px, (0..10).collect(), [1, 28, 28], classes, "mem".as_ref())?;
//! let scenes = Scenes::new(source, Split::Train, caption_scene_config(), 8)?;
//! let set = CaptionSet::scenes(scenes)?;
//! assert_eq!((set.len(), set.captions(0).len()), (8, 5));
//! let (image, shape) = set.image(0)?;
//! assert_eq!((image.len(), shape), (64 * 64, [1, 64, 64]));
//! # Ok::<(), nabla_data::DataError>(())
//! ```
//!
//! ## Scene captions
//! Scenes come from [`Scenes`] with [`caption_scene_config`]: the segmentation scenes
//! (64×64, scale 0.8–1.6, box IoU ≤ 0.2, black ground) with 1 to 3 items instead of 1 to 4, so
//! that sentences stay short. Each scene gets five references ([`scene_captions`]), a pure
//! function of its items, so of (seed, split, index). The grammar:
//! - The items are grouped by class. A group's noun phrase NP is its count and class words:
//!   one item is "a"/"an" (an before a vowel letter) and the singular ("a shirt",
//!   "an ankle boot"); 2 to 10 are "two".."ten" and the plural ("two shirts"); more are digits.
//!   Class words: the class name lower-cased and cut at the first "/" ("T-shirt/top" →
//!   "t-shirt"); plural + "es" after s, x, ch, sh ("dresses"), else + "s": t-shirt, trouser,
//!   pullover, dress, coat, sandal, shirt, sneaker, bag, ankle boot.
//! - Groups are ordered left to right by the mean of their items' box centres (ties: top to
//!   bottom, then class index): NP1 .. NPm. LIST is "NP1", "NP1 and NP2",
//!   "NP1, NP2 and NP3" (commas before all but the last).
//! - REL(a, b), where group a is relative to group b, compares their centres: if
//!   |dx| ≥ |dy|, "to the left of" (a's centre left of b's) or "to the right of"; else "above"
//!   (a higher in the picture) or "below".
//! - The five sentences:
//!   1. `LIST`: "two shirts and an ankle boot";
//!   2. `there is LIST` for a scene with one item, `there are LIST` otherwise;
//!   3. `a picture of LIST`;
//!   4. with m ≥ 2 groups, the chain left to right `NP1 REL(1,2) NP2 REL(2,3) NP3`
//!      ("a sneaker to the left of two shirts above a bag"); with one group, `NP1 on its own`
//!      (one item) or `NP1 next to each other` (several);
//!   5. with m ≥ 2, the chain right to left `NPm REL(m,m-1) NPm-1 ... NP1`; with one group,
//!      `only NP1`.
//! - All lower-case, no final full stop. A scene with no item (possible only from files) gets
//!   the one reference "an empty picture".
//!
//! ## Files
//! - COCO captions ([`read_coco_captions`], layouts of `coco:PATH` in [`coco_layout`]): a JSON
//!   object with `images` (`id`, `file_name` relative to the image folder) and `annotations`
//!   (`image_id`, `caption`); images keep the JSON's order, captions the annotations' order,
//!   images with no caption are left out.
//! - Flickr8k ([`read_flickr8k`], layout of `flickr8k:PATH` in [`flickr8k_layout`]):
//!   `Flickr8k.token.txt`, lines `NAME.jpg#K<TAB>caption`; image ids count from 0 in order of
//!   first appearance; the split lists `Flickr_8k.{train,dev,test}Images.txt` (one name a line,
//!   [`read_name_list`]) select images with [`CaptionSet::select_files`].
//! - Images are decoded when asked for ([`CaptionSet::image`]), stretched to
//!   [`ImageOptions::size`], grey or RGB. Bad files are one error naming the file and the entry
//!   or line: `annotations[4] (image 7): empty caption`, `line 12: image x.jpg not found in
//!   DIR`, `no "images" list at the top level`; a file name that could leave the image folder
//!   (absolute, `..`) is refused.
//! - Written for scoring with the usual tools (both atomically): [`write_coco_caption_results`]
//!   (`[{"image_id", "caption"}, ...]`, COCO's captioning results) and [`write_coco_captions`]
//!   (the references as a COCO captions JSON, annotation ids from 1), so pycocoevalcap can score
//!   the pair.
//!
//! Scores for scenes besides BLEU ([`crate::text::bleu`]): [`exact_match_rate`] (the candidate
//! equals one reference token for token) and [`count_accuracy`] (the counts of every class
//! the candidate mentions, [`mentioned_counts`], equal the scene's, [`CaptionSet::class_counts`]).

mod files;
mod grammar;
mod results;

pub use grammar::{
    class_words, count_accuracy, exact_match, exact_match_rate, mentioned_counts, scene_captions, SCENE_REFERENCES,
};

pub use files::{
    coco_layout, flickr8k_layout, read_coco_captions, read_flickr8k, read_name_list, Flickr8kFiles, ImageOptions,
};
pub use results::{write_coco_caption_results, write_coco_captions};

use crate::dataset::check_index;
use crate::scenes::{SceneConfig, SceneObject, Scenes};
use crate::{Dataset, Fit, ReadLimits, Result, Sample, Target};
use std::path::PathBuf;
use std::sync::Arc;

/// The scene configuration of captioning: [`SceneConfig::segmentation`] with 1 to 3 items.
pub fn caption_scene_config() -> SceneConfig {
    SceneConfig {
        max_objects: 3,
        ..SceneConfig::segmentation()
    }
}

/// Where the images come from.
#[derive(Debug)]
enum Source {
    /// Generated scenes (grey, the canvas size).
    Scenes(Scenes),
    /// Image files decoded on access and resized to `size` with `channels` channels.
    Files {
        paths: Vec<PathBuf>,
        size: [usize; 2],
        channels: usize,
        limits: ReadLimits,
    },
}

#[derive(Debug)]
struct Inner {
    source: Arc<Source>,
    /// Per image, its index in the source (a subset keeps the source's numbering).
    at: Vec<usize>,
    captions: Vec<Vec<String>>,
    ids: Vec<u64>,
    file_names: Vec<String>,
    /// Per image, the scene's items (scenes only).
    objects: Vec<Vec<SceneObject>>,
    classes: Vec<String>,
}

/// Images, each with its raw reference captions and an image id; cheap to clone.
///
/// As a [`Dataset`], sample i is the image with target `Values([i])` (its index, exact in f32
/// below 2^24), so that a batch's captions are found with [`CaptionSet::captions`].
#[derive(Debug, Clone)]
pub struct CaptionSet {
    inner: Arc<Inner>,
}

impl CaptionSet {
    /// Captions for every scene of `scenes` (each scene is drawn once here for its items, on
    /// up to 8 threads, and again on [`CaptionSet::image`]); image ids are the scene indices, file names
    /// `000000.png`, ... as `nabla data scenes` writes them.
    pub fn scenes(scenes: Scenes) -> Result<CaptionSet> {
        let n = scenes.len();
        let classes = scenes.classes().to_vec();
        // Each scene is a pure function of its index, so splitting the range over threads
        // changes nothing but the time (a scene costs tens of microseconds: resizes).
        let threads = std::thread::available_parallelism().map_or(1, |t| t.get()).clamp(1, 8);
        let chunk = n.div_ceil(threads).max(1);
        let parts: Vec<Result<Vec<Vec<SceneObject>>>> = std::thread::scope(|sc| {
            let handles: Vec<_> = (0..n)
                .step_by(chunk)
                .map(|lo| {
                    let scenes = &scenes;
                    sc.spawn(move || {
                        (lo..(lo + chunk).min(n))
                            .map(|i| Ok(scenes.scene(i)?.objects))
                            .collect()
                    })
                })
                .collect();
            handles
                .into_iter()
                .map(|h| h.join().unwrap_or_else(|p| std::panic::resume_unwind(p)))
                .collect()
        });
        let mut objects = Vec::with_capacity(n);
        for p in parts {
            objects.extend(p?);
        }
        let captions = objects.iter().map(|o| scene_captions(o, &classes)).collect();
        Ok(CaptionSet {
            inner: Arc::new(Inner {
                source: Arc::new(Source::Scenes(scenes)),
                at: (0..n).collect(),
                captions,
                ids: (0..n as u64).collect(),
                file_names: (0..n).map(|i| format!("{i:06}.png")).collect(),
                objects,
                classes,
            }),
        })
    }

    /// A set over image files: (path, image id, file name, captions) per image.
    pub(crate) fn files(items: Vec<(PathBuf, u64, String, Vec<String>)>, opts: &ImageOptions) -> CaptionSet {
        let n = items.len();
        let mut paths = Vec::with_capacity(n);
        let (mut ids, mut file_names, mut captions) = (Vec::new(), Vec::new(), Vec::new());
        for (p, id, name, caps) in items {
            paths.push(p);
            ids.push(id);
            file_names.push(name);
            captions.push(caps);
        }
        CaptionSet {
            inner: Arc::new(Inner {
                source: Arc::new(Source::Files {
                    paths,
                    size: opts.size,
                    channels: opts.channels,
                    limits: opts.limits,
                }),
                at: (0..n).collect(),
                captions,
                ids,
                file_names,
                objects: Vec::new(),
                classes: Vec::new(),
            }),
        }
    }

    /// The images at `indices`, in that order (a train/test split of one set).
    pub fn subset(&self, indices: &[usize]) -> Result<CaptionSet> {
        let s = &self.inner;
        for &i in indices {
            check_index("CaptionSet::subset", i, self.len())?;
        }
        Ok(CaptionSet {
            inner: Arc::new(Inner {
                source: s.source.clone(),
                at: indices.iter().map(|&i| s.at[i]).collect(),
                captions: indices.iter().map(|&i| s.captions[i].clone()).collect(),
                ids: indices.iter().map(|&i| s.ids[i]).collect(),
                file_names: indices.iter().map(|&i| s.file_names[i].clone()).collect(),
                objects: if s.objects.is_empty() {
                    Vec::new()
                } else {
                    indices.iter().map(|&i| s.objects[i].clone()).collect()
                },
                classes: s.classes.clone(),
            }),
        })
    }

    /// The images whose file names are `names` (a Flickr8k split list), in that order; a name
    /// not in the set is an error naming it.
    pub fn select_files<S: AsRef<str>>(&self, names: &[S]) -> Result<CaptionSet> {
        let at: std::collections::HashMap<&str, usize> = self
            .inner
            .file_names
            .iter()
            .enumerate()
            .map(|(i, n)| (n.as_str(), i))
            .collect();
        let mut indices = Vec::with_capacity(names.len());
        for n in names {
            let n = n.as_ref();
            let i = at.get(n).ok_or_else(|| {
                crate::DataError::invalid("CaptionSet::select_files", format!("no captioned image named {n:?}"))
            })?;
            indices.push(*i);
        }
        self.subset(&indices)
    }

    /// The number of images.
    pub fn len(&self) -> usize {
        self.inner.captions.len()
    }

    /// Whether there are no images.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// `[C, H, W]` of every image.
    pub fn image_shape(&self) -> [usize; 3] {
        match &*self.inner.source {
            Source::Scenes(s) => {
                let [h, w] = s.config().size;
                [1, h, w]
            }
            Source::Files { size, channels, .. } => [*channels, size[0], size[1]],
        }
    }

    /// Image `i` as C×H×W values in [0, 1], with its shape.
    pub fn image(&self, i: usize) -> Result<(Vec<f32>, [usize; 3])> {
        check_index("CaptionSet::image", i, self.len())?;
        let (shape, at) = (self.image_shape(), self.inner.at[i]);
        let data = match &*self.inner.source {
            Source::Scenes(s) => s.scene(at)?.image,
            Source::Files {
                paths,
                channels,
                limits,
                ..
            } => crate::load_image(&paths[at], [shape[1], shape[2]], *channels, Fit::Stretch, limits)?,
        };
        Ok((data, shape))
    }

    /// The raw reference sentences of image `i` (panics outside `0..len()`, as slices do).
    pub fn captions(&self, i: usize) -> &[String] {
        &self.inner.captions[i]
    }

    /// Every image's references, in order (for building a vocabulary or scoring).
    pub fn all_captions(&self) -> &[Vec<String>] {
        &self.inner.captions
    }

    /// The image id of image `i` (COCO's `image_id`; the scene index for scenes).
    pub fn image_id(&self, i: usize) -> u64 {
        self.inner.ids[i]
    }

    /// The file name of image `i` (relative to the images folder).
    pub fn file_name(&self, i: usize) -> &str {
        &self.inner.file_names[i]
    }

    /// The scenes' class names (empty for sets read from files).
    pub fn classes(&self) -> &[String] {
        &self.inner.classes
    }

    /// The items of scene `i` (None for sets read from files).
    pub fn objects(&self, i: usize) -> Option<&[SceneObject]> {
        self.inner.objects.get(i).map(Vec::as_slice)
    }

    /// How many items of each class scene `i` holds (None for sets read from files).
    pub fn class_counts(&self, i: usize) -> Option<Vec<usize>> {
        let objects = self.objects(i)?;
        let mut n = vec![0; self.inner.classes.len()];
        for o in objects {
            n[o.class] += 1;
        }
        Some(n)
    }
}

/// Scores of candidates written for every image of a set, in order.
impl CaptionSet {
    /// Corpus BLEU-1..4 of `candidates[i]` against image i's references (both tokenized).
    pub fn bleu<C: AsRef<str>>(&self, candidates: &[C]) -> Result<crate::text::Bleu> {
        crate::text::bleu_sentences(candidates, self.all_captions())
    }

    /// [`exact_match_rate`] of `candidates[i]` against image i's references.
    pub fn exact_match_rate<C: AsRef<str>>(&self, candidates: &[C]) -> Result<f64> {
        exact_match_rate(candidates, self.all_captions())
    }

    /// [`count_accuracy`] of `candidates[i]` against scene i's items; an error for a set read
    /// from files (it has no items to count).
    pub fn count_accuracy<C: AsRef<str>>(&self, candidates: &[C]) -> Result<f64> {
        if self.inner.objects.is_empty() {
            return Err(crate::DataError::invalid(
                "count_accuracy",
                "the captions were read from files: there are no scene items to count",
            ));
        }
        let counts: Vec<Vec<usize>> = (0..self.len()).filter_map(|i| self.class_counts(i)).collect();
        count_accuracy(candidates, &counts, self.classes())
    }
}

impl Dataset for CaptionSet {
    fn len(&self) -> usize {
        CaptionSet::len(self)
    }

    fn get(&self, index: usize) -> Result<Sample> {
        let (data, shape) = self.image(index)?;
        Ok(Sample {
            data,
            shape: shape.to_vec(),
            target: Target::Values(vec![index as f32]),
        })
    }

    fn classes(&self) -> &[String] {
        CaptionSet::classes(self)
    }
}

#[cfg(test)]
mod tests;

#[cfg(test)]
mod files_tests;
