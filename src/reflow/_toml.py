"""Read TOML text for the config file, on every Python reflow supports.

Python 3.11+ has `tomllib`; 3.10 does not, so this module falls back to its own
small parser of the TOML subset a configuration file needs: comments, tables,
dotted keys, strings, integers, floats, booleans, arrays and inline tables.
Dates and times, which no reflow setting uses, are rejected by the fallback.
Either way a malformed document raises `TomlError` with the line to fix.
"""

from __future__ import annotations

import re
import sys
from typing import Any

__all__ = ["LazyPattern", "TomlError", "loads"]


class TomlError(ValueError):
    """A TOML document is malformed: `.lineno` (1-based) says where, `.msg` what."""

    def __init__(self, msg: str, lineno: int) -> None:
        super().__init__(f"line {lineno}: {msg}")
        self.msg = msg
        self.lineno = lineno


def loads(text: str) -> dict[str, Any]:
    """Parse a TOML document into a dict; raise `TomlError` if it is malformed."""
    if sys.version_info >= (3, 11):
        import tomllib

        try:
            return tomllib.loads(text)
        except tomllib.TOMLDecodeError as exc:
            raise _from_tomllib(exc, text) from None
    return _parse_subset(text)


def _parse_subset(text: str) -> dict[str, Any]:
    """Parse a TOML document with the fallback parser (what Python 3.10 uses)."""
    return _Parser(text).document()


def _lineno(text: str, pos: int) -> int:
    """The 1-based line of `pos`; the end of the document counts as its last line."""
    if pos >= len(text):
        pos = len(text.rstrip())
    return text.count("\n", 0, pos) + 1


def _short(msg: str) -> str:
    return msg[:1].lower() + msg[1:]


def _from_tomllib(exc: ValueError, text: str) -> TomlError:
    """The `TomlError` for a `tomllib.TOMLDecodeError`."""
    pos, msg = getattr(exc, "pos", None), getattr(exc, "msg", None)
    if isinstance(pos, int) and isinstance(msg, str):  # Python 3.14+
        return TomlError(_short(msg), _lineno(text, pos))
    found = re.fullmatch(r"(.*) \(at line (\d+), column \d+\)", str(exc), re.DOTALL)
    if found:
        return TomlError(_short(found[1]), int(found[2]))
    found = re.fullmatch(r"(.*) \(at end of document\)", str(exc), re.DOTALL)
    if found:
        return TomlError(_short(found[1]), _lineno(text, len(text)))
    return TomlError(_short(str(exc)), 1)


class LazyPattern:
    """A regular expression compiled on first use, not when the module is imported.

    Python 3.11+ never runs the fallback parser (nor the error paths of the
    config file), so their patterns cost nothing at start-up there.
    """

    def __init__(self, pattern: str, flags: int = 0) -> None:
        self.pattern = pattern
        self.flags = flags
        self._compiled: re.Pattern[str] | None = None

    @property
    def compiled(self) -> re.Pattern[str]:
        if self._compiled is None:
            self._compiled = re.compile(self.pattern, self.flags)
        return self._compiled

    def match(self, text: str, pos: int = 0) -> re.Match[str] | None:
        return self.compiled.match(text, pos)


_WS = " \t"
_BARE_KEY = LazyPattern(r"[A-Za-z0-9_-]+")
# A run of characters that may appear as is in a basic / literal string.
_BASIC_RUN = LazyPattern(r'[^"\\\x00-\x08\x0a-\x1f\x7f]+')
_LITERAL_RUN = LazyPattern(r"[^'\x00-\x08\x0a-\x1f\x7f]+")
_ML_BASIC_RUN = LazyPattern(r'[^"\\\x00-\x08\x0b-\x1f\x7f]+')
_ML_LITERAL_RUN = LazyPattern(r"[^'\x00-\x08\x0b-\x1f\x7f]+")
_COMMENT_RUN = LazyPattern(r"[^\x00-\x08\x0a-\x1f\x7f]*")
_ESCAPES = {"b": "\b", "t": "\t", "n": "\n", "f": "\f", "r": "\r", '"': '"', "\\": "\\"}
_SPECIAL_FLOAT = LazyPattern(r"[+-]?(?:inf|nan)")
_PREFIXED_INT = LazyPattern(
    r"0x[0-9A-Fa-f](?:_?[0-9A-Fa-f])*|0o[0-7](?:_?[0-7])*|0b[01](?:_?[01])*"
)
_DECIMAL = LazyPattern(
    r"[+-]?(?:0|[1-9](?:_?[0-9])*)"
    r"(?P<frac>\.[0-9](?:_?[0-9])*)?"
    r"(?P<exp>[eE][+-]?[0-9](?:_?[0-9])*)?"
)
_DATE_OR_TIME = LazyPattern(r"[0-9]{4}-[0-9]{2}-[0-9]{2}|[0-9]{2}:[0-9]{2}")


