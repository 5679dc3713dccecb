//! Scenes on disk: the COCO / mask-folder round trip, bad files, and a fuzzed COCO reader.

use super::alloc::largest_allocation;
use super::common::TempDir;
use nabla_core::Generator;
use nabla_data::scenes::{
    quantize, read_coco, read_masks, voc_palette, write_scenes, Background, Scene, SceneConfig, SceneSet, Scenes,
};
use nabla_data::{DataError, Dataset, ImageDataset, Split};
use std::path::Path;

/// Twenty 28×28 items: a rectangle each, of a size and place set by a seeded generator.
fn source() -> ImageDataset {
    let mut g = Generator::new(5);
    let mut px = vec![0u8; 20 * 784];
    for i in 0..20 {
        let mut r = |lo: usize, n: u64| lo + g.below(n) as usize;
        let (y0, x0, h, w) = (r(2, 6), r(2, 6), r(5, 15), r(5, 15));
        for y in y0..y0 + h {
            for x in x0..x0 + w {
                px[i * 784 + y * 28 + x] = 90 + g.below(160) as u8;
            }
        }
    }
    let labels = (0..20).map(|i| i % 10).collect();
    let names = (0..10).map(|c| format!("class {c}")).collect();
    ImageDataset::new(px, labels, [1, 28, 28], names, "mem".as_ref()).unwrap()
}

fn scenes(n: usize) -> Scenes {
    let cfg = SceneConfig {
        background: Background::Noise,
        seed: 11,
        ..SceneConfig::segmentation()
    };
    Scenes::new(source(), Split::Train, cfg, n).unwrap()
}

fn write(dir: &TempDir, n: usize) -> (Scenes, std::path::PathBuf) {
    let set = scenes(n);
    let out = dir.path().join("out");
    let mut calls = Vec::new();
    write_scenes(&set, &out, &mut |i| calls.push(i)).unwrap();
    assert_eq!(calls, (0..n).collect::<Vec<_>>());
    (set, out)
}

fn json(out: &Path) -> serde_json::Value {
    serde_json::from_slice(&std::fs::read(out.join("annotations.json")).unwrap()).unwrap()
}

#[test]
fn written_scenes_read_back_the_same() {
    let dir = TempDir::new("scenes-roundtrip");
    let (set, out) = write(&dir, 12);
    let doc = json(&out);
    let cats: Vec<u64> = doc["categories"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["id"].as_u64().unwrap())
        .collect();
    assert_eq!(cats, (1..=10).collect::<Vec<_>>());
    // Masks are 8-bit palette PNGs (IHDR colour type 3) with the VOC colours.
    let mask = std::fs::read(out.join("masks/000003.png")).unwrap();
    assert_eq!((mask[24], mask[25]), (8, 3));
    assert_eq!(voc_palette()[1], [128, 0, 0]);
    assert_eq!(voc_palette()[2], [0, 128, 0]);
    let coco = read_coco(&out).unwrap();
    let coco_file = read_coco(&out.join("annotations.json")).unwrap();
    let masks = read_masks(&out).unwrap();
    assert_eq!(coco.classes(), set.classes());
    assert_eq!(masks.classes(), set.classes());
    let mut areas = doc["annotations"].as_array().unwrap().iter();
    for i in 0..12 {
        let want: Scene = set.scene(i).unwrap();
        let image: Vec<f32> = quantize(&want.image).iter().map(|&b| b as f32 / 255.0).collect();
        for got in [coco.scene(i).unwrap(), coco_file.scene(i).unwrap()] {
            assert_eq!(got.image, image);
            assert_eq!(got.objects, want.objects);
            assert_eq!(got.semantic, want.semantic);
        }
        let m = masks.scene(i).unwrap();
        assert_eq!((m.image, m.semantic), (image, want.semantic.clone()));
        for k in 0..want.objects.len() {
            let area = want.instance.iter().filter(|&&v| v as usize == k + 1).count();
            assert_eq!(areas.next().unwrap()["area"].as_u64(), Some(area as u64));
        }
    }
    // The views over files give what the generator's views give, up to PNG quantization.
    let (a, b) = (set.clone().localize(), coco.localize().unwrap());
    let (c, d) = (set.segment(), masks.segment().unwrap());
    for i in 0..12 {
        assert_eq!(a.get(i).unwrap().target, b.get(i).unwrap().target);
        assert_eq!(c.get(i).unwrap().target, d.get(i).unwrap().target);
    }
}

