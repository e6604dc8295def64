"""Command line: ``python -m helper_lib {train,evaluate,sample,figures,compare,film,book,export,
doctor,grade,autograder,manifest} ...``.

Examples::

    python -m helper_lib doctor          # can a notebook run here? (exit status 0 if so)
    python -m helper_lib train --model vae --epochs 50 --out runs/vae
    python -m helper_lib evaluate runs/vae/model.pt --k 100
    python -m helper_lib sample runs/vae/model.pt --n 100 --out runs/vae/samples.png
    python -m helper_lib export --out build/onnx   # the live explorer's models (docs/site.md)
    python -m helper_lib grade SUBMISSIONS --out grades   # a class's notebooks (docs/grading.md)
    python -m helper_lib grade SUBMISSIONS --out g1 --shard 1/2   # ... on two machines,
    python -m helper_lib grade merge g1 g2 --out grades           # then merged
    python -m helper_lib autograder --out autograder.zip --notebook 03   # for Gradescope
"""

from __future__ import annotations

import argparse
import json
import os
import shlex
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import torch
from torch import nn

from ..analysis.report import evaluation_report
from ..assets.datasets import DatasetCorruptError, DatasetNotFoundError
from ..assets.downloads import DownloadError
from ..checkpoints import (
    CheckpointError,
    load_checkpoint,
    load_model,
    remove_partial_writes,
    save_checkpoint,
    write_sha256,
)
from ..data import get_dataloaders
from ..evaluate import REFERENCE_EVAL, evaluate_model, model_device, reference_eval
from ..fast.precision import resolve_precision
from ..history import History
from ..model_types import CLI_ALIASES, MODEL_TYPES, model_type
from ..models import count_parameters
from ..train import RECIPES, SCHEDULES, check_training_args, train_model
from ..utils import SettingsError, check_whole_number, get_device, set_seed

#: ``--model``: a type of :data:`helper_lib.model_types.MODEL_TYPES`, or an older spelling of one.
MODEL_CHOICES = {**{name: name for name in MODEL_TYPES}, **CLI_ALIASES}
#: ``train`` options that a resumed run must share with the run it continues (--epochs and --lr
#: may change; the rest would silently mix two different experiments).
RUN_SETTINGS = ("model", "dataset", "batch_size", "latent_dim", "seed", "kind",
                "reconstruction_weight", "beta", "validation_fraction", "train_subset",
                "schedule", "snapshots", "feature_dim")


def _apply_recipe(args: argparse.Namespace) -> None:
    """Fill --schedule, --lr and --epochs from --recipe where they were not given."""
    for key, value in RECIPES[args.recipe].items():
        if getattr(args, key) is None:
            setattr(args, key, value)


def _command_line(argv: Sequence[str]) -> str:
    return "python -m helper_lib " + shlex.join(argv)


