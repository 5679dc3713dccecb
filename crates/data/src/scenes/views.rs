//! The training views over scenes: localization targets and segmentation masks.

use super::Scene;
use crate::{DataError, Dataset, Result, Sample, Target};
use std::sync::Arc;

/// Anything that hands out scenes of one size by index: the generator ([`super::Scenes`]) or
/// scenes read from files.
pub trait SceneSet: Send + Sync {
    /// The number of scenes.
    fn len(&self) -> usize;
    /// Whether there are no scenes.
    fn is_empty(&self) -> bool {
        self.len() == 0
    }
    /// `[H, W]` of every scene.
    fn size(&self) -> [usize; 2];
    /// Scene `index` (`0..len()`).
    fn scene(&self, index: usize) -> Result<Scene>;
    /// The class names, indexed by class (background not included).
    fn classes(&self) -> &[String];
}

/// The image of a scene as a `[1, H, W]` sample with `target`.
fn sample(scene: Scene, target: Target) -> Sample {
    let [h, w] = scene.size;
    Sample {
        data: scene.image,
        shape: vec![1, h, w],
        target,
    }
}

/// Classification + localization: features `[1, H, W]`, target
/// `Values([class, x/W, y/H, w/W, h/H])` of each scene's first item (its box normalized by the
/// canvas). A scene with no item is an error naming it.
#[derive(Clone)]
pub struct LocalizeScenes {
    set: Arc<dyn SceneSet>,
}

impl LocalizeScenes {
    /// The view over any scene set.
    pub fn new(set: Arc<dyn SceneSet>) -> Self {
        LocalizeScenes { set }
    }

    /// The scenes underneath (for pictures that need every item and the masks).
    pub fn scenes(&self) -> &Arc<dyn SceneSet> {
        &self.set
    }
}

impl Dataset for LocalizeScenes {
    fn len(&self) -> usize {
        self.set.len()
    }

    fn get(&self, index: usize) -> Result<Sample> {
        let scene = self.set.scene(index)?;
        let [h, w] = scene.size;
        let first = *scene.objects.first().ok_or_else(|| {
            DataError::invalid("LocalizeScenes::get", format!("scene {index} has no item to localize"))
        })?;
        let [x, y, bw, bh] = first.bbox;
        let (h, w) = (h as f32, w as f32);
        let target = Target::Values(vec![first.class as f32, x / w, y / h, bw / w, bh / h]);
        Ok(sample(scene, target))
    }

    fn classes(&self) -> &[String] {
        self.set.classes()
    }
}

/// Semantic segmentation: features `[1, H, W]`, target `Values` of the H×W semantic mask as
/// f32 (0 background, 1 + class elsewhere, so `classes().len() + 1` labels).
#[derive(Clone)]
pub struct SegmentScenes {
    set: Arc<dyn SceneSet>,
}

impl SegmentScenes {
    /// The view over any scene set.
    pub fn new(set: Arc<dyn SceneSet>) -> Self {
        SegmentScenes { set }
    }

    /// The scenes underneath.
    pub fn scenes(&self) -> &Arc<dyn SceneSet> {
        &self.set
    }
}

impl Dataset for SegmentScenes {
    fn len(&self) -> usize {
        self.set.len()
    }

    fn get(&self, index: usize) -> Result<Sample> {
        let scene = self.set.scene(index)?;
        let mask = scene.semantic.iter().map(|&l| l as f32).collect();
        Ok(sample(scene, Target::Values(mask)))
    }

    fn classes(&self) -> &[String] {
        self.set.classes()
    }
}

impl std::fmt::Debug for LocalizeScenes {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let (len, size) = (self.set.len(), self.set.size());
        f.debug_struct("LocalizeScenes")
            .field("len", &len)
            .field("size", &size)
            .finish()
    }
}

impl std::fmt::Debug for SegmentScenes {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let (len, size) = (self.set.len(), self.set.size());
        f.debug_struct("SegmentScenes")
            .field("len", &len)
            .field("size", &size)
            .finish()
    }
}
