use super::*;
use std::path::PathBuf;
use std::sync::atomic::{AtomicUsize, Ordering};

/// A file under the system temp dir holding `bytes`, removed on drop.
struct TempFile(PathBuf);

impl TempFile {
    fn new(name: &str, bytes: &[u8]) -> TempFile {
        static N: AtomicUsize = AtomicUsize::new(0);
        let dir = std::env::temp_dir().join(format!(
            "nabla-vectors-{}-{}",
            std::process::id(),
            N.fetch_add(1, Ordering::Relaxed)
        ));
        std::fs::create_dir_all(&dir).unwrap();
        let p = dir.join(name);
        std::fs::write(&p, bytes).unwrap();
        TempFile(p)
    }
}

impl Drop for TempFile {
    fn drop(&mut self) {
        if let Some(d) = self.0.parent() {
            let _ = std::fs::remove_dir_all(d);
        }
    }
}

const WORDS: [(&str, [f32; 3]); 3] = [
    ("bag", [0.5, -1.0, 2.0]),
    ("Shirt", [1.5, 0.25, -0.75]),
    ("the", [0.0, 3.0, -2.0]),
];

fn text_file(header: bool) -> String {
    let mut s = if header { "3 3\n".to_string() } else { String::new() };
    for (w, v) in WORDS {
        s += &format!("{w} {} {} {}\n", v[0], v[1], v[2]);
    }
    s
}

fn binary_file(newlines: bool) -> Vec<u8> {
    let mut b = b"3 3\n".to_vec();
    for (w, v) in WORDS {
        b.extend_from_slice(w.as_bytes());
        b.push(b' ');
        for x in v {
            b.extend_from_slice(&x.to_le_bytes());
        }
        if newlines {
            b.push(b'\n');
        }
    }
    b
}

fn check(v: &WordVectors) {
    assert_eq!((v.len(), v.dim()), (3, 3));
    for (w, want) in WORDS {
        assert_eq!(v.get(w), Some(&want[..]), "{w}");
    }
    // Lower-case lookups find a cased word; unknown words are None.
    assert_eq!(v.get("shirt"), Some(&WORDS[1].1[..]));
    assert_eq!(v.get("coat"), None);
}

#[test]
fn reads_all_three_formats() {
    let lim = ReadLimits::default();
    let w2v = TempFile::new("vec.txt", text_file(true).as_bytes());
    let glove = TempFile::new("glove.6B.3d.txt", text_file(false).as_bytes());
    let bin = TempFile::new("vec.bin", &binary_file(true));
    let bin_tight = TempFile::new("tight.bin", &binary_file(false));
    assert_eq!(
        VectorFormat::detect(&w2v.0, text_file(true).as_bytes()),
        VectorFormat::Word2VecText
    );
    assert_eq!(
        VectorFormat::detect(&glove.0, text_file(false).as_bytes()),
        VectorFormat::Glove
    );
    for f in [&w2v, &glove, &bin, &bin_tight] {
        check(&WordVectors::open(&f.0, &lim).unwrap());
    }
    check(&WordVectors::read(&glove.0, VectorFormat::Glove, &lim).unwrap());
}

#[test]
fn vocab_matrix_pads_copies_and_draws() {
    let v = WordVectors::parse(
        "m.txt".as_ref(),
        text_file(false).as_bytes(),
        VectorFormat::Glove,
        &ReadLimits::default(),
    )
    .unwrap();
    let vocab = Vocab::build(["the bag the shirt", "a coat"], 1);
    // words: specials, the(2), a, bag, coat, shirt
    assert_eq!(vocab.words()[4..], ["the", "a", "bag", "coat", "shirt"]);
    let m = v.vectors_for(&vocab, 5);
    assert_eq!((m.dim, m.data.len(), m.found), (3, 9 * 3, 3));
    assert_eq!(m.missing, ["a", "coat"]);
    let row = |i: usize| &m.data[i * 3..(i + 1) * 3];
    assert_eq!(row(0), [0.0; 3]);
    assert_eq!(row(4), WORDS[2].1);
    assert_eq!(row(6), WORDS[0].1);
    assert_eq!(row(8), WORDS[1].1);
    // σ of the nine values: mean 1/3, population variance computed by hand.
    let vals: Vec<f64> = WORDS.iter().flat_map(|w| w.1).map(|x| x as f64).collect();
    let mean = vals.iter().sum::<f64>() / 9.0;
    let sd = (vals.iter().map(|x| (x - mean).powi(2)).sum::<f64>() / 9.0).sqrt();
    assert!((m.std as f64 - sd).abs() < 1e-6);
    // Random rows: nonzero, seeded (same seed, same rows; another seed, others).
    for i in [1, 2, 3, 5, 7] {
        assert!(row(i).iter().all(|&x| x != 0.0 && x.abs() < 10.0 * m.std), "row {i}");
    }
    assert_eq!(v.vectors_for(&vocab, 5), m);
    assert_ne!(v.vectors_for(&vocab, 6).data, m.data);
}

