"""Training throughput: the course-style loop vs. helper_lib's defaults, on real MNIST.

    VAE_DATA_DIR=../shared/data python benchmarks/train_speed.py --rounds 5 --batches 60
    VAE_DATA_DIR=../shared/data python benchmarks/train_speed.py --numerics --epochs 3
    VAE_DATA_DIR=../shared/data python benchmarks/train_speed.py --levers --batches 40
    VAE_DATA_DIR=../shared/data python benchmarks/train_speed.py --by-isa --rounds 3 --batches 30
    VAE_DATA_DIR=../shared/data python benchmarks/train_speed.py --max-isa AVX2 --rounds 5

Both paths train ``ConvVAE(latent_dim=2)`` with Adam (lr 5e-4), batch 256, the same loss
(MSE summed over pixels + KL summed over latent dims, both averaged over the batch) and the same
seed, for the same number of batches.

* reference: the L17.5 course loop, written here from the lecture: fp32, channels-first,
  ``torchvision.datasets.MNIST`` + ``ToTensor`` + ``DataLoader(shuffle=True)``, plain Adam, a
  ``loss.item()`` on every batch for logging, and torch's stock layers (``course_model``).
* library: exactly what a notebook calls, ``get_dataloaders("mnist", batch_size=256)`` then
  ``train_vae(model, train_loader, epochs=...)`` with all defaults.

Each measurement runs in a fresh worker process and the two alternate (A B A B ...), each pair
giving a ratio, because part of the library's speed-up (the glibc allocator setting in
``helper_lib.fast.allocator.tune_cpu_allocator``) is process-wide and cannot be undone, so a
reference loop sharing the process would silently inherit it. The first batches of each worker are a
warm-up and are not timed.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import statistics
import subprocess
import sys
import time

BATCH = 256
WARMUP = 5


def course_model(model, keep: frozenset[str] = frozenset()):
    """The course's model: ``model`` with helper_lib's layer subclasses swapped for torch's.

    Two of the library's speed levers live in drop-in subclasses of torch's layers, same
    weights and same ``state_dict`` keys: ``ConvTranspose2d`` (adds the bias separately on CPU,
    lever ``"deconv_bias"``) and ``ConvStack`` (an ``nn.Sequential`` that fuses each
    convolution with its LeakyReLU on CPU, lever ``"fused_conv_act"``). The course used the
    stock layers, so the reference does too, with the very same weights. ``keep`` names levers
    to leave in place (for the lever table). The decoder's ``Sigmoid`` (fp32 under autocast) is
    swapped for ``nn.Sigmoid`` too; in fp32, as the course trains, the two are identical.
    """
    from torch import nn

    for parent in list(model.modules()):
        for name, child in list(parent.named_children()):
            if ("deconv_bias" not in keep and isinstance(child, nn.ConvTranspose2d)
                    and type(child) is not nn.ConvTranspose2d):
                stock = nn.ConvTranspose2d(child.in_channels, child.out_channels,
                                           child.kernel_size, child.stride, child.padding)
                stock.load_state_dict(child.state_dict())
                setattr(parent, name, stock)
            elif isinstance(child, nn.Sigmoid) and type(child) is not nn.Sigmoid:
                setattr(parent, name, nn.Sigmoid())
    for parent in list(model.modules()):
        for name, child in list(parent.named_children()):
            if ("fused_conv_act" not in keep and isinstance(child, nn.Sequential)
                    and type(child) is not nn.Sequential):
                setattr(parent, name, nn.Sequential(*child))
    return model


def _reference_worker(batches: int, seed: int) -> dict:
    import torch
    import torch.nn.functional as F
    from torch.utils.data import DataLoader
    from torchvision import datasets, transforms

    from helper_lib.assets.datasets import resolve_data_root
    from helper_lib.models import ConvVAE

    torch.manual_seed(seed)
    dataset = datasets.MNIST(str(resolve_data_root()), train=True, download=False,
                             transform=transforms.ToTensor())
    loader = DataLoader(dataset, batch_size=BATCH, shuffle=True)
    model = course_model(ConvVAE(latent_dim=2))
    optimizer = torch.optim.Adam(model.parameters(), lr=5e-4)
    log = []
    model.train()
    step, t0 = 0, None
    while step < batches + WARMUP:
        for features, _ in loader:
            if step == WARMUP:
                t0 = time.perf_counter()
            encoded, z_mean, z_log_var, decoded = model(features)
            kl_div = -0.5 * torch.sum(1 + z_log_var - z_mean**2 - torch.exp(z_log_var), axis=1)
            kl_div = kl_div.mean()
            pixelwise = F.mse_loss(decoded, features, reduction="none")
            pixelwise = pixelwise.view(features.size(0), -1).sum(axis=1).mean()
            loss = pixelwise + kl_div
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
            log.append(loss.item())
            step += 1
            if step == batches + WARMUP:
                break
    seconds = time.perf_counter() - t0
    return {"images_per_s": batches * BATCH / seconds, "loss_last10": statistics.fmean(log[-10:])}


def _library_worker(batches: int, seed: int, precision: str = "auto") -> dict:
    import torch

    from helper_lib import ConvVAE, get_dataloaders, train_vae

    torch.manual_seed(seed)
    model = ConvVAE(latent_dim=2)
    # A warm-up run, then the timed one: the timed loader is the library's own in-memory
    # loader, restricted to exactly `batches` full batches, so its cost is included.
    warm, _, _ = get_dataloaders("mnist", batch_size=BATCH, seed=seed, train_subset=WARMUP * BATCH)
    timed, _, _ = get_dataloaders("mnist", batch_size=BATCH, seed=seed + 1,
                                  train_subset=batches * BATCH)
    train_vae(model, warm, epochs=1, precision=precision, progress=False, seed=seed)
    t0 = time.perf_counter()
    history = train_vae(model, timed, epochs=1, precision=precision, progress=False)
    seconds = time.perf_counter() - t0
    from helper_lib.fast.precision import resolve_precision

    return {"images_per_s": batches * BATCH / seconds,
            "loss_last10": statistics.fmean(history.batch["total"][-10:]),
            "precision": resolve_precision(precision, torch.device("cpu")).name}


def _peak_worker() -> dict:
    """This machine's matmul peak (GFLOP/s, best of several calls) in fp32 and bf16, and the
    training FLOPs per image of the lecture's VAE (forward + backward, counted by torch)."""
    import torch
    from torch.utils.flop_counter import FlopCounterMode

    from helper_lib import ConvVAE
    from helper_lib.fast.precision import cpu_has_native_bf16

    peaks = {}
    n = 2048
    kinds = [("fp32", torch.float32)]
    if cpu_has_native_bf16():  # emulated bf16 (e.g. under an AVX2 cap) would take minutes
        kinds.append(("bf16", torch.bfloat16))
    for name, dtype in kinds:
        a, b = torch.randn(n, n, dtype=dtype), torch.randn(n, n, dtype=dtype)
        best = float("inf")
        for _ in range(12):
            t0 = time.perf_counter()
            a @ b
            best = min(best, time.perf_counter() - t0)
        peaks[name] = 2 * n**3 / best / 1e9
    # Count on the course's stock layers: the same arithmetic, and ops torch's counter knows.
    model = course_model(ConvVAE(latent_dim=2))
    x = torch.rand(BATCH, 1, 28, 28)
    with FlopCounterMode(display=False) as counter:
        _, mu, logvar, x_hat = model(x)
        loss = (x_hat - x).square().sum() + (mu.square() + logvar.exp() - logvar).sum()
        loss.backward()
    return {"peak_gflops": peaks, "train_flops_per_image": counter.get_total_flops() / BATCH}


