"""GoogLeNet's bare training step under what MXNet 1.9 offers beyond the defaults, against
this machine's peak, all in one run.

    python benchmarks/step_options.py                      # every option, 3 rounds
    python benchmarks/step_options.py --options default,bn_relu --rounds 5
    python benchmarks/step_options.py --quick              # a smoke run: tiny sizes

Each option runs in a process of its own (MXNet reads its environment variables once,
when it loads), the options in turn, ``--rounds`` times, so that a shared machine's drift
hits them alike; ``peak.py`` runs first and last. Per option: img/s of the bare step of
``bench_training.py`` (forward, backward, SGD update of the hybridized network on one
batch in memory; the median of the rounds with min and max), GFLOP/s and % of the peak
(the higher of the two peak runs), and the training numbers of the first steps (losses
and a hash of the weights after them), which say whether the option changes results:

- ``default``: the network as built (CONV => BN => ReLU units, hybridized with
  ``static_alloc``/``static_shape``), the project's thread defaults;
- ``bn_relu``: BatchNorm and ReLU as one operator (``nn.BatchNormReLU``: oneDNN's batch
  norm with its fused ReLU, forward and backward);
- ``bulk_large``: the engine runs up to 1,000 operators per bulk instead of 15
  (``MXNET_EXEC_BULK_EXEC_MAX_NODE_TRAIN_FWD/BWD``);
- ``no_bulk``: one engine call per operator (``MXNET_EXEC_BULK_EXEC_TRAIN=0``);
- ``subgraph_env``: ``MXNET_SUBGRAPH_BACKEND=MKLDNN`` exported;
- ``optimize_for``: ``HybridBlock.optimize_for(x, backend="MKLDNN")`` before training;
- ``channels_last``: convolutions with ``layout="NHWC"`` (and BN over the last axis),
  after a single NHWC convolution has trained (MXNet 1.9's CPU build refuses it).

An option MXNet refuses is reported with its error. Writes
``benchmarks/output/step_options.json`` (``step_options_quick.json``).
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
from benchlib import REPO_ROOT, child_env, machine, output_path, run_json_child, write_json

ENVIRONMENTS = {
    "bulk_large": {"MXNET_EXEC_BULK_EXEC_MAX_NODE_TRAIN_FWD": "1000",
                   "MXNET_EXEC_BULK_EXEC_MAX_NODE_TRAIN_BWD": "1000"},
    "no_bulk": {"MXNET_EXEC_BULK_EXEC_TRAIN": "0"},
    "subgraph_env": {"MXNET_SUBGRAPH_BACKEND": "MKLDNN"},
}
OPTIONS = ("default", "bn_relu", "bulk_large", "no_bulk", "subgraph_env", "optimize_for",
           "channels_last")
TRAINING_STEPS = 3  # steps whose losses and weights compare the options' numbers


def _patch_units(option: str) -> None:
    """Rebuild ``ConvBNAct`` for the graph-changing options (before the network is built)."""
    from mxnet.gluon import nn

    from pyimagesearch.nn import googlenet, layers

    class Unit(nn.HybridSequential):
        def __init__(self, in_channels, channels, kernel_size, strides=1, padding=0,
                     activation="relu", bn_epsilon=1e-5, bn_scale=True, **kwargs):
            super().__init__(**kwargs)
            nhwc = option == "channels_last"
            with self.name_scope():
                self.add(nn.Conv2D(channels, kernel_size, strides=strides, padding=padding,
                                   use_bias=False, in_channels=in_channels,
                                   layout="NHWC" if nhwc else "NCHW"))
                # The same parameter names as ConvBNAct's, so weights initialise alike.
                if option == "bn_relu" and activation == "relu":
                    self.add(nn.BatchNormReLU(in_channels=channels, epsilon=bn_epsilon,
                                              scale=bn_scale, prefix="batchnorm0_"))
                    return
                self.add(nn.BatchNorm(axis=3 if nhwc else 1, in_channels=channels,
                                      epsilon=bn_epsilon, scale=bn_scale))
                if activation is not None:
                    self.add(nn.Activation(activation))

    layers.ConvBNAct = googlenet.ConvBNAct = Unit


def refuse_unless_nhwc_convolution_trains() -> None:
    """One NHWC convolution, forward and backward: MXNet 1.9's CPU build (oneDNN) refuses
    it, and its own error is the answer (GoogLeNet's pooling and concatenation are NCHW
    only in ``_patch_units``, which would fail next for a reason of this script's)."""
    import mxnet as mx
    from mxnet import autograd, gluon

    conv = gluon.nn.Conv2D(8, 3, padding=1, layout="NHWC", in_channels=8)
    conv.initialize()
    x = mx.nd.random.uniform(shape=(2, 16, 16, 8))
    x.attach_grad()
    try:
        with autograd.record():
            y = conv(x)
        y.backward()
        mx.nd.waitall()
    except mx.base.MXNetError as error:
        raise RuntimeError(f"MXNet {mx.__version__} refuses an NHWC convolution on "
                           f"{mx.cpu()}: {str(error).splitlines()[0]}") from None


def child(option: str, steps: int, quick_run: bool) -> dict[str, Any]:
    """One option's measurement, in this process (started by ``main``)."""
    import bench_training as bt  # imports pyimagesearch first: the thread defaults
    import mxnet as mx
    import numpy as np

    if option == "channels_last":
        refuse_unless_nhwc_convolution_trains()
    if option in ("bn_relu", "channels_last"):
        _patch_units(option)
    case = bt.quick(bt.NETWORKS["googlenet"]) if quick_run else bt.NETWORKS["googlenet"]
    with tempfile.TemporaryDirectory() as scratch:
        setup = bt.make_setup(case, Path(scratch), steps)
        data, label = bt.in_memory_batch(case)
        if option == "channels_last":
            data = data.transpose((0, 2, 3, 1))
            raise_unless_nhwc_runs = setup.net(data)  # MXNet says here if it cannot
            raise_unless_nhwc_runs.wait_to_read()
        if option == "optimize_for":
            setup.net.optimize_for(data, backend="MKLDNN", static_alloc=True,
                                   static_shape=True)
        losses = [float(bt.one_step(setup, data, label).mean().asscalar())
                  for _ in range(TRAINING_STEPS)]
        digest = hashlib.sha256()
        for _, param in sorted(setup.net.collect_params().items()):
            digest.update(param.data().asnumpy().astype(np.float32).tobytes())
        rates = [bt.bare_step(setup, case, steps) for _ in range(2)]
        flops = bt.forward_flops(setup.net, case.size) if option != "channels_last" else None
        setup.log.close()
    mx.nd.waitall()
    return {"option": option, "img_s": max(rates), "losses": losses,
            "weights_sha256": digest.hexdigest(), "forward_flops": flops}


def run_child(option: str, steps: int, quick_run: bool, timeout: float) -> dict[str, Any]:
    env = child_env(**ENVIRONMENTS.get(option, {}))
    command = [sys.executable, __file__, "--child", option, "--steps", str(steps)]
    command += ["--quick"] if quick_run else []
    done = subprocess.run(command, env=env, cwd=REPO_ROOT, capture_output=True, text=True,
                          timeout=timeout)
    lines = done.stdout.strip().splitlines()
    if done.returncode != 0 or not lines:
        errors = [line for line in done.stderr.splitlines() if "Error" in line]
        return {"option": option, "error": (errors or done.stderr.splitlines() or ["?"])[-1]}
    return json.loads(lines[-1])


def peak(quick_run: bool, timeout: float) -> float:
    argv = [str(REPO_ROOT / "benchmarks" / "peak.py"), "--output",
            f"step_options_peak_{time.time_ns()}.json"] + (["--quick"] if quick_run else [])
    return float(run_json_child(argv, child_env(), timeout)["peak_gflops"])


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--options", default=",".join(OPTIONS),
                        help=f"comma-separated, from: {', '.join(OPTIONS)}")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--steps", type=int, default=None,
                        help="bare steps per measurement (default 10; 2 with --quick)")
    parser.add_argument("--quick", action="store_true", help="smoke run: tiny sizes")
    parser.add_argument("--timeout", type=float, default=1800)
    parser.add_argument("--output", default=None)
    parser.add_argument("--child", default=None, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    steps = args.steps or (2 if args.quick else 10)
    if args.child:
        print(json.dumps(child(args.child, steps, args.quick)))
        return 0
    options = [o.strip() for o in args.options.split(",") if o.strip()]
    if unknown := [o for o in options if o not in OPTIONS]:
        parser.error(f"unknown options {unknown}; known: {', '.join(OPTIONS)}")
    peaks = [peak(args.quick, args.timeout)]
    runs: dict[str, list[dict[str, Any]]] = {o: [] for o in options}
    # Every child's figures as they come: a run cut short (a time window) keeps them.
    partial = output_path(None, "step_options_partial.json", args.quick)
    for round_index in range(args.rounds):
        for option in options:
            runs[option].append(run_child(option, steps, args.quick, args.timeout))
            write_json(partial, {"peak_gflops": peaks, "steps": steps, "runs": runs})
            r = runs[option][-1]
            print(f"[step_options] round {round_index + 1}/{args.rounds} {option}: "
                  + (f"{r['img_s']:.2f} img/s" if "img_s" in r else f"failed: {r['error']}"),
                  flush=True)
    peaks.append(peak(args.quick, args.timeout))
    best_peak = max(peaks)
    reference = next((r for r in runs.get("default", []) if "losses" in r), None)
    results = []
    for option, found in runs.items():
        good = [r for r in found if "img_s" in r]
        entry: dict[str, Any] = {"option": option, "environment": ENVIRONMENTS.get(option, {})}
        if not good:
            entry["error"] = found[-1]["error"]
        else:
            rates = [r["img_s"] for r in good]
            flops = good[0]["forward_flops"] or (reference or {}).get("forward_flops")
            median = statistics.median(rates)
            entry.update(img_s={"median": median, "min": min(rates), "max": max(rates)},
                         gflops=median * 3 * flops / 1e9 if flops else None,
                         losses=good[0]["losses"], weights_sha256=good[0]["weights_sha256"])
            if entry["gflops"]:
                entry["percent_of_peak"] = 100 * entry["gflops"] / best_peak
            if reference is not None:
                entry["same_weights_as_default"] = (good[0]["weights_sha256"]
                                                    == reference["weights_sha256"])
                entry["largest_loss_difference"] = max(
                    abs(a - b) for a, b in zip(good[0]["losses"], reference["losses"]))
        results.append(entry)
        print(f"[step_options] {option}: "
              + (f"{entry['img_s']['median']:.2f} img/s "
                 f"({entry['img_s']['min']:.2f}-{entry['img_s']['max']:.2f})"
                 + (f", {entry['gflops']:.0f} GFLOP/s = {entry['percent_of_peak']:.0f}% of "
                    f"{best_peak:.0f}" if entry.get("gflops") else "")
                 + (f"; losses {entry['losses']}, weights "
                    f"{'the same as' if entry.get('same_weights_as_default') else 'differ from'}"
                    f" default's" if reference else "")
                 if "img_s" in entry else f"not run: {entry['error']}"), flush=True)
    report = {"benchmark": "GoogLeNet bare step under MXNet 1.9's options", "quick": args.quick,
              "rounds": args.rounds, "steps": steps, "peak_gflops": peaks,
              "results": results, "machine": machine(),
              "load_average": os.getloadavg()}
    path = write_json(output_path(args.output, "step_options.json", args.quick), report)
    print(f"[step_options] wrote {path}", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
