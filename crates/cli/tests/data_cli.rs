//! `nabla data scenes`: what it writes, that it repeats itself, and its one-line errors.

mod common;

use common::{nabla, ok, s, text, write_fake_fashion, TempDir};

#[test]
fn scenes_are_written_in_coco_and_voc_form_and_repeat() {
    let tmp = TempDir::new("data-scenes");
    write_fake_fashion(&tmp.0, 30, 20);
    let d = s(&tmp.0);
    let (a, b) = (tmp.0.join("a"), tmp.0.join("b"));
    let args = |out| {
        vec![
            "data",
            "scenes",
            "--out",
            out,
            "-n",
            "12",
            "--data-dir",
            d,
            "--split",
            "test",
            "--size",
            "48x64",
            "--background",
            "noise",
            "--seed",
            "3",
            "--max-objects",
            "2",
        ]
    };
    let said = ok(&args(s(&a)));
    assert!(said.contains("wrote 12 test scenes (48x64, 1 to 2 items)"), "{said}");
    ok(&args(s(&b)));
    let doc: serde_json::Value = serde_json::from_slice(&std::fs::read(a.join("annotations.json")).unwrap()).unwrap();
    let images = doc["images"].as_array().unwrap();
    assert_eq!(images.len(), 12);
    assert_eq!(
        (images[0]["width"].as_u64(), images[0]["height"].as_u64()),
        (Some(64), Some(48))
    );
    assert_eq!(doc["categories"].as_array().unwrap().len(), 10);
    let anns = doc["annotations"].as_array().unwrap();
    for id in 0..12u64 {
        let n = anns.iter().filter(|a| a["image_id"].as_u64() == Some(id)).count();
        assert!((1..=2).contains(&n), "image {id} has {n} items");
    }
    let classes = std::fs::read_to_string(a.join("classes.txt")).unwrap();
    assert_eq!(classes.lines().count(), 10);
    // The same flags give the same files, byte for byte.
    for f in ["annotations.json", "images/000007.png", "masks/000011.png"] {
        assert_eq!(
            std::fs::read(a.join(f)).unwrap(),
            std::fs::read(b.join(f)).unwrap(),
            "{f}"
        );
    }
    let mask = image::open(a.join("masks/000000.png")).unwrap();
    assert_eq!((mask.width(), mask.height()), (64, 48));
}

#[test]
fn bad_flags_are_one_line_and_write_nothing() {
    let tmp = TempDir::new("data-errors");
    write_fake_fashion(&tmp.0, 10, 10);
    let d = s(&tmp.0);
    let full = tmp.0.join("full");
    std::fs::create_dir_all(&full).unwrap();
    std::fs::write(full.join("x"), "x").unwrap();
    let empty = tmp.0.join("empty");
    std::fs::create_dir_all(&empty).unwrap();
    let out = tmp.0.join("out");
    let o = s(&out);
    let cases: Vec<(Vec<&str>, &str)> = vec![
        (
            vec!["--out", o, "-n", "5", "--max-objects", "0"],
            "--max-objects 0: a scene holds 1 to 254 items",
        ),
        (
            vec!["--out", o, "-n", "5", "--size", "16"],
            "canvas 16x16 is smaller than one item",
        ),
        (vec!["--out", o, "-n", "0"], "-n 0"),
        (vec!["--out", o, "-n", "5", "--size", "64x0"], "not a side"),
        (
            vec!["--out", s(&full), "-n", "5"],
            "already exists and is not an empty folder",
        ),
        (
            vec!["--out", o, "-n", "5", "--data-dir", s(&empty)],
            "Fashion-MNIST is not there",
        ),
    ];
    for (flags, want) in cases {
        let mut args = vec!["data", "scenes"];
        if !flags.contains(&"--data-dir") {
            args.extend(["--data-dir", d]);
        }
        args.extend(flags);
        let r = nabla(&args);
        let err = text(&r.stderr);
        assert_eq!(r.status.code(), Some(1), "{args:?}: {err}");
        assert!(err.contains(want), "{args:?}: {err}");
        assert!(!err.contains("panicked"), "{args:?}: {err}");
        assert!(!out.exists(), "{args:?} left {o}");
    }
}
