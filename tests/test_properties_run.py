"""Readers of the run folder's files, fed generated input (Hypothesis): training logs, the
metrics file, checkpoint JSON, ``.params``/``.states`` arrays and MXNet symbol JSON.

The property is the same for every reader: any file ends in a result of the right type or
in the project's error naming the file; never another exception, a hang or a value the file
did not hold. Examples that once failed are pinned with ``@example``.
"""

from __future__ import annotations

import json
import math
import tempfile
from collections.abc import Callable
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import mxnet as mx
import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st
from mxnet import gluon

from pyimagesearch.errors import CheckpointError, ProjectError
from pyimagesearch.files import sha256_file
from pyimagesearch.run.checkpoints import load_exported_params, read_manifest
from pyimagesearch.run.logs import (
    MAX_EPOCH,
    EpochRecord,
    LogReadError,
    ParsedLog,
    TrainingLog,
    append_metrics,
    metrics_history,
    parse_log,
    read_metrics,
    stitch_logs,
)
from pyimagesearch.run.optimizer_state import (
    StateError,
    load_optimizer_state,
    save_optimizer_state,
)
from pyimagesearch.run.paths import checkpoint_paths
from pyimagesearch.run.symbolic_import import load_symbolic_checkpoint
from pyimagesearch.scoring import METRIC_NAMES

# Small and few: the whole file stays within seconds on a busy 2-core machine.
PROPERTY = settings(max_examples=60, deadline=None, database=None,
                    suppress_health_check=[HealthCheck.too_slow])


@contextmanager
def folder():
    """A fresh folder per generated example (a function-scoped fixture would be shared)."""
    with tempfile.TemporaryDirectory(prefix="props-") as name:
        yield Path(name)


def refused_naming(error: ProjectError, path: Path) -> None:
    """The project's error: one line that names the file."""
    message = str(error)
    assert str(path) in message and "\n" not in message, message


# --- training logs ----------------------------------------------------------------------------
DIGITS = st.one_of(st.integers(0, 300).map(str), st.integers(0, 10**30).map(str),
                   st.integers(4290, 4400).map(lambda n: "9" * n))
NUMBERS = st.one_of(st.floats(allow_nan=True, allow_infinity=True).map(repr),
                    st.sampled_from(["nan", "-inf", "1e999", ".5", "1.", "-0"]),
                    st.integers(1, 400).map(lambda n: "1" * n + "x"))
LINE_SHAPES = (
    "Epoch[{e}] Train-accuracy={x}", "Epoch[{e}] Validation-cross-entropy={x}",
    "INFO:root:Epoch[{e}] Train-top_k_accuracy_5={x}", "Epoch[{e}] Time cost={x}",
    "Epoch[{e}] Learning-rate={x}", "Start: epoch {e} at 2026-12-01T10:00:00",
    "Epoch[{e}] Batch [{e}]\tSpeed: {x} samples/sec\taccuracy={x}\tcross-entropy={x}",
    "Epoch[{e}] Batch [{e}]\tSpeed: 1.0 samples/sec\t{w}={x}",
)
LOG_LINES = st.one_of(
    st.builds(lambda shape, e, x, w: shape.format(e=e, x=x, w=w), st.sampled_from(LINE_SHAPES),
              DIGITS, NUMBERS, st.text("ab_-", max_size=300)),
    st.text(max_size=40))


@st.composite
def log_bytes(draw) -> bytes:
    """Log-like text (every kind of line, numbers of any size, any order and repeats), cut
    anywhere, with random bytes mixed in; or random bytes alone."""
    if draw(st.booleans()):
        return draw(st.binary(max_size=600))
    text = "\n".join(draw(st.lists(LOG_LINES, max_size=12))).encode("utf-8", "surrogatepass")
    cut = draw(st.integers(0, len(text)))
    return text[:cut] + draw(st.binary(max_size=8)) + text[cut:]


def check_parsed(parsed: ParsedLog) -> None:
    assert 0 <= parsed.start_epoch <= MAX_EPOCH
    for epoch, record in parsed.epochs.items():
        assert type(epoch) is int and 0 <= epoch <= MAX_EPOCH
        assert all(isinstance(v, float) for v in (*record.train.values(), *record.val.values()))


