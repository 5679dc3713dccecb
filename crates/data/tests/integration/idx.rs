//! IDX reading: valid files raw and gzipped, and every kind of bad input.

use super::alloc::largest_allocation;
use super::common::{gzip, idx_bytes, idx_pair, TempDir};
use nabla_data::idx::{idx_from_bytes, load_idx_pair, read_idx, IdxArray};
use nabla_data::{DataError, Dataset, MnistFamily, ReadLimits, Split, Target};
use std::path::Path;

fn parse(bytes: &[u8]) -> Result<IdxArray, DataError> {
    idx_from_bytes(bytes, Path::new("x.idx"), &ReadLimits::default())
}

fn format_msg(r: Result<IdxArray, DataError>) -> String {
    match r {
        Err(DataError::Format { path, msg }) => {
            assert_eq!(path, Path::new("x.idx"));
            msg
        }
        other => panic!("expected a format error, got {other:?}"),
    }
}

#[test]
fn raw_and_gzip_give_the_same_array() {
    let bytes = idx_bytes(&[2, 3], &[1, 2, 3, 4, 5, 6]);
    let want = IdxArray {
        dims: vec![2, 3],
        data: vec![1, 2, 3, 4, 5, 6],
    };
    assert_eq!(parse(&bytes).unwrap(), want);
    assert_eq!(parse(&gzip(&bytes)).unwrap(), want);
    let dir = TempDir::new("idx-files");
    let p = dir.write("a.idx.gz", &gzip(&bytes));
    assert_eq!(read_idx(&p, &ReadLimits::default()).unwrap(), want);
}

#[test]
fn header_errors_are_named() {
    assert!(format_msg(parse(&[0, 1, 8, 1, 0, 0, 0, 1, 0])).contains("bad magic"));
    let m = format_msg(parse(&[0, 0, 0x0D, 1, 0, 0, 0, 1, 0, 0, 0, 0]));
    assert!(m.contains("type byte 0x0d") && m.contains("only 0x08"), "{m}");
    let m = format_msg(parse(&[0, 0, 0x42, 1, 0, 0, 0, 1, 0]));
    assert!(m.contains("not an IDX type"), "{m}");
    assert!(format_msg(parse(&[0, 0, 8, 0])).contains("0 dimensions"));
    assert!(format_msg(parse(&[0, 0, 8, 9])).contains("9 dimensions"));
    assert!(format_msg(parse(&[0, 0, 8])).contains("truncated"));
    assert!(format_msg(parse(&[0, 0, 8, 2, 0, 0, 0, 1])).contains("truncated header"));
    assert!(format_msg(parse(&idx_bytes(&[3, 0], &[]))).contains("dimension 1 is zero"));
}

#[test]
fn sizes_must_match_the_bytes_present() {
    let m = format_msg(parse(&idx_bytes(&[2, 3], &[1, 2, 3])));
    assert!(m.contains("declare 6 bytes") && m.contains("3 are present"), "{m}");
    let m = format_msg(parse(&idx_bytes(&[2], &[1, 2, 3])));
    assert!(m.contains("trailing"), "{m}");
    // u32::MAX dimensions: a declared 2^96 bytes overflows u64; 2^64-ish is refused unread.
    let m = format_msg(parse(&idx_bytes(&[u32::MAX, u32::MAX, u32::MAX], &[0])));
    assert!(m.contains("overflows"), "{m}");
    let (r, largest) = largest_allocation(|| parse(&idx_bytes(&[u32::MAX, u32::MAX], &[0; 16])));
    assert!(format_msg(r).contains("only 16 are present"));
    assert!(largest < 4096, "allocated {largest} bytes for a 24-byte file");
}

