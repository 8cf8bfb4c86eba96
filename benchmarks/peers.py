"""The PyTorch peers: the scripts of ``../shared/bench-peers`` (tools, not part of this
project) run in their venv, their JSON lines collected; ``run_all.py`` calls the parts
between its own measurements (benchmarks/README.md, "peers.py").

    python benchmarks/peers.py [--quick] [--models googlenet,irv2,resnet20,resnet56] [--setup]
"""

import json
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from benchlib import OUTPUT, PEERS_DIR, TORCH_VENV, output_path, parser, write_json

MODELS = ("googlenet", "irv2", "resnet20", "resnet56")
SCRIPTS = ("train_step.py", "pipeline.py", "make_images.py", "peak.py")


class Peers:
    """The peer scripts, their venv, and where their results go."""

    def __init__(self, folder: Path = PEERS_DIR, torch_venv: Path = TORCH_VENV,
                 out: Path = OUTPUT / "peers", quick: bool = False,
                 timeout: float = 3600) -> None:
        self.folder, self.python = Path(folder), Path(torch_venv) / "bin" / "python"
        self.out, self.quick, self.timeout = Path(out), quick, timeout
        self.log: list[dict[str, Any]] = []

    def missing(self) -> str | None:
        """Why the peers cannot run here, or None."""
        if absent := [s for s in SCRIPTS if not (self.folder / s).is_file()]:
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

    def ready(self, setup: bool = False) -> str | None:
        """Why the peers cannot run (after ``setup.sh`` with ``setup``), or None: then the
        result files of an earlier run are forgotten."""
        reason = self.missing()
        if reason and setup and (self.folder / "setup.sh").is_file():
            print("[peers] running setup.sh", flush=True)
            subprocess.run(["bash", str(self.folder / "setup.sh")], check=False,
                           timeout=self.timeout)
            reason = self.missing()
        if reason is None:
            self.out.mkdir(parents=True, exist_ok=True)
            for name in ("train_step.jsonl", "pipeline.jsonl", "peak.jsonl"):
                (self.out / name).unlink(missing_ok=True)
        return reason

    def _run(self, script: str, args: list[str], drop: tuple[str, ...] = ()) -> None:
        env = {k: v for k, v in os.environ.items() if k not in drop and k != "PYTHONPATH"}
        print(f"[peers] {script} {' '.join(args)}", flush=True)
        tic = time.perf_counter()
        done = subprocess.run([str(self.python), str(self.folder / script), *args], env=env,
                              cwd=self.folder, timeout=self.timeout, text=True,
                              stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        entry = {"script": script, "args": args, "returncode": done.returncode,
                 "seconds": time.perf_counter() - tic}
        if done.returncode != 0:
            entry["error"] = done.stderr.strip()[-600:]
            print(f"[peers] {script} failed ({done.returncode}): {entry['error']}", flush=True)
        self.log.append(entry)

    def train_step(self, model: str) -> None:
        """One model, plain and channels_last (alternated: the targets compare both)."""
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
        count = 40 if self.quick else count
        data = OUTPUT / "peer_data" / f"n{count}"
        self._run("make_images.py", ["--n", str(count), "--out", str(data / "jpeg")])
        resized = data / "jpeg256"
        if sum(len(files) for _, _, files in os.walk(resized)) != count:
            self._run("pipeline.py", ["--part", "resize256", "--jpeg", str(data / "jpeg"),
                                      "--jpeg256", str(resized),
                                      "--out", str(self.out / "pipeline.jsonl")])
        return data / "jpeg"

    def torch_pipeline(self, jpeg: Path) -> None:
        sizes = ("16", "1", "1") if self.quick else ("64", "3", "2")  # batch, repeats, epochs
        self._run("pipeline.py", ["--part", "torch", "--jpeg256", str(jpeg.parent / "jpeg256"),
                                  *(a for pair in zip(("--batch", "--repeats", "--epochs"), sizes)
                                    for a in pair), "--out", str(self.out / "pipeline.jsonl")],
                  drop=("OMP_NUM_THREADS",))  # exported, it slows the DataLoader's workers

    def results(self) -> dict[str, Any]:
        def lines(path: Path) -> list[dict]:
            text = path.read_text() if path.is_file() else ""
            return [json.loads(line) for line in text.splitlines() if line.strip()]

        return {"status": "ran", "folder": str(self.folder), "python": str(self.python),
                "runs": self.log, **{n: lines(self.out / f"{n}.jsonl")
                                     for n in ("train_step", "pipeline", "peak")}}


def main(argv: list[str] | None = None) -> int:
    args = parser(__doc__, "resnet20 only, tiny repeats", models=",".join(MODELS), images=2000,
                  peers_dir=str(PEERS_DIR), torch_venv=str(TORCH_VENV),
                  setup=(False, "run setup.sh when missing")).parse_args(argv)
    peers = Peers(Path(args.peers_dir), Path(args.torch_venv), quick=args.quick)
    if reason := peers.ready(args.setup):
        result: dict[str, Any] = {"status": f"skipped: {reason}"}
    else:
        peers.peak()
        for model in (["resnet20"] if args.quick else args.models.split(",")):
            peers.train_step(model)
        peers.torch_pipeline(peers.images(args.images))
        result = peers.results()
    path = write_json(output_path(args.output, "peers.json", args.quick), result)
    print(f"[peers] {result['status']}; wrote {path}", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
