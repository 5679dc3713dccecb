use super::*;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};

/// A fresh folder under the system temp dir, removed on drop.
struct TempDir(PathBuf);

impl TempDir {
    fn new(name: &str) -> TempDir {
        static N: AtomicUsize = AtomicUsize::new(0);
        let p = std::env::temp_dir().join(format!(
            "nabla-captions-{name}-{}-{}",
            std::process::id(),
            N.fetch_add(1, Ordering::Relaxed)
        ));
        let _ = std::fs::remove_dir_all(&p);
        std::fs::create_dir_all(&p).unwrap();
        TempDir(p)
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// An 8×6 PNG of one colour.
fn png(path: &Path, rgb: [u8; 3]) {
    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
    image::RgbImage::from_pixel(8, 6, image::Rgb(rgb)).save(path).unwrap();
}

fn write(path: &Path, text: &str) {
    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
    std::fs::write(path, text).unwrap();
}

const COCO: &str = r#"{"images": [
  {"id": 7, "file_name": "red.png"}, {"id": 3, "file_name": "none.png"}, {"id": 9, "file_name": "blue.png"}],
 "annotations": [
  {"id": 1, "image_id": 9, "caption": "A blue square."},
  {"id": 2, "image_id": 7, "caption": "A red square"},
  {"id": 3, "image_id": 7, "caption": " red, all red "}]}"#;

fn coco_dir() -> TempDir {
    let d = TempDir::new("coco");
    png(&d.0.join("images/red.png"), [255, 0, 0]);
    png(&d.0.join("images/blue.png"), [0, 0, 255]);
    write(&d.0.join("captions.json"), COCO);
    d
}

#[test]
fn coco_captions_read_in_order_rgb_and_grey() {
    let d = coco_dir();
    let set = read_coco_captions(
        &d.0.join("captions.json"),
        &d.0.join("images"),
        &ImageOptions::new([4, 5], 3),
    )
    .unwrap();
    // The image with no caption is left out (it need not exist either).
    assert_eq!(set.len(), 2);
    assert_eq!((set.image_id(0), set.file_name(0), set.image_id(1)), (7, "red.png", 9));
    assert_eq!(set.captions(0), ["A red square", "red, all red"]);
    assert_eq!(set.captions(1), ["A blue square."]);
    assert!(set.classes().is_empty() && set.objects(0).is_none() && set.class_counts(0).is_none());
    let e = set.count_accuracy(&["a", "b"]).unwrap_err().to_string();
    assert!(e.contains("no scene items to count"), "{e}");
    assert_eq!(set.exact_match_rate(&["red all red", "a red square"]).unwrap(), 0.5);
    let (img, shape) = set.image(0).unwrap();
    assert_eq!(shape, [3, 4, 5]);
    assert!(img[..20].iter().all(|&v| v == 1.0) && img[20..].iter().all(|&v| v == 0.0));
    let grey = read_coco_captions(
        &d.0.join("captions.json"),
        &d.0.join("images"),
        &ImageOptions::new([2, 2], 1),
    )
    .unwrap();
    let (g, shape) = grey.image(1).unwrap();
    assert_eq!(shape, [1, 2, 2]);
    // Luma of pure blue is 0.0722·255 ≈ 18.
    assert!(g.iter().all(|&v| (v - 18.0 / 255.0).abs() < 1.5 / 255.0), "{g:?}");
    assert!(read_coco_captions(
        &d.0.join("captions.json"),
        &d.0.join("images"),
        &ImageOptions::new([2, 2], 2)
    )
    .unwrap_err()
    .to_string()
    .contains("2 channels"));
}

