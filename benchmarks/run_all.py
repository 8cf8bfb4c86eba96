"""``make bench``: every benchmark script in a process of its own, the PyTorch peers beside
them, and RESULTS.md with the targets met or not (all described in benchmarks/README.md).

    python benchmarks/run_all.py                      # the full run (about 70 minutes here)
    python benchmarks/run_all.py --quick              # smoke run (CI): tiny sizes, no peers
    python benchmarks/run_all.py --sections peak,training --networks resnet56,resnet56_b
    python benchmarks/run_all.py --render benchmarks/output/results.json   # Markdown again
"""

import argparse
import json
import subprocess
import sys
import time
from collections import namedtuple
from pathlib import Path
from typing import Any

import benchlib
from benchlib import OUTPUT, markdown_table, num, spread
from peers import Peers

# Our networks in the order they run, each group followed at once by the PyTorch peer model
# of the same workload (None: no peer), so that drift hits both sides of a ratio alike.
GROUPS = (
    ("googlenet", ("googlenet",), "googlenet"),
    ("inception_resnet_v2", ("inception_resnet_v2",), "irv2"),
    ("resnet20", ("resnet20", "resnet20_b"), "resnet20"),
    ("resnet56", ("resnet56", "resnet56_b"), "resnet56"),
    ("resnet110", ("resnet110", "resnet110_b"), None),
)
ALL_NETWORKS = tuple(n for _, group, _ in GROUPS for n in group)
LABELS = {
    "googlenet": "GoogLeNet (book, true 5x5)", "inception_resnet_v2": "Inception-ResNet-v2",
    **{f"resnet{d}{b}": f"CIFAR ResNet-{d} {'B' if b else 'A'}"
       for d in (20, 56, 110) for b in ("", "_b")},
}
# Our network -> (peer model, its label, img/s ratio required of ours (None: GFLOP/s),
# ours as the target names it). Shortcut B is the like-for-like CIFAR pair.
PEER_OF = {
    "googlenet": ("googlenet", "torchvision GoogLeNet (3x3 '5x5' branch)", None, "GoogLeNet"),
    "inception_resnet_v2": ("irv2", "timm Inception-ResNet-v2", 1.15, "Inception-ResNet-v2"),
    "resnet20_b": ("resnet20", "CIFAR ResNet-20 B", 1.0, "CIFAR ResNet-20 (shortcut B)"),
    "resnet56_b": ("resnet56", "CIFAR ResNet-56 B", 1.0, "CIFAR ResNet-56 (shortcut B)"),
}
# The targets, by what they measure: a ratio of ours to a reference (>=, or <= for the
# build), or a limit on a figure of ours (<=).
REQUIRED = {"memory flat": 100, "build vs im2rec": 1.1, "% of peak": 0.75,
            "GFLOP/s vs PyTorch": 1.3, "loop/bare step": 0.95, "decode vs DataLoader": 2.0,
            "waiting for data": 0.01, "identity checks at start": 1.0,
            "identity checks per epoch": 0.01}


class Run:
    """One ``run_all`` invocation: its options, results so far, peers, failures and clock."""

    def __init__(self, args: argparse.Namespace) -> None:
        self.args, self.failures, self.out_of_time = args, {}, []
        self.work = Path(args.work) if args.work else OUTPUT / (
            "run_all_quick" if args.quick else "run_all")
        self.work.mkdir(parents=True, exist_ok=True)
        self.results: dict[str, Any] = {"sections": list(args.sections),
                                        "networks": list(args.networks),
                                        "environment": benchlib.thread_environment()}
        self.peers: Peers | None = None
        self.started = time.perf_counter()

    def say(self, message: str) -> None:
        print(f"[run_all {(time.perf_counter() - self.started) / 60:5.1f} min] {message}",
              flush=True)

    def wants(self, section: str, part: str | None = None) -> bool:
        """Whether to run ``section`` (or one ``part``): asked for, and within ``--budget``."""
        if section not in self.args.sections:
            return False
        if self.args.budget and (time.perf_counter() - self.started) / 60 > self.args.budget:
            self.out_of_time.append(part or section)
            self.say(f"{part or section}: not started, the {self.args.budget:g}-minute "
                     f"budget is spent")
            return False
        return True

    def repeats(self, flag: str) -> list[str]:
        return [] if self.args.quick else [flag, str(self.args.repeats)]

    def script(self, section: str, args: list[str], name: str | None = None,
               script: str | None = None) -> dict | None:
        """Run ``script`` (default bench_<section>.py) with ``--output``: its JSON, or None
        (the failure noted)."""
        name, script = name or section, script or f"bench_{section}.py"
        path = self.work / f"{name}.json"
        path.unlink(missing_ok=True)
        command = [sys.executable, str(benchlib.BENCH_DIR / script), *args, "--output", str(path),
                   *(["--quick"] if self.args.quick else [])]
        self.say(f"{section}: {' '.join(command[1:])}")
        try:
            code = subprocess.run(command, cwd=benchlib.REPO_ROOT, env=benchlib.child_env(),
                                  timeout=self.args.timeout).returncode
        except subprocess.TimeoutExpired:
            code = "timeout"
        if not path.is_file():
            self.failures[name] = f"{script} exited {code} without results"
            return None
        if code != 0:
            self.failures[name] = f"{script} exited {code} (partial results kept)"
        return json.loads(path.read_text())


