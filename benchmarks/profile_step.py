"""Where a training step's time goes: MXNet's profiler (aggregate statistics) over the bare
step of ``bench_training.py``, per operator kind, the time outside operators, and the
convolution kernels' own GFLOP/s. Not part of ``make bench``; findings in PROFILE.md,
details in benchmarks/README.md ("profile_step.py").

    python benchmarks/profile_step.py [--networks googlenet,resnet20_b,resnet56_b] [--steps N]
                                      [--peak-gflops G] [--markdown PATH] [--quick]
"""

import json
import os
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

# MXNet runs a hybridized graph's operators in bulks, which the profiler reports as one
# entry per bulk; one operator per engine call makes the per-operator times readable. The
# wall time here is therefore that of unbulked execution (see the "step (wall)" note).
os.environ.setdefault("MXNET_EXEC_BULK_EXEC_TRAIN", "0")
os.environ.setdefault("MXNET_EXEC_BULK_EXEC_INFERENCE", "0")
sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
# First: importing pyimagesearch sets the project's thread defaults before MXNet loads.
import pyimagesearch  # noqa: F401

# isort: split
import mxnet as mx
from bench_training import NETWORKS, forward_flops, in_memory_batch, make_setup, one_step, quick
from benchlib import markdown_table, names, parser, write_report

DEFAULT_NETWORKS = "googlenet,resnet20_b,resnet56_b"
# Operator name (as the profiler reports it) -> kind. Checked in order; the first match wins
# (a name ending in "_" matches every operator it begins).
KINDS = tuple((kind, tuple(names.split())) for kind, names in (
    ("convolution backward", "_backward_Convolution _backward_sg_mkldnn_conv "
                             "_backward_Deconvolution"),
    ("convolution forward", "Convolution _sg_mkldnn_conv Deconvolution"),
    ("dense", "FullyConnected _backward_FullyConnected _sg_mkldnn_fully_connected"),
    ("BatchNorm backward", "_backward_BatchNorm"),
    ("BatchNorm forward", "BatchNorm"),
    ("activation", "Activation _backward_Activation relu _backward_relu LeakyReLU "
                   "_backward_LeakyReLU"),
    ("pooling", "Pooling _backward_Pooling _contrib_AdaptiveAvgPooling2D "
                "_backward_contrib_AdaptiveAvgPooling2D"),
    ("loss", "log_softmax _backward_log_softmax softmax pick _backward_pick SoftmaxOutput mean "
             "_backward_mean sum _backward_sum negative _backward_negative"),
    ("optimizer update", "sgd_mom_update sgd_update multi_sgd_mom_update multi_mp_sgd_mom_update "
                         "preloaded_multi_sgd_mom_update adam_update _multi_adamw_update "
                         "multi_sum_sq multi_lars _contrib_multi_lamb_update"),
    ("element-wise, copies, layout", "elemwise_add _backward_add _plus add_n ElementWiseSum "
                                     "broadcast_ _copyto _copy Concat _backward_Concat concat "
                                     "SliceChannel slice _backward_slice Reshape Flatten _zeros "
                                     "_ones Dropout _backward_Dropout Pad _backward_Pad Cast "
                                     "amp_cast _full _backward_copy CopyCPU2CPU _mul _minus _div "
                                     "_rminus_scalar _mul_scalar _backward_mul_scalar"),
))
OTHER = "other operators (engine bookkeeping included)"


def kind_of(operator: str) -> str:
    for kind, operators in KINDS:
        for name in operators:
            if operator == name or (name.endswith("_") and operator.startswith(name)):
                return kind
    return OTHER


def operator_totals(stats: dict[str, Any]) -> dict[str, dict[str, float]]:
    """Operator name -> {"count", "total_ms"} from the profiler's aggregate JSON, whose
    operator domain holds every operator run (imperative and inside hybridized graphs)."""
    found: dict[str, dict[str, float]] = {}
    for domain, entries in (stats.get("Time") or {}).items():
        if "operator" not in domain.lower():
            continue
        for name, entry in entries.items():
            slot = found.setdefault(name, {"count": 0.0, "total_ms": 0.0})
            slot["count"] += float(entry.get("Count", 0))
            slot["total_ms"] += float(entry.get("Total", 0.0))
    return found


