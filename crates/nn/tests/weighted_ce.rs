//! Class-weighted cross entropy against PyTorch: `fixtures/weighted_ce.json`, written by
//! `fixtures/gen_weighted_ce.py` (`F.cross_entropy(x, t, weight=w, ignore_index=...)`),
//! loss and gradient in f64.

use nabla_core::Tensor;
use nabla_nn::loss::{cross_entropy_weighted, CrossEntropyOptions, Reduction};
use serde_json::Value;

fn floats(v: &Value) -> Vec<f64> {
    v.as_array()
        .expect("a list")
        .iter()
        .map(|x| x.as_f64().expect("a number"))
        .collect()
}

#[test]
fn weighted_cross_entropy_matches_pytorch() {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures/weighted_ce.json");
    let text = std::fs::read_to_string(path).expect("the fixture is in the repository");
    let doc: Value = serde_json::from_str(&text).unwrap();
    let cases = doc["cases"].as_array().unwrap();
    let names: Vec<&str> = cases.iter().map(|c| c["name"].as_str().unwrap()).collect();
    assert_eq!(names, ["maps_mean_ignore", "maps_sum", "rows_mean"]);
    for c in cases {
        let name = c["name"].as_str().unwrap();
        let shape: Vec<usize> = floats(&c["shape"]).iter().map(|&v| v as usize).collect();
        let x = Tensor::from_vec(floats(&c["logits"]), &shape)
            .unwrap()
            .set_requires_grad(true);
        let t: Vec<usize> = floats(&c["target"]).iter().map(|&v| v as usize).collect();
        let w = floats(&c["weight"]);
        let w = Tensor::from_vec(w.clone(), &[w.len()]).unwrap();
        let opts = CrossEntropyOptions {
            reduction: match c["reduction"].as_str().unwrap() {
                "mean" => Reduction::Mean,
                "sum" => Reduction::Sum,
                r => panic!("{name}: reduction {r}"),
            },
            ignore_index: c["ignore_index"].as_u64().map(|v| v as usize),
            ..Default::default()
        };
        let loss = cross_entropy_weighted(&x, &t, &w, &opts).unwrap();
        let want = c["loss"].as_f64().unwrap();
        let got = loss.item().unwrap();
        assert!(
            (got - want).abs() <= 1e-10 * (1.0 + want.abs()),
            "{name}: {got} vs {want}"
        );
        let grads = loss.backward().unwrap();
        let g = grads.get(&x).unwrap().to_vec_f64();
        for (i, (a, b)) in g.iter().zip(floats(&c["grad"])).enumerate() {
            assert!((a - b).abs() <= 1e-10 * (1.0 + b.abs()), "{name}: grad {i}: {a} vs {b}");
        }
    }
}
