"""The bare CIFAR ResNet-20 step when the cores are shared: alone, beside one busy process,
beside a second copy of itself; ``OMP_NUM_THREADS`` 2 and 1, and PyTorch's step
(benchmarks/README.md, "bench_threads.py").

    python benchmarks/bench_threads.py [--threads 2,1] [--loads idle,busy,same] [--no-peer]
"""

import argparse
import contextlib
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import benchlib
from benchlib import child_env, summary
from peers import Peers

LOADS = ("idle", "busy", "same")


def child(network: str, seconds: float, repeats: int, quick_run: bool) -> dict[str, Any]:
    """Our bare step in this process (started with the thread settings it measures): the
    median img/s of ``repeats`` timed runs of about ``seconds`` each."""
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


def command(framework: str, threads: int, args: argparse.Namespace, peers: Peers | None,
            seconds: float, repeats: int, out: Path) -> tuple[list[str], dict[str, str]]:
    """The command that measures one framework at one thread count, and its environment."""
    if framework == "mxnet":
        return ([sys.executable, __file__, "--child", args.network, "--seconds", str(seconds),
                 "--repeats", str(repeats), *(["--quick"] if args.quick else [])],
                child_env(OMP_NUM_THREADS=str(threads)))
    assert peers is not None  # train_step.py sets its threads and its path itself
    return ([str(peers.python), str(peers.folder / "train_step.py"), "--framework", "torch",
             "--models", "resnet20", "--threads", str(threads), "--repeats", str(repeats),
             "--min-repeat-s", str(seconds), "--out", str(out)],
            {k: v for k, v in os.environ.items() if k not in ("OMP_NUM_THREADS", "PYTHONPATH")})


def cpu_seconds_of(pid: int) -> float:
    """User + system CPU seconds a live process has used (0 when it is gone)."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except (OSError, IndexError):
        return 0.0
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


@contextlib.contextmanager
def loaded(load: str, competitor: tuple[list[str], dict], head_start: float, deadline: float):
    """The load running (``same``: ``competitor``), once it has used a few CPU seconds."""
    if load == "idle":
        yield
        return
    argv, env = ((competitor[0], competitor[1]) if load == "same" else
                 ([sys.executable, "-c", "while True:\n    pass\n"], child_env()))
    process = subprocess.Popen(argv, env=env, cwd=benchlib.REPO_ROOT,
                               stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        limit = time.monotonic() + deadline
        while cpu_seconds_of(process.pid) < (head_start if load == "same" else 0.5):
            if process.poll() is not None:
                raise RuntimeError(f"the {load} load exited {process.returncode} at once: "
                                   f"{' '.join(argv)}")
            if time.monotonic() > limit:
                break  # a very loaded machine: measure anyway, the load is running
            time.sleep(0.1)
        yield
    finally:
        process.terminate()
        try:
            process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


def main(argv: list[str] | None = None) -> int:
    cli = benchlib.parser(
        __doc__, "tiny batch, 1 round, idle and busy, no peer", rounds=3, timeout=600.0,
        network=("resnet20_b", "bench_training.py's (B: the peer's projection shortcuts)"),
        threads=("2,1", "OMP_NUM_THREADS values of ours"), peer_threads=("2", "PyTorch's"),
        loads=",".join(LOADS), repeats=(3, "timed runs per measurement"),
        seconds=(2.0, "seconds per timed run"), peers_dir=str(benchlib.PEERS_DIR),
        head_start=(6.0, "CPU seconds the 'same' load uses before the measurement"),
        torch_venv=str(benchlib.TORCH_VENV), child=(str, argparse.SUPPRESS))
    cli.add_argument("--no-peer", dest="peer", action="store_false", help="ours only")
    args = cli.parse_args(argv)
    if args.child:
        print(json.dumps(child(args.child, args.seconds, args.repeats, args.quick)))
        return 0
    if args.quick:
        args.rounds, args.repeats, args.seconds, args.head_start = 1, 1, 0.3, 1.0
        args.loads, args.peer = "idle,busy", False
    loads = benchlib.names(cli, args.loads, LOADS, "loads")
    loads = loads if "idle" in loads else ["idle", *loads]  # every ratio is to it
    peers, peer_status = None, "not asked (--no-peer)"
    if args.peer:
        peers = Peers(Path(args.peers_dir), Path(args.torch_venv))
        peer_status = peers.missing() or "ran"
        peers = peers if peer_status == "ran" else None
    conditions = [("mxnet", int(t), f"ours (MXNet), OMP_NUM_THREADS={t}")
                  for t in args.threads.split(",")]
    conditions += [("torch", int(t), f"PyTorch, {t} thread{'s' if int(t) > 1 else ''}")
                   for t in (args.peer_threads.split(",") if peers else [])]
    runs: dict[str, dict[str, list[dict[str, Any]]]] = {
        name: {load: [] for load in loads} for _, _, name in conditions}
    with tempfile.TemporaryDirectory(prefix="bench_threads_") as scratch_name:
        scratch = Path(scratch_name)
        for round_index in range(args.rounds):
            for framework, threads, name in conditions:
                # the same measurement, long enough to outlast the measured one
                competitor = command(framework, threads, args, peers, args.timeout, 1000,
                                     scratch / "competitor.jsonl")
                for load in loads:
                    with loaded(load, competitor, args.head_start, args.timeout / 4):
                        try:
                            found = benchlib.run_json_child(*command(
                                framework, threads, args, peers, args.seconds, args.repeats,
                                scratch / f"peer_{time.time_ns()}.jsonl"), args.timeout,
                                quiet=True)
                            found = {"img_s": found["img_s"], "rates": found.get("rates")}
                        except RuntimeError as error:
                            found = {"error": str(error)}
                    runs[name][load].append({**found, "load_average": os.getloadavg()[0]})
                    print(f"[threads] round {round_index + 1}/{args.rounds} {name}, {load}: "
                          + (f"{found['img_s']:.1f} img/s" if "img_s" in found
                             else f"failed: {found['error']}"), flush=True)
    rows = []
    for framework, threads, name in conditions:
        idle = [r.get("img_s") for r in runs[name]["idle"]]
        for load in loads:
            found = runs[name][load]
            row: dict[str, Any] = {"condition": name, "framework": framework,
                                   "threads": threads, "load": load}
            if rates := [r["img_s"] for r in found if "img_s" in r]:
                row["img_s"] = summary(rates)
            else:
                row["error"] = found[-1]["error"]
            # the ratio to idle within each round: the same drift for both
            paired = [r["img_s"] / i for r, i in zip(found, idle) if "img_s" in r and i]
            if load != "idle" and paired:
                row["of_idle"] = summary(paired)
            rows.append(row)
    benchlib.write_report(args, "threads.json", {
        "benchmark": "bare step with the cores shared", "network": args.network,
        "quick": args.quick, "rounds": args.rounds, "repeats": args.repeats,
        "seconds": args.seconds, "loads": loads, "peer": peer_status, "rows": rows,
        "runs": runs})
    return 0 if all("img_s" in r for r in rows) else 1


if __name__ == "__main__":
    sys.exit(main())
