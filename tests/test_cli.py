import json
import subprocess
import sys

import pytest
import torch
from test_plotting import check_recipes_figure

from helper_lib.assets.downloads import sha256_file
from helper_lib.checkpoints import load_model
from helper_lib.tools.cli import main


def _run(*args, **kwargs):
    return subprocess.run([sys.executable, "-m", "helper_lib", *args], capture_output=True,
                          text=True, timeout=300, **kwargs)


def test_help_lists_the_commands():
    out = _run("--help")
    assert out.returncode == 0
    for command in ("train", "evaluate", "sample"):
        assert command in out.stdout
    train_help = _run("train", "--help").stdout
    for flag in ("--model", "--epochs", "--batch-size", "--lr", "--latent-dim", "--seed", "--out"):
        assert flag in train_help


def test_train_evaluate_sample_end_to_end(tmp_path):
    out = tmp_path / "run"
    result = _run("train", "--model", "conv-vae", "--epochs", "1", "--batch-size", "128",
                  "--train-subset", "256", "--seed", "1", "--out", str(out), "--no-progress")
    assert result.returncode == 0, result.stderr
    for name in ("model.pt", "model.pt.sha256", "train_state.pt", "history.csv", "history.json",
                 "loss.png", "reconstructions.png", "latent_space.png", "samples.png",
                 "manifold.png"):
        assert (out / name).is_file(), name
    model = load_model(out / "model.pt")
    meta = model.checkpoint_metadata
    assert meta["command"].startswith("python -m helper_lib train --model conv-vae")
    assert meta["epochs"] == 1 and meta["parameters"] == 207_237
    assert set(meta["test"]) == {"total", "reconstruction", "kl"}
    assert meta["reference_eval"]["images"] == 2000
    assert (out / "history.csv").read_text().count("\n") == 2  # header + one epoch
    assert (out / "model.pt.sha256").read_text().split()[0] == sha256_file(out / "model.pt")

    report = _run("evaluate", str(out / "model.pt"), "--k", "2", "--max-images", "64")
    assert report.returncode == 0, report.stderr
    data = json.loads(report.stdout)
    assert data["parameters"] == 207_237
    assert data["iw_log_likelihood"]["k"] == 2
    assert 0 <= data["active_units"]["count"] <= 2

    png = tmp_path / "s.png"
    sampled = _run("sample", str(out / "model.pt"), "--n", "16", "--nrow", "4", "--out", str(png))
    assert sampled.returncode == 0 and png.stat().st_size > 1000


def test_autoencoder_trains_from_the_cli(tmp_path):
    out = tmp_path / "ae"
    assert main(["train", "--model", "conv-ae", "--epochs", "1", "--batch-size", "64",
                 "--train-subset", "128", "--out", str(out), "--no-progress",
                 "--no-figures"]) == 0
    assert load_model(out / "model.pt").checkpoint_metadata["parameters"] == 200_963


def test_clear_errors_instead_of_tracebacks(tmp_path, capsys, monkeypatch):
    import socket

    with socket.socket() as s:  # a closed port: no mirror answers, as offline
        s.bind(("127.0.0.1", 0))
        monkeypatch.setenv("VAE_DATA_URL", f"http://127.0.0.1:{s.getsockname()[1]}")
    assert main(["evaluate", str(tmp_path / "missing.pt")]) == 2
    assert "checkpoint not found" in capsys.readouterr().err
    assert main(["train", "--out", str(tmp_path / "x"), "--data-root", str(tmp_path),
                 "--epochs", "1", "--no-progress"]) in (2,)
    assert "VAE_DATA_DIR" in capsys.readouterr().err


def test_unknown_model_is_rejected():
    with pytest.raises(SystemExit):
        main(["train", "--model", "resnet", "--out", "x"])


def test_cpu_device_name_comes_from_cpuinfo(tmp_path):
    from helper_lib.tools.cli import _device_name

    info = tmp_path / "cpuinfo"
    info.write_text("processor\t: 0\nvendor_id\t: GenuineIntel\n"
                    "model name\t: Intel(R) Xeon(R) Processor\nflags\t: fpu amx_bf16\n")
    name = _device_name(torch.device("cpu"), cpuinfo=str(info))
    assert name.startswith("Intel(R) Xeon(R) Processor (") and name.endswith(" CPUs)")
    fallback = _device_name(torch.device("cpu"), cpuinfo=str(tmp_path / "missing"))
    assert fallback and "model name" not in fallback


