"""Load experiment configs: plain Python modules of upper-case constants, as in the book.

Every script accepts ``--config`` as either a dotted module name
(``config.demo_googlenet_config``) or a path to a ``.py`` file. The effective config
is snapshotted as JSON with every run so a checkpoint says how it was made.
"""

from __future__ import annotations

import dataclasses
import enum
import importlib
import importlib.util
import sys
from pathlib import Path
from types import ModuleType
from typing import Any

REPO_ROOT = Path(__file__).resolve().parent.parent


class ConfigError(ValueError):
    """A config is missing, cannot be imported, or holds inconsistent values."""


def load_config(spec: str) -> ModuleType:
    """Import a config given as a module name or a ``.py`` path.

    The repository root is put on ``sys.path`` first so that ``config.*`` resolves no
    matter which directory the script was started from.
    """
    if str(REPO_ROOT) not in sys.path:
        sys.path.insert(0, str(REPO_ROOT))
    if spec.endswith(".py") or "/" in spec or "\\" in spec:
        path = Path(spec)
        if not path.is_file():
            raise ConfigError(f"config file not found: {path}")
        name = "_config_" + path.stem
        module_spec = importlib.util.spec_from_file_location(name, path)
        if module_spec is None or module_spec.loader is None:
            raise ConfigError(f"config file cannot be imported: {path}")
        module = importlib.util.module_from_spec(module_spec)
        module_spec.loader.exec_module(module)
        return module
    try:
        return importlib.import_module(spec)
    except ModuleNotFoundError as exc:
        if exc.name is not None and spec.startswith(exc.name):
            raise ConfigError(
                f"config module not found: {spec} (give a module such as "
                f"config.demo_googlenet_config or a path to a .py file)"
            ) from exc
        raise


def require(config: ModuleType, *names: str) -> None:
    """Fail with one message listing every field a step needs but the config lacks."""
    missing = [name for name in names if not hasattr(config, name)]
    if missing:
        raise ConfigError(f"config {config_name(config)} lacks {', '.join(missing)}")


def config_name(config: ModuleType) -> str:
    return getattr(config, "__file__", None) or config.__name__


def config_snapshot_value(value: Any) -> Any:
    """One config value as JSON-ready data (dataclasses become dicts with their type)."""
    return _to_json(value)


def _to_json(value: Any) -> Any:
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return {"__type__": type(value).__name__, **_to_json(dataclasses.asdict(value))}
    if isinstance(value, enum.Enum):
        return value.value
    if isinstance(value, dict):
        return {str(key): _to_json(item) for key, item in value.items()}
    if isinstance(value, (list, tuple)):
        return [_to_json(item) for item in value]
    if isinstance(value, Path):
        return str(value)
    if value is None or isinstance(value, (bool, int, float, str)):
        return value
    return repr(value)


def config_snapshot(config: ModuleType) -> dict[str, Any]:
    """The config's upper-case fields as JSON-ready data (what a checkpoint records)."""
    fields = {
        name: _to_json(getattr(config, name))
        for name in sorted(dir(config))
        if name.isupper() and not name.startswith("_")
    }
    fields["__source__"] = config_name(config)
    return fields
