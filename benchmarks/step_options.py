"""GoogLeNet's bare training step under what MXNet 1.9 offers beyond the defaults (fused
BatchNorm+ReLU, engine bulk sizes, the oneDNN subgraph backend, ``optimize_for``, NHWC),
each option in a process of its own, in turn, ``--rounds`` times, against this machine's
peak (``peak.py`` first and last); each reports its first losses and a hash of the weights,
so an option that changes the training numbers shows. Not part of ``make bench``; findings
in PROFILE.md, details in benchmarks/README.md ("step_options.py").

    python benchmarks/step_options.py [--options default,bn_relu,...] [--rounds 3] [--quick]
"""

import argparse
import hashlib
import json
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
import benchlib
from benchlib import child_env

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
    command = [sys.executable, __file__, "--child", option, "--steps", str(steps)]
    try:
        return benchlib.run_json_child(command + (["--quick"] if quick_run else []),
                                       child_env(**ENVIRONMENTS.get(option, {})), timeout,
                                       quiet=True)
    except RuntimeError as error:
        return {"option": option, "error": str(error)}


def peak(quick_run: bool, timeout: float) -> float:
    command = [sys.executable, str(benchlib.BENCH_DIR / "peak.py"), "--output",
               f"step_options_peak_{time.time_ns()}.json"] + (["--quick"] if quick_run else [])
    return float(benchlib.run_json_child(command, child_env(), timeout)["peak_gflops"])


def main(argv: list[str] | None = None) -> int:
    cli = benchlib.parser(__doc__, "tiny sizes", options=",".join(OPTIONS), rounds=3,
                          steps=(int, "bare steps per measurement (default 10; 2 with --quick)"),
                          timeout=1800.0, child=(str, argparse.SUPPRESS))
    args = cli.parse_args(argv)
    steps = args.steps or (2 if args.quick else 10)
    if args.child:
        print(json.dumps(child(args.child, steps, args.quick)))
        return 0
    options = benchlib.names(cli, args.options, OPTIONS, "options")
    peaks = [peak(args.quick, args.timeout)]
    runs: dict[str, list[dict[str, Any]]] = {o: [] for o in options}
    # Every child's figures as they come: a run cut short (a time window) keeps them.
    partial = benchlib.output_path(None, "step_options_partial.json", args.quick)
    for round_index in range(args.rounds):
        for option in options:
            runs[option].append(r := run_child(option, steps, args.quick, args.timeout))
            benchlib.write_json(partial, {"peak_gflops": peaks, "steps": steps, "runs": runs})
            print(f"[step_options] round {round_index + 1}/{args.rounds} {option}: "
                  + (f"{r['img_s']:.2f} img/s" if "img_s" in r else f"failed: {r['error']}"),
                  flush=True)
    peaks.append(peak(args.quick, args.timeout))
    reference = next((r for r in runs.get("default", []) if "losses" in r), None)
    results = []
    for option, found in runs.items():
        entry: dict[str, Any] = {"option": option, "environment": ENVIRONMENTS.get(option, {})}
        results.append(entry)
        if not (good := [r for r in found if "img_s" in r]):
            entry["error"] = found[-1]["error"]
            continue
        rates = [r["img_s"] for r in good]
        flops = good[0]["forward_flops"] or (reference or {}).get("forward_flops")
        median = statistics.median(rates)
        entry.update(img_s={"median": median, "min": min(rates), "max": max(rates)},
                     gflops=median * 3 * flops / 1e9 if flops else None,
                     losses=good[0]["losses"], weights_sha256=good[0]["weights_sha256"])
        if entry["gflops"]:
            entry["percent_of_peak"] = 100 * entry["gflops"] / max(peaks)
        if reference is not None:  # does the option change the training numbers?
            entry["same_weights_as_default"] = (good[0]["weights_sha256"]
                                                == reference["weights_sha256"])
            entry["largest_loss_difference"] = max(
                abs(a - b) for a, b in zip(good[0]["losses"], reference["losses"]))
    benchlib.write_report(args, "step_options.json", {
        "benchmark": "GoogLeNet bare step under MXNet 1.9's options", "quick": args.quick,
        "rounds": args.rounds, "steps": steps, "peak_gflops": peaks, "results": results,
        "load_average": os.getloadavg()})
    return 0


if __name__ == "__main__":
    sys.exit(main())
