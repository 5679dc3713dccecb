use super::*;
use crate::{DataLoader, Dataset, Target};

/// `n` 28×28 items: item i is a rectangle (and a dimmer dot) at a place and size set by i, at
/// brightness `level`, labelled `labels[i % labels.len()]`, with `classes` class names.
fn source(n: usize, level: u8, labels: &[usize], classes: usize) -> ImageDataset {
    let mut px = vec![0u8; n * 784];
    let mut g = Generator::new(n as u64 + level as u64);
    for i in 0..n {
        let (y0, x0) = (2 + g.below(8) as usize, 2 + g.below(8) as usize);
        let (hh, ww) = (4 + g.below(14) as usize, 4 + g.below(14) as usize);
        for y in y0..y0 + hh {
            for x in x0..x0 + ww {
                px[i * 784 + y * 28 + x] = level;
            }
        }
        px[i * 784 + 27 * 28 + 27 - (i % 5)] = level / 2;
    }
    let labels = (0..n).map(|i| labels[i % labels.len()]).collect();
    let names = (0..classes).map(|c| format!("c{c}")).collect();
    ImageDataset::new(px, labels, [1, 28, 28], names, "test".as_ref()).unwrap()
}

fn ten() -> ImageDataset {
    source(40, 255, &[0, 1, 2, 3, 4, 5, 6, 7, 8, 9], 10)
}

#[test]
fn iou_of_hand_computed_boxes() {
    // Two 2×2 boxes overlapping in a 1×2 strip: 2 / (4 + 4 - 2).
    assert_eq!(box_iou([0.0, 0.0, 2.0, 2.0], [1.0, 0.0, 2.0, 2.0]), 2.0 / 6.0);
    assert_eq!(box_iou([0.0, 0.0, 2.0, 2.0], [2.0, 0.0, 2.0, 2.0]), 0.0);
    assert_eq!(box_iou([1.0, 1.0, 3.0, 3.0], [1.0, 1.0, 3.0, 3.0]), 1.0);
    assert_eq!(box_iou([0.0, 0.0, 0.0, 0.0], [0.0, 0.0, 0.0, 0.0]), 0.0);
}

#[test]
fn boxes_are_tight_and_masks_agree() {
    for background in [Background::Black, Background::Noise] {
        // No overlap between boxes, so every item is fully visible in the instance mask.
        let cfg = SceneConfig {
            max_iou: 0.0,
            background,
            seed: 3,
            ..SceneConfig::segmentation()
        };
        let scenes = Scenes::new(ten(), Split::Train, cfg, 40).unwrap();
        let mut counts = [0usize; 5];
        for i in 0..scenes.len() {
            let s = scenes.scene(i).unwrap();
            let [h, w] = s.size;
            counts[s.objects.len()] += 1;
            assert!((1..=4).contains(&s.objects.len()));
            for (k, o) in s.objects.iter().enumerate() {
                let [bx, by, bw, bh] = o.bbox.map(|v| v as usize);
                assert!(bw > 0 && bh > 0 && bx + bw <= w && by + bh <= h);
                let mine: Vec<(usize, usize)> = (0..h * w)
                    .filter(|&p| s.instance[p] == k as u8 + 1)
                    .map(|p| (p % w, p / w))
                    .collect();
                assert!(mine
                    .iter()
                    .all(|&(x, y)| x >= bx && x < bx + bw && y >= by && y < by + bh));
                // Each edge touches one of the item's pixels.
                assert!(mine.iter().any(|&(x, _)| x == bx) && mine.iter().any(|&(x, _)| x == bx + bw - 1));
                assert!(mine.iter().any(|&(_, y)| y == by) && mine.iter().any(|&(_, y)| y == by + bh - 1));
                for p in 0..h * w {
                    if s.instance[p] == k as u8 + 1 {
                        assert_eq!(s.semantic[p], o.class as u8 + 1);
                        assert!(s.image[p] > cfg.threshold);
                    }
                }
            }
            for p in 0..h * w {
                assert_eq!(s.semantic[p] == 0, s.instance[p] == 0);
                assert!((0.0..=1.0).contains(&s.image[p]));
                if background == Background::Black && s.instance[p] == 0 {
                    assert!(s.image[p] <= cfg.threshold);
                }
            }
        }
        // Every count of items from 1 to 4 turns up in 40 scenes.
        assert!(counts[1..].iter().all(|&c| c > 0), "{counts:?}");
    }
}

