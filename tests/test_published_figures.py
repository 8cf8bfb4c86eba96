"""Every published figure the project prints or reports equals its source, typed once here.

The sources' numbers are written below exactly once, each with the sentence saying where it
comes from. The tests read them back through the code that shows them: the comparison rows
of ``pyimagesearch.reporting.published`` and the run report page (``report.py`` over a run
folder holding only a checkpoint manifest, so nothing trains), and ``cifar_stats.py``'s
table and JSON (``pyimagesearch.evaluation.statistics``). A figure edited in the code
without its source here, or the other way round, fails.
"""

from __future__ import annotations

import hashlib
import json
from html.parser import HTMLParser

import pytest

from pyimagesearch.commands.report import main as report_main
from pyimagesearch.evaluation import statistics
from pyimagesearch.evaluation.statistics import (
    RunResult,
    SettingResult,
    Summary,
    format_table,
    published,
    report_json,
)
from pyimagesearch.reporting.published import comparison

# --- the sources, typed once -----------------------------------------------------------
_BOOK = "Deep Learning for Computer Vision with Python, ImageNet Bundle, GoogLeNet chapter"
# recipe -> [(protocol word, rank-1 %, rank-5 %)], accuracies as the chapter reports them.
BOOK_GOOGLENET = {
    "book-googlenet-exp1": ([("validation", 57.75, 81.15)],
                            f"{_BOOK}: experiment #1's rank-1 / rank-5 on the validation set"),
    "book-googlenet-exp2": ([("validation", 53.67, 77.85)],
                            f"{_BOOK}: experiment #2's rank-1 / rank-5 on the validation set"),
    "book-googlenet-adam": ([("validation", 63.45, 84.90), ("test split", 65.87, 87.48)],
                            f"{_BOOK}: experiment #3's rank-1 / rank-5 on the validation set "
                            f"and on the test split carved from the training set"),
}
# Top-1 / top-5 error (%).
IRV2_PAPER = ((19.9, 4.9),
              "Szegedy et al. 2016 (arXiv:1602.07261), Table 2: Inception-ResNet-v2, single "
              "crop, single model, non-blacklisted ILSVRC 2012 validation images")
IRV2_TORCH = ((24.407, 7.407),
              "lim0606/torch-inception-resnet-v2, README as published 2016-06-09, Results, "
              "single-crop (299x299) validation error rate: 'Setting 1'")
# depth -> test error (%).
TABLE6 = ({20: 8.75, 32: 7.51, 44: 7.17, 56: 6.97, 110: 6.43, 1202: 7.93},
          "He et al. 2016 (arXiv:1512.03385), Table 6, CIFAR-10 test error of the ResNets "
          "(110 layers: the best of 5 runs)")
TABLE6_MEAN_STD = ({110: (6.61, 0.16, 5)},
                   "He et al. 2016, Table 6, 110 layers: the mean +- std over the 5 runs")
TABLE6_PARAMS = ({20: "0.27M", 32: "0.46M", 44: "0.66M", 56: "0.85M", 110: "1.7M",
                  1202: "19.4M"},
                 "He et al. 2016, Table 6, the '# params' column")
# Test error as the fraction the source prints.
TORCH_CIFAR = ({20: 0.084473, 32: 0.079102, 44: 0.075684, 56: 0.063477, 110: 0.067871},
               "gcr/torch-residual-networks (M. Wilber), README of 2016-01-12, 'CIFAR: "
               "Effect of model size', 'My Test Error' of Nsize=3, 5, 7, 9 and 18 (110 "
               "layers, 'fancy policy'), under 'Testing error (rolling average)'")
TORCH_CIFAR_VARIANTS = ({"original": 0.084473, "bn_after_add": 0.083496,
                         "no_relu_bn_before": 0.089355, "no_relu_bn_after": 0.079102},
                        "gcr/torch-residual-networks, README of 2016-01-12, 'CIFAR: Effect "
                        "of model architecture' (20 layers): 'ReLU, BN before add (ORIG "
                        "PAPER)', 'ReLU, BN after add', 'No ReLU, BN before add', 'No ReLU, "
                        "BN after add'")