#: What the issue asks of the library against the course loop, by CPU kind (utils.cpu_kind).
TARGETS = {"amx": 3.5, "avx512-bf16": 2.0, "avx2": 1.3}


def _full_epoch_worker(seed: int) -> dict:
    """One full 60k epoch through the library's defaults; reports time and peak memory."""
    import torch

    from helper_lib import ConvVAE, get_dataloaders, train_vae

    torch.manual_seed(seed)
    train_loader, _, _ = get_dataloaders("mnist", batch_size=BATCH, seed=seed)
    t0 = time.perf_counter()
    history = train_vae(ConvVAE(), train_loader, epochs=1, progress=False)
    return {"epoch_seconds": time.perf_counter() - t0, "loss": history.train["total"][-1]}


# Each lever row lists the features it switches on; the first eight rows add one lever at a
# time, the "alt:" rows are alternatives measured against the same first row.
_CUMULATIVE = ["channels_last", "bf16", "fused_adam", "allocator", "no_item", "deconv_bias",
               "fused_conv_act"]
LEVERS: dict[str, set[str]] = {
    "in-memory data": set(),
    "+ channels_last": set(_CUMULATIVE[:1]),
    "+ bf16 autocast": set(_CUMULATIVE[:2]),
    "+ fused Adam": set(_CUMULATIVE[:3]),
    "+ allocator tuning": set(_CUMULATIVE[:4]),
    "+ no per-batch .item()": set(_CUMULATIVE[:5]),
    "+ bias outside the transposed convs": set(_CUMULATIVE[:6]),
    "+ conv, bias and LeakyReLU fused": set(_CUMULATIVE),
    "alt: all levers, fp32 (no native bf16)": set(_CUMULATIVE) - {"bf16"},
    "alt: fp32 + oneDNN implicit bf16 convs": (set(_CUMULATIVE) - {"bf16"}) | {"implicit_bf16"},
}


