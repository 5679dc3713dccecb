//! Pascal VOC folders written by the tests.

use super::super::*;
use super::TempDir;
use std::path::Path;

/// An RGB PNG whose pixel (x, y) is (10x, 10y, 7) (so crops can be checked by value).
fn write_png(path: &Path, [h, w]: [usize; 2]) {
    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
    let img = image::RgbImage::from_fn(w as u32, h as u32, |x, y| image::Rgb([10 * x as u8, 10 * y as u8, 7]));
    img.save(path).unwrap();
}

/// A VOC annotation; `size` None leaves `<size>` out.
fn xml(file: &str, size: Option<[usize; 2]>, objects: &[(&str, [f64; 4], bool)]) -> String {
    let mut s = format!("<annotation>\n  <folder>x</folder>\n  <filename>{file}</filename>\n");
    if let Some([h, w]) = size {
        s += &format!("  <size><width>{w}</width><height>{h}</height><depth>3</depth></size>\n");
    }
    for (name, [x0, y0, x1, y1], d) in objects {
        s += &format!(
            "  <object>\n    <name>{name}</name>\n    <difficult>{}</difficult>\n    <bndbox><xmin>{x0}</xmin><ymin>{y0}</ymin><xmax>{x1}</xmax><ymax>{y1}</ymax></bndbox>\n  </object>\n",
            *d as u8
        );
    }
    s + "</annotation>\n"
}

fn write(path: &Path, text: &str) {
    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
    std::fs::write(path, text).unwrap();
}

/// A standard VOC folder: two images of different sizes.
fn standard(dir: &Path) {
    write_png(&dir.join("JPEGImages/a.png"), [6, 8]);
    write_png(&dir.join("JPEGImages/b.png"), [10, 12]);
    write(
        &dir.join("Annotations/a.xml"),
        &xml(
            "a.png",
            Some([6, 8]),
            &[
                ("tree", [1.0, 1.0, 4.0, 3.0], false),
                ("bush", [5.0, 2.0, 8.0, 6.0], true),
            ],
        ),
    );
    write(
        &dir.join("Annotations/b.xml"),
        &xml("b.png", Some([10, 12]), &[("tree", [3.0, 4.0, 12.0, 10.0], false)]),
    );
}

#[test]
fn a_voc_folder_reads_with_continuous_boxes_and_sorted_classes() {
    let dir = TempDir::new("voc");
    standard(dir.path());
    let set = read_voc(dir.path(), None).unwrap();
    assert_eq!(set.classes(), &["bush".to_string(), "tree".to_string()]);
    assert_eq!((set.len(), set.channels(), set.size()), (2, 3, [0, 0]));
    assert_eq!(set.image_size(1).unwrap(), [10, 12]);
    let a = set.get(0).unwrap();
    // VOC pixels 1..=4 in x become the continuous [0, 4).
    assert_eq!(a.boxes, vec![[0.0, 0.0, 4.0, 3.0], [4.0, 1.0, 8.0, 6.0]]);
    assert_eq!((a.labels, a.id, a.size), (vec![1, 0], 0, [6, 8]));
    assert_eq!(set.difficult(0).unwrap(), &[false, true]);
    // Channel-major pixels: red at (x 3, y 2) is 30/255, green 20/255, blue 7/255.
    let at = |c: usize| a.image[c * 48 + 2 * 8 + 3];
    assert_eq!([at(0), at(1), at(2)], [30.0 / 255.0, 20.0 / 255.0, 7.0 / 255.0]);
    // Mixed sizes cannot feed a loader view directly; tiles can.
    let arc: Arc<dyn DetectionSet> = Arc::new(set.clone());
    assert!(DetectionView::new(arc.clone(), 4).is_err());
    let tiles = Tiles::new(arc, [6, 8], [6, 8], 0.5).unwrap();
    assert_eq!(tiles.len(), 1 + 2 * 2);
    // Tile 4: image b at row 4, column 4; b's box [2, 3, 12, 10] becomes [0, 0, 8, 6]
    // (clipped from [-2, -1, 8, 6]: 48 of 70 inside, ≥ 0.5).
    let t4 = tiles.get(4).unwrap();
    assert_eq!(tiles.origin(4).unwrap(), (1, [4, 4]));
    assert_eq!((t4.boxes, t4.labels), (vec![[0.0, 0.0, 8.0, 6.0]], vec![1]));
    assert_eq!(t4.image[0], 40.0 / 255.0); // red at b's column 4
    assert!(DetectionView::new(Arc::new(tiles), 2).is_ok());
}

#[test]
fn the_region_fast_path_matches_the_default_crop() {
    let dir = TempDir::new("voc-region");
    standard(dir.path());
    let set = read_voc(dir.path(), None).unwrap();
    let mem = MemoryDetections::new(vec![set.get(1).unwrap()], set.classes().to_vec()).unwrap();
    for (origin, size) in [([0, 0], [4, 4]), ([7, 9], [5, 5]), ([3, 2], [10, 12])] {
        let fast = set.get_region(1, origin, size).unwrap();
        let slow = mem.get_region(0, origin, size).unwrap();
        assert_eq!(
            (fast.image, fast.boxes),
            (slow.image, slow.boxes),
            "{origin:?} {size:?}"
        );
    }
}

