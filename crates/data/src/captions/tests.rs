use super::*;
use crate::{ImageDataset, Split, FASHION_MNIST_CLASSES};

fn fashion() -> Vec<String> {
    FASHION_MNIST_CLASSES.iter().map(|s| s.to_string()).collect()
}

/// An item of `class` whose box is centred on (cx, cy).
fn obj(class: usize, cx: f32, cy: f32) -> SceneObject {
    SceneObject {
        class,
        bbox: [cx - 5.0, cy - 5.0, 10.0, 10.0],
    }
}

/// Twenty 28×28 grey items (two per class), each a bright rectangle of its own size.
fn source() -> ImageDataset {
    let mut px = vec![0u8; 20 * 784];
    for i in 0..20 {
        for y in 4..24 - i / 2 {
            for x in 3 + i / 3..25 {
                px[i * 784 + y * 28 + x] = 150 + i as u8 * 5;
            }
        }
    }
    ImageDataset::new(
        px,
        (0..20).map(|i| i % 10).collect(),
        [1, 28, 28],
        fashion(),
        "mem".as_ref(),
    )
    .unwrap()
}

#[test]
fn class_words_and_plurals() {
    assert_eq!(class_words("T-shirt/top"), ("t-shirt".into(), "t-shirts".into()));
    assert_eq!(class_words("Dress"), ("dress".into(), "dresses".into()));
    assert_eq!(class_words("Ankle boot"), ("ankle boot".into(), "ankle boots".into()));
    assert_eq!(class_words("box"), ("box".into(), "boxes".into()));
}

#[test]
fn one_item() {
    assert_eq!(
        scene_captions(&[obj(9, 30.0, 30.0)], &fashion()),
        [
            "an ankle boot",
            "there is an ankle boot",
            "a picture of an ankle boot",
            "an ankle boot on its own",
            "only an ankle boot"
        ]
    );
}

#[test]
fn one_class_several_items() {
    let caps = scene_captions(&[obj(7, 10.0, 30.0), obj(7, 50.0, 20.0)], &fashion());
    assert_eq!(
        caps,
        [
            "two sneakers",
            "there are two sneakers",
            "a picture of two sneakers",
            "two sneakers next to each other",
            "only two sneakers"
        ]
    );
}

#[test]
fn counts_and_horizontal_relations() {
    // Shirts centred at (10, 10) and (10, 40): group centre (10, 25); the boot at (50, 30):
    // dx = -40 dominates dy = -5, so the shirts are to the left of the boot.
    let objects = [obj(6, 10.0, 10.0), obj(9, 50.0, 30.0), obj(6, 10.0, 40.0)];
    assert_eq!(
        scene_captions(&objects, &fashion()),
        [
            "two shirts and an ankle boot",
            "there are two shirts and an ankle boot",
            "a picture of two shirts and an ankle boot",
            "two shirts to the left of an ankle boot",
            "an ankle boot to the right of two shirts"
        ]
    );
}

#[test]
fn three_groups_and_vertical_relations() {
    // Left to right: t-shirt (10, 40), bag (30, 5), dress (50, 50). t-shirt vs bag:
    // dx = -20, dy = 35 → below; bag vs dress: dx = -20, dy = -45 → above.
    let objects = [obj(8, 30.0, 5.0), obj(0, 10.0, 40.0), obj(3, 50.0, 50.0)];
    let caps = scene_captions(&objects, &fashion());
    assert_eq!(caps[0], "a t-shirt, a bag and a dress");
    assert_eq!(caps[1], "there are a t-shirt, a bag and a dress");
    assert_eq!(caps[3], "a t-shirt below a bag above a dress");
    assert_eq!(caps[4], "a dress below a bag above a t-shirt");
    assert_eq!(scene_captions(&[], &fashion()), ["an empty picture"]);
}

#[test]
fn mentioned_counts_read_numbers_and_longest_names() {
    let c = fashion();
    let n = mentioned_counts("A T-shirt next to two shirts, and 3 bags above an ankle boot", &c);
    assert_eq!(n, [1, 0, 0, 0, 0, 0, 2, 0, 3, 1]);
    // "boot" alone is no class; "ten" counts ten.
    assert_eq!(
        mentioned_counts("a boot and ten dresses", &c),
        [0, 0, 0, 10, 0, 0, 0, 0, 0, 0]
    );
    assert_eq!(mentioned_counts("", &c), [0; 10]);
}

