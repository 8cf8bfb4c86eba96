"""The bare CIFAR ResNet-20 step when the cores are shared: alone, beside one busy process,
beside a second training; with ``OMP_NUM_THREADS`` 2 and 1, and PyTorch's step beside it.

    python benchmarks/bench_threads.py                   # 3 rounds, with the PyTorch peer
    python benchmarks/bench_threads.py --threads 2,1 --loads idle,busy --no-peer
    python benchmarks/bench_threads.py --quick           # a smoke run (CI)

What a user sees who trains while something else runs (a record build, a second
experiment) on a small machine. Each measurement is a process of its own, started after
the load:

- ``idle``: nothing else started by this script;
- ``busy``: one process spinning on one core (a pure-Python loop, as a single-threaded
  worker would);
- ``same``: a second copy of the same measurement (same framework and threads), started
  first and running for the whole measurement.

The load is running before the measured process starts: this script waits until the
load process has used a few CPU seconds (``--head-start``), an event rather than a fixed
sleep. Ours: ``bench_training.py``'s bare step (forward, backward, SGD update of the
hybridized network on one batch in memory) with ``OMP_NUM_THREADS`` exported to the
process (``pyimagesearch.runtime`` keeps what is exported). PyTorch:
``../shared/bench-peers/train_step.py --framework torch --threads N`` in its venv (CIFAR
ResNet-20 with projection shortcuts, so ours is ``resnet20_b`` by default: like for like).
The conditions run in turn, ``--rounds`` times; a ratio to ``idle`` is taken within each
round (the same drift for both), and the median of the rounds is reported.

Writes benchmarks/output/threads.json (threads_quick.json with --quick). No timing is
asserted.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from benchlib import REPO_ROOT, child_env, machine, output_path, summary, write_json
from peers import DEFAULT_DIR, DEFAULT_TORCH, Peers

LOADS = ("idle", "busy", "same")
BUSY_LOOP = "while True:\n    pass\n"


def child(network: str, seconds: float, repeats: int, quick_run: bool) -> dict[str, Any]:
    """Our bare step in this process: median img/s of ``repeats`` timed runs of about
    ``seconds`` each (started by ``main`` with the thread settings it measures)."""
    import bench_training as bt  # imports pyimagesearch first: the thread defaults apply
    import mxnet as mx

    case = bt.quick(bt.NETWORKS[network]) if quick_run else bt.NETWORKS[network]
    with tempfile.TemporaryDirectory() as scratch:
        setup = bt.make_setup(case, Path(scratch), 100)
        one = bt.bare_step(setup, case, 1)  # warm-up inside; sizes the timed runs
        steps = max(3, int(seconds * one / case.batch) + 1)
        rates = [bt.bare_step(setup, case, steps) for _ in range(repeats)]
        setup.log.close()
    mx.nd.waitall()
    return {"img_s": statistics.median(rates), "rates": rates, "steps": steps,
            "omp_num_threads": os.environ.get("OMP_NUM_THREADS")}


def cpu_seconds_of(pid: int) -> float:
    """User + system CPU seconds a live process has used (0 when it is gone)."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except (OSError, IndexError):
        return 0.0
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


class Condition:
    """One framework at one thread count: the command that measures it, and the command
    of its ``same`` load."""

    def __init__(self, framework: str, threads: int, args: argparse.Namespace,
                 peers: Peers | None) -> None:
        self.framework, self.threads, self.args, self.peers = framework, threads, args, peers
        self.name = (f"ours (MXNet), OMP_NUM_THREADS={threads}" if framework == "mxnet"
                     else f"PyTorch, {threads} thread{'s' if threads > 1 else ''}")

    def command(self, seconds: float, repeats: int, out: Path) -> tuple[list[str], dict]:
        if self.framework == "mxnet":
            command = [sys.executable, __file__, "--child", self.args.network, "--seconds",
                       str(seconds), "--repeats", str(repeats)]
            command += ["--quick"] if self.args.quick else []
            return command, child_env(OMP_NUM_THREADS=str(self.threads))
        assert self.peers is not None
        env = {k: v for k, v in os.environ.items()
               if k not in ("OMP_NUM_THREADS", "PYTHONPATH")}  # train_step.py sets them
        return ([str(self.peers.python), str(self.peers.folder / "train_step.py"),
                 "--framework", "torch", "--models", "resnet20", "--threads",
                 str(self.threads), "--repeats", str(repeats), "--min-repeat-s",
                 str(seconds), "--out", str(out)], env)

    def measure(self, scratch: Path) -> dict[str, Any]:
        out = scratch / f"peer_{time.time_ns()}.jsonl"
        command, env = self.command(self.args.seconds, self.args.repeats, out)
        done = subprocess.run(command, env=env, cwd=REPO_ROOT, capture_output=True, text=True,
                              timeout=self.args.timeout)
        lines = done.stdout.strip().splitlines()
        if done.returncode != 0 or not lines:
            tail = (done.stderr.strip().splitlines() or ["no output"])[-1]
            return {"error": f"exited {done.returncode}: {tail}"}
        found = json.loads(lines[-1])
        return {"img_s": found["img_s"], "rates": found.get("rates")}

    def competitor(self, scratch: Path) -> tuple[list[str], dict]:
        """The same measurement, long enough to outlast the measured one."""
        return self.command(self.args.timeout, 1000, scratch / "competitor.jsonl")


