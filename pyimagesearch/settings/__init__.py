"""A config's settings, checked against the declarations before any work starts.

Configs stay the book's plain modules of upper-case constants; :func:`validate` checks
their names and values (``BATCH_SZE: unknown setting; did you mean BATCH_SIZE?``,
``BATCH_SIZE = 0: must be an integer >= 1``) and :func:`argument_type` checks command-line
values by the same kinds. Nothing here imports MXNet: reading a config is cheap.
"""

from __future__ import annotations

import argparse
import dataclasses
import enum
from collections.abc import Callable, Iterable, Mapping
from pathlib import Path
from typing import Any

from pyimagesearch.errors import ConfigError
from pyimagesearch.settings.declared import (
    ARGUMENT_KINDS,
    DECLARED,
    KVSTORE_TYPES,
    PLATEAU_METRICS,
    SETTINGS,
    Setting,
)
from pyimagesearch.settings.kinds import SettingError, suggestion

__all__ = ["DECLARED", "KVSTORE_TYPES", "PLATEAU_METRICS", "SETTINGS", "ConfigError", "Setting",
           "Settings", "argument_type", "check_value", "default", "to_json", "validate"]


class Settings:
    """A config's settings, checked: every declared name is an attribute (its value or default).

    ``config.BATCH_SIZE`` reads as in the book's scripts; ``source`` is the config file.
    Immutable: :meth:`replace` returns a checked copy with some values changed.
    """

    __slots__ = ("_explicit", "_values", "source")

    def __init__(self, values: Mapping[str, Any], source: str,
                 explicit: Iterable[str] = ()) -> None:
        object.__setattr__(self, "_values", dict(values))
        object.__setattr__(self, "_explicit", frozenset(explicit))
        object.__setattr__(self, "source", source)

    def __getattr__(self, name: str) -> Any:
        try:
            return self._values[name]
        except KeyError:
            raise AttributeError(f"{name} is not a declared setting") from None

    def __setattr__(self, name: str, value: Any) -> None:
        raise AttributeError("settings are read-only; use replace()")

    def __repr__(self) -> str:
        return f"Settings({self.source})"

    def is_set(self, name: str) -> bool:
        """Whether the config itself gave ``name`` (rather than its default)."""
        return name in self._explicit

    def require(self, *names: str) -> None:
        """Fail with one message listing every setting a step needs that the config lacks."""
        missing = [name for name in names if self._values.get(name) is None]
        if missing:
            raise ConfigError(f"{self.source}: {', '.join(missing)} must be set for this "
                              f"command")

    def replace(self, **changes: Any) -> Settings:
        values = dict(self._values)
        for name, value in changes.items():
            values[name] = check_value(name, value, self.source)
        return Settings(values, self.source, self._explicit | set(changes))

    def snapshot(self) -> dict[str, Any]:
        """Every setting as JSON-ready data, and the config file (what a checkpoint records)."""
        fields = {name: to_json(value) for name, value in sorted(self._values.items())}
        fields["__source__"] = self.source
        return fields


def to_json(value: Any) -> Any:
    """A setting's value as JSON-ready data (dataclasses become dicts with their type)."""
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return {"__type__": type(value).__name__, **to_json(dataclasses.asdict(value))}
    if isinstance(value, enum.Enum):
        return value.value
    if isinstance(value, Mapping):
        return {str(key): to_json(item) for key, item in value.items()}
    if isinstance(value, (list, tuple)):
        return [to_json(item) for item in value]
    if isinstance(value, Path):
        return str(value)
    if value is None or isinstance(value, (bool, int, float, str)):
        return value
    return repr(value)


def default(name: str) -> Any:
    """The declared default of setting ``name`` (for library functions that share it)."""
    return DECLARED[name].default_value()


def check_value(name: str, value: Any, source: str) -> Any:
    """``value`` as setting ``name`` uses it, or a one-line :class:`ConfigError`."""
    setting = DECLARED.get(name)
    if setting is None:
        raise ConfigError(f"{source}: {name}: unknown setting{suggestion(name, DECLARED)}")
    try:
        return setting.kind.check(value)
    except SettingError as exc:
        raise ConfigError(f"{source}: {name} = {_short(value)}: {exc}") from None


def _short(value: Any, limit: int = 80) -> str:
    text = repr(value)
    return text if len(text) <= limit else text[:limit - 3] + "..."


def validate(fields: Mapping[str, Any], source: str) -> Settings:
    """Check a config's upper-case fields; defaults fill what it does not set."""
    values = {}
    for name in sorted(fields):
        values[name] = check_value(name, fields[name], source)
    for setting in SETTINGS:
        if setting.name not in values:
            values[setting.name] = setting.default_value()
    return Settings(values, source, explicit=fields)


# --- the command line ----------------------------------------------------------------------------
def argument_type(flag: str) -> Callable[[str], Any]:
    """An ``argparse`` type for ``flag`` that applies the kind of the setting it stands for."""
    kind = ARGUMENT_KINDS[flag]

    def convert(text: str) -> Any:
        try:
            return kind.check(kind.parse(text))
        except SettingError as exc:
            shown = text if text.isprintable() and len(text) <= 80 else _short(text)
            raise argparse.ArgumentTypeError(f"{shown}: {exc}") from None

    convert.__name__ = flag.lstrip("-").replace("-", "_")
    return convert