def test_a_second_train_in_the_same_folder_resumes_checks_settings_or_starts_fresh(tmp_path,
                                                                                    capsys):
    out = str(tmp_path / "run")
    base = ["train", "--batch-size", "64", "--train-subset", "128", "--out", out,
            "--no-progress", "--no-figures", "--device", "cpu"]
    assert main([*base, "--epochs", "1"]) == 0
    capsys.readouterr()
    assert main([*base, "--epochs", "2"]) == 0
    assert "resuming from" in capsys.readouterr().out
    assert load_model(tmp_path / "run" / "model.pt").checkpoint_metadata["epochs"] == 2
    assert main([*base, "--epochs", "2"]) == 0
    assert "nothing left to train" in capsys.readouterr().out
    # another model in the same folder: a clear error, not a state_dict traceback
    assert main([*base, "--epochs", "2", "--model", "autoencoder"]) == 2
    err = capsys.readouterr().err
    assert "--model vae (now autoencoder)" in err and "--fresh" in err
    assert main([*base, "--epochs", "2", "--model", "conv-vae"]) == 0  # vae's older name: resumes
    assert "nothing left to train" in capsys.readouterr().out
    assert main([*base, "--epochs", "1", "--model", "conv-ae", "--fresh"]) == 0
    assert "training from scratch" in capsys.readouterr().out
    assert load_model(tmp_path / "run" / "model.pt").checkpoint_metadata["epochs"] == 1


def test_train_help_shows_every_default(monkeypatch):
    from helper_lib.tools.cli import build_parser

    monkeypatch.setenv("COLUMNS", "300")  # no line wrapping inside "(default: vae)"

    train = build_parser()._subparsers._group_actions[0].choices["train"]
    for action in train._actions:
        if action.default not in (None, False) and action.dest != "help":
            assert action.help, f"--{action.dest} has a default but no help, so no default shown"
    text = train.format_help()
    for shown in ("(default: lecture)", "(default: vae)", "(default: mnist)",
                  "(default: 256)", "lecture: schedule constant, lr 0.0005, epochs 50"):
        assert shown in text


def test_recipe_sets_schedule_lr_and_epochs_and_explicit_flags_win(tmp_path):
    from helper_lib.train import RECIPES

    base = ["train", "--batch-size", "64", "--train-subset", "128", "--no-progress",
            "--no-figures", "--device", "cpu"]
    fast = RECIPES["fast"]
    assert fast["schedule"] == "onecycle" and fast["epochs"] <= 12
    # --recipe fast with its own epochs would take minutes; --epochs 1 overrides only that
    assert main([*base, "--recipe", "fast", "--epochs", "1", "--out", str(tmp_path / "a")]) == 0
    meta = load_model(tmp_path / "a" / "model.pt").checkpoint_metadata
    assert (meta["recipe"], meta["schedule"], meta["lr"], meta["epochs"]) == (
        "fast", "onecycle", fast["lr"], 1)
    assert main([*base, "--recipe", "fast", "--epochs", "1", "--lr", "1e-3", "--schedule",
                 "constant", "--out", str(tmp_path / "b")]) == 0
    meta = load_model(tmp_path / "b" / "model.pt").checkpoint_metadata
    assert (meta["schedule"], meta["lr"]) == ("constant", 1e-3)
    history = json.loads((tmp_path / "a" / "history.json").read_text())
    # two steps of a one-cycle schedule: up near the peak, then annealed to almost nothing
    assert len(history["lr"]) == 2 and fast["lr"] / 25 < history["lr"][0] <= fast["lr"]
    assert history["lr"][1] < fast["lr"] / 1000


def test_compare_draws_the_recipes_side_by_side(tmp_path, monkeypatch):
    from helper_lib import plotting
    from helper_lib.checkpoints import load_checkpoint, pretrained_path
    from helper_lib.history import History

    drawn, real = [], plotting.plot_recipes

    def keep(*args, **kwargs):  # the command's own figure, to look at
        drawn.append(real(*args, **kwargs))
        return drawn[-1]

    monkeypatch.setattr(plotting, "plot_recipes", keep)
    out = tmp_path / "recipes.png"
    vae, ae = pretrained_path("conv_vae_mnist"), pretrained_path("conv_ae_mnist")
    assert main(["compare", str(vae), str(ae), "--labels", "vae", "ae", "--out", str(out)]) == 0
    # the figure of the two histories beside the checkpoints, their test losses and rates
    runs = {"vae": History.from_json(vae.with_name("conv_vae_mnist.history.json")),
            "ae": History.from_json(ae.with_name("conv_ae_mnist.history.json"))}
    meta = {label: load_checkpoint(path)["metadata"] for label, path in [("vae", vae),
                                                                          ("ae", ae)]}
    test_loss = {"vae": meta["vae"]["test"]["total"], "ae": meta["ae"]["test"]["mse"]}
    assert len(drawn) == 1
    check_recipes_figure(drawn[0], runs, test_loss, {k: m["lr"] for k, m in meta.items()})
    assert out.stat().st_size > 10_000
    assert main(["compare", str(pretrained_path("conv_vae_mnist")), "--labels", "a", "b",
                 "--out", str(out)]) == 2


def test_help_does_not_import_pyplot():
    code = ("import sys, runpy\nsys.argv = ['helper_lib', '--help']\n"
            "try:\n    runpy.run_module('helper_lib', run_name='__main__')\n"
            "except SystemExit:\n    pass\n"
            "print('PYPLOT', 'matplotlib.pyplot' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         check=True).stdout
    assert "doctor" in out and "manifest" in out  # every command is listed
    assert out.strip().endswith("PYPLOT False")