def _write_figures(model: nn.Module, history: History | None, test_loader: Any,
                   out: Path, seed: int) -> list[Path]:
    """The standard figures of a run, as PNG files in ``out``."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from .. import plotting

    out.mkdir(parents=True, exist_ok=True)
    written = []

    def save(fig: Any, name: str) -> None:
        path = out / name
        fig.savefig(path, dpi=120, bbox_inches="tight")
        plt.close(fig)
        written.append(path)

    if history is not None:
        save(plotting.plot_training_loss(history), "loss.png")
    images, _ = next(iter(test_loader))
    save(plotting.plot_reconstructions(model, images[:15]), "reconstructions.png")
    if model.latent_dim == 2:
        save(plotting.plot_latent_space(model, test_loader), "latent_space.png")
    save(plotting.plot_samples(model, n=100, seed=seed), "samples.png")
    if model.latent_dim == 2:
        save(plotting.plot_latent_manifold(model), "manifold.png")
    return written


def _prepare_resume(state_path: Path, args: argparse.Namespace,
                    settings: dict[str, Any]) -> None:
    """Say whether ``train`` resumes from ``state_path``; refuse a run with other settings."""
    if not state_path.is_file():
        return
    if args.fresh:
        state_path.unlink()
        print(f"--fresh: removed {state_path}; training from scratch")
        return
    meta = load_checkpoint(state_path).get("metadata", {})
    saved = dict(meta.get("settings", {}))
    if "model" in saved:  # written before conv-vae and conv-ae became vae and autoencoder
        saved["model"] = MODEL_CHOICES.get(saved["model"], saved["model"])
    differ = [f"--{k.replace('_', '-')} {saved[k]} (now {settings[k]})"
              for k in settings if k in saved and saved[k] != settings[k]]
    if differ:
        raise CheckpointError(
            f"{state_path} holds an unfinished run with other settings: {', '.join(differ)}. "
            f"Use another --out folder, or --fresh to start over in this one.")
    done = meta.get("epoch", 0)
    left = (f"{args.epochs - done} more to go" if done < args.epochs
            else "nothing left to train; pass a larger --epochs, or --fresh to start over")
    print(f"resuming from {state_path}: {done} of {args.epochs} epochs done, {left}")


def cmd_train(args: argparse.Namespace, argv: Sequence[str]) -> int:
    _apply_recipe(args)
    # Every setting is checked before any work starts, with the Python API's own messages.
    check_training_args(args.epochs, args.lr, args.schedule)
    check_whole_number("batch_size", args.batch_size, 1, "the lecture uses 256")
    check_whole_number("latent_dim", args.latent_dim, 1, "the lecture uses 2")
    if args.train_subset is not None:
        check_whole_number("train_subset", args.train_subset, 1)
    if args.threads is not None:
        check_whole_number("threads", args.threads, 1)
    resolve_precision(args.precision, get_device(args.device))  # also checks $VAE_PRECISION
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    remove_partial_writes(out / "model.pt")
    command = _command_line(argv)
    settings = {k: getattr(args, k) for k in RUN_SETTINGS}
    settings["model"] = MODEL_CHOICES[args.model]  # one name for each type, however spelled
    _prepare_resume(out / "train_state.pt", args, settings)
    if args.threads:
        torch.set_num_threads(args.threads)
    set_seed(args.seed)  # before building the model: the initial weights depend on it
    mtype = MODEL_TYPES[settings["model"]]
    is_vae = mtype.name == "vae"
    if mtype.name == "classifier":
        check_whole_number("feature_dim", args.feature_dim, 1, "the default is 128")
    model = mtype.build(getattr(args, mtype.size))  # --latent-dim, or --feature-dim
    train_loader, valid_loader, test_loader = get_dataloaders(
        args.dataset, batch_size=args.batch_size, validation_fraction=args.validation_fraction,
        root=args.data_root, seed=args.seed, train_subset=args.train_subset,
    )
    device = get_device(args.device)
    precision = resolve_precision(args.precision, device).name
    print(f"{type(model).__name__}: {count_parameters(model):,} parameters; "
          f"{len(train_loader.dataset):,} training images; device {device}, {precision}")
    common = dict(
        valid_loader=valid_loader, device=device, precision=precision,
        checkpoint_path=out / "train_state.pt", seed=args.seed, progress=not args.no_progress,
        checkpoint_metadata={"command": command, "settings": settings},
    )
    snapshots = None
    if args.snapshots:
        from ..analysis.film import film_from_snapshots, lecture_snapshots, save_film

        if not is_vae:
            raise SettingsError("--snapshots records the latent space of a VAE (--model vae)")
        test_images, test_labels = test_loader.dataset.tensors[:2]
        snapshots, snap_index = lecture_snapshots(test_images, args.latent_dim,
                                                  len(train_loader), args.epochs)
        print(f"snapshots: {len(snap_index):,} test images and {len(snapshots.codes)} codes at "
              f"{len(snapshots.steps)} steps ({', '.join(map(str, snapshots.steps[:8]))}, ...)")
    vae_loss = ({"kind": args.kind, "reconstruction_weight": args.reconstruction_weight,
                 "beta": args.beta} if is_vae else {})
    vae_options = {**vae_loss, "snapshots": snapshots} if is_vae else {}
    t0 = time.perf_counter()
    history = train_model(model, train_loader, args.epochs, lr=args.lr, schedule=args.schedule,
                          **vae_options, **common)
    seconds = time.perf_counter() - t0

    history.to_csv(out / "history.csv")
    history.to_json(out / "history.json")
    if snapshots is not None:
        film = save_film(out / "snapshots.npz", film_from_snapshots(
            snapshots, test_labels[snap_index], snap_index, history))
        print(f"wrote {film} ({film.stat().st_size / 1e6:.2f} MB, {len(snapshots.records)} "
              f"snapshots)")
    model.cpu()
    test = evaluate_model(model, test_loader, kind=args.kind)
    loss = vae_loss or {"kind": mtype.loss}
    metadata = {
        "command": command,
        "dataset": args.dataset,
        "epochs": history.epochs,
        "batch_size": args.batch_size,
        "lr": args.lr,
        "schedule": args.schedule,
        "recipe": args.recipe,
        "seed": args.seed,
        "loss": loss,
        "parameters": count_parameters(model),
        "train_final_epoch": {n: v[-1] for n, v in history.train.items() if v},
        "test": test,
        "reference_eval": {**REFERENCE_EVAL, **reference_eval(model, test_loader, args.kind)},
        "training": {"device": str(device), "device_name": _device_name(device),
                     "precision": precision, "seconds_total": round(sum(history.epoch_seconds), 1),
                     "seconds_this_run": round(seconds, 1)},
    }
    ckpt = save_checkpoint(out / "model.pt", model, **metadata)
    write_sha256(ckpt)
    print(f"wrote {ckpt} ({ckpt.stat().st_size / 1e6:.2f} MB); test: "
          + ", ".join(f"{k} {v:.4f}" for k, v in test.items()))
    if not args.no_figures and mtype.name != "classifier":
        for path in _write_figures(model, history, test_loader, out, args.seed):
            print(f"wrote {path}")
    return 0


def _device_name(device: torch.device, cpuinfo: str = "/proc/cpuinfo") -> str:
    """A human-readable name for the checkpoint's metadata, e.g. the CPU's model name."""
    if device.type == "cuda":
        return torch.cuda.get_device_name(device)
    if device.type == "cpu":
        import platform

        try:  # Linux: "model name : Intel(R) Xeon(R) ..."; platform only says "x86_64" there
            with open(cpuinfo) as f:
                for line in f:
                    if line.startswith("model name") and ":" in line:
                        return f"{line.split(':', 1)[1].strip()} ({os.cpu_count()} CPUs)"
        except OSError:
            pass
        return platform.processor() or platform.machine()
    return device.type


def cmd_evaluate(args: argparse.Namespace, argv: Sequence[str]) -> int:
    payload = load_checkpoint(args.checkpoint)
    model = load_model(args.checkpoint, device=args.device if args.device != "auto"
                       else get_device("auto"))
    meta = payload.get("metadata", {})
    train_loader, _, test_loader = get_dataloaders(meta.get("dataset", "mnist"), batch_size=256,
                                                   root=args.data_root)
    judge = None
    if args.classifier and model_type(model).name != "classifier":
        judge = load_model(args.classifier, device=model_device(model))
    report: dict[str, Any] = {"checkpoint": str(args.checkpoint),
                              "parameters": count_parameters(model)}
    report.update(evaluation_report(
        model, test_loader, kind=meta.get("loss", {}).get("kind", "mse"), k=args.k,
        reconstruction_weight=meta.get("loss", {}).get("reconstruction_weight", 1.0),
        iw_images=args.iw_images, iw_random=args.iw_random, max_images=args.max_images,
        classifier=judge,
        train_loader=train_loader, samples=args.samples, progress=True))
    if judge is not None:
        report["samples"]["classifier"] = str(args.classifier)
    print(json.dumps(report, indent=2))
    if args.save:
        model.cpu()
        meta = {**meta, "evaluation": {**report, "command": _command_line(argv)}}
        meta.pop("versions", None)
        save_checkpoint(args.checkpoint, model, **meta)
        write_sha256(args.checkpoint)
        print(f"updated the metadata of {args.checkpoint} and its .sha256")
    return 0


def cmd_grade(args: argparse.Namespace, argv: Sequence[str]) -> int:
    from .grading import DEFAULT_MEMORY_MB, DEFAULT_TIMEOUT_S, GradingError, grade
    from .sandbox import DEFAULT_DISK_MB, DEFAULT_PROCESSES
    from .shards import parse_shard

    timeout = DEFAULT_TIMEOUT_S if args.timeout is None else args.timeout
    memory = DEFAULT_MEMORY_MB if args.memory is None else args.memory
    processes = DEFAULT_PROCESSES if args.processes is None else args.processes
    disk = DEFAULT_DISK_MB if args.disk is None else args.disk
    output = 1000 if args.output is None else args.output
    if timeout <= 0 or memory < 500 or processes < 64 or disk < 64 or output < 1 or (
            args.jobs is not None and args.jobs < 1):
        print("error: --timeout must be > 0, --memory at least 500, --processes at least 64, "
              "--disk at least 64, --output at least 1 and --jobs at least 1", file=sys.stderr)
        return 2
    try:
        shard = parse_shard(args.shard) if args.shard is not None else None
        grade(args.submissions, args.out, timeout=timeout, memory_mb=memory, jobs=args.jobs,
              unprotected=args.unprotected, keep_answers=args.keep_answers,
              notebooks=args.notebook, processes=processes, disk_mb=disk, output_kb=output,
              formats=args.format or (), roster=args.roster, feedback=args.feedback,
              similarity=args.similarity, shard=shard)
    except GradingError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    return 0


def merge_parser() -> argparse.ArgumentParser:
    """``python -m helper_lib grade merge DIR... --out OUT``: a parser of its own, since
    ``grade``'s positional arguments are submissions (a folder named merge: ``./merge``)."""
    p = argparse.ArgumentParser(
        prog="python -m helper_lib grade merge",
        description="Combine the output folders of grade --shard 1/N ... N/N into one: the "
        "same grades.csv, byte for byte, as grading the class on one machine, with scores.png, "
        "the Canvas and Moodle files the shards were asked for, and every report, feedback "
        "page and Gradescope result. Refuses shards of different runs or versions, and a "
        "missing or repeated shard, writing nothing.")
    p.add_argument("shards", nargs="*", metavar="DIR", help="the shards' output folders")
    p.add_argument("--out", required=True, help="a new folder for the merged grades")
    return p