@PROPERTY
@given(data=log_bytes(), name=st.sampled_from(["training_0.log", "training_3.2.log", "book.log",
                                               "training_" + "9" * 200 + ".log"]))
@example(data=b"Epoch[" + b"9" * 5000 + b"] Train-accuracy=0.5\n", name="training_0.log")
@example(data=b"Epoch[0] Batch [" + b"9" * 5000 + b"]\tSpeed: 1 samples/sec\n",
         name="training_0.log")
@example(data=b"Epoch[99999999999] Train-accuracy=0.5\n", name="training_0.log")
@example(data=b"\xff\xfeEpoch[1] Train-accuracy=0.5\n\x80\n", name="training_0.log")
def test_any_log_parses_or_is_refused_naming_it(data, name):
    with folder() as tmp:
        path = tmp / name
        path.write_bytes(data)
        try:
            check_parsed(parse_log(path))
        except LogReadError as error:
            refused_naming(error, path)


def test_a_number_a_crash_cut_short_is_never_read():
    """The last line of a log without its newline may have lost digits: 1e-05 read as 1e-0."""
    with folder() as tmp:
        path = tmp / "training_0.log"
        path.write_text("Epoch[3] Train-accuracy=0.412000\nEpoch[3] Learning-rate=1e-0")
        parsed = parse_log(path)
        assert parsed.epochs[3].train == {"accuracy": 0.412} and parsed.epochs[3].lr is None


def test_a_long_line_of_name_characters_parses_in_linear_time():
    """A batch line whose tail is one long run of name characters once took quadratic time
    (hours for a megabyte); a run of digits likewise in a number."""
    with folder() as tmp:
        path = tmp / "training_0.log"
        path.write_text("Epoch[0] Batch [1]\tSpeed: 1 samples/sec\t" + "a" * 400_000 + "\n"
                        "Epoch[0] Train-accuracy=" + "1" * 400_000 + "x\n")
        assert parse_log(path).batches == [(0, 1, 1.0, {})]


@st.composite
def written_run(draw):
    """Epochs with their figures as TrainingLog writes them, and where to cut the file."""
    epochs = draw(st.lists(st.integers(0, 40), min_size=1, max_size=5, unique=True))
    figures = st.floats(-1e6, 1e6, allow_nan=False)
    values = {e: {k: draw(figures) for k in METRIC_NAMES} for e in epochs}
    lrs = {e: draw(st.floats(1e-8, 10)) for e in epochs}
    return min(epochs), values, lrs, draw(st.floats(0, 1))


@PROPERTY
@given(run=written_run())
def test_a_log_cut_anywhere_holds_only_values_that_were_written(run):
    start, values, lrs, cut = run
    with folder() as tmp:
        log = TrainingLog(tmp / f"training_{start}.log", console=False)
        log.start(start, "property")
        for epoch, metrics in values.items():
            log.learning_rate(epoch, lrs[epoch])
            log.batch(epoch, 7, 123.45, metrics)
            log.epoch_metrics(epoch, "Train", metrics)
            log.epoch_metrics(epoch, "Validation", metrics)
        log.close()
        text = log.path.read_bytes()
        log.path.write_bytes(text[:int(cut * len(text))])
        parsed = parse_log(log.path)
        for epoch, record in parsed.epochs.items():
            for kind in (record.train, record.val):
                for name, value in kind.items():
                    assert value == float(f"{values[epoch][name]:f}")
            assert record.lr in (None, float(f"{lrs[epoch]:g}"))
        for epoch, batch, speed, metrics in parsed.batches:
            assert (batch, speed) == (7, 123.45)
            assert metrics == {k: float(f"{values[epoch][k]:f}") for k in metrics}


@st.composite
def several_logs(draw):
    """Logs of one run: start epochs and the epochs each trained, in any order, with repeats
    and epochs before a log's start."""
    logs = []
    for repeat in range(draw(st.integers(1, 4))):
        start = draw(st.integers(0, 6))
        epochs = draw(st.lists(st.integers(0, 9), max_size=6))
        stamp = draw(st.one_of(st.none(), st.sampled_from(["2026-01-01", "2026-02-01"])))
        logs.append((f"training_{start}.{repeat + 2}.log", start, epochs, stamp))
    return logs


