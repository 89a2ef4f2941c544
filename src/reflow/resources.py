"""Time limits and memory sizes: the one place their grammar is checked.

Task options (`@wf.job(time=..., mem=...)`) and the config file's
`[dispatch]` section take the same forms, normalised the same way.
"""

from __future__ import annotations

import os
import re

__all__ = [
    "MEM_EXPECTED", "PACK_EXPECTED", "TIME_EXPECTED", "ResourceError", "normal_mem",
    "normal_pack", "normal_time",
]  # fmt: skip

TIME_EXPECTED = "a time limit as HH:MM:SS or D-HH:MM:SS"
MEM_EXPECTED = "a memory size such as 500M, 4G or 1T (a plain number means MB)"
PACK_EXPECTED = (
    "'auto' (the default), 1 (one instance per array element) or a whole number of "
    "instances per element"
)

_TIME = re.compile(r"(?:[0-9]+-(?P<dh>[0-9]{1,2})|[0-9]+):(?P<m>[0-9]{2}):(?P<s>[0-9]{2})")
_MEM = re.compile(r"(?P<n>[1-9][0-9]*)\s*(?:(?P<unit>[KMGT])B?)?", re.IGNORECASE)


class ResourceError(ValueError):
    """A time limit or memory size that does not parse: what is expected instead."""

    def __init__(self, expected: str) -> None:
        super().__init__(expected)
        self.expected = expected


def _text(value: object, expected: str) -> str:
    if not isinstance(value, (str, os.PathLike)):
        raise ResourceError(expected)
    text = os.fspath(value).strip()
    if not text or not isinstance(text, str):
        raise ResourceError(expected)
    return text


def normal_time(value: object) -> str:
    """`value` as a time limit ('HH:MM:SS' or 'D-HH:MM:SS'); ResourceError if it is not one."""
    text = _text(value, TIME_EXPECTED)
    found = _TIME.fullmatch(text)
    if found is None or int(found["m"]) > 59 or int(found["s"]) > 59:
        raise ResourceError(TIME_EXPECTED)
    if found["dh"] is not None and int(found["dh"]) > 23:
        raise ResourceError(TIME_EXPECTED + " (hours 0-23 after the days)")
    return text


def normal_mem(value: object) -> str:
    """`value` as a memory size with its unit ('500M', '4G'; a whole number means MB)."""
    if isinstance(value, int) and not isinstance(value, bool) and value > 0:
        return f"{value}M"
    found = _MEM.fullmatch(_text(value, MEM_EXPECTED))
    if found is None:
        raise ResourceError(MEM_EXPECTED)
    return found["n"] + (found["unit"] or "M").upper()


def normal_pack(value: object) -> int | str:
    """`value` as a pack setting: "auto", or instances per array element (a whole number)."""
    if isinstance(value, str):
        text = value.strip().lower()
        if text == "auto":
            return "auto"
        if text.isdigit():
            value = int(text)
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ResourceError(PACK_EXPECTED)
    return value