def cmd_grade_merge(argv: Sequence[str]) -> int:
    """``grade merge``: exit 0, or 2 with one line on bad input."""
    from .grading import GradingError
    from .shards import merge

    args = merge_parser().parse_args(list(argv))
    try:
        merge(args.shards, args.out)
    except GradingError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    return 0


def cmd_autograder(args: argparse.Namespace, argv: Sequence[str]) -> int:
    """``autograder``: write Gradescope's zip; exit 0, or 2 with one line on bad input."""
    from .gradescope import build_autograder
    from .grading import DEFAULT_MEMORY_MB, DEFAULT_TIMEOUT_S, GradingError

    try:
        build_autograder(args.out, notebooks=args.notebook,
                         timeout=DEFAULT_TIMEOUT_S if args.timeout is None else args.timeout,
                         memory_mb=DEFAULT_MEMORY_MB if args.memory is None else args.memory,
                         visibility=args.visibility, unprotected=args.unprotected)
    except GradingError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    return 0


def cmd_sample(args: argparse.Namespace, argv: Sequence[str]) -> int:
    import matplotlib

    matplotlib.use("Agg")
    from ..plotting import plot_samples

    model = load_model(args.checkpoint)
    fig = plot_samples(model, n=args.n, seed=args.seed, nrow=args.nrow)
    fig.savefig(args.out, dpi=120, bbox_inches="tight")
    print(f"wrote {args.out}")
    return 0