#[test]
fn gzip_errors() {
    let bytes = idx_bytes(&[4, 4], &[9; 16]);
    let gz = gzip(&bytes);
    // Truncated: cut the trailer, then the middle.
    for cut in [gz.len() - 4, gz.len() / 2] {
        match parse(&gz[..cut]) {
            Err(DataError::Gzip { msg, .. }) => assert!(msg.contains("corrupt or truncated"), "{msg}"),
            Err(DataError::Format { msg, .. }) => assert!(msg.contains("truncated"), "{msg}"),
            other => panic!("cut at {cut}: {other:?}"),
        }
    }
    // A wrong CRC (the trailer's first 4 bytes).
    let mut bad = gz.clone();
    let n = bad.len();
    bad[n - 8] ^= 0xFF;
    assert!(matches!(parse(&bad), Err(DataError::Gzip { .. })), "{:?}", parse(&bad));
    // A wrong length in the trailer.
    let mut bad = gz.clone();
    bad[n - 1] ^= 0x01;
    assert!(matches!(parse(&bad), Err(DataError::Gzip { .. })));
    // Two members: the data split across them.
    let mut two = gzip(&bytes[..10]);
    two.extend(gzip(&bytes[10..]));
    let e = parse(&two).unwrap_err();
    assert!(matches!(e, DataError::Format { .. } | DataError::Gzip { .. }), "{e}");
    // Two members, the first complete: the second is refused.
    let mut two = gz.clone();
    two.extend(gzip(b"more"));
    match parse(&two) {
        Err(DataError::Gzip { msg, .. }) => assert!(msg.contains("several members"), "{msg}"),
        other => panic!("{other:?}"),
    }
}

#[test]
fn gzip_bomb_is_read_through_a_limit() {
    // 64 MiB of zeros compresses to about 64 KiB; the header honestly declares them.
    let n = 8192u32;
    let mut bytes = idx_bytes(&[n, n], &[]);
    bytes.resize(bytes.len() + (n * n) as usize, 0);
    let gz = gzip(&bytes);
    drop(bytes);
    let limits = ReadLimits {
        max_decoded_bytes: 1 << 20,
        ..ReadLimits::default()
    };
    let (r, largest) = largest_allocation(|| idx_from_bytes(&gz, Path::new("bomb.gz"), &limits));
    match r {
        Err(DataError::TooLarge { size, limit, .. }) => assert!(size == 1 << 26 && limit < 1 << 20),
        other => panic!("{other:?}"),
    }
    assert!(largest < 1 << 20, "allocated {largest}");
    // A header that lies small: it declares 16 bytes but 64 MiB follow.
    let mut liar = idx_bytes(&[16], &[]);
    liar.resize(liar.len() + (64 << 20), 0);
    let gz = gzip(&liar);
    let (r, largest) = largest_allocation(|| idx_from_bytes(&gz, Path::new("liar.gz"), &ReadLimits::default()));
    assert!(format_msg_of(r).contains("trailing"));
    assert!(largest < 1 << 20, "allocated {largest}");
}

fn format_msg_of(r: Result<IdxArray, DataError>) -> String {
    match r {
        Err(DataError::Format { msg, .. }) => msg,
        other => panic!("{other:?}"),
    }
}