class _Parser:
    """One pass over a document; tables are tracked by `id()` of their dicts."""

    def __init__(self, text: str) -> None:
        self.text = text
        self.pos = 0
        self.root: dict[str, Any] = {}
        self.current = self.root
        self.declared: set[int] = set()  # tables opened by a [header]
        self.dotted: set[int] = set()  # tables created or extended by dotted keys
        self.frozen: set[int] = set()  # inline tables: complete once written
        self.table_arrays: set[int] = set()  # lists made by [[header]]

    def error(self, msg: str, pos: int | None = None) -> TomlError:
        return TomlError(msg, _lineno(self.text, self.pos if pos is None else pos))

    def peek(self, length: int = 1) -> str:
        return self.text[self.pos : self.pos + length]

    # -- layout -------------------------------------------------------------

    def skip_ws(self) -> None:
        text, pos = self.text, self.pos
        while pos < len(text) and text[pos] in _WS:
            pos += 1
        self.pos = pos

    def skip_comment(self) -> None:
        if self.peek() != "#":
            return
        end = _COMMENT_RUN.match(self.text, self.pos + 1)
        assert end is not None  # the pattern matches the empty string
        self.pos = end.end()
        if self.pos < len(self.text) and not self.at_newline():
            raise self.error(f"invalid character {self.text[self.pos]!r} in a comment")

    def at_newline(self) -> bool:
        return self.peek() == "\n" or self.peek(2) == "\r\n"

    def skip_newline(self) -> bool:
        if self.peek() == "\n":
            self.pos += 1
            return True
        if self.peek(2) == "\r\n":
            self.pos += 2
            return True
        return False

    def skip_blank(self) -> None:
        """Skip whitespace, newlines and comments (inside arrays)."""
        while True:
            self.skip_ws()
            self.skip_comment()
            if not self.skip_newline():
                return

    # -- statements ---------------------------------------------------------

    def document(self) -> dict[str, Any]:
        while True:
            self.skip_ws()
            if self.pos >= len(self.text):
                return self.root
            char = self.peek()
            if char == "[":
                self.header()
            elif char != "#" and not self.at_newline():
                self.key_value(self.current)
            self.skip_ws()
            self.skip_comment()
            if self.pos < len(self.text) and not self.skip_newline():
                raise self.error("expected a newline or end of document after a statement")

    def header(self) -> None:
        array = self.peek(2) == "[["
        self.pos += 2 if array else 1
        self.skip_ws()
        keys = self.key()
        closing = "]]" if array else "]"
        if self.peek(len(closing)) != closing:
            raise self.error(f"expected {closing!r} at the end of the table header")
        name = ".".join(keys)
        table = self.root
        for key in keys[:-1]:
            table = self.descend(table, key, name)
        last = keys[-1]
        if array:
            if last not in table:
                table[last] = []
                self.table_arrays.add(id(table[last]))
            tables = table[last]
            if not isinstance(tables, list) or id(tables) not in self.table_arrays:
                raise self.error(f"cannot define [[{name}]]: {last!r} already holds a value")
            self.current = {}
            tables.append(self.current)
        else:
            if last not in table:
                table[last] = {}
            existing = table[last]
            if not isinstance(existing, dict) or id(existing) in self.frozen:
                raise self.error(f"cannot define [{name}]: {last!r} already holds a value")
            if id(existing) in self.declared or id(existing) in self.dotted:
                raise self.error(f"table [{name}] is defined more than once")
            self.declared.add(id(existing))
            self.current = existing
        self.pos += len(closing)

    def descend(self, table: dict[str, Any], key: str, name: str) -> dict[str, Any]:
        """The table at `key` inside `table` on the way to header `name`."""
        child = table.setdefault(key, {})
        if isinstance(child, list) and id(child) in self.table_arrays:
            last: dict[str, Any] = child[-1]
            return last
        if not isinstance(child, dict) or id(child) in self.frozen:
            raise self.error(f"cannot define [{name}]: {key!r} already holds a value")
        return child

    def key_value(self, table: dict[str, Any]) -> None:
        start = self.pos
        keys = self.key()
        if self.peek() != "=":
            raise self.error("expected '=' after a key")
        self.pos += 1
        self.skip_ws()
        value = self.value()
        self.assign(table, keys, value, start)

    def assign(self, table: dict[str, Any], keys: list[str], value: Any, pos: int) -> None:
        for key in keys[:-1]:
            child = table.setdefault(key, {})
            if not isinstance(child, dict) or id(child) in self.frozen:
                raise self.error(f"cannot add keys to {key!r}: it already holds a value", pos)
            if id(child) in self.declared:
                raise self.error(f"cannot add keys to table [{key}] with a dotted key", pos)
            self.dotted.add(id(child))
            table = child
        if keys[-1] in table:
            raise self.error(f"duplicate key {'.'.join(keys)!r}", pos)
        table[keys[-1]] = value

    def key(self) -> list[str]:
        """A dotted key, and the whitespace after it."""
        keys = [self.key_part()]
        self.skip_ws()
        while self.peek() == ".":
            self.pos += 1
            self.skip_ws()
            keys.append(self.key_part())
            self.skip_ws()
        return keys

    def key_part(self) -> str:
        char = self.peek()
        if char == '"':
            return self.basic_string()
        if char == "'":
            return self.literal_string()
        bare = _BARE_KEY.match(self.text, self.pos)
        if bare is None:
            raise self.error("expected a key (letters, digits, '_', '-' or a quoted string)")
        self.pos = bare.end()
        return bare[0]

    # -- values -------------------------------------------------------------

    def value(self) -> Any:
        char = self.peek()
        if char == '"':
            return self.ml_basic_string() if self.peek(3) == '"""' else self.basic_string()
        if char == "'":
            return self.ml_literal_string() if self.peek(3) == "'''" else self.literal_string()
        if char == "[":
            return self.array()
        if char == "{":
            return self.inline_table()
        for word, result in (("true", True), ("false", False)):
            if self.text.startswith(word, self.pos):
                self.pos += len(word)
                return result
        return self.number()

    def number(self) -> int | float:
        text, pos = self.text, self.pos
        if _DATE_OR_TIME.match(text, pos):
            raise self.error("dates and times are not supported here; quote the value")
        special = _SPECIAL_FLOAT.match(text, pos)
        if special:
            self.pos = special.end()
            return float(special[0])
        prefixed = _PREFIXED_INT.match(text, pos)
        if prefixed:
            self.pos = prefixed.end()
            digits = prefixed[0].replace("_", "")
            return int(digits[2:], {"x": 16, "o": 8, "b": 2}[digits[1]])
        decimal = _DECIMAL.match(text, pos)
        if decimal is None:
            raise self.error("invalid value")
        self.pos = decimal.end()
        digits = decimal[0].replace("_", "")
        if decimal["frac"] or decimal["exp"]:
            return float(digits)
        return int(digits)

    def array(self) -> list[Any]:
        self.pos += 1
        items: list[Any] = []
        while True:
            self.skip_blank()
            if self.peek() == "]":
                self.pos += 1
                return items
            if self.pos >= len(self.text):
                raise self.error("unclosed array: expected ']'")
            items.append(self.value())
            self.skip_blank()
            char = self.peek()
            if char == "]":
                self.pos += 1
                return items
            if char != ",":
                raise self.error("expected ',' or ']' after an array item")
            self.pos += 1

    def inline_table(self) -> dict[str, Any]:
        self.pos += 1
        table: dict[str, Any] = {}
        self.skip_ws()
        if self.peek() == "}":
            self.pos += 1
        else:
            while True:
                self.key_value(table)
                self.skip_ws()
                char = self.peek()
                if char == "}":
                    self.pos += 1
                    break
                if char != ",":
                    raise self.error("expected ',' or '}' in an inline table (one line only)")
                self.pos += 1
                self.skip_ws()
        self.frozen.add(id(table))
        return table

    # -- strings ------------------------------------------------------------

    def basic_string(self) -> str:
        self.pos += 1
        parts: list[str] = []
        while True:
            run = _BASIC_RUN.match(self.text, self.pos)
            if run:
                parts.append(run[0])
                self.pos = run.end()
            char = self.peek()
            if char == '"':
                self.pos += 1
                return "".join(parts)
            if char == "\\":
                parts.append(self.escape(multiline=False))
            elif not char or char in "\r\n":
                raise self.error("unterminated string: expected '\"' before the end of the line")
            else:
                raise self.error(f"invalid character {char!r} in a string")

    def ml_basic_string(self) -> str:
        self.pos += 3
        self.skip_newline()
        parts: list[str] = []
        while True:
            run = _ML_BASIC_RUN.match(self.text, self.pos)
            if run:
                parts.append(run[0])
                self.pos = run.end()
            char = self.peek()
            if char == '"':
                if self.closing_quotes('"', parts):
                    return "".join(parts).replace("\r\n", "\n")
            elif char == "\\":
                parts.append(self.escape(multiline=True))
            elif self.peek(2) == "\r\n":
                parts.append("\n")
                self.pos += 2
            elif not char:
                raise self.error('unterminated string: expected \'"""\'')
            else:
                raise self.error(f"invalid character {char!r} in a string")

    def literal_string(self) -> str:
        self.pos += 1
        run = _LITERAL_RUN.match(self.text, self.pos)
        value = ""
        if run:
            value = run[0]
            self.pos = run.end()
        char = self.peek()
        if char == "'":
            self.pos += 1
            return value
        if not char or char in "\r\n":
            raise self.error('unterminated string: expected "\'" before the end of the line')
        raise self.error(f"invalid character {char!r} in a string")

    def ml_literal_string(self) -> str:
        self.pos += 3
        self.skip_newline()
        parts: list[str] = []
        while True:
            run = _ML_LITERAL_RUN.match(self.text, self.pos)
            if run:
                parts.append(run[0])
                self.pos = run.end()
            char = self.peek()
            if char == "'":
                if self.closing_quotes("'", parts):
                    return "".join(parts).replace("\r\n", "\n")
            elif self.peek(2) == "\r\n":
                parts.append("\n")
                self.pos += 2
            elif not char:
                raise self.error("unterminated string: expected \"'''\"")
            else:
                raise self.error(f"invalid character {char!r} in a string")

    def closing_quotes(self, quote: str, parts: list[str]) -> bool:
        """Consume a run of quotes; True if it closes the multi-line string."""
        start = self.pos
        while self.peek() == quote:
            self.pos += 1
        count = self.pos - start
        if count < 3:
            parts.append(quote * count)
            return False
        if count > 5:
            raise self.error("too many quotes at the end of a multi-line string", start)
        parts.append(quote * (count - 3))
        return True

    def escape(self, *, multiline: bool) -> str:
        start = self.pos
        self.pos += 1
        char = self.peek()
        if char in _ESCAPES:
            self.pos += 1
            return _ESCAPES[char]
        if char in ("u", "U"):
            width = 4 if char == "u" else 8
            digits = self.text[self.pos + 1 : self.pos + 1 + width]
            if len(digits) != width or not all(c in "0123456789abcdefABCDEF" for c in digits):
                raise self.error(f"\\{char} needs {width} hex digits", start)
            code = int(digits, 16)
            if code > 0x10FFFF or 0xD800 <= code <= 0xDFFF:
                raise self.error(f"\\{char}{digits} is not a Unicode scalar value", start)
            self.pos += 1 + width
            return chr(code)
        if multiline:
            # A backslash ending a line joins it to the next non-blank text.
            self.skip_ws()
            if self.at_newline():
                while self.skip_newline():
                    self.skip_ws()
                return ""
        if not char or char in "\r\n":
            raise self.error("a backslash ends the line inside a one-line string", start)
        raise self.error(f"invalid escape sequence '\\{char}' in a string", start)
