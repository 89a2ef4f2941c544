"""Time limits and memory sizes: the one place their grammar is defined.

Task options (`@wf.job(time=..., mem=...)`), the config file's `[dispatch]`
section and every executor read them here, so a value means the same thing
everywhere and is refused with the same message everywhere:

- a time limit is any of the six forms of Slurm's `--time` ("minutes",
  "minutes:seconds", "hours:minutes:seconds", "days-hours",
  "days-hours:minutes", "days-hours:minutes:seconds"), read as seconds
  (`time_seconds`); every field after a colon has two digits, seconds are
  0-59, minutes 0-59 after hours, hours 0-23 after days, and the whole is
  more than zero;
- a memory size is a whole number above zero with an optional unit K, M, G
  or T (binary, as schedulers count), with or without a `B`, in any case; a
  plain number (or a Python int) is MB.  It is read as a `Memory`: its size
  in bytes, and the unit it was written in, in which executors say it again.

Each executor renders its own directive from these numbers.
"""

from __future__ import annotations

import os
from typing import NamedTuple

__all__ = [
    "DELAY_EXPECTED", "MEM_EXPECTED", "PACK_EXPECTED", "TIME_EXPECTED", "UNITS", "Memory",
    "ResourceError", "delay_seconds", "normal_mem", "normal_pack", "normal_time", "parse_mem",
    "time_seconds", "time_text",
]  # fmt: skip

TIME_EXPECTED = (
    "a time limit above zero as minutes, MM:SS, D-HH, D-HH:MM, HH:MM:SS or D-HH:MM:SS "
    "(seconds 0-59, minutes 0-59 after hours, hours 0-23 after days)"
)
MEM_EXPECTED = (
    "a memory size above zero such as 500M, 4G or 1T (K, M, G or T, with or without B, "
    "in any case; a plain number means MB)"
)
DELAY_EXPECTED = (
    "a delay of zero or more seconds: a number of seconds, or a number with the unit s, m "
    "or h, such as 30s, 2m or 1.5h"
)
PACK_EXPECTED = (
    "'auto' (the default), 1 (one instance per array element) or a whole number of "
    "instances per element"
)

#: bytes in each unit of a memory size
UNITS = {"K": 1 << 10, "M": 1 << 20, "G": 1 << 30, "T": 1 << 40}

# (Read by hand, not by regular expressions: every job imports this module, and
# compiling the two patterns cost it about 2 ms.)
_DIGITS = frozenset("0123456789")


def _number(text: str, width: int | None = None) -> int | None:
    """`text` as a whole number of ASCII digits (exactly `width` of them if given)."""
    if not text or not _DIGITS.issuperset(text) or (width is not None and len(text) != width):
        return None
    return int(text)


class ResourceError(ValueError):
    """A time limit, memory size or pack setting that does not parse.

    `expected` says what is expected instead; the message names the value
    too (`time='0:99:99' is not a time limit ...`) where one is given.
    """

    def __init__(self, expected: str, message: str | None = None) -> None:
        super().__init__(message or expected)
        self.expected = expected


class Memory(NamedTuple):
    """A memory size: `amount` `unit`s (K, M, G or T), as it was written."""

    amount: int
    unit: str

    @property
    def nbytes(self) -> int:
        """The size in bytes."""
        return self.amount * UNITS[self.unit]

    def __str__(self) -> str:
        return f"{self.amount}{self.unit}"


def _text(value: object, what: str, expected: str) -> str:
    text = os.fspath(value).strip() if isinstance(value, (str, os.PathLike)) else None
    if not text or not isinstance(text, str):
        raise ResourceError(expected, f"{what}={value!r} is not {expected}")
    return text