# --- the sections: each runs its script(s), the peers' beside, and returns its results ----
def measure_peak(run: Run) -> dict | None:
    found = run.script("peak", [], script="peak.py")
    if run.peers:
        run.peers.peak()
    return found


def measure_training(run: Run) -> list[dict]:
    peak, peers = (run.results.get("peak") or {}).get("peak_gflops"), run.peers
    extra = [*(["--health"] if run.args.health else []), *run.repeats("--repeats"),
             *(["--peak-gflops", f"{peak:.3f}"] if peak else [])]
    groups = [(group, [n for n in chosen if n in run.args.networks], peer)
              for group, chosen, peer in GROUPS]
    if run.args.quick and not peers:  # one process: start-up costs more than the work here
        groups = [("all", [n for _, chosen, _ in groups for n in chosen], None)]
    training = []
    for group, chosen, peer in groups:
        if not chosen or not run.wants("training", f"training {group}"):
            continue
        if found := run.script("training", ["--networks", ",".join(chosen), *extra],
                               f"training_{group}"):
            training.extend(found["results"])
            run.results.setdefault("training_machine", found.get("machine"))
        if peers and peer and (not run.args.quick or peer == "resnet20"):
            peers.train_step(peer)
    return training


def measure_pipeline(run: Run) -> dict | None:
    jpeg = run.peers.images(run.args.peer_images) if run.peers else None
    found = run.script("pipeline", ["--jpeg-folder", str(jpeg)] if jpeg else [])
    if run.peers:
        run.peers.torch_pipeline(jpeg)
    return found


def measure_build(run: Run) -> dict | None:
    photos = run.args.build_photos or (str(run.peers.images(run.args.peer_images))
                                       if run.peers and not run.args.quick else None)
    return run.script("build", [*(["--jpeg-folder", photos] if photos else []),
                                *run.repeats("--repeats")])


def measure_threads(run: Run) -> dict | None:
    peers = run.peers
    return run.script("threads", [*(["--peers-dir", str(peers.folder), "--torch-venv",
                                     str(peers.python.parent.parent)] if peers
                                    else ["--no-peer"]), *run.repeats("--rounds")])


SECTIONS = {  # in the order of a full run
    "peak": measure_peak, "training": measure_training, "pipeline": measure_pipeline,
    "build": measure_build, "memory": lambda run: run.script("memory", []),
    "threads": measure_threads, "scaling": lambda run: run.script("scaling", []),
    "contract": lambda run: run.script("contract", []),
}


def measure(run: Run) -> dict[str, Any]:
    """Every section asked for, in the order asked, and the peers' results."""
    args, results = run.args, run.results
    why_not = ("skipped (--quick runs without peers unless --peers)" if args.quick
               else "skipped (--no-peers)")
    if args.peers:
        run.peers = Peers(quick=args.quick, timeout=args.timeout)
        if reason := run.peers.ready(args.setup_peers):
            run.peers, why_not = None, f"skipped: {reason}"
    results["peers_status"] = "ran" if run.peers else why_not
    run.say(f"peers: {results['peers_status']}")
    for section in args.sections:
        if run.wants(section):
            results[section] = SECTIONS[section](run)
    results["peers"] = run.peers.results() if run.peers else {"status": why_not}
    for entry in results["peers"].get("runs", []):
        if entry.get("returncode"):
            run.failures[f"peers {entry['script']} {' '.join(entry['args'][:4])}"] = \
                entry.get("error", "failed")
    return results


# --- figures derived from the sections: the peak, the peers' rows, the targets ------------
def machine_peak(results: dict[str, Any]) -> tuple[float | None, str]:
    """The highest median SGEMM rate of this run (ours and the peers'), and by what."""
    found = [(e["gflops"]["median"], f"{name} ({e['library']})")
             for name, e in ((results.get("peak") or {}).get("backends") or {}).items()]
    found += [(e["gflops_median"], f"{e['backend']} (PyTorch venv)")
              for e in (results.get("peers") or {}).get("peak", [])]
    return max(found) if found else (None, "not measured")


def peer_step(results: dict[str, Any], model: str, channels_last: bool) -> dict | None:
    return next((e for e in (results.get("peers") or {}).get("train_step", [])
                 if e.get("key") == model and ("channels_last" in e["framework"])
                 == channels_last), None)