#[test]
fn pairs_check_counts_labels_and_ranks() {
    let dir = TempDir::new("idx-pairs");
    let (img, lab) = idx_pair(5, 3, 2, 4);
    let ip = dir.write("i.gz", &gzip(&img));
    let lp = dir.write("l", &lab);
    let classes: Vec<String> = (0..4).map(|c| c.to_string()).collect();
    let ds = load_idx_pair(&ip, &lp, classes.clone(), false, &ReadLimits::default()).unwrap();
    assert_eq!((ds.len(), ds.image_shape()), (5, [1, 3, 2]));
    let s = ds.get(2).unwrap();
    assert_eq!(s.target, Target::Class(2));
    assert_eq!(s.data[1], 15.0 / 255.0); // image 2 pixel 1 = 2*7 + 1
                                         // Transposed (EMNIST): pixel (y, x) comes from (x, y).
    let t = load_idx_pair(&ip, &lp, classes.clone(), true, &ReadLimits::default()).unwrap();
    assert_eq!(t.image_shape(), [1, 2, 3]);
    assert_eq!(t.pixels(0).unwrap(), &[0, 2, 4, 1, 3, 5]);

    let lp6 = dir.write("l6", &idx_bytes(&[6], &[0; 6]));
    match load_idx_pair(&ip, &lp6, classes.clone(), false, &ReadLimits::default()) {
        Err(e @ DataError::CountMismatch { left: 5, right: 6, .. }) => {
            let m = e.to_string();
            assert!(m.contains("i.gz") && m.contains("l6"), "{m}");
        }
        other => panic!("{other:?}"),
    }
    let bad = dir.write("lbad", &idx_bytes(&[5], &[0, 1, 2, 9, 0]));
    match load_idx_pair(&ip, &bad, classes.clone(), false, &ReadLimits::default()) {
        Err(DataError::LabelOutOfRange {
            index: 3,
            label: 9,
            classes: 4,
            path,
        }) => assert_eq!(path, bad),
        other => panic!("{other:?}"),
    }
    let flat = dir.write("flat", &idx_bytes(&[30], &[0; 30]));
    let e = load_idx_pair(&flat, &lp, classes.clone(), false, &ReadLimits::default()).unwrap_err();
    assert!(e.to_string().contains("3 dimensions"), "{e}");
    let e = load_idx_pair(&ip, &ip, classes, false, &ReadLimits::default()).unwrap_err();
    assert!(e.to_string().contains("1 dimension"), "{e}");
}

#[test]
fn file_size_limit_is_checked_before_reading() {
    let dir = TempDir::new("idx-limit");
    let p = dir.write("big", &idx_bytes(&[100], &[0; 100]));
    let limits = ReadLimits {
        max_file_bytes: 50,
        ..ReadLimits::default()
    };
    assert!(matches!(
        read_idx(&p, &limits),
        Err(DataError::TooLarge {
            size: 108,
            limit: 50,
            ..
        })
    ));
    let e = read_idx(&dir.path().join("missing"), &limits).unwrap_err();
    assert!(
        matches!(e, DataError::Io { .. }) && e.to_string().contains("missing"),
        "{e}"
    );
}

#[test]
fn family_file_names_and_classes() {
    assert_eq!(
        MnistFamily::Fashion.file_names(Split::Test),
        ["t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte"]
    );
    let e = MnistFamily::Emnist(nabla_data::idx::EmnistSplit::Balanced);
    assert_eq!(e.file_names(Split::Test)[0], "emnist-balanced-test-images-idx3-ubyte");
    assert_eq!(e.classes().len(), 47);
    assert_eq!(
        MnistFamily::Emnist(nabla_data::idx::EmnistSplit::ByClass)
            .classes()
            .len(),
        62
    );
    assert_eq!(
        MnistFamily::Emnist(nabla_data::idx::EmnistSplit::Letters)
            .classes()
            .len(),
        27
    );
    assert_eq!(MnistFamily::Mnist.classes()[3], "3 - three");
    let f = MnistFamily::Fashion.classes();
    assert_eq!(
        (f[0].as_str(), f[9].as_str(), f.len()),
        ("T-shirt/top", "Ankle boot", 10)
    );

    let dir = TempDir::new("idx-family");
    super::common::write_fashion_set(dir.path(), 20, 10);
    assert!(MnistFamily::Fashion.is_in(dir.path()));
    let ds = MnistFamily::Fashion
        .load_dir(dir.path(), Split::Test, &ReadLimits::default())
        .unwrap();
    assert_eq!((ds.len(), ds.classes()[8].as_str()), (10, "Bag"));
    assert_eq!(ds.class_counts(), vec![1; 10]);
    assert!(!MnistFamily::Mnist.is_in(&dir.path().join("nope")));
}
