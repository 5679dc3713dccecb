use super::*;
use nabla_core::Generator;

/// The textbook loop (torchvision's CPU kernel, written plainly): the reference the fast
/// path must agree with.
fn nms_plain(boxes: &[[f32; 4]], scores: &[f32], thr: f32) -> Vec<usize> {
    let order = rank(scores, (0..boxes.len()).collect());
    let area = |b: [f32; 4]| (b[2] - b[0]) * (b[3] - b[1]);
    let mut suppressed = vec![false; order.len()];
    let mut keep = vec![];
    for a in 0..order.len() {
        if suppressed[a] {
            continue;
        }
        let p = boxes[order[a]];
        keep.push(order[a]);
        for b in a + 1..order.len() {
            let q = boxes[order[b]];
            let w = cmax(0.0, cmin(p[2], q[2]) - cmax(p[0], q[0]));
            let h = cmax(0.0, cmin(p[3], q[3]) - cmax(p[1], q[1]));
            let inter = w * h;
            if inter / (area(p) + area(q) - inter) > thr {
                suppressed[b] = true;
            }
        }
    }
    keep
}

fn random_boxes(n: usize, span: f32, rng: &mut Generator) -> (Vec<[f32; 4]>, Vec<f32>) {
    let boxes = (0..n)
        .map(|_| {
            let (x, y) = (rng.uniform() as f32 * span, rng.uniform() as f32 * span);
            let (w, h) = (1.0 + rng.uniform() as f32 * 30.0, 1.0 + rng.uniform() as f32 * 30.0);
            [x, y, x + w, y + h]
        })
        .collect();
    // Scores on a coarse grid, so that ties occur.
    let scores = (0..n).map(|_| (rng.below(50) as f32) / 50.0).collect();
    (boxes, scores)
}

#[test]
fn identical_boxes_keep_the_higher_score() {
    let boxes = [[0.0, 0.0, 1.0, 1.0]; 2];
    assert_eq!(nms(&boxes, &[0.5, 0.9], 0.99), vec![1]);
    // IoU 1 is not strictly greater than a threshold of 1: both stay, best first.
    assert_eq!(nms(&boxes, &[0.5, 0.9], 1.0), vec![1, 0]);
}

#[test]
fn iou_exactly_at_the_threshold_does_not_suppress() {
    // Overlap 2×1 = 2 of a union 4 + 2 − 2 = 4: IoU exactly 0.5.
    let boxes = [[0.0, 0.0, 4.0, 1.0], [0.0, 0.0, 2.0, 1.0]];
    assert_eq!(nms(&boxes, &[0.9, 0.8], 0.5), vec![0, 1]);
    assert_eq!(nms(&boxes, &[0.9, 0.8], 0.499), vec![0]);
}

#[test]
fn disjoint_boxes_all_stay_by_decreasing_score() {
    let boxes = [[0.0, 0.0, 1.0, 1.0], [2.0, 2.0, 3.0, 3.0], [4.0, 0.0, 5.0, 1.0]];
    assert_eq!(nms(&boxes, &[0.1, 0.3, 0.2], 0.0), vec![1, 2, 0]);
}

#[test]
fn a_suppressed_box_cannot_suppress() {
    // A–B and B–C overlap 5 of a union 15 (IoU 1/3), A–C not at all: A removes B, so B
    // never gets to remove C.
    let boxes = [[0.0, 0.0, 10.0, 1.0], [5.0, 0.0, 15.0, 1.0], [10.0, 0.0, 20.0, 1.0]];
    assert_eq!(nms(&boxes, &[0.9, 0.8, 0.7], 0.3), vec![0, 2]);
    // With B ranked first it removes both A and C.
    assert_eq!(nms(&boxes, &[0.8, 0.9, 0.7], 0.3), vec![1]);
}

#[test]
fn ties_in_score_go_to_the_lower_index() {
    let boxes = [[0.0, 0.0, 2.0, 2.0], [0.0, 0.0, 2.0, 2.0], [5.0, 5.0, 6.0, 6.0]];
    assert_eq!(nms(&boxes, &[0.5, 0.5, 0.5], 0.5), vec![0, 2]);
    let boxes = [[5.0, 5.0, 6.0, 6.0], [0.0, 0.0, 2.0, 2.0], [0.0, 0.0, 2.0, 2.0]];
    assert_eq!(nms(&boxes, &[0.5, 0.5, 0.5], 0.5), vec![0, 1]);
}

#[test]
fn empty_input_keeps_nothing() {
    assert!(nms(&[], &[], 0.5).is_empty());
    assert!(batched_nms(&[], &[], &[], 0.5).is_empty());
    assert!(remove_small_boxes(&[], 1.0).is_empty());
}

#[test]
fn nan_scores_are_dropped_and_nan_boxes_suppress_nothing() {
    let boxes = [[0.0, 0.0, 2.0, 2.0], [0.0, 0.0, 2.0, 2.0], [f32::NAN, 0.0, 2.0, 2.0]];
    // Box 1's NaN score drops it; box 0 stays; box 2 (NaN x1) overlaps nothing measurably.
    assert_eq!(nms(&boxes, &[0.5, f32::NAN, 0.9], 0.1), vec![2, 0]);
}

