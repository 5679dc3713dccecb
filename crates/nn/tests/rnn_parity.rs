//! Recurrent layers and cells against PyTorch: `fixtures/rnn.json`, written by
//! `fixtures/gen_rnn.py`. Each case loads PyTorch's state dict into the nabla module by
//! name and compares, in f64, the outputs, final states and the gradients of the input,
//! the initial states and every parameter; one case also checks `clip_grad_norm`.

use nabla_core::{DType, Generator, Tensor};
use nabla_nn::optim::clip_grad_norm;
use nabla_nn::{GRUCell, LSTMCell, LayerOptions, Mode, Module, RNNCell, RnnNonlinearity, RnnOptions, GRU, LSTM, RNN};
use serde_json::Value;

fn floats(v: &Value) -> Vec<f64> {
    v.as_array()
        .expect("a list")
        .iter()
        .map(|x| x.as_f64().expect("a number"))
        .collect()
}

fn sizes(v: &Value) -> Vec<usize> {
    floats(v).iter().map(|&v| v as usize).collect()
}

fn tensor(v: &Value, shape: &[usize]) -> Option<Tensor> {
    (!v.is_null()).then(|| Tensor::from_vec(floats(v), shape).unwrap().set_requires_grad(true))
}

fn fixture() -> Value {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures/rnn.json");
    serde_json::from_str(&std::fs::read_to_string(path).expect("the fixture is in the repository")).unwrap()
}

#[track_caller]
fn close(what: &str, got: &[f64], want: &[f64]) {
    assert_eq!(got.len(), want.len(), "{what}: lengths");
    for (i, (a, b)) in got.iter().zip(want).enumerate() {
        assert!((a - b).abs() <= 1e-9 * (1.0 + b.abs()), "{what}[{i}]: {a} vs {b}");
    }
}

fn load(m: &dyn Module, c: &Value) {
    let sd: Vec<(String, Tensor)> = c["state_dict"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| {
            let name = e[0].as_str().unwrap().to_string();
            (name, Tensor::from_vec(floats(&e[2]), &sizes(&e[1])).unwrap())
        })
        .collect();
    let report = m.load_state_dict(&sd, true).unwrap();
    let _ = report;
    let names: Vec<String> = m.state_dict().into_iter().map(|(n, _)| n).collect();
    let theirs: Vec<&String> = sd.iter().map(|(n, _)| n).collect();
    assert_eq!(
        names.iter().collect::<Vec<_>>(),
        theirs,
        "{}: the same names in the same order",
        c["name"]
    );
}

/// The gradients of every parameter, by PyTorch's name.
/// The gradients of the input `x` and of the initial states given (h0, c0) against `c`'s
/// `grad_x`, `grad_h0` and `grad_c0`; `labels` name the states in messages.
fn check_input_grads(
    grads: &nabla_core::Gradients,
    c: &Value,
    name: &str,
    x: &Tensor,
    states: [Option<&Tensor>; 2],
    labels: [&str; 2],
) {
    close(
        &format!("{name}: grad x"),
        &grads.get(x).unwrap().to_vec_f64(),
        &floats(&c["grad_x"]),
    );
    for ((state, label), key) in states.into_iter().zip(labels).zip(["grad_h0", "grad_c0"]) {
        if let Some(t) = state {
            close(
                &format!("{name}: grad {label}"),
                &grads.get(t).unwrap().to_vec_f64(),
                &floats(&c[key]),
            );
        }
    }
}

fn check_param_grads(m: &dyn Module, grads: &nabla_core::Gradients, want: &Value, name: &str) {
    let want = want.as_object().unwrap();
    assert_eq!(m.named_parameters().len(), want.len(), "{name}: parameter count");
    for (n, p) in m.named_parameters() {
        close(
            &format!("{name}: grad {n}"),
            &grads.get(&p).unwrap().to_vec_f64(),
            &floats(&want[&n]),
        );
    }
}