fn err(name: &str, bytes: &[u8], format: VectorFormat) -> String {
    let f = TempFile::new(name, bytes);
    let e = WordVectors::read(&f.0, format, &ReadLimits::default())
        .unwrap_err()
        .to_string();
    assert!(e.contains(name), "{e}");
    e
}

#[test]
fn bad_files_name_the_file_and_line() {
    use VectorFormat::*;
    let cases: Vec<(&[u8], VectorFormat, &str)> = vec![
        (b"", Glove, "empty"),
        (b"\n \n", Word2VecText, "empty"),
        (
            b"2 3\nbag 1 2 3\nshirt 1 2\n",
            Word2VecText,
            "line 3: \"shirt\" has 2 values, expected 3",
        ),
        (
            b"bag 1 2 3\n\nshirt 1 x 3\n",
            Glove,
            "line 3: value 2 of \"shirt\" is not a finite number: \"x\"",
        ),
        (b"bag 1 nan 3\n", Glove, "line 1: value 2"),
        (
            b"3 3\nbag 1 2 3\n",
            Word2VecText,
            "the header says 3 words, the file has 1",
        ),
        (b"1 3\nbag 1 2 3\nshirt 1 2 3\n", Word2VecText, "line 3: more words"),
        (b"three 3\nbag 1 2 3\n", Word2VecText, "not two integers"),
        (b"1 0\nbag\n", Word2VecText, "dimension 0"),
        (b"1 99999\n", Word2VecText, "dimension 99999"),
        (b"bag\n", Glove, "dimension 0"),
    ];
    for (i, (bytes, format, want)) in cases.into_iter().enumerate() {
        let e = err(&format!("case{i}.txt"), bytes, format);
        assert!(e.contains(want), "case {i}: {e}");
    }
    let full = binary_file(true);
    let e = err("cut.bin", &full[..full.len() - 3], Word2VecBinary);
    assert!(
        e.contains("record 3") && e.contains("truncated: \"the\" needs 12 bytes of values, 10 are left"),
        "{e}"
    );
    let mut short = full.clone();
    short[0] = b'4';
    let e = err("short.bin", &short, Word2VecBinary);
    assert!(e.contains("record 4") && e.contains("file ends after 3"), "{e}");
    let e = err("noheader.bin", b"bag", Word2VecBinary);
    assert!(e.contains("no header line"), "{e}");
    let mut extra = full.clone();
    extra.extend_from_slice(b"junk");
    assert!(err("extra.bin", &extra, Word2VecBinary).contains("data after"));
}

#[test]
fn limits_are_checked_before_allocating() {
    let lim = ReadLimits {
        max_decoded_bytes: 1000,
        ..ReadLimits::default()
    };
    let f = TempFile::new("huge.txt", b"1000000 300\nbag 1 2 3\n");
    let e = WordVectors::read(&f.0, VectorFormat::Word2VecText, &lim)
        .unwrap_err()
        .to_string();
    assert!(e.contains("huge.txt") && e.contains("over the limit of 1000"), "{e}");
    let tiny = ReadLimits {
        max_file_bytes: 10,
        ..ReadLimits::default()
    };
    let f = TempFile::new("big.txt", text_file(false).as_bytes());
    let e = WordVectors::open(&f.0, &tiny).unwrap_err().to_string();
    assert!(e.contains("big.txt") && e.contains("over the limit of 10"), "{e}");
}
