"""What a setting's value may be: each kind checks a value (from a config or, parsed, from
the command line) and describes what it accepts, for messages and the README's table."""

from __future__ import annotations

import abc
import difflib
from collections import Counter
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pyimagesearch.settings.recipes import RecipeError, recipe_from_data
from pyimagesearch.settings.schedules import finite_number


class SettingError(ValueError):
    """A value does not fit its kind; the message completes "<NAME> = <value>: "."""


class Kind(abc.ABC):
    """The type and range of a setting's value; ``check`` returns the value as used."""

    @abc.abstractmethod
    def check(self, value: Any) -> Any:
        """``value`` as the setting uses it, or :class:`SettingError`."""

    @abc.abstractmethod
    def describe(self) -> str:
        """What the kind accepts, completing "must be ..."."""

    def parse(self, text: str) -> Any:
        """A command-line string as this kind's value (then ``check``-ed)."""
        return text


def _inside(where: str, check: Callable[[Any], Any], value: Any) -> Any:
    """``check(value)``, its refusal prefixed with where in a container the value sits."""
    try:
        return check(value)
    except SettingError as exc:
        raise SettingError(f"{where}: {exc}") from None


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _number(value: float) -> str:
    return str(value) if isinstance(value, int) else f"{value:g}"


def _bounds(low: float | None, high: float | None, low_open: bool = False) -> str:
    parts = []
    if low is not None:
        parts.append(f"{'>' if low_open else '>='} {_number(low)}")
    if high is not None:
        parts.append(f"<= {_number(high)}")
    return " and ".join(parts)


@dataclass(frozen=True)
class Number(Kind):
    """A finite real number; integers are accepted (``1`` for ``1.0``)."""

    low: float | None = None
    high: float | None = None
    low_open: bool = False

    def _fits(self, value: Any) -> bool:
        return finite_number(value)

    def check(self, value: Any) -> Any:
        too_low = self._fits(value) and self.low is not None and (
            value <= self.low if self.low_open else value < self.low)
        if not self._fits(value) or too_low or (self.high is not None and value > self.high):
            raise SettingError(f"must be {self.describe()}")
        return type(self).convert(value)

    def describe(self) -> str:
        bounds = _bounds(self.low, self.high, self.low_open)
        return f"{self.noun} {bounds}" if bounds else self.bare

    def parse(self, text: str) -> Any:
        try:
            return type(self).convert(text)
        except ValueError:
            return text

    convert, noun, bare = float, "a number", "a finite number"


@dataclass(frozen=True)
class Integer(Number):
    def _fits(self, value: Any) -> bool:
        return _is_int(value)

    convert, noun, bare = int, "an integer", "an integer"


@dataclass(frozen=True)
class Flag(Kind):
    def check(self, value: Any) -> bool:
        if not isinstance(value, bool):
            raise SettingError("must be True or False")
        return value

    def describe(self) -> str:
        return "True or False"


@dataclass(frozen=True)
class Choice(Kind):
    values: tuple[Any, ...]

    def check(self, value: Any) -> Any:
        # Compared with values of their own type only: == of an array would be an array.
        if isinstance(value, bool) or not any(isinstance(value, type(choice)) and value == choice
                                              for choice in self.values):
            raise SettingError(f"must be {self.describe()}")
        return value

    def describe(self) -> str:
        return "one of " + ", ".join(repr(v) for v in self.values)


@dataclass(frozen=True)
class Text(Kind):
    def check(self, value: Any) -> str:
        if not isinstance(value, str) or not value.strip():
            raise SettingError("must be a non-empty string")
        return value

    def describe(self) -> str:
        return "a string"


@dataclass(frozen=True)
class FilePath(Kind):
    """A file or folder path (``str`` or ``pathlib.Path``), kept as a string."""

    def check(self, value: Any) -> str:
        if isinstance(value, Path):
            value = str(value)
        if not isinstance(value, str) or not value.strip():
            raise SettingError("must be a path (a non-empty string)")
        return value

    def describe(self) -> str:
        return "a path"


@dataclass(frozen=True)
class Optional(Kind):
    """``None`` or a value of ``kind``."""

    kind: Kind

    def check(self, value: Any) -> Any:
        # The inner kind's message says more ("key 'interval' = 0: ...") than "or None".
        return None if value is None else self.kind.check(value)

    def describe(self) -> str:
        return f"None or {self.kind.describe()}"