def _clock(text: str) -> tuple[int, int, int, int] | None:
    """(days, hours, minutes, seconds) of a time limit; None if it is not one of the forms.

    days-hours[:minutes[:seconds]] (hours of one or two digits), or minutes,
    minutes:seconds, hours:minutes:seconds; every field after a colon has two
    digits; seconds 0-59, minutes 0-59 after hours, hours 0-23 after days.
    """
    head, dash, rest = text.partition("-")
    fields = (rest if dash else text).split(":")
    if len(fields) > 3:
        return None
    first = _number(fields[0])
    later = [_number(f, 2) for f in fields[1:]]
    if first is None or None in later:
        return None
    numbers = [first, *(n for n in later if n is not None)]
    if dash:
        days = _number(head)
        if days is None or len(fields[0]) > 2:
            return None
        hours, minutes, secs = (*numbers, 0, 0)[:3]
        return (
            (days, hours, minutes, secs) if hours <= 23 and minutes <= 59 and secs <= 59 else None
        )
    if len(numbers) == 1:  # minutes
        return (0, 0, first, 0)
    if len(numbers) == 2:  # minutes:seconds
        return (0, 0, first, numbers[1]) if numbers[1] <= 59 else None
    hours, minutes, secs = numbers  # hours:minutes:seconds
    return (0, hours, minutes, secs) if minutes <= 59 and secs <= 59 else None


def time_seconds(value: object) -> int:
    """A time limit in any of Slurm's six forms, in seconds; ResourceError if it is not one."""
    clock = _clock(_text(value, "time", TIME_EXPECTED))
    days, hours, minutes, secs = clock or (0, 0, 0, 0)
    total = ((days * 24 + hours) * 60 + minutes) * 60 + secs
    if total <= 0:
        raise ResourceError(TIME_EXPECTED, f"time={value!r} is not {TIME_EXPECTED}")
    return total


def normal_time(value: object) -> str:
    """`value` as a time limit, as written (stripped); ResourceError if it is not one."""
    time_seconds(value)
    return _text(value, "time", TIME_EXPECTED)


def time_text(total: int) -> str:
    """`total` seconds as `HH:MM:SS`, or `D-HH:MM:SS` from a day on."""
    days, rest = divmod(int(total), 86400)
    clock = f"{rest // 3600:02d}:{rest % 3600 // 60:02d}:{rest % 60:02d}"
    return f"{days}-{clock}" if days else clock


def parse_mem(value: object) -> Memory:
    """A memory size ('500M', '4gb', '1T'; a plain number or int is MB); ResourceError if not."""
    if isinstance(value, int) and not isinstance(value, bool):
        if value > 0:
            return Memory(value, "M")
        raise ResourceError(MEM_EXPECTED, f"mem={value!r} is not {MEM_EXPECTED}")
    text = _text(value, "mem", MEM_EXPECTED)
    digits = len(text) - len(text.lstrip("0123456789"))
    amount = _number(text[:digits])
    unit = text[digits:].lstrip().upper()  # blanks may part the number and its unit
    if unit[1:] == "B":
        unit = unit[:1]
    if amount is None or text[0] == "0" or unit not in ("", *UNITS):
        raise ResourceError(MEM_EXPECTED, f"mem={value!r} is not {MEM_EXPECTED}")
    return Memory(amount, unit or "M")


def normal_mem(value: object) -> str:
    """`value` as a memory size with its unit ('500M', '4G'; a whole number means MB)."""
    return str(parse_mem(value))


_DELAY_UNITS = {"s": 1, "m": 60, "h": 3600}


def delay_seconds(value: object) -> float:
    """A delay (`retry_delay`): seconds, or '30s', '2m', '1.5h'; ResourceError if not."""
    number: object = value
    scale = 1
    if isinstance(value, str):
        text = value.strip().lower()
        if text[-1:] in _DELAY_UNITS:
            scale, text = _DELAY_UNITS[text[-1]], text[:-1].strip()
        try:
            number = float(text)
        except ValueError:
            number = None
    if isinstance(number, bool) or not isinstance(number, (int, float)):
        raise ResourceError(DELAY_EXPECTED, f"retry_delay={value!r} is not {DELAY_EXPECTED}")
    seconds = float(number) * scale
    if not 0 <= seconds < float("inf"):  # also refuses NaN
        raise ResourceError(DELAY_EXPECTED, f"retry_delay={value!r} is not {DELAY_EXPECTED}")
    return seconds


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