@PROPERTY
@given(logs=several_logs())
def test_stitched_logs_keep_each_epoch_of_the_last_start_or_are_refused(logs):
    with folder() as tmp:
        paths = []
        for name, start, epochs, stamp in logs:
            lines = [f"Start: epoch {start} at {stamp}"] if stamp else []
            lines += [f"Epoch[{e}] Train-accuracy={start}.{e}" for e in epochs]
            (tmp / name).write_text("".join(line + "\n" for line in lines))
            paths.append(tmp / name)
        try:
            history = stitch_logs(paths)
        except LogReadError as error:
            assert any(str(p) in str(error) for p in paths)
            assert any(e < start for _, start, epochs, _ in logs for e in epochs)
            return
        assert list(history.epochs) == sorted(history.epochs)
        assert len(history.restarts) == len(logs)
        for epoch, record in history.epochs.items():
            # The value is the last start's (in the stitched order) that trained the epoch.
            start = next(r.epoch for r in reversed(history.restarts) if r.epoch <= epoch)
            assert record.train["accuracy"] == float(f"{start}.{epoch}")


# --- the metrics file -------------------------------------------------------------------------
JSON_VALUES = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=8),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=6), inner,
                                                                 max_size=3),
    max_leaves=8)
FIELD_VALUES = st.one_of(JSON_VALUES, st.integers(-3, 12), st.floats(0, 1))
RECORDS = st.fixed_dictionaries(
    {"epoch": st.one_of(st.integers(0, 12), FIELD_VALUES)},
    optional={"start_epoch": FIELD_VALUES, "run": st.sampled_from(["a", "b", None]) | FIELD_VALUES,
              "lr": FIELD_VALUES, "time": FIELD_VALUES, "num_update": FIELD_VALUES,
              "train": st.dictionaries(st.sampled_from(METRIC_NAMES), FIELD_VALUES) | FIELD_VALUES,
              "val": st.dictionaries(st.sampled_from(METRIC_NAMES), FIELD_VALUES) | FIELD_VALUES})
METRICS_LINES = st.one_of(
    RECORDS.map(lambda r: json.dumps(r).encode()),
    JSON_VALUES.map(lambda v: json.dumps(v).encode()),
    st.binary(max_size=30),
    st.sampled_from([b"[" * 100_000, b'{"epoch": ' + b"1" * 5000 + b"}", b'{"epoch": 1e400}',
                     b'{"epoch": 2, "lr": Infinity}', b'{"epoch": 3, "lr": ' + b"9" * 400 + b"}"]))


@PROPERTY
@given(lines=st.lists(METRICS_LINES, max_size=8), cut=st.integers(0, 400))
@example(lines=[b"[" * 100_000], cut=400)
@example(lines=[b'{"epoch": ' + b"1" * 5000 + b"}"], cut=0)
@example(lines=[b'{"epoch": 1e400}'], cut=0)
@example(lines=[b'{"epoch": 1, "start_epoch": "x", "run": "b"}'], cut=0)
@example(lines=[b'{"epoch": 2.7}'], cut=0)
@example(lines=[b'{"epoch": true}'], cut=0)
@example(lines=[b'{"epoch": 2, "val": {"accuracy": "high"}}'], cut=0)
@example(lines=[b'\xff{"epoch": 2}'], cut=0)
def test_any_metrics_file_reads_or_is_refused_naming_it(lines, cut):
    with folder() as tmp:
        path = tmp / "net-metrics.jsonl"
        data = b"\n".join(lines)
        path.write_bytes(data[:len(data) - cut] if cut < len(data) else data)
        try:
            records = read_metrics(path)
            history = metrics_history(path)
        except LogReadError as error:
            refused_naming(error, path)
            return
        epochs = [r["epoch"] for r in records]
        assert epochs == sorted(set(epochs)) == list(history.epochs)
        assert all(type(e) is int and 0 <= e <= MAX_EPOCH for e in epochs)
        for record in history.epochs.values():
            assert isinstance(record, EpochRecord)
            assert all(isinstance(v, float) for v in (*record.train.values(),
                                                      *record.val.values()))
            assert record.lr is None or math.isfinite(record.lr)


@PROPERTY
@given(starts=st.lists(st.tuples(st.integers(0, 5), st.integers(1, 4)), min_size=1, max_size=4),
       cut=st.floats(0, 1))