#[test]
fn overlap_stays_under_the_limit() {
    let cfg = SceneConfig {
        max_iou: 0.3,
        min_objects: 4,
        max_objects: 4,
        seed: 9,
        ..SceneConfig::segmentation()
    };
    let scenes = Scenes::new(ten(), Split::Test, cfg, 60).unwrap();
    let mut overlapping = 0;
    for i in 0..scenes.len() {
        let s = scenes.scene(i).unwrap();
        for (a, oa) in s.objects.iter().enumerate() {
            for ob in &s.objects[a + 1..] {
                let iou = box_iou(oa.bbox, ob.bbox);
                assert!(iou <= 0.3, "scene {i}: IoU {iou}");
                overlapping += (iou > 0.0) as usize;
            }
        }
        // Instance pixels lie inside their own box even where boxes overlap.
        let w = s.size[1];
        for (p, &k) in s.instance.iter().enumerate() {
            if k > 0 {
                let [bx, by, bw, bh] = s.objects[k as usize - 1].bbox;
                let (x, y) = ((p % w) as f32, (p / w) as f32);
                assert!(x >= bx && x < bx + bw && y >= by && y < by + bh);
            }
        }
    }
    // The limit was exercised: some boxes do overlap.
    assert!(overlapping > 0);
}

#[test]
fn where_items_overlap_the_last_drawn_wins() {
    // Full-frame items on a canvas of one item, overlap allowed: the second covers the first.
    let px: Vec<u8> = (0..3 * 784).map(|i| if i < 784 { 255 } else { 100 }).collect();
    let names = (0..3).map(|c| c.to_string()).collect();
    let src = ImageDataset::new(px, vec![0, 1, 2], [1, 28, 28], names, "t".as_ref()).unwrap();
    let cfg = SceneConfig {
        size: [28, 28],
        min_objects: 2,
        max_objects: 2,
        scale: (1.0, 1.0),
        max_iou: 1.0,
        ..SceneConfig::default()
    };
    let scenes = Scenes::new(src, Split::Train, cfg, 20).unwrap();
    let mut mixed = 0;
    for i in 0..20 {
        let s = scenes.scene(i).unwrap();
        assert_eq!(s.objects.len(), 2);
        let last = s.objects[1].class as u8;
        assert!(s.semantic.iter().all(|&l| l == last + 1));
        assert!(s.instance.iter().all(|&k| k == 2));
        // Max compositing: the brighter item shows wherever it lies.
        let brightest = s.objects.iter().any(|o| o.class == 0);
        let want = if brightest { 1.0 } else { 100.0 / 255.0 };
        assert!(s.image.iter().all(|&v| v == want));
        mixed += (s.objects[0].class != s.objects[1].class) as usize;
    }
    assert!(mixed > 0);
}

#[test]
fn a_scene_is_a_pure_function_of_seed_split_and_index() {
    let cfg = SceneConfig {
        background: Background::Noise,
        ..SceneConfig::segmentation()
    };
    let train = Scenes::new(ten(), Split::Train, cfg, 30).unwrap();
    let forward: Vec<Scene> = (0..30).map(|i| train.scene(i).unwrap()).collect();
    let backward: Vec<Scene> = (0..30).rev().map(|i| train.scene(i).unwrap()).collect();
    assert!(forward.iter().eq(backward.iter().rev()));
    // Another seed, or the other split keying the same source, gives other scenes.
    let other_seed = Scenes::new(ten(), Split::Train, SceneConfig { seed: 1, ..cfg }, 30).unwrap();
    let other_split = Scenes::new(ten(), Split::Test, cfg, 30).unwrap();
    assert_ne!(forward[0], other_seed.scene(0).unwrap());
    assert_ne!(forward[0], other_split.scene(0).unwrap());
    assert!(train.scene(30).is_err());
}

#[test]
fn loaders_with_and_without_workers_give_the_same_bits() {
    let scenes = Scenes::new(ten(), Split::Train, SceneConfig::segmentation(), 24).unwrap();
    for view in [
        Arc::new(scenes.clone().localize()) as Arc<dyn Dataset>,
        Arc::new(scenes.segment()),
    ] {
        let run = |workers: usize| {
            let loader = DataLoader::from_arc(view.clone(), 5)
                .unwrap()
                .shuffle(true)
                .seed(4)
                .num_workers(workers);
            let mut out = Vec::new();
            for b in loader.epoch(1) {
                let b = b.unwrap();
                out.push((b.inputs.to_vec_f32(), b.targets.unwrap().to_vec_f32()));
            }
            out
        };
        let (serial, parallel) = (run(0), run(2));
        assert_eq!(serial.len(), 5);
        let bits = |v: &[(Vec<f32>, Vec<f32>)]| -> Vec<u32> {
            v.iter()
                .flat_map(|(a, b)| a.iter().chain(b).map(|x| x.to_bits()))
                .collect()
        };
        assert_eq!(bits(&serial), bits(&parallel));
    }
}

