"""PyTorch side of `nabla-bench localize segment segnet`: the zoo's classloc (spatial
backbone), fcn_small and segnet (crates/models/src/classloc.rs, fcn.rs, segnet.rs) trained
with the recipes `nabla train --task localize|segment` default to, on 2 threads, printing
`key: value unit` lines that nabla-bench reads.

Usage: python scenes.py localize|segment|segnet --data FILE [--epochs N] [--batches B]
  FILE     the scenes nabla-bench generated and wrote (safetensors, f32): `images`
           [N,1,H,W]; `labels` [N] and `boxes` [N,4] (normalized x, y, w, h) for localize;
           `masks` [N,H,W] (0 background, 1 + class) for segment and segnet.
  localize  classloc, spatial backbone: loss cross-entropy + 5.0 * MSE on the box.
  segment   fcn_small: per-pixel cross-entropy (class weights none).
  segnet    segnet: the same loss.
All: batch 32, Adam lr 1e-3 betas (0.9, 0.999), no weight decay (the CLI's cosine schedule
steps per epoch, so the first epoch runs at 1e-3), PyTorch's default initialization (as nabla's),
the scenes shuffled every epoch. Timed: each epoch's batches (gather, forward, loss,
backward, step). Reported: the mean wall seconds per epoch, img/s, the process's CPU seconds
per epoch (`cpu-s`), and the last epoch's mean training loss. --batches B labels the figures
`first B batches` (nabla-bench then writes only B batches of scenes). Threads: 2 (or
NABLA_TORCH_THREADS)."""
import os, sys, time
import torch, torch.nn as nn, torch.nn.functional as F
from st import read_safetensors  # beside this script

# The CLI's default training scenes per task, and its batch.
N_TRAIN, BATCH = {"localize": 20000, "segment": 8000, "segnet": 8000}, 32


def cbr(c_in, c_out, stride=1):
    return [nn.Conv2d(c_in, c_out, 3, stride, 1, bias=False), nn.BatchNorm2d(c_out), nn.ReLU()]


def up(c_in, c_out):
    return nn.Sequential(nn.ConvTranspose2d(c_in, c_out, 3, 2, 1, output_padding=1, bias=False),
                         nn.BatchNorm2d(c_out), nn.ReLU())


