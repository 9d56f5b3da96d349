"""The markup search of ingest: web markup hidden in an image file, and XMP GPS names.

A file that also carries ``<script``, ``<iframe``, ``javascript:``... is a polyglot: bytes a
browser would run if it ever took the file for HTML or SVG. No image needs these;
``nosniff`` already stops the browser, this is the second lock on the same door. The same
pass tells whether an XMP GPS property is named anywhere (for the formats whose XMP is not
found by structure, ``gps.XMP_ANYWHERE``).

:func:`search` looks at one window of a file (``jobs._scan`` feeds it overlapping windows).
The patterns here, run by Python's ``re``, are the definition. Where the ``hyperscan``
package is installed (Linux on x86-64), it runs first, as a filter: it looks for the
patterns' fixed beginnings (``<script``, ``javascript:``...) in one pass over the window,
several times faster than three ``re`` passes, and each place it reports is checked with
the ``re`` patterns, so both paths find the same first markup at the same offset
(``tests/unit/test_markup_scan.py`` compares them).
"""

from __future__ import annotations

import contextlib
import re
from types import ModuleType
from typing import Any, Final

from pixdrop.imaging.gps import XMP_GPS

__all__ = ["ENGINE", "search", "search_re"]


def _anycase(word: bytes) -> bytes:
    """A pattern matching *word* in any case, written out (``[sS][cC]...``): unlike
    ``re.IGNORECASE`` it keeps the pattern's fast scan for its leading literal."""
    return b"".join(
        b"[%s%s]" % (bytes([c]).lower(), bytes([c]).upper()) if chr(c).isalpha() else bytes([c])
        for c in word
    )


_TAGS: Final = (b"script", b"html", b"body", b"iframe", b"object", b"embed")
MARKUP_TAG: Final = re.compile(
    b"<(?:"
    + b"|".join(_anycase(w) for w in _TAGS)
    + b")[\\s>/]|<"
    + _anycase(b"meta")
    + b"\\s{1,512}"
    + _anycase(b"http-equiv")
    + b"[\\s>/]"
    # a bare "<svg" is only 4 bytes, common enough in megabytes of compressed data
    + b"|<"
    + _anycase(b"svg")
    + b"\\s[^>]{0,200}"
    + _anycase(b"xmlns")
)
#: Anchored on its colon (a literal, so the scan is fast) and looking back for the scheme.
MARKUP_URL: Final = re.compile(b":(?<=" + _anycase(b"javascript:") + b")")
#: Longer than any match of either pattern (``<meta``, 512 blanks, ``http-equiv`` and one
#: byte: 528) plus the longest beginning, the most a match can start before a reported end.
LONGEST: Final = 600
#: Every match of MARKUP_TAG or MARKUP_URL begins with one of these, in any case.
_BEGINNINGS: Final = (*(b"<" + w for w in (*_TAGS, b"meta", b"svg")), b"javascript:")
_LONGEST_BEGINNING: Final = max(map(len, _BEGINNINGS))

Found = tuple[int, bytes]


def _first_markup(window: bytes | memoryview) -> Found | None:
    """The first markup in *window*, as (offset, the bytes found), by the ``re`` patterns."""
    tag = MARKUP_TAG.search(window)
    url = MARKUP_URL.search(window)
    if url is not None:
        start = url.end() - len(b"javascript:")
        if tag is None or start < tag.start():
            return start, bytes(window[start : url.end()])
    return None if tag is None else (tag.start(), bytes(tag.group()))


def search_re(window: bytes | memoryview, xmp: bool) -> tuple[Found | None, bool]:
    """(the first markup in *window*, whether it names XMP GPS if *xmp*): the reference."""
    xmp_gps = xmp and XMP_GPS.search(window) is not None
    return _first_markup(window), xmp_gps


hyperscan: ModuleType | None
try:
    import hyperscan
except ImportError:  # not on this platform: re alone
    hyperscan = None


class _Prefilter:
    """One hyperscan pass for the beginnings of markup and for XMP GPS names."""

    MARKUP, XMP = 0, 1

    def __init__(self) -> None:
        assert hyperscan is not None
        self.database = hyperscan.Database(mode=hyperscan.HS_MODE_BLOCK)
        expressions = [re.escape(b) for b in _BEGINNINGS] + [XMP_GPS.pattern]
        self.database.compile(
            expressions=expressions,
            ids=[self.MARKUP] * len(_BEGINNINGS) + [self.XMP],
            elements=len(expressions),
            flags=[hyperscan.HS_FLAG_CASELESS] * len(_BEGINNINGS) + [0],
        )

    def search(self, window: bytes | memoryview, xmp: bool) -> tuple[Found | None, bool]:
        assert hyperscan is not None
        found: list[Found] = []
        named_gps = [False]
        size = len(window)

        def on_match(kind: int, _start: int, end: int, _flags: int, _context: object) -> bool:
            if kind == self.XMP:
                named_gps[0] = xmp
                return False
            # Beginnings are reported in the order they end: one that starts earlier ends at
            # most _LONGEST_BEGINNING bytes later, and each one reported before was checked
            # and began no markup; so no markup starts before *low*, and the first one, if
            # it starts in the slice, ends in it too (LONGEST).
            low = max(0, end - _LONGEST_BEGINNING)
            confirmed = _first_markup(window[low : min(size, end + LONGEST)])
            if confirmed is None:
                return False  # no markup here (a "<svg" without xmlns): go on
            found.append((low + confirmed[0], confirmed[1]))
            return True  # stop: the first markup is all that is wanted

        # Stopped at the first markup, hyperscan says so by raising.
        with contextlib.suppress(hyperscan.ScanTerminated):
            data: Any = window  # it reads any buffer; its stub says bytes or str
            self.database.scan(data, match_event_handler=on_match)
        return (found[0] if found else None), named_gps[0]


_PREFILTER: Final = None if hyperscan is None else _Prefilter()
#: Which search runs here: "hyperscan" (then confirmed by re) or "re".
ENGINE: Final = "re" if _PREFILTER is None else "hyperscan"


def search(window: bytes | memoryview, xmp: bool) -> tuple[Found | None, bool]:
    """The first markup in *window* as (offset, the bytes found), or ``None``; and, if *xmp*,
    whether the window names an XMP GPS property. Once markup is found the rest of the window
    is not searched for GPS names (the file is refused anyway)."""
    if _PREFILTER is not None:
        return _PREFILTER.search(window, xmp)
    return search_re(window, xmp)
