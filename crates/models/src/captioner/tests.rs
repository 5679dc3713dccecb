use super::*;
use nabla_core::DType;
use nabla_nn::optim::{Adam, AdamOptions, Optimizer};

fn small(vocab: usize) -> CaptionerConfig {
    CaptionerConfig {
        vocab_size: vocab,
        embed_size: 8,
        hidden_size: 16,
        image_size: [16, 16],
        ..Default::default()
    }
}

fn images(n: usize, seed: u64) -> Tensor {
    Tensor::rand(&[n, 1, 16, 16], DType::F32, &mut Generator::new(seed))
}

#[test]
fn names_and_shapes() -> Result<()> {
    let m = Captioner::new(&CaptionerConfig {
        num_layers: 2,
        ..small(10)
    })?;
    let names: Vec<String> = m.named_parameters().into_iter().map(|(n, _)| n).collect();
    for want in [
        "encoder.features.0.weight",
        "project.weight",
        "embed.weight",
        "lstm.weight_ih_l0",
        "lstm.weight_hh_l1",
        "fc.weight",
        "fc.bias",
    ] {
        assert!(names.iter().any(|n| n == want), "{want} missing from {names:?}");
    }
    // Forget gates open: rows 16..32 of the biases.
    for l in 0..2 {
        let bi = m.parameter(&format!("lstm.bias_ih_l{l}"))?.to_vec_f32();
        let bh = m.parameter(&format!("lstm.bias_hh_l{l}"))?.to_vec_f32();
        assert!(bi[16..32].iter().all(|&v| v == 1.0) && bh[16..32].iter().all(|&v| v == 0.0));
        assert!(
            bi[..16].iter().all(|&v| v.abs() <= 0.25 && v != 1.0),
            "the other gates keep their draw"
        );
    }
    let x = images(3, 0);
    assert_eq!(m.forward(&x, Mode::Eval)?.shape(), &[3, 8]);
    let logits = m.logits(&x, &[vec![4, 5], vec![6], vec![]], Mode::Eval)?;
    assert_eq!(logits.shape(), &[3, 3, 10]);
    assert_eq!(m.embed.weight.leaf().shape(), &[10, 8]);
    Ok(())
}

#[test]
fn state_injection_overfits_too_and_names_its_layers() -> Result<()> {
    let m = Captioner::new(&CaptionerConfig {
        inject: Inject::State,
        num_layers: 2,
        ..small(8)
    })?;
    assert!(m.named_parameters().iter().any(|(n, _)| n == "init_c.weight"));
    let x = images(2, 4);
    let caps = vec![vec![3, 4, 5], vec![6, 7]];
    let mut opt = Adam::new(
        m.trainable_parameters(),
        AdamOptions {
            lr: 0.02,
            ..Default::default()
        },
    )?;
    for _ in 0..150 {
        let loss = m.loss(&x, &caps, Mode::Train)?;
        opt.step(&loss.backward()?)?;
    }
    assert_eq!(m.greedy(&x, 10)?, caps);
    assert_eq!(m.beam(&x, 1, 10)?[1][0].tokens, caps[1]);
    Ok(())
}

#[test]
fn resnet18_encoder_builds_and_reads_images() -> Result<()> {
    let m = Captioner::new(&CaptionerConfig {
        encoder: EncoderKind::ResNet18,
        ..small(7)
    })?;
    assert!(m
        .named_parameters()
        .iter()
        .any(|(n, _)| n == "encoder.layer4.1.conv2.weight"));
    assert_eq!(m.forward(&images(2, 1), Mode::Eval)?.shape(), &[2, 8]);
    Ok(())
}

#[test]
fn loss_decreases_on_a_tiny_overfit_and_greedy_recalls_the_captions() -> Result<()> {
    // Two images, two different captions over words 3..8: after training, greedy decoding
    // must give each image its own caption back.
    let mut m = Captioner::new(&small(8))?;
    m.freeze_encoder();
    let x = images(2, 2);
    let caps = vec![vec![3, 4, 5], vec![6, 7]];
    let mut opt = Adam::new(
        m.trainable_parameters(),
        AdamOptions {
            lr: 0.02,
            ..Default::default()
        },
    )?;
    let first = m.loss(&x, &caps, Mode::Train)?.item()?;
    let mut last = first;
    for _ in 0..150 {
        let loss = m.loss(&x, &caps, Mode::Train)?;
        last = loss.item()?;
        opt.step(&loss.backward()?)?;
    }
    assert!(last < first * 0.05, "loss {first} → {last}");
    assert_eq!(m.greedy(&x, 10)?, caps);
    Ok(())
}

