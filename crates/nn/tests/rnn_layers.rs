//! Recurrent layers on their own: padded batches against each sequence run alone, f64
//! gradcheck, dropout between layers, and the errors bad input gets.

use nabla_core::gradcheck::gradcheck;
use nabla_core::{DType, Generator, Tensor};
use nabla_nn::{GRUCell, LSTMCell, Mode, Module, RnnNonlinearity, RnnOptions, GRU, LSTM, RNN};

/// gradcheck's closures return core errors.
fn core(e: nabla_nn::Error) -> nabla_core::Error {
    nabla_core::Error::invalid("rnn test", e.to_string())
}

fn opts64() -> RnnOptions {
    RnnOptions::default().dtype(DType::F64)
}

#[track_caller]
fn close(what: &str, got: &[f64], want: &[f64]) {
    assert_eq!(got.len(), want.len(), "{what}: lengths");
    for (i, (a, b)) in got.iter().zip(want).enumerate() {
        assert!((a - b).abs() <= 1e-12 * (1.0 + b.abs()), "{what}[{i}]: {a} vs {b}");
    }
}

/// Row `b` of a `[T, N, ·]` tensor, its first `len` steps: `[len, 1, ·]`.
fn take(x: &Tensor, b: usize, len: usize) -> Tensor {
    x.narrow(1, b, 1)
        .unwrap()
        .narrow(0, 0, len)
        .unwrap()
        .contiguous()
        .unwrap()
}

#[test]
fn padded_batch_matches_each_sequence_alone() {
    let (t, n, i, h) = (5, 4, 3, 4);
    let lengths = [3, 5, 1, 4];
    let mut g = Generator::new(7);
    let opts = opts64().layers(2).bidirectional(true);
    let lstm = LSTM::with_options(i, h, opts, &mut g);
    let gru = GRU::with_options(i, h, opts, &mut g);
    let x = Tensor::randn(&[t, n, i], DType::F64, &mut g).set_requires_grad(true);
    let h0 = Tensor::randn(&[4, n, h], DType::F64, &mut g);
    let c0 = Tensor::randn(&[4, n, h], DType::F64, &mut g);
    let (y, (hn, cn)) = lstm
        .forward_with(&x, Some((&h0, &c0)), Some(&lengths), Mode::Eval)
        .unwrap();
    let (gy, ghn) = gru.forward_with(&x, Some(&h0), Some(&lengths), Mode::Eval).unwrap();
    // The padding gets no gradient: the loss does not depend on it.
    let grads = y
        .sum_all()
        .unwrap()
        .add(&gy.sum_all().unwrap())
        .unwrap()
        .backward()
        .unwrap();
    let gx = grads.get(&x).unwrap();
    for (b, &len) in lengths.iter().enumerate() {
        let xb = take(&x.detach(), b, len);
        let s = |s: &Tensor| s.narrow(1, b, 1).unwrap().contiguous().unwrap();
        let (yb, (hb, cb)) = lstm
            .forward_with(&xb, Some((&s(&h0), &s(&c0))), None, Mode::Eval)
            .unwrap();
        close(
            &format!("lstm output {b}"),
            &take(&y, b, len).to_vec_f64(),
            &yb.to_vec_f64(),
        );
        close(&format!("lstm h_n {b}"), &s(&hn).to_vec_f64(), &hb.to_vec_f64());
        close(&format!("lstm c_n {b}"), &s(&cn).to_vec_f64(), &cb.to_vec_f64());
        let (gyb, ghb) = gru.forward_with(&xb, Some(&s(&h0)), None, Mode::Eval).unwrap();
        close(
            &format!("gru output {b}"),
            &take(&gy, b, len).to_vec_f64(),
            &gyb.to_vec_f64(),
        );
        close(&format!("gru h_n {b}"), &s(&ghn).to_vec_f64(), &ghb.to_vec_f64());
        let past = y.narrow(1, b, 1).unwrap().narrow(0, len, t - len).unwrap();
        assert!(
            past.to_vec_f64().iter().all(|&v| v == 0.0),
            "outputs past the end are zero"
        );
        let pad = gx.narrow(1, b, 1).unwrap().narrow(0, len, t - len).unwrap();
        assert!(pad.to_vec_f64().iter().all(|&v| v == 0.0), "padding gets no gradient");
    }
}

