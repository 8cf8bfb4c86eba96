"""This machine's fp32 peak: the highest median of an n x n SGEMM through numpy, MXNet's BLAS
and oneDNN with a fixed number of threads, set before numpy and MXNet load; the last line
printed is JSON (benchmarks/README.md, "peak.py").

    python benchmarks/peak.py [--threads 2] [--n 4096] [--repeats 7] [--quick]
"""

import contextlib
import json
import os
import sys
import time

from benchlib import output_path, parser, summary, write_report


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
    args = parser(__doc__, "n = 512, 3 repeats", threads=2, n=4096, repeats=7).parse_args(argv)
    if args.quick:
        args.n, args.repeats = 512, 3
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
    ma, mb = mx.nd.array(a), mx.nd.array(b)
    # FullyConnected computes data @ weight.T: the same 2 n^3 flops, through oneDNN.
    gemms = {"numpy.matmul": ((f"{blas[0].get('internal_api')} {blas[0].get('version')} "
                               f"({blas[0].get('architecture')} kernels)") if blas
                              else "unknown", lambda: np.matmul(a, b, out=c), lambda: None),
             "mx.nd.dot": ("MXNet's BLAS", lambda: mx.nd.dot(ma, mb), mx.nd.waitall),
             "mx.nd.FullyConnected": ("oneDNN inner product", lambda: mx.nd.FullyConnected(
                 ma, mb, num_hidden=n, no_bias=True), mx.nd.waitall)}
    backends = {}
    for name, (library, run, sync) in gemms.items():
        with (threadpoolctl.threadpool_limits(args.threads) if name == "numpy.matmul"
              else contextlib.nullcontext()):  # numpy's bundled OpenBLAS, by threadpoolctl
            backends[name] = {"library": library,
                              "gflops": summary(rates(run, sync, flop, args.repeats))}
    best = max(backends, key=lambda k: backends[k]["gflops"]["median"])
    peak = backends[best]["gflops"]["median"]
    for name, entry in backends.items():
        g = entry["gflops"]
        print(f"{name:22s} {g['median']:7.1f} GFLOP/s (min {g['min']:.1f}, max {g['max']:.1f})"
              f"  {entry['library']}", file=sys.stderr)
    print(f"peak: {peak:.1f} GFLOP/s ({best})", file=sys.stderr)
    write_report(args, "peak.json", {
        "benchmark": "fp32 SGEMM peak", "n": n, "threads": args.threads,
        "repeats": args.repeats, "quick": args.quick, "backends": backends,
        "peak_gflops": peak, "peak_backend": best})
    print(json.dumps({"peak_gflops": peak,
                      "path": str(output_path(args.output, "peak.json", args.quick))}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
