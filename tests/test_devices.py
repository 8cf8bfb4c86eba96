"""Which devices a run gets: NUM_DEVICES, --gpus, the CPU path, and the one-line errors."""

from __future__ import annotations

import mxnet as mx
import pytest

import test_googlenet
import train_googlenet
from pyimagesearch.config import ConfigError
from pyimagesearch.settings import argument_type
from pyimagesearch.training.devices import DeviceError, select_contexts

NO_GPU = pytest.mark.skipif(mx.context.num_gpus() > 0, reason="checks the CPU-only path")


def test_num_devices_within_the_visible_gpus_takes_the_first_ones():
    # Contexts are only named here, never used: this runs without GPUs too.
    assert select_contexts(2, visible=3) == [mx.gpu(0), mx.gpu(1)]
    assert select_contexts(3, gpus=(0, 2), visible=3) == [mx.gpu(0), mx.gpu(2)]


def test_more_gpus_than_visible_names_the_setting_the_config_and_the_count():
    with pytest.raises(DeviceError) as caught:
        select_contexts(3, source="config/imagenet_googlenet_config.py", visible=1)
    assert str(caught.value) == (
        "config/imagenet_googlenet_config.py: NUM_DEVICES = 3, but MXNet sees 1 GPU (gpu(0)); "
        "lower NUM_DEVICES to 1 or less, or pick GPUs with --gpus (the batch is BATCH_SIZE x "
        "devices)")
    assert isinstance(caught.value, ConfigError)  # the commands' one-line error path
    with pytest.raises(DeviceError, match=r"^--gpus 0,2: MXNet sees 2 GPUs \(gpu\(0\), "
                                          r"gpu\(1\)\); gpu\(2\) is not among them"):
        select_contexts(1, gpus=(0, 2), visible=2)


def test_without_gpus_the_cpu_path_stays():
    assert select_contexts(3, visible=0) == [mx.cpu(0)]
    assert select_contexts(3, cpu_contexts=2, visible=0) == [mx.cpu(0), mx.cpu(1)]
    with pytest.raises(DeviceError, match="--gpus 1: MXNet sees no GPU .*drop --gpus"):
        select_contexts(1, gpus=(1,), visible=0)


@pytest.mark.parametrize("text, expected", [("0", (0,)), ("0,2", (0, 2)), ("3,1", (3, 1))])
def test_gpus_option_parses_gpu_numbers(text, expected):
    assert argument_type("--gpus")(text) == expected


@pytest.mark.parametrize("text, message", [
    ("1,1", "names a GPU twice"), ("-1", "GPU numbers >= 0"), ("a,b", "GPU numbers >= 0"),
    ("", "GPU numbers >= 0"), ("0,,1", "GPU numbers >= 0")])
def test_gpus_option_refuses_what_is_not_a_list_of_gpus(text, message, capsys):
    with pytest.raises(SystemExit) as caught:
        train_googlenet.main(["--checkpoints", "x", "--prefix", "p", "--gpus", text])
    assert caught.value.code == 2
    assert message in capsys.readouterr().err


@NO_GPU
def test_train_and_test_with_absent_gpus_fail_in_one_line(tiny_dataset_config, tmp_path, capsys):
    common = ["--config", str(tiny_dataset_config), "--checkpoints", str(tmp_path),
              "--prefix", "net", "--gpus", "0"]
    assert train_googlenet.main(common) == 2
    assert test_googlenet.main([*common, "--epoch", "1"]) == 2
    errors = capsys.readouterr().err.strip().splitlines()
    assert errors == ["[ERROR] --gpus 0: MXNet sees no GPU (a CPU build of MXNet, or no CUDA "
                      "driver); drop --gpus to train on the CPU (--cpu-contexts N splits the "
                      "batch)"] * 2
    assert not list(tmp_path.glob("training_*.log"))  # refused before any work