def torch_pipeline(results: dict[str, Any]) -> dict | None:
    found = [e for e in (results.get("peers") or {}).get("pipeline", [])
             if e.get("part") == "torch"]
    return found[-1] if found else None


def pipeline_rows(results: dict[str, Any]) -> list[dict[str, Any]]:
    return [{**row, "omp_in_process": run["environment"].get("OMP_NUM_THREADS")}
            for run in (results.get("pipeline") or {}).get("runs", []) for row in run["rows"]]


def network(results: dict[str, Any], name: str) -> dict | None:
    return next((r for r in results.get("training") or [] if r["network"] == name), None)


def target(measures: str, name: str, ours: float | None, unit: str, detail: str = "", *,
           reference: float | None = None, ratio: float | None = None,
           required: float | None = None, at_most: bool = False,
           limit: bool = False) -> dict[str, Any]:
    """A ratio of ours to ``reference`` that must be at least (``at_most``: at most) the
    required one, or with ``limit`` a figure of ours that must stay at or under it."""
    required = REQUIRED[measures] if required is None else required
    if limit:
        reference, at_most, value = required, True, ours
    else:
        if ratio is None and ours is not None and reference:
            ratio = ours / reference
        value = ratio
    return {"target": name, "measures": measures, "ours": ours, "reference": reference,
            "ratio": ratio, "required": required, "unit": unit, "at_most": at_most,
            "limit": limit, "met": None if value is None else
            (value <= required if at_most else value >= required), "detail": detail}


def targets(results: dict[str, Any]) -> list[dict[str, Any]]:
    found = []
    for r in (results.get("memory") or {}).get("results", []):
        if r["network"] == "googlenet":
            g = r.get("growth")
            found.append(target(
                "memory flat", f"RSS growth from epoch 3 to the last, {LABELS['googlenet']}, "
                f"{r['crop']} px", g and g["mib"], "MiB",
                f"epoch {g['from_epoch']} -> {g['to_epoch']}: {g['rss_mib'][0]:,.0f} -> "
                f"{g['rss_mib'][1]:,.0f} MiB; the target is epoch 3 -> 20" if g else
                f"fewer than 4 epochs ran ({r['returncode']})", limit=True))
    if build := results.get("build"):
        s = build["settings"]
        for measure, label in (("cpu", "CPU time of every process"), ("wall", "wall time")):
            per_image = build["ms_per_image"][measure]
            found.append(target(
                "build vs im2rec", f"Record build per image vs bare im2rec, {label}",
                per_image["project"]["median"], "ms/image",
                f"{s['source']}; {s['threads']} workers; the median of {s['repeats']} rounds' "
                f"ratios", reference=per_image["im2rec"]["median"], at_most=True,
                ratio=build["ratio_to_im2rec_per_image"][measure]["project"]))
    if google := network(results, "googlenet"):
        ours, cl = google["bare_step_gflops"]["median"], peer_step(results, "googlenet", True)
        found += [target("% of peak", "GoogLeNet % of this machine's peak", ours, "GFLOP/s",
                         "bare step against the highest SGEMM median",
                         reference=machine_peak(results)[0]),
                  target("GFLOP/s vs PyTorch",
                         "GoogLeNet achieved GFLOP/s vs PyTorch channels_last", ours, "GFLOP/s",
                         "bare step; ours counts the true 5x5 branch",
                         reference=cl and cl["achieved_gflops"])]
    trained = results.get("training") or []
    for e in trained:
        real = e.get("loop_at_real_epoch_over_bare")
        measured = e["loop_over_bare"]["median"]
        found.append(target(
            "loop/bare step", f"Whole loop / bare step, {LABELS.get(e['network'])}",
            (e.get("loop_at_real_epoch_img_s") or e["loop_img_s"])["median"], "img/s",
            f"at a real epoch ({e.get('real_epoch_images', 0):,} images); the timed epoch of "
            f"{e['images_per_epoch']} images measured {measured:.3f}" if real else
            "as measured", reference=e["bare_step_img_s"]["median"],
            ratio=real["median"] if real else measured))
    for ours_name, (model, _, required, name) in PEER_OF.items():
        if required and (entry := network(results, ours_name)):
            cl = peer_step(results, model, True)
            found.append(target("img/s vs PyTorch", f"{name} img/s vs PyTorch channels_last",
                                entry["bare_step_img_s"]["median"], "img/s", "bare step",
                                reference=cl and cl["img_s"], required=required))
    if crop := [r for r in pipeline_rows(results)
                if r.get("img_s") and r["augmentation"] == "crop_mirror"]:
        best, tv = max(crop, key=lambda r: r["img_s"]["median"]), torch_pipeline(results)
        found.append(target(
            "decode vs DataLoader", "Decode + augment vs torchvision DataLoader",
            best["img_s"]["median"], "img/s", f"crop+mirror+mean, best row: {best['iterator']}, "
            f"preprocess_threads {best['preprocess_threads']}, {best['process']}",
            reference=tv and tv["img_s"]))
    if trained:
        worst = max(trained, key=lambda r: r["data_wait_fraction"]["median"])
        found.append(target("waiting for data", "The training loop never waits for data "
                            "(data path <= 1% of the loop)", worst["data_wait_fraction"]["median"],
                            "fraction", f"most: {worst['network']}", limit=True))
    if contract := results.get("contract"):
        records, demo = sum(contract["records"].values()), contract["demo"]
        found += [target("identity checks at start", f"Dataset identity checks at a command's "
                         f"start, {records:,} records: {what}",
                         contract["imagenet_sized"][key]["median"], "s",
                         "synthetic ImageNet-sized .idx files", limit=True)
                  for key, what in (("train_start", "training (train + val)"),
                                    ("test_start", "test"))]
        found.append(target(
            "identity checks per epoch", "Dataset identity checks per epoch, digits demo",
            demo["per_epoch_share"], "fraction",
            f"{1e6 * demo['per_epoch_checks']['median']:.0f} us per epoch"
            + (f" of a {demo['epoch_seconds']:.1f} s epoch" if demo["epoch_seconds"]
               else "; no demo training log to compare with (run `make demo`)"), limit=True))
    return found