def cmd_figures(args: argparse.Namespace, argv: Sequence[str]) -> int:
    payload = load_checkpoint(args.checkpoint)
    model = load_model(args.checkpoint)
    meta = payload.get("metadata", {})
    history = History.from_json(args.history) if args.history else None
    _, _, test_loader = get_dataloaders(meta.get("dataset", "mnist"), batch_size=256,
                                        root=args.data_root)
    for path in _write_figures(model, history, test_loader, Path(args.out), args.seed):
        print(f"wrote {path}")
    return 0


def _history_beside(checkpoint: Path) -> History:
    """``<name>.history.json`` beside a shipped checkpoint, or a run folder's history.json."""
    for candidate in (checkpoint.with_name(f"{checkpoint.stem}.history.json"),
                      checkpoint.with_name("history.json")):
        if candidate.is_file():
            return History.from_json(candidate)
    raise CheckpointError(f"no {checkpoint.stem}.history.json or history.json beside {checkpoint}")


def cmd_compare(args: argparse.Namespace, argv: Sequence[str]) -> int:
    import matplotlib

    matplotlib.use("Agg")
    from ..plotting import plot_recipes

    labels = args.labels or [Path(c).stem for c in args.checkpoints]
    if len(labels) != len(args.checkpoints):
        raise SettingsError(f"--labels gave {len(labels)} names for "
                            f"{len(args.checkpoints)} checkpoints")
    runs, test, constant = {}, {}, {}
    for label, checkpoint in zip(labels, args.checkpoints, strict=True):
        meta = load_checkpoint(checkpoint).get("metadata", {})
        runs[label] = _history_beside(Path(checkpoint))
        if "test" in meta:
            test[label] = meta["test"].get("total", meta["test"].get("mse"))
        if meta.get("schedule", "constant") == "constant" and "lr" in meta:
            constant[label] = meta["lr"]
    plot_recipes(runs, test_loss=test, constant_lr=constant, path=args.out)
    for label, history in runs.items():
        print(f"{label}: {history.epochs} epochs, {sum(history.epoch_seconds):.0f} s of training, "
              f"last epoch {history.train[history.names[0]][-1]:.2f}, test {test.get(label)}")
    print(f"wrote {args.out}")
    return 0