#[test]
fn views_carry_the_first_item_and_the_mask() {
    let cfg = SceneConfig {
        size: [48, 64],
        ..SceneConfig::segmentation()
    };
    let scenes = Scenes::new(ten(), Split::Train, cfg, 8).unwrap();
    let (loc, seg) = (scenes.clone().localize(), scenes.clone().segment());
    assert_eq!(loc.classes().len(), 10);
    for i in 0..8 {
        let s = scenes.scene(i).unwrap();
        let (a, b) = (loc.get(i).unwrap(), seg.get(i).unwrap());
        assert_eq!((a.shape.clone(), b.shape.clone()), (vec![1, 48, 64], vec![1, 48, 64]));
        assert_eq!((&a.data, &b.data), (&s.image, &s.image));
        let [x, y, w, h] = s.objects[0].bbox;
        let want = vec![s.objects[0].class as f32, x / 64.0, y / 48.0, w / 64.0, h / 48.0];
        assert_eq!(a.target, Target::Values(want));
        assert_eq!(b.target, Target::Values(s.semantic.iter().map(|&l| l as f32).collect()));
    }
}

#[test]
fn scenes_use_only_their_split_source() {
    // A "train" source of bright items of classes 0..3 and a "test" source of dimmer items
    // of classes 3..6: each split's scenes show only its own items.
    let train_src = source(12, 250, &[0, 1, 2], 6);
    let test_src = source(12, 120, &[3, 4, 5], 6);
    let train = Scenes::new(train_src, Split::Train, SceneConfig::segmentation(), 30).unwrap();
    let test = Scenes::new(test_src, Split::Test, SceneConfig::segmentation(), 30).unwrap();
    for i in 0..30 {
        let (a, b) = (train.scene(i).unwrap(), test.scene(i).unwrap());
        assert!(a.objects.iter().all(|o| o.class < 3));
        assert!(b.objects.iter().all(|o| (3..6).contains(&o.class)));
        // Bilinear resizing never exceeds the source's brightest pixel.
        assert!(b.image.iter().all(|&v| v <= 120.0 / 255.0 + 1e-6));
        assert!(a.image.iter().any(|&v| v > 120.0 / 255.0 + 0.1));
    }
}

#[test]
fn bad_configurations_are_refused_with_a_reason() {
    let err = |cfg: SceneConfig| Scenes::new(ten(), Split::Train, cfg, 1).unwrap_err().to_string();
    let zero = err(SceneConfig {
        max_objects: 0,
        ..SceneConfig::default()
    });
    assert!(zero.contains("max_objects is 0"), "{zero}");
    // 28 × 0.8 rounds to 22 pixels, more than a 20-pixel canvas.
    let small = err(SceneConfig {
        size: [20, 64],
        ..SceneConfig::default()
    });
    assert!(small.contains("canvas 20x64 is smaller than one item"), "{small}");
    assert!(err(SceneConfig {
        min_objects: 3,
        max_objects: 2,
        ..SceneConfig::default()
    })
    .contains("min_objects"));
    assert!(err(SceneConfig {
        scale: (1.0, 0.5),
        ..SceneConfig::default()
    })
    .contains("scale"));
    // A canvas that fits the smallest item but not the largest still works (scale clipped).
    let tight = SceneConfig {
        size: [24, 24],
        ..SceneConfig::default()
    };
    let s = Scenes::new(ten(), Split::Train, tight, 5).unwrap();
    for i in 0..5 {
        assert_eq!(s.scene(i).unwrap().objects.len(), 1);
    }
}

#[test]
fn a_resumed_epoch_continues_with_the_same_batches() {
    let scenes = Scenes::new(ten(), Split::Train, SceneConfig::segmentation(), 20);
    let loader = DataLoader::new(scenes.unwrap().segment(), 4)
        .unwrap()
        .shuffle(true)
        .seed(2);
    let mut epoch = loader.epoch(3);
    epoch.next().unwrap().unwrap();
    epoch.next().unwrap().unwrap();
    let pos = epoch.position();
    let rest: Vec<Vec<f32>> = epoch.map(|b| b.unwrap().targets.unwrap().to_vec_f32()).collect();
    let resumed: Vec<Vec<f32>> = loader
        .resume(pos)
        .unwrap()
        .map(|b| b.unwrap().targets.unwrap().to_vec_f32())
        .collect();
    assert_eq!(rest.len(), 3);
    assert_eq!(rest, resumed);
}