# --- RESULTS.md: one page of sections, each a function of the results that returns blocks
Table = namedtuple("Table", "header rows left", defaults=(1,))


def figure(value: float | None, unit: str) -> str:
    if value is None:
        return "n/a"
    if unit == "fraction":
        return f"{100 * value:.2f}%"
    if unit == "MiB":
        return f"{value:+,.1f} MiB"
    if unit in ("s", "ms/image"):
        return f"{value:,.3f} {unit}" if value < 10 else f"{value:,.1f} {unit}"
    return f"{num(value)} {unit}"


def peer_rate(entry: dict | None, digits: int = 1) -> str:
    """A peer's ``median (min-max)``, from its own field names."""
    return spread(entry and {"median": entry["img_s"], "min": entry["img_s_min"],
                             "max": entry["img_s_max"]}, digits)


def label(name: str) -> str:
    return LABELS.get(name, name)


def machine_blocks(results: dict, found: list) -> list:
    # peak.py sets its own thread variables: the training process's are the ones to show.
    info = results.get("training_machine") or (results.get("peak") or {}).get("machine")
    if not info:
        return ["Not recorded (the peak and training sections did not run)."]
    peers, (peak, backend) = results.get("peers") or {}, machine_peak(results)

    def variables(found: dict) -> str:
        return ", ".join(f"`{k}={v}`" for k, v in found.items() if v is not None) or "none"

    gemms = [[f"{name} ({e['library']}), this venv", spread(e["gflops"])]
             for name, e in ((results.get("peak") or {}).get("backends") or {}).items()]
    gemms += [[f"{e['backend']}, PyTorch venv", spread(
        {"median": e["gflops_median"], "min": e["gflops_min"], "max": e["gflops_best"]})]
        for e in peers.get("peak", [])]
    n = (results.get("peak") or {}).get("n")
    return [Table(["", ""], [
        ["CPU", f"{info['cpu']}, {info['cores']} cores"],
        ["Python / MXNet / numpy", f"{info['python']} / {info['mxnet']} / {info['numpy']}"],
        ["MXNet features", ", ".join(info.get("mxnet_features", []))],
        ["Thread variables exported to run_all", variables(results.get("environment") or {})],
        ["... as the training process sees them (after importing pyimagesearch)",
         variables(info.get("threads") or {})],
        ["PyTorch peer", next((e["framework"] for e in peers.get("train_step", [])), None)
         or peers.get("status", "not run")],
        ["Measured", info.get("date", "")]], 2),
        *([f"fp32 SGEMM, 2 threads{f', n = {n}' if n else ''}, GFLOP/s, median (min-max):",
           Table(["GEMM", "GFLOP/s"], gemms), f"**Peak used for % of peak: {num(peak)} GFLOP/s"
           f"** ({backend}), the highest median measured in this run."] if gemms else [])]


