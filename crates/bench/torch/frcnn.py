"""PyTorch twin of nabla's `fasterrcnn_small` (crates/models/src/fasterrcnn/), for timing a
training step beside nabla's: the same small backbone, anchors, RPN, RoI align box branch,
sampling and losses, built from torchvision's own detection parts (AnchorGenerator,
RPNHead, RegionProposalNetwork, MultiScaleRoIAlign, TwoMLPHead, FastRCNNPredictor,
RoIHeads), with the settings of nabla's FasterRcnnConfig defaults.

Usage: python frcnn.py detector --data FILE [--epochs N] [--batches B]
       python frcnn.py --data FILE [--steps S] [--batch B] [--stride 4|8]
  FILE   safetensors (f32): `images` [N,1,H,W]; `targets` [N, 1 + 5*M]: count, then
         (class, x1, y1, x2, y2) per object (0-based class, xyxy pixels), padded with -1
         (nabla-data's DetectionView layout).
Timed: S training steps (forward, the four losses, backward, Adam lr 1e-3) over batches of
B consecutive images (cycling through the file), after one untimed warm-up step; and one
inference pass over the first batch. Prints `key: value unit` lines. Threads: 2 (or
NABLA_TORCH_THREADS).

`detector` is nabla-bench's section: FILE (written by nabla-bench) also holds nabla's initial
weights as `init.<name>`, which the twin loads, so both sides start from the same weights; N
epochs (default 1) of batch 16 in file order, Adam lr 1e-3. Printed: the mean wall seconds
per epoch, img/s, CPU seconds per epoch, the median step and the last epoch's mean training
loss (the sum of the four losses). --batches B labels the figures `first B batches` (the
file then holds B batches)."""
import os, sys, time
from collections import OrderedDict
import torch, torch.nn as nn
from torchvision.models.detection.anchor_utils import AnchorGenerator
from torchvision.models.detection.image_list import ImageList
from torchvision.models.detection.roi_heads import RoIHeads
from torchvision.models.detection.faster_rcnn import TwoMLPHead, FastRCNNPredictor
from torchvision.models.detection.rpn import RPNHead, RegionProposalNetwork
from torchvision.ops import MultiScaleRoIAlign
from st import read_safetensors  # beside this script


class Small(nn.Module):
    # nabla's SmallBackbone: conv-bn-relu 32 (stride 1), then 64 maps through stride-2
    # layers to the stride, then one more 64-map layer; kaiming-normal fan-out convs.
    def __init__(self, c_in=1, channels=64, stride=4):
        super().__init__()
        spec = [(32, 1)] + [(channels, 2)] * {4: 2, 8: 3}[stride] + [(channels, 1)]
        layers, prev = [], c_in
        for c, s in spec:
            conv = nn.Conv2d(prev, c, 3, s, 1, bias=False)
            nn.init.kaiming_normal_(conv.weight, mode="fan_out", nonlinearity="relu")
            layers += [conv, nn.BatchNorm2d(c), nn.ReLU()]
            prev = c
        self.features = nn.Sequential(*layers)

    def forward(self, x):
        return self.features(x)


class Detector(nn.Module):
    def __init__(self, num_classes=10, stride=4):
        super().__init__()
        self.backbone = Small(stride=stride)
        anchors = AnchorGenerator(sizes=((16, 24, 32, 48),), aspect_ratios=((0.5, 1.0, 2.0),))
        head = RPNHead(64, anchors.num_anchors_per_location()[0])
        self.rpn = RegionProposalNetwork(
            anchors, head, fg_iou_thresh=0.7, bg_iou_thresh=0.3, batch_size_per_image=256,
            positive_fraction=0.5, pre_nms_top_n=dict(training=600, testing=300),
            post_nms_top_n=dict(training=300, testing=100), nms_thresh=0.7, score_thresh=0.0)
        pool = MultiScaleRoIAlign(featmap_names=["0"], output_size=7, sampling_ratio=2)
        box_head = TwoMLPHead(64 * 7 * 7, 256)
        predictor = FastRCNNPredictor(256, num_classes + 1)
        # nabla's predictor init (Detectron's): N(0, 0.01²) scores, N(0, 0.001²) deltas.
        for layer, std in [(predictor.cls_score, 0.01), (predictor.bbox_pred, 0.001)]:
            nn.init.normal_(layer.weight, std=std)
            nn.init.zeros_(layer.bias)
        self.roi_heads = RoIHeads(
            pool, box_head, predictor, fg_iou_thresh=0.5, bg_iou_thresh=0.5, batch_size_per_image=64,
            positive_fraction=0.25, bbox_reg_weights=(10.0, 10.0, 5.0, 5.0), score_thresh=0.05,
            nms_thresh=0.5, detections_per_img=100)

    def forward(self, images, targets=None):
        # No GeneralizedRCNNTransform: nabla's detector takes the images as they are.
        feats = OrderedDict([("0", self.backbone(images))])
        sizes = [tuple(images.shape[-2:])] * images.shape[0]
        il = ImageList(images, sizes)
        proposals, rpn_losses = self.rpn(il, feats, targets)
        dets, roi_losses = self.roi_heads(feats, proposals, sizes, targets)
        return (dets, {**rpn_losses, **roi_losses})


