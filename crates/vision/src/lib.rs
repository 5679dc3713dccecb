//! Image filtering, correlation, convolution and template matching, as tensor ops; bounding
//! boxes, their IoU and non-maximum suppression; detection evaluation (average precision).
//!
//! ```
//! use nabla_core::{DType, Tensor};
//! use nabla_vision::{box_kernel, correlate2d, Border, Padding};
//! // A bright pixel spread by a 3×3 moving average.
//! let mut v = vec![0.0f64; 9];
//! v[4] = 9.0;
//! let img = Tensor::from_vec(v, &[3, 3])?;
//! let out = correlate2d(&img, &box_kernel(3, DType::F64)?, Padding::Same, Border::Zero)?;
//! assert!(out.to_vec_f64().iter().all(|&p| (p - 1.0).abs() < 1e-12));
//! # Ok::<(), nabla_core::Error>(())
//! ```
//!
//! Map of the crate:
//! - `boxes.rs`: bounding boxes: [`box_convert`], [`box_area`], [`box_iou`], [`iou_xywh`].
//! - `nms.rs`: [`nms`], [`batched_nms`], [`clip_boxes_to_image`], [`remove_small_boxes`];
//!   `nms_grid.rs`: NMS's path for spread-out boxes.
//! - `pad.rs`: [`Border`] modes, output [`Padding`]s, [`pad2d`], [`flip2d`].
//! - `correlate.rs`: [`correlate2d`], [`convolve2d`] and their 1-D versions for signals.
//! - `detect_eval.rs`: [`evaluate_detections`]: VOC AP@0.5 and COCO mAP@[.5:.95] per class.
//! - `kernels.rs`: box, Gaussian, Sobel, Laplacian, sharpen; [`KernelSpec`] names.
//! - `matching.rs`: normalized cross-correlation, [`best_matches`] with non-maximum suppression.

mod boxes;
mod correlate;
mod detect_eval;
mod kernels;
mod matching;
mod nms;
mod pad;

pub use boxes::{box_area, box_convert, box_iou, iou_xywh, BoxFormat};
pub use correlate::{convolve1d, convolve2d, correlate1d, correlate2d, moving_average, weighted_moving_average};
pub use detect_eval::{evaluate_detections, ApReport, ClassAp, Detection, GroundTruth};
pub use kernels::{box_kernel, gaussian_kernel, gaussian_size, laplacian, sharpen, sobel_x, sobel_y, KernelSpec};
pub use matching::{best_matches, match_template, normalized_cross_correlation, window_sum2d, Match};
pub use nms::{batched_nms, clip_boxes_to_image, nms, remove_small_boxes};
pub use pad::{flip2d, pad2d, Border, Padding};
