"""This machine's measured fp32 peak: a large square SGEMM with a fixed number of threads.

    python benchmarks/peak.py [--threads 2] [--n 4096] [--repeats 7] [--quick]

Every GEMM our venv can call, each C = A @ B of n x n float32 (2 n^3 flops), timed
``--repeats`` times after a warm-up:

* ``numpy.matmul`` (numpy's bundled OpenBLAS, limited to ``--threads`` by threadpoolctl);
* ``mx.nd.dot`` (the BLAS MXNet was built with);
* ``mx.nd.FullyConnected`` (oneDNN's GEMM: the kernels MXNet's convolutions and dense
  layers run on; on CPUs with AVX-512 it is the fastest of the three).

The machine's peak is the highest median of the three: "% of peak" elsewhere is taken
against it, so a slow BLAS cannot flatter a ratio. Thread variables are set before numpy
and MXNet load, so run this as its own process. Writes benchmarks/output/peak.json
(peak_quick.json with --quick); prints the JSON as its last line.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time

from benchlib import machine, output_path, summary, write_json


def parse(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--n", type=int, default=4096)
    parser.add_argument("--repeats", type=int, default=7)
    parser.add_argument("--quick", action="store_true", help="n = 512, 3 repeats")
    parser.add_argument("--output", default=None, help="JSON file (default peak.json)")
    args = parser.parse_args(argv)
    if args.quick:
        args.n, args.repeats = 512, 3
    return args


def rates(run, sync, flop: float, repeats: int) -> list[float]:
    run()
    sync()  # warm-up: thread pools, page faults of the output, oneDNN's kernel choice
    found = []
    for _ in range(repeats):
        tic = time.perf_counter()
        run()
        sync()
        found.append(flop / (time.perf_counter() - tic) / 1e9)
    return found


def main(argv: list[str] | None = None) -> int:
    args = parse(argv)
    for name in ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS"):
        os.environ[name] = str(args.threads)
    import mxnet as mx
    import numpy as np
    import threadpoolctl

    n, flop = args.n, 2.0 * args.n ** 3
    rng = np.random.default_rng(0)
    a = rng.standard_normal((n, n), dtype=np.float32)
    b = rng.standard_normal((n, n), dtype=np.float32)
    c = np.empty((n, n), dtype=np.float32)
    blas = [i for i in threadpoolctl.threadpool_info()
            if i.get("user_api") == "blas" and "numpy" in i.get("filepath", "")]
    backends = {}
    with threadpoolctl.threadpool_limits(args.threads):
        backends["numpy.matmul"] = {
            "library": (f"{blas[0].get('internal_api')} {blas[0].get('version')} "
                        f"({blas[0].get('architecture')} kernels)") if blas else "unknown",
            "gflops": summary(rates(lambda: np.matmul(a, b, out=c), lambda: None, flop,
                                    args.repeats))}
    ma, mb = mx.nd.array(a), mx.nd.array(b)
    backends["mx.nd.dot"] = {
        "library": "MXNet's BLAS",
        "gflops": summary(rates(lambda: mx.nd.dot(ma, mb), mx.nd.waitall, flop, args.repeats))}
    # FullyConnected computes data @ weight.T: the same 2 n^3 flops, through oneDNN.
    backends["mx.nd.FullyConnected"] = {
        "library": "oneDNN inner product",
        "gflops": summary(rates(lambda: mx.nd.FullyConnected(ma, mb, num_hidden=n,
                                                             no_bias=True),
                                mx.nd.waitall, flop, args.repeats))}
    best = max(backends, key=lambda k: backends[k]["gflops"]["median"])
    report = {"benchmark": "fp32 SGEMM peak", "n": n, "threads": args.threads,
              "repeats": args.repeats, "quick": args.quick, "backends": backends,
              "peak_gflops": backends[best]["gflops"]["median"], "peak_backend": best,
              "machine": machine()}
    path = write_json(output_path(args.output, "peak.json", args.quick), report)
    for name, entry in backends.items():
        g = entry["gflops"]
        print(f"{name:22s} {g['median']:7.1f} GFLOP/s (min {g['min']:.1f}, max {g['max']:.1f})"
              f"  {entry['library']}", file=sys.stderr)
    print(f"peak: {report['peak_gflops']:.1f} GFLOP/s ({best}); wrote {path}", file=sys.stderr)
    print(json.dumps({"peak_gflops": report["peak_gflops"], "path": str(path)}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
