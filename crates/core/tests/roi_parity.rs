//! RoI align and RoI pooling against torchvision: `fixtures/roi.json`, written by
//! `fixtures/gen_roi.py` (`torchvision.ops.roi_align` / `roi_pool` in float32), forward and
//! the map's gradient for a fixed upstream gradient, compared in f32 (and in f64, where
//! only torchvision's f32 rounding separates the two). Each case runs again with the map's
//! channels repeated 9 times (18 channels), where the channel-blocked kernels take over;
//! channels are independent, so torchvision's figures repeat the same way.

use nabla_core::Tensor;
use serde_json::Value;

fn floats(v: &Value) -> Vec<f64> {
    v.as_array()
        .expect("a list")
        .iter()
        .map(|x| x.as_f64().expect("a number"))
        .collect()
}

/// `v` (`[A, C, rest]` with `c` channels) with its channels repeated `times` times over.
fn repeat_channels(v: &[f64], c: usize, rest: usize, times: usize) -> Vec<f64> {
    v.chunks_exact(c * rest)
        .flat_map(|a| (0..times).flat_map(move |_| a.iter().copied()))
        .collect()
}

/// `|a − b| ≤ atol + rtol·|b|` everywhere, or the first place it fails.
fn close(what: &str, got: &[f64], want: &[f64], rtol: f64, atol: f64) {
    assert_eq!(got.len(), want.len(), "{what}: length");
    for (i, (a, b)) in got.iter().zip(want).enumerate() {
        assert!(
            (a - b).abs() <= atol + rtol * b.abs(),
            "{what}: element {i}: nabla {a}, torchvision {b}"
        );
    }
}

#[test]
fn roi_ops_match_torchvision() {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures/roi.json");
    let text = std::fs::read_to_string(path).expect("the fixture is in the repository");
    let doc: Value = serde_json::from_str(&text).unwrap();
    let shape0: Vec<usize> = floats(&doc["x_shape"]).iter().map(|&v| v as usize).collect();
    let x0 = floats(&doc["x"]);
    let cases = doc["cases"].as_array().unwrap();
    assert_eq!(cases.len(), 8);
    for (c, times) in cases.iter().flat_map(|c| [(c, 1), (c, 9)]) {
        let (ch, plane) = (shape0[1], shape0[2] * shape0[3]);
        let shape = [shape0[0], ch * times, shape0[2], shape0[3]];
        let x = repeat_channels(&x0, ch, plane, times);
        let name = c["name"].as_str().unwrap();
        let rois = floats(&c["rois"]);
        let out: Vec<usize> = floats(&c["output_size"]).iter().map(|&v| v as usize).collect();
        let scale = c["spatial_scale"].as_f64().unwrap();
        let bins = out[0] * out[1];
        let [want, gy] = [&c["out"], &c["grad_out"]].map(|v| repeat_channels(&floats(v), ch, bins, times));
        let want_gx = repeat_channels(&floats(&c["grad_x"]), ch, plane, times);
        let run = |x: &Tensor, r: &Tensor| -> Tensor {
            match c["op"].as_str().unwrap() {
                "roi_align" => x
                    .roi_align(
                        r,
                        [out[0], out[1]],
                        scale,
                        c["sampling_ratio"].as_i64().unwrap(),
                        c["aligned"].as_bool().unwrap(),
                    )
                    .unwrap(),
                "roi_pool" => x.roi_pool(r, [out[0], out[1]], scale).unwrap(),
                op => panic!("{name}: op {op}"),
            }
        };
        for f64_run in [false, true] {
            let what = format!(
                "{name} ({}, {} channels)",
                if f64_run { "f64" } else { "f32" },
                shape[1]
            );
            let (xt, rt) = if f64_run {
                (
                    Tensor::from_vec(x.iter().map(|&v| v as f32 as f64).collect(), &shape).unwrap(),
                    Tensor::from_vec(rois.iter().map(|&v| v as f32 as f64).collect(), &[rois.len() / 5, 5]).unwrap(),
                )
            } else {
                (
                    Tensor::from_vec(x.iter().map(|&v| v as f32).collect(), &shape).unwrap(),
                    Tensor::from_vec(rois.iter().map(|&v| v as f32).collect(), &[rois.len() / 5, 5]).unwrap(),
                )
            };
            let xt = xt.set_requires_grad(true);
            let y = run(&xt, &rt);
            assert_eq!(y.shape(), &[rois.len() / 5, shape[1], out[0], out[1]], "{what}");
            // The f64 run differs from torchvision's f32 by that rounding only: same bounds.
            let (rtol, atol) = (1e-5, 1e-6);
            close(&format!("{what} forward"), &y.to_vec_f64(), &want, rtol, atol);
            let g = Tensor::from_vec(gy.clone(), y.shape()).unwrap();
            let g = if f64_run {
                g
            } else {
                Tensor::from_vec(g.to_vec_f32(), y.shape()).unwrap()
            };
            let grads = y.mul(&g).unwrap().sum_all().unwrap().backward().unwrap();
            let gx = grads.get(&xt).expect("a gradient for the map").to_vec_f64();
            close(&format!("{what} gradient"), &gx, &want_gx, rtol, atol);
        }
    }
}
