//! COCO AP against pycocotools: `fixtures/coco_ap.json`, written by `fixtures/gen_coco_ap.py`
//! (COCOeval on random detections with hits, misses, duplicates and false positives).

use nabla_vision::{evaluate_detections, Detection, GroundTruth};
use serde_json::Value;

fn bbox(v: &Value) -> [f32; 4] {
    let b: Vec<f32> = v
        .as_array()
        .unwrap()
        .iter()
        .map(|x| x.as_f64().unwrap() as f32)
        .collect();
    b.try_into().unwrap()
}

fn uint(v: &Value) -> usize {
    v.as_u64().unwrap() as usize
}

#[test]
fn coco_ap_matches_pycocotools() {
    let text = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures/coco_ap.json")).unwrap();
    let doc: Value = serde_json::from_str(&text).unwrap();
    let dets: Vec<Detection> = doc["detections"]
        .as_array()
        .unwrap()
        .iter()
        .map(|d| Detection {
            image: uint(&d["image"]),
            class: uint(&d["class"]),
            score: d["score"].as_f64().unwrap() as f32,
            bbox: bbox(&d["bbox"]),
        })
        .collect();
    let gts: Vec<GroundTruth> = doc["ground_truths"]
        .as_array()
        .unwrap()
        .iter()
        .map(|g| GroundTruth {
            image: uint(&g["image"]),
            class: uint(&g["class"]),
            bbox: bbox(&g["bbox"]),
            difficult: false,
        })
        .collect();
    let classes = uint(&doc["classes"]);
    let report = evaluate_detections(&dets, &gts, classes);
    let mut means = vec![];
    for (k, row) in doc["ap"].as_array().unwrap().iter().enumerate() {
        let ap: Vec<f64> = row.as_array().unwrap().iter().map(|v| v.as_f64().unwrap()).collect();
        let mean = ap.iter().sum::<f64>() / ap.len() as f64;
        // The fixture must exercise the IoU thresholds: AP falls as the threshold rises.
        assert!(ap[0] > ap[9], "class {k}: {ap:?}");
        let got = &report.per_class[k];
        assert!(
            (got.ap75 - ap[5]).abs() < 1e-9,
            "class {k}: AP75 {} vs pycocotools {}",
            got.ap75,
            ap[5]
        );
        assert!(
            (got.ap_coco - mean).abs() < 1e-9,
            "class {k}: AP {} vs pycocotools {mean}",
            got.ap_coco
        );
        means.push(mean);
    }
    let want = means.iter().sum::<f64>() / means.len() as f64;
    assert!(
        (report.map_coco - want).abs() < 1e-9,
        "mAP {} vs {want}",
        report.map_coco
    );
}