#[test]
fn gradcheck_tiny_lstm_and_gru() {
    let mut g = Generator::new(3);
    let opts = opts64().bidirectional(true);
    let lstm = LSTM::with_options(2, 2, opts.layers(2), &mut g);
    let gru = GRU::with_options(2, 2, opts, &mut g);
    let rnn = RNN::with_options(2, 2, RnnNonlinearity::Tanh, opts, &mut g);
    let x = Tensor::randn(&[3, 2, 2], DType::F64, &mut g);
    let h0 = Tensor::randn(&[4, 2, 2], DType::F64, &mut g);
    let c0 = Tensor::randn(&[4, 2, 2], DType::F64, &mut g);
    let lens: &[usize] = &[3, 2];
    gradcheck(
        |t| {
            let (y, (h, c)) = lstm
                .forward_with(&t[0], Some((&t[1], &t[2])), Some(lens), Mode::Eval)
                .map_err(core)?;
            Tensor::cat(&[&y.flatten(0, -1)?, &h.flatten(0, -1)?, &c.flatten(0, -1)?], 0)
        },
        &[x.clone(), h0.clone(), c0],
    )
    .unwrap();
    let h1 = h0.narrow(0, 0, 2).unwrap().contiguous().unwrap();
    gradcheck(
        |t| {
            let (y, h) = gru
                .forward_with(&t[0], Some(&t[1]), Some(lens), Mode::Eval)
                .map_err(core)?;
            Tensor::cat(&[&y.flatten(0, -1)?, &h.flatten(0, -1)?], 0)
        },
        &[x.clone(), h1.clone()],
    )
    .unwrap();
    gradcheck(
        |t| {
            let (y, h) = rnn
                .forward_with(&t[0], Some(&t[1]), Some(lens), Mode::Eval)
                .map_err(core)?;
            Tensor::cat(&[&y.flatten(0, -1)?, &h.flatten(0, -1)?], 0)
        },
        &[x.clone(), h1.clone()],
    )
    .unwrap();
    // The cells (parameter gradients are checked against PyTorch in rnn_parity.rs).
    let o = nabla_nn::LayerOptions::default().with_dtype(DType::F64);
    let lc = LSTMCell::with_options(2, 2, o, &mut g);
    let gc = GRUCell::with_options(2, 2, o, &mut g);
    let xs = x.narrow(0, 0, 1).unwrap().squeeze(0).unwrap().contiguous().unwrap();
    let hs = h1.narrow(0, 0, 1).unwrap().squeeze(0).unwrap().contiguous().unwrap();
    gradcheck(
        |t| {
            let (h, c) = lc.step(&t[0], Some((&t[1], &t[2]))).map_err(core)?;
            Tensor::cat(&[&h, &c], 0)
        },
        &[xs.clone(), hs.clone(), hs.mul_scalar(0.5).unwrap()],
    )
    .unwrap();
    gradcheck(|t| gc.step(&t[0], Some(&t[1])).map_err(core), &[xs, hs]).unwrap();
}

#[track_caller]
fn says<T: std::fmt::Debug>(r: nabla_nn::Result<T>, words: &[&str]) {
    let msg = r.expect_err("bad input must be an error").to_string();
    for w in words {
        assert!(msg.contains(w), "{msg:?} should name {w:?}");
    }
}

