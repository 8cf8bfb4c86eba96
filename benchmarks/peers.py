"""The PyTorch peers, measured on this machine in the same run as ours.

    python benchmarks/peers.py [--quick] [--models googlenet,irv2,resnet20,resnet56]

Runs the scripts of ``../shared/bench-peers`` (tools, not part of this project: see its
README) in their own virtual environment and collects the JSON lines they write:

* ``train_step.py --framework torch`` for each model, plain and ``--channels-last``
  (torchvision GoogLeNet without aux heads, timm Inception-ResNet-v2, CIFAR ResNets with
  projection shortcuts, i.e. option B), 2 threads, fp32, SGD with momentum;
* ``make_images.py`` (photographic JPEGs from scikit-image's samples, in an ImageFolder
  tree), ``pipeline.py --part resize256`` (shorter side 256, as our records store them)
  and ``pipeline.py --part torch`` (torchvision ImageFolder + DataLoader with 2 workers:
  RandomCrop 224, flip, ToTensor, Normalize), with ``OMP_NUM_THREADS`` removed from its
  environment (exported, it makes the DataLoader workers several times slower);
* ``peak.py`` (SGEMM with 2 threads through torch.mm/MKL and that venv's numpy).

``run_all.py`` imports this module and calls the parts between its own measurements.
When the peers folder or the venv is missing nothing fails: the result says so
(``bash ../shared/bench-peers/setup.sh`` creates the venvs; ``--setup`` runs it).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from benchlib import OUTPUT, REPO_ROOT, write_json

DEFAULT_DIR = Path(os.environ.get("BENCH_PEERS_DIR", REPO_ROOT.parent / "shared" / "bench-peers"))
DEFAULT_TORCH = Path(os.environ.get("BENCH_TORCH_VENV", "/tmp/bench-torch"))
MODELS = ("googlenet", "irv2", "resnet20", "resnet56")
SCRIPTS = ("train_step.py", "pipeline.py", "make_images.py", "peak.py")


class Peers:
    """The peer scripts, their venv, and where their results go."""

    def __init__(self, folder: Path = DEFAULT_DIR, torch_venv: Path = DEFAULT_TORCH,
                 out: Path = OUTPUT / "peers", quick: bool = False,
                 timeout: float = 3600) -> None:
        self.folder, self.python = Path(folder), Path(torch_venv) / "bin" / "python"
        self.out, self.quick, self.timeout = Path(out), quick, timeout
        self.log: list[dict[str, Any]] = []

    def missing(self) -> str | None:
        """Why the peers cannot run here, or None."""
        absent = [s for s in SCRIPTS if not (self.folder / s).is_file()]
        if absent:
            return f"peer scripts not found in {self.folder} ({', '.join(absent)})"
        if not self.python.is_file():
            return (f"peer venv {self.python.parent.parent} is missing; create it with "
                    f"bash {self.folder / 'setup.sh'}")
        check = subprocess.run([str(self.python), "-c", "import torch, torchvision, timm"],
                               capture_output=True, text=True)
        if check.returncode != 0:
            return (f"peer venv {self.python.parent.parent} cannot import torch, torchvision "
                    f"and timm ({check.stderr.strip().splitlines()[-1:]}); rerun "
                    f"bash {self.folder / 'setup.sh'}")
        return None

    def setup(self) -> None:
        subprocess.run(["bash", str(self.folder / "setup.sh")], check=False,
                       timeout=self.timeout)

    def _run(self, script: str, args: list[str], drop: tuple[str, ...] = ()) -> None:
        env = {k: v for k, v in os.environ.items() if k not in drop and k != "PYTHONPATH"}
        command = [str(self.python), str(self.folder / script), *args]
        print(f"[peers] {script} {' '.join(args)}", flush=True)
        tic = time.perf_counter()
        done = subprocess.run(command, env=env, cwd=self.folder, timeout=self.timeout,
                              stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
        entry = {"script": script, "args": args, "returncode": done.returncode,
                 "seconds": time.perf_counter() - tic}
        if done.returncode != 0:
            entry["error"] = done.stderr.strip()[-600:]
            print(f"[peers] {script} failed ({done.returncode}): {entry['error']}", flush=True)
        self.log.append(entry)

    def fresh(self) -> None:
        """Forget the result files of an earlier run."""
        self.out.mkdir(parents=True, exist_ok=True)
        for name in ("train_step.jsonl", "pipeline.jsonl", "peak.jsonl"):
            (self.out / name).unlink(missing_ok=True)

    def train_step(self, model: str) -> None:
        """One model, plain and channels_last (alternated, as the issue compares both)."""
        extra = (["--repeats", "1", "--warmup", "1", "--min-steps", "1", "--min-repeat-s",
                  "0.2"] if self.quick else [])
        for layout in ([], ["--channels-last"]):
            self._run("train_step.py", ["--framework", "torch", "--models", model,
                                        "--out", str(self.out / "train_step.jsonl"),
                                        *layout, *extra])

    def peak(self) -> None:
        self._run("peak.py", ["--threads", "2", "--out", str(self.out / "peak.jsonl"),
                              *(["--n", "512", "--reps", "3"] if self.quick else [])])

    def images(self, count: int) -> Path:
        """Photographic JPEGs (make_images.py) and their 256-px copies; returns the former."""
        data = OUTPUT / "peer_data" / f"n{count}"
        self._run("make_images.py", ["--n", str(count), "--out", str(data / "jpeg")])
        resized = data / "jpeg256"
        if sum(len(files) for _, _, files in os.walk(resized)) != count:
            self._run("pipeline.py", ["--part", "resize256", "--jpeg", str(data / "jpeg"),
                                      "--jpeg256", str(resized),
                                      "--out", str(self.out / "pipeline.jsonl")])
        return data / "jpeg"

    def torch_pipeline(self, jpeg: Path, batch: int, repeats: int, epochs: int) -> None:
        self._run("pipeline.py", ["--part", "torch", "--jpeg256", str(jpeg.parent / "jpeg256"),
                                  "--batch", str(batch), "--repeats", str(repeats),
                                  "--epochs", str(epochs),
                                  "--out", str(self.out / "pipeline.jsonl")],
                  drop=("OMP_NUM_THREADS",))

    def results(self) -> dict[str, Any]:
        found: dict[str, Any] = {"status": "ran", "folder": str(self.folder),
                                 "python": str(self.python), "runs": self.log}
        for name in ("train_step", "pipeline", "peak"):
            path = self.out / f"{name}.jsonl"
            found[name] = ([json.loads(line) for line in path.read_text().splitlines()
                            if line.strip()] if path.is_file() else [])
        return found


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="resnet20 only, tiny repeats")
    parser.add_argument("--models", default=",".join(MODELS))
    parser.add_argument("--images", type=int, default=2000)
    parser.add_argument("--peers-dir", default=str(DEFAULT_DIR))
    parser.add_argument("--torch-venv", default=str(DEFAULT_TORCH))
    parser.add_argument("--setup", action="store_true", help="run setup.sh when missing")
    parser.add_argument("--output", default=None, help="JSON path (default peers.json)")
    args = parser.parse_args(argv)
    peers = Peers(Path(args.peers_dir), Path(args.torch_venv), quick=args.quick)
    reason = peers.missing()
    if reason and args.setup and (peers.folder / "setup.sh").is_file():
        peers.setup()
        reason = peers.missing()
    if reason:
        result: dict[str, Any] = {"status": f"skipped: {reason}"}
    else:
        peers.fresh()
        peers.peak()
        for model in (["resnet20"] if args.quick else args.models.split(",")):
            peers.train_step(model)
        jpeg = peers.images(40 if args.quick else args.images)
        peers.torch_pipeline(jpeg, *((16, 1, 1) if args.quick else (64, 3, 2)))
        result = peers.results()
    path = write_json(Path(args.output) if args.output else
                      OUTPUT / ("peers_quick.json" if args.quick else "peers.json"), result)
    print(f"[peers] {result['status']}; wrote {path}", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