def _lever_worker(batches: int, seed: int, lever: str) -> dict:
    """One row of LEVERS: in-memory data, then the row's levers."""
    import torch

    from helper_lib import ConvVAE, get_dataloaders
    from helper_lib.fast.allocator import tune_cpu_allocator
    from helper_lib.losses import vae_loss

    active = LEVERS[lever]
    if "implicit_bf16" in active:  # oneDNN runs fp32 convolutions and matmuls in bf16 itself
        torch.backends.mkldnn.conv.fp32_precision = "bf16"
        torch.backends.mkldnn.matmul.fp32_precision = "bf16"
    torch.manual_seed(seed)
    train_loader, _, _ = get_dataloaders("mnist", batch_size=BATCH, seed=seed)
    it = iter(train_loader)
    data = [next(it)[0] for _ in range(WARMUP + batches)]
    model = course_model(ConvVAE(), keep=frozenset(active))
    if "channels_last" in active:
        model = model.to(memory_format=torch.channels_last)
        data = [x.contiguous(memory_format=torch.channels_last) for x in data]
    if "allocator" in active:
        tune_cpu_allocator()
    opt = torch.optim.Adam(model.parameters(), lr=5e-4, fused="fused_adam" in active)
    bf16 = "bf16" in active
    sync = "no_item" not in active
    for i, x in enumerate(data):
        if i == WARMUP:
            t0 = time.perf_counter()
        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=bf16):
            _, mu, logvar, x_hat = model(x)
        loss = vae_loss(x_hat, x, mu, logvar).total
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        if sync:
            loss.item()
    return {"images_per_s": batches * BATCH / (time.perf_counter() - t0)}


def _numerics(epochs: int, seed: int) -> dict:
    """Train the same model from the same seed in fp32 and in bf16 for ``epochs`` epochs."""
    import torch

    from helper_lib import ConvVAE, get_dataloaders, train_vae

    out = {}
    for precision in ("fp32", "bf16"):
        torch.manual_seed(seed)
        loader, _, _ = get_dataloaders("mnist", batch_size=BATCH, seed=seed)
        history = train_vae(ConvVAE(), loader, epochs=epochs, precision=precision, seed=seed,
                            progress=False)
        out[precision] = {"epoch_means": history.train["total"],
                          "seconds": sum(history.epoch_seconds)}
    last32, last16 = out["fp32"]["epoch_means"][-1], out["bf16"]["epoch_means"][-1]
    out["relative_difference"] = abs(last16 - last32) / last32
    return out


def _spawn(args: list[str], env: dict[str, str] | None = None) -> dict:
    result = subprocess.run([sys.executable, __file__, *args], capture_output=True, text=True,
                            check=True, env=env)
    return json.loads(result.stdout.strip().splitlines()[-1])


