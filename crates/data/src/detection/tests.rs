use super::*;
use crate::scenes::{write_scenes, SceneConfig, Scenes};
use crate::{ImageDataset, Split};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};

mod voc_tests;

/// A fresh folder under the system temp dir, removed on drop.
pub(super) struct TempDir(pub PathBuf);

impl TempDir {
    pub(super) fn new(name: &str) -> TempDir {
        static N: AtomicUsize = AtomicUsize::new(0);
        let p = std::env::temp_dir().join(format!(
            "nabla-detection-{name}-{}-{}",
            std::process::id(),
            N.fetch_add(1, Ordering::Relaxed)
        ));
        let _ = std::fs::remove_dir_all(&p);
        std::fs::create_dir_all(&p).unwrap();
        TempDir(p)
    }

    pub(super) fn path(&self) -> &Path {
        &self.0
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// A `channels`×h×w image whose value at (c, y, x) encodes its place.
fn ramp(channels: usize, [h, w]: [usize; 2]) -> Vec<f32> {
    (0..channels * h * w)
        .map(|i| i as f32 / (channels * h * w) as f32)
        .collect()
}

fn image(id: u64, size: [usize; 2], boxes: Vec<[f32; 4]>, labels: Vec<usize>) -> DetectionImage {
    DetectionImage {
        id,
        channels: 2,
        size,
        image: ramp(2, size),
        boxes,
        labels,
    }
}

fn names(n: usize) -> Vec<String> {
    (0..n).map(|c| format!("c{c}")).collect()
}

#[test]
fn view_packs_boxes_and_pads_with_minus_one() {
    let a = image(10, [4, 5], vec![[0.0, 1.0, 2.0, 3.0]], vec![2]);
    let b = image(11, [4, 5], vec![], vec![]);
    let set = Arc::new(MemoryDetections::new(vec![a.clone(), b], names(3)).unwrap());
    let view = DetectionView::new(set, 2).unwrap();
    let s = view.get(0).unwrap();
    assert_eq!((s.shape, s.data), (vec![2, 4, 5], a.image));
    let Target::Values(v) = s.target else {
        panic!("values expected")
    };
    assert_eq!(v, vec![1.0, 2.0, 0.0, 1.0, 2.0, 3.0, -1.0, -1.0, -1.0, -1.0, -1.0]);
    assert_eq!(decode_target(&v), (vec![[0.0, 1.0, 2.0, 3.0]], vec![2]));
    let Target::Values(v) = view.get(1).unwrap().target else {
        panic!("values expected")
    };
    assert_eq!(v[0], 0.0);
    assert_eq!(decode_target(&v), (vec![], vec![]));
    assert_eq!(view.classes(), &names(3)[..]);
}

#[test]
fn view_refuses_an_image_with_too_many_objects_naming_it() {
    let boxes = vec![[0.0, 0.0, 1.0, 1.0]; 3];
    let set = Arc::new(MemoryDetections::new(vec![image(42, [3, 3], boxes, vec![0; 3])], names(1)).unwrap());
    let err = DetectionView::new(set.clone(), 2)
        .unwrap()
        .get(0)
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("id 42") && err.contains("3 objects") && err.contains("max_objects 2"),
        "{err}"
    );
    assert!(DetectionView::new(set, 0).is_err());
}

#[test]
fn memory_set_checks_its_images() {
    let ok = image(0, [3, 3], vec![], vec![]);
    let other = image(1, [3, 4], vec![], vec![]);
    let err = MemoryDetections::new(vec![ok.clone(), other], names(1))
        .unwrap_err()
        .to_string();
    assert!(err.contains("image 1 (id 1)"), "{err}");
    let labelled = image(2, [3, 3], vec![[0.0, 0.0, 1.0, 1.0]], vec![5]);
    assert!(MemoryDetections::new(vec![labelled], names(2)).is_err());
    assert!(MemoryDetections::new(vec![], names(2)).is_err());
}

#[test]
fn decode_target_reads_only_what_is_there() {
    // A count larger than the rows held gives the rows held.
    assert_eq!(decode_target(&[3.0, 1.0, 0.0, 0.0, 1.0, 1.0]).1, vec![1]);
    assert_eq!(decode_target(&[]), (vec![], vec![]));
}

/// Eight 28×28 items: a bright rectangle whose place and size depend on the item.
fn source() -> ImageDataset {
    let mut px = vec![0u8; 8 * 784];
    for i in 0..8 {
        for y in 3 + i..14 + i {
            for x in 5..12 + 2 * i {
                px[i * 784 + y * 28 + x] = 220;
            }
        }
    }
    ImageDataset::new(
        px,
        (0..8).map(|i| i % 3).collect(),
        [1, 28, 28],
        names(3),
        "mem".as_ref(),
    )
    .unwrap()
}

#[test]
fn scene_items_become_xyxy_boxes() {
    let scenes = Scenes::new(source(), Split::Train, SceneConfig::segmentation(), 12).unwrap();
    let det = SceneDetections::new(Arc::new(scenes.clone()));
    assert_eq!((det.len(), det.channels(), det.size()), (12, 1, [64, 64]));
    let mut seen = 0;
    for i in 0..12 {
        let (scene, d) = (scenes.scene(i).unwrap(), det.get(i).unwrap());
        assert_eq!((d.id, d.image.len()), (i as u64, 64 * 64));
        assert_eq!(d.image, scene.image);
        assert_eq!(d.boxes.len(), scene.objects.len());
        for (k, ((b, &l), o)) in d.boxes.iter().zip(&d.labels).zip(&scene.objects).enumerate() {
            let [x, y, w, h] = o.bbox;
            assert_eq!((*b, l), ([x, y, x + w, y + h], o.class));
            // The continuous box holds every pixel of the item (its right and bottom edges are
            // one past the last pixel), and lies in the canvas.
            for (p, &m) in scene.instance.iter().enumerate() {
                if m as usize == k + 1 {
                    let (px, py) = ((p % 64) as f32, (p / 64) as f32);
                    assert!(px >= b[0] && px + 1.0 <= b[2] && py >= b[1] && py + 1.0 <= b[3]);
                }
            }
            assert!(b[2] <= 64.0 && b[3] <= 64.0);
            seen += 1;
        }
    }
    assert!(seen > 12, "several items per scene");
}

#[test]
fn coco_folder_reads_back_the_scenes_boxes() {
    let dir = TempDir::new("coco");
    let scenes = Scenes::new(source(), Split::Test, SceneConfig::segmentation(), 5).unwrap();
    let out = dir.path().join("scenes");
    write_scenes(&scenes, &out, &mut |_| {}).unwrap();
    let read = read_coco_detections(&out).unwrap();
    let made = SceneDetections::new(Arc::new(scenes));
    assert_eq!((read.len(), read.classes()), (5, &names(3)[..]));
    for i in 0..5 {
        let (a, b) = (read.get(i).unwrap(), made.get(i).unwrap());
        assert_eq!((a.id, &a.boxes, &a.labels), (b.id, &b.boxes, &b.labels));
        // Images went through 8-bit PNGs.
        assert!(a
            .image
            .iter()
            .zip(&b.image)
            .all(|(p, q)| (p - q).abs() <= 0.5 / 255.0 + 1e-6));
    }
    let err = read_coco_detections(&dir.path().join("missing"))
        .err()
        .unwrap()
        .to_string();
    assert!(err.contains("missing"), "{err}");
}

#[test]
fn a_users_coco_file_keeps_its_image_and_category_ids() {
    let dir = TempDir::new("coco-ids");
    std::fs::create_dir_all(dir.path().join("images")).unwrap();
    for f in ["p.png", "q.png"] {
        image::GrayImage::from_pixel(6, 4, image::Luma([9]))
            .save(dir.path().join("images").join(f))
            .unwrap();
    }
    let json = r#"{"images": [{"id": 9, "file_name": "q.png", "width": 6, "height": 4},
                              {"id": 5, "file_name": "p.png", "width": 6, "height": 4}],
                   "categories": [{"id": 7, "name": "late"}, {"id": 3, "name": "early"}],
                   "annotations": [{"id": 1, "image_id": 5, "category_id": 7, "bbox": [1, 1, 2, 2]}]}"#;
    std::fs::write(dir.path().join("annotations.json"), json).unwrap();
    let set = read_coco_detections(dir.path()).unwrap();
    // Classes in category id order: early (3), late (7).
    assert_eq!(set.classes(), &["early".to_string(), "late".to_string()]);
    assert_eq!((set.category_id(0), set.category_id(1)), (3, 7));
    let (a, b) = (set.get(0).unwrap(), set.get(1).unwrap());
    assert_eq!((a.id, b.id), (9, 5));
    assert_eq!((b.boxes, b.labels), (vec![[1.0, 1.0, 3.0, 3.0]], vec![1]));
    // Generated scenes number categories class + 1.
    let scenes = Scenes::new(source(), Split::Test, SceneConfig::segmentation(), 2).unwrap();
    assert_eq!(SceneDetections::new(Arc::new(scenes)).category_id(2), 3);
}

