"""Reading a YAML config file: strict parsing, typed getters, problems named by path.

Not tied to one file: config.py reads the main config with it, and any other
YAML file in the same style (the exporter-toolkit web config) can too.
Validation collects every problem instead of stopping at the first, and each
names the file and the path inside it (`config.yaml: orgs[3].api_key_file:
file not found`), so an operator can fix a broken file in one pass. A value
shaped like an API key is never echoed in a problem.
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable
from pathlib import Path
from typing import Final, TypeVar

import yaml

_KEY_SHAPE: Final = re.compile(r"petra_(?:var_)?[A-Za-z0-9]{16,}")  # Multi-MSP keys: petra_var_

T = TypeVar("T")
# Checks one value at a path; reports its problems and returns None when it is unusable.
Convert = Callable[[str, object], T | None]


class ConfigError(Exception):
    """One or more problems in a config file; `problems` holds one line each."""

    def __init__(self, problems: list[str]) -> None:
        super().__init__("\n".join(problems))
        self.problems = problems


def read_text(path: str | Path) -> str:
    """A config file's text. Raises ConfigError naming the file when it cannot be read."""
    source = str(path)
    try:
        return Path(path).read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ConfigError([f"{source}: file not found"]) from None
    except IsADirectoryError:
        raise ConfigError([f"{source}: is a directory, not a config file"]) from None
    except OSError as error:
        raise ConfigError([f"{source}: cannot be read: {error.strerror}"]) from None
    except UnicodeDecodeError:
        raise ConfigError([f"{source}: is not UTF-8 text"]) from None


def parse_yaml(text: str, source: str) -> object:
    """YAML text -> plain data, rejecting a key written twice in one mapping.

    Raises ConfigError with the line and column of a syntax error.
    """
    try:
        return yaml.load(text, Loader=_StrictLoader)  # noqa: S506 - a SafeLoader subclass
    except yaml.YAMLError as error:
        mark = getattr(error, "problem_mark", None)
        where = f"line {mark.line + 1}, column {mark.column + 1}: " if mark is not None else ""
        reason = getattr(error, "problem", None) or "not valid YAML"
        raise ConfigError([redact_keys(f"{source}: {where}invalid YAML: {reason}")]) from None
    except (ValueError, TypeError, AttributeError, RecursionError) as error:
        # PyYAML's constructors raise these for well-formed YAML they cannot build:
        # an impossible date, an integer too long to convert, a list as a mapping key.
        reason = str(error)[:200]
        raise ConfigError([redact_keys(f"{source}: invalid YAML: {reason}")]) from None


class _StrictLoader(yaml.SafeLoader):
    """SafeLoader that rejects a key written twice in one mapping (PyYAML keeps the last)."""

    def construct_mapping(self, node: yaml.MappingNode, deep: bool = False) -> dict[object, object]:
        seen: set[object] = set()
        for key_node, _value_node in node.value:
            key = self.construct_object(key_node, deep=deep)
            if key in seen:
                raise yaml.constructor.ConstructorError(
                    None,
                    None,
                    f"key {shown(key)!r} appears twice in one mapping",
                    key_node.start_mark,
                )
            seen.add(key)
        return super().construct_mapping(node, deep=deep)


def looks_like_key(text: str) -> bool:
    """A value that is probably an API key typed into the wrong field: never echo it."""
    return bool(_KEY_SHAPE.fullmatch(text)) or (len(text) >= 32 and text.isalnum())


_KEY_IN_TEXT: Final = re.compile(r"petra_[A-Za-z0-9]{16,}|[A-Za-z0-9]{32,}")


def redact_keys(line: str) -> str:
    """Whatever a message echoes (a URL, a listen address, a shard), a key pasted into
    that field must not reach the terminal or the log."""
    return _KEY_IN_TEXT.sub("<a value that looks like an API key>", line)


def shown(value: object) -> str:
    """`value` as a problem may quote it: a key-shaped value is described, not shown."""
    text = str(value)
    return "<a value that looks like an API key>" if looks_like_key(text) else text


