//! Image folders the tests write: a few PNG and JPEG files per class.

use super::*;
use image::{GrayImage, RgbImage};

/// A fresh folder under the system's temporary directory.
fn temp(tag: &str) -> PathBuf {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .subsec_nanos();
    let p = std::env::temp_dir().join(format!("nabla-imgf-{tag}-{}-{nanos}", std::process::id()));
    std::fs::create_dir_all(&p).unwrap();
    p
}

/// `n` grey 8×8 PNGs per class in `dir/<class>/`, class k brighter in row k; pixel values
/// vary with the image index so every image differs.
fn write_grey(dir: &Path, classes: &[&str], n: usize) {
    for (k, c) in classes.iter().enumerate() {
        std::fs::create_dir_all(dir.join(c)).unwrap();
        for i in 0..n {
            let img = GrayImage::from_fn(8, 8, |x, y| {
                image::Luma([if y as usize == k {
                    200
                } else {
                    ((x * 7 + y * 3) as usize + i * 11) as u8 % 50
                }])
            });
            img.save(dir.join(c).join(format!("{i}.png"))).unwrap();
        }
    }
}

fn cfg(dir: &Path) -> TrainConfig {
    TrainConfig {
        dataset: "imagefolder".into(),
        data_dir: Some(dir.to_path_buf()),
        ..TrainConfig::default()
    }
}

fn samples(d: &Arc<dyn Dataset>) -> Vec<(Vec<f32>, nabla_data::Target)> {
    (0..d.len())
        .map(|i| d.get(i).map(|s| (s.data, s.target)).unwrap())
        .collect()
}

#[test]
fn a_flat_folder_is_split_seeded_and_the_cache_matches_decoding() {
    let dir = temp("flat");
    write_grey(&dir, &["ant", "bee", "cat"], 10);
    // A colour JPEG of another size: RGB for all, resized (said once).
    RgbImage::from_fn(12, 10, |x, y| image::Rgb([x as u8 * 20, y as u8 * 20, 90]))
        .save(dir.join("bee").join("z.jpg"))
        .unwrap();
    let d = load(&cfg(&dir), None).unwrap();
    assert_eq!(d.classes, ["ant", "bee", "cat"]);
    assert_eq!(d.input_shape, [3, 8, 8]);
    // 31 images, 0.1 held out (3), and the held-out images double as the test split.
    assert_eq!((d.train.len(), d.val.as_ref().unwrap().len()), (28, 3));
    assert_eq!(samples(d.test.as_ref().unwrap()), samples(d.val.as_ref().unwrap()));
    // Decoded on access (the checkpoint-shape path) gives the same samples as the cache.
    let lazy = load(&cfg(&dir), Some([3, 8, 8])).unwrap();
    assert_eq!(samples(&lazy.train), samples(&d.train));
    assert_eq!(samples(lazy.val.as_ref().unwrap()), samples(d.val.as_ref().unwrap()));
    // And the same normalized, shuffled batches through the loader.
    let batches = |ds: &Arc<dyn Dataset>| -> Vec<(Vec<f32>, Vec<usize>)> {
        let l = crate::trainer::make_loader(ds.clone(), 8, &d.input_shape, &d.normalize, false)
            .unwrap()
            .shuffle(true);
        l.epoch(1)
            .map(|b| b.map(|b| (b.inputs.to_vec_f32(), b.labels)).unwrap())
            .collect()
    };
    assert_eq!(batches(&lazy.train), batches(&d.train));
    // The auto normalization is the training images' statistics, per channel.
    let mut st = ByteStats::new([3, 8, 8]);
    for (x, _) in samples(&d.train) {
        st.add(&x.iter().map(|v| (v * 255.0).round() as u8).collect::<Vec<_>>());
    }
    assert_eq!(d.normalize, st.finish());
    let other = load(&TrainConfig { seed: 3, ..cfg(&dir) }, None).unwrap();
    assert_ne!(samples(other.val.as_ref().unwrap()), samples(d.val.as_ref().unwrap()));
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn train_val_test_folders_grey_size_and_normalization() {
    let dir = temp("split");
    for (s, n) in [("train", 6), ("val", 2), ("test", 3)] {
        write_grey(&dir.join(s), &["no", "yes"], n);
    }
    let mut c = cfg(&dir);
    c.images.image_size = Some([4, 6]);
    c.images.normalize = Some("imagenet".into());
    let d = load(&c, None).unwrap();
    assert_eq!(d.input_shape, [1, 4, 6]);
    let lens = (
        d.train.len(),
        d.val.as_ref().unwrap().len(),
        d.test.as_ref().unwrap().len(),
    );
    assert_eq!(lens, (12, 4, 6));
    assert!((d.normalize.0[0] - (0.485 + 0.456 + 0.406) / 3.0).abs() < 1e-6);
    c.images.normalize = Some("none".into());
    assert_eq!(load(&c, None).unwrap().normalize, (vec![0.0], vec![1.0]));
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn unreadable_images_are_skipped_or_stop_a_strict_run() {
    let dir = temp("bad");
    write_grey(&dir, &["a", "b"], 5);
    std::fs::write(dir.join("a").join("broken.png"), b"not a png at all").unwrap();
    let d = load(
        &TrainConfig {
            val_size: Some(0),
            ..cfg(&dir)
        },
        None,
    )
    .unwrap();
    assert_eq!(d.train.len(), 10);
    let mut strict = cfg(&dir);
    strict.images.strict = true;
    let e = load(&strict, None).err().unwrap().to_string();
    assert!(e.contains("broken.png") && e.contains("--strict"), "{e}");
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn bad_folders_say_what_is_wrong_in_one_line() {
    let dir = temp("empty");
    let err = |c: &TrainConfig| load(c, None).err().unwrap().to_string();
    let e = err(&cfg(&dir));
    assert!(e.contains("no class subfolders"), "{e}");
    std::fs::create_dir_all(dir.join("only")).unwrap();
    let e = err(&cfg(&dir));
    assert!(e.contains("no .png/.jpg/.jpeg"), "{e}");
    write_grey(&dir, &["only"], 3);
    let e = err(&cfg(&dir));
    assert!(e.contains("one class folder (only)"), "{e}");
    let e = err(&cfg(&dir.join("missing")));
    assert!(e.contains("no such directory"), "{e}");
    let e = err(&TrainConfig {
        data_dir: None,
        ..cfg(&dir)
    });
    assert!(e.contains("needs --data-dir"), "{e}");
    let split = temp("classes");
    write_grey(&split.join("train"), &["a", "b"], 2);
    write_grey(&split.join("val"), &["a", "c"], 2);
    let e = err(&cfg(&split));
    assert!(e.contains("[a, c]") && e.contains("[a, b]"), "{e}");
    assert!(e.lines().count() == 1 && err(&cfg(&dir)).lines().count() == 1);
    std::fs::remove_dir_all(&dir).unwrap();
    std::fs::remove_dir_all(&split).unwrap();
}
