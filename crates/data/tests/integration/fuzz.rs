//! Seeded random corruptions of valid IDX and CIFAR files: the readers must answer each with a
//! value or a typed error naming the file, never a panic or an allocation beyond the input's size.

use super::alloc::largest_allocation;
use super::common::{cifar_bytes, gzip, idx_bytes, idx_pair, TempDir};
use nabla_core::Generator;
use nabla_data::cifar::{cifar_from_bytes, Cifar};
use nabla_data::idx::{idx_from_bytes, load_idx_pair};
use nabla_data::{DataError, Dataset, ReadLimits};
use std::collections::BTreeMap;
use std::path::Path;

fn corrupt(base: &[u8], g: &mut Generator) -> Vec<u8> {
    let mut v = base.to_vec();
    let pick = |g: &mut Generator, n: usize| g.below(n.max(1) as u64) as usize;
    match g.below(7) {
        0 => {
            for _ in 0..1 + pick(g, 8) {
                let i = pick(g, v.len());
                v[i] ^= 1 << pick(g, 8);
            }
        }
        1 => v.truncate(pick(g, v.len())),
        2 => {
            let i = pick(g, v.len().min(16));
            v[i] = g.next_u64() as u8;
        }
        3 => {
            // A dimension or length field replaced by an extreme or random value.
            let i = 4 * pick(g, (v.len() / 4).min(4));
            let val = [0u32, 1, u32::MAX, 1 << 31, g.next_u64() as u32][pick(g, 5)];
            if i + 4 <= v.len() {
                v[i..i + 4].copy_from_slice(&val.to_be_bytes());
            }
        }
        4 => v.extend((0..1 + pick(g, 40)).map(|_| g.next_u64() as u8)),
        5 => {
            let i = pick(g, v.len() + 1);
            let junk: Vec<u8> = (0..1 + pick(g, 20)).map(|_| g.next_u64() as u8).collect();
            v.splice(i..i, junk);
        }
        _ => {
            let a = pick(g, v.len());
            let b = a + pick(g, v.len() - a);
            v.drain(a..b);
        }
    }
    v
}

fn kind(e: &DataError) -> &'static str {
    match e {
        DataError::Format { .. } => "format",
        DataError::Gzip { .. } => "gzip",
        DataError::TooLarge { .. } => "too large",
        DataError::LabelOutOfRange { .. } => "label",
        DataError::CountMismatch { .. } => "count",
        DataError::Io { .. } => "io",
        _ => "other",
    }
}

#[test]
fn corrupted_idx_files() {
    let (img, lab) = idx_pair(6, 5, 4, 10);
    let bases = [img.clone(), gzip(&img), lab.clone(), gzip(&lab)];
    // Gzip members whose *content* is corrupted: a valid stream around a broken IDX file.
    let mut g = Generator::new(2024);
    let mut outcomes: BTreeMap<&str, usize> = BTreeMap::new();
    let origin = Path::new("fuzz/case.idx");
    for case in 0..400 {
        let base = &bases[case % 4];
        let bytes = if case % 8 == 5 {
            gzip(&corrupt(&img, &mut g))
        } else {
            corrupt(base, &mut g)
        };
        let (r, largest) = largest_allocation(|| idx_from_bytes(&bytes, origin, &ReadLimits::default()));
        let bound = 512 * 1024 + 2 * bytes.len();
        assert!(
            largest <= bound,
            "case {case}: allocated {largest} for {} bytes",
            bytes.len()
        );
        match r {
            Ok(a) => {
                assert!(a.dims.iter().all(|&d| d > 0), "case {case}: {:?}", a.dims);
                assert_eq!(a.data.len(), a.dims.iter().product::<usize>(), "case {case}");
                *outcomes.entry("ok").or_default() += 1;
            }
            Err(e) => {
                assert!(e.to_string().contains("fuzz/case.idx"), "case {case}: {e}");
                *outcomes.entry(kind(&e)).or_default() += 1;
            }
        }
    }
    for k in ["ok", "format", "gzip"] {
        assert!(outcomes.get(k).copied().unwrap_or(0) >= 5, "{outcomes:?}");
    }
}

