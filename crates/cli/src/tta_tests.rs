//! The views' geometry on images whose pixels encode their coordinates, and averaging.

use super::*;
use nabla_nn::layers::{Flatten, Linear, Sequential};

/// `[C, H, W]` with pixel (c, y, x) = 10000·c + 100·y + x.
fn coords([c, h, w]: [usize; 3]) -> Vec<f32> {
    (0..c * h * w)
        .map(|i| (10000 * (i / (h * w)) + 100 * (i / w % h) + i % w) as f32)
        .collect()
}

#[test]
fn ten_crop_cuts_the_corners_and_the_centre_of_the_enlarged_image() {
    assert_eq!(
        (ten_crop_side(28), ten_crop_side(224), ten_crop_side(32)),
        (32, 256, 37)
    );
    let origins = five_origins([32, 33], [28, 28]);
    assert_eq!(origins, [(0, 0), (0, 5), (4, 0), (4, 5), (2, 2)]);
    let src = coords([2, 32, 33]);
    for (top, left) in origins {
        let c = crop(&src, [2, 32, 33], (top, left), [28, 28]);
        for (i, &v) in c.iter().enumerate() {
            let (ch, y, x) = (i / 784, i / 28 % 28, i % 28);
            assert_eq!(
                v,
                (10000 * ch + 100 * (top + y) + left + x) as f32,
                "crop at {top},{left}"
            );
        }
    }
    // Mirrored: column x of the mirror is column w − 1 − x.
    let m = hflip(&coords([1, 2, 3]), [1, 2, 3]);
    assert_eq!(m, [2.0, 1.0, 0.0, 102.0, 101.0, 100.0]);
    // The ten views: the five crops of the 256/224 enlargement, then their mirrors.
    let img = coords([1, 7, 7]);
    let v = views(Tta::TenCrop, &img, [1, 7, 7], &[0.0]).unwrap();
    let big = Resize::new([8, 8])
        .apply(Image::new(img.clone(), [1, 7, 7]).unwrap(), &mut Generator::new(0))
        .unwrap()
        .data;
    assert_eq!(v.len(), 10);
    for (i, o) in five_origins([8, 8], [7, 7]).into_iter().enumerate() {
        assert_eq!(v[i], crop(&big, [1, 8, 8], o, [7, 7]));
        assert_eq!(v[i + 5], hflip(&v[i], [1, 7, 7]));
    }
}

#[test]
fn multiscale_keeps_the_size_and_pads_with_black() {
    let img = coords([1, 8, 8]);
    let v = views(Tta::Multiscale, &img, [1, 8, 8], &[-7.0]).unwrap();
    assert_eq!(v.len(), 3);
    assert!(v.iter().all(|x| x.len() == 64));
    assert_eq!(v[1], img);
    // 0.875 of 8 is 7: one padded row at the bottom and one column at the right.
    assert!((0..8).all(|i| v[0][56 + i] == -7.0 && v[0][8 * i + 7] == -7.0));
    assert!(v[0][0] != -7.0 && v[2].iter().all(|&x| x != -7.0));
}

#[test]
fn flips_of_a_mirror_symmetric_model_change_nothing_and_views_average() {
    let mut g = Generator::new(1);
    let model = Sequential::new()
        .push(Flatten::new(1, -1))
        .push(Linear::new(2 * 4 * 5, 3, &mut g));
    let x = Tensor::from_vec(
        // x / 4 + y / 10: the columns differ.
        coords([2, 4, 5])
            .iter()
            .map(|v| (v % 100.0) / 4.0 + (v / 100.0).floor() % 100.0 / 10.0)
            .collect::<Vec<_>>(),
        &[1, 2, 4, 5],
    )
    .unwrap();
    let x = Tensor::cat(&[&x, &x.mul_scalar(-0.5).unwrap()], 0).unwrap();
    // Random weights see the mirror differently...
    let plain = probabilities(&model, &x, Tta::None, &[0.0, 0.0]).unwrap();
    let flips = probabilities(&model, &x, Tta::Flips, &[0.0, 0.0]).unwrap();
    assert!(
        plain.iter().zip(&flips).any(|(a, b)| (a - b).abs() > 1e-4),
        "{plain:?} {flips:?}"
    );
    // ...mirror-symmetric ones, w[k, c, y, x] = w[k, c, y, 4 − x], do not.
    let sd = model.state_dict();
    let (name, w) = sd.iter().find(|(_, t)| t.shape().len() == 2).unwrap();
    let mut v = w.to_vec_f32();
    for row in v.chunks_exact_mut(5) {
        (row[3], row[4]) = (row[1], row[0]);
    }
    let sym = Tensor::from_vec(v, &[3, 40]).unwrap();
    model.load_state_dict(&[(name.clone(), sym)], false).unwrap();
    let plain = probabilities(&model, &x, Tta::None, &[0.0, 0.0]).unwrap();
    let flips = probabilities(&model, &x, Tta::Flips, &[0.0, 0.0]).unwrap();
    assert_eq!(plain.len(), 6);
    for (a, b) in plain.iter().zip(&flips) {
        assert!((a - b).abs() < 1e-6, "{plain:?} {flips:?}");
    }
    // Each row of an average of softmaxes sums to 1.
    let ten = probabilities(&model, &x, Tta::TenCrop, &[0.0, 0.0]).unwrap();
    assert!(ten.chunks(3).all(|r| (r.iter().sum::<f32>() - 1.0).abs() < 1e-5));
    assert!(Tta::parse("mirror").is_err() && Tta::parse("ten-crop").unwrap() == Tta::TenCrop);
}