# oneDNN's instruction-set cap (ONEDNN_MAX_CPU_ISA) stands in for CPUs this machine is not. It only
# limits oneDNN (the convolutions and matmuls), not torch's own element-wise kernels.
ISA_CAPS: dict[str, str | None] = {
    "AMX (this CPU, no cap)": None,
    "AVX512-BF16, no AMX": "AVX512_CORE_BF16",  # e.g. Cooper Lake, AMD Zen 4
    "AVX-512 without bf16": "AVX512_CORE",  # e.g. Ice Lake / Tiger Lake laptops: bf16 emulated
}


def _by_isa(rounds: int, batches: int, seed: int) -> None:
    """The library path in fp32 and in bf16 under each cap of ISA_CAPS, interleaved."""
    rates = {(cap, p): [] for cap in ISA_CAPS for p in ("fp32", "bf16")}
    for _ in range(rounds):
        for cap, precision in rates:
            env = {k: v for k, v in os.environ.items() if k != "ONEDNN_MAX_CPU_ISA"}
            if ISA_CAPS[cap] is not None:
                env["ONEDNN_MAX_CPU_ISA"] = ISA_CAPS[cap]
            out = _spawn(["--worker", "library", "--precision", precision, "--batches",
                          str(batches), "--seed", str(seed)], env=env)
            rates[cap, precision].append(out["images_per_s"])
    for cap in ISA_CAPS:
        fp32, bf16 = rates[cap, "fp32"], rates[cap, "bf16"]
        per_round = [b / f for f, b in zip(fp32, bf16, strict=True)]
        print(f"{cap:24s} fp32 {_summary(fp32)}\n{'':24s} bf16 {_summary(bf16)}   "
              f"bf16/fp32 median {statistics.median(per_round):.2f} "
              f"({min(per_round):.2f}-{max(per_round):.2f})")


