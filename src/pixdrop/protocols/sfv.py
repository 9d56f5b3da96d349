"""RFC 9651 structured field values: parse items and dictionaries, format what pixdrop sends.

Parsing follows RFC 9651 section 4.2 for every bare item type (integers, decimals, strings,
tokens, byte sequences, booleans, dates, display strings), parameters and inner lists, so a
valid field is never refused because of a parameter pixdrop does not use. Formatting covers
the members pixdrop writes: integers, booleans and byte sequences.
"""

from __future__ import annotations

import base64
import binascii
from collections.abc import Mapping
from dataclasses import dataclass
from decimal import Decimal


class StructuredFieldError(ValueError):
    """A value that is not valid structured-field syntax (or not the expected type)."""


class Token(str):
    """An sf-token, told apart from an sf-string."""

    __slots__ = ()


@dataclass(frozen=True, slots=True)
class Date:
    """An sf-date: seconds since the epoch."""

    seconds: int


@dataclass(frozen=True, slots=True)
class DisplayString:
    """An sf-displaystring (Unicode text)."""

    value: str


BareItem = int | Decimal | str | bytes | bool | Date | DisplayString
Parameters = dict[str, BareItem]
Item = tuple[BareItem, Parameters]
InnerList = tuple[list[Item], Parameters]

_DIGITS = frozenset("0123456789")
_LCALPHA = frozenset("abcdefghijklmnopqrstuvwxyz")
_ALPHA = _LCALPHA | frozenset("ABCDEFGHIJKLMNOPQRSTUVWXYZ")
_KEY_CHARS = _LCALPHA | _DIGITS | frozenset("_-.*")
_TCHAR = _ALPHA | _DIGITS | frozenset("!#$%&'*+-.^_`|~")
_TOKEN_CHARS = _TCHAR | frozenset(":/")
_BASE64 = _ALPHA | _DIGITS | frozenset("+/=")
_LCHEX = frozenset("0123456789abcdef")


class _Parser:
    """RFC 9651 section 4.2 parsing over one field value."""

    def __init__(self, text: str) -> None:
        # HTTP strips OWS around field values; the RFC's parser then drops leading SP.
        self.s = text.strip(" \t")
        self.i = 0

    def fail(self, what: str) -> StructuredFieldError:
        return StructuredFieldError(f"{what} at position {self.i} of {self.s!r}")

    def peek(self) -> str:
        return self.s[self.i] if self.i < len(self.s) else ""

    def done(self) -> bool:
        return self.i >= len(self.s)

    def item(self) -> Item:
        value = self.bare_item()
        return value, self.parameters()

    def bare_item(self) -> BareItem:
        c = self.peek()
        if c == "-" or c in _DIGITS:
            return self.number()
        if c == '"':
            return self.string()
        if c == "*" or c in _ALPHA:
            return self.token()
        if c == ":":
            return self.byte_sequence()
        if c == "?":
            return self.boolean()
        if c == "@":
            self.i += 1
            number = self.number()
            if not isinstance(number, int):
                raise self.fail("a date must be an integer")
            return Date(number)
        if c == "%":
            return self.display_string()
        raise self.fail("expected an item")

    def number(self) -> int | Decimal:
        sign = ""
        if self.peek() == "-":
            sign = "-"
            self.i += 1
        if self.peek() not in _DIGITS:
            raise self.fail("expected a digit")
        start = self.i
        dot = -1
        while not self.done():
            c = self.peek()
            if c in _DIGITS:
                pass
            elif c == "." and dot < 0:
                if self.i - start > 12:
                    raise self.fail("too many integer digits in a decimal")
                dot = self.i
            else:
                break
            self.i += 1
            if dot < 0 and self.i - start > 15:
                raise self.fail("integer longer than 15 digits")
            if dot >= 0 and self.i - start > 16:
                raise self.fail("decimal longer than 16 characters")
        text = self.s[start : self.i]
        if dot < 0:
            return int(sign + text)
        if text.endswith(".") or len(text) - (dot - start) - 1 > 3:
            raise self.fail("a decimal needs 1 to 3 fractional digits")
        return Decimal(sign + text)

    def string(self) -> str:
        self.i += 1
        out: list[str] = []
        while not self.done():
            c = self.peek()
            self.i += 1
            if c == "\\":
                nxt = self.peek()
                if nxt not in ('"', "\\") or self.done():
                    raise self.fail("bad escape in a string")
                out.append(nxt)
                self.i += 1
            elif c == '"':
                return "".join(out)
            elif not " " <= c <= "~":
                raise self.fail("a string holds printable ASCII only")
            else:
                out.append(c)
        raise self.fail("unterminated string")

    def token(self) -> Token:
        start = self.i
        self.i += 1
        while not self.done() and self.peek() in _TOKEN_CHARS:
            self.i += 1
        return Token(self.s[start : self.i])

    def byte_sequence(self) -> bytes:
        end = self.s.find(":", self.i + 1)
        if end < 0:
            raise self.fail("unterminated byte sequence")
        encoded = self.s[self.i + 1 : end]
        if any(c not in _BASE64 for c in encoded):
            raise self.fail("a byte sequence is base64")
        self.i = end + 1
        try:
            return base64.b64decode(encoded + "=" * (-len(encoded) % 4), validate=True)
        except binascii.Error as exc:
            raise self.fail("a byte sequence is base64") from exc

    def boolean(self) -> bool:
        value = self.s[self.i + 1 : self.i + 2]
        if value not in ("0", "1"):
            raise self.fail("a boolean is ?0 or ?1")
        self.i += 2
        return value == "1"

    def display_string(self) -> DisplayString:
        if self.s[self.i : self.i + 2] != '%"':
            raise self.fail('a display string starts with %"')
        self.i += 2
        raw = bytearray()
        while not self.done():
            c = self.peek()
            self.i += 1
            if not " " <= c <= "~":
                raise self.fail("a display string holds printable ASCII only")
            if c == "%":
                hexes = self.s[self.i : self.i + 2]
                if len(hexes) != 2 or any(h not in _LCHEX for h in hexes):
                    raise self.fail("bad %-escape in a display string")
                raw.append(int(hexes, 16))
                self.i += 2
            elif c == '"':
                try:
                    return DisplayString(raw.decode("utf-8"))
                except UnicodeDecodeError as exc:
                    raise self.fail("a display string is UTF-8") from exc
            else:
                raw.append(ord(c))
        raise self.fail("unterminated display string")

    def key(self) -> str:
        c = self.peek()
        if not (c == "*" or c in _LCALPHA) or self.done():
            raise self.fail("expected a key")
        start = self.i
        while not self.done() and self.peek() in _KEY_CHARS:
            self.i += 1
        return self.s[start : self.i]

    def parameters(self) -> Parameters:
        params: Parameters = {}
        while self.peek() == ";":
            self.i += 1
            while self.peek() == " ":
                self.i += 1
            name = self.key()
            value: BareItem = True
            if self.peek() == "=":
                self.i += 1
                value = self.bare_item()
            params[name] = value
        return params

    def item_or_inner_list(self) -> Item | InnerList:
        if self.peek() != "(":
            return self.item()
        self.i += 1
        items: list[Item] = []
        while not self.done():
            while self.peek() == " ":
                self.i += 1
            if self.peek() == ")":
                self.i += 1
                return items, self.parameters()
            items.append(self.item())
            if self.peek() not in (" ", ")"):
                raise self.fail("inner list members are separated by spaces")
        raise self.fail("unterminated inner list")

    def skip_ows(self) -> None:
        while self.peek() in (" ", "\t") and not self.done():
            self.i += 1