#[test]
fn writing_is_atomic() {
    /// Scenes that fail at index 3.
    struct Failing(Scenes);
    impl SceneSet for Failing {
        fn len(&self) -> usize {
            6
        }
        fn size(&self) -> [usize; 2] {
            self.0.config().size
        }
        fn scene(&self, i: usize) -> nabla_data::Result<Scene> {
            if i == 3 {
                return Err(DataError::invalid("test", "scene 3 fails"));
            }
            self.0.scene(i)
        }
        fn classes(&self) -> &[String] {
            self.0.classes()
        }
    }
    let dir = TempDir::new("scenes-atomic");
    let out = dir.path().join("out");
    let err = write_scenes(&Failing(scenes(6)), &out, &mut |_| {}).unwrap_err();
    assert!(err.to_string().contains("scene 3 fails"));
    // Neither the folder nor a temporary one is left behind.
    assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 0);
    // A folder that holds something is refused.
    std::fs::create_dir_all(&out).unwrap();
    std::fs::write(out.join("keep.txt"), b"x").unwrap();
    let err = write_scenes(&scenes(2), &out, &mut |_| {}).unwrap_err().to_string();
    assert!(err.contains("not an empty folder"), "{err}");
    assert!(out.join("keep.txt").is_file());
}

/// Rewrite the annotations of a written set and return read_coco's error.
fn coco_error(edit: impl Fn(&mut serde_json::Value)) -> String {
    let dir = TempDir::new("scenes-bad");
    let (_, out) = write(&dir, 3);
    let mut doc = json(&out);
    edit(&mut doc);
    std::fs::write(out.join("annotations.json"), serde_json::to_vec(&doc).unwrap()).unwrap();
    let e = read_coco(&out).unwrap_err().to_string();
    assert!(!e.contains('\n'), "one line: {e}");
    e
}

#[test]
fn bad_coco_files_name_the_file_and_the_entry() {
    let e = coco_error(|d| d["annotations"][0]["bbox"][0] = 60.0.into());
    assert!(
        e.contains("annotations.json: annotations[0] (id 1): bbox") && e.contains("outside its image"),
        "{e}"
    );
    let e = coco_error(|d| d["annotations"][1]["bbox"][2] = (-3.0).into());
    assert!(
        e.contains("annotations[1] (id 2)") && e.contains("width or height"),
        "{e}"
    );
    let e = coco_error(|d| d["annotations"][0]["category_id"] = 11.into());
    assert!(e.contains("annotations[0] (id 1): unknown category id 11"), "{e}");
    let e = coco_error(|d| d["images"][2]["file_name"] = "nowhere.png".into());
    assert!(
        e.contains("images[2] (id 2): image file") && e.contains("nowhere.png not found"),
        "{e}"
    );
    let e = coco_error(|d| d["images"][1]["file_name"] = "../annotations.json".into());
    assert!(e.contains("images[1] (id 1): file_name"), "{e}");
    let e = coco_error(|d| d["images"][0]["width"] = 1e30.into());
    assert!(e.contains("images[0] (id 0): \"width\""), "{e}");
}

#[test]
fn bad_masks_name_the_file() {
    let dir = TempDir::new("scenes-badmask");
    let (_, out) = write(&dir, 3);
    let mask = out.join("masks/000001.png");
    // A mask of the wrong size.
    image::GrayImage::new(10, 64).save(&mask).unwrap();
    for e in [read_coco(&out).unwrap_err(), read_masks(&out).unwrap_err()] {
        let e = e.to_string();
        assert!(
            e.contains("000001.png") && e.contains("mask is 64x10 but its image is 64x64"),
            "{e}"
        );
    }
    // Labels above the class count (10 classes: 11 is one too many).
    let mut labels = image::GrayImage::new(64, 64);
    labels.put_pixel(5, 7, image::Luma([11]));
    labels.save(&mask).unwrap();
    for e in [read_coco(&out).unwrap_err(), read_masks(&out).unwrap_err()] {
        let e = e.to_string();
        assert!(
            e.contains("000001.png") && e.contains("label 11 at row 7, column 5 is above the 10 classes"),
            "{e}"
        );
    }
    // A missing mask.
    std::fs::remove_file(&mask).unwrap();
    let e = read_masks(&out).unwrap_err().to_string();
    assert!(e.contains("000001.png") && e.contains("missing"), "{e}");
    // Masks alone cannot be localized.
    std::fs::remove_dir_all(out.join("masks")).unwrap();
    let coco = read_coco(&out).unwrap();
    assert!(!coco.has_masks());
    let e = coco.segment().unwrap_err().to_string();
    assert!(e.contains("no masks/ folder"), "{e}");
}