TORCH_CIFAR_VARIANTS_DEPTH = 20


def _torch_percent(fraction: float) -> float:
    return 100 * fraction


# --- the constants the code keeps ------------------------------------------------------
def test_the_code_holds_the_sources_figures():
    table6, table6_source = TABLE6
    assert table6 == statistics.PAPER_TABLE6, table6_source
    mean_std, mean_source = TABLE6_MEAN_STD
    kept = {depth: (mean, std) for depth, (mean, std, _) in mean_std.items()}
    assert kept == statistics.PAPER_TABLE6_MEAN_STD, mean_source
    assert TABLE6_PARAMS[0] == statistics.PAPER_TABLE6_PARAMS, TABLE6_PARAMS[1]
    torch, torch_source = TORCH_CIFAR
    torch_percent = {depth: _torch_percent(f) for depth, f in torch.items()}
    assert pytest.approx(torch_percent, abs=1e-9) == statistics.TORCH_REPRODUCTION, \
        torch_source
    variants, variants_source = TORCH_CIFAR_VARIANTS
    variants_percent = {variant: _torch_percent(f) for variant, f in variants.items()}
    assert pytest.approx(variants_percent, abs=1e-9) == statistics.TORCH_VARIANTS, \
        variants_source
    assert TORCH_CIFAR_VARIANTS_DEPTH == statistics.TORCH_VARIANTS_DEPTH, variants_source


# --- the comparison rows (the run report's "Against the published numbers") ------------
@pytest.mark.parametrize("recipe", sorted(BOOK_GOOGLENET))
def test_book_googlenet_rows(recipe):
    expected, source = BOOK_GOOGLENET[recipe]
    rows = comparison("googlenet", {"RECIPE": {"name": recipe}}).rows
    assert [(r.rank1, r.rank5) for r in rows] == [(r1, r5) for _, r1, r5 in expected], source
    assert all(word in row.protocol for row, (word, _, _) in zip(rows, expected)), source


def test_a_googlenet_run_without_a_book_recipe_gets_every_book_row():
    rows = comparison("googlenet", {"RECIPE": {"name": "book-googlenet-sgd"}}).rows
    every = [(r1, r5) for name in ("book-googlenet-exp1", "book-googlenet-exp2",
                                   "book-googlenet-adam")
             for _, r1, r5 in BOOK_GOOGLENET[name][0]]
    assert [(r.rank1, r.rank5) for r in rows] == every


def test_inception_resnet_v2_rows():
    paper, torch = comparison("inception_resnet_v2",
                              {"RECIPE": "torch-inception-resnet-v2-sgd"}).rows
    for row, ((top1, top5), source) in ((paper, IRV2_PAPER), (torch, IRV2_TORCH)):
        assert (row.rank1, row.rank5) == pytest.approx((100 - top1, 100 - top5), abs=1e-9), \
            source
        assert f"{top1:g}% / {top5:g}%" in row.protocol, source


def torch_fraction(depth: int, variant: str = "original") -> float | None:
    """The Torch reproduction's published test error (a fraction) for a setting, if any."""
    if variant == "original":
        return TORCH_CIFAR[0].get(depth)
    return TORCH_CIFAR_VARIANTS[0][variant] if depth == TORCH_CIFAR_VARIANTS_DEPTH else None


