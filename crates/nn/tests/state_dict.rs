//! State dicts on disk: bitwise round trips, files written by PyTorch, loads that must
//! fail without touching the model, malformed files, and random corruption.

use nabla_core::{DType, Generator, Tensor};
use nabla_nn::*;
use std::collections::BTreeMap;
use std::path::PathBuf;

type StateDict = Vec<(String, Tensor)>;

fn scratch(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("nabla-nn-state-dict-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    dir.join(name)
}

fn names(v: &[(String, Tensor)]) -> Vec<&str> {
    v.iter().map(|(n, _)| n.as_str()).collect()
}

/// `features` (Linear, BatchNorm1d, ReLU) and a `head`: state-dict entries
/// 0-1 features.0, 2-6 features.1 (weight, bias, running_mean, running_var,
/// num_batches_tracked), 7-8 head.
struct Net {
    features: Sequential,
    head: Linear,
}

impl Net {
    fn new(g: &mut Generator) -> Net {
        Net {
            features: Sequential::new()
                .push(Linear::new(3, 8, g))
                .push(BatchNorm1d::new(8))
                .push(ReLU),
            head: Linear::new(8, 2, g),
        }
    }
}

impl Module for Net {
    fn forward(&self, x: &Tensor, mode: Mode) -> nabla_nn::Result<Tensor> {
        let y = self.features.forward_named("features", x, mode)?;
        self.head.forward_named("head", &y, mode)
    }
    fn children(&self, c: &mut Children) {
        c.module("features", &self.features);
        c.module("head", &self.head);
    }
}

#[test]
fn state_dict_round_trip_is_bitwise() {
    let path = scratch("round_trip.safetensors");
    let odd = [
        f32::NAN,
        -0.0,
        f32::from_bits(1),
        f32::INFINITY,
        -1.5e-38,
        f32::from_bits(0x7fc0_1234),
    ];
    let tensors = vec![
        ("a.weight".to_string(), Tensor::from_vec(odd.to_vec(), &[2, 3]).unwrap()),
        ("scalar".to_string(), Tensor::scalar(2.5f64)),
        ("empty".to_string(), Tensor::zeros(&[0, 4], DType::F32)),
        ("empty64".to_string(), Tensor::zeros(&[3, 0], DType::F64)),
        (
            "z".to_string(),
            Tensor::randn(&[5, 7], DType::F64, &mut Generator::new(1)),
        ),
    ];
    let meta = BTreeMap::from([("format".to_string(), "pt".to_string())]);
    save_tensors(&path, &tensors, &meta).unwrap();
    let (back, meta2) = load_tensors(&path).unwrap();
    assert_eq!(meta2, meta);
    assert_eq!(back.len(), tensors.len());
    for (name, t) in &tensors {
        let (_, u) = back.iter().find(|(n, _)| n == name).unwrap();
        assert_eq!((u.shape(), u.dtype()), (t.shape(), t.dtype()), "{name}");
        let bits = |t: &Tensor| -> Vec<u64> {
            match t.dtype() {
                DType::F32 => t
                    .to_vec::<f32>()
                    .unwrap()
                    .iter()
                    .map(|v| u64::from(v.to_bits()))
                    .collect(),
                DType::F64 => t.to_vec::<f64>().unwrap().iter().map(|v| v.to_bits()).collect(),
            }
        };
        assert_eq!(bits(u), bits(t), "{name}");
    }
    // A model saved and loaded into a fresh one of the same shape matches it exactly.
    let (a, b) = (Net::new(&mut Generator::new(1)), Net::new(&mut Generator::new(2)));
    a.forward(&Tensor::randn(&[5, 3], DType::F32, &mut Generator::new(0)), Mode::Train)
        .unwrap();
    state_dict::save(&a, &path).unwrap();
    state_dict::load(&b, &path, true).unwrap();
    for ((n, x), (_, y)) in a.state_dict().iter().zip(b.state_dict().iter()) {
        assert_eq!(x.to_vec_f64(), y.to_vec_f64(), "{n}");
    }
    let leftovers: Vec<_> = std::fs::read_dir(path.parent().unwrap())
        .unwrap()
        .filter_map(|e| e.ok()?.file_name().into_string().ok())
        .filter(|n| n.contains(".tmp-"))
        .collect();
    assert!(leftovers.is_empty(), "{leftovers:?}");
}

/// Bytes of a safetensors file with the given header and data.
fn raw_file(header: &str, data: &[u8]) -> Vec<u8> {
    let mut out = (header.len() as u64).to_le_bytes().to_vec();
    out.extend_from_slice(header.as_bytes());
    out.extend_from_slice(data);
    out
}

#[test]
fn pytorch_state_dict_file_loads_without_renaming() {
    // What safetensors.torch.save_file(model.state_dict()) writes: f32 parameters and
    // buffers, and an int64 0-d num_batches_tracked.
    use safetensors::tensor::{Dtype, TensorView};
    let net = Net::new(&mut Generator::new(3));
    let sd = net.state_dict();
    let mut bytes: Vec<(String, Dtype, Vec<usize>, Vec<u8>)> = Vec::new();
    for (i, (name, t)) in sd.iter().enumerate() {
        let (dtype, data) = if name.ends_with("num_batches_tracked") {
            (Dtype::I64, 7i64.to_le_bytes().to_vec())
        } else {
            let v: Vec<u8> = t
                .to_vec_f32()
                .iter()
                .flat_map(|x| (x + i as f32).to_le_bytes())
                .collect();
            (Dtype::F32, v)
        };
        bytes.push((name.clone(), dtype, t.shape().to_vec(), data));
    }
    let views: Vec<(String, TensorView)> = bytes
        .iter()
        .map(|(n, d, s, b)| (n.clone(), TensorView::new(*d, s.clone(), b).unwrap()))
        .collect();
    let path = scratch("torch.safetensors");
    safetensors::serialize_to_file(views, &None, &path).unwrap();
    let fresh = Net::new(&mut Generator::new(4));
    state_dict::load(&fresh, &path, true).unwrap();
    for (i, ((n, want), (_, got))) in sd.iter().zip(fresh.state_dict().iter()).enumerate() {
        if n.ends_with("num_batches_tracked") {
            assert_eq!(got.item().unwrap(), 7.0);
        } else {
            let want: Vec<f32> = want.to_vec_f32().iter().map(|x| x + i as f32).collect();
            assert_eq!(got.to_vec_f32(), want, "{n}");
        }
    }
}

#[test]
fn half_precision_files_load_as_f32() {
    let path = scratch("half.safetensors");
    // 1.0, -2.0 in f16; 1.0, 3.0 in bf16.
    let header = r#"{"h":{"dtype":"F16","shape":[2],"data_offsets":[0,4]},"b":{"dtype":"BF16","shape":[2],"data_offsets":[4,8]}}"#;
    std::fs::write(
        &path,
        raw_file(header, &[0x00, 0x3c, 0x00, 0xc0, 0x80, 0x3f, 0x40, 0x40]),
    )
    .unwrap();
    let (t, _) = load_tensors(&path).unwrap();
    assert_eq!(names(&t), ["h", "b"]);
    assert_eq!(t[0].1.to_vec::<f32>().unwrap(), vec![1.0, -2.0]);
    assert_eq!(t[1].1.to_vec::<f32>().unwrap(), vec![1.0, 3.0]);
}

#[test]
fn integer_and_bool_files_load_as_f64() {
    let path = scratch("ints.safetensors");
    let header = r#"{"i":{"dtype":"I32","shape":[2],"data_offsets":[0,8]},"u":{"dtype":"U8","shape":[1],"data_offsets":[8,9]},"b":{"dtype":"BOOL","shape":[2],"data_offsets":[9,11]}}"#;
    let mut data = (-3i32).to_le_bytes().to_vec();
    data.extend(7i32.to_le_bytes());
    data.extend([255, 1, 0]);
    std::fs::write(&path, raw_file(header, &data)).unwrap();
    let (t, _) = load_tensors(&path).unwrap();
    assert_eq!(names(&t), ["i", "u", "b"]);
    assert!(t.iter().all(|(_, t)| t.dtype() == DType::F64));
    assert_eq!(t[0].1.to_vec_f64(), vec![-3.0, 7.0]);
    assert_eq!(t[1].1.to_vec_f64(), vec![255.0]);
    assert_eq!(t[2].1.to_vec_f64(), vec![1.0, 0.0]);
    data[10] = 2;
    std::fs::write(&path, raw_file(header, &data)).unwrap();
    let err = load_tensors(&path).unwrap_err().to_string();
    assert!(err.contains("tensor \"b\": bool byte 2"), "{err}");
}

#[test]
fn bad_state_dicts_leave_the_model_untouched() {
    let net = Net::new(&mut Generator::new(5));
    let before: Vec<Vec<f64>> = net.state_dict().iter().map(|(_, t)| t.to_vec_f64()).collect();
    let good = Net::new(&mut Generator::new(6)).state_dict();
    let with = |f: &dyn Fn(&mut StateDict)| {
        let mut sd = good.clone();
        f(&mut sd);
        net.load_state_dict(&sd, true).unwrap_err().to_string()
    };
    let err = with(&|sd| sd[7].1 = Tensor::zeros(&[3, 8], DType::F32));
    assert!(
        err.contains("head.weight: shape [3, 8] in the source, [2, 8] in the model"),
        "{err}"
    );
    let err = with(&|sd| sd[0].1 = sd[0].1.to_dtype(DType::F64).unwrap());
    assert!(err.contains("features.0.weight: dtype F64"), "{err}");
    let err = with(&|sd| {
        sd.remove(1);
    });
    assert!(err.contains("missing from the source: features.0.bias"), "{err}");
    let err = with(&|sd| sd.push(("extra.weight".into(), Tensor::zeros(&[1], DType::F32))));
    assert!(err.contains("not in the model: extra.weight"), "{err}");
    let err = with(&|sd| sd.push(sd[0].clone()));
    assert!(err.contains("features.0.weight: given twice"), "{err}");
    let err = with(&|sd| sd[6].1 = Tensor::scalar(1.5f64));
    assert!(
        err.contains("num_batches_tracked: a count must be a whole number"),
        "{err}"
    );
    let after: Vec<Vec<f64>> = net.state_dict().iter().map(|(_, t)| t.to_vec_f64()).collect();
    assert_eq!(before, after);
    // Non-strict: missing and unexpected names are reported, the rest loads.
    let mut sd = good.clone();
    sd.remove(8);
    sd.push(("extra".into(), Tensor::zeros(&[1], DType::F32)));
    let report = net.load_state_dict(&sd, false).unwrap();
    assert_eq!(
        (report.missing, report.unexpected),
        (vec!["head.bias".to_string()], vec!["extra".to_string()])
    );
    assert_eq!(net.state_dict()[0].1.to_vec_f64(), good[0].1.to_vec_f64());
    assert_eq!(net.state_dict()[8].1.to_vec_f64(), before[8]);
    // Errors from files name the file.
    let path = scratch("wrong_shape.safetensors");
    save_tensors(
        &path,
        &[("head.weight".into(), Tensor::zeros(&[1], DType::F32))],
        &BTreeMap::new(),
    )
    .unwrap();
    let err = state_dict::load(&net, &path, false).unwrap_err().to_string();
    assert!(
        err.starts_with(&path.display().to_string()) && err.contains("head.weight: shape"),
        "{err}"
    );
}

#[test]
fn malformed_files_give_clear_errors() {
    let path = scratch("malformed.safetensors");
    let ok = r#"{"w":{"dtype":"F32","shape":[2],"data_offsets":[0,8]}}"#;
    let cases: Vec<(Vec<u8>, &str)> = vec![
        (vec![1, 2, 3], "truncated: 3 bytes"),
        (
            raw_file(ok, &[0; 4]),
            "tensor \"w\": bytes 0..8 fall outside the 4-byte data section",
        ),
        (raw_file(ok, &[0; 12]), "cover 8 bytes but the data section holds 12"),
        (
            {
                let mut f = raw_file(ok, &[0; 8]);
                f[..8].copy_from_slice(&500u64.to_le_bytes());
                f
            },
            "header length 500 runs past the end",
        ),
        (
            {
                let mut f = raw_file(ok, &[0; 8]);
                f[..8].copy_from_slice(&u64::MAX.to_le_bytes());
                f
            },
            "over the 100000000-byte limit",
        ),
        (raw_file("[1, 2]", &[]), "header is not a JSON object"),
        (raw_file("{\"w\": ", &[]), "header is not JSON"),
        (
            raw_file(r#"{"w":{"dtype":"F12","shape":[2],"data_offsets":[0,8]}}"#, &[0; 8]),
            "tensor \"w\": unknown dtype \"F12\"",
        ),
        (
            raw_file(r#"{"w":{"dtype":"F32","shape":[3],"data_offsets":[0,8]}}"#, &[0; 8]),
            "tensor \"w\": shape [3] of F32 needs 12 bytes, data_offsets give 8",
        ),
        (
            raw_file(
                r#"{"w":{"dtype":"F32","shape":[4294967296,4294967296],"data_offsets":[0,8]}}"#,
                &[0; 8],
            ),
            "tensor \"w\": shape [4294967296, 4294967296] has more elements",
        ),
        (
            raw_file(r#"{"w":{"dtype":"F32","shape":[2],"data_offsets":[8,0]}}"#, &[0; 8]),
            "end before they begin",
        ),
        (
            raw_file(
                r#"{"w":{"dtype":"F32","shape":[2],"data_offsets":[0,8]},"v":{"dtype":"F32","shape":[1],"data_offsets":[4,8]}}"#,
                &[0; 8],
            ),
            "tensor \"v\": bytes 4..8 overlap",
        ),
        (
            raw_file(r#"{"w":{"dtype":"F32","shape":[1],"data_offsets":[4,8]}}"#, &[0; 8]),
            "tensor \"w\": bytes 4..8 leave a gap",
        ),
        (
            raw_file(
                r#"{"w":{"dtype":"F32","shape":[2],"data_offsets":[0,8]},"w":{"dtype":"F32","shape":[0],"data_offsets":[8,8]}}"#,
                &[0; 8],
            ),
            "tensor \"w\" appears twice",
        ),
        (
            raw_file(r#"{"__metadata__":{"a":1}}"#, &[]),
            "__metadata__ entry \"a\" is not a string",
        ),
        (
            raw_file(
                r#"{"w":{"dtype":"I64","shape":[1],"data_offsets":[0,8]}}"#,
                &i64::MAX.to_le_bytes(),
            ),
            "cannot be held exactly",
        ),
        (
            raw_file(r#"{"w":{"dtype":"F8_E4M3","shape":[1],"data_offsets":[0,1]}}"#, &[0]),
            "dtype F8_E4M3 is not supported",
        ),
        (
            raw_file(r#"{"w":{"dtype":"F32","shape":[-1],"data_offsets":[0,8]}}"#, &[0; 8]),
            "shape entry -1 is not a size",
        ),
    ];
    for (bytes, want) in cases {
        std::fs::write(&path, &bytes).unwrap();
        let err = load_tensors(&path).unwrap_err().to_string();
        assert!(err.starts_with(&path.display().to_string()), "{err}");
        assert!(err.contains(want), "expected {want:?} in {err:?}");
    }
    let missing = load_tensors(scratch("does-not-exist.safetensors")).unwrap_err();
    assert!(matches!(missing, Error::Io { .. }));
    // Writing into a missing directory fails cleanly; reserved and repeated names are refused.
    let t = vec![("w".to_string(), Tensor::zeros(&[1], DType::F32))];
    assert!(save_tensors(scratch("no/such/dir.safetensors"), &t, &BTreeMap::new()).is_err());
    let twice = vec![t[0].clone(), t[0].clone()];
    assert!(save_tensors(&path, &twice, &BTreeMap::new()).is_err());
    let reserved = vec![("__metadata__".to_string(), Tensor::zeros(&[1], DType::F32))];
    assert!(save_tensors(&path, &reserved, &BTreeMap::new()).is_err());
}

#[test]
fn random_corruption_never_panics() {
    let mut g = Generator::new(2024);
    let path = scratch("fuzz_src.safetensors");
    let tensors = vec![
        ("a".to_string(), Tensor::randn(&[3, 4], DType::F32, &mut g)),
        ("b".to_string(), Tensor::randn(&[5], DType::F64, &mut g)),
        ("c".to_string(), Tensor::scalar(1.0f32)),
        ("d".to_string(), Tensor::zeros(&[0], DType::F32)),
    ];
    let meta = BTreeMap::from([("k".to_string(), "v".to_string())]);
    save_tensors(&path, &tensors, &meta).unwrap();
    let valid = std::fs::read(&path).unwrap();
    let header_end = 8 + u64::from_le_bytes(valid[..8].try_into().unwrap()) as usize;
    let target = scratch("fuzz.safetensors");
    let (mut rejected, mut truncations) = (0, 0);
    for case in 0..400 {
        let mut bytes = valid.clone();
        let kind = case % 4;
        match kind {
            // Truncation anywhere: always detected, since the tensors must cover the data.
            0 => bytes.truncate(g.below(valid.len() as u64) as usize),
            // A few random bytes anywhere.
            1 => (0..1 + g.below(4)).for_each(|_| {
                let i = g.below(bytes.len() as u64) as usize;
                bytes[i] = g.below(256) as u8;
            }),
            // One byte of the header, often a digit of a shape or offset.
            2 => {
                let i = 8 + g.below((header_end - 8) as u64) as usize;
                bytes[i] = b"0123456789{}[]\",:-"[g.below(18) as usize];
            }
            // A random header length.
            _ => bytes[..8].copy_from_slice(&g.next_u64().to_le_bytes()[..8]),
        }
        std::fs::write(&target, &bytes).unwrap();
        match load_tensors(&target) {
            Ok((ts, _)) => {
                for (_, t) in ts {
                    assert_eq!(t.numel(), t.to_vec_f64().len());
                }
            }
            Err(e) => {
                rejected += 1;
                assert!(!e.to_string().is_empty());
            }
        }
        if kind == 0 {
            truncations += 1;
            assert!(
                load_tensors(&target).is_err(),
                "a file truncated to {} bytes loaded",
                bytes.len()
            );
        }
    }
    assert_eq!(truncations, 100);
    assert!(rejected >= 200, "only {rejected} of 400 corruptions were rejected");
}
