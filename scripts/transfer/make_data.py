"""Write the image folders of the transfer-learning table (never committed; run once).

Source: Fashion-MNIST classes 0-4 (all 30,000 training images, the 5,000 test images).
Similar target: Fashion-MNIST classes 5-9, with 10 and with 1,000 labelled training
images per class. Very different target: scikit-learn's 8x8 handwritten digits
(sklearn.datasets.load_digits, 1,797 images) upsampled to 28x28, bright strokes on black as
in Fashion-MNIST, 40 images per class held out for testing, the rest (about 140 per class)
for training, and a 10-per-class subset. Every target has its own test/ folder.

Usage: python scripts/transfer/make_data.py [OUT_DIR]  (default runs/transfer/data)
Needs numpy, Pillow and scikit-learn; Fashion-MNIST is read from $FASHION_MNIST or
/usr/share/datasets/fashion-mnist (the IDX files, raw or .gz).
"""

import gzip
import os
import sys

import numpy as np
from PIL import Image

FASHION = ["t-shirt", "trouser", "pullover", "dress", "coat", "sandal", "shirt", "sneaker", "bag", "ankle-boot"]


def idx(path):
    opener = gzip.open if path.endswith(".gz") else open
    with opener(path, "rb") as f:
        data = f.read()
    dims = data[3]
    shape = [int.from_bytes(data[4 + 4 * i : 8 + 4 * i], "big") for i in range(dims)]
    return np.frombuffer(data, np.uint8, offset=4 + 4 * dims).reshape(shape)


def fashion(root, stem):
    def find(name):
        for cand in (name, name + ".gz"):
            if os.path.exists(os.path.join(root, cand)):
                return os.path.join(root, cand)
        sys.exit(f"{root}: no {name}[.gz] (set FASHION_MNIST)")

    return idx(find(f"{stem}-images-idx3-ubyte")), idx(find(f"{stem}-labels-idx1-ubyte"))


def write(folder, images, labels, names):
    for k, name in enumerate(names):
        os.makedirs(os.path.join(folder, name), exist_ok=True)
    for i, (img, lab) in enumerate(zip(images, labels)):
        Image.fromarray(img).save(os.path.join(folder, names[lab], f"{i:05d}.png"))
    print(f"{folder}: {len(images)} images, {len(names)} classes")


def per_class(labels, n, rng):
    """Indices of the first n of a seeded shuffle of each class."""
    out = []
    for k in np.unique(labels):
        idx_k = np.flatnonzero(labels == k)
        out.extend(rng.permutation(idx_k)[:n])
    return np.sort(np.array(out))


def main():
    out = sys.argv[1] if len(sys.argv) > 1 else "runs/transfer/data"
    root = os.environ.get("FASHION_MNIST", "/usr/share/datasets/fashion-mnist")
    rng = np.random.default_rng(0)
    (xtr, ytr), (xte, yte) = fashion(root, "train"), fashion(root, "t10k")

    src_tr, src_te = ytr < 5, yte < 5
    write(f"{out}/source/train", xtr[src_tr], ytr[src_tr], FASHION[:5])
    write(f"{out}/source/test", xte[src_te], yte[src_te], FASHION[:5])

    tgt_x, tgt_y = xtr[~src_tr], ytr[~src_tr] - 5
    tgt_te_x, tgt_te_y = xte[~src_te], yte[~src_te] - 5
    for n in (10, 1000):
        pick = per_class(tgt_y, n, rng)
        write(f"{out}/fashion{n}/train", tgt_x[pick], tgt_y[pick], FASHION[5:])
        write(f"{out}/fashion{n}/test", tgt_te_x, tgt_te_y, FASHION[5:])

    from sklearn.datasets import load_digits

    d = load_digits()
    # 0..16 ink → 0..255, upsampled to 28×28.
    big = np.stack(
        [
            np.asarray(Image.fromarray((im * 255.0 / 16.0).astype(np.uint8)).resize((28, 28), Image.BILINEAR))
            for im in d.images
        ]
    )
    labels = d.target
    test = per_class(labels, 40, rng)
    train = np.setdiff1d(np.arange(len(labels)), test)
    names = [str(k) for k in range(10)]
    small = train[per_class(labels[train], 10, rng)]
    for tag, pick in (("digits10", small), ("digitsall", train)):
        write(f"{out}/{tag}/train", big[pick], labels[pick], names)
        write(f"{out}/{tag}/test", big[test], labels[test], names)


if __name__ == "__main__":
    main()