def _summary(values: list[float]) -> str:
    return (f"median {statistics.median(values):8.1f}   min {min(values):8.1f}   "
            f"max {max(values):8.1f}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rounds", type=int, default=5, help="A/B pairs")
    parser.add_argument("--batches", type=int, default=60, help="timed batches per run")
    parser.add_argument("--seed", type=int, default=123)
    parser.add_argument("--numerics", action="store_true",
                        help="compare fp32 and bf16 training losses after --epochs epochs")
    parser.add_argument("--epochs", type=int, default=3)
    parser.add_argument("--full-epoch", action="store_true",
                        help="time one full epoch of the library path and report peak RSS")
    parser.add_argument("--levers", action="store_true",
                        help="throughput as each lever is added, one after another")
    parser.add_argument("--max-isa", choices=["AVX2", "AVX512_CORE"],
                        help="run both sides of the A/B comparison with oneDNN (and, for AVX2, "
                             "torch's own kernels) capped at this instruction set, standing in "
                             "for a CPU without AMX")
    parser.add_argument("--by-isa", action="store_true",
                        help="library in fp32 vs. bf16 with oneDNN capped at lower instruction "
                             "sets (ONEDNN_MAX_CPU_ISA): where does bf16 pay off?")
    parser.add_argument("--worker", choices=["reference", "library", "full", "lever", "peak"],
                        help=argparse.SUPPRESS)
    parser.add_argument("--lever", help=argparse.SUPPRESS)
    parser.add_argument("--precision", default="auto", help=argparse.SUPPRESS)
    args = parser.parse_args()

    if args.worker:
        if args.worker == "reference":
            out = _reference_worker(args.batches, args.seed)
        elif args.worker == "library":
            out = _library_worker(args.batches, args.seed, args.precision)
        elif args.worker == "lever":
            out = _lever_worker(args.batches, args.seed, args.lever)
        elif args.worker == "peak":
            out = _peak_worker()
        else:
            out = _full_epoch_worker(args.seed)
        out["peak_rss_mb"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
        print(json.dumps(out))
        return

    import torch

    from helper_lib.fast.precision import cpu_kind, resolve_precision
    from helper_lib.tools.cli import _device_name

    kind = cpu_kind()
    print(f"{_device_name(torch.device('cpu'))}; torch {torch.__version__}, "
          f"{torch.get_num_threads()} threads; CPU kind {kind!r}, so precision='auto' is "
          f"{resolve_precision('auto', torch.device('cpu')).name}"
          + (" (without a cap; each worker reports its own)" if args.max_isa else ""))
    if args.numerics:
        result = _numerics(args.epochs, args.seed)
        for precision in ("fp32", "bf16"):
            means = ", ".join(f"{v:.3f}" for v in result[precision]["epoch_means"])
            print(f"{precision}: epoch means {means}  ({result[precision]['seconds']:.0f} s)")
        print(f"final-epoch relative difference: {100 * result['relative_difference']:.2f} %")
        return
    if args.full_epoch:
        out = _spawn(["--worker", "full", "--seed", str(args.seed)])
        print(f"library, one full epoch: {out['epoch_seconds']:.1f} s, "
              f"peak RSS {out['peak_rss_mb']:.0f} MB, loss {out['loss']:.2f}")
        return
    if args.by_isa:
        _by_isa(args.rounds, args.batches, args.seed)
        return
    if args.levers:
        levers = list(LEVERS)
        rates: dict[str, list[float]] = {lever: [] for lever in levers}
        for _ in range(args.rounds):
            for lever in levers:
                out = _spawn(["--worker", "lever", "--lever", lever,
                              "--batches", str(args.batches), "--seed", str(args.seed)])
                rates[lever].append(out["images_per_s"])
        base = statistics.median(rates[levers[0]])
        for lever in levers:
            med = statistics.median(rates[lever])
            print(f"{lever:40s} images/s {_summary(rates[lever])}   x{med / base:.2f}")
        return

    env = None
    if args.max_isa:
        env = {**os.environ, "ONEDNN_MAX_CPU_ISA": args.max_isa}
        if args.max_isa == "AVX2":
            env["ATEN_CPU_CAPABILITY"] = "avx2"
        print(f"capped: ONEDNN_MAX_CPU_ISA={args.max_isa}, "
              f"ATEN_CPU_CAPABILITY={env.get('ATEN_CPU_CAPABILITY', '(unset)')}")
    ref, lib, ratios = [], [], []
    for i in range(args.rounds):
        a = _spawn(["--worker", "reference", "--batches", str(args.batches),
                    "--seed", str(args.seed)], env=env)
        b = _spawn(["--worker", "library", "--batches", str(args.batches),
                    "--seed", str(args.seed)], env=env)
        ref.append(a["images_per_s"])
        lib.append(b["images_per_s"])
        ratios.append(b["images_per_s"] / a["images_per_s"])
        print(f"round {i + 1}: reference {a['images_per_s']:7.1f} img/s "
              f"(loss {a['loss_last10']:.2f}) | library {b['images_per_s']:7.1f} img/s "
              f"(loss {b['loss_last10']:.2f}, {b['precision']})"
              f" | ratio {ratios[-1]:.2f}", flush=True)
    print(f"reference images/s  {_summary(ref)}")
    print(f"library   images/s  {_summary(lib)}")
    print(f"ratio library/reference: median {statistics.median(ratios):.2f} "
          f"(min {min(ratios):.2f}, max {max(ratios):.2f}) over {args.rounds} pairs; "
          f"{args.batches} timed batches of {BATCH} each")
    print(f"per 60k epoch at the median: reference {60000 / statistics.median(ref):.1f} s, "
          f"library {60000 / statistics.median(lib):.1f} s")
    kind = cpu_kind() if env is None else {"AVX2": "avx2", "AVX512_CORE": "avx512"}[args.max_isa]
    target = TARGETS.get(kind)
    met = target is not None and statistics.median(ratios) >= target
    verdict = ("no target for this kind" if target is None else
               f"target >= {target}x: {'met' if met else 'NOT met'}")
    print(f"case: CPU kind {kind!r} -> {verdict}")
    peak = _spawn(["--worker", "peak"], env=env)
    precision = b["precision"]
    rate = peak["train_flops_per_image"] * statistics.median(lib) / 1e9
    print(f"training work {peak['train_flops_per_image'] / 1e6:.1f} MFLOP per image; library "
          f"{rate:.0f} GFLOP/s = {100 * rate / peak['peak_gflops'][precision]:.0f} % of this "
          f"machine's {precision} matmul peak ({peak['peak_gflops'][precision]:.0f} GFLOP/s; "
          + ", ".join(f"{k} {v:.0f}" for k, v in peak["peak_gflops"].items()) + ")")


if __name__ == "__main__":
    main()