def test_metrics_and_logs_of_one_run_stitch_alike_and_a_cut_file_loses_only_its_end(starts,
                                                                                   cut):
    """A run restarted at any epochs, written to both files: the metrics file tells the same
    history as the logs (what plot_log draws when the logs are gone); cut short anywhere it
    still holds only records that were written."""
    with folder() as tmp:
        metrics, written = tmp / "net-metrics.jsonl", []
        for run, (start, count) in enumerate(starts):
            log = TrainingLog(tmp / f"training_{start}.{run + 2}.log", console=False)
            log.start(start, "property")
            for epoch in range(start, start + count):
                figures = {k: epoch + run / 10 for k in METRIC_NAMES}
                log.learning_rate(epoch, 0.1 * (run + 1))
                log.epoch_metrics(epoch, "Train", figures)
                log.time_cost(epoch, 2.5)
                log.epoch_metrics(epoch, "Validation", figures)
                record = {"epoch": epoch, "start_epoch": start, "run": f"run{run}",
                          "lr": 0.1 * (run + 1), "train": figures, "val": figures, "time": 2.5}
                append_metrics(metrics, record)
                written.append(record)
            log.close()
        from_logs = stitch_logs(sorted(tmp.glob("training_*.log")))
        from_metrics = metrics_history(metrics)
        assert from_metrics.epochs.keys() == from_logs.epochs.keys()
        for epoch, record in from_metrics.epochs.items():
            assert record.train == pytest.approx(from_logs.epochs[epoch].train)
            assert (record.lr, record.time) == (pytest.approx(from_logs.epochs[epoch].lr), 2.5)
        assert [(r.epoch, r.lr) for r in from_metrics.restarts] == \
            [(r.epoch, pytest.approx(r.lr)) for r in from_logs.restarts]
        data = metrics.read_bytes()
        metrics.write_bytes(data[:int(cut * len(data))])
        assert all(record in written for record in read_metrics(metrics))


# --- checkpoint JSON --------------------------------------------------------------------------
def checkpoint_files(tmp: Path, epoch: int = 3) -> dict:
    """Tiny stand-ins for a checkpoint's files, and the manifest that describes them."""
    files = {}
    for kind, name in (("symbol", "net-symbol.json"), ("params", f"net-{epoch:04d}.params"),
                       ("states", f"net-{epoch:04d}.states")):
        (tmp / name).write_bytes(kind.encode())
        files[kind] = {"file": name, "bytes": len(kind), "sha256": sha256_file(tmp / name)}
    return {"format": 1, "epoch": epoch, "prefix": "net", "num_update": 12, "files": files,
            "optimizer_state": {"optimizer": "sgd", "num_update": 12,
                                "index_update_count": {"0": 12, "1": 12}}}


ENTRY_EDITS = st.one_of(
    st.tuples(st.sampled_from(["file", "bytes", "sha256"]), JSON_VALUES),
    st.tuples(st.just("file"), st.sampled_from(["net-0002.params", "net-symbol.json", ".",
                                                "..", "a/b", "net-0003.params\x00"])))
MANIFEST_EDITS = st.lists(st.one_of(
    st.tuples(st.just("top"), st.sampled_from(["epoch", "num_update", "files", "optimizer_state",
                                               "format"]), JSON_VALUES),
    st.tuples(st.just("top"), st.just("epoch"), st.sampled_from([3.0, True, "3", 3 + 2**64])),
    st.tuples(st.sampled_from(["symbol", "params", "states"]), ENTRY_EDITS),
    st.tuples(st.just("counts"), st.text(max_size=4), st.one_of(st.integers(-2, 14),
                                                                 JSON_VALUES)),
    st.tuples(st.just("state"), st.sampled_from(["num_update", "on_servers",
                                                 "index_update_count"]), JSON_VALUES),
), max_size=3)


def edited_manifest(manifest: dict, edits: list) -> dict:
    for where, *change in edits:
        state = manifest.get("optimizer_state")
        target = {"top": manifest, "state": state,
                  "counts": state.get("index_update_count") if isinstance(state, dict) else None,
                  }.get(where, manifest.get("files"))
        if where in ("symbol", "params", "states") and isinstance(target, dict):
            target, change = target.get(where), change[0]
        if isinstance(target, dict):
            target[change[0]] = change[1]
    return manifest


