//! Scenes as detection images: every item's box and class.

use super::{DetectionImage, DetectionSet};
use crate::scenes::{read_coco, SceneSet};
use crate::Result;
use std::path::Path;
use std::sync::Arc;

/// Generated or read scenes as detection images (1 channel; id = the scene's index, as
/// `annotations.json` numbers them, or the file's own `image_id` when read by
/// [`read_coco_detections`]); a scene's `[x, y, w, h]` boxes become `[x, y, x + w, y + h]`.
#[derive(Clone)]
pub struct SceneDetections {
    set: Arc<dyn SceneSet>,
    /// COCO's image ids, when read from a COCO file.
    image_ids: Option<Arc<Vec<u64>>>,
    /// COCO's category id per class, when read from a COCO file.
    category_ids: Option<Vec<u64>>,
}

impl SceneDetections {
    /// The detection view of any scene set.
    pub fn new(set: Arc<dyn SceneSet>) -> Self {
        SceneDetections {
            set,
            image_ids: None,
            category_ids: None,
        }
    }

    /// The COCO `category_id` of `class`: the file's own for a set read by
    /// [`read_coco_detections`], else class + 1 (how `nabla data scenes` numbers them). What
    /// a results file ([`super::CocoResult`]) needs to match the annotations.
    pub fn category_id(&self, class: usize) -> u64 {
        match &self.category_ids {
            Some(ids) if class < ids.len() => ids[class],
            _ => class as u64 + 1,
        }
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
            id: self.image_ids.as_ref().map_or(index as u64, |ids| ids[index]),
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
/// images of one size), read by [`read_coco`]; ids are the file's `image_id`s and
/// [`SceneDetections::category_id`] gives its category ids, so results written with them
/// match the annotations.
pub fn read_coco_detections(path: &Path) -> Result<SceneDetections> {
    let files = read_coco(path)?;
    let image_ids = Some(Arc::new(files.image_ids().to_vec()));
    let category_ids = Some(files.category_ids().to_vec());
    Ok(SceneDetections {
        set: Arc::new(files),
        image_ids,
        category_ids,
    })
}