#[test]
fn fast_path_agrees_with_the_plain_loop_at_every_isa_level() {
    let mut rng = Generator::new(17);
    for (n, span, thr) in [(7, 20.0, 0.3), (300, 100.0, 0.5), (2000, 200.0, 0.7), (1500, 40.0, 0.2)] {
        let (boxes, scores) = random_boxes(n, span, &mut rng);
        let want = nms_plain(&boxes, &scores, thr);
        assert!(
            want.len() > 1 && want.len() < n,
            "the case must suppress some, keep some"
        );
        for level in cpu::supported() {
            let got = cpu::with_isa(level, || nms(&boxes, &scores, thr));
            assert_eq!(got, want, "n {n} thr {thr} at {level}");
        }
    }
}

#[test]
fn grid_path_agrees_with_the_plain_loop_on_spread_and_odd_boxes() {
    let mut rng = Generator::new(23);
    for (n, span, thr) in [
        (3000, 1500.0, 0.5),
        (2500, 800.0, 0.0),
        (4000, 2000.0, 0.3),
        (1000, 600.0, 0.9),
    ] {
        let (mut boxes, scores) = random_boxes(n, span, &mut rng);
        // Odd boxes: zero width, inverted, NaN and infinite corners, a huge box, a box equal
        // to another, a point.
        boxes[5] = [10.0, 10.0, 10.0, 30.0];
        boxes[6] = [40.0, 40.0, 20.0, 60.0];
        boxes[7] = [f32::NAN, 0.0, 5.0, 5.0];
        boxes[8] = [0.0, 0.0, f32::INFINITY, 5.0];
        boxes[9] = [-50.0, -50.0, span * 0.6, span * 0.6];
        boxes[10] = boxes[11];
        boxes[12] = [3.0, 3.0, 3.0, 3.0];
        let order = rank(&scores, (0..n).collect());
        let cands = Candidates::new(&boxes, &order);
        let got = grid::nms_grid(&cands, thr).expect("spread boxes take the grid");
        let want = nms_plain(&boxes, &scores, thr);
        assert!(
            want.len() > 1 && want.len() < n,
            "the case must suppress some, keep some"
        );
        assert_eq!(got, want, "n {n} thr {thr}");
        assert_eq!(nms(&boxes, &scores, thr), want);
    }
    // Crowded boxes and negative thresholds go to the sweep.
    let (boxes, scores) = random_boxes(3000, 30.0, &mut rng);
    let cands = Candidates::new(&boxes, &rank(&scores, (0..3000).collect()));
    assert!(grid::nms_grid(&cands, 0.5).is_none());
    assert!(grid::nms_grid(&cands, -0.1).is_none());
    assert_eq!(nms(&boxes, &scores, -0.1), vec![nms_plain(&boxes, &scores, -0.1)[0]]);
}

#[test]
fn batched_nms_suppresses_within_a_class_only() {
    let mut rng = Generator::new(5);
    let (boxes, scores) = random_boxes(400, 60.0, &mut rng);
    let classes: Vec<usize> = (0..400).map(|_| rng.below(3) as usize).collect();
    let got = batched_nms(&boxes, &scores, &classes, 0.4);
    // The same as running each class alone and ranking the union.
    let mut want = vec![];
    for c in 0..3 {
        let members: Vec<usize> = (0..400).filter(|&i| classes[i] == c).collect();
        let b: Vec<_> = members.iter().map(|&i| boxes[i]).collect();
        let s: Vec<_> = members.iter().map(|&i| scores[i]).collect();
        want.extend(nms_plain(&b, &s, 0.4).into_iter().map(|k| members[k]));
    }
    want.sort_by(|&a, &b| scores[b].total_cmp(&scores[a]).then(a.cmp(&b)));
    assert_eq!(got, want);
    // And it keeps more than one class-blind NMS would.
    assert!(got.len() > nms(&boxes, &scores, 0.4).len());
}

#[test]
fn clip_clamps_x_to_width_and_y_to_height() {
    let mut boxes = [[-3.0, -1.0, 50.0, 20.0], [5.0, 6.0, 7.0, 8.0]];
    clip_boxes_to_image(&mut boxes, [10, 40]);
    assert_eq!(boxes, [[0.0, 0.0, 40.0, 10.0], [5.0, 6.0, 7.0, 8.0]]);
}

#[test]
fn small_boxes_are_those_with_a_side_under_min_size() {
    let boxes = [
        [0.0, 0.0, 2.0, 2.0],      // both sides exactly 2: kept
        [0.0, 0.0, 1.5, 9.0],      // narrow
        [0.0, 0.0, 9.0, 1.0],      // flat
        [3.0, 0.0, 1.0, 5.0],      // x2 < x1: negative width
        [0.0, 0.0, f32::NAN, 5.0], // NaN side
        [10.0, 10.0, 20.0, 30.0],  // kept
    ];
    assert_eq!(remove_small_boxes(&boxes, 2.0), vec![0, 5]);
}