def build_parser() -> argparse.ArgumentParser:
    """The ``python -m helper_lib`` argument parser."""
    fmt = argparse.ArgumentDefaultsHelpFormatter
    parser = argparse.ArgumentParser(
        prog="python -m helper_lib", formatter_class=fmt,
        description="Train, evaluate and sample the STAT 453 L16/L17 (variational) autoencoders "
                    "on MNIST. Data comes from --data-root, else $VAE_DATA_DIR, else <repo>/data "
                    "in a clone that holds it, else the user cache (downloaded there once).",
    )
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    p = sub.add_parser("train", formatter_class=fmt, help="train a model and write a run folder",
                       description="Train a model. Writes OUT/model.pt (+ .sha256), "
                       "OUT/train_state.pt (resumes from it if present), OUT/history.csv, "
                       "OUT/history.json and PNG figures.")
    p.add_argument("--model", choices=list(MODEL_CHOICES), default="vae",
                   help="the L17.5 VAE, the L16 autoencoder, or the digit classifier that "
                   "judges samples (notebook 07); conv-vae and conv-ae are older names of the "
                   "first two, as the shipped models' commands spell them")
    p.add_argument("--dataset", choices=["mnist", "binarized-mnist", "fashion-mnist"],
                   default="mnist", help="training data (binarized-mnist: pixels drawn as "
                   "Bernoulli(x) anew every epoch, the test set binarized once)")
    recipes = "; ".join(f"{name}: " + ", ".join(f"{k} {v}" for k, v in r.items())
                        for name, r in RECIPES.items())
    p.add_argument("--recipe", choices=sorted(RECIPES), default="lecture",
                   help=f"defaults for --schedule, --lr and --epochs ({recipes})")
    p.add_argument("--epochs", type=int, default=None,
                   help="train until this many epochs are done (a resumed run counts its own); "
                   "default: the recipe's")
    p.add_argument("--batch-size", type=int, default=256, help="images per step")
    p.add_argument("--lr", type=float, default=None,
                   help="Adam learning rate (the peak with --schedule onecycle); default: the "
                   "recipe's")
    p.add_argument("--schedule", choices=SCHEDULES, default=None,
                   help="learning-rate schedule; default: the recipe's")
    p.add_argument("--latent-dim", type=int, default=2, help="size of the code z")
    p.add_argument("--feature-dim", type=int, default=128,
                   help="width of the classifier's feature layer (--model classifier only)")
    p.add_argument("--seed", type=int, default=123, help="for weights, shuffling and z")
    p.add_argument("--out", required=True,
                   help="run folder; if it holds a train_state.pt, training resumes from it")
    p.add_argument("--fresh", action="store_true",
                   help="delete OUT/train_state.pt first, so training starts over")
    p.add_argument("--kind", choices=["mse", "bce"], default="mse",
                   help="VAE reconstruction loss (summed over pixels)")
    p.add_argument("--reconstruction-weight", type=float, default=1.0,
                   help="the lecture's alpha (VAE only)")
    p.add_argument("--beta", type=float, default=1.0, help="weight of the KL term (VAE only)")
    p.add_argument("--validation-fraction", type=float, default=0.0,
                   help="hold out this share of the training images for a validation loss")
    p.add_argument("--train-subset", type=int, default=None,
                   help="train on this many random images only (quick runs)")
    p.add_argument("--precision", choices=["auto", "bf16", "fp32"], default="auto",
                   help="auto: $VAE_PRECISION if set, else bf16 where it is native (CPUs with "
                   "AMX or AVX512-BF16, Ampere+ GPUs), else fp32")
    p.add_argument("--device", default="auto", help="auto, cpu, cuda, cuda:0, mps, ...")
    p.add_argument("--threads", type=int, default=None,
                   help="CPU threads for torch (default: one per core). Use 1 to run two "
                   "trainings side by side on a 2-core machine without them slowing each other")
    p.add_argument("--data-root", default=None)
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    p.add_argument("--no-figures", action="store_true", help="skip the PNG figures")
    p.add_argument("--snapshots", action="store_true",
                   help="record the latent space forming (means of 2,000 test images and the "
                        "decoder on a grid of z, at steps 0, 5, 10, 15, 20, 25, 35, 50, 75, 100, "
                        "150, 200 and every epoch's end) into snapshots.npz; see "
                        "helper_lib.analysis.film")
    p.set_defaults(func=cmd_train)

    p = sub.add_parser("evaluate", formatter_class=fmt, help="test-set metrics of a checkpoint",
                       description="Print test-set loss, importance-weighted log-likelihood "
                       "(VAE) and active units as JSON.")
    p.add_argument("checkpoint")
    p.add_argument("--k", type=int, default=100,
                   help="importance samples per image for the log-likelihood (0: skip it)")
    p.add_argument("--max-images", type=int, default=None, help="use the first N test images")
    p.add_argument("--iw-images", type=int, default=None,
                   help="the log-likelihood on the first N test images only (it costs k "
                   "decoder passes per image); default: as --max-images")
    p.add_argument("--iw-random", action="store_true",
                   help="take the --iw-images at random (seed 0), not the first ones: MNIST's "
                   "first 5,000 test images are its easier half")
    p.add_argument("--classifier", default=None,
                   help="a classifier checkpoint: also score decoded prior samples (confidence, "
                   "class entropy, Fréchet distance of its features to the test images)")
    p.add_argument("--samples", type=int, default=10_000, help="prior samples to score")
    p.add_argument("--save", action="store_true",
                   help="store the report in the checkpoint's metadata and rewrite its .sha256")
    p.add_argument("--device", default="auto")
    p.add_argument("--data-root", default=None)
    p.set_defaults(func=cmd_evaluate)

    p = sub.add_parser("sample", formatter_class=fmt, help="decode z ~ N(0, I) to a PNG grid")
    p.add_argument("checkpoint")
    p.add_argument("--n", type=int, default=100, help="number of samples")
    p.add_argument("--nrow", type=int, default=10, help="images per row")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--out", default="samples.png")
    p.set_defaults(func=cmd_sample)

    p = sub.add_parser("figures", formatter_class=fmt, help="redraw a checkpoint's figures")
    p.add_argument("checkpoint")
    p.add_argument("--history", default=None, help="history.json for the loss plot")
    p.add_argument("--out", required=True, help="folder for the PNG files")
    p.add_argument("--seed", type=int, default=123)
    p.add_argument("--data-root", default=None)
    p.set_defaults(func=cmd_figures)

    p = sub.add_parser("compare", formatter_class=fmt,
                       help="training curves of several runs side by side, as a PNG",
                       description="Loss per epoch and learning rate of several trained runs "
                       "(each checkpoint's history is read from <name>.history.json or "
                       "history.json beside it), with each run's test loss.")
    p.add_argument("checkpoints", nargs="+")
    p.add_argument("--labels", nargs="+", default=None, help="one name per checkpoint")
    p.add_argument("--out", required=True, help="the PNG file to write")
    p.set_defaults(func=cmd_compare)

    p = sub.add_parser("film", formatter_class=fmt,
                       help="the latent space forming (a run's snapshots.npz) as a GIF",
                       description="Plays the snapshots recorded by `train --snapshots` as an "
                       "animated GIF: the means of the followed test images, the decoder on a "
                       "grid of z, and the KL curve with a marker at each snapshot's step.")
    p.add_argument("snapshots", help="a snapshots.npz written by train --snapshots")
    p.add_argument("--out", required=True, help="the GIF file to write")
    p.add_argument("--fps", type=float, default=1.5, help="snapshots per second")
    p.add_argument("--dpi", type=int, default=60, help="resolution (the figure is 12.6 x 4.6 in)")
    p.set_defaults(func=cmd_film)

    p = sub.add_parser("export", formatter_class=fmt,
                       help="export the live explorer's models to ONNX (the site build does it)",
                       description="Writes the decoders of the two 2-D models the latent "
                       "explorers use (conv_vae_mnist, conv_ae_mnist) and the shipped "
                       "classifier (classifier_mnist, with a softmax) as ONNX files, and "
                       "models.json with their shapes and SHA-256 (docs/site.md).")
    p.add_argument("--out", required=True, help="the folder for NAME.onnx and models.json")
    p.set_defaults(func=cmd_export)

    p = sub.add_parser("book", formatter_class=fmt,
                       help="execute every notebook and build the offline site, slides and "
                            "handouts",
                       description="Executes every notebook (full mode; smoke mode with "
                       "--smoke or VAE_SMOKE=1) and writes a static site that needs no network: "
                       "index.html, one page and one reveal.js deck per notebook, and student "
                       "notebooks without solutions in handouts/. Open OUT/index.html.")
    p.add_argument("--out", required=True, help="the site's folder (emptied if a build wrote it)")
    p.add_argument("--smoke", action="store_true", default=None,
                   help="smoke mode (default: from $VAE_SMOKE)")
    p.add_argument("--notebooks", nargs="+", default=None,
                   help="only these notebooks (default: all of notebooks/)")
    p.add_argument("--no-execute", action="store_true",
                   help="convert the notebooks as they are, without running them")
    p.add_argument("--timeout", type=int, default=600, help="seconds one cell may run")
    p.add_argument("--audit", action="store_true",
                   help="then audit every page and slide deck with axe-core in Chromium for "
                        "WCAG 2.1 AA (docs/accessibility.md); exit 1 on a violation")
    p.add_argument("--allow-unbacked-numbers", action="store_true",
                   help="build even if a number in the prose or in a figure's alt text is "
                   "printed by no output (full mode only checks it)")
    p.set_defaults(func=cmd_book)

    p = sub.add_parser("doctor", formatter_class=fmt,
                       help="can a notebook run here? versions, device, data, models, speed",
                       description="Prints one screen: the versions, the device and the "
                       "precision 'auto' picks, where the data and each pretrained model are "
                       "(or whether they can be downloaded), and one epoch's training time, "
                       "measured on a few batches. Exits with 0 only when a notebook can run.")
    p.add_argument("--no-timing", action="store_true", help="skip the training measurement")
    p.set_defaults(func=cmd_doctor)

    p = sub.add_parser("grade", formatter_class=fmt,
                       help="grade students' notebooks in a sandbox into a folder of grades",
                       description="Re-execute each submission from scratch in a sandbox (no "
                       "network, unprivileged, time and memory limits), take its answers out as "
                       "JSON and score them here. A submission is named by its folder "
                       "(SUBMISSIONS/<student>/<notebook>.ipynb) or else its file name. "
                       "'grade merge DIR... --out OUT' combines the folders of --shard runs.")
    p.add_argument("submissions", nargs="*", help="notebooks, or folders searched for *.ipynb")
    p.add_argument("--out", required=True, help="folder for grades.csv, reports/, scores.png")
    p.add_argument("--timeout", type=float, default=None,
                   help="seconds per submission (default 300)")
    p.add_argument("--memory", type=int, default=None,
                   help="MB of memory per process of a submission (default 4000)")
    p.add_argument("--jobs", type=int, default=None,
                   help="submissions run at once, each with an equal share of the cores "
                        "(default: the number of cores where the machine has a cpu cgroup to "
                        "share them, else 1)")
    p.add_argument("--processes", type=int, default=None,
                   help="processes and threads per submission (default 512; a pids cgroup "
                        "where the machine has one)")
    p.add_argument("--disk", type=int, default=None, metavar="MB",
                   help="MB of scratch space per submission (default 512; a tmpfs, so it "
                        "takes memory while the submission runs)")
    p.add_argument("--output", type=int, default=None, metavar="KB",
                   help="kB of each submission's stdout and stderr that the grader keeps, the "
                        "last (default 1000); the rest is read and dropped")
    p.add_argument("--unprotected", action="store_true",
                   help="run even where the sandbox's protections are missing (unsafe)")
    p.add_argument("--keep-answers", action="store_true",
                   help="also write each submission's answers to DIR/answers/<student>.json")
    p.add_argument("--notebook", action="append", default=None, metavar="NN",
                   help="grade only this course notebook (03, or 03_logvar_trick; repeatable); "
                        "a submission of another one gets a row that says so, and no points "
                        "(default: whichever notebook each submission is)")
    p.add_argument("--format", action="append", default=None, metavar="canvas|moodle|gradescope",
                   help="also write the platform's file (repeatable): canvas.csv (gradebook "
                        "import) and moodle.csv (grade import), which need --roster, and "
                        "gradescope/<student>.json (results.json)")
    p.add_argument("--roster", default=None, metavar="CSV",
                   help="the class's identities on Canvas or Moodle: a CSV with a 'student' "
                        "column (the submission's folder name) and name, canvas_id, "
                        "sis_user_id, login_id, section, email (docs/grading.md)")
    p.add_argument("--feedback", action="store_true",
                   help="also write a page per student to DIR/feedback/<student>.html: their "
                        "points, verdicts, hints and cell errors, nothing else")
    p.add_argument("--similarity", action="store_true",
                   help="also write DIR/similarity.html: pairs of submissions ranked by how "
                        "alike their code is, the handout's code left out (a reason to look, "
                        "not a verdict)")
    p.add_argument("--shard", default=None, metavar="K/N",
                   help="grade only shard K of N (a stable share: by a hash of each name); "
                        "combine the N folders with 'grade merge DIR... --out OUT'")
    p.set_defaults(func=cmd_grade)

    p = sub.add_parser("autograder", formatter_class=fmt,
                       help="write the zip of a Gradescope autograder that runs this grader",
                       description="Writes the zip that a Gradescope programming assignment "
                       "takes (Configure Autograder, Zip file upload): setup.sh (bubblewrap, "
                       "Python and the course's exact pins, torch CPU-only), run_autograder "
                       "(grades the submission's one notebook in the sandbox and writes "
                       "results.json: a test per exercise, its hint, never a reference), the "
                       "package and the shipped models. Build it in a clone. docs/grading.md "
                       "says how to upload it.")
    p.add_argument("--out", required=True, help="the zip to write (autograder.zip)")
    p.add_argument("--notebook", action="append", default=None, metavar="NN",
                   help="the course notebook the assignment takes (03, or 03_logvar_trick; "
                        "repeatable; default: any)")
    p.add_argument("--timeout", type=float, default=None,
                   help="seconds per submission (default 300)")
    p.add_argument("--memory", type=int, default=None,
                   help="MB of memory per process of a submission (default 4000)")
    p.add_argument("--visibility", default="visible",
                   choices=["visible", "after_due_date", "after_published", "hidden"],
                   help="when students see their results (Gradescope's settings; default "
                        "visible: the hints are what check() shows in the notebook)")
    p.add_argument("--unprotected", action="store_true",
                   help="grade even where the container cannot run the sandbox (unsafe: a "
                        "submission then runs as root beside the grader)")
    p.set_defaults(func=cmd_autograder)

    p = sub.add_parser("manifest", formatter_class=fmt,
                       help="record the sha256 of data/pretrained/ in the package",
                       description="Writes helper_lib/assets/pretrained_files.json (each file's "
                       "sha256, size and training command), which downloads are checked "
                       "against. Run it in a clone after changing data/pretrained/.")
    p.set_defaults(func=cmd_manifest)
    return parser