def start_load(load: str, condition: Condition, scratch: Path,
               head_start: float, deadline: float) -> subprocess.Popen | None:
    """Start the load and wait until it has used ``head_start`` CPU seconds."""
    if load == "idle":
        return None
    if load == "busy":
        command, env, needed = [sys.executable, "-c", BUSY_LOOP], child_env(), 0.5
    else:
        (command, env), needed = condition.competitor(scratch), head_start
    process = subprocess.Popen(command, env=env, cwd=REPO_ROOT, stdout=subprocess.DEVNULL,
                               stderr=subprocess.DEVNULL)
    limit = time.monotonic() + deadline
    while cpu_seconds_of(process.pid) < needed:
        if process.poll() is not None:
            raise RuntimeError(f"the {load} load exited {process.returncode} at once: "
                               f"{' '.join(command)}")
        if time.monotonic() > limit:
            break  # a very loaded machine: measure anyway, the load is running
        time.sleep(0.1)
    return process


def stop_load(process: subprocess.Popen | None) -> None:
    if process is None:
        return
    process.terminate()
    try:
        process.wait(timeout=30)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--network", default="resnet20_b",
                        help="bench_training.py's network (default resnet20_b: the peer's "
                             "projection shortcuts)")
    parser.add_argument("--threads", default="2,1", help="OMP_NUM_THREADS values of ours")
    parser.add_argument("--peer-threads", default="2", help="PyTorch thread counts")
    parser.add_argument("--loads", default=",".join(LOADS),
                        help=f"comma-separated, from: {', '.join(LOADS)}")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--repeats", type=int, default=3, help="timed runs per measurement")
    parser.add_argument("--seconds", type=float, default=2.0, help="seconds per timed run")
    parser.add_argument("--head-start", type=float, default=6.0,
                        help="CPU seconds the 'same' load uses before the measurement starts")
    parser.add_argument("--no-peer", dest="peer", action="store_false",
                        help="ours only (the default when the peer venv is missing)")
    parser.add_argument("--peers-dir", default=str(DEFAULT_DIR))
    parser.add_argument("--torch-venv", default=str(DEFAULT_TORCH))
    parser.add_argument("--quick", action="store_true",
                        help="smoke run: tiny batch, 1 round, idle and busy, no peer")
    parser.add_argument("--timeout", type=float, default=600)
    parser.add_argument("--output", default=None)
    parser.add_argument("--child", default=None, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.child:
        print(json.dumps(child(args.child, args.seconds, args.repeats, args.quick)))
        return 0
    if args.quick:
        args.rounds, args.repeats, args.seconds, args.head_start = 1, 1, 0.3, 1.0
        args.loads, args.peer = "idle,busy", False
    loads = [x.strip() for x in args.loads.split(",") if x.strip()]
    if unknown := [x for x in loads if x not in LOADS]:
        parser.error(f"unknown loads {unknown}; known: {', '.join(LOADS)}")
    if "idle" not in loads:
        loads.insert(0, "idle")  # every ratio is to it
    peers, peer_status = None, "not asked (--no-peer)"
    if args.peer:
        peers = Peers(Path(args.peers_dir), Path(args.torch_venv))
        peer_status = peers.missing() or "ran"
        if peer_status != "ran":
            peers = None
    conditions = [Condition("mxnet", int(t), args, None) for t in args.threads.split(",")]
    if peers:
        conditions += [Condition("torch", int(t), args, peers)
                       for t in args.peer_threads.split(",")]

    runs: dict[str, dict[str, list[dict[str, Any]]]] = {
        c.name: {load: [] for load in loads} for c in conditions}
    with tempfile.TemporaryDirectory(prefix="bench_threads_") as scratch_name:
        scratch = Path(scratch_name)
        for round_index in range(args.rounds):
            for condition in conditions:
                for load in loads:
                    process = start_load(load, condition, scratch, args.head_start,
                                         args.timeout / 4)
                    try:
                        found = condition.measure(scratch)
                    finally:
                        stop_load(process)
                    found["load_average"] = os.getloadavg()[0]
                    runs[condition.name][load].append(found)
                    print(f"[threads] round {round_index + 1}/{args.rounds} {condition.name}, "
                          f"{load}: " + (f"{found['img_s']:.1f} img/s" if "img_s" in found
                                         else f"failed: {found['error']}"), flush=True)

    rows = []
    for condition in conditions:
        idle = [r.get("img_s") for r in runs[condition.name]["idle"]]
        for load in loads:
            found = runs[condition.name][load]
            rates = [r["img_s"] for r in found if "img_s" in r]
            row: dict[str, Any] = {"condition": condition.name,
                                   "framework": condition.framework,
                                   "threads": condition.threads, "load": load}
            if rates:
                row["img_s"] = summary(rates)
            else:
                row["error"] = found[-1]["error"]
            paired = [r["img_s"] / i for r, i in zip(found, idle) if "img_s" in r and i]
            if load != "idle" and paired:
                row["of_idle"] = summary(paired)
            rows.append(row)
            print(f"[threads] {condition.name}, {load}: "
                  + (f"{row['img_s']['median']:.1f} img/s" if rates else row["error"])
                  + (f" = {row['of_idle']['median']:.2f} of idle" if "of_idle" in row
                     else ""), flush=True)
    report = {"benchmark": "bare step with the cores shared", "network": args.network,
              "quick": args.quick, "rounds": args.rounds, "repeats": args.repeats,
              "seconds": args.seconds, "loads": loads, "peer": peer_status, "rows": rows,
              "runs": runs, "machine": machine()}
    path = write_json(output_path(args.output, "threads.json", args.quick), report)
    print(f"[threads] wrote {path}", flush=True)
    return 0 if all("img_s" in r for r in rows) else 1


if __name__ == "__main__":
    sys.exit(main())