def target_blocks(results: dict, found: list) -> list:
    if not found:
        return ["No target could be evaluated (sections missing)."]
    rows = [[t["target"] + (f" ({t['detail']})" if t["detail"] else ""), t["measures"],
             figure(t["ours"], t["unit"]), "" if t["limit"] else figure(t["reference"], t["unit"]),
             # three digits: 0.949 must not read as a 0.95 that failed
             "" if t["limit"] else num(t["ratio"], 3), ("<= " if t["at_most"] else ">= ") + (
                 figure(t["required"], t["unit"]).lstrip("+") if t["limit"]
                 else f"{t['required']:g}"),
             {True: "**met**", False: "**not met**", None: "not measured"}[t["met"]]]
            for t in found]
    return [Table(["target", "measures", "ours", "reference", "ratio", "required", ""], rows, 2),
            *([] if results.get("peers_status") == "ran" else [
                f"PyTorch peers: {results.get('peers_status')}; the ratios against them are "
                f"not measured."])]


def training_blocks(results: dict, found: list) -> list:
    trained, (peak, _) = results["training"], machine_peak(results)
    rows = [[label(r["network"]), f"{r['input']} px, b{r['batch']}",
             num(r["forward_gflops_per_image"], 3), spread(r["bare_step_img_s"]),
             spread(r["loop_img_s"]), spread(r["loop_over_bare"], 3),
             num(r["per_epoch_seconds"]["median"], 2) if "per_epoch_seconds" in r else "n/a",
             spread(r.get("loop_at_real_epoch_over_bare"), 3), spread(r["bare_step_gflops"]),
             num(100 * r["bare_step_gflops"]["median"] / peak, 0) + "%" if peak else "n/a",
             spread(r["data_wait_fraction"], 2, 100) + "%",
             f"{num(100 * r['health']['cost_at_default_interval'], 3)}%" if r.get("health")
             else "n/a"] for r in trained]
    health = [[label(r["network"]), spread(r["health"]["check_seconds"], 1, 1000),
               num(1000 * r["health"]["step_seconds"]),
               spread(r["health"]["with_over_without"], 3)] for r in trained if r.get("health")]
    return [Table(["network", "input", "fwd GFLOPs/img", "bare step img/s", "whole loop img/s",
                   "loop/bare", "per-epoch s", "loop/bare at a real epoch", "bare GFLOP/s",
                   "% of peak", "data path cost", "health check"], rows),
            "GFLOP/s = img/s x 3 x forward FLOPs. \"data path cost\": 1 - (loop over the records) "
            "/ (the same loop over batches in memory). \"per-epoch s\": what every epoch pays "
            "once (the iterator's start, the checkpoint); \"at a real epoch\" spreads it over "
            "1,281,167 ImageNet or 50,000 CIFAR images. \"health check\": one check's time over "
            "the steps between two checks (benchmarks/README.md, \"bench_training.py\").",
            *([Table(["network", "check (ms)", "step (ms)", "loop with / without monitor"],
                     health)] if health else [])]


def peer_blocks(results: dict, found: list) -> list:
    if (status := (results.get("peers") or {}).get("status")) != "ran":
        return [f"PyTorch peers {status}."]
    rows = []
    for ours_name, (model, peer_label, _, _) in PEER_OF.items():
        ours, plain, cl = (network(results, ours_name), peer_step(results, model, False),
                           peer_step(results, model, True))
        if ours or plain or cl:
            rate, gflops = (ours and ours["bare_step_img_s"]["median"],
                            ours and ours["bare_step_gflops"]["median"])
            rows.append([f"{LABELS[ours_name]} / {peer_label}",
                         spread(ours and ours["bare_step_img_s"]), peer_rate(plain),
                         peer_rate(cl), f"{num(ours and ours['forward_gflops_per_image'], 3)} / "
                         f"{num(cl and cl['fwd_gflops'], 3)}",
                         f"{num(gflops)} / {num(cl and cl['achieved_gflops'])}",
                         num(rate / cl["img_s"], 2) if rate and cl else "n/a",
                         num(gflops / cl["achieved_gflops"], 2) if ours and cl else "n/a"])
    return [Table(["workload (ours / peer)", "ours img/s", "PyTorch img/s",
                   "PyTorch channels_last img/s", "fwd GFLOPs ours / peer",
                   "GFLOP/s ours / channels_last", "img/s ratio", "GFLOP/s ratio"], rows),
            "Bare training steps on both sides (forward, backward, SGD update on a batch in "
            "memory), fp32, 2 threads. The peer's rates are the median (min-max) of its own "
            "repeats."]