def type_name(value: object) -> str:
    """What a YAML value is, in the words a problem uses ("a string", "a list")."""
    if value is None:
        return "null"
    return {
        bool: "a boolean",
        int: "a number",
        float: "a number",
        str: "a string",
        list: "a list",
        dict: "a mapping",
    }.get(type(value), type(value).__name__)


class Problems:
    """Collects the errors and warnings of one file while its tree is walked."""

    def __init__(self, source: str) -> None:
        self.source = source
        self.errors: list[str] = []
        self.warnings: list[str] = []

    def error(self, path: str, message: str) -> None:
        line = f"{self.source}: {path}: {message}" if path else f"{self.source}: {message}"
        self.errors.append(redact_keys(line))

    def warn(self, path: str, message: str) -> None:
        self.warnings.append(redact_keys(f"{self.source}: {path}: {message}"))

    def raise_errors(self) -> None:
        """Raise ConfigError with every error found, if there is one."""
        if self.errors:
            raise ConfigError(self.errors)


def _as_is(_path: str, value: object) -> object:
    return value


class Section:
    """One YAML mapping with typed getters; reports unknown keys on `finish()`.

    Every getter marks its key as known; a key no getter asked for is an error
    at `finish()`, which lists the known ones.
    """

    def __init__(self, problems: Problems, path: str, raw: object) -> None:
        self.problems = problems
        self.path = path
        self.seen: set[str] = set()
        if raw is None:
            raw = {}
        if not isinstance(raw, dict):
            problems.error(path, f"must be a mapping, not {type_name(raw)}")
            raw = {}
        self.raw: dict[object, object] = raw

    def child(self, key: str) -> str:
        """The path of `key` in this mapping (`polling.interval_seconds`)."""
        return f"{self.path}.{key}" if self.path else key

    def has(self, key: str) -> bool:
        return key in self.raw and self.raw[key] is not None

    def get(self, key: str, default: T, convert: Convert[T]) -> T:
        """`convert` of the value under `key`; `default` when it is missing, null or bad."""
        self.seen.add(key)
        if key not in self.raw or self.raw[key] is None:
            return default
        converted = convert(self.child(key), self.raw[key])
        return default if converted is None else converted

    def value(self, key: str) -> object:
        """The value under `key` as it is (None when missing), for the caller to check."""
        return self.get(key, None, _as_is)

    def section(self, key: str) -> Section:
        """The mapping under `key` as a Section of its own (missing or null: empty)."""
        return Section(self.problems, self.child(key), self.value(key))

    def number(self, key: str, default: float, *, integer: bool = False) -> float:
        """A finite number greater than 0 (a whole one with `integer`)."""

        def convert(path: str, value: object) -> float | None:
            if isinstance(value, bool) or not isinstance(value, int | float):
                self.problems.error(path, f"must be a number, not {type_name(value)}")
                return None
            try:
                number = float(value)
            except OverflowError:
                self.problems.error(path, "is too large a number")
                return None
            if not math.isfinite(number):
                self.problems.error(path, f"must be a finite number, got {value}")
                return None
            if value <= 0:
                self.problems.error(path, f"must be greater than 0, got {value}")
                return None
            if integer and value != int(value):
                self.problems.error(path, f"must be a whole number, got {value}")
                return None
            return float(value)

        return self.get(key, default, convert)

    def string(self, key: str, default: str) -> str:
        """A non-empty string, stripped of surrounding blanks."""

        def convert(path: str, value: object) -> str | None:
            if not isinstance(value, str) or not value.strip():
                self.problems.error(path, f"must be a non-empty string, not {type_name(value)}")
                return None
            return value.strip()

        return self.get(key, default, convert)

    def boolean(self, key: str, *, default: bool) -> bool:
        """true or false (YAML's own booleans; a quoted "true" is a string)."""

        def convert(path: str, value: object) -> bool | None:
            if not isinstance(value, bool):
                self.problems.error(path, f"must be true or false, not {type_name(value)}")
                return None
            return value

        return self.get(key, default, convert)

    def finish(self) -> None:
        """Report every key of the mapping that no getter asked for."""
        for key in self.raw:
            if key not in self.seen:
                known = ", ".join(sorted(self.seen))
                self.problems.error(self.child(shown(key)), f"unknown key (known here: {known})")
