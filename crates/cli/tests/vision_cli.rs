//! End-to-end tests of `nabla filter` and `nabla match`: the built binary on PNG and CSV
//! files that the tests write, checked against hand-worked numbers.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

const BIN: &str = env!("CARGO_BIN_EXE_nabla");

/// A fresh, empty folder for one test.
fn scratch(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("nabla-vision-cli-{}-{name}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

fn nabla(args: &[&str], dir: &Path) -> Output {
    Command::new(BIN).args(args).current_dir(dir).output().unwrap()
}

fn ok(out: &Output) -> String {
    assert!(out.status.success(), "failed: {}", String::from_utf8_lossy(&out.stderr));
    String::from_utf8(out.stdout.clone()).unwrap()
}

/// Exit code 1 and exactly one stderr line `error: ...` (a mistake in the arguments has
/// clap's usage line after it), which is returned.
fn user_error(out: &Output) -> String {
    assert_eq!(
        out.status.code(),
        Some(1),
        "stdout: {}",
        String::from_utf8_lossy(&out.stdout)
    );
    let err = String::from_utf8(out.stderr.clone()).unwrap();
    let lines: Vec<&str> = err.lines().collect();
    let usage = lines.get(1).is_some_and(|l| l.starts_with("Usage: nabla"));
    assert!(lines.len() == 1 || (lines.len() == 2 && usage), "stderr: {err}");
    assert!(err.starts_with("error: "), "stderr: {err}");
    assert!(!err.contains("panicked"), "stderr: {err}");
    err
}

fn write_gray_png(path: &Path, w: u32, h: u32, px: &[u8]) {
    image::GrayImage::from_raw(w, h, px.to_vec())
        .unwrap()
        .save(path)
        .unwrap();
}

fn read_csv(path: &Path) -> Vec<Vec<f64>> {
    std::fs::read_to_string(path)
        .unwrap()
        .lines()
        .filter(|l| !l.is_empty())
        .map(|l| l.split(',').map(|v| v.parse().unwrap()).collect())
        .collect()
}

fn no_temp_files_left(dir: &Path) {
    for e in std::fs::read_dir(dir).unwrap() {
        let name = e.unwrap().file_name().to_string_lossy().into_owned();
        assert!(!name.ends_with(".tmp"), "left behind: {name}");
    }
}

#[test]
fn box_filter_smooths_a_bright_square() {
    // A white 2×2 square on black, 6×6. Each 3×3 window average is (covered pixels)/9.
    let dir = scratch("box");
    let mut px = vec![0u8; 36];
    for (r, c) in [(2, 2), (2, 3), (3, 2), (3, 3)] {
        px[r * 6 + c] = 255;
    }
    write_gray_png(&dir.join("sq.png"), 6, 6, &px);
    ok(&nabla(
        &[
            "filter", "sq.png", "--kernel", "box:3", "-o", "out.png", "--raw", "raw.csv",
        ],
        &dir,
    ));
    #[rustfmt::skip]
    let counts = [
        0, 0, 0, 0, 0, 0,
        0, 1, 2, 2, 1, 0,
        0, 2, 4, 4, 2, 0,
        0, 2, 4, 4, 2, 0,
        0, 1, 2, 2, 1, 0,
        0, 0, 0, 0, 0, 0,
    ];
    let raw = read_csv(&dir.join("raw.csv"));
    assert_eq!((raw.len(), raw[0].len()), (6, 6));
    for (i, want) in counts.iter().enumerate() {
        assert!((raw[i / 6][i % 6] - *want as f64 / 9.0).abs() < 1e-12, "raw at {i}");
    }
    // A smoothing kernel keeps the picture's range: pixel = round(255·count/9).
    let out = image::open(dir.join("out.png")).unwrap().to_luma8();
    assert_eq!(out.dimensions(), (6, 6));
    for (i, want) in counts.iter().enumerate() {
        assert_eq!(out.as_raw()[i], (255.0 * *want as f64 / 9.0).round() as u8, "pixel {i}");
    }
    // Valid mode keeps only the 4×4 interior.
    ok(&nabla(
        &[
            "filter", "sq.png", "--kernel", "box:3", "--mode", "valid", "-o", "v.csv",
        ],
        &dir,
    ));
    let v = read_csv(&dir.join("v.csv"));
    assert_eq!((v.len(), v[0].len()), (4, 4));
    assert!((v[1][1] - 4.0 / 9.0).abs() < 1e-12);
    no_temp_files_left(&dir);
}

#[test]
fn csv_signals_with_negative_values_and_convolution() {
    let dir = scratch("csv");
    std::fs::write(dir.join("x.csv"), "0,0,0,0\n0,1,-2,0\n0,3,4,0\n").unwrap();
    // Sobel x in valid mode: [[0,0,0],[0,1,-2],[0,3,4]]·sobel = 0 and the next = −5.
    ok(&nabla(
        &[
            "filter", "x.csv", "--kernel", "sobel-x", "--mode", "valid", "--raw", "s.csv",
        ],
        &dir,
    ));
    assert_eq!(read_csv(&dir.join("s.csv")), vec![vec![0.0, -5.0]]);
    // An asymmetric user kernel: convolution reverses it, correlation does not.
    std::fs::write(dir.join("k.csv"), "0,0,1\n").unwrap();
    ok(&nabla(
        &["filter", "x.csv", "--kernel-file", "k.csv", "-o", "corr.csv"],
        &dir,
    ));
    ok(&nabla(
        &[
            "filter",
            "x.csv",
            "--kernel-file",
            "k.csv",
            "--convolve",
            "-o",
            "conv.csv",
        ],
        &dir,
    ));
    assert_eq!(read_csv(&dir.join("corr.csv"))[1], vec![1.0, -2.0, 0.0, 0.0]);
    assert_eq!(read_csv(&dir.join("conv.csv"))[1], vec![0.0, 0.0, 1.0, -2.0]);
    // A 1×3 moving sum along a row: replicate [3 3 | .. | 12 12], reflect [9 6 | .. | 9 6].
    std::fs::write(dir.join("avg.csv"), "1,1,1\n").unwrap();
    std::fs::write(dir.join("sig.csv"), "3,6,9,12\n").unwrap();
    ok(&nabla(
        &[
            "filter",
            "sig.csv",
            "--kernel-file",
            "avg.csv",
            "--border",
            "replicate",
            "-o",
            "m.csv",
        ],
        &dir,
    ));
    assert_eq!(read_csv(&dir.join("m.csv")), vec![vec![12.0, 18.0, 27.0, 33.0]]);
    ok(&nabla(
        &[
            "filter",
            "sig.csv",
            "--kernel-file",
            "avg.csv",
            "--border",
            "reflect",
            "--mode",
            "full",
            "-o",
            "f.csv",
        ],
        &dir,
    ));
    assert_eq!(
        read_csv(&dir.join("f.csv")),
        vec![vec![18.0, 15.0, 18.0, 27.0, 30.0, 27.0]]
    );
    // Edge maps from CSV become pictures stretched over 0..255.
    ok(&nabla(
        &["filter", "x.csv", "--kernel", "laplacian", "-o", "lap.png"],
        &dir,
    ));
    let lap = image::open(dir.join("lap.png")).unwrap().to_luma8();
    assert_eq!(lap.dimensions(), (4, 3));
    assert_eq!(*lap.as_raw().iter().min().unwrap(), 0);
    assert_eq!(*lap.as_raw().iter().max().unwrap(), 255);
}

#[test]
fn color_pictures_are_filtered_per_channel() {
    let dir = scratch("rgb");
    let mut img = image::RgbImage::new(5, 4);
    img.put_pixel(2, 1, image::Rgb([255, 0, 90]));
    img.save(dir.join("c.png")).unwrap();
    ok(&nabla(
        &[
            "filter",
            "c.png",
            "--kernel",
            "gauss:0.8:3",
            "-o",
            "g.png",
            "--raw",
            "g.csv",
        ],
        &dir,
    ));
    let g = image::open(dir.join("g.png")).unwrap();
    assert!(g.color().has_color());
    let g = g.to_rgb8();
    assert_eq!(g.dimensions(), (5, 4));
    let centre = g.get_pixel(2, 1);
    assert!(centre[0] > 0 && centre[1] == 0 && centre[2] > 0 && centre[0] > centre[2]);
    assert_eq!(g.get_pixel(0, 3), &image::Rgb([0, 0, 0]));
    // The raw form holds three channel blocks separated by blank lines.
    let text = std::fs::read_to_string(dir.join("g.csv")).unwrap();
    assert_eq!(text.split("\n\n").count(), 3);
}

#[test]
fn match_finds_a_cut_out_template() {
    // A textured 40×30 picture; the template is its 7×5 patch at x=23, y=11.
    let dir = scratch("match");
    let (w, h) = (40usize, 30usize);
    let mut state = 0x2545_f491_u32;
    let px: Vec<u8> = (0..w * h)
        .map(|_| {
            state ^= state << 13;
            state ^= state >> 17;
            state ^= state << 5;
            (state >> 24) as u8
        })
        .collect();
    write_gray_png(&dir.join("img.png"), w as u32, h as u32, &px);
    let (tx, ty, tw, th) = (23, 11, 7, 5);
    let tpx: Vec<u8> = (0..th)
        .flat_map(|r| (0..tw).map(move |c| (r, c)))
        .map(|(r, c)| px[(ty + r) * w + tx + c])
        .collect();
    write_gray_png(&dir.join("tpl.png"), tw as u32, th as u32, &tpx);
    for extra in [&[][..], &["--zero-mean"][..]] {
        let mut args = vec![
            "match",
            "img.png",
            "tpl.png",
            "--top",
            "2",
            "-o",
            "heat.png",
            "--raw",
            "scores.csv",
        ];
        args.extend_from_slice(extra);
        let stdout = ok(&nabla(&args, &dir));
        let first = stdout.lines().next().unwrap();
        assert!(first.starts_with("#1 x=23 y=11 "), "{stdout}");
        assert!(
            first.contains("score=1.000000") || first.contains("score=0.99999"),
            "{stdout}"
        );
        assert_eq!(stdout.lines().count(), 2);
        let s = read_csv(&dir.join("scores.csv"));
        assert_eq!((s.len(), s[0].len()), (h - th + 1, w - tw + 1));
        assert!((s[ty][tx] - 1.0).abs() < 1e-5);
        assert!(s.iter().flatten().all(|v| (-1.0..=1.0).contains(v)));
        let heat = image::open(dir.join("heat.png")).unwrap().to_rgb8();
        assert_eq!(heat.dimensions(), (w as u32, h as u32));
        // The best box's corner is outlined in green.
        assert_eq!(heat.get_pixel(tx as u32, ty as u32), &image::Rgb([0, 255, 0]));
    }
    no_temp_files_left(&dir);
}

#[test]
fn match_on_csv_x_pattern() {
    // ±1 "X" and a ±1 diagonal: the score is the mean of element-wise products.
    let dir = scratch("xpat");
    let x = "1,-1,-1,-1,1\n-1,1,-1,1,-1\n-1,-1,1,-1,-1\n-1,1,-1,1,-1\n1,-1,-1,-1,1\n";
    std::fs::write(dir.join("x.csv"), x).unwrap();
    std::fs::write(dir.join("d.csv"), "1,-1,-1\n-1,1,-1\n-1,-1,1\n").unwrap();
    let stdout = ok(&nabla(
        &["match", "x.csv", "d.csv", "--top", "3", "--raw", "s.csv"],
        &dir,
    ));
    assert_eq!(stdout.trim(), "#1 x=0 y=0 w=3 h=3 score=1.000000");
    let s = read_csv(&dir.join("s.csv"));
    let want = [
        [1.0, -1.0 / 3.0, 1.0 / 9.0],
        [-1.0 / 3.0, 5.0 / 9.0, -1.0 / 3.0],
        [1.0 / 9.0, -1.0 / 3.0, 1.0],
    ];
    for r in 0..3 {
        for c in 0..3 {
            assert!((s[r][c] - want[r][c]).abs() < 1e-6, "({r},{c}): {}", s[r][c]);
        }
    }
}

#[test]
fn user_errors_are_one_line_with_exit_code_1() {
    let dir = scratch("errors");
    write_gray_png(&dir.join("small.png"), 3, 3, &[10; 9]);
    write_gray_png(&dir.join("big.png"), 4, 2, &[10; 8]);
    let e = user_error(&nabla(&["match", "small.png", "big.png"], &dir));
    assert!(e.contains("larger than the image"), "{e}");
    std::fs::write(dir.join("even.csv"), "1,2\n3,4\n").unwrap();
    let e = user_error(&nabla(
        &["filter", "small.png", "--kernel-file", "even.csv", "-o", "o.png"],
        &dir,
    ));
    assert!(e.contains("odd"), "{e}");
    std::fs::write(dir.join("empty.csv"), "\n\n").unwrap();
    let e = user_error(&nabla(
        &["filter", "small.png", "--kernel-file", "empty.csv", "-o", "o.png"],
        &dir,
    ));
    assert!(e.contains("empty"), "{e}");
    std::fs::write(dir.join("junk.png"), b"not a png at all").unwrap();
    let e = user_error(&nabla(
        &["filter", "junk.png", "--kernel", "box:3", "-o", "o.png"],
        &dir,
    ));
    assert!(e.contains("junk.png"), "{e}");
    user_error(&nabla(&["match", "missing.png", "small.png"], &dir));
    user_error(&nabla(
        &["filter", "small.png", "--kernel", "blur:2", "-o", "o.png"],
        &dir,
    ));
    user_error(&nabla(&["filter", "small.png", "--kernel", "box:3"], &dir));
    user_error(&nabla(
        &["filter", "small.png", "--kernel", "box:3", "-o", "o.gif"],
        &dir,
    ));
    user_error(&nabla(
        &[
            "filter",
            "small.png",
            "--kernel",
            "box:5",
            "--mode",
            "valid",
            "-o",
            "o.png",
        ],
        &dir,
    ));
    user_error(&nabla(&["frobnicate"], &dir));
    user_error(&nabla(&[], &dir));
    // A failed write leaves nothing behind, not even a temporary file.
    user_error(&nabla(
        &["filter", "small.png", "--kernel", "box:3", "-o", "no/such/dir/o.png"],
        &dir,
    ));
    assert!(!dir.join("o.png").exists());
    no_temp_files_left(&dir);
    let help = nabla(&["filter", "--help"], &dir);
    assert!(help.status.success() && String::from_utf8_lossy(&help.stdout).contains("--kernel"));
}