def load_init(model, t):
    # nabla's names are torchvision's, but for the RPN head's conv, which torchvision wraps
    # in Conv2dNormActivation (`conv.0.0.`); the BatchNorm counters stay the twin's own.
    init = {k[len("init."):]: v for k, v in t.items() if k.startswith("init.")}
    state = model.state_dict()
    loaded = 0
    for name, v in state.items():
        if name.endswith("num_batches_tracked"):
            continue
        src = name.replace("rpn.head.conv.0.0.", "rpn.head.conv.")
        if src not in init:
            sys.exit(f"frcnn.py: the file has no initial weight init.{src} (for {name})")
        if tuple(init[src].shape) != tuple(v.shape):
            sys.exit(f"frcnn.py: init.{src} is {tuple(init[src].shape)}, the twin's {name} {tuple(v.shape)}")
        state[name] = init[src]
        loaded += 1
    if loaded != len(init):
        sys.exit(f"frcnn.py: the file has {len(init)} initial weights, the twin took {loaded}")
    model.load_state_dict(state)


def epochs_mode(args):
    # nabla-bench's `detector` section.
    data = args[args.index("--data") + 1] if "--data" in args else sys.exit("frcnn.py detector: --data FILE is required")
    epochs = int(args[args.index("--epochs") + 1]) if "--epochs" in args else 1
    batches = int(args[args.index("--batches") + 1]) if "--batches" in args else None
    torch.set_num_threads(int(os.environ.get("NABLA_TORCH_THREADS", "2")))
    torch.manual_seed(0)
    print(f"torch {torch.__version__}, threads {torch.get_num_threads()}, "
          f"cpu capability {torch.backends.cpu.get_cpu_capability()}")
    t = read_safetensors(data)
    images, targets = t["images"], [decode(r) for r in t["targets"]]
    n, batch = images.shape[0], 16
    model = Detector()
    load_init(model, t)
    adam = torch.optim.Adam(model.parameters(), lr=1e-3)
    model.train()
    secs, cpus, steps = 0.0, 0.0, []
    for ep in range(epochs):
        total = 0.0
        t0, c0 = time.perf_counter(), time.process_time()
        for lo in range(0, n, batch):
            ts = time.perf_counter()
            x, y = images[lo:lo + batch], targets[lo:lo + batch]
            _, losses = model(x, y)
            loss = sum(losses.values())
            adam.zero_grad()
            loss.backward()
            adam.step()
            total += loss.item() * len(x)
            steps.append(time.perf_counter() - ts)
        dt, dc = time.perf_counter() - t0, time.process_time() - c0
        secs, cpus = secs + dt, cpus + dc
        print(f"torch fasterrcnn_small epoch {ep + 1} of {epochs}: {dt:.2f} s, mean train loss {total / n:.4f}",
              file=sys.stderr)
    s, c = secs / epochs, cpus / epochs
    steps.sort()
    key = "fasterrcnn_small epoch" if batches is None else f"fasterrcnn_small first {batches} batches"
    print(f"{key}: {s:.2f} s ({n / s:.1f} img/s), {c:.2f} cpu-s")
    print(f"fasterrcnn_small train step batch {batch}: {steps[len(steps) // 2] * 1e3:.1f} ms (median)")
    print(f"fasterrcnn_small mean train loss in epoch {epochs}: {total / n:.4f} loss")


def decode(row):
    n = int(row[0])
    objs = row[1:1 + 5 * n].reshape(n, 5)
    return {"boxes": objs[:, 1:].clone(), "labels": objs[:, 0].long() + 1}


def main():
    args = sys.argv[1:]
    if args[:1] == ["detector"]:
        return epochs_mode(args[1:])
    opt = {"--steps": "20", "--batch": "32", "--stride": "4"}
    data = None
    i = 0
    while i < len(args):
        if args[i] == "--data":
            data = args[i + 1]
        elif args[i] in opt:
            opt[args[i]] = args[i + 1]
        else:
            sys.exit(f"frcnn.py: unknown argument {args[i]!r}")
        i += 2
    if data is None:
        sys.exit("frcnn.py: --data FILE is required")
    torch.set_num_threads(int(os.environ.get("NABLA_TORCH_THREADS", "2")))
    torch.manual_seed(0)
    steps, batch, stride = int(opt["--steps"]), int(opt["--batch"]), int(opt["--stride"])
    t = read_safetensors(data)
    images, targets = t["images"], [decode(r) for r in t["targets"]]
    n = images.shape[0]
    model = Detector(stride=stride)
    adam = torch.optim.Adam(model.parameters(), lr=1e-3)
    print(f"torch {torch.__version__}, threads {torch.get_num_threads()}, batch {batch}, {n} images")

    def step(k):
        lo = (k * batch) % max(n - batch + 1, 1)
        x, y = images[lo:lo + batch], targets[lo:lo + batch]
        _, losses = model(x, y)
        total = sum(losses.values())
        adam.zero_grad()
        total.backward()
        adam.step()
        return total.item()

    model.train()
    step(0)
    times = []
    c0 = time.process_time()
    for k in range(steps):
        t0 = time.perf_counter()
        loss = step(k + 1)
        times.append(time.perf_counter() - t0)
    cpu = time.process_time() - c0
    times.sort()
    print(f"frcnn train step batch {batch}: {times[len(times) // 2] * 1e3:.1f} ms (median of {steps}), "
          f"{cpu / steps * 1e3:.1f} cpu-ms, last loss {loss:.4f}")
    model.eval()
    with torch.no_grad():
        t0 = time.perf_counter()
        dets, _ = model(images[:batch])
        dt = time.perf_counter() - t0
    print(f"frcnn detect batch {batch}: {dt * 1e3:.1f} ms ({len(dets[0]['boxes'])} detections in image 0)")


if __name__ == "__main__":
    main()