def cifar_rows(depth: int, variant: str = "original") -> list[tuple[str, float, str]]:
    """What the sources say a CIFAR-10 option-A run should be set beside:
    (text in the row's source, rank-1 % as shown, text in the row's protocol)."""
    rows = []
    if variant == "original" and depth in TABLE6[0]:
        error = TABLE6[0][depth]
        if depth in TABLE6_MEAN_STD[0]:
            mean, std, runs = TABLE6_MEAN_STD[0][depth]
            rows += [(f"Table 6, {depth} layers (best of {runs} runs)", round(100 - error, 2),
                      f"error {error:.2f}%"),
                     (f"Table 6, {depth} layers (mean of {runs} runs)", round(100 - mean, 2),
                      f"error {mean:.2f}% ± {std:.2f}%")]
        else:
            rows.append((f"Table 6, {depth} layers", round(100 - error, 2),
                         f"error {error:.2f}%"))
    fraction = torch_fraction(depth, variant)
    if fraction is not None:
        error = _torch_percent(fraction)
        block = "" if variant == "original" else f", block variant {variant}"
        rows.append((f"gcr/torch-residual-networks, M. Wilber), {depth} layers{block}",
                     round(100 - error, 2), f"test error {error:.2f}%"))
    return rows


SETTINGS = sorted({(d, "original") for d in (*TABLE6[0], *TORCH_CIFAR[0], 8)}
                  | {(d, v) for d in (TORCH_CIFAR_VARIANTS_DEPTH, 56)
                     for v in TORCH_CIFAR_VARIANTS[0]})


@pytest.mark.parametrize(("depth", "variant"), SETTINGS)
def test_cifar_rows(depth, variant):
    params = {"depth": depth, "shortcut": "A", "variant": variant, "num_classes": 10}
    rows = comparison("cifar_resnet", {"RECIPE": {"name": "paper-cifar-resnet"}}, params).rows
    expected = cifar_rows(depth, variant)
    assert [(r.rank1, r.rank5) for r in rows] == [(rank1, None) for _, rank1, _ in expected], \
        (TABLE6[1], TORCH_CIFAR[1], TORCH_CIFAR_VARIANTS[1])
    for row, (source, _, protocol) in zip(rows, expected):
        assert source in row.source and protocol in row.protocol
    # Option B and CIFAR-100 have no published number in either source.
    assert not comparison("cifar_resnet", {}, {**params, "shortcut": "B"}).rows
    assert not comparison("cifar_resnet", {}, {**params, "num_classes": 100}).rows


# --- cifar_stats.py: the table and the JSON --------------------------------------------
def _setting(depth: int, variant: str) -> SettingResult:
    params = {"depth": depth, "shortcut": "A", "variant": variant, "num_classes": 10}
    run = RunResult(folder=f"r{depth}{variant}", seed=1, last_epoch=200, test_error=9.0,
                    test_images=10000, val_errors={199: 9.0}, last_k=Summary.of([9.0]),
                    model_params=params)
    return SettingResult(name=f"{variant}-{depth}", runs=[run], test=Summary.of([9.0]),
                         last_k_mean=Summary.of([9.0]))


def expected_stats_cells(depth: int, variant: str) -> tuple[str, str]:
    """cifar_stats.py's (paper, Torch) cells as the sources give them."""
    paper = "-"
    if variant == "original" and depth in TABLE6[0]:
        paper = f"{TABLE6[0][depth]:.2f}"
        if depth in TABLE6_MEAN_STD[0]:
            mean, std, _ = TABLE6_MEAN_STD[0][depth]
            paper += f" ({mean:.2f} ± {std:.2f})"
    fraction = torch_fraction(depth, variant)
    return paper, "-" if fraction is None else f"{_torch_percent(fraction):.2f}"


def test_cifar_stats_table_and_json():
    settings = [_setting(depth, variant) for depth, variant in SETTINGS]
    lines = format_table(settings, 5).splitlines()
    (_, _, runs), = TABLE6_MEAN_STD[0].values()
    assert f"best of {runs}" in lines[0] and "2016-01-12" in lines[0]
    assert len(lines) == 3 + len(SETTINGS)
    data = report_json(settings, 5)
    for (depth, variant), line, entry in zip(SETTINGS, lines[3:], data["settings"]):
        paper, torch = expected_stats_cells(depth, variant)
        params = {"depth": depth, "shortcut": "A", "variant": variant, "num_classes": 10}
        assert published(params) == (paper, torch)
        assert line.rstrip().endswith(f"{paper:<20} {torch:>5}".rstrip()), (line, TABLE6[1])
        assert entry["published"] == {"paper": paper, "torch": torch}


