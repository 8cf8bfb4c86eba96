"""train_cifar.py / test_cifar.py / cifar_stats.py / plot_log.py --runs end to end: an 8-layer
ResNet (6*1+2) on a few hundred fake CIFAR-10 images in the official format."""

from __future__ import annotations

import argparse
import json

import mxnet as mx
import numpy as np
import pytest
from conftest import write_cifar_config

import cifar_stats  # noqa: F401  (the script imports)
import plot_log
import test_cifar
import train_cifar
from pyimagesearch.commands.cifar_stats import main as stats_main
from pyimagesearch.commands.train import build_parser
from pyimagesearch.commands.train_cifar import add_cifar_arguments, plan_runs
from pyimagesearch.config import load_config
from pyimagesearch.data.build.cifar import build_cifar_dataset
from pyimagesearch.data.sources.cifar_writer import write_fake_cifar
from pyimagesearch.run.checkpoints import list_checkpoints, read_manifest
from pyimagesearch.run.logs import read_metrics

SEED = 3


@pytest.fixture(scope="module")
def config_path(tmp_path_factory):
    """300 fake training images (240 train / 60 val) and 60 test images, batch 32."""
    root = tmp_path_factory.mktemp("cifar_train")
    fake = write_fake_cifar(root / "cifar", images_per_batch=60, seed=1)
    path = write_cifar_config(root / "config.py", fake.folder.parent, root / "rec",
                              VAL_SIZE=60, BATCH_SIZE=32, LOG_INTERVAL=4, SEED=SEED)
    build_cifar_dataset(load_config(str(path)))
    return str(path)


def train(config, folder, *extra):
    return train_cifar.main(["--config", config, "--checkpoints", str(folder),
                             "--prefix", "r8", "--depth", "8", *map(str, extra)])


@pytest.fixture(scope="module")
def study(config_path, tmp_path_factory):
    """Two runs trained for 1 epoch, then resumed (--resume) to 2 epochs."""
    folder = tmp_path_factory.mktemp("study")
    assert train(config_path, folder, "--runs", 2, "--end-epoch", 1) == 0
    first = {seed: mx.nd.load(str(folder / f"seed{seed}" / "r8-0001.params"))
             for seed in (SEED, SEED + 1)}
    assert train(config_path, folder, "--runs", 2, "--resume", "--end-epoch", 2) == 0
    return folder, first


def test_runs_train_in_their_own_folders_with_their_own_seeds(study):
    folder, first = study
    assert sorted(p.name for p in folder.iterdir()) == [f"seed{SEED}", f"seed{SEED + 1}"]
    for seed in (SEED, SEED + 1):
        run = folder / f"seed{seed}"
        assert list_checkpoints(run, "r8") == [1, 2]
        manifest = read_manifest(run, "r8", 2)
        assert manifest["seed"] == seed
        assert manifest["identity"]["model_params"] == {
            "depth": 8, "num_classes": 10, "shortcut": "A", "variant": "original"}
        assert manifest["num_update"] == 2 * 8  # 240 images / batch 32, rounded up
        assert sorted(p.name for p in run.glob("training_*.log")) == \
            ["training_0.log", "training_1.log"]  # the resume is a second start
        assert [r["epoch"] for r in read_metrics(run / "r8-metrics.jsonl")] == [0, 1]
    a, b = first[SEED], first[SEED + 1]
    assert any(not np.array_equal(a[k].asnumpy(), b[k].asnumpy()) for k in a)


def test_resume_skips_finished_runs_and_extends_with_start_epoch(config_path, study, tmp_path,
                                                                 capsys):
    folder, _ = study
    capsys.readouterr()
    assert train(config_path, folder, "--runs", 2, "--resume", "--end-epoch", 2) == 0
    assert "are finished; nothing to do" in capsys.readouterr().out
    parser = build_parser("t", "config.demo_cifar_config")
    add_cifar_arguments(parser)
    config = load_config(config_path)

    def plan(*argv):
        args = parser.parse_args(["-c", str(folder), "-p", "r8", *map(str, argv)])
        return plan_runs(config, args)

    # --resume: each run from its newest checkpoint; a run never started from scratch.
    requests = plan("--runs", 3, "--resume", "--end-epoch", 3)
    assert [(r.seed, r.start_epoch) for r in requests] == [(3, 2), (4, 2), (5, 0)]
    # --start-epoch N applies to every run.
    requests = plan("--runs", 2, "--start-epoch", 2, "--end-epoch", 4, "--seed", 3)
    assert [(r.seed, r.start_epoch, r.end_epoch) for r in requests] == [(3, 2, 4), (4, 2, 4)]
    assert requests[0].checkpoints == str(folder / "seed3")