def accepted_manifest_fits(manifest: dict, tmp: Path) -> None:
    """What a reader of an accepted manifest may trust."""
    assert type(manifest["epoch"]) is int and manifest["epoch"] == 3
    for kind, entry in manifest["files"].items():
        assert entry["file"] == checkpoint_paths(tmp, "net", 3)[kind].name
        assert (tmp / entry["file"]).read_bytes() == kind.encode()
    counts = manifest.get("optimizer_state", {}).get("index_update_count", {})
    assert all(key.isdigit() and key.isascii() and int(key) < 2**31 for key in counts)


@PROPERTY
@given(edits=MANIFEST_EDITS, raw=st.one_of(st.none(), st.binary(max_size=40),
                                          st.sampled_from([b"[" * 100_000,
                                                           b'{"epoch": ' + b"3" * 5000 + b"}"])))
@example(edits=[("top", "epoch", 3.0)], raw=None)
@example(edits=[("params", ("file", "net-0002.params"))], raw=None)
@example(edits=[("counts", "x", 1)], raw=None)
@example(edits=[], raw=b"[" * 100_000)
@example(edits=[], raw=b'{"epoch": ' + b"3" * 5000 + b"}")
def test_any_checkpoint_manifest_reads_or_is_refused_naming_it(edits, raw):
    with folder() as tmp:
        manifest = checkpoint_files(tmp)
        (tmp / "net-0002.params").write_bytes(b"params")  # another checkpoint's, verifying
        manifest_file = tmp / "net-0003.json"
        if raw is None:
            text = json.dumps(edited_manifest(manifest, edits))
            manifest_file.write_text(text)
        else:
            manifest_file.write_bytes(raw)
        try:
            accepted_manifest_fits(read_manifest(tmp, "net", 3), tmp)
        except CheckpointError as error:
            refused_naming(error, tmp)


# --- .params and .states files ----------------------------------------------------------------
def tiny_net() -> gluon.HybridBlock:
    """Convolution, batch norm and a dense layer under fixed names, run once."""
    net = gluon.nn.HybridSequential(prefix="t_")
    with net.name_scope():
        net.add(gluon.nn.Conv2D(2, 3, in_channels=1), gluon.nn.BatchNorm(in_channels=2),
                gluon.nn.Dense(3, in_units=2 * 4 * 4))
    net.initialize()
    net.hybridize()
    net(mx.nd.zeros((1, 1, 6, 6)))
    return net


@pytest.fixture(scope="module")
def exported(tmp_path_factory) -> Path:
    """A tiny network's checkpoint as MXNet writes it: t-symbol.json and t-0001.params."""
    folder = tmp_path_factory.mktemp("exported")
    tiny_net().export(str(folder / "t"), epoch=1)
    return folder


ARRAY_NAMES = st.one_of(st.sampled_from(["arg:t_conv0_weight", "arg:t_conv0_bias",
                                         "aux:t_batchnorm0_running_mean", "t_dense0_weight",
                                         "aux:t_conv0_weight", "0/0", "1/0", "2/1", "9/0"]),
                        st.text(max_size=6))
ARRAYS = st.dictionaries(
    ARRAY_NAMES, st.tuples(st.lists(st.integers(0, 5), min_size=1, max_size=3),
                           st.sampled_from(["float32", "float16", "float64", "int32", "uint8",
                                            "int8", "int64", "bool"]),
                           st.sampled_from([0.5, float("nan"), 1e30])),
    max_size=4)


@st.composite
def array_file(draw, original: bytes | None = None) -> bytes:
    """Bytes for an ``mx.nd.save`` file: arrays of any name, shape and type, or a real file
    or those arrays with bytes flipped, cut or inserted; or random bytes."""
    choice = draw(st.integers(0, 3))
    if choice == 0:
        return draw(st.binary(max_size=64))
    if choice == 1 and original is not None:
        data = original
    else:
        with folder() as tmp:
            arrays = {name: mx.nd.full(tuple(shape), value, dtype=dtype)
                      for name, (shape, dtype, value) in draw(ARRAYS).items()}
            mx.nd.save(str(tmp / "a"), arrays)
            data = (tmp / "a").read_bytes()
    for _ in range(draw(st.integers(0, 2))):
        at = draw(st.integers(0, len(data)))
        edit = draw(st.sampled_from(["cut", "insert", "flip"]))
        if edit == "cut":
            data = data[:at]
        elif edit == "insert":
            data = data[:at] + draw(st.binary(min_size=1, max_size=9)) + data[at:]
        elif at < len(data):
            data = data[:at] + bytes([data[at] ^ draw(st.integers(1, 255))]) + data[at + 1:]
    return data


