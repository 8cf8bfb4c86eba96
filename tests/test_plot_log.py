"""plot_log.py on real run folders where something is wrong: the plots cannot be written, the
logs are gone but the metrics file is there, a log holds nothing a run writes."""

from __future__ import annotations

import pytest

from pyimagesearch.commands.plot_log import main as plot_main
from pyimagesearch.run.logs import TrainingLog, append_metrics
from pyimagesearch.run.paths import log_path
from pyimagesearch.scoring import METRIC_NAMES

PNG = b"\x89PNG\r\n\x1a\n"
CURVES = ("rank1", "rank5", "loss")


def write_run(folder, starts=((0, 3, 0.1), (2, 2, 0.01)), logs=True):
    """A run restarted at each (start, epochs, lr): its logs and its metrics file."""
    folder.mkdir(parents=True, exist_ok=True)
    for run, (start, count, lr) in enumerate(starts):
        log = TrainingLog(log_path(folder, start), console=False)
        log.start(start, "test")
        for epoch in range(start, start + count):
            figures = {name: 0.1 * epoch + run / 100 for name in METRIC_NAMES}
            log.learning_rate(epoch, lr)
            log.epoch_metrics(epoch, "Train", figures)
            log.time_cost(epoch, 1.5)
            log.epoch_metrics(epoch, "Validation", figures)
            append_metrics(folder / "net-metrics.jsonl",
                           {"epoch": epoch, "start_epoch": start, "run": f"r{run}", "lr": lr,
                            "train": figures, "val": figures, "time": 1.5})
        log.close()
        if not logs:
            log.path.unlink()
    return folder


def one_error_line(capsys) -> str:
    captured = capsys.readouterr()
    lines = captured.err.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in captured.err, captured.err
    return lines[0]


def test_plots_that_cannot_be_written_are_one_line_offering_another_folder(tmp_path, capsys):
    run = write_run(tmp_path / "run")
    (tmp_path / "file").write_text("not a folder")
    assert plot_main(["--checkpoints", str(run), "--prefix", "net",
                      "--output", str(tmp_path / "file" / "plots")]) == 2
    line = one_error_line(capsys)
    assert line.startswith(f"[ERROR] could not write {tmp_path / 'file' / 'plots'} (")
    assert line.endswith("; give --output DIR to write the plots elsewhere")
    # The folder exists but a PNG cannot be written there (matplotlib's own write fails).
    (run / "net_rank1.png").mkdir()
    assert plot_main(["--checkpoints", str(run), "--prefix", "net"]) == 2
    assert f"could not write {run / 'net_rank1.png'} (" in one_error_line(capsys)
    assert plot_main(["--checkpoints", str(run), "--prefix", "net",
                      "--output", str(tmp_path / "elsewhere")]) == 0
    assert all((tmp_path / "elsewhere" / f"net_{c}.png").read_bytes()[:8] == PNG
               for c in CURVES)


def test_runs_overlay_that_cannot_be_written_is_one_line(tmp_path, capsys):
    runs = [write_run(tmp_path / f"seed{k}") for k in (1, 2)]
    (tmp_path / "file").write_text("")
    assert plot_main(["--runs", *map(str, runs), "--output", str(tmp_path / "file")]) == 2
    assert "give --output DIR to write the plots elsewhere" in one_error_line(capsys)


def test_logs_deleted_while_the_run_went_on_are_plotted_from_the_metrics_file(tmp_path,
                                                                              capsys):
    with_logs = write_run(tmp_path / "with")
    assert plot_main(["--checkpoints", str(with_logs), "--prefix", "net"]) == 0
    from_logs = capsys.readouterr().out
    run = write_run(tmp_path / "run", logs=False)
    assert not list(run.glob("training_*.log"))
    assert plot_main(["--checkpoints", str(run), "--prefix", "net"]) == 0
    out = capsys.readouterr().out
    assert f"no training_*.log in {run}: plotting net-metrics.jsonl" in out
    # The same epochs and starts as the logs gave.
    assert "4 epochs from net-metrics.jsonl; starts at 0 (lr 0.1), 2 (lr 0.01)" in out
    assert "4 epochs from 2 log(s); starts at 0 (lr 0.1), 2 (lr 0.01)" in from_logs
    assert all((run / f"net_{c}.png").read_bytes()[:8] == PNG for c in CURVES)
    # --runs falls back alike, and --prefix need not be the run's with one metrics file.
    assert plot_main(["--runs", str(run), str(with_logs), "--prefix", "r"]) == 0
    assert "2 runs overlaid (4-4 epochs each)" in capsys.readouterr().out


def test_without_logs_or_metrics_or_with_several_metrics_files_it_says_so(tmp_path, capsys):
    empty = tmp_path / "empty"
    empty.mkdir()
    assert plot_main(["--checkpoints", str(empty)]) == 2
    assert one_error_line(capsys) == f"[ERROR] no log to plot: training_*.log in {empty}"
    assert plot_main(["--runs", str(empty)]) == 2
    assert one_error_line(capsys) == f"[ERROR] no training_*.log in {empty}"
    run = write_run(tmp_path / "run", logs=False)
    (run / "other-metrics.jsonl").write_text("")
    assert plot_main(["--checkpoints", str(run), "--prefix", "x"]) == 2
    assert one_error_line(capsys) == (
        f"[ERROR] no log to plot: training_*.log in {run}, and several metrics files "
        f"(net-metrics.jsonl, other-metrics.jsonl): give the run's --prefix")
    assert plot_main(["--checkpoints", str(run), "--prefix", "net"]) == 0


@pytest.mark.parametrize("content", [bytes(range(256)) * 8, b"", b"INFO:root:Saved\n"])
def test_a_log_of_nothing_recognisable_is_refused_not_drawn_empty(tmp_path, capsys, content):
    log = tmp_path / "training_0.log"
    log.write_bytes(content)
    assert plot_main(["--logs", str(log), "--prefix", "junk"]) == 2
    assert one_error_line(capsys) == (
        f"[ERROR] nothing to plot in {log}: no epoch's figures recognised "
        f"(lines such as Epoch[0] Train-accuracy=0.5)")
    assert not list(tmp_path.glob("*.png"))
    assert plot_main(["--checkpoints", str(tmp_path)]) == 2
    assert "nothing to plot in" in one_error_line(capsys)


def test_a_damaged_log_or_metrics_file_is_one_line_naming_it(tmp_path, capsys):
    run = write_run(tmp_path / "run")
    with open(run / "training_2.log", "a") as handle:
        handle.write("Epoch[99999999999] Train-accuracy=0.5\n")
    assert plot_main(["--checkpoints", str(run)]) == 2
    assert one_error_line(capsys) == (
        f"[ERROR] {run / 'training_2.log'}, line 18: epoch 99999999999 is beyond any run's "
        f"100,000; the log was edited or is damaged")
    bare = write_run(tmp_path / "bare", logs=False)
    with open(bare / "net-metrics.jsonl", "a") as handle:
        handle.write('{"epoch": 4, "val": {"accuracy": "high"}}\n')
    assert plot_main(["--checkpoints", str(bare), "--prefix", "net"]) == 2
    assert one_error_line(capsys) == (
        f"[ERROR] {bare / 'net-metrics.jsonl'}, line 6: val {{'accuracy': 'high'}} is not a "
        f"set of named numbers; the file was edited or is damaged")
