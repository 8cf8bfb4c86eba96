"""The benchmark harness: FLOP counts against hand counts, and a ``run_all.py --quick``
smoke run that writes RESULTS.md and the JSON with every section. No timing is asserted."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest
from conftest import REPO_ROOT

sys.path.insert(0, str(REPO_ROOT / "benchmarks"))

from bench_training import forward_flops
from peers import Peers
from run_all import SECTIONS, targets

from pyimagesearch.nn import get_model


def googlenet_macs_by_hand() -> int:
    """Multiply-adds of the book's GoogLeNet at 224 px, from Table 1 of Szegedy et al."""
    macs = 112 * 112 * 64 * 3 * 7 * 7        # conv1 7x7/2
    macs += 56 * 56 * 64 * 64                # conv2 reduce 1x1
    macs += 56 * 56 * 192 * 64 * 3 * 3       # conv2 3x3
    # (map side, input channels, #1x1, #3x3 reduce, #3x3, #5x5 reduce, #5x5, pool proj)
    for side, c, c1, r3, c3, r5, c5, proj in (
            (28, 192, 64, 96, 128, 16, 32, 32), (28, 256, 128, 128, 192, 32, 96, 64),
            (14, 480, 192, 96, 208, 16, 48, 64), (14, 512, 160, 112, 224, 24, 64, 64),
            (14, 512, 128, 128, 256, 24, 64, 64), (14, 512, 112, 144, 288, 32, 64, 64),
            (14, 528, 256, 160, 320, 32, 128, 128), (7, 832, 256, 160, 320, 32, 128, 128),
            (7, 832, 384, 192, 384, 48, 128, 128)):
        macs += side * side * (c * (c1 + r3 + r5 + proj) + r3 * c3 * 9 + r5 * c5 * 25)
    return macs + 1024 * 1000                # classifier


def cifar_resnet20_macs_by_hand(shortcut: str) -> int:
    macs = 32 * 32 * 16 * 3 * 9 + 6 * 32 * 32 * 16 * 16 * 9             # stem, stage 1
    macs += 16 * 16 * 32 * 16 * 9 + 5 * 16 * 16 * 32 * 32 * 9           # stage 2
    macs += 8 * 8 * 64 * 32 * 9 + 5 * 8 * 8 * 64 * 64 * 9               # stage 3
    if shortcut == "B":                                                 # 1x1 projections
        macs += 16 * 16 * 32 * 16 + 8 * 8 * 64 * 32
    return macs + 64 * 10


def test_forward_flops_of_googlenet_match_a_hand_count_of_table_1():
    flops = forward_flops(get_model("googlenet", num_classes=1000), 224)
    assert flops == 2 * googlenet_macs_by_hand()
    assert flops == 3_165_343_744  # true 5x5 branch: more than torchvision's 2.997e9


@pytest.mark.parametrize("shortcut", ["A", "B"])
def test_forward_flops_of_cifar_resnet20_match_a_hand_count(shortcut):
    net = get_model("cifar_resnet", depth=20, shortcut=shortcut)
    assert forward_flops(net, 32) == 2 * cifar_resnet20_macs_by_hand(shortcut)


def test_missing_peers_are_a_reason_not_a_failure(tmp_path):
    reason = Peers(folder=tmp_path, torch_venv=tmp_path / "venv").missing()
    assert "not found" in reason
    # Without peer figures, the ratios against them are "not measured" (None), not failed.
    results = {"training": [], "peers": {"status": f"skipped: {reason}"}}
    assert targets(results) == []


def test_memory_and_build_targets_are_judged_from_the_measured_figures():
    """Memory growth is a limit in MiB; the build is a ratio that must stay at or under
    1.1x im2rec: a run that misses either says so."""
    def build(cpu_ratio):
        per_image = {"project": {"median": 2.0 * cpu_ratio}, "im2rec": {"median": 2.0}}
        return {"settings": {"source": "photos", "threads": 2, "repeats": 3},
                "ms_per_image": {"cpu": per_image, "wall": per_image},
                "ratio_to_im2rec_per_image": {"cpu": {"project": cpu_ratio},
                                              "wall": {"project": cpu_ratio}}}

    def memory(mib):
        return {"results": [{"network": "googlenet", "crop": 224, "returncode": 0, "growth": {
            "mib": mib, "from_epoch": 3, "to_epoch": 20, "rss_mib": [2000, 2000 + mib]}}]}

    flat = targets({"memory": memory(40.0), "build": build(1.05)})
    assert [t["met"] for t in flat] == [True, True, True]
    grown = targets({"memory": memory(140.0), "build": build(1.2)})
    assert [t["met"] for t in grown] == [False, False, False]
    assert {t["measures"] for t in grown} == {"memory flat", "build vs im2rec"}


