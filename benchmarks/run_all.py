"""``make bench``: every benchmark of the project, the PyTorch peers in the same run, and
RESULTS.md with the issue's targets marked met or not met.

    python benchmarks/run_all.py                      # the full run (about an hour here)
    python benchmarks/run_all.py --quick              # smoke run (CI): tiny sizes, no peers
    python benchmarks/run_all.py --no-peers --networks googlenet,resnet20_b
    python benchmarks/run_all.py --sections peak,training --networks resnet56,resnet56_b

Sections, each in its own process (so each measures with the environment it reports):

1. ``peak``: ``peak.py``, the machine's fp32 SGEMM peak with 2 threads (and the peers'
   ``peak.py`` in the PyTorch venv);
2. ``training``: ``bench_training.py --health`` network by network, each followed at
   once by the PyTorch peer's ``train_step.py`` (plain and channels_last) for the same
   workload, so that drift on this shared machine hits both sides of a ratio alike;
3. ``pipeline``: the peers' photographic JPEGs (``make_images.py``), our records of
   them and ``bench_pipeline.py``, then torchvision's DataLoader on the same photos;
4. ``memory``: ``bench_memory.py`` (peak RSS, RSS epoch after epoch);
5. ``scaling``: ``bench_scaling.py`` (1 vs 2 workers on the parameter server).

Writes RESULTS.md (default benchmarks/RESULTS.md; benchmarks/output/RESULTS_quick.md with
--quick, so a smoke run never replaces the committed figures) and the JSON of everything
(benchmarks/output/results.json, or results_quick.json). A section that fails is reported
in both and makes the exit status 1; peers that are missing are a note, not a failure.
Nothing here asserts a timing.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from benchlib import (
    BENCH_DIR,
    OUTPUT,
    REPO_ROOT,
    child_env,
    thread_environment,
    write_json,
)
from benchlib import markdown_table as table  # short: every section renders tables
from peers import Peers

SECTIONS = ("peak", "training", "pipeline", "memory", "scaling")
# Our networks, in the order they run, grouped with the PyTorch peer model measured right
# after them (None: no peer). Shortcut B is the like-for-like CIFAR comparison.
GROUPS = (
    ("googlenet", ("googlenet",), "googlenet"),
    ("inception_resnet_v2", ("inception_resnet_v2",), "irv2"),
    ("resnet20", ("resnet20", "resnet20_b"), "resnet20"),
    ("resnet56", ("resnet56", "resnet56_b"), "resnet56"),
    ("resnet110", ("resnet110", "resnet110_b"), None),
)
ALL_NETWORKS = tuple(n for _, names, _ in GROUPS for n in names)
LABELS = {
    "googlenet": "GoogLeNet (book, true 5x5)", "inception_resnet_v2": "Inception-ResNet-v2",
    "resnet20": "CIFAR ResNet-20 A", "resnet20_b": "CIFAR ResNet-20 B",
    "resnet56": "CIFAR ResNet-56 A", "resnet56_b": "CIFAR ResNet-56 B",
    "resnet110": "CIFAR ResNet-110 A", "resnet110_b": "CIFAR ResNet-110 B",
}
PEER_LABELS = {"googlenet": "torchvision GoogLeNet (3x3 '5x5' branch)",
               "irv2": "timm Inception-ResNet-v2", "resnet20": "CIFAR ResNet-20 B",
               "resnet56": "CIFAR ResNet-56 B"}
# Our network compared with each peer model for the targets.
PEER_OF = {"googlenet": "googlenet", "inception_resnet_v2": "irv2", "resnet20_b": "resnet20",
           "resnet56_b": "resnet56"}
WAIT_LIMIT = 0.01  # "never waits for data", as measured here: at most 1% of the loop


class Run:
    """One ``run_all`` invocation: where its files go, what ran, what failed."""

    def __init__(self, args: argparse.Namespace) -> None:
        self.args = args
        self.work = Path(args.work) if args.work else OUTPUT / (
            "run_all_quick" if args.quick else "run_all")
        self.work.mkdir(parents=True, exist_ok=True)
        self.failures: dict[str, str] = {}
        self.started = time.perf_counter()

    def say(self, message: str) -> None:
        minutes = (time.perf_counter() - self.started) / 60
        print(f"[run_all {minutes:5.1f} min] {message}", flush=True)

    def script(self, section: str, name: str, script: str, args: list[str]) -> dict | None:
        """Run a benchmark script with ``--output``; its JSON, or None (failure noted)."""
        path = self.work / f"{name}.json"
        path.unlink(missing_ok=True)
        command = [sys.executable, str(BENCH_DIR / script), *args, "--output", str(path)]
        if self.args.quick:
            command.append("--quick")
        self.say(f"{section}: {' '.join(command[1:])}")
        try:
            done = subprocess.run(command, cwd=REPO_ROOT, env=child_env(),
                                  timeout=self.args.timeout)
            code = done.returncode
        except subprocess.TimeoutExpired:
            code = "timeout"
        if not path.is_file():
            self.failures[name] = f"{script} exited {code} without results"
            return None
        if code != 0:
            self.failures[name] = f"{script} exited {code} (partial results kept)"
        return json.loads(path.read_text())


def peers_for(run: Run) -> tuple[Peers | None, str | None]:
    if not run.args.peers:
        return None, ("skipped (--quick runs without peers unless --peers)" if run.args.quick
                      else "skipped (--no-peers)")
    peers = Peers(quick=run.args.quick, timeout=run.args.timeout)
    reason = peers.missing()
    if reason and run.args.setup_peers and (peers.folder / "setup.sh").is_file():
        run.say("peers: running setup.sh")
        peers.setup()
        reason = peers.missing()
    if reason:
        return None, f"skipped: {reason}"
    peers.fresh()
    return peers, None


def measure(run: Run) -> dict[str, Any]:
    args = run.args
    results: dict[str, Any] = {"sections": list(args.sections),
                               "networks": list(args.networks),
                               "environment": thread_environment()}
    peers, why_not = peers_for(run)
    results["peers_status"] = why_not or "ran"
    run.say(f"peers: {results['peers_status']}")
    peak = None
    if "peak" in args.sections:
        results["peak"] = run.script("peak", "peak", "peak.py", [])
        peak = (results["peak"] or {}).get("peak_gflops")
        if peers:
            peers.peak()
    if "training" in args.sections:
        training = []
        extra = (["--health"] if args.health else []) + (
            ["--peak-gflops", f"{peak:.3f}"] if peak else []) + (
            [] if args.quick else ["--repeats", str(args.repeats)])
        groups = [(group, [n for n in names if n in args.networks], peer_model)
                  for group, names, peer_model in GROUPS]
        if args.quick and not peers:  # one process: start-up costs more than the work here
            groups = [("all", [n for _, names, _ in groups for n in names], None)]
        for group, chosen, peer_model in groups:
            if not chosen:
                continue
            found = run.script("training", f"training_{group}", "bench_training.py",
                               ["--networks", ",".join(chosen), *extra])
            if found:
                training.extend(found["results"])
                results.setdefault("training_machine", found.get("machine"))
            if peers and peer_model and (not args.quick or peer_model == "resnet20"):
                peers.train_step(peer_model)
        results["training"] = training
    if "pipeline" in args.sections:
        pipeline_args = []
        if peers:
            jpeg = peers.images(40 if args.quick else args.peer_images)
            pipeline_args = ["--jpeg-folder", str(jpeg)]
        results["pipeline"] = run.script("pipeline", "pipeline", "bench_pipeline.py",
                                         pipeline_args)
        if peers:
            peers.torch_pipeline(jpeg, *((16, 1, 1) if args.quick else (64, 3, 2)))
    if "memory" in args.sections:
        results["memory"] = run.script("memory", "memory", "bench_memory.py", [])
    if "scaling" in args.sections:
        results["scaling"] = run.script("scaling", "scaling", "bench_scaling.py", [])
    results["peers"] = peers.results() if peers else {"status": why_not}
    for entry in results["peers"].get("runs", []):
        if entry.get("returncode"):
            run.failures[f"peers {entry['script']} {' '.join(entry['args'][:4])}"] = \
                entry.get("error", "failed")
    return results


# ----------------------------------------------------------------------------------------
# Figures derived from the sections: the peak, the peers' rows, the targets
# ----------------------------------------------------------------------------------------

def machine_peak(results: dict[str, Any]) -> tuple[float | None, str]:
    """The highest median SGEMM rate measured in this run (ours and the peers'), and by what."""
    candidates = []
    for name, entry in ((results.get("peak") or {}).get("backends") or {}).items():
        candidates.append((entry["gflops"]["median"], f"{name} ({entry['library']})"))
    for entry in (results.get("peers") or {}).get("peak", []):
        candidates.append((entry["gflops_median"], f"{entry['backend']} (PyTorch venv)"))
    if not candidates:
        return None, "not measured"
    return max(candidates)


def peer_step(results: dict[str, Any], model: str, channels_last: bool) -> dict | None:
    for entry in (results.get("peers") or {}).get("train_step", []):
        if entry.get("key") == model and ("channels_last" in entry["framework"]) == \
                channels_last:
            return entry
    return None


def torch_pipeline(results: dict[str, Any]) -> dict | None:
    found = [e for e in (results.get("peers") or {}).get("pipeline", [])
             if e.get("part") == "torch"]
    return found[-1] if found else None


def pipeline_rows(results: dict[str, Any]) -> list[dict[str, Any]]:
    return [{**row, "omp_in_process": run["environment"].get("OMP_NUM_THREADS")}
            for run in (results.get("pipeline") or {}).get("runs", []) for row in run["rows"]]


def network(results: dict[str, Any], name: str) -> dict | None:
    return next((r for r in results.get("training") or [] if r["network"] == name), None)


def target(name: str, ours: float | None, other: float | None, required: float,
           unit: str, detail: str = "", ratio: float | None = None) -> dict[str, Any]:
    if ratio is None and ours is not None and other:
        ratio = ours / other
    return {"target": name, "ours": ours, "reference": other, "ratio": ratio,
            "required": required, "unit": unit,
            "met": None if ratio is None else ratio >= required, "detail": detail}


def targets(results: dict[str, Any]) -> list[dict[str, Any]]:
    found = []
    peak, _ = machine_peak(results)
    google = network(results, "googlenet")
    cl = peer_step(results, "googlenet", True)
    if google:
        ours = google["bare_step_gflops"]["median"]
        found.append(target("GoogLeNet achieved GFLOP/s vs PyTorch channels_last", ours,
                            cl and cl["achieved_gflops"], 1.3, "GFLOP/s",
                            "bare step; ours counts the true 5x5 branch"))
        found.append(target("GoogLeNet % of this machine's peak", ours, peak, 0.75,
                            "GFLOP/s", "bare step against the highest SGEMM median"))
    for ours_name, peer_model, required, label in (
            ("inception_resnet_v2", "irv2", 1.15, "Inception-ResNet-v2"),
            ("resnet20_b", "resnet20", 1.0, "CIFAR ResNet-20 (shortcut B)"),
            ("resnet56_b", "resnet56", 1.0, "CIFAR ResNet-56 (shortcut B)")):
        entry = network(results, ours_name)
        if entry:
            cl = peer_step(results, peer_model, True)
            found.append(target(f"{label} img/s vs PyTorch channels_last",
                                entry["bare_step_img_s"]["median"], cl and cl["img_s"],
                                required, "img/s", "bare step"))
    rows = [r for r in pipeline_rows(results) if r.get("img_s")]
    crop = [r for r in rows if r["augmentation"] == "crop_mirror"]
    if crop:
        best = max(crop, key=lambda r: r["img_s"]["median"])
        tv = torch_pipeline(results)
        found.append(target(
            "Decode + augment vs torchvision DataLoader", best["img_s"]["median"],
            tv and tv["img_s"], 2.0, "img/s",
            f"crop+mirror+mean, best row: {best['iterator']}, preprocess_threads "
            f"{best['preprocess_threads']}, {best['process']}"))
    trained = results.get("training") or []
    if trained:
        worst = max(trained, key=lambda r: r["data_wait_fraction"]["median"])
        wait = worst["data_wait_fraction"]["median"]
        found.append(target("The training loop never waits for data (data path <= 1% of the loop)",
                            wait, WAIT_LIMIT, 1.0, "fraction",
                            f"most: {worst['network']}",
                            ratio=WAIT_LIMIT / wait if wait > 0 else float("inf")))
    for entry in trained:
        real = entry.get("loop_at_real_epoch_over_bare")
        measured = entry["loop_over_bare"]["median"]
        found.append(target(
            f"Whole loop / bare step, {LABELS.get(entry['network'])}",
            (entry.get("loop_at_real_epoch_img_s") or entry["loop_img_s"])["median"],
            entry["bare_step_img_s"]["median"], 0.95, "img/s",
            f"at a real epoch ({entry.get('real_epoch_images', 0):,} images); the timed "
            f"epoch of {entry['images_per_epoch']} images measured {measured:.3f}"
            if real else "as measured", ratio=real["median"] if real else measured))
    return found


# ----------------------------------------------------------------------------------------
# RESULTS.md
# ----------------------------------------------------------------------------------------

def num(value: float | None, digits: int = 1) -> str:
    if value is None:
        return "n/a"
    if value == float("inf"):
        return "inf"
    return f"{value:,.{digits}f}"


def spread(entry: dict | None, digits: int = 1, scale: float = 1.0) -> str:
    """``median (min-max)`` of a summary."""
    if not entry:
        return "n/a"
    if entry.get("repeats", 2) == 1:
        return num(scale * entry["median"], digits)
    return (f"{num(scale * entry['median'], digits)} ({num(scale * entry['min'], digits)}"
            f"-{num(scale * entry['max'], digits)})")


def render_machine(results: dict[str, Any]) -> list[str]:
    # peak.py sets its own thread variables: the training process's are the ones to show.
    info = results.get("training_machine") or (results.get("peak") or {}).get("machine") or {}
    lines = ["## Machine", ""]
    if not info:
        return [*lines, "Not recorded (the peak and training sections did not run).", ""]
    threads = {k: v for k, v in (info.get("threads") or {}).items() if v is not None}
    exported = {k: v for k, v in (results.get("environment") or {}).items() if v is not None}
    peers = results.get("peers") or {}
    torch = next((e["framework"] for e in peers.get("train_step", [])), None)
    rows = [["CPU", f"{info['cpu']}, {info['cores']} cores"],
            ["Python / MXNet / numpy", f"{info['python']} / {info['mxnet']} / {info['numpy']}"],
            ["MXNet features", ", ".join(info.get("mxnet_features", []))],
            ["Thread variables exported to run_all",
             ", ".join(f"`{k}={v}`" for k, v in exported.items()) or "none"],
            ["... as the training process sees them (after importing pyimagesearch)",
             ", ".join(f"`{k}={v}`" for k, v in threads.items()) or "none"],
            ["PyTorch peer", torch or peers.get("status", "not run")],
            ["Measured", info.get("date", "")]]
    lines += table(["", ""], rows, left=2)
    peak, backend = machine_peak(results)
    entries = []
    for name, entry in ((results.get("peak") or {}).get("backends") or {}).items():
        entries.append([f"{name} ({entry['library']}), this venv", spread(entry["gflops"])])
    for entry in peers.get("peak", []):
        entries.append([f"{entry['backend']}, PyTorch venv",
                        f"{num(entry['gflops_median'])} ({num(entry['gflops_min'])}"
                        f"-{num(entry['gflops_best'])})"])
    if entries:
        n = (results.get("peak") or {}).get("n")
        lines += [f"fp32 SGEMM, 2 threads{f', n = {n}' if n else ''}, GFLOP/s, median (min-max):",
                  "", *table(["GEMM", "GFLOP/s"], entries),
                  f"**Peak used for % of peak: {num(peak)} GFLOP/s** ({backend}), the "
                  f"highest median measured in this run.", ""]
    return lines


def render_targets(found: list[dict[str, Any]], results: dict[str, Any]) -> list[str]:
    lines = ["## Targets (issue 9)", ""]
    if not found:
        return [*lines, "No target could be evaluated (sections missing).", ""]
    rows = []
    for t in found:
        met = {True: "**met**", False: "**not met**", None: "not measured"}[t["met"]]
        if t["unit"] == "fraction":
            ours, ref = f"{100 * t['ours']:.2f}% of loop time", f"limit {100 * t['reference']:.0f}%"
        else:
            ours, ref = f"{num(t['ours'])} {t['unit']}", (
                f"{num(t['reference'])} {t['unit']}" if t["reference"] is not None else
                "n/a")
        ratio = (num(t["ratio"], 2) if t["unit"] != "fraction" else
                 ("yes" if t["met"] else "no") if t["met"] is not None else "n/a")
        rows.append([t["target"] + (f" ({t['detail']})" if t["detail"] else ""), ours, ref,
                     ratio, f">= {t['required']:g}" if t["unit"] != "fraction" else "",
                     met])
    lines += table(["target", "ours", "reference", "ratio", "required", ""], rows)
    if results.get("peers_status") != "ran":
        lines += [f"PyTorch peers: {results.get('peers_status')}; the ratios against them "
                  f"are not measured.", ""]
    return lines


def render_training(results: dict[str, Any], peak: float | None) -> list[str]:
    trained = results.get("training") or []
    lines = ["## Training: bare step and whole loop", ""]
    if not trained:
        return [*lines, "Not run.", ""]
    rows = []
    for r in trained:
        health = r.get("health")
        rows.append([
            LABELS.get(r["network"], r["network"]), f"{r['input']} px, b{r['batch']}",
            num(r["forward_gflops_per_image"], 3), spread(r["bare_step_img_s"]),
            spread(r["loop_img_s"]), spread(r["loop_over_bare"], 3),
            (num(r["per_epoch_seconds"]["median"], 2) if "per_epoch_seconds" in r else "n/a"),
            (spread(r["loop_at_real_epoch_over_bare"], 3)
             if "loop_at_real_epoch_over_bare" in r else "n/a"),
            spread(r["bare_step_gflops"]),
            num(100 * r["bare_step_gflops"]["median"] / peak, 0) + "%" if peak else "n/a",
            spread(r["data_wait_fraction"], 2, 100) + "%",
            (f"{num(100 * health['cost_at_default_interval'], 3)}%" if health else "n/a")])
    lines += table(["network", "input", "fwd GFLOPs/img", "bare step img/s",
                    "whole loop img/s", "loop/bare", "per-epoch s",
                    "loop/bare at a real epoch", "bare GFLOP/s", "% of peak",
                    "data path cost", "health check"], rows)
    lines += ["Median (min-max) of the repeats. GFLOP/s = img/s x 3 x forward FLOPs. "
              "\"data path cost\": 1 - (loop over the records) / (the same loop and checkpoint "
              "over uint8 batches already in memory); on this CPU-only machine it is mostly "
              "decoding sharing the cores with training. A timed epoch is a few batches; "
              "\"per-epoch s\" is what every epoch pays once (creating the iterator, which "
              "decodes the first batch, and the checkpoint), and \"at a real epoch\" spreads "
              "it over 1,281,167 ImageNet or 50,000 CIFAR images at the rate measured within "
              "the epoch. \"health check\": one check's time "
              "over the steps between two checks at the monitor's default interval.", ""]
    with_health = [r for r in trained if r.get("health")]
    if with_health:
        lines += table(["network", "check (ms)", "step (ms)", "loop with / without monitor"],
                       [[LABELS.get(r["network"], r["network"]),
                         spread(r["health"]["check_seconds"], 1, 1000),
                         num(1000 * r["health"]["step_seconds"]),
                         spread(r["health"]["with_over_without"], 3)] for r in with_health])
    return lines


def render_peers(results: dict[str, Any]) -> list[str]:
    lines = ["## Beside PyTorch, measured in the same run", ""]
    peers = results.get("peers") or {}
    if peers.get("status") != "ran":
        return [*lines, f"PyTorch peers {peers.get('status')}.", ""]
    rows = []
    for ours_name, model in PEER_OF.items():
        ours, plain, cl = (network(results, ours_name), peer_step(results, model, False),
                           peer_step(results, model, True))
        if not (ours or plain or cl):
            continue

        def peer(entry):
            if not entry:
                return "n/a"
            return (f"{num(entry['img_s'])} ({num(entry['img_s_min'])}-"
                    f"{num(entry['img_s_max'])})")

        ours_rate = ours and ours["bare_step_img_s"]["median"]
        rows.append([f"{LABELS[ours_name]} / {PEER_LABELS[model]}",
                     spread(ours and ours["bare_step_img_s"]), peer(plain), peer(cl),
                     num(ours and ours["forward_gflops_per_image"], 3) + " / "
                     + num(cl and cl["fwd_gflops"], 3),
                     num(ours and ours["bare_step_gflops"]["median"]) + " / "
                     + num(cl and cl["achieved_gflops"]),
                     num(ours_rate / cl["img_s"], 2) if ours_rate and cl else "n/a",
                     num(ours["bare_step_gflops"]["median"] / cl["achieved_gflops"], 2)
                     if ours and cl else "n/a"])
    lines += table(["workload (ours / peer)", "ours img/s", "PyTorch img/s",
                    "PyTorch channels_last img/s", "fwd GFLOPs ours / peer",
                    "GFLOP/s ours / channels_last", "img/s ratio", "GFLOP/s ratio"], rows)
    lines += ["Bare training steps on both sides (forward, backward, SGD update on a batch in "
              "memory), fp32, 2 threads. The peer's rates are the median (min-max) of its own "
              "repeats.", ""]
    return lines


def render_pipeline(results: dict[str, Any]) -> list[str]:
    lines = ["## Decode pipeline", ""]
    pipeline = results.get("pipeline")
    if not pipeline:
        return [*lines, "Not run.", ""]
    rows = [[r["iterator"], r["augmentation"], r["process"], r["omp_in_process"] or "unset",
             f"{r['preprocess_threads']}"
             + (" (config)" if r.get("config_decode_threads") else "")
             + f" -> {r['decode_threads'] if r['decode_threads'] is not None else '?'}",
             spread(r["img_s"], 0) if r.get("img_s") else r.get("error", "n/a")]
            for r in pipeline_rows(results)]
    tv = torch_pipeline(results)
    if tv:
        rate = f"{num(tv['img_s'], 0)} ({num(tv['img_s_min'], 0)}-{num(tv['img_s_max'], 0)})"
        rows.append([f"torchvision DataLoader, {tv['workers']} workers",
                     "RandomCrop, flip, ToTensor, Normalize", "OMP_NUM_THREADS not exported",
                     tv.get("omp_num_threads") or "unset", "", rate])
    lines += [f"{pipeline['source']}; records built by our build path (shorter side 256); "
              f"{pipeline['crop']} px crops, batch {pipeline['batch']}, {pipeline['repeats']} "
              f"repeats x {pipeline['epochs']} epochs (a new iterator per epoch, creation "
              f"included). `book` = the config's augmentation ({pipeline['config']}); "
              f"`crop_mirror` = random crop, mirror, mean.", ""]
    lines += table(["iterator", "augmentation", "process started with",
                    "OMP_NUM_THREADS in it", "preprocess_threads -> decode threads started",
                    "img/s"], rows, left=4)
    notes = sorted({n for run in pipeline.get("runs", []) for n in run.get("notes", [])})
    lines += [f"- {note}" for note in notes]
    trained = results.get("training") or []
    if trained:
        lines += ["- Waiting for data during the real loop (training section): "
                  + ", ".join(f"{r['network']} {100 * r['data_wait_fraction']['median']:.2f}%"
                              for r in trained)]
    return [*lines, ""]


def render_memory(results: dict[str, Any]) -> list[str]:
    lines = ["## Memory", ""]
    memory = results.get("memory")
    if not memory:
        return [*lines, "Not run.", ""]
    rows = []
    for r in memory["results"]:
        growth = r.get("growth")
        rows.append([LABELS.get(r["network"], r["network"]),
                     f"{r['crop']} px, b{r['batch']}, {r['train_images']} images, "
                     f"{len(r['rss_by_epoch'])} epochs", f"{num(r['peak_rss_mib'], 0)} MiB",
                     f"{num(growth['rss_mib'][0], 0)} MiB (epoch {growth['from_epoch']})"
                     if growth else "n/a",
                     f"{num(growth['rss_mib'][1], 0)} MiB (epoch {growth['to_epoch']})"
                     if growth else "n/a",
                     f"{growth['mib']:+.1f} MiB ({100 * growth['fraction']:+.1f}%)"
                     if growth else "n/a",
                     "ok" if r["returncode"] == 0 else f"failed: {r.get('error', '')}"])
    lines += table(["network", "run", "peak RSS", "RSS after the first epoch compared",
                    "RSS after last epoch", "growth", "run status"], rows)
    for r in memory["results"]:
        series = ", ".join(f"{e['rss_mib']:.0f}" for e in r["rss_by_epoch"])
        lines.append(f"- {r['network']}: RSS (MiB) at the end of each epoch's training: "
                     f"{series}")
    return [*lines, ""]


def render_scaling(results: dict[str, Any]) -> list[str]:
    lines = ["## Scaling on the parameter server (1 vs 2 CPU workers)", ""]
    scaling = results.get("scaling")
    if not scaling:
        return [*lines, "Not run.", ""]
    rows = []
    for name, r in scaling["runs"].items():
        if "error" in r:
            rows.append([name, "", "", f"failed: {r['error'][:200]}"])
        elif "img_s" in r:
            rows.append([name, f"{r['global_batch']}", spread(r["img_s"]), ""])
        else:
            rows.append([name, "", "", "allreduce "
                         + (spread(r["allreduce_share"], 1, 100) + "% of the epoch, "
                            + spread(r["allreduce_ms_per_step"], 1) + " ms a step"
                            if r.get("allreduce_share") else "n/a")])
    lines += [f"{LABELS.get(scaling['network'], scaling['network'])} at {scaling['crop']} px, "
              f"batch {scaling['batch_per_worker']} per "
              f"worker, {scaling['train_images']} training images, median over "
              f"{scaling['measured_epochs']} epoch(s) after the first.", ""]
    lines += table(["run", "global batch", "img/s", "communication"], rows)
    d = scaling["derived"]
    lines += [f"- 2 workers / 1 worker (dist_sync): {num(d['speedup_2_over_1'], 2)}; with "
              f"OMP_NUM_THREADS=1 per worker: {num(d['speedup_2_single_thread_over_1'], 2)}; "
              f"best 2-worker run / one local process: {num(d['best_2_over_local'], 2)}",
              "- Communication share of a 1-worker step, 1 - img/s(dist_sync x1) / "
              "img/s(local): "
              + (f"{100 * d['communication_share_1_worker']:.1f}%"
                 if d["communication_share_1_worker"] is not None else "n/a"), ""]
    return lines


METHODS = """## How the figures are measured

- **Peak**: `peak.py`, n x n fp32 GEMM (n = 4096), 2 threads, 7 repeats after a warm-up,
  through numpy (OpenBLAS), `mx.nd.dot` and `mx.nd.FullyConnected` (oneDNN); the PyTorch
  venv's `peak.py` adds torch.mm and a newer numpy. The peak is the highest median.
- **Training**: `bench_training.py`. Bare step = forward, backward and update of the
  hybridized network (`static_alloc`, `static_shape`) on one batch in memory. Whole loop =
  `train_epoch` over records (ImageRecordIter decode and augmentation, metrics, log lines,
  non-finite checks) plus the epoch's checkpoint, the iterator's creation included. Bare
  and loop repeats alternate; every figure is the median (min-max) of the repeats. Forward
  FLOPs: 2 x multiply-adds of every Convolution and FullyConnected in the network's symbol,
  shapes by MXNet's shape inference (GoogLeNet: 3.165 GFLOPs at 224 px, checked against a
  hand count of the paper's Table 1 in `tests/test_benchmarks.py`).
- **Peers**: `../shared/bench-peers/train_step.py` in its PyTorch venv right after our
  measurement of the same workload, plain and channels_last; `pipeline.py --part torch` on
  the same photos our pipeline row decodes.
- **Pipeline**: `bench_pipeline.py`, images per second delivered by
  `training_iterator`, one child process per `OMP_NUM_THREADS` setting; the decode thread
  count is MXNet's own log line.
- **Memory**: `bench_memory.py`, a real `train_googlenet.py` run per network in its own
  process; RSS read from `/proc/<pid>/status` at each `Time cost` line; peak RSS is the
  child's `ru_maxrss`.
- **Scaling**: `bench_scaling.py`, the same run locally and through `launch` with 1 and 2
  dist_sync workers (1 server); img/s from worker 0's `Time cost` lines; the communication
  share both derived (1 - x1 / local) and timed (`allreduce_grads` between two
  `waitall()`s).
"""


def render(results: dict[str, Any], found: list[dict[str, Any]]) -> str:
    peak, _ = machine_peak(results)
    head = ["# Benchmark results", "",
            f"Written by `{results['command']}` on {results['finished']} "
            f"({results['minutes']:.0f} min). Machine-readable: `{results['json']}`.", ""]
    if results["quick"]:
        head += ["**Quick run (smoke test): tiny sizes and one repeat; the figures mean "
                 "nothing.**", ""]
    failures = results.get("failures") or {}
    tail = []
    if failures:
        tail = ["## Failures", "", *(f"- {k}: {v}" for k, v in failures.items()), ""]
    return "\n".join([*head, *render_machine(results), *render_targets(found, results),
                      *render_training(results, peak), *render_peers(results),
                      *render_pipeline(results), *render_memory(results),
                      *render_scaling(results), METHODS, *tail]).rstrip() + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true",
                        help="smoke run: tiny sizes, one repeat, peers only with --peers")
    peers = parser.add_mutually_exclusive_group()
    peers.add_argument("--peers", dest="peers", action="store_true", default=None,
                       help="run the PyTorch peers (the default without --quick)")
    peers.add_argument("--no-peers", dest="peers", action="store_false")
    parser.add_argument("--setup-peers", action="store_true",
                        help="run bench-peers' setup.sh when its venvs are missing")
    parser.add_argument("--networks", default=",".join(ALL_NETWORKS),
                        help=f"comma-separated, from: {', '.join(ALL_NETWORKS)}")
    parser.add_argument("--sections", default=",".join(SECTIONS),
                        help=f"comma-separated, from: {', '.join(SECTIONS)}")
    parser.add_argument("--repeats", type=int, default=3,
                        help="repeats of every training measurement (default 3)")
    parser.add_argument("--no-health", dest="health", action="store_false",
                        help="skip the health monitor's cost (saves a loop per repeat)")
    parser.add_argument("--peer-images", type=int, default=2000,
                        help="photos for the pipeline comparison (make_images.py --n)")
    parser.add_argument("--timeout", type=float, default=7200, help="seconds per script")
    parser.add_argument("--results-md", default=None,
                        help="default benchmarks/RESULTS.md (output/RESULTS_quick.md "
                             "with --quick)")
    parser.add_argument("--json", default=None,
                        help="default benchmarks/output/results.json (results_quick.json)")
    parser.add_argument("--work", default=None,
                        help="folder for each script's JSON (default benchmarks/output/run_all, "
                             "run_all_quick with --quick)")
    args = parser.parse_args(argv)
    if args.peers is None:
        args.peers = not args.quick
    args.networks = [n.strip() for n in args.networks.split(",") if n.strip()]
    args.sections = [s.strip() for s in args.sections.split(",") if s.strip()]
    for given, known, what in ((args.networks, ALL_NETWORKS, "networks"),
                               (args.sections, SECTIONS, "sections")):
        if unknown := [n for n in given if n not in known]:
            parser.error(f"unknown {what} {unknown}; known: {', '.join(known)}")
    md = Path(args.results_md) if args.results_md else (
        OUTPUT / "RESULTS_quick.md" if args.quick else BENCH_DIR / "RESULTS.md")
    js = Path(args.json) if args.json else OUTPUT / (
        "results_quick.json" if args.quick else "results.json")

    run = Run(args)
    run.say(f"sections {', '.join(args.sections)}; networks {', '.join(args.networks)}")
    results = measure(run)
    found = targets(results)
    results.update(
        quick=args.quick, targets=found, failures=run.failures,
        command="python benchmarks/run_all.py" + ("".join(
            f" {a}" for a in (sys.argv[1:] if argv is None else argv))),
        finished=time.strftime("%Y-%m-%d %H:%M %Z"),
        minutes=(time.perf_counter() - run.started) / 60, json=str(js))
    results["peak_used"] = dict(zip(("gflops", "backend"), machine_peak(results)))
    write_json(js, results)
    md.parent.mkdir(parents=True, exist_ok=True)
    md.write_text(render(results, found))
    for t in found:
        state = {True: "met", False: "NOT met", None: "not measured"}[t["met"]]
        run.say(f"target: {t['target']}: ratio {num(t['ratio'], 3)} "
                f"(>= {t['required']:g}) {state}")
    for name, failure in run.failures.items():
        run.say(f"FAILED {name}: {failure}")
    run.say(f"wrote {md} and {js}")
    return 1 if run.failures else 0


if __name__ == "__main__":
    sys.exit(main())
