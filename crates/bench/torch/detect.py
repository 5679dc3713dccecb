"""PyTorch side of `nabla-bench roi_align roi_pool nms`: torchvision.ops on the same inputs
nabla-bench builds (the same generator, below), printing `key: value unit` lines.

Usage: python detect.py roi_align|roi_pool|nms   (other arguments are ignored)
  roi_align  torchvision.ops.roi_align, output 7x7, sampling_ratio 2, aligned=False, on
             [2, 256, 50, 50] at spatial_scale 1/16 and [8, 64, 16, 16] at 1/4, 512 rois
             each: forward alone, then forward + backward (a fixed upstream gradient).
  roi_pool   torchvision.ops.roi_pool on the same maps and rois.
  nms        torchvision.ops.nms on 10,000 boxes in 1,000 clusters of 10 jittered copies
             (so many overlap), IoU threshold 0.5.
Timing: two warm-up calls, then the median of the timed calls. Threads: 2 (or
NABLA_TORCH_THREADS)."""
import os
import sys
import time

import torch
import torchvision
from torchvision.ops import nms, roi_align, roi_pool

MASK = (1 << 64) - 1


class Lcg:
    """The 64-bit LCG nabla-bench's detect.rs uses, so both sides see the same numbers."""

    def __init__(self, seed):
        self.s = seed

    def next(self):
        self.s = (self.s * 6364136223846793005 + 1442695040888963407) & MASK
        return (self.s >> 11) / float(1 << 53)


# (label, map shape, spatial_scale, image side)
MAPS = [("2x256x50x50 scale 1/16", (2, 256, 50, 50), 1 / 16, 800.0),
        ("8x64x16x16 scale 1/4", (8, 64, 16, 16), 1 / 4, 64.0)]
ROIS = 512


def rois_for(n, side, seed):
    """512 rois of random sizes (1/50 to 1/2 of the image side), some across the edge."""
    g, rows = Lcg(seed), []
    for k in range(ROIS):
        w, h = side * (0.02 + 0.48 * g.next()), side * (0.02 + 0.48 * g.next())
        x, y = g.next() * (side - w / 2), g.next() * (side - h / 2)
        rows.append([float(k % n), x, y, x + w, y + h])
    return torch.tensor(rows, dtype=torch.float32)


def values(shape, seed):
    g, n = Lcg(seed), 1
    for d in shape:
        n *= d
    # A cheap spread of values: the timings do not depend on them.
    return (torch.arange(n, dtype=torch.float64) * 0.7548776662 + g.next()).remainder(1.0).float().reshape(shape)


def median_ms(reps, f):
    f()
    f()
    t = []
    for _ in range(reps):
        s = time.perf_counter()
        f()
        t.append(time.perf_counter() - s)
    return sorted(t)[len(t) // 2] * 1e3


def roi_section(op):
    for label, shape, scale, side in MAPS:
        x = values(shape, 1)
        rois = rois_for(shape[0], side, 2)
        if op == "roi_align":
            run = lambda t: roi_align(t, rois, [7, 7], spatial_scale=scale, sampling_ratio=2, aligned=False)
            key = f"roi_align {label} {ROIS} rois 7x7 ratio 2"
        else:
            run = lambda t: roi_pool(t, rois, [7, 7], spatial_scale=scale)
            key = f"roi_pool {label} {ROIS} rois 7x7"
        gy = values((ROIS, shape[1], 7, 7), 3)
        with torch.no_grad():
            ms = median_ms(20, lambda: run(x))
        print(f"{key} fwd: {ms:.3f} ms")
        xg = x.clone().requires_grad_(True)

        def both():
            xg.grad = None
            run(xg).backward(gy)

        print(f"{key} fwd+bwd: {median_ms(10, both):.3f} ms")


def nms_boxes(seed):
    """10,000 boxes: 1,000 objects on an 800x800 image, 10 jittered copies of each."""
    g, boxes, scores = Lcg(seed), [], []
    for _ in range(1000):
        w, h = 20 + 180 * g.next(), 20 + 180 * g.next()
        cx, cy = 800 * g.next(), 800 * g.next()
        for _ in range(10):
            jx, jy = (g.next() - 0.5) * 0.2 * w, (g.next() - 0.5) * 0.2 * h
            sw, sh = w * (0.9 + 0.2 * g.next()), h * (0.9 + 0.2 * g.next())
            x, y = cx + jx, cy + jy
            boxes.append([x - sw / 2, y - sh / 2, x + sw / 2, y + sh / 2])
            scores.append(g.next())
    return torch.tensor(boxes, dtype=torch.float32), torch.tensor(scores, dtype=torch.float32)


def nms_section():
    boxes, scores = nms_boxes(4)
    kept = nms(boxes, scores, 0.5)
    print(f"nms 10000 boxes iou 0.5 kept: {len(kept)} boxes", file=sys.stderr)
    print(f"nms 10000 boxes iou 0.5: {median_ms(20, lambda: nms(boxes, scores, 0.5)):.3f} ms")


if __name__ == "__main__":
    what = sys.argv[1] if len(sys.argv) > 1 else ""
    if what not in ("roi_align", "roi_pool", "nms"):
        sys.exit(f"unknown section {what!r}; use roi_align, roi_pool or nms")
    torch.set_num_threads(int(os.environ.get("NABLA_TORCH_THREADS", "2")))
    print(f"torch {torch.__version__}, torchvision {torchvision.__version__}, threads {torch.get_num_threads()}, "
          f"cpu capability {torch.backends.cpu.get_cpu_capability()}")
    if what == "nms":
        nms_section()
    else:
        roi_section(what)