#[test]
fn coco_bad_files_name_the_entry() {
    let d = coco_dir();
    let cases = [
        ("[1, 2]", "no \"images\" list"),
        (r#"{"images": []}"#, "no \"annotations\" list"),
        ("{\"images\": [", "not valid JSON"),
        (
            r#"{"images": [{"file_name": "red.png"}], "annotations": []}"#,
            "images[0]: no \"id\"",
        ),
        (
            r#"{"images": [{"id": 1}], "annotations": []}"#,
            "images[0] (id 1): no \"file_name\"",
        ),
        (
            r#"{"images": [{"id": 1, "file_name": "../red.png"}], "annotations": []}"#,
            "not a plain relative path",
        ),
        (
            r#"{"images": [{"id": 1, "file_name": "red.png"}, {"id": 1, "file_name": "blue.png"}], "annotations": []}"#,
            "images[1]: id 1 appears twice",
        ),
        (
            r#"{"images": [{"id": 1, "file_name": "red.png"}], "annotations": [{"image_id": 2, "caption": "a"}]}"#,
            "annotations[0]: image_id 2 is not in \"images\"",
        ),
        (
            r#"{"images": [{"id": 1, "file_name": "red.png"}], "annotations": [{"image_id": 1, "caption": " . "}]}"#,
            "annotations[0] (image 1): empty caption",
        ),
        (
            r#"{"images": [{"id": 1, "file_name": "red.png"}], "annotations": [{"image_id": 1}]}"#,
            "no \"caption\" string",
        ),
        (
            r#"{"images": [{"id": 1, "file_name": "red.png"}], "annotations": []}"#,
            "no image has a caption",
        ),
        (
            r#"{"images": [{"id": 4, "file_name": "gone.png"}], "annotations": [{"image_id": 4, "caption": "a"}]}"#,
            "image gone.png (id 4, captioned image 0)",
        ),
    ];
    for (i, (json, want)) in cases.iter().enumerate() {
        let p = d.0.join(format!("bad{i}.json"));
        write(&p, json);
        let e = read_coco_captions(&p, &d.0.join("images"), &ImageOptions::new([4, 4], 1))
            .unwrap_err()
            .to_string();
        assert!(e.contains(&format!("bad{i}.json")) && e.contains(want), "case {i}: {e}");
    }
}

fn flickr_dir() -> TempDir {
    let d = TempDir::new("flickr");
    for (n, c) in [
        ("1.jpg", [9, 9, 9]),
        ("2.jpg", [200, 200, 200]),
        ("3.jpg", [50, 50, 50]),
    ] {
        png(&d.0.join("Flicker8k_Dataset").join(n), c);
    }
    let tokens = "2.jpg#0\tA light square .\n2.jpg#1\tSomething pale\n\n1.jpg#0\tA dark square .\n3.jpg#0\tgrey\n";
    write(&d.0.join("Flickr8k_text/Flickr8k.token.txt"), tokens);
    write(&d.0.join("Flickr8k_text/Flickr_8k.trainImages.txt"), "1.jpg\n3.jpg\n");
    write(&d.0.join("Flickr8k_text/Flickr_8k.testImages.txt"), "2.jpg\n");
    d
}

#[test]
fn flickr8k_reads_the_layout_and_split_lists() {
    let d = flickr_dir();
    let f = flickr8k_layout(&d.0).unwrap();
    assert_eq!(f.images, d.0.join("Flicker8k_Dataset"));
    assert!(f.train.is_some() && f.test.is_some() && f.dev.is_none());
    let set = read_flickr8k(&f.tokens, &f.images, &ImageOptions::new([3, 3], 1)).unwrap();
    assert_eq!(set.len(), 3);
    assert_eq!(
        (set.file_name(0), set.image_id(0), set.file_name(1)),
        ("2.jpg", 0, "1.jpg")
    );
    assert_eq!(set.captions(0), ["A light square .", "Something pale"]);
    let lim = ReadLimits::default();
    let train = set
        .select_files(&read_name_list(f.train.as_ref().unwrap(), &lim).unwrap())
        .unwrap();
    assert_eq!((train.len(), train.file_name(1), train.image_id(1)), (2, "3.jpg", 2));
    assert_eq!(train.captions(0), ["A dark square ."]);
    let (img, _) = train.image(0).unwrap();
    assert!(img.iter().all(|&v| v == 9.0 / 255.0));
    let e = set.select_files(&["4.jpg"]).unwrap_err().to_string();
    assert!(e.contains("no captioned image named \"4.jpg\""), "{e}");
    let e = flickr8k_layout(&d.0.join("Flicker8k_Dataset")).unwrap_err().to_string();
    assert!(e.contains("Flickr8k.token.txt not found"), "{e}");
}

#[test]
fn flickr8k_bad_lines_name_the_line() {
    let d = flickr_dir();
    let images = d.0.join("Flicker8k_Dataset");
    let cases = [
        ("", "no captions"),
        ("1.jpg#0\tfine\n1.jpg#1 no tab\n", "line 2: no tab"),
        ("1.jpg\tno number\n", "line 1: \"1.jpg\" is not \"NAME#K\""),
        ("1.jpg#x\tbad number\n", "caption number \"x\""),
        ("\n1.jpg#0\t  ,\n", "line 2: 1.jpg: empty caption"),
        ("1.jpg#0\tok\n9.jpg#0\tgone\n", "line 2: image 9.jpg not found in"),
        ("/etc/passwd#0\tescape\n", "not a plain relative path"),
    ];
    for (i, (text, want)) in cases.iter().enumerate() {
        let p = d.0.join(format!("tokens{i}.txt"));
        write(&p, text);
        let e = read_flickr8k(&p, &images, &ImageOptions::new([3, 3], 1))
            .unwrap_err()
            .to_string();
        assert!(
            e.contains(&format!("tokens{i}.txt")) && e.contains(want),
            "case {i}: {e}"
        );
    }
    write(&d.0.join("empty.txt"), "\n\n");
    let e = read_name_list(&d.0.join("empty.txt"), &ReadLimits::default())
        .unwrap_err()
        .to_string();
    assert!(e.contains("empty.txt: the list of images is empty"), "{e}");
}

#[test]
fn coco_layouts() {
    let d = TempDir::new("layout");
    write(&d.0.join("annotations/captions_val2017.json"), COCO);
    write(&d.0.join("annotations/captions_train2017.json"), COCO);
    write(&d.0.join("annotations/instances_train2017.json"), "{}");
    std::fs::create_dir_all(d.0.join("train2017")).unwrap();
    std::fs::create_dir_all(d.0.join("images")).unwrap();
    let l = coco_layout(&d.0).unwrap();
    let splits: Vec<_> = l.iter().map(|(s, j, i)| (s.as_str(), j.clone(), i.clone())).collect();
    assert_eq!(
        splits,
        [
            (
                "train2017",
                d.0.join("annotations/captions_train2017.json"),
                d.0.join("train2017")
            ),
            (
                "val2017",
                d.0.join("annotations/captions_val2017.json"),
                d.0.join("images")
            ),
        ]
    );
    let one = coco_layout(&d.0.join("annotations/captions_train2017.json")).unwrap();
    assert_eq!(one[0].2, d.0.join("train2017"));
    let e = coco_layout(&d.0.join("annotations")).unwrap_err().to_string();
    assert!(e.contains("annotations") && e.contains("captions_"), "{e}");
}

#[test]
fn results_and_references_round_trip() {
    let d = coco_dir();
    let set = read_coco_captions(
        &d.0.join("captions.json"),
        &d.0.join("images"),
        &ImageOptions::new([4, 4], 1),
    )
    .unwrap();
    let refs = d.0.join("out/refs.json");
    std::fs::create_dir_all(refs.parent().unwrap()).unwrap();
    write_coco_captions(&refs, &set).unwrap();
    let back = read_coco_captions(&refs, &d.0.join("images"), &ImageOptions::new([4, 4], 1)).unwrap();
    assert_eq!(back.all_captions(), set.all_captions());
    assert_eq!((back.image_id(0), back.image_id(1)), (7, 9));
    let doc: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(&refs).unwrap()).unwrap();
    let ids: Vec<u64> = doc["annotations"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| a["id"].as_u64().unwrap())
        .collect();
    assert_eq!((ids, doc["type"].as_str()), (vec![1, 2, 3], Some("captions")));

    let res = d.0.join("out/results.json");
    write_coco_caption_results(&res, &[(7, "a red square".into()), (9, "a \"blue\" one".into())]).unwrap();
    let doc: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(&res).unwrap()).unwrap();
    assert_eq!(
        doc,
        serde_json::json!([{"image_id": 7, "caption": "a red square"}, {"image_id": 9, "caption": "a \"blue\" one"}])
    );
    // Only the two files: no temporary left behind.
    assert_eq!(std::fs::read_dir(d.0.join("out")).unwrap().count(), 2);
    let e = write_coco_caption_results(&d.0.join("missing/r.json"), &[])
        .unwrap_err()
        .to_string();
    assert!(e.contains("missing/r.json"), "{e}");
    assert!(!d.0.join("missing").exists());
}
