"""report.py: one self-contained page per run, showing that run's own figures.

The run: the session's ``tiny_run`` (conftest.py): GoogLeNet on the tiny dataset, two
epochs, then a restart from checkpoint 1 with a lower rate (so the logs need stitching),
the health monitor told to warn at every check, and the test split scored for the last
checkpoint.
"""

from __future__ import annotations

import base64
import json
from html.parser import HTMLParser
from pathlib import Path

from conftest import linked_copy

import report  # noqa: F401  (the script imports)
from pyimagesearch.commands.report import main as report_main
from pyimagesearch.reporting.published import comparison
from pyimagesearch.run.checkpoints import read_manifest
from pyimagesearch.training.health import parse_health_lines

VOID = {"meta", "img", "br", "hr", "link", "input", "col", "wbr"}


class Page(HTMLParser):
    """Collects images, links, texts by element id, and checks that tags are balanced."""

    def __init__(self) -> None:
        super().__init__()
        self.stack: list[str] = []
        self.errors: list[str] = []
        self.images: list[str] = []
        self.links: list[str] = []
        self.by_id: dict[str, str] = {}
        self._open_ids: list[tuple[str, int]] = []
        self.text: list[str] = []

    def handle_starttag(self, tag, attrs):
        attrs = dict(attrs)
        if tag == "img":
            self.images.append(attrs.get("src", ""))
        if tag == "a" and "href" in attrs:
            self.links.append(attrs["href"])
        if tag not in VOID:
            self.stack.append(tag)
            if "id" in attrs:
                self._open_ids.append((attrs["id"], len(self.text)))

    def handle_endtag(self, tag):
        if not self.stack or self.stack[-1] != tag:
            self.errors.append(f"unexpected </{tag}> (open: {self.stack[-3:]})")
            return
        self.stack.pop()
        if self._open_ids and tag == "span":
            name, start = self._open_ids.pop()
            self.by_id[name] = "".join(self.text[start:]).strip()

    def handle_data(self, data):
        self.text.append(data)


def set_validation_rank1(run: Path, rank1: dict[int, float]) -> None:
    """Give checkpoints the validation rank-1 a test wants to see reported."""
    for epoch, value in rank1.items():
        path = run / f"net-{epoch:04d}.json"
        manifest = json.loads(path.read_text())
        manifest["metrics"]["val"]["accuracy"] = value
        path.write_text(json.dumps(manifest))


def test_the_page_shows_this_runs_figures(tiny_run, tmp_path, capsys):
    run = linked_copy(tiny_run, tmp_path / "run")
    # The best on validation: the highest rank-1, and of equals the earlier checkpoint.
    set_validation_rank1(run, {1: 0.5, 2: 0.75, 3: 0.75})
    output = tmp_path / "page" / "report.html"
    capsys.readouterr()
    assert report_main(["--checkpoints", str(run), "--prefix", "net",
                        "--output", str(output)]) == 0
    out = capsys.readouterr().out
    assert f"wrote {output}" in out
    assert "best on validation: checkpoint 2, rank-1 75.00%" in out
    page = Page()
    page.feed(output.read_text(encoding="utf-8"))
    page.close()
    assert not page.errors and not page.stack, (page.errors, page.stack)

    # Every image is embedded (a real PNG) or a file that exists; links are in-page.
    assert len(page.images) >= 5  # rank-1, rank-5, loss, learning rate, health
    for src in page.images:
        if src.startswith("data:image/png;base64,"):
            assert base64.b64decode(src.split(",", 1)[1])[:8] == b"\x89PNG\r\n\x1a\n"
        else:
            assert (output.parent / src).is_file(), src
    assert all(link.startswith("#") or (output.parent / link).exists() for link in page.links)
    for name in ("net_rank1.png", "net_rank5.png", "net_loss.png", "net_lr.png",
                 "net_health.png"):
        assert (output.parent / name).is_file(), name

    # The figures are this run's: final and best from the checkpoint JSONs, test from its JSON.
    manifests = {e: read_manifest(run, "net", e) for e in (1, 2, 3)}
    final = manifests[3]["metrics"]["val"]
    assert page.by_id["final-val-rank1"] == f"{100 * final['accuracy']:.2f}%"
    assert page.by_id["final-val-rank5"] == f"{100 * final['top_k_accuracy_5']:.2f}%"
    assert page.by_id["best-val-rank1"] == "75.00%"
    test = json.loads((run / "net-0003-test.json").read_text())
    assert page.by_id["final-test-rank1"] == f"{100 * test['accuracy']:.2f}%"

    text = " ".join(" ".join(page.text).split())
    # The restart: both starts, the second with the rate set by hand.
    assert "epoch 0 (training_0.log, lr 0.001); epoch 1 (training_1.log, lr 0.0001)" in text
    # Health: training_0.log's epoch-1 checks were replaced by the restart's.
    first, second = (parse_health_lines(run / f"training_{n}.log") for n in (0, 1))
    checks = [c for c in first.checks if c.epoch < 1] + second.checks
    warnings = [w for w in first.warnings if w.epoch < 1] + second.warnings
    assert len(first.checks) > len([c for c in first.checks if c.epoch < 1])
    assert f"{len(checks)} checks, {len(warnings)} warning(s)." in text
    assert warnings and "The network was reported dying" in text
    assert "Health monitor: every 1 updates" in text
    # Dataset and config: the manifest's counts, the label order, the config snapshot.
    dataset = json.loads(Path(manifests[3]["dataset"]["manifest"]).read_text())
    train = dataset["splits"]["train"]
    assert f"train {train['listed']} {train['written']} 0" in text
    assert "Label order: 4 classes (map_clsloc)" in text
    assert "BATCH_SIZE 8" in text
    assert "no published number exists for it" in text  # the tiny config is the demo's


