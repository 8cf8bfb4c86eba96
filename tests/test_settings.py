"""Settings: declared once, checked when a config loads, documented from the declaration."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest

import train_googlenet
from pyimagesearch import settings
from pyimagesearch.config import ConfigError, load_config
from pyimagesearch.settings import recipes
from pyimagesearch.settings.readme import readme_with_table

REPO = Path(__file__).resolve().parent.parent
SHIPPED = sorted(p for p in (REPO / "config").glob("*.py") if p.name != "__init__.py")


def write(tmp_path: Path, body: str, name: str = "cfg.py") -> Path:
    path = tmp_path / name
    path.write_text(body, encoding="utf-8")
    return path


@pytest.mark.parametrize("path", SHIPPED, ids=lambda p: p.stem)
def test_every_shipped_config_loads_without_mxnet_or_the_training_package(path):
    code = ("import sys; from pyimagesearch.config import load_config; "
            f"c = load_config({str(path)!r}); "
            "light = ('pyimagesearch.settings.recipes', 'pyimagesearch.settings.schedules'); "
            "print([m for m in sys.modules if m == 'mxnet' "
            "or m.startswith('pyimagesearch.training.') and m not in light])")
    out = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True,
                         text=True, check=True).stdout.strip()
    assert out == "[]"


def test_a_misspelled_setting_names_the_nearest_one(tmp_path):
    path = write(tmp_path, "BATCH_SZE = 16\n")
    with pytest.raises(ConfigError) as info:
        load_config(str(path))
    assert str(info.value) == f"{path}: BATCH_SZE: unknown setting; did you mean BATCH_SIZE?"


@pytest.mark.parametrize("value, text", [
    ('"16"', "BATCH_SIZE = '16': must be an integer >= 1"),
    ("0", "BATCH_SIZE = 0: must be an integer >= 1"),
    ("16.0", "BATCH_SIZE = 16.0: must be an integer >= 1"),
    ("True", "BATCH_SIZE = True: must be an integer >= 1"),
])
def test_a_wrong_type_or_range_is_one_line_naming_field_value_and_file(tmp_path, value, text):
    path = write(tmp_path, f"BATCH_SIZE = {value}\n")
    with pytest.raises(ConfigError) as info:
        load_config(str(path))
    assert str(info.value) == f"{path}: {text}"
    assert "\n" not in str(info.value)


@pytest.mark.parametrize("body, expected", [
    ("BATCH_SIZE = 16\nNUM_CLASSES = = 3\n", r", line 2: SyntaxError: invalid syntax"),
    ("BATCH_SIZE = 16\nNUM_CLASSES = CLASSES\n",
     r", line 2: NameError: name 'CLASSES' is not defined"),
])
def test_a_config_that_does_not_import_is_one_line_with_file_and_line(tmp_path, body, expected):
    path = write(tmp_path, body)
    with pytest.raises(ConfigError) as info:
        load_config(str(path))
    assert str(info.value).startswith(str(path))
    assert re.search(expected, str(info.value))
    assert "\n" not in str(info.value)


def test_defaults_fill_what_a_config_leaves_out(tmp_path):
    config = load_config(str(write(tmp_path, "BATCH_SIZE = 8\n")))
    assert config.BATCH_SIZE == 8
    assert config.KVSTORE == "device"
    assert config.HEALTH == {}
    assert config.is_set("BATCH_SIZE") and not config.is_set("KVSTORE")
    with pytest.raises(ConfigError, match="NUM_CLASSES, MODEL must be set"):
        config.require("BATCH_SIZE", "NUM_CLASSES", "MODEL")
    with pytest.raises(AttributeError):
        config.BATCH_SIZE = 3
    assert config.replace(BATCH_SIZE=4).BATCH_SIZE == 4
    with pytest.raises(ConfigError, match="BATCH_SIZE = -4"):
        config.replace(BATCH_SIZE=-4)


def test_nested_values_are_checked_key_by_key(tmp_path):
    path = write(tmp_path, 'AUGMENTATION = {"rand_crop": True, "rand_miror": True}\n')
    with pytest.raises(ConfigError, match="unknown key 'rand_miror'; did you mean "
                                          "rand_mirror"):
        load_config(str(path))
    path = write(tmp_path, 'HEALTH = {"interval": 0}\n')
    with pytest.raises(ConfigError, match=r"HEALTH = \{'interval': 0\}: key 'interval' = 0: "
                                          r"must be an integer >= 1"):
        load_config(str(path))


def test_recipes_are_names_or_plain_data(tmp_path):
    config = load_config(str(write(tmp_path, 'RECIPE = "book-googlenet-sgd"\n')))
    assert config.RECIPE == recipes.BOOK_GOOGLENET_SGD
    data = ('RECIPE = {"base": "book-googlenet-adam", "name": "short", "num_epochs": 4,\n'
            '          "schedule": {"kind": "epoch_table", "table": {0: 1e-3, 2: 1e-4}}}\n')
    config = load_config(str(write(tmp_path, data)))
    assert config.RECIPE.name == "short" and config.RECIPE.num_epochs == 4
    assert config.RECIPE.optimizer == "adam" and config.RECIPE.weight_decay == 2e-4
    assert config.RECIPE.schedule.table == {0: 1e-3, 2: 1e-4}

    for body, message in [
        ('RECIPE = "book-googlenet"\n', "unknown recipe 'book-googlenet'; presets:"),
        ('RECIPE = {"base": "book-googlenet-adam", "epochs": 3}\n',
         "unknown recipe field 'epochs'"),
        ('RECIPE = {"base": "book-googlenet-adam", "schedule": {"kind": "epoch_table", '
         '"table": {0: 1e-2}}}\n', "must start at base_lr 0.001"),
        ('RECIPE = {"base": "book-googlenet-sgd", "base_lr": -0.1}\n', "base_lr must be a "
         "number > 0"),
    ]:
        with pytest.raises(ConfigError, match=re.escape(message)) as info:
            load_config(str(write(tmp_path, body)))
        assert "RECIPE = " in str(info.value)


@pytest.mark.parametrize("argv, text", [
    (["--lr=-0.01"], "argument --lr: -0.01: must be a number > 0"),
    (["--lr", "fast"], "argument --lr: fast: must be a number > 0"),
    (["--end-epoch", "0"], "argument --end-epoch: 0: must be an integer >= 1"),
    (["--start-epoch", "-1"], "argument -s/--start-epoch: -1: must be an integer >= 0"),
    (["--cpu-contexts", "0"], "argument --cpu-contexts: 0: must be an integer >= 1"),
])
def test_command_line_values_are_checked_by_the_same_rules(tmp_path, capsys, argv, text):
    with pytest.raises(SystemExit) as info:
        train_googlenet.main(["--checkpoints", str(tmp_path / "out"), "--prefix", "net",
                              "--config", "config.demo_googlenet_config", *argv])
    assert info.value.code == 2
    assert text in capsys.readouterr().err
    assert not (tmp_path / "out").exists()


def test_a_bad_config_stops_a_script_with_one_line_and_no_traceback(tmp_path, capsys):
    path = write(tmp_path, "BATCH_SIZE = '16'\n")
    code = train_googlenet.main(["--checkpoints", str(tmp_path / "out"), "--prefix", "net",
                                 "--config", str(path)])
    err = capsys.readouterr().err
    assert code == 2
    assert err.strip() == f"[ERROR] {path}: BATCH_SIZE = '16': must be an integer >= 1"


@pytest.mark.parametrize("ending", ["import sys\nsys.exit(0)\n", "raise SystemExit(3)\n",
                                    "import sys\nsys.exit('done')\n"])
def test_a_config_that_ends_its_own_import_is_an_error_naming_it(tmp_path, capsys, ending):
    path = write(tmp_path, "BATCH_SIZE = 4\n" + ending)
    code = train_googlenet.main(["--checkpoints", str(tmp_path / "out"), "--prefix", "net",
                                 "--config", str(path)])
    err = capsys.readouterr().err.strip()
    assert code == 2 and not (tmp_path / "out").exists()
    assert err.startswith(f"[ERROR] {path}, line ") and "ended its own import" in err
    assert len(err.splitlines()) == 1


@pytest.mark.parametrize("script, argv, text", [
    ("test_googlenet", ["--epoch", "LAST"], "argument -e/--epoch: LAST: must be an epoch"),
    ("test_googlenet", ["--epoch", "1.5"], "argument -e/--epoch: 1.5: must be an epoch"),
    ("export_onnx", ["--epoch", "-2"], "argument -e/--epoch: -2: must be an epoch"),
    ("classify_image", ["--epoch", "x", "img.jpg"], "argument -e/--epoch: x: must be an epoch"),
])
def test_epoch_flags_are_checked_like_start_epoch(capsys, script, argv, text):
    module = __import__(script)
    with pytest.raises(SystemExit) as info:
        module.main(["--checkpoints", "out", "--prefix", "net", *argv])
    assert info.value.code == 2
    assert text in capsys.readouterr().err


def test_the_readme_table_is_generated_from_the_declarations():
    readme = (REPO / "README.md").read_text(encoding="utf-8")
    assert readme_with_table(readme) == readme, \
        "README.md's settings table is stale: " \
        "python -m pyimagesearch.commands.settings_table --write-readme"
    for setting in settings.SETTINGS:
        assert f"| `{setting.name}` |" in readme


def test_every_declared_setting_is_read_by_the_code():
    sources = "\n".join(p.read_text(encoding="utf-8")
                        for p in (REPO / "pyimagesearch").rglob("*.py")
                        if "settings" not in p.parts)
    unread = [s.name for s in settings.SETTINGS if not re.search(rf"\b{s.name}\b", sources)]
    # The book's root of a dataset's outputs: configs derive the record paths from it.
    assert unread == ["MX_OUTPUT"]


def test_no_module_reads_a_config_around_the_declarations():
    offenders = [f"{p.relative_to(REPO)}:{n}"
                 for p in (REPO / "pyimagesearch").rglob("*.py")
                 for n, line in enumerate(p.read_text(encoding="utf-8").splitlines(), 1)
                 if re.search(r"(getattr|hasattr)\((self\.)?config, [\"']", line)]
    assert offenders == []
