"""Typed reads of JSON that came from outside (an agent's output, a hook's body).

Each function takes any value and gives one of the declared type, or a default: the
parsers of what agents and hooks say use these, so an event never carries a field of
the wrong type and a malformed value never raises.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Mapping
from typing import Any, TypeGuard

__all__ = [
    "as_dict",
    "as_dicts",
    "as_int",
    "as_number",
    "as_str",
    "as_text",
    "replace_lone_surrogates",
]

_LONE_SURROGATE = re.compile("[\ud800-\udfff]")


def as_str(value: object) -> str | None:
    return value if isinstance(value, str) else None


def _is_object(value: object) -> TypeGuard[Mapping[str, Any]]:
    return isinstance(value, Mapping) and all(isinstance(k, str) for k in value)


def as_dict(value: object) -> dict[str, Any]:
    """A copy of a mapping whose keys are all strings, else ``{}``."""
    return dict(value) if _is_object(value) else {}


def as_dicts(value: object) -> list[dict[str, Any]]:
    """The mappings (with string keys) of a list, else ``[]``."""
    if not isinstance(value, list):
        return []
    return [dict(item) for item in value if _is_object(item)]


def as_number(value: object) -> float | None:
    """A finite float of an int or a float (not a bool); ``None`` for anything else,
    including an integer too large for a float."""
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    try:
        number = float(value)
    except OverflowError:
        return None
    return number if math.isfinite(number) else None


def as_int(value: object) -> int | None:
    """An int of an int or a finite float (truncated), as JSON readers see numbers;
    ``None`` for anything else or anything beyond a float's range."""
    number = as_number(value)
    return int(number) if number is not None else None


def as_text(value: object) -> str:
    """A string as it is; ``None`` as ``""``; anything else as its JSON."""
    if isinstance(value, str):
        return value
    if value is None:
        return ""
    try:
        return json.dumps(value, ensure_ascii=False, default=str)
    except (TypeError, ValueError, RecursionError):
        return str(value)


def replace_lone_surrogates(value: Any) -> Any:
    """``value`` with every unpaired UTF-16 surrogate in its strings (keys included)
    replaced by U+FFFD, as a UTF-8 decoder would: JSON may escape one (``"\\ud83d"``,
    a text cut in the middle of an emoji), and no UTF-8 stream can hold it."""
    if isinstance(value, str):
        return _LONE_SURROGATE.sub("\ufffd", value)
    if isinstance(value, list):
        return [replace_lone_surrogates(item) for item in value]
    if isinstance(value, dict):
        return {
            replace_lone_surrogates(key): replace_lone_surrogates(item)
            for key, item in value.items()
        }
    return value