@pytest.mark.slow
def test_run_all_quick_writes_results_with_every_section(tmp_path):
    md, js = tmp_path / "RESULTS.md", tmp_path / "results.json"
    done = subprocess.run([sys.executable, str(REPO_ROOT / "benchmarks" / "run_all.py"),
                           "--quick", "--results-md", str(md), "--json", str(js),
                           "--work", str(tmp_path / "work"),
                           # Three networks keep CI short; test_networks.py covers them all.
                           "--networks", "googlenet,resnet20,resnet20_b"],
                          cwd=REPO_ROOT, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    results = json.loads(js.read_text())
    assert results["quick"] and not results["failures"]
    for section in SECTIONS:
        assert results[section], section
    assert [r["network"] for r in results["training"]] == ["googlenet", "resnet20",
                                                            "resnet20_b"]
    google = next(r for r in results["training"] if r["network"] == "googlenet")
    for key in ("bare_step_img_s", "loop_img_s", "loop_over_bare", "bare_step_gflops",
                "data_wait_fraction", "health", "per_epoch_seconds",
                "loop_at_real_epoch_over_bare"):
        assert key in google
    # An epoch's fixed costs spread over a real epoch can only bring the loop closer to the
    # rate measured between them.
    assert google["per_epoch_seconds"]["median"] > 0
    assert google["real_epoch_images"] == 1_281_167
    loop_rate = results["training"][2]["loop_at_real_epoch_img_s"]["median"]
    assert loop_rate >= results["training"][2]["loop_img_s"]["median"]
    assert results["peak"]["peak_gflops"] > 0
    assert results["memory"]["results"][0]["peak_rss_mib"] > 0
    assert results["scaling"]["runs"]["local"]["img_s"]["median"] > 0
    assert results["peers"]["status"].startswith("skipped")
    targets_by_name = {t["target"]: t for t in results["targets"]}
    assert targets_by_name["GoogLeNet achieved GFLOP/s vs PyTorch channels_last"]["met"] is None
    text = md.read_text()
    for heading in ("## Machine", "## Targets", "## Training: bare step and whole loop",
                    "## Beside PyTorch", "## Decode pipeline", "## Building records",
                    "## Memory", "## Training with the cores shared", "## Scaling",
                    "## What the dataset identity checks cost", "## Met and not met",
                    "## How the figures are measured"):
        assert heading in text
    assert "Quick run" in text and "PyTorch peers skipped" in text


@pytest.mark.slow
def test_profile_step_accounts_for_the_step_by_operator_kind(tmp_path):
    """The profiler run sees every convolution of the network, forward and backward, puts
    each operator in its kind, and the operators' time cannot exceed the step by much."""
    out = tmp_path / "profile.json"
    done = subprocess.run([sys.executable, str(REPO_ROOT / "benchmarks" / "profile_step.py"),
                           "--quick", "--networks", "resnet20_b,inception_resnet_v2",
                           "--output", str(out), "--markdown", str(tmp_path / "p.md")],
                          cwd=REPO_ROOT, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    results = {r["network"]: r for r in json.loads(out.read_text())["results"]}
    resnet = results["resnet20_b"]
    # ResNet-20 B: the stem, 18 in the blocks and 2 projections = 21 per forward pass.
    assert resnet["operators"]["Convolution"]["count_per_step"] == 21
    assert resnet["operators"]["_backward_Convolution"]["count_per_step"] == 21
    assert resnet["operators"]["Convolution"]["kind"] == "convolution forward"
    assert resnet["operators"]["_backward_Convolution"]["kind"] == "convolution backward"
    kinds = resnet["kinds_ms_per_step"]
    assert kinds["convolution forward"] > 0 and kinds["convolution backward"] > 0
    assert resnet["operator_ms_per_step"] <= 1.2 * resnet["wall_ms_per_step"]
    # Inception-ResNet-v2 scales its residuals on the 1x1 weights and uses oneDNN's ReLU:
    # no plain relu, and no scalar multiplication over activations (only over weights).
    irv2 = results["inception_resnet_v2"]["operators"]
    assert "relu" not in irv2 and "_backward_relu" not in irv2
    assert "| convolution backward |" in (tmp_path / "p.md").read_text()
