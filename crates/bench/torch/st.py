"""The safetensors reader the bench's PyTorch scripts share: the layout by hand (8-byte
little-endian header size, JSON header, data), so they need no package beyond torch and numpy."""
import json, struct
import numpy as np
import torch


def read_safetensors(path):
    """The F32 tensors of the safetensors file at `path`, by name."""
    with open(path, "rb") as f:
        raw = f.read()
    (n,) = struct.unpack("<Q", raw[:8])
    header = json.loads(raw[8:8 + n])
    out = {}
    for name, t in header.items():
        if name == "__metadata__":
            continue
        assert t["dtype"] == "F32", f"{path}: {name} is {t['dtype']}, expected F32"
        a, b = t["data_offsets"]
        out[name] = torch.from_numpy(np.frombuffer(raw, "<f4", (b - a) // 4, 8 + n + a).copy()).reshape(t["shape"])
    return out