def test_the_default_page_sits_beside_the_checkpoints(tiny_run, tmp_path, capsys):
    run = linked_copy(tiny_run, tmp_path / "run")
    assert report_main(["-c", str(run), "-p", "net"]) == 0
    assert (run / "net-report.html").is_file() and (run / "net_rank1.png").is_file()
    assert "final checkpoint 3: validation rank-1" in capsys.readouterr().out


def test_nothing_to_report_fails_clearly(tmp_path, capsys):
    assert report_main(["-c", str(tmp_path), "-p", "net"]) == 2
    assert "no checkpoint of 'net' and no training_*.log" in capsys.readouterr().err


def test_published_numbers_are_keyed_by_model_and_recipe():
    book = comparison("googlenet", {"RECIPE": {"name": "book-googlenet-adam"}})
    assert [(r.rank1_text(), r.rank5_text()) for r in book.rows] == \
        [("63.45%", "84.9%"), ("65.87%", "87.48%")]
    assert "validation" in book.rows[0].protocol and "test split" in book.rows[1].protocol
    assert "experiment #3" in book.rows[0].source
    one = comparison("googlenet", {"RECIPE": {"name": "book-googlenet-exp1"}})
    assert [(r.rank1_text(), r.rank5_text()) for r in one.rows] == [("57.75%", "81.15%")]
    two = comparison("googlenet", {"RECIPE": "book-googlenet-exp2"})
    assert [(r.rank1_text(), r.rank5_text()) for r in two.rows] == [("53.67%", "77.85%")]
    by_hand = comparison("googlenet", {"RECIPE": {"name": "book-googlenet-sgd"}})
    assert len(by_hand.rows) == 4 and "validation with validation" in by_hand.note
    irv2 = comparison("inception_resnet_v2", {"RECIPE": {"name": "torch-inception-resnet-v2-sgd"}})
    assert [(r.rank1_text(), r.rank5_text()) for r in irv2.rows] == \
        [("80.1%", "95.1%"), ("75.593%", "92.593%")]
    cifar = comparison("cifar_resnet", {"RECIPE": {"name": "paper-cifar-resnet"}},
                       {"depth": 20, "shortcut": "A", "num_classes": 10})
    assert cifar.rows[0].rank1_text() == "91.25%" and "8.75%" in cifar.rows[0].protocol
    assert cifar.rows[1].rank1_text() == "91.55%" and "gcr/torch-residual-networks" in \
        cifar.rows[1].source
    assert not comparison("cifar_resnet", {}, {"depth": 20, "shortcut": "B"}).rows
    demo = comparison("googlenet", {"RECIPE": {"name": "demo-googlenet-adam"}})
    assert not demo.rows and "digits demo" in demo.note
    fake = comparison("cifar_resnet", {"FAKE_CIFAR": {"seed": 0}}, {"depth": 20})
    assert not fake.rows and "fake-CIFAR" in fake.note