#[test]
fn scores() {
    let c = fashion();
    let refs = vec![
        vec!["a bag".to_string(), "there is a bag".to_string()],
        vec!["two shirts".to_string()],
    ];
    assert_eq!(exact_match_rate(&["There is a BAG.", "two shirt"], &refs).unwrap(), 0.5);
    assert_eq!(exact_match_rate(&["a bag", "two shirts"], &refs).unwrap(), 1.0);
    let counts = vec![vec![0, 0, 0, 0, 0, 0, 0, 0, 1, 0], vec![0, 0, 0, 0, 0, 0, 2, 0, 0, 0]];
    // The second names a coat that is not there.
    let acc = count_accuracy(&["a picture of a bag", "two shirts and a coat"], &counts, &c).unwrap();
    assert_eq!(acc, 0.5);
    assert_eq!(count_accuracy(&["one bag", "2 shirts"], &counts, &c).unwrap(), 1.0);
    let e = count_accuracy(&["a bag"], &counts, &c).unwrap_err().to_string();
    assert!(e.contains("1 candidates but 2 references"), "{e}");
    assert!(exact_match_rate::<&str, Vec<String>>(&[], &[]).is_err());
}

#[test]
fn scene_sets_are_deterministic_and_consistent() {
    let make = |split, seed| {
        let cfg = SceneConfig {
            seed,
            ..caption_scene_config()
        };
        CaptionSet::scenes(Scenes::new(source(), split, cfg, 30).unwrap()).unwrap()
    };
    let set = make(Split::Train, 3);
    assert_eq!(set.all_captions(), make(Split::Train, 3).all_captions());
    assert_ne!(set.all_captions(), make(Split::Test, 3).all_captions());
    assert_ne!(set.all_captions(), make(Split::Train, 4).all_captions());
    assert_eq!(
        (set.len(), set.image_shape(), set.classes().len()),
        (30, [1, 64, 64], 10)
    );
    let scenes = Scenes::new(
        source(),
        Split::Train,
        SceneConfig {
            seed: 3,
            ..caption_scene_config()
        },
        30,
    )
    .unwrap();
    let mut sizes = [0usize; 4];
    for i in 0..set.len() {
        let objects = set.objects(i).unwrap();
        // Built on several threads, yet each scene's items are the generator's.
        assert_eq!(objects, scenes.scene(i).unwrap().objects);
        sizes[objects.len()] += 1;
        let counts = set.class_counts(i).unwrap();
        assert_eq!(counts.iter().sum::<usize>(), objects.len());
        // Every reference states the scene's counts, and matches itself exactly.
        let refs = set.captions(i);
        assert_eq!(refs.len(), SCENE_REFERENCES);
        assert_eq!(
            count_accuracy(refs, &vec![counts; refs.len()], set.classes()).unwrap(),
            1.0
        );
        assert_eq!(
            (set.image_id(i), set.file_name(i)),
            (i as u64, format!("{i:06}.png").as_str())
        );
    }
    assert_eq!(sizes[0], 0);
    assert!(sizes[1] > 0 && sizes[3] > 0, "{sizes:?}");
    // The image is the scene's, and the Dataset view carries the index.
    let (img, shape) = set.image(4).unwrap();
    assert_eq!(shape, [1, 64, 64]);
    assert!(img.iter().any(|&v| v > 0.5));
    let s = set.get(4).unwrap();
    assert_eq!(
        (s.data, s.shape, s.target),
        (img, vec![1, 64, 64], Target::Values(vec![4.0]))
    );
    assert!(set.image(30).unwrap_err().to_string().contains("index 30"));
}

#[test]
fn subsets_keep_the_source_numbering() {
    let set = CaptionSet::scenes(Scenes::new(source(), Split::Test, caption_scene_config(), 6).unwrap()).unwrap();
    let sub = set.subset(&[4, 1]).unwrap();
    assert_eq!((sub.len(), sub.image_id(0), sub.file_name(1)), (2, 4, "000001.png"));
    assert_eq!(sub.captions(0), set.captions(4));
    assert_eq!(sub.objects(1), set.objects(1));
    assert_eq!(sub.image(0).unwrap(), set.image(4).unwrap());
    assert_eq!(sub.subset(&[1]).unwrap().image(0).unwrap(), set.image(1).unwrap());
    assert!(set.subset(&[6]).unwrap_err().to_string().contains("index 6"));
}

#[test]
fn set_scores() {
    let set = CaptionSet::scenes(Scenes::new(source(), Split::Test, caption_scene_config(), 5).unwrap()).unwrap();
    let first: Vec<String> = (0..5).map(|i| set.captions(i)[3].clone()).collect();
    assert_eq!(set.bleu(&first).unwrap().bleu, [1.0; 4]);
    assert_eq!(set.exact_match_rate(&first).unwrap(), 1.0);
    assert_eq!(set.count_accuracy(&first).unwrap(), 1.0);
    // Two bags more than each scene holds: every count is wrong.
    let wrong: Vec<String> = (0..5)
        .map(|i| format!("{} and a bag and a bag", set.captions(i)[0]))
        .collect();
    assert_eq!(set.count_accuracy(&wrong).unwrap(), 0.0);
    assert_eq!(set.exact_match_rate(&wrong).unwrap(), 0.0);
    assert!(set.bleu(&wrong[..4]).is_err());
}
