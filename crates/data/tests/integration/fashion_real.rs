//! The real Fashion-MNIST, when installed (Debian's `dataset-fashion-mnist`, or NABLA_DATA).

use nabla_data::{Dataset, FashionMnist, Split, FASHION_MNIST_CLASSES};

#[test]
fn real_fashion_mnist_loads_when_installed() {
    let fm = FashionMnist {
        download: false,
        ..FashionMnist::new()
    };
    let dir = match fm.locate() {
        Ok(d) => d,
        Err(e) => {
            eprintln!("notice: Fashion-MNIST is not installed, skipping ({e})");
            assert!(
                std::env::var_os("CI").is_none(),
                "CI must install Fashion-MNIST (apt-get install dataset-fashion-mnist): {e}"
            );
            return;
        }
    };
    eprintln!("Fashion-MNIST found in {}", dir.display());
    for (split, n, per_class) in [(Split::Train, 60_000, 6_000), (Split::Test, 10_000, 1_000)] {
        let ds = fm.load(split).unwrap();
        assert_eq!(ds.len(), n);
        assert_eq!(ds.image_shape(), [1, 28, 28]);
        assert!(ds.labels().iter().all(|&l| l < 10));
        assert_eq!(ds.class_counts(), vec![per_class; 10]);
        assert_eq!(ds.classes(), FASHION_MNIST_CLASSES);
        let s = ds.get(0).unwrap();
        assert!(s.data.iter().all(|v| (0.0..=1.0).contains(v)));
        assert!(s.data.iter().any(|&v| v > 0.5), "the first image is not blank");
    }
}
