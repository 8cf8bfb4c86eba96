"""check_setup.py: every check on a CPU machine, several CPU contexts standing in for GPUs."""

from __future__ import annotations

import math

import mxnet as mx
import numpy as np
import pytest

import check_setup
from pyimagesearch.config import load_config
from pyimagesearch.training.setup_check import (
    DEFAULT_TOLERANCE,
    FAIL,
    OK,
    WARN,
    _relative,
    build_check,
    compare_devices,
    network_without_dropout,
    run_checks,
    verdict,
)

NO_GPU = pytest.mark.skipif(mx.context.num_gpus() > 0, reason="checks the CPU-only messages")


@pytest.fixture(scope="module")
def config(tiny_dataset_config):
    return load_config(str(tiny_dataset_config))


def by_name(checks):
    return {check.name: check for check in checks}


@NO_GPU
def test_a_ready_machine_passes_every_check(tiny_dataset_config, tmp_path, capsys):
    code = check_setup.main(["--config", str(tiny_dataset_config), "--cpu-contexts", "2",
                             "--checkpoints", str(tmp_path / "run")])
    lines = capsys.readouterr().out.splitlines()
    assert code == 0, lines
    assert lines[-1] == "Verdict: READY to train"
    assert [line[:6] for line in lines[:-1]] == ["[  OK]"] * 6
    build, gpus, devices, step, dataset, disk = lines[:-1]
    assert "MXNet 1.9.1: CUDA no, cuDNN no, NCCL no, oneDNN yes" in build
    assert "none visible to MXNet; training runs on the CPU" in gpus
    assert devices.endswith("devices: cpu(0), cpu(1)")
    # Both CPU contexts compute exactly what the reference computes.
    assert "2 device(s) against cpu(0) at 28 px" in step
    assert step.count("max |logit diff| 0 (relative 0), max |grad diff| 0 (relative 0)") == 2
    assert "train 32, val 11, test 8 records" in dataset
    assert "GiB free at" in disk and f"(for {tmp_path / 'run'})" in disk


@NO_GPU
def test_more_gpus_than_visible_is_the_one_line_device_error(config, tmp_path):
    asking = config.replace(NUM_DEVICES=3)
    checks = by_name(run_checks(asking, tmp_path, visible=2, driver_gpus=[]))
    assert checks["devices"].status == FAIL
    assert checks["devices"].details == (
        f"{config.source}: NUM_DEVICES = 3, but MXNet sees 2 GPUs (gpu(0), gpu(1)); lower "
        f"NUM_DEVICES to 2 or less, or pick GPUs with --gpus (the batch is BATCH_SIZE x "
        f"devices)")
    assert checks["googlenet step"].status == FAIL  # not run without devices
    line, code = verdict(list(checks.values()))
    assert code == 1 and line.startswith("Verdict: NOT READY: 2 check(s) failed (devices, "
                                         "googlenet step)")


@NO_GPU
def test_gpus_that_are_not_there_fail_the_command(tiny_dataset_config, tmp_path, capsys):
    code = check_setup.main(["--config", str(tiny_dataset_config), "--gpus", "0,2",
                             "--checkpoints", str(tmp_path)])
    out = capsys.readouterr().out
    assert code == 1
    assert "[FAIL] devices: --gpus 0,2: MXNet sees no GPU (a CPU build of MXNet, or no CUDA " \
           "driver); drop --gpus to train on the CPU" in out
    assert out.splitlines()[-1].startswith("Verdict: NOT READY")


def test_a_gpu_config_on_a_cpu_machine_warns(config, tmp_path):
    checks = by_name(run_checks(config.replace(NUM_DEVICES=3), tmp_path, visible=0,
                                driver_gpus=["GPU 0: NVIDIA H200 (UUID: GPU-x)"]))
    assert checks["GPUs"].status == WARN and "NUM_DEVICES = 3" in checks["GPUs"].details
    assert checks["MXNet build"].status == WARN
    assert "nvidia-smi lists 1 GPU(s): this MXNet is a CPU build" in checks["MXNet build"].details
    assert checks["devices"].status == OK  # the CPU path, as training takes it
    line, code = verdict(list(checks.values()))
    assert code == 0 and line == "Verdict: READY to train (2 warning(s): MXNet build, GPUs)"


def test_a_missing_dataset_fails_with_the_build_command(config, tmp_path):
    elsewhere = config.replace(TRAIN_MX_REC=str(tmp_path / "rec" / "train.rec"))
    check = by_name(run_checks(elsewhere, tmp_path, visible=0, driver_gpus=[]))["dataset"]
    assert check.status == FAIL
    assert "manifest" in check.details and "build it with: python build_imagenet.py" in \
        check.details


def test_a_device_that_computes_differently_fails_the_comparison(config):
    net = network_without_dropout(config, [mx.cpu(0), mx.cpu(1)])
    rng = np.random.RandomState(1)
    data = mx.nd.array(rng.uniform(-120, 120, (2, 3, 28, 28)))
    labels = mx.nd.array([0, 3])
    (same,) = compare_devices(net, data, labels, mx.cpu(0), [mx.cpu(1)])
    assert same.worst == 0.0
    # A weight that differs on one device, as a broken kernel or transfer would make it.
    weight = next(p for p in net.collect_params().values() if p.name.endswith("weight"))
    weight.data(mx.cpu(1))[:] *= 1.05
    (broken,) = compare_devices(net, data, labels, mx.cpu(0), [mx.cpu(1)])
    assert broken.worst > DEFAULT_TOLERANCE and broken.logits > 0


def test_relative_difference_and_non_finite_values():
    assert _relative(np.array([1.0, 2.0]), np.array([1.0, 2.5])) == (0.5, 0.2)
    assert _relative(np.array([np.nan]), np.array([1.0])) == (math.inf, math.inf)
    assert _relative(np.zeros(3), np.zeros(3)) == (0.0, 0.0)


def test_the_build_line_names_the_features():
    check = build_check(driver_gpus=[])
    assert check.status == OK
    for feature in ("CUDA", "cuDNN", "NCCL", "oneDNN"):
        assert f"{feature} " in check.details