def pipeline_blocks(results: dict, found: list) -> list:
    p = results["pipeline"]
    rows = [[r["iterator"], r["augmentation"], r["process"], r["omp_in_process"] or "unset",
             f"{r['preprocess_threads']}{' (config)' if r.get('config_decode_threads') else ''}"
             f" -> {'?' if r['decode_threads'] is None else r['decode_threads']}",
             spread(r["img_s"], 0) if r.get("img_s") else r.get("error", "n/a")]
            for r in pipeline_rows(results)]
    if tv := torch_pipeline(results):
        rows.append([f"torchvision DataLoader, {tv['workers']} workers",
                     "RandomCrop, flip, ToTensor, Normalize", "OMP_NUM_THREADS not exported",
                     tv.get("omp_num_threads") or "unset", "", peer_rate(tv, 0)])
    notes = sorted({n for run in p.get("runs", []) for n in run.get("notes", [])})
    if trained := results.get("training"):
        notes.append("Waiting for data during the real loop (training section): " + ", ".join(
            f"{r['network']} {100 * r['data_wait_fraction']['median']:.2f}%" for r in trained))
    return [f"{p['source']}; records built by our build path (shorter side 256); {p['crop']} px "
            f"crops, batch {p['batch']}, {p['repeats']} repeats x {p['epochs']} epochs (a new "
            f"iterator per epoch, creation included). `book` = the config's augmentation "
            f"({p['config']}); `crop_mirror` = random crop, mirror, mean.",
            Table(["iterator", "augmentation", "process started with", "OMP_NUM_THREADS in it",
                   "preprocess_threads -> decode threads started", "img/s"], rows, 4), notes]


def build_blocks(results: dict, found: list) -> list:
    b = results["build"]
    s, ratios = b["settings"], b["ratio_to_im2rec_per_image"]
    rows = [[name, *(f"{spread(b['ms_per_image'][m][variant], 2)} (x{ratios[m][variant]:.2f})"
                     if variant in b["ms_per_image"].get(m, {}) else ""
                     for m in ("cpu", "wall", "records")),
             num(b["seconds"]["wall"][variant]["whole"]["median"], 1)]
            for variant, name in (
                ("project", "project (our packer: check, decode, resize, encode, mean)"),
                ("im2rec", "bare im2rec (no check, no mean)"),
                ("im2rec packer", "PACKER = \"im2rec\" (check, im2rec, mean)"))]
    each = b["ratio_to_im2rec_per_image_each_round"]
    return [
        f"{s['source']}: median shorter side {b['images']['median_shorter_side']:.0f} px, "
        f"{b['images']['mean_kib']:.0f} KiB mean; stored with shorter side {s['resize']}, JPEG "
        f"quality {s['quality']}; {s['threads']} workers; {s['repeats']} rounds, the order "
        f"reversed every other round. Per image = (the whole training list - its first "
        f"{s['head']} images) / the difference, so start-up cancels; the ratio to im2rec is "
        f"taken within each round and the median of the rounds is shown.",
        Table(["packer", "CPU ms per image, all processes", "wall ms per image",
               "wall ms per image, first record to last", "whole list, s"], rows),
        ["CPU ratio project / im2rec in each round: " + ", ".join(
            f"{r:.2f}" for r in each["cpu"]["project"]) + "; wall: " + ", ".join(
            f"{r:.2f}" for r in each["wall"]["project"]),
         f"The full build (3 splits, mean, hashes, manifest): {b['full_build']['listed']:,} "
         f"images in {b['full_build']['seconds']:.1f} s; `ImageRecordIter` over its records "
         f"with the book's augmentation: {spread(b['record_iter_images_per_second'], 0)} img/s"],
        "Where a worker's time goes (ms per image, one process, one OpenCV thread, the files "
        "in the page cache):",
        Table(["", "stage", "ms"], [[group, stage, num(ms, 2)] for group, stages in
                                    b["stage_ms_per_image"].items()
                                    for stage, ms in stages.items()], 2)]


def memory_blocks(results: dict, found: list) -> list:
    runs = results["memory"]["results"]
    rows = [[label(r["network"]), f"{r['crop']} px, b{r['batch']}, {r['train_images']} images, "
             f"{len(r['rss_by_epoch'])} epochs", f"{num(r['peak_rss_mib'], 0)} MiB",
             *([f"{num(g['rss_mib'][0], 0)} MiB (epoch {g['from_epoch']})",
                f"{num(g['rss_mib'][1], 0)} MiB (epoch {g['to_epoch']})",
                f"{g['mib']:+.1f} MiB ({100 * g['fraction']:+.1f}%)"]
               if (g := r.get("growth")) else ["n/a"] * 3),
             "ok" if r["returncode"] == 0 else f"failed: {r.get('error', '')}"] for r in runs]
    return [Table(["network", "run", "peak RSS", "RSS after the first epoch compared",
                   "RSS after last epoch", "growth", "run status"], rows),
            [f"{r['network']}: RSS (MiB) at the end of each epoch's training: "
             + ", ".join(f"{e['rss_mib']:.0f}" for e in r["rss_by_epoch"]) for r in runs]]


