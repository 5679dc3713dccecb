//! The detection-evaluation types of nabla-vision, as the CLI uses them.
// A stand-in with the agreed shapes until nabla-vision's detect_eval lands; replaced by
// re-exports then.

/// One detection: image index, 0-based class, score, xyxy box in pixels.
#[derive(Debug, Clone, PartialEq)]
pub struct Detection {
    /// Index of the image in the evaluated set.
    pub image: usize,
    /// 0-based class.
    pub class: usize,
    /// Score.
    pub score: f32,
    /// xyxy pixels.
    pub bbox: [f32; 4],
}

/// One ground-truth object.
#[derive(Debug, Clone, PartialEq)]
pub struct GroundTruth {
    /// Index of the image.
    pub image: usize,
    /// 0-based class.
    pub class: usize,
    /// xyxy pixels.
    pub bbox: [f32; 4],
    /// Pascal VOC's difficult flag.
    pub difficult: bool,
}

/// AP of one class.
#[derive(Debug, Clone, PartialEq)]
pub struct ClassAp {
    /// 0-based class.
    pub class: usize,
    /// VOC all-points AP at IoU 0.5.
    pub ap50: f64,
    /// AP at IoU 0.75.
    pub ap75: f64,
    /// COCO AP over IoU 0.50:0.05:0.95.
    pub ap_coco: f64,
    /// Objects of the class.
    pub ground_truths: usize,
    /// Detections of the class.
    pub detections: usize,
}

/// Per-class APs and their means.
#[derive(Debug, Clone, PartialEq)]
pub struct ApReport {
    /// By class.
    pub per_class: Vec<ClassAp>,
    /// mAP@0.5.
    pub map50: f64,
    /// mAP@0.75.
    pub map75: f64,
    /// mAP@[.5:.95].
    pub map_coco: f64,
}
