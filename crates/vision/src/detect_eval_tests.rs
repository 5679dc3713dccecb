use super::*;

fn gt(image: usize, class: usize, bbox: [f32; 4]) -> GroundTruth {
    GroundTruth {
        image,
        class,
        bbox,
        difficult: false,
    }
}

fn det(image: usize, class: usize, score: f32, bbox: [f32; 4]) -> Detection {
    Detection {
        image,
        class,
        score,
        bbox,
    }
}

fn close(a: f64, b: f64) {
    assert!((a - b).abs() < 1e-9, "{a} vs {b}");
}

const A: [f32; 4] = [0.0, 0.0, 10.0, 10.0];
const B: [f32; 4] = [20.0, 20.0, 30.0, 40.0];
const FAR: [f32; 4] = [50.0, 50.0, 60.0, 60.0];

#[test]
fn perfect_detections_score_one() {
    let gts = [gt(0, 0, A), gt(0, 1, B), gt(1, 0, B)];
    let dets: Vec<Detection> = gts.iter().map(|g| det(g.image, g.class, 0.7, g.bbox)).collect();
    let r = evaluate_detections(&dets, &gts, 2);
    assert_eq!(r.per_class.len(), 2);
    assert_eq!((r.per_class[0].ground_truths, r.per_class[0].detections), (2, 2));
    for a in &r.per_class {
        close(a.ap50, 1.0);
        close(a.ap75, 1.0);
        close(a.ap_coco, 1.0);
    }
    close(r.map50, 1.0);
    close(r.map_coco, 1.0);
}

#[test]
fn a_false_positive_ranked_first_halves_ap() {
    // Ranks: FP then TP, one object. Recall 0 → 1 at precision 1/2, so the step curve has
    // area 1 × 1/2 (VOC); COCO reads precision 1/2 at all 101 recalls: 0.5.
    let r = evaluate_detections(&[det(0, 0, 0.9, FAR), det(0, 0, 0.8, A)], &[gt(0, 0, A)], 1);
    close(r.map50, 0.5);
    close(r.map_coco, 0.5);
    // Ranked last instead, the false positive costs nothing.
    let r = evaluate_detections(&[det(0, 0, 0.7, FAR), det(0, 0, 0.8, A)], &[gt(0, 0, A)], 1);
    close(r.map50, 1.0);
}

#[test]
fn a_missed_object_among_two_halves_ap() {
    // Recall reaches 1/2 at precision 1: VOC area 1/2 × 1. COCO: precision 1 at the 51
    // recalls 0, 0.01, …, 0.50 and 0 at the other 50: 51/101.
    let r = evaluate_detections(&[det(0, 0, 0.9, A)], &[gt(0, 0, A), gt(0, 0, B)], 1);
    close(r.map50, 0.5);
    close(r.map_coco, 51.0 / 101.0);
    close(r.map75, 51.0 / 101.0);
}

#[test]
fn a_duplicate_detection_is_a_false_positive() {
    // A found twice (0.9, 0.8), then B (0.7): TP, FP, TP over 2 objects.
    // Recall 1/2, 1/2, 1; precision 1, 1/2, 2/3 → made non-increasing: 1, 2/3, 2/3.
    // VOC: 1/2 × 1 + 1/2 × 2/3 = 5/6. COCO: 51 recalls at 1, 50 at 2/3.
    let dets = [det(0, 0, 0.9, A), det(0, 0, 0.8, A), det(0, 0, 0.7, B)];
    let r = evaluate_detections(&dets, &[gt(0, 0, A), gt(0, 0, B)], 1);
    close(r.map50, 5.0 / 6.0);
    close(r.map_coco, (51.0 + 50.0 * 2.0 / 3.0) / 101.0);
}