#[test]
fn bad_input_is_an_error_naming_layer_and_shapes() {
    let mut g = Generator::new(1);
    let lstm = LSTM::with_options(3, 4, RnnOptions::default().layers(2), &mut g);
    let x = Tensor::zeros(&[5, 2, 3], DType::F32);
    says(
        lstm.forward_with(&Tensor::zeros(&[0, 2, 3], DType::F32), None, None, Mode::Eval),
        &["LSTM", "length 0", "[0, 2, 3]"],
    );
    says(
        lstm.forward(&Tensor::zeros(&[5, 2, 7], DType::F32), Mode::Eval),
        &["LSTM", "input_size 3", "[5, 2, 7]"],
    );
    let h_bad = Tensor::zeros(&[1, 2, 4], DType::F32);
    let c = Tensor::zeros(&[2, 2, 4], DType::F32);
    says(
        lstm.forward_with(&x, Some((&h_bad, &c)), None, Mode::Eval),
        &["LSTM", "h0", "[2, 2, 4]", "[1, 2, 4]"],
    );
    says(
        lstm.forward_with(&x, Some((&c, &h_bad)), None, Mode::Eval),
        &["LSTM", "c0", "[2, 2, 4]", "[1, 2, 4]"],
    );
    says(
        lstm.forward_with(&x, None, Some(&[5, 6]), Mode::Eval),
        &["LSTM", "length 6", "1..=5"],
    );
    says(
        lstm.forward_with(&x, None, Some(&[5, 0]), Mode::Eval),
        &["LSTM", "length 0"],
    );
    says(
        lstm.forward_with(&x, None, Some(&[5]), Mode::Eval),
        &["LSTM", "1 lengths", "batch of 2"],
    );
    let empty = LSTM::new(3, 0, &mut g);
    says(empty.forward(&x, Mode::Eval), &["LSTM", "hidden_size is 0"]);
    let gru = GRU::new(3, 4, &mut g);
    says(
        gru.forward_with(&x, Some(&Tensor::zeros(&[1, 3, 4], DType::F32)), None, Mode::Eval),
        &["GRU", "h0", "[1, 2, 4]", "[1, 3, 4]"],
    );
    let rnn = RNN::new(3, 4, &mut g);
    says(
        rnn.forward(&Tensor::zeros(&[5, 2, 3], DType::F64), Mode::Eval),
        &["RNN", "F64"],
    );
    let cell = LSTMCell::new(3, 4, &mut g);
    says(
        cell.step(&Tensor::zeros(&[2, 5], DType::F32), None),
        &["LSTMCell", "[2, 5]"],
    );
    let h = Tensor::zeros(&[2, 3], DType::F32);
    says(
        cell.step(&Tensor::zeros(&[2, 3], DType::F32), Some((&h, &h))),
        &["LSTMCell", "[2, 4]", "[2, 3]"],
    );
    says(
        GRUCell::new(3, 0, &mut g).step(&Tensor::zeros(&[2, 3], DType::F32), None),
        &["GRUCell", "hidden_size is 0"],
    );
}

#[test]
fn dropout_between_layers_only_in_training() {
    let mut g = Generator::new(5);
    let opts = opts64().layers(2).dropout(0.5);
    let lstm = LSTM::with_options(3, 4, opts, &mut g);
    let x = Tensor::randn(&[4, 2, 3], DType::F64, &mut g);
    let e1 = lstm.forward(&x, Mode::Eval).unwrap().to_vec_f64();
    let e2 = lstm.forward(&x, Mode::Eval).unwrap().to_vec_f64();
    assert_eq!(e1, e2, "evaluation is deterministic");
    let t1 = lstm.forward(&x, Mode::Train).unwrap().to_vec_f64();
    assert_ne!(t1, e1, "training drops between the layers");
    // A one-layer stack has nothing between layers: training equals evaluation.
    let one = LSTM::with_options(3, 4, opts64().dropout(0.5), &mut g);
    assert_eq!(
        one.forward(&x, Mode::Train).unwrap().to_vec_f64(),
        one.forward(&x, Mode::Eval).unwrap().to_vec_f64()
    );
    assert_eq!(
        lstm.generator_states().len(),
        1,
        "the dropout generator is checkpointed"
    );
}

#[test]
fn parameter_names_follow_pytorch() {
    let mut g = Generator::new(0);
    let gru = GRU::with_options(3, 4, RnnOptions::default().layers(2).bidirectional(true), &mut g);
    let names: Vec<String> = gru.named_parameters().into_iter().map(|(n, _)| n).collect();
    assert_eq!(names.len(), 16);
    assert_eq!(
        &names[..5],
        [
            "weight_ih_l0",
            "weight_hh_l0",
            "bias_ih_l0",
            "bias_hh_l0",
            "weight_ih_l0_reverse"
        ]
    );
    assert_eq!(gru.parameter("weight_ih_l1").unwrap().shape(), &[12, 8]);
    let k = 0.5; // 1/√H
    assert!(gru
        .parameters()
        .iter()
        .all(|p| p.to_vec_f64().iter().all(|v| v.abs() <= k)));
    let cell = LSTMCell::new(3, 4, &mut g);
    let names: Vec<String> = cell.named_parameters().into_iter().map(|(n, _)| n).collect();
    assert_eq!(names, ["weight_ih", "weight_hh", "bias_ih", "bias_hh"]);
}