class ClassLoc(nn.Module):
    # The spatial backbone: conv-bn-relu 16, 32, 64, 64 with a 2x2 max pool after each,
    # flattened, then a 256-wide linear + relu; one linear head for the classes, one for the box.
    def __init__(self, size, classes=10):
        super().__init__()
        layers, c_prev = [], 1
        for i, c in enumerate([16, 32, 64, 64]):
            if i > 0:
                layers.append(nn.MaxPool2d(2, 2))
            layers += cbr(c_prev, c)
            c_prev = c
        layers.append(nn.MaxPool2d(2, 2))
        self.features = nn.Sequential(*layers)
        self.fc = nn.Sequential(nn.Linear(c_prev * (size[0] // 16) * (size[1] // 16), 256), nn.ReLU())
        self.classifier, self.regressor = nn.Linear(256, classes), nn.Linear(256, 4)

    def forward(self, x):
        f = self.fc(self.features(x).flatten(1))
        return self.classifier(f), self.regressor(f)


class FcnSmall(nn.Module):
    # widths 16, 32, 64, 64: a stem, three stride-2 stages, three transposed-conv
    # upsamplings each added to the encoder's map of that size, a conv-bn-relu and a 1x1 score.
    def __init__(self, classes=11, w=(16, 32, 64, 64)):
        super().__init__()
        self.stem = nn.Sequential(*cbr(1, w[0]))
        self.down = nn.ModuleList(nn.Sequential(*cbr(w[i], w[i + 1], 2), *cbr(w[i + 1], w[i + 1])) for i in range(3))
        self.up = nn.ModuleList(up(w[i + 1], w[i]) for i in reversed(range(3)))
        self.head = nn.Sequential(*cbr(w[0], w[0]), nn.Conv2d(w[0], classes, 1))

    def forward(self, x):
        skips = [self.stem(x)]
        for d in self.down:
            skips.append(d(skips[-1]))
        y = skips.pop()
        for u in self.up:
            s = skips.pop()
            y = u(y)[:, :, :s.shape[2], :s.shape[3]] + s
        return self.head(y)


class SegNet(nn.Module):
    # widths 32, 64, 128: two conv-bn-relu blocks and a 2x2 max pool (indices kept) twice, a
    # stride-2 conv; back by a stride-2 transposed conv, then max-unpooling with the indices.
    def __init__(self, classes=11, w=(32, 64, 128)):
        super().__init__()
        self.enc1 = nn.Sequential(*cbr(1, w[0]), *cbr(w[0], w[0]))
        self.enc2 = nn.Sequential(*cbr(w[0], w[1]), *cbr(w[1], w[1]))
        self.enc3 = nn.Sequential(*cbr(w[1], w[2], 2))
        self.dec3 = up(w[2], w[1])
        self.dec2 = nn.Sequential(*cbr(w[1], w[1]), *cbr(w[1], w[0]))
        self.dec1 = nn.Sequential(*cbr(w[0], w[0]), nn.Conv2d(w[0], classes, 3, 1, 1))

    def forward(self, x):
        e1 = self.enc1(x)
        p1, i1 = F.max_pool2d(e1, 2, 2, return_indices=True)
        e2 = self.enc2(p1)
        p2, i2 = F.max_pool2d(e2, 2, 2, return_indices=True)
        d3 = self.dec3(self.enc3(p2))[:, :, :p2.shape[2], :p2.shape[3]]
        d2 = self.dec2(F.max_unpool2d(d3, i2, 2, 2, output_size=e2.shape[2:]))
        return self.dec1(F.max_unpool2d(d2, i1, 2, 2, output_size=e1.shape[2:]))


def key(model, batches, n_train):
    # The label nabla-bench matches: a whole epoch, or its first `batches` batches.
    return f"{model} epoch" if BATCH * batches >= n_train else f"{model} first {batches} batches"


def train(what, data, epochs, batches):
    t = read_safetensors(data)
    x = t["images"]
    n = len(x)
    if what == "localize":
        model, name = ClassLoc(tuple(x.shape[2:])), "classloc"
        labels, boxes = t["labels"].long(), t["boxes"]

        def loss_of(idx):
            logits, b = model(x[idx])
            return F.cross_entropy(logits, labels[idx]) + 5.0 * F.mse_loss(b, boxes[idx])
    else:
        model, name = (FcnSmall(), "fcn_small") if what == "segment" else (SegNet(), "segnet")
        masks = t["masks"].long()

        def loss_of(idx):
            return F.cross_entropy(model(x[idx]), masks[idx])
    opt = torch.optim.Adam(model.parameters(), lr=1e-3, betas=(0.9, 0.999))
    times, cpu = [], []
    for ep in range(epochs):
        perm = torch.randperm(n)
        model.train()
        total = 0.0
        t0, c0 = time.perf_counter(), time.process_time()
        for i in range(0, n, BATCH):
            idx = perm[i:i + BATCH]
            loss = loss_of(idx)
            opt.zero_grad(); loss.backward(); opt.step()
            total += loss.item() * len(idx)
        times.append(time.perf_counter() - t0); cpu.append(time.process_time() - c0)
        print(f"{name} epoch {ep + 1} of {epochs}: {times[-1]:.2f} s, mean train loss {total / n:.4f}",
              file=sys.stderr)
    s, c = sum(times) / len(times), sum(cpu) / len(cpu)
    print(f"{key(name, batches, N_TRAIN[what])}: {s:.2f} s ({n / s:.0f} img/s), {c:.2f} cpu-s")
    print(f"{name} mean train loss in epoch {epochs}: {total / n:.4f} loss")


if __name__ == "__main__":
    args = sys.argv[1:]
    what = args[0] if args else ""
    if what not in ("localize", "segment", "segnet"):
        sys.exit(f"unknown section {what!r}; use localize, segment or segnet")
    if "--data" not in args:
        sys.exit("--data FILE is needed (the scenes nabla-bench writes)")
    epochs = int(args[args.index("--epochs") + 1]) if "--epochs" in args else 1
    batches = int(args[args.index("--batches") + 1]) if "--batches" in args else 1 << 62
    torch.set_num_threads(int(os.environ.get("NABLA_TORCH_THREADS", "2")))
    torch.manual_seed(0)
    # The ISA ATen dispatches to (ATEN_CPU_CAPABILITY=avx2 lowers it), for the figures' label.
    print(f"torch {torch.__version__}, threads {torch.get_num_threads()}, "
          f"cpu capability {torch.backends.cpu.get_cpu_capability()}")
    train(what, args[args.index("--data") + 1], epochs, batches)