#[test]
fn tile_starts_cover_the_side_and_end_at_the_edge() {
    assert_eq!(tiles::starts(400, 128, 128), vec![0, 128, 256, 272]);
    assert_eq!(tiles::starts(256, 128, 128), vec![0, 128]);
    assert_eq!(tiles::starts(256, 128, 64), vec![0, 64, 128]);
    assert_eq!(tiles::starts(100, 128, 128), vec![0]);
    assert_eq!(tiles::starts(128, 128, 7), vec![0]);
}

#[test]
fn tiles_clip_boxes_and_keep_the_mostly_visible() {
    // A 2×10×12 image cut into 6×8 tiles every 6 rows and 8 columns: rows at 0 and 4,
    // columns at 0 and 4 (moved back to end at the edge).
    let boxes = vec![
        [1.0, 1.0, 3.0, 3.0],  // inside tile 0 only
        [6.0, 2.0, 10.0, 4.0], // x 6..10: half inside tile 0 (x 0..8), all inside tile 1 (x 4..12)
    ];
    let set = Arc::new(MemoryDetections::new(vec![image(0, [10, 12], boxes, vec![0, 1])], names(2)).unwrap());
    let t = Tiles::new(set.clone(), [6, 8], [6, 8], 0.6).unwrap();
    assert_eq!((t.len(), t.size(), t.channels()), (4, [6, 8], 2));
    assert_eq!(t.origin(1).unwrap(), (0, [0, 4]));
    let t0 = t.get(0).unwrap();
    // Box 1 is half inside tile 0: below 0.6, dropped.
    assert_eq!(
        (t0.boxes.clone(), t0.labels.clone(), t0.id),
        (vec![[1.0, 1.0, 3.0, 3.0]], vec![0], 0)
    );
    let t1 = t.get(1).unwrap();
    assert_eq!((t1.boxes, t1.labels), (vec![[2.0, 2.0, 6.0, 4.0]], vec![1]));
    // At min_visible 0.5 the half-visible box stays, clipped to the tile.
    let half = Tiles::new(set.clone(), [6, 8], [6, 8], 0.5).unwrap().get(0).unwrap();
    assert_eq!(half.boxes, vec![[1.0, 1.0, 3.0, 3.0], [6.0, 2.0, 8.0, 4.0]]);
    // Pixels: tile 3 starts at row 4, column 4.
    let full = ramp(2, [10, 12]);
    let t3 = t.get(3).unwrap();
    for c in 0..2 {
        for y in 0..6 {
            for x in 0..8 {
                assert_eq!(t3.image[c * 48 + y * 8 + x], full[c * 120 + (4 + y) * 12 + 4 + x]);
            }
        }
    }
    assert_eq!(t.max_objects().unwrap(), 1);
    // Bad settings.
    assert!(Tiles::new(set.clone(), [0, 8], [6, 8], 0.5).is_err());
    assert!(Tiles::new(set.clone(), [6, 8], [6, 0], 0.5).is_err());
    assert!(Tiles::new(set, [6, 8], [6, 8], 0.0).is_err());
}

