//! Image folders: class discovery, decoding, fitting to size, and bad image files.

use super::common::TempDir;
use nabla_data::{DataError, Dataset, Fit, ImageFolder, ReadLimits, Target};

fn png_bytes(w: u32, h: u32, f: impl Fn(u32, u32) -> [u8; 3]) -> Vec<u8> {
    let img = image::RgbImage::from_fn(w, h, |x, y| image::Rgb(f(x, y)));
    let mut out = std::io::Cursor::new(Vec::new());
    img.write_to(&mut out, image::ImageFormat::Png).unwrap();
    out.into_inner()
}

fn jpeg_bytes(w: u32, h: u32, rgb: [u8; 3]) -> Vec<u8> {
    let img = image::RgbImage::from_fn(w, h, |_, _| image::Rgb(rgb));
    let mut out = std::io::Cursor::new(Vec::new());
    img.write_to(&mut out, image::ImageFormat::Jpeg).unwrap();
    out.into_inner()
}

fn sample_tree() -> TempDir {
    let dir = TempDir::new("folder");
    dir.write("cat/a.png", &png_bytes(8, 8, |_, _| [255, 0, 0]));
    dir.write("cat/sub/b.jpg", &jpeg_bytes(16, 8, [0, 255, 0]));
    dir.write("dog/c.PNG", &png_bytes(8, 4, |x, _| [(x * 30) as u8, 0, 0]));
    dir.write("dog/notes.txt", b"not an image");
    dir
}

#[test]
fn classes_items_and_decoding() {
    let dir = sample_tree();
    let ds = ImageFolder::new(dir.path(), [4, 4]).unwrap();
    assert_eq!(ds.classes(), ["cat", "dog"]);
    let names: Vec<_> = ds
        .items()
        .iter()
        .map(|(p, l)| (p.strip_prefix(dir.path()).unwrap().to_string_lossy().into_owned(), *l))
        .collect();
    assert_eq!(
        names,
        [
            ("cat/a.png".to_string(), 0),
            ("cat/sub/b.jpg".to_string(), 0),
            ("dog/c.PNG".to_string(), 1)
        ]
    );
    let red = ds.get(0).unwrap();
    assert_eq!((red.shape.clone(), red.target), (vec![3, 4, 4], Target::Class(0)));
    assert!(red.data[..16].iter().all(|&v| v == 1.0) && red.data[16..].iter().all(|&v| v == 0.0));
    // JPEG is lossy: green within a few levels.
    let green = ds.get(1).unwrap();
    assert!(
        green.data[16..32].iter().all(|&v| v > 0.95),
        "{:?}",
        &green.data[16..32]
    );
    assert!(green.data[..16].iter().all(|&v| v < 0.05));
    // 8×4 → 4×4 by centre crop keeps columns 2..6 unchanged.
    let crop = ds.get(2).unwrap();
    let want: Vec<f32> = (2..6).map(|x| (x * 30) as f32 / 255.0).collect();
    assert_eq!(crop.data[..4], want[..]);
    assert_eq!(crop.data[12..16], want[..]);
    // Stretching squeezes all 8 columns into 4: the row increases from below 60 to above 150.
    let ds = ds.with_fit(Fit::Stretch);
    let s = ds.get(2).unwrap();
    assert_eq!(s.shape, vec![3, 4, 4]);
    assert!(
        s.data[0] < 60.0 / 255.0 && s.data[3] > 150.0 / 255.0,
        "{:?}",
        &s.data[..4]
    );
    assert!(s.data[..4].windows(2).all(|w| w[0] < w[1]));
    let ds = ds.with_channels(1).unwrap();
    assert_eq!(ds.get(2).unwrap().shape, vec![1, 4, 4]);
    // Grayscale red is its luma, about 54.
    let g = ds.get(0).unwrap();
    assert!((g.data[0] * 255.0 - 54.0).abs() <= 1.5, "{}", g.data[0] * 255.0);
    assert!(matches!(ds.get(3), Err(DataError::Index { index: 3, len: 3, .. })));
}

#[test]
fn bad_folders_and_arguments() {
    let dir = TempDir::new("folder-bad");
    assert!(ImageFolder::new(dir.path(), [4, 4])
        .unwrap_err()
        .to_string()
        .contains("no class subfolders"));
    dir.write("empty/readme.txt", b"x");
    let e = ImageFolder::new(dir.path(), [4, 4]).unwrap_err();
    assert!(
        e.to_string().contains("empty") && e.to_string().contains("no .png"),
        "{e}"
    );
    let good = sample_tree();
    assert!(ImageFolder::new(good.path(), [0, 4]).is_err());
    assert!(ImageFolder::new(good.path(), [4, 4]).unwrap().with_channels(2).is_err());
    assert!(matches!(
        ImageFolder::new(&dir.path().join("missing"), [4, 4]),
        Err(DataError::Io { .. })
    ));
}

fn image_error(ds: &ImageFolder, i: usize) -> String {
    match ds.get(i) {
        Err(e @ DataError::Image { .. }) => e.to_string(),
        other => panic!("expected an image error, got {other:?}"),
    }
}

#[test]
fn unreadable_truncated_and_absurd_images() {
    let dir = TempDir::new("folder-corrupt");
    let png = png_bytes(8, 8, |x, y| [x as u8, y as u8, 7]);
    dir.write("a/0-garbage.png", b"this is no png at all");
    dir.write("a/1-truncated.png", &png[..png.len() / 2]);
    // A valid header that declares 100000 × 100000 pixels (the IHDR CRC recomputed).
    let mut huge = png.clone();
    huge[16..20].copy_from_slice(&100_000u32.to_be_bytes());
    huge[20..24].copy_from_slice(&100_000u32.to_be_bytes());
    let mut crc = flate2::Crc::new();
    crc.update(&huge[12..29]);
    huge[29..33].copy_from_slice(&crc.sum().to_be_bytes());
    dir.write("a/2-huge.png", &huge);
    dir.write("a/3-fine.png", &png);
    dir.write("a/4-truncated.jpg", &jpeg_bytes(8, 8, [1, 2, 3])[..20]);
    let ds = ImageFolder::new(dir.path(), [8, 8]).unwrap();
    assert!(image_error(&ds, 0).contains("0-garbage.png"));
    assert!(image_error(&ds, 1).contains("1-truncated.png"));
    let (r, largest) = super::alloc::largest_allocation(|| image_error(&ds, 2));
    assert!(r.contains("2-huge.png"), "{r}");
    assert!(largest < 1 << 24, "allocated {largest} bytes for a huge declared image");
    assert!(ds.get(3).is_ok());
    assert!(image_error(&ds, 4).contains("4-truncated.jpg"));
    // Side and file-size limits.
    let tight = ds.clone().with_limits(ReadLimits {
        max_image_side: 4,
        ..ReadLimits::default()
    });
    assert!(image_error(&tight, 3).contains("3-fine.png"));
    let tiny = ds.with_limits(ReadLimits {
        max_file_bytes: 10,
        ..ReadLimits::default()
    });
    assert!(matches!(tiny.get(3), Err(DataError::TooLarge { .. })));
}
