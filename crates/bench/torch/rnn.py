"""PyTorch side of `nabla-bench lstm`: nn.LSTM forward + backward at batch 64, sequence 32,
input 128, hidden 256, 1 and 2 layers, f32, on 2 threads (or NABLA_TORCH_THREADS), printing
`key: value unit` lines that nabla-bench reads. Timed as torch_reference.py times: two
warm-up calls, then the median of 10. One call: the LSTM over a [32, 64, 128] input from
zero states, the sum of its output, backward to every parameter (the input needs no
gradient, as for a first layer), the gradients dropped (set to None).

Usage: python rnn.py lstm"""
import os
import sys
import time

import torch
from torch import nn

T, N, I, H = 32, 64, 128, 256


def median_secs(f, reps=10):
    f()
    f()
    times = []
    for _ in range(reps):
        t = time.perf_counter()
        f()
        times.append(time.perf_counter() - t)
    return sorted(times)[len(times) // 2]


def lstm():
    for layers in (1, 2):
        m = nn.LSTM(I, H, num_layers=layers)
        x = torch.randn(T, N, I)

        def step():
            y, _ = m(x)
            y.sum().backward()
            m.zero_grad(set_to_none=True)

        s = median_secs(step)
        print(f"lstm b{N} t{T} i{I} h{H} l{layers} fwd+bwd: {s * 1e3:.2f} ms")


if __name__ == "__main__":
    what = sys.argv[1] if len(sys.argv) > 1 else ""
    if what != "lstm":
        sys.exit(f"unknown section {what!r}; use lstm")
    torch.set_num_threads(int(os.environ.get("NABLA_TORCH_THREADS", "2")))
    torch.manual_seed(0)
    print(f"torch {torch.__version__}, threads {torch.get_num_threads()}, "
          f"cpu capability {torch.backends.cpu.get_cpu_capability()}")
    lstm()