@dataclass(frozen=True)
class Record(Kind):
    """A dict with known keys, each of its own kind; ``required`` keys must be present."""

    fields: Mapping[str, Kind]
    required: tuple[str, ...] = ()
    what: str = "a dict"

    def check(self, value: Any) -> dict[str, Any]:
        if not isinstance(value, Mapping):
            raise SettingError(f"must be {self.describe()}")
        unknown = [key for key in value if key not in self.fields]
        if unknown:
            hint = suggestion(str(unknown[0]), self.fields)
            raise SettingError(f"unknown key {unknown[0]!r}{hint}; known keys: "
                               f"{', '.join(self.fields)}")
        missing = [key for key in self.required if key not in value]
        if missing:
            raise SettingError(f"lacks key {missing[0]!r}")
        return {key: _inside(f"key {key!r} = {item!r}", self.fields[key].check, item)
                for key, item in value.items()}

    def describe(self) -> str:
        return self.what


@dataclass(frozen=True)
class Table(Kind):
    """A dict from keys of one kind to values of another."""

    keys: Kind
    values: Kind
    what: str = "a dict"

    def check(self, value: Any) -> dict[Any, Any]:
        if not isinstance(value, Mapping):
            raise SettingError(f"must be {self.describe()}")
        return {_inside(f"entry {key!r}", self.keys.check, key):
                _inside(f"entry {key!r}", self.values.check, item) for key, item in value.items()}

    def describe(self) -> str:
        return self.what


@dataclass(frozen=True)
class Items(Kind):
    """A list (or tuple) of distinct values of one kind (hashable ones), kept as a tuple."""

    item: Kind
    what: str = "a list"

    def check(self, value: Any) -> tuple[Any, ...]:
        if isinstance(value, (str, bytes, Mapping)) or not isinstance(value, (list, tuple)) \
                or not value:
            raise SettingError(f"must be {self.describe()}")
        checked = [_inside(f"item {position} = {item!r}", self.item.check, item)
                   for position, item in enumerate(value)]
        duplicated = sorted(repr(x) for x, count in Counter(checked).items() if count > 1)
        if duplicated:
            raise SettingError(f"lists {duplicated[0]} more than once")
        return tuple(checked)

    def describe(self) -> str:
        return self.what


@dataclass(frozen=True)
class Keywords(Kind):
    """Keyword arguments (a dict with identifier keys): checked where they are used."""

    what: str = "a dict of keyword arguments"

    def check(self, value: Any) -> dict[str, Any]:
        if not isinstance(value, Mapping) or \
                not all(isinstance(key, str) and key.isidentifier() for key in value):
            raise SettingError(f"must be {self.what}")
        return dict(value)

    def describe(self) -> str:
        return self.what


@dataclass(frozen=True)
class DeviceList(Kind):
    """GPU ordinals, distinct: ``(0, 2)``, or ``"0,2"`` on the command line."""

    def check(self, value: Any) -> tuple[int, ...]:
        if not isinstance(value, (list, tuple)) or not value \
                or not all(_is_int(v) and v >= 0 for v in value):
            raise SettingError(f"must be {self.describe()}")
        if len(set(value)) != len(value):
            raise SettingError("names a GPU twice")
        return tuple(value)

    def describe(self) -> str:
        return "GPU numbers >= 0, separated by commas (0,2)"

    def parse(self, text: str) -> Any:
        try:
            return tuple(int(part) for part in text.split(","))
        except ValueError:
            return text


@dataclass(frozen=True)
class Epoch(Kind):
    """A checkpoint's epoch, or ``"last"``: the newest that verifies."""

    def check(self, value: Any) -> Any:
        if (isinstance(value, str) and value == "last") or (_is_int(value) and value >= 0):
            return value
        raise SettingError(f"must be {self.describe()}")

    def describe(self) -> str:
        return "an epoch (an integer >= 0) or 'last'"

    def parse(self, text: str) -> Any:
        return Integer().parse(text)


@dataclass(frozen=True)
class RecipeKind(Kind):
    """A recipe preset's name, or a dict of recipe fields over an optional ``base`` preset."""

    def check(self, value: Any) -> Any:
        try:
            return recipe_from_data(value)
        except RecipeError as exc:
            raise SettingError(str(exc)) from None

    def describe(self) -> str:
        return "a preset name or a dict of recipe fields"


def suggestion(name: str, known: Iterable[str]) -> str:
    close = difflib.get_close_matches(name, list(known), n=1, cutoff=0.6)
    return f"; did you mean {close[0]}?" if close else ""
