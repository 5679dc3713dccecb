"""PyTorch side of `nabla-bench autoencoder dcgan`: the zoo's conv autoencoder and DCGAN
(crates/models/src/autoencoder.rs, dcgan.rs) trained with the recipes the CLI defaults use,
on 2 threads, printing `key: value unit` lines that nabla-bench reads.

Usage: python generative.py autoencoder|dcgan [--epochs N] [--batches B] [--samples FILE]
  autoencoder  conv_autoencoder, latent 16, mse on [0,1] pixels, Adam 1e-3 (0.9, 0.999),
               batch 128: seconds per epoch, then the test reconstruction MSE.
  dcgan        generator + discriminator for 1x28x28, latent 100, images in [-1,1], batch
               128, two Adams 2e-4 (0.5, 0.999), nonsaturating BCE-with-logits, K1 = K2 = 1
               as `nabla gan` runs it (one fake batch per step for both players, only G's
               gradients in G's step): seconds per epoch; with --samples, 10,000 images from the trained generator
               (eval mode) are written as the safetensors tensor `images` [N,1,28,28] f32.
--batches B stops every epoch after B batches (quicker timings; the label says so).
Each reports the mean wall seconds per epoch and the process's CPU seconds per epoch
(`cpu-s`, all threads: less sensitive to other work on the machine, though it counts
threads spinning while they wait). Both train on the first 55,000 training images (the CLI holds 5,000 out for validation).
Fashion-MNIST from /usr/share/datasets/fashion-mnist (or FMNIST_DIR). Threads: 2 (or
NABLA_TORCH_THREADS)."""
import gzip, json, os, struct, sys, time
import numpy as np
import torch, torch.nn as nn, torch.nn.functional as F

D = os.environ.get("FMNIST_DIR", "/usr/share/datasets/fashion-mnist")
N_TRAIN = 55000


def idx(path):
    with gzip.open(path, "rb") as f:
        data = f.read()
    nd = struct.unpack(">I", data[:4])[0] & 0xFF
    dims = struct.unpack(">" + "I" * nd, data[4:4 + 4 * nd])
    return np.frombuffer(data, np.uint8, offset=4 + 4 * nd).reshape(dims)


def images(split):
    p = "train" if split == "train" else "t10k"
    x = torch.from_numpy(idx(f"{D}/{p}-images-idx3-ubyte.gz").astype(np.float32) / 255.0).unsqueeze(1)
    return x[:N_TRAIN] if split == "train" else x


def conv_autoencoder(latent=16):
    # 28 -> 14 -> 7 by 3x3 stride-2 pad-1 convolutions; back by transposed ones whose output
    # padding lands on 14 and 28 (as the zoo computes it). PyTorch's default init, as nabla's.
    enc = nn.Sequential(
        nn.Conv2d(1, 16, 3, 2, 1), nn.ReLU(), nn.Conv2d(16, 32, 3, 2, 1), nn.ReLU(),
        nn.Flatten(), nn.Linear(32 * 7 * 7, latent))
    dec = nn.Sequential(
        nn.Linear(latent, 32 * 7 * 7), nn.ReLU(), nn.Unflatten(1, (32, 7, 7)),
        nn.ConvTranspose2d(32, 16, 3, 2, 1, output_padding=1), nn.ReLU(),
        nn.ConvTranspose2d(16, 1, 3, 2, 1, output_padding=1))
    return nn.Sequential(enc, dec)


def dcgan(latent=100):
    g = nn.Sequential(
        nn.ConvTranspose2d(latent, 128, 7, 1, 0, bias=False), nn.BatchNorm2d(128), nn.ReLU(),
        nn.ConvTranspose2d(128, 64, 4, 2, 1, bias=False), nn.BatchNorm2d(64), nn.ReLU(),
        nn.ConvTranspose2d(64, 1, 4, 2, 1, bias=False), nn.Tanh())
    d = nn.Sequential(
        nn.Conv2d(1, 64, 4, 2, 1, bias=False), nn.LeakyReLU(0.2),
        nn.Conv2d(64, 128, 4, 2, 1, bias=False), nn.BatchNorm2d(128), nn.LeakyReLU(0.2),
        nn.Conv2d(128, 1, 7, bias=False), nn.Flatten())
    # DCGAN's initialization: conv weights N(0, 0.02), batch-norm scales N(1, 0.02), shifts 0.
    for m in list(g.modules()) + list(d.modules()):
        if isinstance(m, (nn.Conv2d, nn.ConvTranspose2d)):
            nn.init.normal_(m.weight, 0.0, 0.02)
        elif isinstance(m, nn.BatchNorm2d):
            nn.init.normal_(m.weight, 1.0, 0.02)
            nn.init.zeros_(m.bias)
    return g, d


