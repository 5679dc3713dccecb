//! Scenes as detection images: every item's box and class.

use super::{DetectionImage, DetectionSet};
use crate::scenes::{read_coco, SceneSet};
use crate::Result;
use std::path::Path;
use std::sync::Arc;

/// Generated or read scenes as detection images (1 channel; id = the scene's index, as
/// `annotations.json` numbers them); a scene's `[x, y, w, h]` boxes become `[x, y, x + w, y + h]`.
#[derive(Clone)]
pub struct SceneDetections {
    set: Arc<dyn SceneSet>,
}

impl SceneDetections {
    /// The detection view of any scene set.
    pub fn new(set: Arc<dyn SceneSet>) -> Self {
        SceneDetections { set }
    }

    /// The scenes underneath.
    pub fn scenes(&self) -> &Arc<dyn SceneSet> {
        &self.set
    }
}

impl DetectionSet for SceneDetections {
    fn len(&self) -> usize {
        self.set.len()
    }
    fn channels(&self) -> usize {
        1
    }
    fn size(&self) -> [usize; 2] {
        self.set.size()
    }
    fn get(&self, index: usize) -> Result<DetectionImage> {
        let s = self.set.scene(index)?;
        let (boxes, labels) = s
            .objects
            .iter()
            .map(|o| {
                let [x, y, w, h] = o.bbox;
                ([x, y, x + w, y + h], o.class)
            })
            .unzip();
        Ok(DetectionImage {
            id: index as u64,
            channels: 1,
            size: s.size,
            image: s.image,
            boxes,
            labels,
        })
    }
    fn classes(&self) -> &[String] {
        self.set.classes()
    }
}

/// The COCO folder that `nabla data scenes` writes (or a user's of the same layout: grey
/// images of one size), read by [`read_coco`]; ids are the images' positions in the file, so
/// they equal COCO's `image_id` for the scenes' own files.
pub fn read_coco_detections(path: &Path) -> Result<SceneDetections> {
    Ok(SceneDetections::new(Arc::new(read_coco(path)?)))
}
