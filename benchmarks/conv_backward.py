"""Each convolution of ConvVAE alone: forward, input gradient and weight gradient, in ms.

    python benchmarks/conv_backward.py            # bf16, channels_last, batch 256

Times one oneDNN call at a time (``aten.convolution`` / ``aten.convolution_backward``), median of
30 calls, best of 3 repeats, on random data of the shapes the lecture's VAE sees. A fourth column
computes the input gradient as a *forward* convolution (flipped/transposed weights for a stride-1
conv, a transposed conv for a strided one, a plain conv for a transposed one), checks that it
matches, and times it: the question was whether oneDNN's backward-data kernels are slower than
its forward ones (they are not). The glibc allocator setting of the library is applied first.
"""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable

import torch

from helper_lib.fast.allocator import tune_cpu_allocator

aten = torch.ops.aten
CL = torch.channels_last
BATCH = 256

# name, transposed, C_in, C_out, input size, stride, padding (kernel 3, output padding 0)
LAYERS = [
    ("Conv2d(32, 64), stride 2, 28 -> 14", False, 32, 64, 28, 2, 1),
    ("Conv2d(64, 64), stride 2, 14 -> 7", False, 64, 64, 14, 2, 1),
    ("Conv2d(64, 64), 7 -> 7", False, 64, 64, 7, 1, 1),
    ("ConvTranspose2d(64, 64), 7 -> 7", True, 64, 64, 7, 1, 1),
    ("ConvTranspose2d(64, 64), stride 2, 7 -> 13", True, 64, 64, 7, 2, 1),
    ("ConvTranspose2d(64, 32), stride 2, 13 -> 27", True, 64, 32, 13, 2, 0),
    ("ConvTranspose2d(32, 1), 27 -> 29", True, 32, 1, 27, 1, 0),
]


def _ms(fn: Callable[[], object], calls: int = 30, repeats: int = 3) -> float:
    for _ in range(5):
        fn()
    best = float("inf")
    for _ in range(repeats):
        times = []
        for _ in range(calls):
            t0 = time.perf_counter()
            fn()
            times.append(time.perf_counter() - t0)
        best = min(best, statistics.median(times) * 1e3)
    return best


def measure(transposed: bool, c_in: int, c_out: int, size: int, stride: int, padding: int,
            dtype: torch.dtype = torch.bfloat16) -> dict[str, float]:
    """ms for forward, input gradient (alone and as a forward conv) and weight gradient."""
    x = torch.randn(BATCH, c_in, size, size).to(dtype).contiguous(memory_format=CL)
    w_shape = (c_in, c_out, 3, 3) if transposed else (c_out, c_in, 3, 3)
    w = torch.randn(w_shape).to(dtype).contiguous(memory_format=CL)
    s, p = [stride, stride], [padding, padding]

    def conv(inp: torch.Tensor, weight: torch.Tensor, st: list[int], pad: list[int], tr: bool,
             out_pad: list[int]) -> torch.Tensor:
        return aten.convolution(inp, weight, None, st, pad, [1, 1], tr, out_pad, 1)

    y = conv(x, w, s, p, transposed, [0, 0])
    g = torch.randn_like(y).contiguous(memory_format=CL)

    def backward(mask: list[bool]) -> tuple[torch.Tensor, ...]:
        return aten.convolution_backward(g, x, w, None, s, p, [1, 1], transposed, [0, 0], 1,
                                         mask + [False])

    if transposed:  # the adjoint of a transposed conv is the ordinary conv with the same weight
        as_forward = lambda: conv(g, w, s, p, False, [0, 0])  # noqa: E731
    elif stride == 1:  # a stride-1 conv's adjoint: channels swapped, kernel flipped
        w_adj = w.transpose(0, 1).flip(2, 3).contiguous(memory_format=CL)
        as_forward = lambda: conv(g, w_adj, [1, 1], [2 - padding] * 2, False, [0, 0])  # noqa: E731
    else:  # a strided conv's adjoint is the transposed conv with the same weight
        extra = size - ((g.shape[-1] - 1) * stride - 2 * padding + 3)
        as_forward = lambda: conv(g, w, s, p, True, [extra, extra])  # noqa: E731
    reference = backward([True, False])[0].float()
    error = (as_forward().float() - reference).abs().max() / reference.abs().max()
    if error > 1e-2:
        raise AssertionError(f"input gradient as a forward conv disagrees (rel. error {error:.2e})")
    return {
        "forward": _ms(lambda: conv(x, w, s, p, transposed, [0, 0])),
        "input_grad": _ms(lambda: backward([True, False])),
        "input_grad_as_forward": _ms(as_forward),
        "weight_grad": _ms(lambda: backward([False, True])),
    }


def main() -> None:
    tune_cpu_allocator()
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads, bf16, channels_last, "
          f"batch {BATCH}; median ms")
    print(f"{'layer':46s} {'forward':>8s} {'input gr':>9s} {'as fwd':>7s} {'weight gr':>10s}")
    for name, *config in LAYERS:
        t = measure(*config)
        print(f"{name:46s} {t['forward']:8.2f} {t['input_grad']:9.2f} "
              f"{t['input_grad_as_forward']:7.2f} {t['weight_grad']:10.2f}", flush=True)


if __name__ == "__main__":
    main()
