"""Load a config (a module name or a ``.py`` path) and check it: a config that does not
import is one line naming the file and the line.
"""

from __future__ import annotations

import importlib
import importlib.util
import sys
import traceback
from pathlib import Path
from types import ModuleType

from pyimagesearch.settings import ConfigError, Settings, validate

__all__ = ["REPO_ROOT", "ConfigError", "Settings", "load_config"]

REPO_ROOT = Path(__file__).resolve().parent.parent


def _import_error(exc: BaseException, fallback: str) -> ConfigError:
    """One line naming the config file and line where importing it failed."""
    if isinstance(exc, SyntaxError):
        where = f"{exc.filename or fallback}, line {exc.lineno}"
        return ConfigError(f"{where}: SyntaxError: {exc.msg}")
    frames = traceback.extract_tb(exc.__traceback__)
    # The innermost frame in a config file (a config may import another config).
    in_configs = [f for f in frames if "importlib" not in f.filename
                  and not f.filename.startswith("<frozen")]
    frame = in_configs[-1] if in_configs else (frames[-1] if frames else None)
    where = f"{frame.filename}, line {frame.lineno}" if frame else fallback
    if isinstance(exc, SystemExit):  # sys.exit() in a config would end the command silently
        return ConfigError(f"{where}: the config ended its own import (sys.exit({exc.code!r})); "
                           f"a config only sets constants")
    return ConfigError(f"{where}: {type(exc).__name__}: {exc}")


def _exec_file(path: Path) -> ModuleType:
    name = "_config_" + path.stem
    module_spec = importlib.util.spec_from_file_location(name, path)
    if module_spec is None or module_spec.loader is None:
        raise ConfigError(f"config file cannot be imported: {path}")
    module = importlib.util.module_from_spec(module_spec)
    try:
        module_spec.loader.exec_module(module)
    except (Exception, SystemExit) as exc:
        raise _import_error(exc, str(path)) from None
    return module


def _import_module(spec: str) -> ModuleType:
    try:
        return importlib.import_module(spec)
    except ModuleNotFoundError as exc:
        if exc.name is not None and spec.startswith(exc.name):
            raise ConfigError(
                f"config module not found: {spec} (give a module such as "
                f"config.demo_googlenet_config or a path to a .py file)") from None
        raise _import_error(exc, spec) from None
    except (Exception, SystemExit) as exc:
        raise _import_error(exc, spec) from None


def load_module(spec: str) -> ModuleType:
    """Import a config given as a module name or a ``.py`` path (unchecked)."""
    if str(REPO_ROOT) not in sys.path:
        sys.path.insert(0, str(REPO_ROOT))
    if spec.endswith(".py") or "/" in spec or "\\" in spec:
        path = Path(spec)
        if not path.is_file():
            raise ConfigError(f"config file not found: {path}")
        return _exec_file(path)
    return _import_module(spec)


def module_fields(module: ModuleType) -> dict[str, object]:
    """The module's upper-case names: what a config declares (``_private`` helpers aside)."""
    return {name: getattr(module, name) for name in dir(module)
            if name.isupper() and not name.startswith("_")}


def load_config(spec: str | Path | Settings) -> Settings:
    """Import a config and check it against the declared settings."""
    if isinstance(spec, Settings):
        return spec
    spec = str(spec)
    module = load_module(spec)
    source = getattr(module, "__file__", None) or spec
    return validate(module_fields(module), str(source))