# --- the run report page ---------------------------------------------------------------
class ComparisonCells(HTMLParser):
    """The cells of the page's comparison table, row by row."""

    def __init__(self) -> None:
        super().__init__()
        self.rows: list[list[str]] = []
        self._inside = False
        self._cell: list[str] | None = None

    def handle_starttag(self, tag, attrs):
        if tag == "table":
            self._inside = dict(attrs).get("class") == "comparison"
        elif self._inside and tag == "tr":
            self.rows.append([])
        elif self._inside and tag == "td":
            self._cell = []

    def handle_endtag(self, tag):
        if tag == "table":
            self._inside = False
        elif tag == "td" and self._cell is not None:
            self.rows[-1].append("".join(self._cell).strip())
            self._cell = None

    def handle_data(self, data):
        if self._cell is not None:
            self._cell.append(data)


def fake_run(folder, model, params, recipe):
    """A run folder holding one checkpoint's manifest and placeholder files: enough for
    report.py, which reads the model and recipe from the manifest."""
    folder.mkdir(parents=True)
    files = {}
    for kind, name in (("symbol", "net-symbol.json"), ("params", "net-0001.params"),
                       ("states", "net-0001.states")):
        (folder / name).write_bytes(b"")
        files[kind] = {"file": name, "bytes": 0, "sha256": hashlib.sha256(b"").hexdigest()}
    (folder / "net-0001.json").write_text(json.dumps({
        "epoch": 1, "seed": 1, "files": files, "recipe": {"name": recipe},
        "config": {"RECIPE": {"name": recipe}, "MODEL": model, "MODEL_PARAMS": params},
        "identity": {"model": model, "model_params": params},
        "metrics": {"val": {"accuracy": 0.5, "top_k_accuracy_5": 0.9}}}))


def _shown(figure: float | None) -> str:
    return "-" if figure is None else f"{figure:g}%"


@pytest.mark.parametrize(("model", "params", "recipe", "expected"), [
    ("googlenet", {}, "book-googlenet-adam",
     [(_shown(r1), _shown(r5)) for _, r1, r5 in BOOK_GOOGLENET["book-googlenet-adam"][0]]),
    ("inception_resnet_v2", {}, "torch-inception-resnet-v2-sgd",
     [(_shown(round(100 - e1, 3)), _shown(round(100 - e5, 3)))
      for (e1, e5), _ in (IRV2_PAPER, IRV2_TORCH)]),
    ("cifar_resnet", {"depth": 110, "shortcut": "A", "variant": "original", "num_classes": 10},
     "paper-cifar-resnet", [(_shown(r1), "-") for _, r1, _ in cifar_rows(110)]),
    ("cifar_resnet", {"depth": 20, "shortcut": "A", "variant": "no_relu_bn_before",
                      "num_classes": 10},
     "torch-cifar-resnet",
     [(_shown(r1), "-") for _, r1, _ in cifar_rows(20, "no_relu_bn_before")]),
])
def test_the_run_report_shows_the_sources_figures(tmp_path, capsys, model, params, recipe,
                                                  expected):
    run = tmp_path / "run"
    fake_run(run, model, params, recipe)
    output = tmp_path / "report.html"
    assert report_main(["--checkpoints", str(run), "--prefix", "net",
                        "--output", str(output)]) == 0
    capsys.readouterr()
    page = ComparisonCells()
    page.feed(output.read_text(encoding="utf-8"))
    published_rows = [row for row in page.rows if row and not row[0].startswith("this run")]
    assert [(row[2], row[3]) for row in published_rows] == expected