#[test]
fn a_duplicate_goes_to_the_next_free_object_it_overlaps() {
    // Two objects overlapping with IoU 80/120 = 2/3; both detections sit on the first. The
    // second takes the other object at IoU 2/3 ≥ 0.5 (COCO's greedy rule): AP50 = 1.
    let g2 = [2.0, 0.0, 12.0, 10.0];
    let r = evaluate_detections(&[det(0, 0, 0.9, A), det(0, 0, 0.8, A)], &[gt(0, 0, A), gt(0, 0, g2)], 1);
    close(r.map50, 1.0);
    // At IoU ≥ 0.7 it is a false positive (2/3 < 0.7): AP75 = 51/101 as for a missed one.
    close(r.map75, 51.0 / 101.0);
}

#[test]
fn detections_in_the_wrong_image_or_class_are_false_positives() {
    let gts = [gt(0, 0, A)];
    let r = evaluate_detections(&[det(1, 0, 0.9, A)], &gts, 2);
    close(r.map50, 0.0);
    let r = evaluate_detections(&[det(0, 1, 0.9, A)], &gts, 2);
    close(r.per_class[0].ap50, 0.0);
    // Class 1 has no object, so it is left out of the mean, its detection counted.
    assert_eq!((r.per_class[1].ground_truths, r.per_class[1].detections), (0, 1));
    close(r.map50, 0.0);
    // The mean runs over classes that have objects: class 0 perfect, class 1 missed.
    let r = evaluate_detections(&[det(0, 0, 0.9, A)], &[gt(0, 0, A), gt(0, 1, B)], 2);
    close(r.map50, 0.5);
}

#[test]
fn difficult_objects_neither_count_nor_penalize() {
    // B is difficult. The two detections on B (ranked first) are ignored, not false
    // positives, so AP is 1; with no B annotated they are false positives: recall reaches 1
    // at precision 1/3, AP 1/3.
    let mut hard = gt(0, 0, B);
    hard.difficult = true;
    let dets = [det(0, 0, 0.9, B), det(0, 0, 0.8, B), det(0, 0, 0.7, A)];
    let r = evaluate_detections(&dets, &[gt(0, 0, A), hard], 1);
    assert_eq!(r.per_class[0].ground_truths, 1);
    close(r.map50, 1.0);
    close(r.map_coco, 1.0);
    let r = evaluate_detections(&dets, &[gt(0, 0, A)], 1);
    close(r.map50, 1.0 / 3.0);
    // A class whose only object is difficult has no positives and leaves the mean (were it
    // counted, with AP 0, the mean would be 1/2).
    let hard1 = GroundTruth { class: 1, ..hard };
    let r = evaluate_detections(&[det(0, 0, 0.9, A)], &[gt(0, 0, A), hard1], 2);
    assert_eq!(r.per_class[1].ground_truths, 0);
    close(r.map50, 1.0);
}

#[test]
fn loose_boxes_count_at_low_iou_thresholds_only() {
    // IoU 72/100 = 0.72: a hit at 0.50 … 0.70 (5 thresholds), a miss at 0.75 … 0.95.
    let r = evaluate_detections(&[det(0, 0, 0.9, [0.0, 0.0, 10.0, 7.2])], &[gt(0, 0, A)], 1);
    close(r.map50, 1.0);
    close(r.map75, 0.0);
    close(r.map_coco, 0.5);
}

#[test]
fn no_detections_or_no_objects_give_zero() {
    let r = evaluate_detections(&[], &[gt(0, 0, A)], 1);
    close(r.map50, 0.0);
    close(r.map_coco, 0.0);
    let r = evaluate_detections(&[], &[], 3);
    assert_eq!(r.per_class.len(), 3);
    close(r.map50, 0.0);
}

#[test]
fn nan_scores_rank_last_and_classes_widen() {
    // The NaN-scored false positive ranks after the true positive: AP stays 1.
    let r = evaluate_detections(&[det(0, 0, f32::NAN, FAR), det(0, 0, 0.1, A)], &[gt(0, 0, A)], 1);
    close(r.map50, 1.0);
    // A class beyond num_classes is kept, not dropped.
    let r = evaluate_detections(&[det(0, 4, 0.5, A)], &[gt(0, 4, A)], 2);
    assert_eq!(r.per_class.len(), 5);
    close(r.map50, 1.0);
}