# Files that once made mx.nd.load allocate gigabytes (a 36-byte file of the oldest layout
# declaring 2**27 dimensions: 1.8 GB and seconds; 2**30: beyond this machine's memory), fail
# with a many-line message, or end in a Python traceback after MXNet had read them.
_HEAD = (0x112).to_bytes(8, "little") + bytes(8)
_V2 = (0xF993FAC9).to_bytes(4, "little")
HUGE_COUNT = _HEAD + (10**12).to_bytes(8, "little")
LEGACY_HUGE_NDIM = _HEAD + (1).to_bytes(8, "little") + (2**27).to_bytes(4, "little")
EMPTY_ARRAY = _HEAD + (1).to_bytes(8, "little") + _V2 + bytes(8) + bytes(8)
NOT_UTF8_NAME = (_HEAD + (1).to_bytes(8, "little") + _V2 + bytes(4) + (1).to_bytes(4, "little")
                 + (1).to_bytes(8, "little") + (1).to_bytes(4, "little") + bytes(8) + bytes(4)
                 + (1).to_bytes(8, "little") + (1).to_bytes(8, "little") + b"\xff")


@PROPERTY
@given(data=st.data())
@example(data=None)
def test_any_params_file_loads_into_the_network_or_is_refused_naming_it(exported, data):
    original = (exported / "t-0001.params").read_bytes()
    net = tiny_net()
    with folder() as tmp:
        path = tmp / "t-0001.params"
        contents = [HUGE_COUNT, LEGACY_HUGE_NDIM, EMPTY_ARRAY, NOT_UTF8_NAME] if data is None \
            else [data.draw(array_file(original))]
        for content in contents:
            path.write_bytes(content)
            try:
                load_exported_params(net, path)
            except CheckpointError as error:
                refused_naming(error, path)
                continue
            saved = {k.split(":", 1)[-1]: v for k, v in mx.nd.load(str(path)).items()}
            for name, param in net.collect_params().items():
                assert param.data().shape == saved[name].shape


@pytest.fixture(scope="module")
def saved_state(tmp_path_factory) -> tuple[Path, dict]:
    """The optimizer state of a tiny network after one SGD step, and its counters."""
    net = tiny_net()
    trainer = gluon.Trainer(net.collect_params(), "sgd", {"learning_rate": 0.1, "momentum": 0.9})
    with mx.autograd.record():
        loss = net(mx.nd.ones((2, 1, 6, 6))).sum()
    loss.backward()
    trainer.step(2)
    path = tmp_path_factory.mktemp("state") / "t-0001.states"
    return path, save_optimizer_state(trainer, str(path))


@PROPERTY
@given(data=st.data())
@example(data=None)
def test_any_states_file_loads_into_the_trainer_or_is_refused_naming_it(saved_state, data):
    original, counters = saved_state
    net = tiny_net()
    trainer = gluon.Trainer(net.collect_params(), "sgd", {"learning_rate": 0.1, "momentum": 0.9})
    with folder() as tmp:
        path = tmp / "t-0001.states"
        contents = [HUGE_COUNT, LEGACY_HUGE_NDIM, EMPTY_ARRAY, NOT_UTF8_NAME] if data is None \
            else [data.draw(array_file(original.read_bytes()))]
        for content in contents:
            path.write_bytes(content)
            try:
                load_optimizer_state(trainer, str(path), counters)
            except StateError as error:
                refused_naming(error, path)
                continue
            assert trainer._optimizer.num_update == counters["num_update"]


# --- MXNet symbol JSON ------------------------------------------------------------------------
OPS = st.one_of(st.sampled_from(["null", "Convolution", "BatchNorm", "FullyConnected",
                                 "_copy", "_mul_scalar", "Flatten", "load", "save", "__class__",
                                 "NoSuchOp"]), st.text(max_size=5))
