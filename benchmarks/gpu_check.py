"""One epoch of the lecture's VAE on a CUDA GPU, in fp32 and with ``precision="auto"``.

For a lent GPU (the ``device`` tool): checks that both precisions train to the same loss
(within 1 %), and prints the GPU's name, what ``auto`` chose and the seconds per epoch as a
Markdown row for ``benchmarks/README.md``. The data travels as a gzip of the raw MNIST files::

    tar czf mnist.tgz -C ../shared/data MNIST      # here, then on the GPU machine:
    mkdir -p /tmp/d && tar xzf mnist.tgz -C /tmp/d
    python benchmarks/gpu_check.py --data-root /tmp/d

Exits with 1 if the losses disagree, 2 if there is no CUDA device. Nothing in the project needs
a GPU; this only measures one.
"""

from __future__ import annotations

import argparse
import sys
import time

import torch

from helper_lib import ConvVAE, get_dataloaders, set_seed, train_vae
from helper_lib.fast.precision import resolve_precision


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data-root", default=None)
    parser.add_argument("--epochs", type=int, default=1)
    args = parser.parse_args()
    if not torch.cuda.is_available():
        print("no CUDA device here", file=sys.stderr)
        return 2
    device = torch.device("cuda")
    train, _, _ = get_dataloaders("mnist", batch_size=256, root=args.data_root, seed=123)
    results = {}
    for precision in ("fp32", "auto"):
        set_seed(123)
        model = ConvVAE()
        torch.cuda.synchronize()
        t0 = time.perf_counter()
        history = train_vae(model, train, args.epochs, device=device, precision=precision,
                            seed=123, progress=False)
        torch.cuda.synchronize()
        results[precision] = (history.train["total"][-1], time.perf_counter() - t0,
                              resolve_precision(precision, device).name)
    (l32, s32, _), (lauto, sauto, chosen) = results["fp32"], results["auto"]
    gap = abs(lauto - l32) / l32
    name = torch.cuda.get_device_name(device)
    print(f"| {name} | torch {torch.__version__} | fp32: {l32:.3f} in {s32 / args.epochs:.1f} s "
          f"| auto = {chosen}: {lauto:.3f} in {sauto / args.epochs:.1f} s | {gap:.2%} |")
    return 0 if gap < 0.01 else 1


if __name__ == "__main__":
    sys.exit(main())
