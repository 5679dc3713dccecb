//! NMS against torchvision: `fixtures/nms.json`, written by `fixtures/gen_nms.py`
//! (torchvision.ops.nms and batched_nms on random clustered boxes), at every ISA level.

use nabla_core::cpu;
use nabla_vision::{batched_nms, nms};
use serde_json::Value;

fn floats(v: &Value) -> Vec<f32> {
    v.as_array()
        .unwrap()
        .iter()
        .map(|x| x.as_f64().unwrap() as f32)
        .collect()
}

#[test]
fn nms_keeps_what_torchvision_keeps() {
    let text = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures/nms.json")).unwrap();
    let doc: Value = serde_json::from_str(&text).unwrap();
    let cases = doc["cases"].as_array().unwrap();
    assert_eq!(cases.len(), 5);
    for case in cases {
        let name = case["name"].as_str().unwrap();
        let boxes: Vec<[f32; 4]> = case["boxes"]
            .as_array()
            .unwrap()
            .iter()
            .map(|b| floats(b).try_into().unwrap())
            .collect();
        let scores = floats(&case["scores"]);
        let thr = case["iou_threshold"].as_f64().unwrap() as f32;
        let want: Vec<usize> = case["keep"]
            .as_array()
            .unwrap()
            .iter()
            .map(|k| k.as_u64().unwrap() as usize)
            .collect();
        assert!(want.len() < boxes.len(), "{name}: the fixture must suppress something");
        for level in cpu::supported() {
            let got = cpu::with_isa(level, || match case["classes"].as_array() {
                Some(c) => {
                    let classes: Vec<usize> = c.iter().map(|k| k.as_u64().unwrap() as usize).collect();
                    batched_nms(&boxes, &scores, &classes, thr)
                }
                None => nms(&boxes, &scores, thr),
            });
            assert_eq!(got, want, "{name} at {level}");
        }
    }
}