def autoencoder(epochs, batches):
    xtr, xte = images("train"), images("test")
    model = conv_autoencoder()
    opt = torch.optim.Adam(model.parameters(), lr=1e-3, betas=(0.9, 0.999))
    times, cpu = [], []
    for ep in range(epochs):
        perm = torch.randperm(len(xtr))
        model.train()
        t0, c0 = time.perf_counter(), time.process_time()
        for i in range(0, min(len(xtr), 128 * batches), 128):
            x = xtr[perm[i:i + 128]]
            loss = F.mse_loss(model(x), x)
            opt.zero_grad(); loss.backward(); opt.step()
        times.append(time.perf_counter() - t0); cpu.append(time.process_time() - c0)
        print(f"autoencoder epoch {ep + 1} of {epochs}: {times[-1]:.2f} s, last batch loss {loss.item():.5f}",
              file=sys.stderr)
    model.eval()
    with torch.no_grad():
        se = sum(F.mse_loss(model(xte[i:i + 1000]), xte[i:i + 1000], reduction="sum").item()
                 for i in range(0, len(xte), 1000))
    mse = se / xte.numel()
    s, c = sum(times) / len(times), sum(cpu) / len(cpu)
    print(f"{key('conv_autoencoder', batches, len(xtr))}: {s:.2f} s ({seen(batches, len(xtr)) / s:.0f} img/s), {c:.2f} cpu-s")
    part = f" of {batches} batches" if 128 * batches < len(xtr) else ""
    print(f"conv_autoencoder test mse after {epochs} epochs{part}: {mse:.5f} mse")


def seen(batches, n):
    return min(n, 128 * batches)


def key(model, batches, n):
    # The label nabla-bench matches: a whole epoch, or its first `batches` batches.
    return f"{model} epoch" if 128 * batches >= n else f"{model} first {batches} batches"


def save_images(path, x):
    # The safetensors layout by hand (8-byte little-endian header size, JSON header, data),
    # so the script needs no package beyond torch and numpy.
    data = x.contiguous().numpy().astype("<f4").tobytes()
    header = {"images": {"dtype": "F32", "shape": list(x.shape), "data_offsets": [0, len(data)]}}
    h = json.dumps(header, separators=(",", ":")).encode()
    h += b" " * (-len(h) % 8)
    tmp = path + ".tmp"
    with open(tmp, "wb") as f:
        f.write(struct.pack("<Q", len(h))); f.write(h); f.write(data)
    os.replace(tmp, path)


def gan(epochs, samples, batches):
    xtr = images("train") * 2.0 - 1.0
    g, d = dcgan()
    og = torch.optim.Adam(g.parameters(), lr=2e-4, betas=(0.5, 0.999))
    od = torch.optim.Adam(d.parameters(), lr=2e-4, betas=(0.5, 0.999))
    bce = F.binary_cross_entropy_with_logits
    times, cpu = [], []
    for ep in range(epochs):
        perm = torch.randperm(len(xtr))
        g.train(); d.train()
        t0, c0 = time.perf_counter(), time.process_time()
        for i in range(0, min(len(xtr), 128 * batches), 128):
            real = xtr[perm[i:i + 128]]
            # As `nabla gan` (K1 = K2 = 1): one fake batch serves both steps. D step: real
            # images are 1, the fakes (detached) are 0.
            fake = g(torch.randn(len(real), 100, 1, 1))
            lr_, lf_ = d(real), d(fake.detach())
            loss_d = bce(lr_, torch.ones_like(lr_)) + bce(lf_, torch.zeros_like(lf_))
            od.zero_grad(); loss_d.backward(); od.step()
            # G step, nonsaturating: the fakes scored against 1; only G's gradients are
            # computed (D's weights are frozen for it, as `nabla gan` asks for G's alone).
            for p in d.parameters(): p.requires_grad_(False)
            lg = d(fake)
            loss_g = bce(lg, torch.ones_like(lg))
            og.zero_grad(); loss_g.backward(); og.step()
            for p in d.parameters(): p.requires_grad_(True)
        times.append(time.perf_counter() - t0); cpu.append(time.process_time() - c0)
        print(f"dcgan epoch {ep + 1} of {epochs}: {times[-1]:.2f} s, D loss {loss_d.item():.3f}, "
              f"G loss {loss_g.item():.3f}, D(x) {torch.sigmoid(lr_).mean().item():.3f}, "
              f"D(G(z)) {torch.sigmoid(lf_).mean().item():.3f}", file=sys.stderr)
    s, c = sum(times) / len(times), sum(cpu) / len(cpu)
    print(f"{key('dcgan', batches, len(xtr))}: {s:.2f} s ({seen(batches, len(xtr)) / s:.0f} img/s), {c:.2f} cpu-s")
    if samples:
        g.eval()
        with torch.no_grad():
            x = torch.cat([g(torch.randn(500, 100, 1, 1)) for _ in range(20)])
        save_images(samples, x)
        print(f"dcgan samples: {len(x)} images written to {samples}")


if __name__ == "__main__":
    args = sys.argv[1:]
    what = args[0] if args else ""
    epochs = int(args[args.index("--epochs") + 1]) if "--epochs" in args else 1
    samples = args[args.index("--samples") + 1] if "--samples" in args else None
    batches = int(args[args.index("--batches") + 1]) if "--batches" in args else 1 << 62
    torch.set_num_threads(int(os.environ.get("NABLA_TORCH_THREADS", "2")))
    torch.manual_seed(0)
    print(f"torch {torch.__version__}, threads {torch.get_num_threads()}")
    if what == "autoencoder":
        autoencoder(epochs, batches)
    elif what == "dcgan":
        gan(epochs, samples, batches)
    else:
        sys.exit(f"unknown section {what!r}; use autoencoder or dcgan")