def profile(name: str, steps: int, quick_run: bool) -> dict[str, Any]:
    case = quick(NETWORKS[name]) if quick_run else NETWORKS[name]
    with tempfile.TemporaryDirectory() as scratch:
        setup = make_setup(case, Path(scratch), steps)
        data, label = in_memory_batch(case)
        for _ in range(2):  # graph building, memory planning, oneDNN primitive creation
            one_step(setup, data, label)
        mx.nd.waitall()
        mx.profiler.set_config(profile_all=True, aggregate_stats=True,
                               filename=str(Path(scratch) / "profile.json"))
        mx.profiler.set_state("run")
        tic = time.perf_counter()
        for _ in range(steps):
            one_step(setup, data, label)
        mx.nd.waitall()
        wall_ms = (time.perf_counter() - tic) * 1000 / steps
        mx.profiler.set_state("stop")
        stats = json.loads(mx.profiler.dumps(reset=True, format="json"))
        flops = forward_flops(setup.net, case.size)
        setup.log.close()
    operators = operator_totals(stats)
    kinds: dict[str, float] = {}
    for operator, entry in operators.items():
        kind = kind_of(operator)
        kinds[kind] = kinds.get(kind, 0.0) + entry["total_ms"] / steps
    operator_ms = sum(kinds.values())
    conv_ms = sum(kinds.get(k, 0.0) for k in ("convolution forward", "convolution backward",
                                             "dense"))
    step_gflop = 3 * flops * case.batch / 1e9
    return {
        "network": name, "input": case.size, "batch": case.batch, "steps": steps,
        "wall_ms_per_step": wall_ms, "operator_ms_per_step": operator_ms,
        "outside_operators_ms_per_step": max(0.0, wall_ms - operator_ms),
        "kinds_ms_per_step": dict(sorted(kinds.items(), key=lambda kv: -kv[1])),
        "step_gflop": step_gflop,
        "step_gflops": step_gflop / (wall_ms / 1000),
        "conv_dense_kernel_gflops": step_gflop / (conv_ms / 1000) if conv_ms else None,
        "operators": {k: {"kind": kind_of(k), "count_per_step": v["count"] / steps,
                          "ms_per_step": v["total_ms"] / steps}
                      for k, v in sorted(operators.items(), key=lambda kv: -kv[1]["total_ms"])},
    }


def markdown(results: list[dict[str, Any]], peak: float | None) -> str:
    def share(ms: float, r: dict[str, Any]) -> str:
        return f"{ms:.1f} ms ({100 * ms / r['wall_ms_per_step']:.0f}%)"

    def of_peak(gflops: float | None) -> str:
        if not gflops:
            return "n/a"
        return f"{gflops:.0f}" + (f" ({100 * gflops / peak:.0f}% of peak)" if peak else "")

    rows = [[kind, *(share(r["kinds_ms_per_step"].get(kind, 0.0), r) for r in results)]
            for kind in [k for k, _ in KINDS] + [OTHER]]
    rows += [["outside operators (Python, engine, waiting)",
              *(share(r["outside_operators_ms_per_step"], r) for r in results)],
             ["**step (wall)**", *(f"**{r['wall_ms_per_step']:.1f} ms**" for r in results)],
             ["step GFLOP/s", *(of_peak(r["step_gflops"]) for r in results)],
             ["conv + dense kernels alone, GFLOP/s",
              *(of_peak(r["conv_dense_kernel_gflops"]) for r in results)]]
    header = ["kind", *(f"{r['network']} ({r['input']} px, b{r['batch']})" for r in results)]
    return "\n".join(markdown_table(header, rows))


def main(argv: list[str] | None = None) -> int:
    cli = parser(__doc__, "tiny sizes", networks=(DEFAULT_NETWORKS, f"from: {', '.join(NETWORKS)}"),
                 steps=(int, "profiled steps per network (default: bench_training's epoch)"),
                 peak_gflops=(float, "the measured peak (peak.py): %% of peak"),
                 markdown=(str, "also write the table here"))
    args = cli.parse_args(argv)
    results = []
    for name in names(cli, args.networks, NETWORKS, "networks"):
        case = NETWORKS[name]
        steps = args.steps or (2 if args.quick else max(2, min(10, case.images // case.batch)))
        results.append(r := profile(name, steps, args.quick))
        top = ", ".join(f"{k} {v:.1f} ms" for k, v in list(r["kinds_ms_per_step"].items())[:4])
        print(f"{name}: step {r['wall_ms_per_step']:.1f} ms, operators "
              f"{r['operator_ms_per_step']:.1f} ms ({top})", flush=True)
    table = markdown(results, args.peak_gflops)
    print(table)
    write_report(args, "profile.json", {
        "benchmark": "profile of the bare training step", "quick": args.quick,
        "peak_gflops": args.peak_gflops, "results": results})
    if args.markdown:
        Path(args.markdown).write_text(table)
    return 0


if __name__ == "__main__":
    sys.exit(main())