def threads_blocks(results: dict, found: list) -> list:
    t = results["threads"]
    loads = {"idle": "alone", "busy": "beside one busy process (a one-core spin loop)",
             "same": "beside a second copy of the same training step"}
    return [f"The bare step of {label(t['network'])} (batch 128), each measurement a process "
            f"of its own started while the load runs; {t['rounds']} rounds of the conditions "
            f"in turn; \"of alone\" is the ratio within each round, median (min-max). PyTorch "
            f"peer: {t['peer']}.",
            Table(["step", "cores shared with", "img/s", "of alone"],
                  [[r["condition"], loads.get(r["load"], r["load"]),
                    spread(r["img_s"]) if "img_s" in r else f"failed: {r.get('error')}",
                    spread(r["of_idle"], 2) if "of_idle" in r else ""] for r in t["rows"]], 2)]


def scaling_blocks(results: dict, found: list) -> list:
    s, rows = results["scaling"], []
    for name, r in s["runs"].items():
        if "error" in r:
            rows.append([name, "", "", f"failed: {r['error'][:200]}"])
        elif "img_s" in r:
            rows.append([name, f"{r['global_batch']}", spread(r["img_s"]), ""])
        else:
            rows.append([name, "", "", "allreduce " + (
                f"{spread(r['allreduce_share'], 1, 100)}% of the epoch, "
                f"{spread(r['allreduce_ms_per_step'], 1)} ms a step"
                if r.get("allreduce_share") else "n/a")])
    d, share = s["derived"], s["derived"]["communication_share_1_worker"]
    return [f"{label(s['network'])} at {s['crop']} px, batch {s['batch_per_worker']} per "
            f"worker, {s['train_images']} training images, median over "
            f"{s['measured_epochs']} epoch(s) after the first.",
            Table(["run", "global batch", "img/s", "communication"], rows),
            [f"2 workers / 1 worker (dist_sync): {num(d['speedup_2_over_1'], 2)}; with "
             f"OMP_NUM_THREADS=1 per worker: {num(d['speedup_2_single_thread_over_1'], 2)}; "
             f"best 2-worker run / one local process: {num(d['best_2_over_local'], 2)}",
             "Communication share of a 1-worker step, 1 - img/s(dist_sync x1) / img/s(local): "
             + (f"{100 * share:.1f}%" if share is not None else "n/a")]]


def contract_blocks(results: dict, found: list) -> list:
    c = results["contract"]
    demo, records, share = c["demo"], sum(c["records"].values()), c["demo"]["per_epoch_share"]
    return [Table(["check", "time"], [
        *([f"{what}, {records:,} records (synthetic .idx)",
           spread(c["imagenet_sized"][key], 3) + " s"]
          for key, what in (("train_start", "training's start (train + val)"),
                            ("test_start", "a test command's start (test)"))),
        ["digits demo, training's start", spread(demo["start_check"], 1, 1e3) + " ms"],
        ["digits demo, every epoch (twice)", spread(demo["per_epoch_checks"], 0, 1e6) + " us"
         + (f" = {100 * share:.4f}% of a {demo['epoch_seconds']:.1f} s epoch"
            if share is not None else "")]])]


def summary_blocks(results: dict, found: list) -> list:
    """Which targets this run met, which it did not."""
    return [[f"**{word}**: " + "; ".join(
        f"{t['target']} ({figure(t['ours'], t['unit']).strip()}"
        + (f", ratio {num(t['ratio'], 3)}" if t["ratio"] is not None else "")
        + f"; {t['measures']})" for t in found if t["met"] is state) + "."
        for state, word in ((True, "Met"), (False, "Not met"), (None, "Not measured"))
        if any(t["met"] is state for t in found)]] if found else []


PAGE = (  # RESULTS.md top to bottom: heading, "Not run." without this result, blocks (none:
    # no section)
    ("Machine", None, machine_blocks),
    ("Targets", None, target_blocks),
    ("Training: bare step and whole loop", "training", training_blocks),
    ("Beside PyTorch, measured in the same run", None, peer_blocks),
    ("Decode pipeline", "pipeline", pipeline_blocks),
    ("Building records, beside MXNet's im2rec", "build", build_blocks),
    ("Memory", "memory", memory_blocks),
    ("Training with the cores shared", "threads", threads_blocks),
    ("Scaling on the parameter server (1 vs 2 CPU workers)", "scaling", scaling_blocks),
    ("What the dataset identity checks cost", "contract", contract_blocks),
    ("Met and not met", None, summary_blocks),
)
METHODS = """## How the figures are measured

Each section is one script in a process of its own; benchmarks/README.md ("The scripts")
describes how each measures. Every timed figure is the median (min-max) of its repeats.
"""