#[test]
fn corrupted_label_files_against_valid_images() {
    let dir = TempDir::new("fuzz-pairs");
    let (img, lab) = idx_pair(6, 5, 4, 10);
    let ip = dir.write("images.idx", &img);
    let classes: Vec<String> = (0..10).map(|c| c.to_string()).collect();
    let mut g = Generator::new(7);
    let mut outcomes: BTreeMap<&str, usize> = BTreeMap::new();
    for case in 0..150 {
        let lp = dir.write("labels.idx", &corrupt(&lab, &mut g));
        match load_idx_pair(&ip, &lp, classes.clone(), false, &ReadLimits::default()) {
            Ok(ds) => {
                assert_eq!(ds.len(), 6);
                assert!(ds.labels().iter().all(|&l| l < 10), "case {case}");
                *outcomes.entry("ok").or_default() += 1;
            }
            Err(e) => {
                assert!(e.to_string().contains("labels.idx"), "case {case}: {e}");
                *outcomes.entry(kind(&e)).or_default() += 1;
            }
        }
    }
    for k in ["ok", "format", "label"] {
        assert!(outcomes.get(k).copied().unwrap_or(0) >= 1, "{outcomes:?}");
    }
    // And the images corrupted against valid labels.
    let lp = dir.write("labels.idx", &lab);
    for case in 0..100 {
        let ip = dir.write("images.idx", &corrupt(&img, &mut g));
        if let Ok(ds) = load_idx_pair(&ip, &lp, classes.clone(), false, &ReadLimits::default()) {
            let per: usize = ds.image_shape().iter().product();
            assert!(
                (0..ds.len()).all(|i| ds.get(i).unwrap().data.len() == per),
                "case {case}"
            );
        }
    }
}

#[test]
fn corrupted_cifar_files() {
    let ten = cifar_bytes(&[&[1], &[9], &[0]]);
    let hundred = cifar_bytes(&[&[19, 99], &[3, 0]]);
    let mut g = Generator::new(99);
    let mut outcomes: BTreeMap<&str, usize> = BTreeMap::new();
    let origin = Path::new("fuzz/batch.bin");
    for case in 0..300 {
        let (kind_, base, classes) = match case % 3 {
            0 => (Cifar::Ten, &ten, 10),
            1 => (Cifar::HundredFine, &hundred, 100),
            _ => (Cifar::HundredCoarse, &hundred, 20),
        };
        let bytes = corrupt(base, &mut g);
        let (r, largest) = largest_allocation(|| cifar_from_bytes(&bytes, origin, kind_));
        assert!(largest <= 2 * bytes.len() + 4096, "case {case}: allocated {largest}");
        match r {
            Ok(ds) => {
                let rec = if kind_ == Cifar::Ten { 3073 } else { 3074 };
                assert_eq!(ds.len() * rec, bytes.len(), "case {case}");
                assert!(ds.labels().iter().all(|&l| l < classes), "case {case}");
                *outcomes.entry("ok").or_default() += 1;
            }
            Err(e) => {
                assert!(e.to_string().contains("fuzz/batch.bin"), "case {case}: {e}");
                *outcomes.entry(kind(&e)).or_default() += 1;
            }
        }
    }
    for k in ["ok", "format", "label"] {
        assert!(outcomes.get(k).copied().unwrap_or(0) >= 3, "{outcomes:?}");
    }
    // A valid file with a huge declared dimension and no data allocates nothing large.
    let (r, largest) =
        largest_allocation(|| idx_from_bytes(&idx_bytes(&[60_000, 28, 28], &[]), origin, &ReadLimits::default()));
    assert!(r.is_err() && largest < 4096);
}