#[test]
fn layers_match_pytorch() {
    let doc = fixture();
    let s = &doc["sizes"];
    let (i, h, t, n) = (
        s["I"].as_u64().unwrap() as usize,
        s["H"].as_u64().unwrap() as usize,
        s["T"].as_u64().unwrap() as usize,
        s["N"].as_u64().unwrap() as usize,
    );
    let cases = doc["layers"].as_array().unwrap();
    assert_eq!(cases.len(), 7);
    for c in cases {
        let name = c["name"].as_str().unwrap();
        let layers = c["num_layers"].as_u64().unwrap() as usize;
        let opts = RnnOptions::default()
            .layers(layers)
            .bidirectional(c["bidirectional"].as_bool().unwrap())
            .batch_first(c["batch_first"].as_bool().unwrap())
            .bias(c["bias"].as_bool().unwrap())
            .dtype(DType::F64);
        let dirs = opts.directions();
        let mut g = Generator::new(0);
        let x = tensor(&c["x"], &sizes(&c["x_shape"])).unwrap();
        assert_eq!(x.numel(), t * n * i);
        let sshape = [layers * dirs, n, h];
        let (h0, c0) = (tensor(&c["h0"], &sshape), tensor(&c["c0"], &sshape));
        let lengths = (!c["lengths"].is_null()).then(|| sizes(&c["lengths"]));
        let lengths = lengths.as_deref();
        let kind = c["kind"].as_str().unwrap();
        let (module, out, hn, cn): (Box<dyn Module>, Tensor, Tensor, Option<Tensor>) = match kind {
            "lstm" => {
                let m = LSTM::with_options(i, h, opts, &mut g);
                load(&m, c);
                let st = h0.as_ref().map(|h| (h, c0.as_ref().unwrap()));
                let (y, (hn, cn)) = m.forward_with(&x, st, lengths, Mode::Train).unwrap();
                (Box::new(m), y, hn, Some(cn))
            }
            "gru" => {
                let m = GRU::with_options(i, h, opts, &mut g);
                load(&m, c);
                let (y, hn) = m.forward_with(&x, h0.as_ref(), lengths, Mode::Train).unwrap();
                (Box::new(m), y, hn, None)
            }
            "rnn" => {
                let act = match c["nonlinearity"].as_str().unwrap() {
                    "tanh" => RnnNonlinearity::Tanh,
                    _ => RnnNonlinearity::Relu,
                };
                let m = RNN::with_options(i, h, act, opts, &mut g);
                load(&m, c);
                let (y, hn) = m.forward_with(&x, h0.as_ref(), lengths, Mode::Train).unwrap();
                (Box::new(m), y, hn, None)
            }
            k => panic!("{name}: kind {k}"),
        };
        assert_eq!(out.shape(), sizes(&c["out_shape"]).as_slice(), "{name}: output shape");
        assert_eq!(hn.shape(), &sshape, "{name}: h_n shape");
        close(&format!("{name}: output"), &out.to_vec_f64(), &floats(&c["out"]));
        close(&format!("{name}: h_n"), &hn.to_vec_f64(), &floats(&c["hn"]));
        let up = |v: &Value, like: &Tensor| Tensor::from_vec(floats(v), like.shape()).unwrap();
        let mut loss = out.mul(&up(&c["gy"], &out)).unwrap().sum_all().unwrap();
        loss = loss
            .add(&hn.mul(&up(&c["ghn"], &hn)).unwrap().sum_all().unwrap())
            .unwrap();
        if let Some(cn) = &cn {
            close(&format!("{name}: c_n"), &cn.to_vec_f64(), &floats(&c["cn"]));
            loss = loss
                .add(&cn.mul(&up(&c["gcn"], cn)).unwrap().sum_all().unwrap())
                .unwrap();
        }
        let mut grads = loss.backward().unwrap();
        check_input_grads(&grads, c, name, &x, [h0.as_ref(), c0.as_ref()], ["h0", "c0"]);
        check_param_grads(module.as_ref(), &grads, &c["grad_params"], name);
        if let Some(clip) = c.get("clip") {
            let params = module.parameters();
            let total = clip_grad_norm(&mut grads, &params, clip["max_norm"].as_f64().unwrap()).unwrap();
            let want = clip["total_norm"].as_f64().unwrap();
            assert!(
                (total - want).abs() <= 1e-9 * want,
                "{name}: total norm {total} vs {want}"
            );
            check_param_grads(module.as_ref(), &grads, &clip["clipped"], &format!("{name} clipped"));
        }
    }
}

#[test]
fn cells_match_pytorch() {
    let doc = fixture();
    let s = &doc["sizes"];
    let (i, h, n) = (
        s["I"].as_u64().unwrap() as usize,
        s["H"].as_u64().unwrap() as usize,
        s["N"].as_u64().unwrap() as usize,
    );
    let opts = LayerOptions::default().with_dtype(DType::F64);
    for c in doc["cells"].as_array().unwrap() {
        let name = c["name"].as_str().unwrap();
        let mut g = Generator::new(0);
        let x = tensor(&c["x"], &[n, i]).unwrap();
        let (h0, c0) = (tensor(&c["h0"], &[n, h]), tensor(&c["c0"], &[n, h]));
        let (module, h1, c1): (Box<dyn Module>, Tensor, Option<Tensor>) = match c["kind"].as_str().unwrap() {
            "lstm" => {
                let m = LSTMCell::with_options(i, h, opts, &mut g);
                load(&m, c);
                let (h1, c1) = m.step(&x, h0.as_ref().map(|h| (h, c0.as_ref().unwrap()))).unwrap();
                (Box::new(m), h1, Some(c1))
            }
            "gru" => {
                let m = GRUCell::with_options(i, h, opts, &mut g);
                load(&m, c);
                let h1 = m.step(&x, h0.as_ref()).unwrap();
                (Box::new(m), h1, None)
            }
            _ => {
                let m = RNNCell::with_options(i, h, RnnNonlinearity::Relu, opts, &mut g);
                load(&m, c);
                let h1 = m.step(&x, h0.as_ref()).unwrap();
                (Box::new(m), h1, None)
            }
        };
        close(&format!("{name}: h"), &h1.to_vec_f64(), &floats(&c["h1"]));
        let up = |v: &Value| Tensor::from_vec(floats(v), &[n, h]).unwrap();
        let mut loss = h1.mul(&up(&c["gh"])).unwrap().sum_all().unwrap();
        if let Some(c1) = &c1 {
            close(&format!("{name}: c"), &c1.to_vec_f64(), &floats(&c["c1"]));
            loss = loss.add(&c1.mul(&up(&c["gc"])).unwrap().sum_all().unwrap()).unwrap();
        }
        let grads = loss.backward().unwrap();
        check_input_grads(&grads, c, name, &x, [h0.as_ref(), c0.as_ref()], ["h", "c"]);
        check_param_grads(module.as_ref(), &grads, &c["grad_params"], name);
    }
}