#[test]
fn given_size_resizes_images_and_scales_boxes() {
    let dir = TempDir::new("voc-size");
    standard(dir.path());
    let set = read_voc(dir.path(), Some([3, 4])).unwrap();
    assert_eq!(set.size(), [3, 4]);
    let b = set.get(1).unwrap();
    // b is 10×12 → 3×4: x scaled by 1/3, y by 3/10.
    let want = [2.0 / 3.0, 3.0 * 0.3, 4.0, 3.0];
    assert!(
        b.boxes[0].iter().zip(want).all(|(g, w)| (g - w).abs() < 1e-5),
        "{:?}",
        b.boxes
    );
    assert_eq!(b.image.len(), 3 * 3 * 4);
    assert!(DetectionView::new(Arc::new(set), 2).is_ok());
}

#[test]
fn a_flat_folder_finds_png_beside_a_tiff_name_and_holds_out() {
    let dir = TempDir::new("voc-flat");
    write_png(&dir.path().join("site_1.png"), [8, 8]);
    write_png(&dir.path().join("site_2.png"), [8, 8]);
    // deepforest names the TIFF; the PNG beside it is what gets read.
    write(
        &dir.path().join("site_1.xml"),
        &xml("site_1.tif", Some([8, 8]), &[("Tree", [2.0, 2.0, 5.0, 5.0], false)]),
    );
    write(
        &dir.path().join("site_2.xml"),
        &xml("site_2.png", Some([8, 8]), &[("Tree", [1.0, 1.0, 8.0, 8.0], false)]),
    );
    let set = read_voc(dir.path(), None).unwrap();
    assert_eq!((set.len(), set.size()), (2, [8, 8]));
    assert!(set.files()[0].ends_with("site_1.png"));
    let (train, test) = set.hold_out(&["site_2"]).unwrap();
    assert_eq!((train.len(), test.len()), (1, 1));
    assert_eq!(test.get(0).unwrap().boxes, vec![[0.0, 0.0, 8.0, 8.0]]);
    assert!(set.hold_out(&["site_3"]).unwrap_err().to_string().contains("site_3"));
    assert!(set.hold_out(&["site_1", "site_2.png"]).is_err());
}

/// The error from reading a folder holding one image and `annotation` as its XML.
fn error_for(annotation: &str) -> String {
    let dir = TempDir::new("voc-bad");
    write_png(&dir.path().join("JPEGImages/a.png"), [6, 8]);
    write(&dir.path().join("Annotations/a.xml"), annotation);
    read_voc(dir.path(), None).unwrap_err().to_string()
}

#[test]
fn bad_annotations_are_named_by_file_line_and_element() {
    let e = error_for(&xml("a.png", None, &[]));
    assert!(
        e.contains("a.xml") && e.contains("line 1") && e.contains("<size>"),
        "{e}"
    );
    let e = error_for(&xml("a.png", Some([6, 8]), &[("t", [1.0, 1.0, 9.0, 3.0], false)]));
    assert!(
        e.contains("a.xml: line 5: <object> 0") && e.contains("outside the 8x6 image"),
        "{e}"
    );
    let e = error_for(&xml(
        "a.png",
        Some([6, 8]),
        &[("t", [1.0, 1.0, 2.0, 3.0], false), ("t", [4.0, 1.0, 2.0, 3.0], false)],
    ));
    assert!(e.contains("<object> 1") && e.contains("xmax < xmin"), "{e}");
    let e = error_for(&xml("c.png", Some([6, 8]), &[]));
    assert!(e.contains("unknown image") && e.contains("c.png"), "{e}");
    let e = error_for(&xml("a.png", Some([7, 8]), &[]));
    assert!(e.contains("<size> says 7x8") && e.contains("a.png is 6x8"), "{e}");
    let e = error_for("<annotation><filename>a.png</filename>");
    assert!(e.contains("a.xml") && e.contains("not valid XML"), "{e}");
    let e = error_for(
        &xml("a.png", Some([6, 8]), &[("t", [1.0, 1.0, 2.0, 3.0], false)])
            .replace("<xmin>1</xmin>", "<xmin>one</xmin>"),
    );
    assert!(e.contains("<xmin>one</xmin> is not a number"), "{e}");
    let e = error_for(&xml("../a.png", Some([6, 8]), &[]));
    assert!(e.contains("inside"), "{e}");
}

#[test]
fn missing_folders_empty_sets_and_unknown_classes_are_errors() {
    let dir = TempDir::new("voc-empty");
    let e = read_voc(&dir.path().join("nope"), None).unwrap_err().to_string();
    assert!(e.contains("nope") && e.contains("no such folder"), "{e}");
    let e = read_voc(dir.path(), None).unwrap_err().to_string();
    assert!(e.contains("no annotation .xml") && e.contains("empty"), "{e}");
    standard(dir.path());
    let only_tree = Some(vec!["tree".to_string()]);
    let e = read_voc_with(dir.path(), None, only_tree, &crate::ReadLimits::default())
        .unwrap_err()
        .to_string();
    assert!(
        e.contains("a.xml") && e.contains("<name>bush</name> is not one of the classes"),
        "{e}"
    );
    // An image without objects is a background image, not an error.
    write_png(&dir.path().join("JPEGImages/c.png"), [6, 8]);
    write(&dir.path().join("Annotations/c.xml"), &xml("c.png", Some([6, 8]), &[]));
    let set = read_voc(dir.path(), None).unwrap();
    assert!(set.get(2).unwrap().boxes.is_empty());
}