def render(results: dict[str, Any], found: list[dict[str, Any]]) -> str:
    """RESULTS.md: the run's header, PAGE's sections, how the figures are measured, failures."""
    try:  # a path inside the repository as a relative one (the same on every checkout)
        shown = str(Path(results["json"]).resolve().relative_to(benchlib.REPO_ROOT))
    except ValueError:
        shown = results["json"]
    lines = ["# Benchmark results", "",
             f"Written by `{results['command']}` on {results['finished']} "
             f"({results['minutes']:.0f} min). Machine-readable: `{shown}`.", ""]
    if results["quick"]:
        lines += ["**Quick run (smoke test): tiny sizes and one repeat; the figures mean "
                  "nothing.**", ""]
    if results.get("out_of_time"):
        lines += [f"Sections not started because the run's time budget was spent: "
                  f"{', '.join(results['out_of_time'])}.", ""]
    for heading, key, blocks_of in PAGE:
        blocks = blocks_of(results, found) if key is None or results.get(key) else ["Not run."]
        lines += [f"## {heading}", ""] if blocks else []
        for block in blocks:
            if isinstance(block, Table):
                lines += markdown_table(*block)
            elif isinstance(block, list):  # a list of bullets
                lines += [*(f"- {item}" for item in block), ""] if block else []
            else:
                lines += [block, ""]
    lines.append(METHODS)
    if failures := results.get("failures"):
        lines += ["## Failures", "", *(f"- {k}: {v}" for k, v in failures.items()), ""]
    return "\n".join(lines).rstrip() + "\n"


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    cli = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    add = cli.add_argument
    add("--quick", action="store_true", help="smoke run: tiny sizes, peers only with --peers")
    peers = cli.add_mutually_exclusive_group()
    peers.add_argument("--peers", action="store_true", default=None,
                       help="run the PyTorch peers (the default without --quick)")
    peers.add_argument("--no-peers", dest="peers", action="store_false")
    add("--setup-peers", action="store_true", help="run setup.sh when the peers' venv is missing")
    add("--networks", default=",".join(ALL_NETWORKS), help=f"from: {', '.join(ALL_NETWORKS)}")
    add("--sections", default=",".join(SECTIONS),
        help=f"run in the order given, from: {', '.join(SECTIONS)}")
    add("--repeats", type=int, default=3, help="repeats of every measurement (default 3)")
    add("--no-health", dest="health", action="store_false", help="skip the health monitor's cost")
    add("--peer-images", type=int, default=2000, help="photos for the pipeline comparison")
    add("--build-photos", help="ImageFolder tree for the build (default: the peers' photos)")
    add("--timeout", type=float, default=7200, help="seconds per script")
    add("--budget", type=float, help="minutes after which no further section starts")
    add("--results-md", help="default benchmarks/RESULTS.md (output/RESULTS_quick.md, --quick)")
    add("--json", help="default benchmarks/output/results.json (results_quick.json, --quick)")
    add("--work", help="each script's JSON (default benchmarks/output/run_all[_quick])")
    add("--render", metavar="RESULTS_JSON", help="measure nothing: the Markdown from a run's JSON")
    args = cli.parse_args(argv)
    args.peers = not args.quick if args.peers is None else args.peers
    args.networks = benchlib.names(cli, args.networks, ALL_NETWORKS, "networks")
    args.sections = benchlib.names(cli, args.sections, SECTIONS, "sections")
    args.results_md = Path(args.results_md) if args.results_md else (
        OUTPUT / "RESULTS_quick.md" if args.quick else benchlib.BENCH_DIR / "RESULTS.md")
    args.json = Path(args.json) if args.json else OUTPUT / (
        "results_quick.json" if args.quick else "results.json")
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    md = args.results_md
    md.parent.mkdir(parents=True, exist_ok=True)
    if args.render:  # the Markdown again from a run's JSON (after a change to how it is written)
        results = json.loads(Path(args.render).read_text())
        md.write_text(render(results, targets(results)))
        print(f"wrote {md} from {args.render}")
        return 0
    run = Run(args)
    run.say(f"sections {', '.join(args.sections)}; networks {', '.join(args.networks)}")
    results = measure(run)
    found = targets(results)
    results.update(
        quick=args.quick, targets=found, failures=run.failures, out_of_time=run.out_of_time,
        command="python benchmarks/run_all.py" + "".join(
            f" {a}" for a in (sys.argv[1:] if argv is None else argv)),
        finished=time.strftime("%Y-%m-%d %H:%M %Z"),
        minutes=(time.perf_counter() - run.started) / 60, json=str(args.json))
    results["peak_used"] = dict(zip(("gflops", "backend"), machine_peak(results)))
    benchlib.write_json(args.json, results)
    md.write_text(render(results, found))
    for line in [*(summary_blocks(results, found) or [[]])[0],
                 *(f"FAILED {name}: {failure}" for name, failure in run.failures.items())]:
        run.say(line)
    run.say(f"wrote {md} and {args.json}")
    return 1 if run.failures else 0


if __name__ == "__main__":
    sys.exit(main())
