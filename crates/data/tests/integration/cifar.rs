//! CIFAR-10/100 binary batches.

use super::common::{cifar_bytes, TempDir};
use nabla_data::cifar::{cifar_from_bytes, Cifar};
use nabla_data::{DataError, Dataset, ReadLimits, Split, Target};
use std::path::Path;

#[test]
fn cifar10_directory_with_five_train_batches() {
    let dir = TempDir::new("cifar10");
    let sub = dir.path().join("cifar-10-batches-bin");
    for (k, name) in Cifar::Ten.file_names(Split::Train).iter().enumerate() {
        let labels: Vec<[u8; 1]> = (0..3).map(|i| [((k * 3 + i) % 10) as u8]).collect();
        let refs: Vec<&[u8]> = labels.iter().map(|l| &l[..]).collect();
        std::fs::create_dir_all(&sub).unwrap();
        std::fs::write(sub.join(name), cifar_bytes(&refs)).unwrap();
    }
    let ds = Cifar::Ten
        .load_dir(dir.path(), Split::Train, &ReadLimits::default())
        .unwrap();
    assert_eq!((ds.len(), ds.image_shape()), (15, [3, 32, 32]));
    assert_eq!(ds.labels()[..4], [0, 1, 2, 3]);
    assert_eq!(ds.classes()[9], "truck");
    // Record 1 of the first file: channel planes 0, 50, 100 (+ record index 1).
    let s = ds.get(1).unwrap();
    assert_eq!(
        (s.data[0], s.data[1024], s.data[3071]),
        (1.0 / 255.0, 51.0 / 255.0, 101.0 / 255.0)
    );
    // Class names from the meta file replace the defaults.
    let names: String = (0..10).map(|i| format!("c{i}\n")).collect();
    std::fs::write(sub.join("batches.meta.txt"), names).unwrap();
    let ds = Cifar::Ten.load_dir(&sub, Split::Train, &ReadLimits::default()).unwrap();
    assert_eq!(ds.classes()[3], "c3");
    std::fs::write(sub.join("batches.meta.txt"), "a\nb\n").unwrap();
    let e = Cifar::Ten
        .load_dir(&sub, Split::Train, &ReadLimits::default())
        .unwrap_err();
    assert!(e.to_string().contains("2 class names, expected 10"), "{e}");
    let e = Cifar::Ten
        .load_dir(&sub, Split::Test, &ReadLimits::default())
        .unwrap_err();
    assert!(matches!(e, DataError::NotFound { .. }), "{e}");
}

#[test]
fn cifar100_fine_and_coarse_labels() {
    let dir = TempDir::new("cifar100");
    dir.write("test.bin", &cifar_bytes(&[&[19, 99], &[0, 42]]));
    let fine = Cifar::HundredFine
        .load_dir(dir.path(), Split::Test, &ReadLimits::default())
        .unwrap();
    assert_eq!(fine.labels(), &[99, 42]);
    assert_eq!(fine.classes().len(), 100);
    let coarse = Cifar::HundredCoarse
        .load_dir(dir.path(), Split::Test, &ReadLimits::default())
        .unwrap();
    assert_eq!(coarse.labels(), &[19, 0]);
    assert_eq!(coarse.get(0).unwrap().target, Target::Class(19));
}

#[test]
fn bad_lengths_and_labels_are_refused() {
    let p = Path::new("batch.bin");
    let good = cifar_bytes(&[&[1], &[2]]);
    for len in [0, 1, 3072, 3074, good.len() - 1] {
        match cifar_from_bytes(&good[..len], p, Cifar::Ten) {
            Err(DataError::Format { path, msg }) => {
                assert_eq!(path, p);
                assert!(msg.contains("whole number of 3073-byte records"), "{msg}");
            }
            other => panic!("len {len}: {other:?}"),
        }
    }
    let mut long = good.clone();
    long.push(0);
    assert!(cifar_from_bytes(&long, p, Cifar::Ten).is_err());
    // CIFAR-10 bytes read as CIFAR-100 are not whole records either.
    assert!(cifar_from_bytes(&good, p, Cifar::HundredFine).is_err());
    let bad = cifar_bytes(&[&[1], &[10]]);
    assert!(matches!(
        cifar_from_bytes(&bad, p, Cifar::Ten),
        Err(DataError::LabelOutOfRange {
            index: 1,
            label: 10,
            classes: 10,
            ..
        })
    ));
    let bad = cifar_bytes(&[&[20, 5]]);
    assert!(matches!(
        cifar_from_bytes(&bad, p, Cifar::HundredCoarse),
        Err(DataError::LabelOutOfRange {
            label: 20,
            classes: 20,
            ..
        })
    ));
    assert!(cifar_from_bytes(&bad, p, Cifar::HundredFine).is_ok());
}