/// A corruption of JSON text: byte flips, truncations, numbers replaced by extreme ones, junk.
fn corrupt(base: &[u8], g: &mut Generator) -> Vec<u8> {
    let mut v = base.to_vec();
    let pick = |g: &mut Generator, n: usize| g.below(n.max(1) as u64) as usize;
    match g.below(5) {
        0 => {
            for _ in 0..1 + pick(g, 6) {
                let i = pick(g, v.len());
                v[i] ^= 1 << pick(g, 8);
            }
        }
        1 => v.truncate(pick(g, v.len())),
        2 | 3 => {
            // A number replaced by an extreme one: find the start of a run of digits.
            let starts: Vec<usize> = (1..v.len())
                .filter(|&i| v[i].is_ascii_digit() && !v[i - 1].is_ascii_digit() && v[i - 1] != b'.')
                .collect();
            let at = starts[pick(g, starts.len())];
            let end = (at..v.len()).find(|&i| !v[i].is_ascii_digit()).unwrap_or(v.len());
            let big = [
                "18446744073709551616",
                "1e308",
                "-1",
                "4294967297",
                "99999999",
                "0",
                "1e-9",
            ];
            v.splice(at..end, big[pick(g, big.len())].bytes());
        }
        _ => {
            let i = pick(g, v.len() + 1);
            let junk = [&b"[[[[[[[["[..], b"\"", b"{}", b",", b"null", b"\\u0000"];
            v.splice(i..i, junk[pick(g, junk.len())].iter().copied());
        }
    }
    v
}

#[test]
fn fuzzed_coco_files_never_panic_or_allocate_much() {
    let dir = TempDir::new("scenes-fuzz");
    let (_, out) = write(&dir, 3);
    let base = std::fs::read(out.join("annotations.json")).unwrap();
    let mut g = Generator::new(16);
    let (mut ok, mut failed) = (0, 0);
    for case in 0..300 {
        let bytes = corrupt(&base, &mut g);
        std::fs::write(out.join("annotations.json"), &bytes).unwrap();
        let (r, largest) = largest_allocation(|| read_coco(&out));
        // Three 64×64 images and a file of a few kB: nothing needs a megabyte.
        assert!(largest < 1 << 20, "case {case}: an allocation of {largest} bytes");
        match r {
            Ok(s) => {
                ok += 1;
                assert!(s.len() <= 3);
            }
            Err(e) => {
                failed += 1;
                let msg = e.to_string();
                assert!(
                    msg.contains("annotations.json") || msg.contains("images/"),
                    "case {case}: {msg}"
                );
                assert!(!msg.contains('\n'), "case {case}: {msg}");
            }
        }
    }
    // Both outcomes occur: some corruptions keep the file valid (a changed digit in a pixel
    // count), most break it.
    assert!(ok > 0 && failed > 150, "{ok} read, {failed} refused");
}

#[test]
fn real_fashion_mnist_scenes_when_installed() {
    let fm = nabla_data::FashionMnist {
        download: false,
        ..nabla_data::FashionMnist::new()
    };
    if let Err(e) = fm.locate() {
        eprintln!("notice: Fashion-MNIST is not installed, skipping ({e})");
        assert!(std::env::var_os("CI").is_none(), "CI must install Fashion-MNIST: {e}");
        return;
    }
    for split in [Split::Train, Split::Test] {
        let set = Scenes::fashion(&fm, split, SceneConfig::segmentation(), 400).unwrap();
        assert_eq!(set.classes(), nabla_data::FASHION_MNIST_CLASSES);
        let (mut items, mut seen) = (0, [0usize; 10]);
        for i in 0..400 {
            let s = set.scene(i).unwrap();
            items += s.objects.len();
            for (k, o) in s.objects.iter().enumerate() {
                seen[o.class] += 1;
                // Tight boxes are at most the largest scaled frame, round(28 × 1.6) = 45.
                assert!(o.bbox[2] <= 45.0 && o.bbox[3] <= 45.0, "{:?}", o.bbox);
                for p in &s.objects[k + 1..] {
                    assert!(nabla_data::scenes::box_iou(o.bbox, p.bbox) <= 0.2);
                }
            }
        }
        // 1 to 4 items asked for, 2.5 on average: the IoU limit leaves out few.
        let mean = items as f64 / 400.0;
        assert!((2.3..=2.6).contains(&mean), "{split:?}: {mean} items per scene");
        assert!(seen.iter().all(|&n| n > 40), "{split:?}: {seen:?}");
    }
}