def parse_sf_item(value: str) -> Item:
    """An RFC 9651 Item: ``(bare item, parameters)``."""
    parser = _Parser(value)
    item = parser.item()
    if not parser.done():
        raise parser.fail("unexpected text after the item")
    return item


def parse_sf_dictionary(value: str) -> dict[str, Item | InnerList]:
    """An RFC 9651 Dictionary; a member without ``=`` is the boolean true."""
    parser = _Parser(value)
    members: dict[str, Item | InnerList] = {}
    while not parser.done():
        name = parser.key()
        if parser.peek() == "=":
            parser.i += 1
            members[name] = parser.item_or_inner_list()
        else:
            members[name] = (True, parser.parameters())
        parser.skip_ows()
        if parser.done():
            break
        if parser.peek() != ",":
            raise parser.fail("dictionary members are separated by commas")
        parser.i += 1
        parser.skip_ows()
        if parser.done():
            raise parser.fail("trailing comma")
    return members


def parse_sf_integer(value: str) -> int:
    """An Item whose value is an sf-integer (parameters, if any, are ignored)."""
    bare, _ = parse_sf_item(value)
    if type(bare) is not int:
        raise StructuredFieldError(f"{value!r} is not an integer")
    return bare


def parse_sf_boolean(value: str) -> bool:
    """An Item whose value is an sf-boolean: ``?1`` or ``?0``."""
    bare, _ = parse_sf_item(value)
    if not isinstance(bare, bool):
        raise StructuredFieldError(f"{value!r} is not a boolean (?1 or ?0)")
    return bare


def format_sf_boolean(value: bool) -> str:
    return "?1" if value else "?0"


_MAX_SF_INTEGER = 999_999_999_999_999


def format_sf_integer(value: int) -> str:
    if type(value) is not int or abs(value) > _MAX_SF_INTEGER:
        raise ValueError(f"{value!r} is not an sf-integer")
    return str(value)


def format_sf_dictionary(members: Mapping[str, int | bool | bytes]) -> str:
    """Serialize a dictionary of integers, booleans and byte sequences (no parameters)."""
    parts: list[str] = []
    for key, value in members.items():
        if not key or key[0] not in _LCALPHA | {"*"} or any(c not in _KEY_CHARS for c in key):
            raise ValueError(f"{key!r} is not an sf-key")
        if value is True:
            parts.append(key)
        elif isinstance(value, bool):
            parts.append(f"{key}=?0")
        elif isinstance(value, bytes):
            parts.append(f"{key}=:{base64.b64encode(value).decode()}:")
        else:
            parts.append(f"{key}={format_sf_integer(value)}")
    return ", ".join(parts)