ATTR_VALUES = st.one_of(st.sampled_from(["3", "(3, 3)", "(1,)", "()", "(", "True", "1e-3",
                                         "abc", "(2, (3", "-1", "99999999999"]),
                        st.text(max_size=6))
NODE_EDITS = st.one_of(
    st.tuples(st.just("op"), OPS),
    st.tuples(st.just("name"), st.one_of(st.text(max_size=5), JSON_VALUES)),
    st.tuples(st.just("inputs"), st.one_of(
        st.lists(st.lists(st.integers(-3, 12), max_size=3), max_size=3), JSON_VALUES)),
    st.tuples(st.just("attrs"), st.one_of(st.dictionaries(
        st.sampled_from(["kernel", "stride", "pad", "eps", "num_filter", "num_hidden",
                         "fix_gamma", "no_bias", "name", "scalar"]), ATTR_VALUES),
        JSON_VALUES)),
)


@st.composite
def symbol_json(draw, original: dict) -> bytes:
    """A real symbol JSON with nodes edited (operator, name, inputs, attributes), or any
    JSON, or bytes."""
    choice = draw(st.integers(0, 5))
    if choice == 0:
        return draw(st.binary(max_size=40))
    if choice == 1:
        return json.dumps(draw(JSON_VALUES)).encode()
    graph = json.loads(json.dumps(original))
    nodes = graph["nodes"]
    for _ in range(draw(st.integers(1, 4))):
        index = draw(st.integers(0, len(nodes) - 1))
        key, value = draw(NODE_EDITS)
        nodes[index][key] = value
    if draw(st.booleans()):
        nodes.insert(draw(st.integers(0, len(nodes))), draw(JSON_VALUES))
    return json.dumps(graph).encode()


def node_of(graph: dict, op: str) -> dict:
    return next(node for node in graph["nodes"] if node["op"] == op)


def with_chain(graph: dict, links: int, loop: bool = False) -> bytes:
    """The graph and a dense layer reading the convolution's weight through ``links``
    copies, or through a copy that reads itself."""
    nodes = graph["nodes"]
    source = next(k for k, node in enumerate(nodes) if node["name"] == "t_conv0_weight")
    for _ in range(links):
        nodes.append({"op": "_copy", "name": f"copy{len(nodes)}",
                      "inputs": [[len(nodes) if loop else source, 0, 0]]})
        source = len(nodes) - 1
    nodes.append({"op": "FullyConnected", "name": "extra", "inputs": [[source, 0, 0]],
                  "attrs": {"num_hidden": "3"}})
    return json.dumps(graph).encode()


def with_attribute(op: str, key: str, value: Any) -> Callable[[dict], bytes]:
    def edit(graph: dict) -> bytes:
        node_of(graph, op).setdefault("attrs", {})[key] = value
        return json.dumps(graph).encode()
    return edit


@PROPERTY
@given(data=st.data())
@example(data=json.dumps({"nodes": [1, "x"]}).encode())
@example(data=b"[" * 100_000)
@example(data=lambda graph: with_chain(graph, 1, loop=True))
@example(data=lambda graph: with_chain(graph, 5000))
@example(data=with_attribute("Convolution", "kernel", "3"))
@example(data=with_attribute("BatchNorm", "eps", "abc"))
@example(data=with_attribute("Convolution", "stride", ["2", "2"]))
def test_any_symbol_file_maps_onto_the_network_or_is_refused_naming_it(exported, data):
    original = json.loads((exported / "t-symbol.json").read_text())
    if isinstance(data, bytes):
        content = data
    elif callable(data):
        content = data(original)
    else:
        content = data.draw(symbol_json(original))
    net = tiny_net()
    with folder() as tmp:
        (tmp / "t-0001.params").write_bytes((exported / "t-0001.params").read_bytes())
        (tmp / "t-symbol.json").write_bytes(content)
        try:
            line = load_symbolic_checkpoint(net, tmp, "t", 1, data_shape=(1, 1, 6, 6))
        except CheckpointError as error:
            message = str(error)
            assert "\n" not in message and (str(tmp / "t-symbol.json") in message
                                            or str(tmp / "t-0001.params") in message), message
            return
        assert line.startswith("8 arrays")