def cmd_doctor(args: argparse.Namespace, argv: Sequence[str]) -> int:
    from .doctor import format_report, run_doctor

    checks, ok = run_doctor(measure=not args.no_timing)
    print(format_report(checks, ok))
    return 0 if ok else 1


def cmd_manifest(args: argparse.Namespace, argv: Sequence[str]) -> int:
    from ..assets.pretrained import manifest
    from ..checkpoints import write_manifest

    path = write_manifest()
    print(f"wrote {path} ({len(manifest())} files)")
    return 0


def cmd_film(args: argparse.Namespace, argv: Sequence[str]) -> int:
    from ..analysis.film import load_film
    from ..analysis.film_plots import animate_film, save_gif

    film = load_film(args.snapshots)
    path = save_gif(animate_film(film), args.out, fps=args.fps, dpi=args.dpi)
    print(f"wrote {path} ({path.stat().st_size / 1e6:.2f} MB, {len(film.steps)} frames)")
    return 0


def cmd_export(args: argparse.Namespace, argv: Sequence[str]) -> int:
    from .export import ExportError, export_models

    try:
        export_models(args.out)
    except ExportError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    print(f"wrote {Path(args.out) / 'models.json'}")
    return 0


def cmd_book(args: argparse.Namespace, argv: Sequence[str]) -> int:
    try:
        from .book import BookError, build_site
    except ImportError as err:
        print(f"error: the site needs the [site] extra ({err.name} is missing): "
              "pip install 'helper_lib[site]'", file=sys.stderr)
        return 2

    t0 = time.perf_counter()
    try:
        report = build_site(args.out, notebooks=args.notebooks, smoke=args.smoke,
                            execute=not args.no_execute, timeout=args.timeout,
                            check_numbers=not args.allow_unbacked_numbers)
    except BookError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    print(f"wrote {report.out}/index.html: {len(report.pages)} pages, {len(report.slides)} slide "
          f"decks, {len(report.handouts)} handouts ({'smoke' if report.smoke else 'full'} mode) "
          f"in {time.perf_counter() - t0:.0f} s")
    if args.audit:
        from .accessibility import AuditError, audit_site

        try:
            found = audit_site(Path(report.out))
        except AuditError as err:
            print(f"error: cannot audit the site: {err}", file=sys.stderr)
            return 2
        failing = {name: v for name, v in found.items() if v}
        print(f"audited {len(found)} files with axe-core for WCAG 2.1 AA: "
              + (f"{len(failing)} with violations" if failing else "no violation"))
        return 1 if failing else 0
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point; returns the exit status."""
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv[:2] == ["grade", "merge"]:
        return cmd_grade_merge(argv[2:])
    args = build_parser().parse_args(argv)
    try:
        return args.func(args, argv)
    except (DatasetNotFoundError, DatasetCorruptError, CheckpointError, FloatingPointError,
            SettingsError, DownloadError) as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