#[test]
fn frozen_encoder_gets_no_gradient() -> Result<()> {
    let mut m = Captioner::new(&small(6))?;
    m.freeze_encoder();
    let enc = m.encoder.named_parameters().len();
    assert_eq!(m.trainable_parameters().len(), m.parameters().len() - enc);
    Ok(())
}

#[test]
fn beam_of_one_equals_greedy() -> Result<()> {
    for seed in 0..4 {
        let m = Captioner::new(&CaptionerConfig { seed, ..small(9) })?;
        let x = images(1, 10 + seed);
        let g = m.greedy(&x, 6)?;
        let b = m.beam(&x, 1, 6)?;
        assert_eq!(b.len(), 1);
        assert_eq!(b[0].len(), 1);
        assert_eq!(b[0][0].tokens, g[0], "seed {seed}");
    }
    Ok(())
}

#[test]
fn beam_gives_at_most_k_sorted_hypotheses_at_least_as_likely_as_greedy() -> Result<()> {
    let m = Captioner::new(&small(9))?;
    let x = images(2, 5);
    let beams = m.beam(&x, 3, 5)?;
    assert_eq!(beams.len(), 2);
    for (i, hyps) in beams.iter().enumerate() {
        assert!(!hyps.is_empty() && hyps.len() <= 3);
        assert!(hyps.windows(2).all(|w| w[0].log_prob >= w[1].log_prob));
        assert!(hyps.iter().all(|h| h.tokens.len() <= 5 && h.log_prob <= 0.0));
        assert!(
            hyps.iter().all(|h| !h.tokens.iter().any(|&t| t < 2)),
            "no <pad>/<start>/<end>"
        );
        // Beam search never scores worse than its width-1 special case.
        let one = &m.beam(&x.narrow(0, i, 1)?, 1, 5)?[0][0];
        assert!(hyps[0].log_prob >= one.log_prob - 1e-9);
    }
    Ok(())
}

#[test]
fn bad_input_is_an_error_naming_it() {
    let m = Captioner::new(&small(6)).unwrap();
    let x = images(1, 0);
    let msg = |r: Result<()>| r.unwrap_err().to_string();
    assert!(msg(m.beam(&x, 0, 5).map(|_| ())).contains("beam width is 0"));
    assert!(msg(m.greedy(&x, 0).map(|_| ())).contains("max_len is 0"));
    assert!(msg(m.beam(&x, 2, 0).map(|_| ())).contains("max_len is 0"));
    let wrong = Tensor::zeros(&[1, 1, 20, 16], DType::F32);
    assert!(msg(m.greedy(&wrong, 3).map(|_| ())).contains("[1, 1, 20, 16]"));
    assert!(msg(m.loss(&x, &[vec![9]], Mode::Train).map(|_| ())).contains("token 9"));
    assert!(msg(m.loss(&x, &[vec![3], vec![4]], Mode::Train).map(|_| ())).contains("2 captions for 1 images"));
    let hidden0 = Captioner::new(&CaptionerConfig {
        hidden_size: 0,
        ..small(6)
    });
    assert!(msg(hidden0.map(|_| ())).contains("hidden_size is 0"));
    let tiny = Captioner::new(&CaptionerConfig {
        image_size: [8, 8],
        ..small(6)
    });
    assert!(msg(tiny.map(|_| ())).contains("8×8"));
}

#[test]
fn pretrained_embeddings_load_frozen_or_not() -> Result<()> {
    let mut m = Captioner::new(&small(5))?;
    let w = Tensor::rand(&[5, 8], DType::F32, &mut Generator::new(3));
    m.set_embeddings(&w, true)?;
    assert_eq!(m.embed.weight.leaf().to_vec_f32(), w.to_vec_f32());
    assert!(!m.trainable_parameters().iter().any(|t| t.shape() == [5, 8]));
    let bad = Tensor::zeros(&[5, 7], DType::F32);
    let e = m.set_embeddings(&bad, false).unwrap_err().to_string();
    assert!(e.contains("[5, 7]") && e.contains("embedding 8"), "{e}");
    Ok(())
}