def test_depth_picks_the_recipe_and_bad_options_are_refused(config_path, tmp_path, capsys):
    parser = build_parser("t", "config.demo_cifar_config")
    add_cifar_arguments(parser)
    config = load_config(config_path)

    def plan(*argv):
        args = parser.parse_args(["-c", str(tmp_path), "-p", "r", *map(str, argv)])
        return plan_runs(config, args)

    assert plan("--depth", 20)[0].recipe is config.RECIPE
    warm = plan("--depth", 110, "--shortcut", "B", "--variant", "bn_after_add")[0]
    assert warm.recipe is config.RECIPES_BY_DEPTH[110] and warm.recipe.warmup is not None
    assert warm.model_params == {"depth": 110, "shortcut": "B", "variant": "bn_after_add"}
    for paper_config, begin_lr in (("config.cifar10_resnet_config", 0.01),
                                   ("config.cifar10_resnet_torch_config", 0.001)):
        recipe = plan_runs(load_config(paper_config),
                           parser.parse_args(["-c", "x", "-p", "r", "--depth", "110"]))[0].recipe
        assert (recipe.warmup.updates, recipe.warmup.begin_lr) == (400, begin_lr)
    capsys.readouterr()
    assert train(config_path, tmp_path, "--depth", "21") == 2
    assert "depth must be 6n+2" in capsys.readouterr().err
    assert train(config_path, tmp_path, "--resume", "--start-epoch", "1") == 2
    assert "not both" in capsys.readouterr().err
    assert not list(tmp_path.iterdir())


def test_paper_and_torch_presets():
    paper = load_config("config.cifar10_resnet_config")
    assert (paper.RECIPE.base_lr, paper.RECIPE.momentum, paper.RECIPE.weight_decay) == \
        (0.1, 0.9, 1e-4)
    assert paper.RECIPE.schedule.at_updates == (32000, 48000)
    assert paper.RECIPE.num_epochs == 182 and paper.BATCH_SIZE == 128  # 182 * 352 >= 64k
    assert paper.VAL_SIZE == 5000 and paper.AUGMENTATION["pad"] == 4
    torch = load_config("config.cifar10_resnet_torch_config")
    assert torch.RECIPE.schedule.at_epochs == (80, 160) and torch.RECIPE.num_epochs == 200
    assert torch.VAL_SIZE == 0 and torch.MX_OUTPUT != paper.MX_OUTPUT


def test_test_cifar_stats_and_overlay_plot(config_path, study, tmp_path, capsys):
    folder, _ = study
    assert test_cifar.main(["--config", config_path, "--checkpoints", str(folder / "seed3"),
                            "--prefix", "r8", "--epoch", "last"]) == 0
    assert "rank-1:" in capsys.readouterr().out
    report = tmp_path / "stats.json"
    # seed3 has a saved test result now; seed4's is computed (with the run's own config).
    assert stats_main([str(folder), "--prefix", "r8", "--last", "2",
                       "--json", str(report)]) == 0
    out = capsys.readouterr().out
    assert "final test error over 2 run(s):" in out and "(mean ± sample std)" in out
    assert "8.75" not in out  # depth 8 is not in Table 6
    numbers = json.loads(report.read_text())["settings"][0]
    errors = []
    for seed in (SEED, SEED + 1):
        saved = json.loads((folder / f"seed{seed}" / "r8-0002-test.json").read_text())
        assert saved["images"] == 60
        errors.append(100 * (1 - saved["accuracy"]))
    assert numbers["test"]["n"] == 2
    assert numbers["test"]["mean"] == pytest.approx(np.mean(errors))
    assert numbers["test"]["std"] == pytest.approx(np.std(errors, ddof=1))
    assert [r["last_k"]["n"] for r in numbers["runs"]] == [2, 2]

    assert plot_log.main(["--runs", str(folder / "seed3"), str(folder / "seed4"),
                               "--prefix", "r8", "--error", "--output", str(tmp_path)]) == 0
    for name in ("r8_runs_rank1.png", "r8_runs_rank5.png", "r8_runs_loss.png"):
        assert (tmp_path / name).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert "2 runs overlaid" in capsys.readouterr().out


def test_parser_keeps_every_option_of_train_googlenet():
    parser = build_parser("t", "config.demo_cifar_config")
    add_cifar_arguments(parser)
    options = {o for action in parser._actions for o in action.option_strings}
    assert {"--checkpoints", "--prefix", "--start-epoch", "--lr", "--end-epoch", "--config",
            "--seed", "--depth", "--variant", "--shortcut", "--runs", "--resume"} <= options
    assert isinstance(parser.parse_args(["-c", "x", "-p", "y"]), argparse.Namespace)


def test_an_interrupted_study_names_both_resume_commands():
    from pyimagesearch.commands.train_cifar import _resume_all_command, _single_run_argv

    argv = ["--config", "c", "-c", "out", "-p", "r", "--runs", "3", "--seed", "1",
            "--start-epoch", "2", "--lr", "0.01"]
    # run_and_report appends --start-epoch N to this: just the interrupted run.
    assert _single_run_argv(argv, 2) == ["--config", "c", "-c", "out", "-p", "r",
                                         "--start-epoch", "2", "--lr", "0.01", "--seed", "2"]
    assert _resume_all_command(argv).endswith(
        "--config c -c out -p r --runs 3 --seed 1 --resume")