#[test]
fn a_tile_larger_than_the_image_is_zero_padded() {
    let set =
        Arc::new(MemoryDetections::new(vec![image(0, [3, 4], vec![[0.0, 0.0, 4.0, 3.0]], vec![0])], names(1)).unwrap());
    let t = Tiles::new(set, [5, 6], [5, 6], 1.0).unwrap();
    assert_eq!(t.len(), 1);
    let g = t.get(0).unwrap();
    assert_eq!(g.boxes, vec![[0.0, 0.0, 4.0, 3.0]]);
    let full = ramp(2, [3, 4]);
    assert_eq!(g.image[6 + 1], full[4 + 1]); // channel 0, row 1, column 1
    assert_eq!(g.image[30 + 2 * 6 + 3], full[12 + 2 * 4 + 3]); // channel 1, row 2, column 3
    assert_eq!(g.image[4], 0.0); // column 4 is past the image
    assert_eq!(g.image[30 + 4 * 6], 0.0); // row 4 too
}

#[test]
fn coco_results_are_written_whole_and_read_back() {
    let dir = TempDir::new("results");
    let path = dir.path().join("results.json");
    let r = [
        CocoResult::from_xyxy(3, 0, [1.0, 2.0, 5.0, 8.0], 0.75),
        CocoResult::from_xyxy(4, 9, [0.5, 0.0, 1.5, 2.0], 0.125),
    ];
    assert_eq!(r[0].bbox, [1.0, 2.0, 4.0, 6.0]);
    write_coco_results(&path, &r).unwrap();
    let doc: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap();
    let list = doc.as_array().unwrap();
    assert_eq!(list.len(), 2);
    assert_eq!(list[0]["image_id"], 3);
    assert_eq!(list[0]["category_id"], 1);
    assert_eq!(list[1]["category_id"], 10);
    assert_eq!(list[0]["bbox"], serde_json::json!([1.0, 2.0, 4.0, 6.0]));
    assert_eq!(list[1]["score"], 0.125);
    // A NaN score is refused and the old file is left as it was, with no temporary file.
    let bad = [CocoResult::from_xyxy(1, 0, [0.0, 0.0, 1.0, 1.0], f32::NAN)];
    let err = write_coco_results(&path, &bad).unwrap_err().to_string();
    assert!(err.contains("result 0") && err.contains("not finite"), "{err}");
    let after: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap();
    assert_eq!(after, doc);
    assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 1);
    // Into a folder that does not exist: an error naming the file.
    let err = write_coco_results(&dir.path().join("no/such.json"), &r)
        .unwrap_err()
        .to_string();
    assert!(err.contains("such.json"), "{err}");
}
